"""``tradingd benchmark RUN``: on a short real replay it writes the report, benchmark.json (the
contract the readiness command reads), the equity and monthly CSVs; a run id works as well as a
folder; bad input is a clear error with exit status 2. Also the help of all seven commands on a
finished run (they share their RUN argument and options): fast, with no heavy import."""

from __future__ import annotations

import csv
import gzip
import html
import json
from pathlib import Path

import pandas as pd
import pytest

from tests.daemon.conftest import AAPL, REPO, REPO_CONFIG, SPY, replay_into, spy_rows, sqlite_url, write_csv
from tests.daemon.conftest import invoke as _invoke

IEF = REPO / "data" / "us_equity_daily_adjusted" / "IEF.csv.gz"
STAT_KEYS = {"total_return", "cagr", "sharpe", "max_drawdown", "recovery_days", "win_rate_months"}
VERSUS_KEYS = {"alpha", "beta", "correlation", "information_ratio", "tracking_error"}


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """SPY and AAPL hourly from 2012-07 to 2013-07 (IEF's bundled years), sma_cross 5/20: (folder, db url)."""
    tmp = tmp_path_factory.mktemp("bench")
    run = replay_into(tmp / "out", sqlite_url(tmp / "x.db"), "-c", REPO_CONFIG, "--data", SPY, AAPL, "--strategy",
                      "sma_cross", "--param", "fast=5", "--param", "slow=20", "--start", "2012-07-01T00:00:00Z",
                      "--end", "2013-07-01T00:00:00Z")
    return run.folder, run.db


@pytest.fixture(scope="module")
def benchmarked(replayed: tuple[Path, str]) -> tuple[Path, object]:
    """``tradingd benchmark <folder>`` with the defaults: (out folder, click result)."""
    folder, db = replayed
    result = _invoke("benchmark", folder, "--db", db)
    return folder / "benchmark", result


def test_writes_the_report_json_and_csvs_into_the_runs_folder(replayed, benchmarked) -> None:
    out, result = benchmarked
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["benchmark.json", "benchmark_equity.csv", "monthly_returns.csv",
                                                     "report.html"]
    doc = json.loads((out / "benchmark.json").read_text())
    metrics = json.loads((replayed[0] / "metrics.json").read_text())
    assert doc["run_id"] == metrics["run"]["run_id"] and doc["primary"] == "SPY"
    assert STAT_KEYS <= set(doc["strategy"])
    # the strategy's figures are the replay's own
    for key in ("total_return", "cagr", "sharpe", "max_drawdown"):
        assert doc["strategy"][key] == pytest.approx(metrics["strategy"][key], rel=1e-9), key
    assert list(doc["benchmarks"]) == ["SPY", "equal_weight", "60_40", "momentum"]
    for name, entry in doc["benchmarks"].items():
        assert {"label", "rule"} | STAT_KEYS | VERSUS_KEYS <= set(entry), name
        assert entry["beta"] is not None and entry["tracking_error"] > 0
    assert doc["benchmarks"]["SPY"]["label"] == "SPY buy & hold"
    assert doc["benchmarks"]["SPY"]["total_return"] == pytest.approx(metrics["benchmark"]["total_return"], rel=1e-9)
    mix = doc["benchmarks"]["60_40"]
    assert mix["bond"] == "IEF" and mix["bond_coverage"] == 1.0  # the bundled IEF spans 2012-2013
    assert "no costs" in doc["benchmarks"]["momentum"]["rule"] and "no commission" in doc["costs"]
    # the formation period before the run's window is read from the data files: invested from the start
    assert doc["benchmarks"]["momentum"]["first_invested"].startswith("2012-07")
    rule_met = ((doc["strategy"]["sharpe"] > 0 and doc["strategy"]["sharpe"] >= doc["benchmarks"]["SPY"]["sharpe"])
                or (doc["benchmarks"]["SPY"]["alpha"] > 0
                    and doc["strategy"]["max_drawdown"] <= doc["benchmarks"]["SPY"]["max_drawdown"]))
    assert doc["favourable"] is rule_met and "Sharpe is > 0 and >=" in doc["favourable_reason"]
    assert "NaN" not in (out / "benchmark.json").read_text()

    with open(out / "benchmark_equity.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    equity = pd.read_csv(replayed[0] / "equity.csv")
    assert list(rows[0]) == ["time", "strategy", "SPY", "equal_weight", "60_40", "momentum"]
    assert [r["time"] for r in rows] == equity["time"].tolist()
    assert [float(r["strategy"]) for r in rows] == pytest.approx(equity["equity"].tolist())
    assert [float(r["SPY"]) for r in rows] == pytest.approx(equity["benchmark"].tolist())
    monthly = pd.read_csv(out / "monthly_returns.csv")
    assert monthly["month"].iloc[0] == "2012-07" and monthly["month"].iloc[-1] == "2013-06" and len(monthly) == 12
    assert (1 + monthly["strategy"]).prod() - 1 == pytest.approx(doc["strategy"]["total_return"])
    # what the user reads on the terminal
    assert "SPY buy & hold" in result.stdout and "favourable" in result.stdout and "covers 100.0%" in result.stdout


def test_a_run_id_and_a_bond_from_data_give_the_same_figures(replayed, benchmarked, tmp_path) -> None:
    folder, db = replayed
    run_id = json.loads((folder / "metrics.json").read_text())["run"]["run_id"]
    result = _invoke("benchmark", run_id, "--db", db, "--data", IEF, "--bond", "ief", "--out", tmp_path / "b",
                     "--no-progress")
    assert result.exit_code == 0, result.output
    ours = json.loads((tmp_path / "b" / "benchmark.json").read_text())
    default = json.loads((benchmarked[0] / "benchmark.json").read_text())
    assert ours["benchmarks"]["60_40"]["total_return"] == default["benchmarks"]["60_40"]["total_return"]
    assert ours["strategy"] == default["strategy"]
    # a benchmark symbol that is not in the run's data, from --data
    result = _invoke("benchmark", folder, "--benchmark", "IEF", "--data", IEF, "--momentum-top", "1",
                     "--out", tmp_path / "c", "--no-progress")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "c" / "benchmark.json").read_text())
    assert doc["primary"] == "IEF" and doc["benchmarks"]["IEF"]["label"] == "IEF buy & hold"
    assert doc["benchmarks"]["momentum"]["top"] == 1
    assert all(len(h["symbols"]) == 1 for h in doc["benchmarks"]["momentum"]["holdings"])


def test_data_files_of_the_runs_symbols_stand_in_when_its_files_have_moved(replayed, benchmarked, tmp_path) -> None:
    import shutil

    moved = tmp_path / "run"
    shutil.copytree(replayed[0], moved, ignore=shutil.ignore_patterns("benchmark"))
    metrics = json.loads((moved / "metrics.json").read_text())
    metrics["run"]["data_files"] = [str(tmp_path / "gone" / p.name) for p in (SPY, AAPL)]
    (moved / "metrics.json").write_text(json.dumps(metrics))
    result = _invoke("benchmark", moved, "--no-progress")
    assert result.exit_code == 2 and "no longer exist; pass the data with --data" in result.stderr
    result = _invoke("benchmark", moved, "--data", SPY, "--data", AAPL, "--no-progress")
    assert result.exit_code == 0, result.output
    ours = json.loads((moved / "benchmark" / "benchmark.json").read_text())
    default = json.loads((benchmarked[0] / "benchmark.json").read_text())
    assert ours["benchmarks"] == default["benchmarks"]


def test_a_primary_benchmark_without_data_in_the_period_is_refused_and_a_partial_one_is_stated(
        replayed, tmp_path) -> None:
    folder, db = replayed  # the run: 2012-07 .. 2013-07
    header, _ = spy_rows()
    lines = gzip.open(SPY, "rt").read().splitlines()[1:]
    for name, years in (("OLD", ("2011-",)), ("HALF", ("2012-",))):  # SPY's bars under another name
        write_csv(tmp_path / f"{name}.csv", header, [line for line in lines if line.startswith(years)])
    result = _invoke("benchmark", folder, "--benchmark", "OLD", "--data", tmp_path / "OLD.csv", "--out",
                     tmp_path / "old", "--no-progress")
    assert result.exit_code == 2, result.output
    assert "--benchmark OLD: no data in the run's period 2012-07-02" in " ".join(result.stderr.split())
    assert not (tmp_path / "old").exists()
    result = _invoke("benchmark", folder, "--benchmark", "HALF", "--data", tmp_path / "HALF.csv", "--out",
                     tmp_path / "half", "--no-progress")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "half" / "benchmark.json").read_text())
    assert doc["primary"] == "HALF" and 0.45 < doc["primary_coverage"] < 0.55  # July to December of 12 months
    assert doc["benchmarks"]["HALF"]["coverage"] == doc["primary_coverage"]
    stated = f"HALF buy & hold has closes for only {doc['primary_coverage'] * 100:.1f}% of the run's period"
    assert stated in doc["favourable_reason"] and stated in " ".join(result.stdout.split())
    assert html.escape(stated) in (tmp_path / "half" / "report.html").read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["nope"], "no run 'nope'"),
    (["{folder}", "--benchmark", "QQQ"], "--benchmark QQQ: no such symbol in the run's data or --data (AAPL, SPY"),
    (["{folder}", "--bond", "{tmp}/TLT.csv.gz"], "--bond {tmp}/TLT.csv.gz: no such file"),
    (["{folder}", "--bond", "TLT"], "--bond TLT: no such symbol"),
    (["{folder}", "--data", "{tmp}/missing.csv"], "--data {tmp}/missing.csv: no such file"),
    (["{folder}", "--momentum-top", "3"], "--momentum-top 3: must be between 1 and the 2 symbols"),
    (["{tmp}/not-a-run"], "is not a folder"),
])
def test_bad_input_is_a_clear_error_with_exit_2(replayed, tmp_path, args, message) -> None:
    folder, db = replayed
    fill = {"folder": str(folder), "tmp": str(tmp_path)}
    result = _invoke("benchmark", *(a.format(**fill) for a in args), "--db", db, "--out", tmp_path / "o")
    assert result.exit_code == 2, result.output
    assert "error:" in result.stderr and message.format(**fill) in result.stderr
    assert not (tmp_path / "o").exists()  # nothing written


RUN_COMMANDS = ("montecarlo", "benchmark", "robustness", "sizing", "attribution", "journal", "readiness")


def test_help_of_every_run_command_lists_the_shared_options_and_imports_no_heavy_library() -> None:
    import subprocess
    import sys

    for command in RUN_COMMANDS:
        result = _invoke(command, "--help")
        assert result.exit_code == 0, result.output
        for option in ("RUN", "--out", "--db", "--config", "--progress", "--no-progress"):
            assert option in result.stdout, (command, option)
    for option in ("--benchmark", "--bond", "--data", "--momentum-top"):
        assert option in _invoke("benchmark", "--help").stdout
    # every command's help in one fresh interpreter: nothing heavy is imported for any of them
    code = ("import sys\nfrom daemon.cli import app\n"
            f"for command in {RUN_COMMANDS!r}:\n"
            "    try:\n        app([command, '--help'], prog_name='tradingd')\n"
            "    except SystemExit as stop:\n        assert stop.code == 0, (command, stop.code)\n")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, cwd=REPO,
                          timeout=60, env={"COLUMNS": "120", "PATH": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("Usage: tradingd") == len(RUN_COMMANDS)
    imported = {line.rpartition("|")[2].strip().split(".")[0] for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "typer" in imported and not imported & {"pandas", "numpy", "plotly", "sqlalchemy", "scipy"}
