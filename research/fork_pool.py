"""The process fan-out of the research replays (robustness variants, sizing levels, Monte Carlo
cost replays): tasks ``0 .. n - 1`` run ``jobs`` at a time in worker processes forked from this one.

The task is a plain callable of the task number, set before the workers fork and inherited by
them, never pickled: it may close over the loaded bars, which the workers share copy-on-write
instead of re-reading them. Only the task number goes to a worker and only its (picklable) result
comes back. Workers ignore Ctrl-C (SIGINT): the parent handles it (or SIGTERM, or a task that
failed), cancels what has not started and ends the workers. The optimizer has its own executors
(:mod:`research.optimize_executors`): a study streams trials, this runs a fixed list.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

__all__ = ["WorkerDied", "fork_map"]

T = TypeVar("T")

_TASK: Callable[[int], Any] | None = None  # what the forked workers inherit


class WorkerDied(RuntimeError):
    """A worker process died before returning its result (out of memory, or killed)."""


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(index: int) -> Any:
    assert _TASK is not None, "fork_map sets the task before the workers fork"
    return _TASK(index)


def fork_map(task: Callable[[int], T], count: int, *, jobs: int = 1,
             done: Callable[[int, T], None] | None = None) -> list[T]:
    """Return ``[task(0), ..., task(count - 1)]``, computed ``jobs`` at a time.

    Parameters
    ----------
    task : callable
        ``task(index)``; with ``jobs > 1`` it runs in a forked worker (see the module docstring)
        and its result must pickle.
    count : int
        Number of tasks.
    jobs : int, default 1
        Tasks at a time. 1 (or a single task) runs them here, in order, with no process.
    done : callable, optional
        ``done(index, result)``, called here as each result arrives (completion order). An
        exception it raises, or one a task raises, cancels the tasks not started and propagates.

    Returns
    -------
    list
        The results in task order.

    Raises
    ------
    ValueError
        If ``jobs < 1``, or ``jobs > 1`` where processes cannot be forked (not Linux).
    WorkerDied
        If a worker process died.

    Examples
    --------
    >>> fork_map(lambda i: i * i, 4, jobs=2)
    [0, 1, 4, 9]
    """
    global _TASK
    if jobs < 1:
        raise ValueError(f"jobs must be 1 or more, got {jobs}")
    results: dict[int, T] = {}

    def collect(index: int, result: T) -> None:
        results[index] = result
        if done is not None:
            done(index, result)

    if jobs == 1 or count <= 1:
        for index in range(count):
            collect(index, task(index))
        return [results[index] for index in range(count)]
    if "fork" not in multiprocessing.get_all_start_methods():
        raise ValueError("--jobs > 1 needs the fork start method (Linux); use --jobs 1 here")
    _TASK = task
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, count), mp_context=multiprocessing.get_context("fork"),
                                 initializer=_ignore_sigint) as pool:
            pending: dict[Future[Any], int] = {pool.submit(_run, index): index for index in range(count)}
            try:
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        index = pending.pop(future)
                        collect(index, future.result())
            except BrokenProcessPool:
                raise WorkerDied("a worker process died (out of memory, or killed); run again with fewer --jobs") \
                    from None
            except BaseException:  # Ctrl-C, SIGTERM, a failed task: stop now, not after the running replays
                # no public way to end running tasks before Python 3.14 (terminate_workers); shutdown
                # forgets the processes, so they are taken first
                workers = list((getattr(pool, "_processes", None) or {}).values())
                pool.shutdown(wait=False, cancel_futures=True)
                for process in workers:
                    process.terminate()
                raise
    finally:
        _TASK = None
    return [results[index] for index in range(count)]
