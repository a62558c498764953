"""The scheduler's jobs firing for real (short intervals) into an asyncio queue inside
``asyncio.run``, and the end-of-day trigger on the real XNYS calendar (holidays, early closes, DST)."""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from core.time import NANOS_PER_SECOND, iso, to_nanos
from daemon.scheduler import (DaemonScheduler, EndOfDay, EquitySnapshot, HealthTick, SchedulerConfig, SessionCalendar,
                              SessionCloseTrigger)

FAST = SchedulerConfig(health_interval_s=0.05, equity_snapshot_interval_s=0)
XNYS = SessionCalendar("XNYS")


def ns(text: str) -> int:
    return to_nanos(datetime.fromisoformat(text.replace("Z", "+00:00")))


async def collect(queue: asyncio.Queue[object], n: int, timeout: float = 10.0) -> list[object]:
    return [await asyncio.wait_for(queue.get(), timeout) for _ in range(n)]


async def running(scheduler: DaemonScheduler) -> asyncio.Task[None]:
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(0)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def status() -> dict[str, Any]:
    return {"account": "paper", "cash": 90_000.0, "equity": 101_250.5, "mode": "paper"}


# --- jobs firing -------------------------------------------------------------------------------


def test_health_job_enqueues_health_ticks_from_the_first_moment_on() -> None:
    checks = iter(range(1000))

    async def session() -> tuple[list[object], float, dict[str, int]]:
        queue: asyncio.Queue[object] = asyncio.Queue()
        scheduler = DaemonScheduler(FAST, enqueue=queue.put, status=status,
                                    health_check=lambda: {"check": next(checks)}, now_ns=lambda: 42)
        started = time.monotonic()
        task = await running(scheduler)
        first = await collect(queue, 1)
        first_after = time.monotonic() - started
        rest = await collect(queue, 2)
        await stop(task)
        assert not scheduler.running
        return first + rest, first_after, scheduler.runs

    items, first_after, runs = asyncio.run(session())
    assert items == [HealthTick(report={"check": i}, ts_event=42, ts_init=42) for i in range(3)]
    assert first_after < FAST.health_interval_s * 20  # at start, not one interval later on a busy machine
    assert runs["health"] >= 3


def test_equity_snapshot_job_reads_status_and_enqueues_a_snapshot() -> None:
    async def session() -> list[object]:
        queue: asyncio.Queue[object] = asyncio.Queue()
        scheduler = DaemonScheduler(SchedulerConfig(equity_snapshot_interval_s=0.05), enqueue=queue.put,
                                    status=status, now_ns=lambda: 7)
        task = await running(scheduler)
        items = await collect(queue, 2)
        await stop(task)
        return items

    assert asyncio.run(session()) == [EquitySnapshot(account="paper", cash=90_000.0, equity=101_250.5,
                                                     ts_event=7, ts_init=7)] * 2


def test_a_failing_job_is_logged_and_retried_and_the_others_keep_running() -> None:
    calls = []

    def broken_status() -> dict[str, Any]:
        calls.append(1)
        raise KeyError("equity")

    async def session() -> DaemonScheduler:
        queue: asyncio.Queue[object] = asyncio.Queue()
        config = SchedulerConfig(health_interval_s=0.05, equity_snapshot_interval_s=0.05)
        scheduler = DaemonScheduler(config, enqueue=queue.put, status=broken_status, health_check=dict)
        task = await running(scheduler)
        await collect(queue, 4)  # health ticks keep coming
        while len(calls) < 2:
            await asyncio.sleep(0.01)
        await stop(task)
        assert all(isinstance(item, HealthTick) for item in await_all(queue))
        return scheduler

    scheduler = asyncio.run(session())
    assert scheduler.failures["equity"] >= 2 and "equity" not in scheduler.runs
    assert scheduler.runs["health"] >= 4


def await_all(queue: asyncio.Queue[object]) -> list[object]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def test_a_full_queue_makes_the_job_wait_never_drop_nor_run_twice() -> None:
    in_flight = []
    peak = [0]

    async def session() -> list[object]:
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=1)

        async def enqueue(item: object) -> None:  # the node's enqueue: awaits while the queue is full
            in_flight.append(item)
            peak[0] = max(peak[0], len(in_flight))
            try:
                await queue.put(item)
            finally:
                in_flight.remove(item)

        scheduler = DaemonScheduler(FAST, enqueue=enqueue, status=status, health_check=lambda: {"n": len(got)})
        got: list[object] = []
        task = await running(scheduler)
        await asyncio.sleep(0.4)  # ~8 intervals while nobody consumes: one item queued, one job waiting
        assert queue.full() and len(in_flight) == 1
        got += await collect(queue, 3)
        await stop(task)
        return got

    items = asyncio.run(session())
    assert peak[0] == 1  # never two health jobs at once
    assert all(isinstance(item, HealthTick) for item in items)


def test_end_of_day_fires_after_the_close_with_the_session_date() -> None:
    class SoonCloses:
        """A calendar whose sessions close every 0.2 s from now (real APScheduler timing)."""

        name = "TEST"

        def __init__(self) -> None:
            self.first = (time.time_ns() // 10**6 + 200) * 10**6  # whole ms, as real closes are whole minutes

        def next_close(self, ts: int) -> int:
            step = NANOS_PER_SECOND // 5
            return self.first + max(0, (ts - self.first) // step + 1) * step

        def session_date(self, close: int) -> date:
            return date(2024, 7, 3)

    closes = SoonCloses()

    async def session() -> list[object]:
        queue: asyncio.Queue[object] = asyncio.Queue()
        config = SchedulerConfig(equity_snapshot_interval_s=0, eod_delay_s=0.05)
        scheduler = DaemonScheduler(config, enqueue=queue.put, status=status, calendar=closes)
        task = await running(scheduler)
        assert scheduler.next_runs()["end_of_day"] == iso(closes.first + NANOS_PER_SECOND // 20)
        items = await collect(queue, 2)
        await stop(task)
        return items

    first, second = asyncio.run(session())
    assert isinstance(first, EndOfDay) and isinstance(second, EndOfDay)
    assert (first.calendar, first.session_date) == ("TEST", "2024-07-03")
    assert first.ts_event == closes.first and second.ts_event == closes.first + NANOS_PER_SECOND // 5
    assert first.ts_init >= first.ts_event + NANOS_PER_SECOND // 20  # run after close + delay


def test_start_outside_a_running_loop_is_an_error() -> None:
    scheduler = DaemonScheduler(FAST, enqueue=lambda item: asyncio.sleep(0), status=status)
    with pytest.raises(RuntimeError):
        scheduler.start()


@pytest.mark.parametrize("bad", [{"health_interval_s": 0}, {"calendar": "NOPE"}, {"eod_delay_s": -1},
                                 {"equity_snapshot_interval_s": float("inf")}, {"misfire_grace_s": 0},
                                 {"misfire_grace_s": 0.5}, {"unknown": 1}])
def test_config_rejects_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SchedulerConfig(**bad)


# --- the next XNYS close -----------------------------------------------------------------------


@pytest.mark.parametrize(("now", "close", "why"), [
    ("2024-07-02T15:00:00Z", "2024-07-02T20:00:00Z", "a regular day, 16:00 EDT"),
    ("2024-07-03T14:00:00Z", "2024-07-03T17:00:00Z", "early close 13:00 EDT before Independence Day"),
    ("2024-07-03T17:00:01Z", "2024-07-05T20:00:00Z", "after the early close: the next session (the 4th is a holiday)"),
    ("2024-07-04T12:00:00Z", "2024-07-05T20:00:00Z", "on the holiday itself"),
    ("2024-11-28T15:00:00Z", "2024-11-29T18:00:00Z", "Thanksgiving, then the 13:00 EST early close"),
    ("2024-03-29T15:00:00Z", "2024-04-01T20:00:00Z", "Good Friday and the weekend"),
    ("2024-03-08T21:30:00Z", "2024-03-11T20:00:00Z", "spring forward: Friday 21:00 UTC (EST), Monday 20:00 UTC (EDT)"),
    ("2024-11-01T20:30:00Z", "2024-11-04T21:00:00Z", "fall back: Friday 20:00 UTC (EDT), Monday 21:00 UTC (EST)"),
    ("2024-12-31T22:00:00Z", "2025-01-02T21:00:00Z", "New Year's Day"),
])
def test_next_xnys_close(now: str, close: str, why: str) -> None:
    trigger = SessionCloseTrigger(XNYS, delay_s=0)
    assert iso(trigger.next_fire_ns(None, ns(now))) == close, why


def test_end_of_day_trigger_adds_the_delay_and_moves_to_the_next_session_after_firing() -> None:
    trigger = SessionCloseTrigger(XNYS, delay_s=120)
    fire = trigger.next_fire_ns(None, ns("2024-07-03T12:00:00Z"))
    assert iso(fire) == "2024-07-03T17:02:00Z"
    assert trigger.next_fire_ns(None, fire) == fire  # asked exactly at the fire time: that one
    assert iso(trigger.next_fire_ns(None, fire + 1)) == "2024-07-05T20:02:00Z"
    assert iso(trigger.next_fire_ns(fire, fire + 1)) == "2024-07-05T20:02:00Z"
    # APScheduler's interface, with a non-UTC "now"
    new_york = timezone(timedelta(hours=-4))
    got = trigger.get_next_fire_time(None, datetime(2024, 7, 3, 8, 0, tzinfo=new_york))
    assert got == datetime(2024, 7, 3, 17, 2, tzinfo=timezone.utc)
    assert trigger.get_next_fire_time(got, got) == datetime(2024, 7, 5, 20, 2, tzinfo=timezone.utc)


def test_a_close_between_microseconds_fires_once_and_never_early() -> None:
    class OddCloses:
        name = "ODD"

        def next_close(self, ts: int) -> int:  # closes at k s + 1 ns: not representable in a datetime
            return (ts // NANOS_PER_SECOND + 1) * NANOS_PER_SECOND + 1

        def session_date(self, close: int) -> date:
            raise NotImplementedError

    trigger = SessionCloseTrigger(OddCloses())
    now = datetime(2024, 7, 3, 12, 0, 0, 500_000, tzinfo=timezone.utc)
    first = trigger.get_next_fire_time(None, now)
    assert first == datetime(2024, 7, 3, 12, 0, 1, 1, tzinfo=timezone.utc)  # rounded up, not down
    assert trigger.get_next_fire_time(first, first) == datetime(2024, 7, 3, 12, 0, 2, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(("close", "session"), [
    ("2024-07-03T17:00:00Z", "2024-07-03"),
    ("2024-03-08T21:00:00Z", "2024-03-08"),
])
def test_session_date_is_the_exchange_local_date(close: str, session: str) -> None:
    assert XNYS.session_date(ns(close)).isoformat() == session


def test_session_date_of_a_24_7_market_is_the_utc_day_that_ends_at_midnight() -> None:
    cal = SessionCalendar("24/7")
    close = cal.next_close(ns("2024-07-03T23:59:00Z"))
    assert (iso(close), cal.session_date(close).isoformat()) == ("2024-07-04T00:00:00Z", "2024-07-03")


def test_end_of_day_that_runs_late_still_names_the_close_it_belongs_to() -> None:
    # fired 10 minutes late (within the 15-minute misfire grace): the report is still for the 3rd
    late = ns("2024-07-03T17:02:00Z") + 600 * NANOS_PER_SECOND

    async def session() -> EndOfDay:
        queue: asyncio.Queue[object] = asyncio.Queue()
        scheduler = DaemonScheduler(SchedulerConfig(equity_snapshot_interval_s=0), enqueue=queue.put,
                                    status=status, calendar=XNYS, now_ns=lambda: late)
        await scheduler.run_now("end_of_day")
        with pytest.raises(KeyError, match="end_of_day"):
            await scheduler.run_now("nightly")
        item = queue.get_nowait()
        assert isinstance(item, EndOfDay)
        return item

    item = asyncio.run(session())
    assert (item.session_date, iso(item.ts_event), item.ts_init) == ("2024-07-03", "2024-07-03T17:00:00Z", late)
