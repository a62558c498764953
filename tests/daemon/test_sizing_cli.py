"""``tradingd sizing`` as a user runs it: on a replay output folder (default out <folder>/sizing/),
on a run id in the state database, on a configuration file, and clear errors (exit 2) for bad
``--risk`` grids, tolerances and unknown runs.

The run is a real ``tradingd replay`` of SPY + AAPL hourly bars, first half of 2019, with its
state database in tmp_path.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.daemon.conftest import AAPL, SPY, Replayed, replay_into, sqlite_url
from tests.daemon.conftest import invoke as _invoke

WINDOW = ("--start", "2019-01-01T00:00:00Z", "--end", "2019-07-01T00:00:00Z")
CONTRACT = {"run_id", "key", "levels", "tolerance", "recommended", "recommended_reason"}
LEVEL_KEYS = {"risk_per_trade", "total_return", "cagr", "sharpe", "sortino", "recovery_factor", "ulcer_index",
              "max_drawdown", "trades", "on_frontier"}


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> Replayed:
    """(output folder, run id, database URL) of a real replay."""
    base = tmp_path_factory.mktemp("sizing-run")
    return replay_into(base / "run", sqlite_url(base / "state.db"), SPY, AAPL, *WINDOW, "-p", "fast=10", "-p", "slow=40")


def _json(folder: Path) -> dict:
    return json.loads((folder / "sizing.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def test_sizing_a_run_folder_writes_the_report_the_json_and_the_csv_next_to_it(replayed):
    folder, run_id, _ = replayed
    done = _invoke("sizing", folder, "--risk", "0.02:0.06:0.02", "--max-drawdown", "0.15", "--jobs", "2")
    assert done.exit_code == 0, done.output
    out = folder / "sizing"
    assert {"report.html", "sizing.json", "levels.csv"} <= {p.name for p in out.iterdir()}
    doc = _json(out)
    assert CONTRACT <= set(doc) and doc["run_id"] == run_id
    # the run sizes with fixed_fraction: that key is swept, and the user is told
    assert doc["key"] == "risk.fixed_fraction"
    assert "risk_per_trade has no effect: swept risk.fixed_fraction" in done.stdout
    assert [lv["risk_per_trade"] for lv in doc["levels"]] == [0.02, 0.04, 0.06]
    assert all(LEVEL_KEYS <= set(lv) for lv in doc["levels"])
    assert doc["tolerance"] == {"max_drawdown": 0.15}
    drawdowns = [lv["max_drawdown"] for lv in doc["levels"]]
    assert drawdowns == sorted(drawdowns) and drawdowns[0] < drawdowns[-1]  # larger positions, deeper falls
    rec = doc["recommended"]
    assert rec is not None and rec["on_frontier"] and rec["max_drawdown"] <= 0.15 and rec in doc["levels"]
    assert f"recommended: fixed_fraction = {rec['risk_per_trade']:g}" in done.stdout
    with (out / "levels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["fixed_fraction"]) for r in rows] == [0.02, 0.04, 0.06]
    assert [r["recommended"] for r in rows].count("true") == 1


def test_sizing_a_run_id_from_the_state_database_and_a_tolerance_no_level_meets(replayed, tmp_path):
    _, run_id, url = replayed
    out = tmp_path / "by-id"
    done = _invoke("sizing", run_id[:24], "--db", url, "--risk", "0.05:0.1:0.05", "--max-drawdown", "0.0001",
                   "--out", out)
    assert done.exit_code == 0, done.output
    doc = _json(out)
    assert doc["run_id"] == run_id and len(doc["levels"]) == 2
    assert doc["recommended"] is None and doc["recommended_reason"].startswith("no level keeps the max drawdown")
    assert "no recommendation" in done.stdout


def test_sizing_a_configuration_file_sweeps_risk_per_trade_when_it_sizes_by_risk(tmp_path):
    config = tmp_path / "rsi.toml"
    config.write_text(f"""
[strategy]
name = "rsi_momentum"
[data]
paths = ["{SPY}"]
start = "2019-01-01T00:00:00Z"
end = "2019-07-01T00:00:00Z"
[risk]
sizing = "risk_per_trade"
max_position_fraction = 1.0
""")
    out = tmp_path / "out"
    done = _invoke("sizing", config, "--risk", "0.002:0.006:0.002", "--out", out)
    assert done.exit_code == 0, done.output
    doc = _json(out)
    assert doc["key"] == "risk.risk_per_trade" and doc["run_id"] == f"config:{config}"
    assert doc["levels"][0]["max_drawdown"] < doc["levels"][-1]["max_drawdown"]


@pytest.mark.parametrize("risk, message", [
    ("0.01", "--risk '0.01': expected START:STOP:STEP"),
    ("0.01:0.02:x", "STEP 'x' is not a number"),
    ("0.02:0.01:0.005", "START 0.02 is above STOP 0.01"),
    ("0.01:0.3:0.01", "STOP 0.3 must be a fraction of equity in (0, 0.1]"),
    ("0.01:0.02:0", "STEP 0 must be above 0"),
])
def test_a_bad_risk_grid_is_refused_with_exit_2(replayed, risk, message):
    done = _invoke("sizing", replayed[0], "--risk", risk)
    assert done.exit_code == 2 and message in done.stderr and "Traceback" not in done.output


def test_unknown_runs_and_bad_options_are_refused_with_exit_2(replayed, tmp_path):
    _, _, url = replayed
    for args, message in [
        (("no-such-run", "--db", url), "no run 'no-such-run'"),
        ((tmp_path / "missing", "--db", url), "is not a folder; give a replay output folder or a run id"),
        ((tmp_path / "missing.toml",), "missing.toml: no such configuration file"),
        ((replayed[0], "--max-drawdown", "1.5"), "--max-drawdown 1.5: must be a fraction in (0, 1]"),
        ((replayed[0], "--jobs", "0"), "--jobs 0: must be 1 or more"),
    ]:
        done = _invoke("sizing", *args, "--risk", "0.01:0.02:0.01")
        assert done.exit_code == 2, (args, done.output)
        assert message in done.stderr and "Traceback" not in done.output


def test_a_run_without_trades_is_refused_and_moved_data_is_read_with_data(replayed, tmp_path):
    _, _, url = replayed
    idle = replay_into(tmp_path / "idle", url, SPY, AAPL, *WINDOW, "-p", "fast=900", "-p", "slow=1000").folder
    done = _invoke("sizing", idle, "--risk", "0.02:0.04:0.02", "--no-progress")
    assert done.exit_code == 2, done.output
    assert "closed 0 trade(s); `tradingd sizing` needs at least 1" in " ".join(done.stderr.split())
    assert not (idle / "sizing").exists()
    # the run's bar files moved after the replay: --data gives them back
    bars = tmp_path / "bars"
    bars.mkdir()
    for source in (SPY, AAPL):
        (bars / source.name).write_bytes(source.read_bytes())
    run = replay_into(tmp_path / "run", url, bars / SPY.name, bars / AAPL.name, *WINDOW, "-p", "fast=10", "-p",
                      "slow=40").folder
    bars.rename(tmp_path / "bars-now")
    lost = _invoke("sizing", run, "--risk", "0.02:0.04:0.02", "--no-progress")
    assert lost.exit_code == 2 and "pass the data with --data" in " ".join(lost.stderr.split())
    done = _invoke("sizing", run, "--risk", "0.02:0.04:0.02", "--no-progress", "--data", tmp_path / "bars-now")
    assert done.exit_code == 0, done.output
    assert [lv["trades"] > 0 for lv in _json(run / "sizing")["levels"]] == [True, True]
