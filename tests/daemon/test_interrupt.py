"""Runs end cleanly: SIGTERM, SIGINT and SIGHUP during ``tradingd replay`` record the run as
``interrupted`` (exit 128 + signal), say what happened and leave no output file; after kill -9 the
next command that opens the store marks the orphaned run ``interrupted``.

The replays are real processes on the bundled SPY file with the (slower) ``online_ml`` strategy,
stopped as soon as their run is in the database, so each test takes a second or two.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from daemon.config import load_config
from daemon.replay_job import RunInterrupted, load_data, run_replay_job
from daemon.runs import runs_app
from state import SqlStore, StoreConfig
from tests.daemon.conftest import REPO, SLICE, SPY, sqlite_url

TRADINGD = REPO / ".venv" / "bin" / "tradingd"
_DEADLINE_S = 60.0  # only a hung child ever gets near it


def start_replay(tmp: Path, *extra: str) -> tuple[subprocess.Popen[str], Path]:
    db = tmp / "state.db"
    cmd = [str(TRADINGD), "replay", "--data", str(SPY), "--strategy", "online_ml", "--db", sqlite_url(db),
           "--out", str(tmp / "out"), *extra]
    return subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), db


def wait_until_running(proc: subprocess.Popen[str], db: Path) -> str:
    """Return the run id once the child's run row is in the database (status running)."""
    deadline = time.monotonic() + _DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"replay ended before it was signalled: {proc.communicate()}")
        try:
            with sqlite3.connect(db, timeout=1) as conn:
                rows = conn.execute("SELECT id FROM runs WHERE status = 'running'").fetchall()
            if rows:
                return str(rows[0][0])
        except sqlite3.OperationalError:  # the file or its tables are not there yet
            pass
        time.sleep(0.02)
    proc.kill()
    pytest.fail("the replay never recorded its run")


def run_row(db: Path, run_id: str) -> dict:
    with SqlStore(StoreConfig(database_url=sqlite_url(db))) as store:
        run = store.run(run_id)
        assert run is not None
        run["equity_rows"] = len(store.equity(run_id))
        return run


def leftovers(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []


@pytest.mark.parametrize(("sig", "progress"), [(signal.SIGTERM, "--no-progress"), (signal.SIGINT, "--progress"),
                                               (signal.SIGHUP, "--no-progress")])
def test_a_signal_records_the_run_interrupted_says_so_and_writes_no_output(tmp_path: Path, sig: signal.Signals,
                                                                           progress: str) -> None:
    proc, db = start_replay(tmp_path, progress)
    run_id = wait_until_running(proc, db)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=_DEADLINE_S)

    assert proc.returncode == 128 + sig, (stdout, stderr)  # 130 SIGINT, 143 SIGTERM, 129 SIGHUP
    run = run_row(db, run_id)
    assert run["status"] == "interrupted" and run["finished_ns"] is not None
    metrics = run["metrics"]
    assert metrics["partial"] is True and metrics["signal"] == sig.name
    assert 0 <= metrics["bars"] < metrics["bars_total"]
    message = (f"interrupted by {sig.name} after {metrics['bars']:,} of {metrics['bars_total']:,} bars; "
               f"partial run {run_id} kept as interrupted")
    assert message in " ".join(stderr.split()), stderr
    assert "tradingd runs prune --status interrupted" in stderr
    assert run["note"].startswith(f"interrupted by {sig.name} after {metrics['bars']:,} of")
    assert "Traceback" not in stderr
    assert leftovers(tmp_path / "out") == []  # nothing written, nothing half-written
    if metrics["bars"] >= 2048:  # the partial rows are kept, labelled by the run's status
        assert run["equity_rows"] > 0


def test_after_kill_9_the_next_command_marks_the_orphaned_run_interrupted(tmp_path: Path) -> None:
    proc, db = start_replay(tmp_path, "--no-progress")
    run_id = wait_until_running(proc, db)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=_DEADLINE_S)
    assert proc.returncode == -signal.SIGKILL
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone() == ("running",)

    result: Result = CliRunner().invoke(runs_app, ["list", "--db", sqlite_url(db)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert f"marked run {run_id} interrupted" in " ".join(result.stderr.split())
    run = run_row(db, run_id)
    assert run["status"] == "interrupted"
    assert f"process {proc.pid} on" in run["note"] and "killed or crashed" in run["note"]
    assert re.search(rf"{run_id}\s+replay\s+online_ml\s+interrupted", result.stdout)


# --- in-process: the output phase ------------------------------------------------------------------


@pytest.fixture
def small_job(tmp_path: Path) -> Callable[..., object]:
    """``small_job(out, **kw)`` runs the replay job on SPY 2019 (no report) into ``out``."""
    config = load_config(None, {"data.paths": [str(SPY)], "data.start": SLICE[1], "data.end": SLICE[3],
                                "state.database_url": sqlite_url(tmp_path / "state.db"), "output.report": False})
    series = load_data(config)
    return lambda out, **kw: run_replay_job(config, series, out, **kw)


def test_a_signal_while_writing_outputs_leaves_the_earlier_outputs_as_they_were(
        small_job, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import daemon.replay_job as job

    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text('{"run": "earlier"}')
    real = job.write_outputs

    def write_then_signal(*args, **kwargs):  # the files are half done when SIGTERM arrives
        summary = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        pytest.fail("SIGTERM did not stop the output phase")
        return summary

    def outside_the_job(signum, frame):  # had the job not handled it, the test would end here
        pytest.fail("the job did not handle SIGTERM")

    monkeypatch.setattr(job, "write_outputs", write_then_signal)
    previous = signal.signal(signal.SIGTERM, outside_the_job)
    told: list[RunInterrupted] = []
    try:
        with pytest.raises(RunInterrupted) as info:
            small_job(out, on_interrupted=told.append)
        assert signal.getsignal(signal.SIGTERM) is outside_the_job  # the job's handler is gone again
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert info.value.code == 143 and told == [info.value]
    assert "before the run was complete" in info.value.message
    assert leftovers(out) == ["metrics.json"] and json.loads((out / "metrics.json").read_text()) == {"run": "earlier"}
    with SqlStore(StoreConfig(database_url=sqlite_url(tmp_path / "state.db"))) as store:
        run = store.run(info.value.run_id)
    assert run is not None and run["status"] == "interrupted" and run["metrics"]["bars"] == info.value.bars_total


def test_a_finished_run_replaces_the_outputs_and_clears_what_killed_runs_left(small_job, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / ".partial-999999999").mkdir(parents=True)  # staging folder of a killed run (no such pid)
    (out / ".partial-999999999" / "metrics.json").write_text("{}")
    for name in (".metrics.json.tmp", "report.html.tmp", "report.html"):  # older leftovers, stale report
        (out / name).write_text("x")
    outcome = small_job(out)
    files = leftovers(out)
    assert "metrics.json" in files and "equity.csv" in files
    assert not [f for f in files if f.startswith(".") or "tmp" in f or f == "report.html"], files
    assert json.loads((out / "metrics.json").read_text())["run"]["run_id"] == outcome.run_id
    assert outcome.summary.out_dir == out
