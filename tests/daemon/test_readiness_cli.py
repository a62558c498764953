"""``tradingd readiness`` as a user runs it: a real short replay and a real paper session (the live node
on the paced file feed) in one SQLite state database give the checklist, readiness.json and the report;
exit 1 for no-go, 0 for go (hand-written evidence for the lines other commands measure), 2 for bad
input."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from backtest.data import load_data
from daemon.config import load_config
from daemon.live.app import open_session
from daemon.live.config import LiveConfig
from tests.daemon.conftest import AAPL, REPO_CONFIG, SPY, replay_into, sqlite_url
from tests.daemon.conftest import invoke as _invoke
from tests.research.test_readiness import TRIPS  # one trip of each circuit breaker


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A replay of SPY + AAPL (2019 H1, the repository's config) and a paper session of the same
    configuration on the next quarter, both in one state database."""
    root = tmp_path_factory.mktemp("readiness")
    url = sqlite_url(root / "state.db")
    run = replay_into(root / "run", url, "--config", REPO_CONFIG, "--data", SPY, "--data", AAPL, "--start",
                      "2019-01-01T00:00:00Z", "--end", "2019-07-01T00:00:00Z", "--no-report")
    cfg = load_config(REPO_CONFIG, {"state.database_url": url})
    series = load_data([SPY, AAPL], start=datetime(2019, 7, 1, tzinfo=timezone.utc),
                       end=datetime(2019, 10, 1, tzinfo=timezone.utc))
    session = open_session(cfg, LiveConfig(account="paper-test", speed=0, tick=0.01), series=series)
    try:
        asyncio.run(session.node.run(stop_when_feeds_end=True, install_signals=False))
    finally:
        session.close()
    return root, url, run.run_id


def test_a_real_replay_and_paper_session_give_the_checklist_and_no_go(world):
    root, url, run_id = world
    result = _invoke("readiness", root / "run", "--db", url, "--no-progress")
    assert result.exit_code == 1, result.output
    assert "Production readiness: sma_cross" in result.stdout and "NO-GO" in result.stdout
    doc = json.loads((root / "run" / "readiness" / "readiness.json").read_text())
    assert doc["run_id"] == run_id and doc["decision"] == "no-go" and len(doc["checks"]) == 9
    checks = {c["id"]: c for c in doc["checks"]}
    assert checks["sharpe"]["status"] in ("pass", "fail") and checks["sharpe"]["value"] is not None
    for key in ("walkforward_oos", "overfitting", "robustness", "benchmark", "montecarlo"):
        assert checks[key]["status"] == "not yet measured", key
        assert f"{key.split('_')[0]}" in checks[key]["detail"] or "walkforward" in checks[key]["detail"]
    # the paper session is found in the database: its days, and the same settings on its bars agree
    assert checks["paper_days"]["value"] > 50 and checks["paper_days"]["status"] == "pass"
    assert checks["paper_agreement"]["status"] == "pass" and checks["paper_agreement"]["value"] < 1e-9
    assert "paper-test" in checks["paper_agreement"]["detail"] and url in checks["paper_agreement"]["source"]
    assert len(doc["reasons"]) == sum(c["status"] != "pass" for c in doc["checks"])
    assert (root / "run" / "readiness" / "report.html").stat().st_size > 2000
    # the same run named by its id (prefix) in the database
    by_id = _invoke("readiness", run_id[:24], "--db", url, "--no-progress", "--out", root / "by-id")
    assert by_id.exit_code == 1, by_id.output
    again = json.loads((root / "by-id" / "readiness.json").read_text())["checks"]
    assert [(c["status"], c["value"], c["source"]) for c in again] == [
        (c["status"], c["value"], c["source"]) for c in doc["checks"]]
    assert f"tradingd robustness {run_id[:24]}" in again[3]["detail"]  # the commands name the run as given


def test_go_exits_0_when_every_line_passes(world, tmp_path):
    root, url, _ = world
    run = tmp_path / "run"
    shutil.copytree(root / "run", run, ignore=shutil.ignore_patterns("readiness"))
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["strategy"]["sharpe"], metrics["state_changes"] = 1.6, TRIPS  # hand-written evidence
    (run / "metrics.json").write_text(json.dumps(metrics))
    for command, doc in (("robustness", {"score": 0.9, "passed": True, "weakest": "none"}),
                         ("benchmark", {"favourable": True, "favourable_reason": "beats SPY"}),
                         ("montecarlo", {"acceptable": True, "acceptable_reason": "ok", "risk_of_ruin": 0.0})):
        (run / command).mkdir()
        (run / command / f"{command}.json").write_text(json.dumps(doc))
    wf = tmp_path / "wf"
    wf.mkdir()
    (wf / "walkforward.json").write_text(json.dumps({
        "strategy": "sma_cross", "oos_metrics": {"total_return": 0.3}, "statistics": {"verdict": {"score": 20.0}}}))
    result = _invoke("readiness", run, "--walkforward", wf, "--db", url, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "GO: all 9 lines pass" in result.stdout
    assert json.loads((run / "readiness" / "readiness.json").read_text())["decision"] == "go"
    # a study folder as RUN: only its lines are measured, written next to it
    alone = _invoke("readiness", wf, "--db", url, "--no-progress")
    assert alone.exit_code == 1, alone.output
    doc = json.loads((wf / "readiness" / "readiness.json").read_text())
    assert doc["run_id"] is None and {c["id"]: c["status"] for c in doc["checks"]}["walkforward_oos"] == "pass"


def test_a_run_read_from_database_rows_only_gives_the_folders_figures(tmp_path):
    """The run's folder deleted: readiness and benchmark read its rows from the state database,
    with the figures the folder gave and the breaker trips dated."""
    import re

    config = tmp_path / "tight.toml"  # the repository's config with a breaker that trips in 2019 H1
    config.write_text(re.sub(r"(?m)^max_consecutive_losses = \d+", "max_consecutive_losses = 2",
                             REPO_CONFIG.read_text()))
    url = sqlite_url(tmp_path / "state.db")
    run = replay_into(tmp_path / "run", url, "--config", config, "--data", SPY, "--data", AAPL, "--param", "fast=5",
                      "--param", "slow=20", "--start", "2019-01-01T00:00:00Z", "--end", "2019-07-01T00:00:00Z",
                      "--no-report")
    first_trip = next(c["time"] for c in json.loads((run.folder / "metrics.json").read_text())["state_changes"]
                      if "max_consecutive_losses" in c["reason"])
    assert _invoke("benchmark", run.folder, "--no-progress").exit_code == 0
    from_folder = json.loads((run.folder / "benchmark" / "benchmark.json").read_text())
    shutil.rmtree(run.folder)

    result = _invoke("benchmark", run.run_id, "--db", url, "--no-progress", "--out", tmp_path / "bench")
    assert result.exit_code == 0, result.output
    from_rows = json.loads((tmp_path / "bench" / "benchmark.json").read_text())
    assert from_rows["start"] == from_folder["start"]  # the curve starts at the first bar, at the starting cash
    for key in ("total_return", "cagr", "sharpe"):
        assert from_rows["strategy"][key] == pytest.approx(from_folder["strategy"][key], rel=1e-9), key
        assert from_rows["benchmarks"]["SPY"][key] == pytest.approx(from_folder["benchmarks"]["SPY"][key],
                                                                    rel=1e-9), key

    result = _invoke("readiness", run.run_id, "--db", url, "--no-progress", "--out", tmp_path / "ready")
    assert result.exit_code == 1, result.output
    checks = {c["id"]: c for c in json.loads((tmp_path / "ready" / "readiness.json").read_text())["checks"]}
    assert checks["sharpe"]["source"] == f"state database, run {run.run_id}"
    assert checks["sharpe"]["value"] == pytest.approx(from_folder["strategy"]["sharpe"], rel=1e-9)
    breakers = checks["breakers"]
    assert breakers["source"] == f"state database, run {run.run_id}" and breakers["value"] == 1
    assert f"max_consecutive_losses first tripped in replay {first_trip[:16]}" in breakers["detail"]
    assert f"tripped in replay {first_trip[:16]}" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["no-such-run"], "no run 'no-such-run'"),
    (["runs/not/there"], "is not a folder"),
    (["{run}", "--walkforward", "{root}"], "no walkforward.json"),
    (["{run}", "--study", "{root}/nowhere"], "--study"),
    (["{run}", "--min-paper-days", "0"], "--min-paper-days 0"),
])
def test_bad_input_exits_2_and_says_what_is_wrong(world, args, message):
    root, url, _ = world
    result = _invoke("readiness", *[a.format(run=root / "run", root=root) for a in args], "--db", url, "--no-progress")
    assert result.exit_code == 2, result.output
    assert "error:" in result.stderr and message in result.stderr


def test_an_explicit_database_that_does_not_exist_is_bad_input(world, tmp_path):
    root, _, _ = world
    result = _invoke("readiness", root / "run", "--db", sqlite_url(tmp_path / "missing.db"), "--no-progress",
                     "--out", tmp_path / "out")
    assert result.exit_code == 2 and "no such database file" in result.stderr
    assert not (tmp_path / "missing.db").exists()
