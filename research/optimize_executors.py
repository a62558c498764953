"""Where the replays of a study run: the :class:`TrialExecutor` protocol and the local executors,
in the study's process (``jobs == 1``) or in forked worker processes that inherit the loaded bars
(``jobs > 1``). :class:`research.distributed.DaskExecutor` is the third, on a Dask cluster.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from research.optimize_data import StudyData
from research.optimize_objectives import OptimizeError
from research.optimize_trial import TrialOutcome, TrialTask, evaluate_trial

__all__ = ["ExecutorFactory", "Intermediate", "TrialExecutor", "local_executor"]

Intermediate = Callable[[int, dict[str, Any]], bool]
"""Called by an executor at a trial's pruning step with (trial number, metrics so far); True = prune."""


class TrialExecutor(Protocol):
    """Where the replays of a study run. The study loop (the one Optuna writer) asks trials,
    :meth:`submit` s them while :meth:`idle` > 0 and takes results from :meth:`next`.

    Implementations: in this process (``jobs == 1``), forked worker processes (``jobs > 1``), and
    :class:`research.distributed.DaskExecutor` (a Dask cluster). A factory
    ``(data, jobs) -> TrialExecutor`` passed as ``run_study(executor=...)`` plugs in another.
    """

    @property
    def slots(self) -> int:
        """Trials it runs at a time now (may change while a study runs, e.g. workers joining)."""
        ...

    def idle(self) -> int:
        """Trials it can take now without queueing."""
        ...

    def submit(self, task: TrialTask) -> None:
        """Start ``task`` (only while :meth:`idle` > 0)."""
        ...

    def next(self, on_intermediate: Intermediate) -> tuple[int, TrialOutcome]:
        """Block until a submitted trial ends; return its number and outcome. Pruning questions
        arriving meanwhile go to ``on_intermediate`` and its answer back to the trial."""
        ...

    def close(self) -> None:
        """Let go of its workers (after the last trial, or after :meth:`terminate`); idempotent."""
        ...

    def terminate(self) -> None:
        """Stop the trials running now (interrupt or error); :meth:`close` follows."""
        ...


ExecutorFactory = Callable[[StudyData, int], TrialExecutor]
"""Builds an executor from the study's bars and ``jobs``; ``run_study`` closes what it builds."""


class _Inline:
    """Runs each trial in this process (``jobs == 1``)."""

    def __init__(self, data: StudyData) -> None:
        self.data = data
        self.pending: list[TrialTask] = []

    @property
    def slots(self) -> int:
        return 1

    def idle(self) -> int:
        return self.slots - len(self.pending)

    def submit(self, task: TrialTask) -> None:
        self.pending.append(task)

    def next(self, on_intermediate: Intermediate) -> tuple[int, TrialOutcome]:
        task = self.pending[0]
        outcome = evaluate_trial(self.data, task, lambda metrics: on_intermediate(task.number, metrics))
        self.pending.pop(0)
        return task.number, outcome

    def close(self) -> None:
        pass

    terminate = close


def _worker_main(conn: multiprocessing.connection.Connection, data: StudyData) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it stops us)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # not the parent's handlers: terminate() must just end us
        signal.signal(sig, signal.SIG_DFL)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if task is None:
            return

        def decide(metrics: dict[str, Any]) -> bool:
            conn.send(("intermediate", metrics))
            return bool(conn.recv())

        conn.send(("done", evaluate_trial(data, task, decide)))


@dataclass
class _Worker:
    process: Any
    conn: multiprocessing.connection.Connection
    task: TrialTask | None = None


class _ForkPool:
    """Worker processes forked with the loaded bars (copy-on-write: the arrays are never copied
    or re-parsed); one trial per worker at a time, over a pipe."""

    def __init__(self, data: StudyData, jobs: int) -> None:
        if "fork" not in multiprocessing.get_all_start_methods():
            raise OptimizeError("--jobs > 1 needs the fork start method (Linux); use --jobs 1 here")
        context = multiprocessing.get_context("fork")
        self.workers: list[_Worker] = []
        for index in range(jobs):
            parent, child = context.Pipe()
            process = context.Process(target=_worker_main, args=(child, data), daemon=True,
                                      name=f"tradingd-optimize-{index}")
            process.start()
            child.close()
            self.workers.append(_Worker(process, parent))

    @property
    def slots(self) -> int:
        return len(self.workers)

    def idle(self) -> int:
        return sum(1 for w in self.workers if w.task is None)

    def submit(self, task: TrialTask) -> None:
        worker = next(w for w in self.workers if w.task is None)
        worker.task = task
        worker.conn.send(task)

    def next(self, on_intermediate: Intermediate) -> tuple[int, TrialOutcome]:
        while True:
            busy = [w for w in self.workers if w.task is not None]
            ready = multiprocessing.connection.wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                assert worker.task is not None
                if worker.conn in ready:
                    try:
                        kind, payload = worker.conn.recv()
                    except (EOFError, OSError):
                        return self._lost(worker)
                    if kind == "intermediate":
                        worker.conn.send(on_intermediate(worker.task.number, payload))
                        continue
                    number, worker.task = worker.task.number, None
                    return number, payload
                if worker.process.sentinel in ready:
                    return self._lost(worker)

    def _lost(self, worker: _Worker) -> tuple[int, TrialOutcome]:
        assert worker.task is not None
        number, worker.task = worker.task.number, None
        worker.process.join(1)
        self.workers.remove(worker)
        if not self.workers:
            raise OptimizeError(f"every worker process exited (the last with code {worker.process.exitcode})")
        return number, TrialOutcome(error=f"the worker process exited with code {worker.process.exitcode}")

    def close(self) -> None:
        for worker in self.workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        for worker in self.workers:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(5)

    def terminate(self) -> None:
        for worker in self.workers:
            worker.process.terminate()
        for worker in self.workers:
            worker.process.join(5)


def local_executor(data: StudyData, jobs: int) -> TrialExecutor:
    return _ForkPool(data, jobs) if jobs > 1 else _Inline(data)
