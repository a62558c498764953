"""``tradingd attribution`` and ``tradingd journal`` as a user runs them on a real replay folder
(SPY + AAPL hourly, 2019, rsi_momentum, positions open at the end) and on a run id of the state
database: the output files, totals that reconcile, the --month filter, and exit 2 with a clear
message for an unknown run, a run without trades and a malformed month or one outside the run;
exit 1 when the run's files disagree."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from tests.daemon.conftest import AAPL, SPY, Replayed, replay_into, sqlite_url
from tests.daemon.conftest import invoke as run_cli

WINDOW = ("--start", "2019-01-01T00:00:00Z", "--end", "2019-10-01T00:00:00Z")


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> Replayed:
    """A replay folder (rsi_momentum over SPY and AAPL, Jan-Sep 2019), its run id and database URL."""
    base = tmp_path_factory.mktemp("attribution-cli")
    run = replay_into(base / "run", sqlite_url(base / "state.db"), "--data", SPY, "--data", AAPL, "--strategy",
                      "rsi_momentum", *WINDOW, "--no-report")
    assert len(pd.read_csv(run.folder / "positions.csv")) >= 1  # something still open at the end
    return run


def test_attribution_writes_reconciled_outputs_into_the_run_folder(replayed):
    folder, run_id, _ = replayed
    result = run_cli("attribution", folder, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "reconciled" in result.stdout and "NOT" not in result.stdout
    out = folder / "attribution"  # the default: <run folder>/attribution/
    assert {p.name for p in out.iterdir()} >= {"report.html", "attribution.json", "attribution.csv",
                                               "attribution_trades.csv", "attribution_daily.csv"}
    document = json.loads((out / "attribution.json").read_text())
    equity = pd.read_csv(folder / "equity.csv")["equity"]
    total = float(equity.iloc[-1] - 100_000.0)
    assert document["run_id"] == run_id and document["total_pnl"] == pytest.approx(total, abs=1e-9)
    trades = pd.read_csv(folder / "trades.csv")
    for name, buckets in document["dimensions"].items():
        assert sum(b["trades"] for b in buckets) == len(trades), name
        assert sum(b["pnl"] for b in buckets) + document["open_at_end_pnl"] == pytest.approx(total, abs=1e-6), name
    factor = document["factor"]
    assert factor["market_pnl"] + factor["alpha_pnl"] == pytest.approx(total, abs=1e-6)


def test_journal_whole_run_and_one_month(replayed, tmp_path):
    folder, _, _ = replayed
    result = run_cli("journal", folder, "--out", tmp_path / "all", "--no-progress")
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "all").iterdir()} == {"report.html", "journal.csv", "journal.json",
                                                              "journal.md"}
    everything = pd.read_csv(tmp_path / "all" / "journal.csv")
    assert len(everything) == len(pd.read_csv(folder / "trades.csv"))
    assert {"confidence", "regime", "volatility", "benchmark_trend", "mae", "mfe", "exit_type"} <= set(everything)
    result = run_cli("journal", folder, "--month", "2019-03", "--out", tmp_path / "march", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "in 2019-03" in result.stdout
    march = pd.read_csv(tmp_path / "march" / "journal.csv")
    exits = pd.to_datetime(march["exit_time"], utc=True)
    assert 0 < len(march) < len(everything) and (exits.dt.strftime("%Y-%m") == "2019-03").all()
    expected = pd.to_datetime(everything["exit_time"], utc=True).dt.strftime("%Y-%m").eq("2019-03").sum()
    assert len(march) == expected
    document = json.loads((tmp_path / "march" / "journal.json").read_text())
    assert document["month"] == "2019-03" and document["month_summary"]["trades"] == len(march)
    assert "## 2019-03" in (tmp_path / "march" / "journal.md").read_text()


def test_a_run_id_read_from_the_database_reconciles_too(replayed, tmp_path):
    folder, run_id, db = replayed
    moved = folder.with_name("moved")
    shutil.move(folder, moved)  # the recorded folder is gone: the command reads the database rows
    try:
        result = run_cli("attribution", run_id[:24], "--db", db, "--out", tmp_path / "db", "--no-progress")
        assert result.exit_code == 0, result.output
        document = json.loads((tmp_path / "db" / "attribution.json").read_text())
        assert document["reconciliation"]["ok"] is True
        context = pd.read_csv(tmp_path / "db" / "attribution_trades.csv")
        assert context["decision_link"].eq("last decision").all()  # no order links in the database
        journal = run_cli("journal", run_id, "--db", db, "--out", tmp_path / "dbj", "--no-progress")
        assert journal.exit_code == 0, journal.output
    finally:
        shutil.move(moved, folder)


@pytest.mark.parametrize("command", ["attribution", "journal"])
def test_unknown_run_exits_2(replayed, tmp_path, command):
    _, _, db = replayed
    result = run_cli(command, "nosuchrun", "--db", db, "--no-progress")
    assert result.exit_code == 2 and "no run 'nosuchrun'" in result.stderr
    result = run_cli(command, tmp_path / "missing-folder", "--no-progress")
    assert result.exit_code == 2 and "is not a folder" in result.stderr


def test_run_without_trades_exits_2(replayed, tmp_path):
    _, _, db = replayed
    quiet = tmp_path / "quiet"
    replay_into(quiet, db, "--data", SPY, "--strategy", "rsi_momentum", "--start", "2019-01-02T00:00:00Z", "--end",
                "2019-01-04T00:00:00Z", "--no-report")
    for command in ("attribution", "journal"):
        result = run_cli(command, quiet, "--no-progress")
        assert result.exit_code == 2, result.output
        assert "closed 0 trade(s)" in result.stderr and f"tradingd {command}" in result.stderr


@pytest.mark.parametrize("month, message", [("2019-13", "give a calendar month as YYYY-MM"),
                                            ("March", "give a calendar month as YYYY-MM"),
                                            ("2020-01", "outside the run, which covers 2019-01 to 2019-09")])
def test_bad_month_exits_2(replayed, tmp_path, month, message):
    folder, _, _ = replayed
    result = run_cli("journal", folder, "--month", month, "--out", tmp_path / "j", "--no-progress")
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / "j").exists()


def test_files_that_disagree_exit_1_after_writing(replayed, tmp_path):
    folder, _, _ = replayed
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken, ignore=shutil.ignore_patterns("attribution", "journal"))
    positions = pd.read_csv(broken / "positions.csv")
    positions.loc[0, "unrealized_pnl"] += 5.0
    positions.to_csv(broken / "positions.csv", index=False)
    result = run_cli("attribution", broken, "--no-progress")
    assert result.exit_code == 1
    assert "differs from the equity curve" in result.stderr and "by 5 USD" in result.stderr
    assert json.loads((broken / "attribution" / "attribution.json").read_text())["reconciliation"]["ok"] is False
