"""Parameter studies on a real local Dask cluster: a scheduler and two workers started as separate
processes (``python -m dask scheduler`` / ``dask worker``) on 127.0.0.1, the study in PostgreSQL.

A grid on Dask gives the trials of a local one-process run, the bars reach each worker once,
pruning round-trips to the study, ``tradingd optimize --dask`` works and refuses SQLite, and bad
addresses, unreachable schedulers and workers on other code are refused clearly. Real replays of
SPY hourly bars of 2019 (~1,750 bars); few trials each.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
import pytest
from distributed import Client
from typer.testing import CliRunner

import research.distributed
from backtest.spec import RunSpec
from daemon.cli import app as tradingd
from research.distributed import DaskExecutor, bars_received, data_fingerprint, parse_dask_address
from research.optimize import (OptimizeError, StudyData, StudyProgress, TrialFilters, TrialRecord, TrialTask, open_study_storage,
                               require_shared_storage, run_study)
from research.optimize_executors import _Inline
from research.search_space import parse_space
from state import SqlStore, StoreConfig

ROOT = Path(__file__).resolve().parents[2]
SPY = ROOT / "data" / "us_equity_1hour_adjusted" / "SPY.csv.gz"
SLICE = ("--start", "2019-01-01T00:00:00Z", "--end", "2020-01-01T00:00:00Z")
BASE = RunSpec(strategy="sma_cross")
FEW = TrialFilters(min_trades=3)
GRID = parse_space({"params": {"fast": {"type": "int", "low": 5, "high": 15, "step": 5},
                               "slow": {"type": "int", "low": 20, "high": 40, "step": 20}}}, strategy="sma_cross")
WIDE = parse_space({"params": {"fast": {"type": "int", "low": 2, "high": 40},
                               "slow": {"type": "int", "low": 10, "high": 120}},
                    "constraints": ["fast < slow"]}, strategy="sma_cross")
SPACE_TOML = """
strategy = "sma_cross"
[params.fast]
type = "int"
low = 5
high = 10
step = 5
[params.slow]
type = "int"
low = 20
high = 40
step = 20
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Address of a Dask scheduler with two one-thread workers, each its own process on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("dask")
    info = folder / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    dask = [sys.executable, "-m", "dask"]
    processes: list[subprocess.Popen[bytes]] = []
    logs = []

    def start(name: str, *args: str) -> None:
        log = (folder / f"{name}.log").open("wb")
        logs.append(log)
        processes.append(subprocess.Popen([*dask, *args], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT))

    try:
        # --port 0: the scheduler binds a free port and writes its address to the scheduler file;
        # idle and death timeouts end the processes should this test process die without teardown
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(info), "--idle-timeout", "300")
        deadline = time.monotonic() + 30
        while not (info.exists() and info.stat().st_size):
            if processes[0].poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Dask scheduler did not start:\n{(folder / 'scheduler.log').read_text()}")
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        for i in (1, 2):
            start(f"worker{i}", "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host",
                  "127.0.0.1", "--name", f"worker-{i}", "--death-timeout", "60", "--local-directory", str(folder))
        with Client(address, timeout=10) as client:
            try:
                client.wait_for_workers(2, timeout=30)
            except TimeoutError:
                pytest.fail("two Dask workers did not join: " + "\n".join(
                    (folder / f"worker{i}.log").read_text() for i in (1, 2)))
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)
        for log in logs:
            log.close()


@pytest.fixture(scope="module")
def data() -> StudyData:
    return StudyData.load([SPY], start=datetime(2019, 1, 1, tzinfo=timezone.utc),
                          end=datetime(2020, 1, 1, tzinfo=timezone.utc))


@pytest.fixture
def postgres(postgres_url: str) -> str:
    """A fresh PostgreSQL schema of this test with the state tables, as the CLI prepares it."""
    SqlStore(StoreConfig(database_url=postgres_url)).close()
    return postgres_url


def outcome(records: list[TrialRecord]) -> list[tuple[Any, ...]]:
    return [(t.number, t.status, t.reason, sorted(t.params.items()), t.metrics, t.values) for t in records]


def received(address: str) -> dict[str, dict[str, int]]:
    with Client(address, timeout=10) as client:
        return client.run(bars_received)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- studies on the cluster --------------------------------------------------------------------------

def test_a_grid_study_on_dask_gives_the_trials_of_a_local_one_process_run(cluster, data, postgres):
    before = received(cluster)
    remote = run_study(BASE, GRID, data, storage=postgres, study_name=unique("dask"), method="grid", filters=FEW,
                       use_cache=False, dask_address=cluster)
    local = run_study(BASE, GRID, data, storage=postgres, study_name=unique("local"), method="grid", filters=FEW,
                      use_cache=False, jobs=1)
    assert remote.replays == 6 and not any(t.cached for t in remote.trials)
    assert {t.status for t in remote.trials} <= {"complete", "filtered"} and remote.ranked
    assert outcome(remote.trials) == outcome(local.trials)
    assert [t.number for t in remote.ranked] == [t.number for t in local.ranked]
    # each trial's daily returns came back from the worker with it, as the local replay computed them
    assert all(t.returns is not None for t in remote.trials)
    assert [t.returns for t in remote.trials] == [t.returns for t in local.trials]
    # six trials, yet each worker got the bars once
    fingerprint = data_fingerprint(data)
    after = received(cluster)
    assert len(after) == 2
    assert all(after[w].get(fingerprint, 0) - before.get(w, {}).get(fingerprint, 0) == 1 for w in after)
    # the study lives in PostgreSQL, with every trial's result
    stored = optuna.load_study(study_name=remote.study_name, storage=open_study_storage(postgres))
    assert len(stored.trials) == 6 and all(t.user_attrs["tradingd"]["metrics"] for t in stored.trials)


def test_pruning_on_dask_asks_the_study_at_half_the_period_and_stops_poor_trials(cluster, data, postgres):
    result = run_study(BASE, WIDE, data, storage=postgres, study_name=unique("prune"), method="random", n_trials=12,
                       seed=1, filters=FEW, use_cache=False, dask_address=cluster)
    pruned = [t for t in result.trials if t.status == "pruned"]
    kept = [t for t in result.trials if t.status in ("complete", "filtered")]
    assert result.pruning and pruned and kept
    assert len([t for t in result.trials if t.status in ("complete", "filtered", "pruned", "failed")]) == 12
    for t in pruned:
        assert t.metrics is None and t.intermediate is not None and "50% of the period" in t.reason
    assert all(t.intermediate is not None for t in kept)


def test_an_interrupted_study_on_dask_records_its_running_trials_and_a_rerun_finishes_it(cluster, data, postgres):
    name = unique("stop")

    def stop_after_two(progress: StudyProgress) -> None:
        if progress.done == 2:
            raise KeyboardInterrupt  # as Ctrl-C would, while other trials run on the workers

    first = run_study(BASE, GRID, data, storage=postgres, study_name=name, method="grid", filters=FEW,
                      use_cache=False, dask_address=cluster, progress=stop_after_two)
    assert first.interrupted and first.counts().get("interrupted", 0) >= 1
    again = run_study(BASE, GRID, data, storage=postgres, study_name=name, method="grid", filters=FEW,
                      use_cache=False, dask_address=cluster)
    assert not again.interrupted and again.new_trials == 6 - 2
    done = sorted(sorted(t.params.items()) for t in again.trials if t.status in ("complete", "filtered"))
    assert len(done) == 6 and done == sorted(sorted(p.items()) for p in GRID.grid())


def test_tradingd_optimize_dask_runs_the_study_and_writes_the_trials_of_a_local_run(cluster, postgres, tmp_path):
    space = tmp_path / "space.toml"
    space.write_text(SPACE_TOML)
    runner = CliRunner()

    def optimize(out: str, *extra: str) -> Any:
        return runner.invoke(tradingd, ["optimize", "--data", str(SPY), *SLICE, "--space", str(space), "--method",
                                        "grid", "--min-trades", "3", "--no-progress", "--no-cache", "--db", postgres,
                                        "--out", str(tmp_path / out), *extra],
                             prog_name="tradingd", env={"COLUMNS": "200"})

    remote = optimize("dask", "--dask", cluster, "--study-name", unique("cli-dask"))
    assert remote.exit_code == 0, remote.output
    local = optimize("local", "--study-name", unique("cli-local"))
    assert local.exit_code == 0, local.output

    def rows(out: str) -> list[dict[str, str]]:
        with open(tmp_path / out / "trials.csv", newline="") as f:
            return [{k: v for k, v in row.items() if k not in ("replay_s", "started", "duration_s")}
                    for row in csv.DictReader(f)]

    assert rows("dask") == rows("local") and len(rows("dask")) == 4
    assert (tmp_path / "dask" / "best.toml").read_text().split("\n", 2)[2] == \
        (tmp_path / "local" / "best.toml").read_text().split("\n", 2)[2]  # same config below the header


# --- refusals ----------------------------------------------------------------------------------------

def test_tradingd_optimize_dask_refuses_a_sqlite_study_before_loading_anything(tmp_path, cluster):
    result = CliRunner().invoke(tradingd, ["optimize", "--data", str(SPY), *SLICE, "--method", "grid", "--dask",
                                           cluster, "--db", f"sqlite:///{tmp_path / 'state.db'}", "--out",
                                           str(tmp_path / "out")], prog_name="tradingd", env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "--dask needs the study in PostgreSQL" in result.output and "sqlite:///" in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "state.db").exists()


@pytest.mark.parametrize("text", ["127.0.0.1:8786", "tcp://127.0.0.1", "http://host:8786", "tcp://host:99999", ""])
def test_a_malformed_scheduler_address_is_refused(text):
    with pytest.raises(OptimizeError, match="expected the scheduler's address as tcp://host:port"):
        parse_dask_address(text)


def test_a_study_on_dask_needs_postgresql_and_an_address(data, tmp_path):
    for storage in (f"sqlite:///{tmp_path / 'x.db'}", open_study_storage(f"sqlite:///{tmp_path / 'y.db'}"),
                    optuna.storages.InMemoryStorage()):
        with pytest.raises(OptimizeError, match="needs the study in PostgreSQL"):
            run_study(BASE, GRID, data, storage=storage, method="grid", dask_address="tcp://127.0.0.1:8786")
    require_shared_storage("postgresql+psycopg://u:secret@127.0.0.1:1/x")
    with pytest.raises(OptimizeError, match=r"u:\*\*\*@") as caught:
        require_shared_storage("mysql://u:secret@db/x")
    assert "secret" not in str(caught.value)
    with pytest.raises(OptimizeError, match="needs the scheduler's address"):
        run_study(BASE, GRID, data, storage="postgresql://u@h/x", method="grid", executor="dask")
    with pytest.raises(OptimizeError, match="with executor 'local'"):
        run_study(BASE, GRID, data, storage="postgresql://u@h/x", method="grid", executor="local",
                  dask_address="tcp://127.0.0.1:8786")
    with pytest.raises(OptimizeError, match="unknown executor 'ray'"):
        run_study(BASE, GRID, data, storage=optuna.storages.InMemoryStorage(), method="grid", executor="ray")


def test_an_unreachable_scheduler_is_reported_with_its_address(data):
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(OptimizeError, match=f"cannot reach the Dask scheduler at {address}"):
        DaskExecutor(address, data, connect_timeout_s=1)


def test_workers_running_other_code_than_the_study_are_refused(cluster, data, monkeypatch):
    monkeypatch.setattr(research.distributed, "code_fingerprint", lambda: "0" * 64)
    with pytest.raises(OptimizeError, match="run other tradingd code or library versions"):
        DaskExecutor(cluster, data)


def test_a_worker_on_other_code_fails_its_trial_instead_of_replaying_it(cluster, data):
    executor = DaskExecutor(cluster, data)
    try:
        executor._code = "1" * 64  # as a task from a study on another checkout would arrive
        executor.submit(TrialTask(0, BASE.model_copy(update={"params": {"fast": 5, "slow": 20}}), None, None))
        number, result = executor.next(lambda number, metrics: False)
    finally:
        executor.close()
    assert number == 0 and result.metrics is None
    assert result.error is not None and "runs other tradingd code" in result.error


# --- the executor is pluggable ---------------------------------------------------------------------

def test_a_custom_executor_factory_runs_the_trials(data):
    made = []

    class Counting(_Inline):
        submitted = 0

        def submit(self, task: TrialTask) -> None:
            Counting.submitted += 1
            super().submit(task)

    def factory(bars: StudyData, jobs: int) -> Counting:
        made.append(jobs)
        return Counting(bars)

    result = run_study(BASE, GRID, data, storage=optuna.storages.InMemoryStorage(), method="grid", filters=FEW,
                       executor=factory, jobs=3)
    assert made == [3] and Counting.submitted == 6 and result.replays == 6
