"""The process fan-out of the research replays (research.fork_pool): results in task order from
other processes, a task may use what the parent loaded without pickling it, progress as results
arrive, and a failing task or a dead worker ends the fan-out at once with a clear error instead of a
hang."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from research.fork_pool import WorkerDied, fork_map


def test_results_come_back_in_task_order_from_forked_workers():
    loaded = np.arange(1_000_000, dtype=np.int64)  # inherited by the workers, never pickled
    seen: list[int] = []

    def task(index: int) -> tuple[int, int]:
        return os.getpid(), int(loaded[index::4].sum())

    forked = fork_map(task, 4, jobs=2, done=lambda index, _: seen.append(index))
    assert [total for _, total in forked] == [int(loaded[k::4].sum()) for k in range(4)]
    assert os.getpid() not in {pid for pid, _ in forked}
    assert sorted(seen) == [0, 1, 2, 3]
    assert fork_map(task, 4, jobs=1) == [(os.getpid(), total) for _, total in forked]  # here, in order


def test_a_failing_task_or_a_dead_worker_ends_the_fan_out():
    def failing(index: int) -> int:
        if index == 0:
            time.sleep(30)  # still running when task 2 fails: ended, not waited for
        if index == 2:
            raise ValueError(f"task {index} refused its input")
        return index

    started = time.perf_counter()
    with pytest.raises(ValueError, match="task 2 refused its input"):
        fork_map(failing, 5, jobs=2)
    assert time.perf_counter() - started < 10

    def dying(index: int) -> int:
        if index == 1:
            os._exit(3)  # as the kernel's out-of-memory killer would end it
        return index

    with pytest.raises(WorkerDied, match="fewer --jobs"):
        fork_map(dying, 3, jobs=2)
    with pytest.raises(ValueError, match="jobs must be 1 or more, got 0"):
        fork_map(failing, 3, jobs=0)
