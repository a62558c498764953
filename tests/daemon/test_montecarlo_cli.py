"""``tradingd montecarlo RUN`` as a user runs it: on a real short replay (the bundled hourly
equities, 2019-01 .. 2020-06, sma_cross of config.toml) given as its output folder or its run id,
the files it writes, the same numbers for the same seed, cost re-replays, and exit 2 with a clear
message for a run that does not exist, a run without trades and bad options.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time

import pandas as pd
import pytest

from tests.daemon.conftest import REPO, REPO_CONFIG, Replayed, replay_into, sqlite_url
from tests.daemon.conftest import invoke as _invoke

WINDOW = ("--start", "2019-01-01T00:00:00Z", "--end", "2020-06-01T00:00:00Z")
Q = {"p5", "p25", "p50", "p75", "p95", "mean"}


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> Replayed:
    """A real replay's output folder, its run id and the database holding it."""
    base = tmp_path_factory.mktemp("mc-cli")
    run = replay_into(base / "run", sqlite_url(base / "state.db"), "--config", REPO_CONFIG, *WINDOW)
    assert len(pd.read_csv(run.folder / "trades.csv")) >= 10
    return run


@pytest.fixture
def wide_console(monkeypatch):
    """The table is parsed row by row below: a console 200 columns wide whatever width the process
    started with (the shared console fixes its width when first imported)."""
    from daemon.cli_common import console
    monkeypatch.setattr(console, "_width", 200)


def test_writes_the_report_json_and_csvs_into_the_run_folder(replayed, wide_console):
    folder, run_id, _ = replayed
    result = _invoke("montecarlo", folder, "--sims", 2000, "--config", REPO_CONFIG)
    assert result.exit_code == 0, result.output
    out = folder / "montecarlo"  # the default: <run folder>/montecarlo
    assert {p.name for p in out.iterdir()} == {"report.html", "montecarlo.json", "paths_quantiles.csv",
                                               "simulations.csv"}
    doc = json.loads((out / "montecarlo.json").read_text())
    assert doc["run_id"] == run_id and doc["sims"] == 2000 and doc["seed"] == 7
    for method in ("trade_shuffle", "trade_bootstrap", "daily_bootstrap", "price_noise"):
        assert set(doc[method]) == {"total_return", "max_drawdown", "sharpe"}
        assert all(set(q) == Q for q in doc[method].values())
        assert doc[method]["max_drawdown"]["p5"] >= 0
    assert doc["cost_replays"] is None
    assert doc["risk_of_ruin"]["loss_fraction"] == 0.5 and 0 <= doc["risk_of_ruin"]["probability"] <= 1
    assert set(doc["breaker_trip_probability"]) == {"max_drawdown", "daily_loss", "consecutive_losses"}
    # config.toml's [risk]: the limits the run recorded are the ones judged
    assert doc["breaker_limits"] == {"max_drawdown": 0.2, "daily_loss_limit": 0.05, "max_consecutive_losses": 5}
    assert isinstance(doc["acceptable"], bool) and "max_drawdown" in doc["acceptable_reason"]
    assert doc["acceptable"] == (doc["risk_of_ruin"]["probability"] <= 0.01
                                 and doc["daily_bootstrap"]["max_drawdown"]["p95"] < 0.2)
    sims = pd.read_csv(out / "simulations.csv")
    assert {"method", "total_return", "max_drawdown", "sharpe"} <= set(sims.columns)
    assert sims.groupby("method").size().to_dict() == dict.fromkeys(
        ["daily_bootstrap", "price_noise", "trade_bootstrap", "trade_shuffle"], 2000)
    bands = pd.read_csv(out / "paths_quantiles.csv")
    daily = bands[bands["method"] == "daily_bootstrap"]
    assert (daily["p5"] <= daily["p50"]).all() and (daily["p50"] <= daily["p95"]).all()
    assert daily["p50"].iloc[0] == 100_000.0  # every path starts at the starting cash
    # the run's own daily path ends where its equity curve does
    equity = pd.read_csv(folder / "equity.csv")["equity"]
    assert daily["actual"].iloc[-1] == pytest.approx(equity.iloc[-1], rel=1e-6)
    assert "Risk of ruin" in result.stdout and "acceptable" in result.stdout
    # the table says which Sharpe each row is and shows the run's own value beside the percentiles
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]]
            for line in result.stdout.splitlines() if line.startswith("│")}
    actual = doc["actual"]
    assert rows["Trade shuffle"][0] == rows["Price noise"][0] == "trades" and rows["Daily block bootstrap"][0] == "days"
    assert rows["Trade shuffle"][6] == f"{actual['trade_path_sharpe']:.2f}"
    assert rows["Daily block bootstrap"][6] == f"{actual['sharpe']:.2f}"
    assert rows["Daily block bootstrap"][2] == f"{actual['total_return'] * 100:.1f}%"
    assert "actual" in result.stdout and "Sharpe per trade" in result.stdout
    # drawdown and daily-loss trips are measured on daily closes: lower bounds, in the output and the report
    stdout = " ".join(result.stdout.split())
    trips = doc["breaker_trip_probability"]
    assert f"max_drawdown at least {trips['max_drawdown']:.2%}" in stdout and "lower bounds" in stdout
    assert f"consecutive_losses {trips['consecutive_losses']:.2%}" in stdout
    assert f"at least {trips['daily_loss']:.2%}" in (out / "report.html").read_text()


def test_same_seed_same_numbers_by_run_id_and_cost_replays(replayed, tmp_path):
    folder, run_id, db = replayed
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((first, 3), (second, 3), (other, 4)):
        result = _invoke("montecarlo", run_id[:20], "--db", db, "--sims", 500, "--seed", seed, "--out", out,
                         "--config", REPO_CONFIG, *(("--cost-replays", 2, "--jobs", 2) if out is first else ()))
        assert result.exit_code == 0, result.output
    a, b, c = (json.loads((p / "montecarlo.json").read_text()) for p in (first, second, other))
    assert a["run_id"] == run_id
    same = ("trade_shuffle", "trade_bootstrap", "daily_bootstrap", "price_noise", "breaker_trip_probability",
            "acceptable_reason")
    assert [a[k] for k in same] == [b[k] for k in same]  # and the cost replays change no other method's numbers
    assert a["daily_bootstrap"] != c["daily_bootstrap"]
    assert set(a["cost_replays"]) == {"total_return", "max_drawdown", "sharpe"} and b["cost_replays"] is None
    costs = pd.read_csv(first / "simulations.csv").query("method == 'cost_replays'")
    assert len(costs) == 2 and costs["slippage_factor"].between(1, 3).all()
    # dearer fills never beat the run's own result
    assert (costs["total_return"] < a["actual"]["total_return"]).all()


def test_bad_input_exits_2_with_a_clear_message(replayed, tmp_path):
    _, _, db = replayed
    result = _invoke("montecarlo", "nosuchrun", "--db", db, "--config", REPO_CONFIG)
    assert result.exit_code == 2 and "no run 'nosuchrun'" in result.stderr
    result = _invoke("montecarlo", tmp_path / "missing", "--config", REPO_CONFIG)
    assert result.exit_code == 2 and "is not a folder" in result.stderr
    empty = tmp_path / "empty"  # two weeks: the 350-bar slow average never forms, no trade
    replay_into(empty, db, "--config", REPO_CONFIG, "--start", "2019-01-01T00:00:00Z", "--end", "2019-01-20T00:00:00Z")
    result = _invoke("montecarlo", empty, "--config", REPO_CONFIG)
    assert result.exit_code == 2 and "closed 0 trade(s)" in result.stderr and "montecarlo" in result.stderr
    assert not (empty / "montecarlo").exists()
    for option, value, words in (("--sims", 0, "--sims 0"), ("--ruin", 1.5, "--ruin 1.5"),
                                 ("--block-days", 0, "--block-days 0"), ("--cost-replays", -1, "--cost-replays -1"),
                                 ("--jobs", 0, "--jobs 0")):
        result = _invoke("montecarlo", empty, option, value)
        assert result.exit_code == 2 and words in result.stderr


def test_an_occupied_default_output_folder_is_refused_by_name(replayed, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(replayed.folder, run, ignore=shutil.ignore_patterns("montecarlo"))
    (run / "montecarlo").write_text("not a folder")
    result = _invoke("montecarlo", run, "--config", REPO_CONFIG)
    assert result.exit_code == 2
    assert f"default output folder {run / 'montecarlo'}: exists and is a file" in " ".join(result.stderr.split())


def test_sigterm_while_simulating_exits_130_and_writes_nothing(replayed, tmp_path):
    out = tmp_path / "mc"
    proc = subprocess.Popen([REPO / ".venv" / "bin" / "tradingd", "montecarlo", replayed.folder, "--config",
                             REPO_CONFIG, "--cost-replays", "500", "--out", out], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and "Monte Carlo of run" in proc.stdout.readline()
        time.sleep(0.5)  # into the cost replays (500 take tens of seconds)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted: nothing written" in stderr and "Traceback" not in stderr
    assert not out.exists()
