"""Scheduled jobs of the live node on APScheduler 3.x's ``AsyncIOScheduler``.

Jobs never touch the engine. Each one builds an item and hands it to the node's ``enqueue``
(which awaits while the queue is full: backpressure, never a drop); the pump, the only caller of
``Engine.handle``, takes it from there. A job may read ``status()`` (the node's JSON-able
snapshot) to build its item. The built-in jobs:

================= ========================================= ============================
job               when                                      enqueues
================= ========================================= ============================
``health``        every ``health_interval_s`` (30 s)        :class:`HealthTick`
``equity``        every ``equity_snapshot_interval_s``      :class:`EquitySnapshot`
``end_of_day``    ``eod_delay_s`` after each session close  :class:`EndOfDay`
                  of ``calendar`` (XNYS: holidays, early
                  closes and DST from exchange-calendars)
================= ========================================= ============================

:meth:`DaemonScheduler.every` and :meth:`DaemonScheduler.at_session_close` add more (periodic
reconciliation, retraining) the same way.

These jobs run on the wall clock and only report; nothing that changes trading is scheduled here
(bar-close evaluation, end-of-day flatten and breaker cool-downs are engine clock timers, so a
replay reproduces them exactly; see DESIGN.md). A job that raises is logged and retried at its
next fire time. A job still running (waiting on a full queue) when it is due again is not started
twice; late fires coalesce into one, within ``misfire_grace_s``.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import partial
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, field_validator

from backtest.calendar import ALWAYS_OPEN, check_calendar_name
from backtest.calendar import next_close as calendar_next_close
from core.time import NANOS_PER_SECOND, iso

_log = structlog.get_logger("tradingd.scheduler")


# --- what the jobs enqueue (the node handles them; none of them reaches the engine's decisions) ----


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthTick:
    """Event: a health check ran. ``report`` is :meth:`daemon.health.HealthMonitor.check`'s dict
    (JSON-able); the node publishes it as the heartbeat and logs it. ``ts_event`` = ``ts_init`` =
    when the check ran, epoch ns UTC."""

    report: dict[str, Any]
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EquitySnapshot:
    """Event: the account's cash and equity (USD) as ``status()`` showed them at ``ts_event``
    (epoch ns UTC); the node persists and publishes it."""

    account: str
    cash: float
    equity: float
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EndOfDay:
    """Event: the session of ``session_date`` (``YYYY-MM-DD``, the exchange's local date) on
    ``calendar`` closed at ``ts_event`` (epoch ns UTC); ``ts_init`` is when the job ran (close +
    ``eod_delay_s``, later if the loop was busy). The node turns it into the daily summary (P&L of
    the day, trades, breaker events -> Slack)."""

    calendar: str
    session_date: str
    ts_event: int
    ts_init: int


# --- configuration -----------------------------------------------------------------------------


class SchedulerConfig(BaseModel):
    """Configuration of :class:`DaemonScheduler`.

    Parameters
    ----------
    health_interval_s
        Seconds between health checks / heartbeats (> 0). Default 30.
    equity_snapshot_interval_s
        Seconds between equity snapshots (>= 0; 0 turns them off). Default 300.
    calendar
        exchange-calendars name (or ``"24/7"``) whose session closes trigger the end-of-day
        report. Default ``"XNYS"``.
    eod_delay_s
        Seconds after the close to run the end-of-day report (>= 0), so the session's last bar
        (known at the close) has arrived and been handled first. Default 120.
    misfire_grace_s
        A job that could not start on time (loop busy, machine suspended) still runs if at most
        this many whole seconds late (>= 1); later than that, that run is skipped. Default 900.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    health_interval_s: float = Field(30.0, gt=0.0, allow_inf_nan=False)
    equity_snapshot_interval_s: float = Field(300.0, ge=0.0, allow_inf_nan=False)
    calendar: str = "XNYS"
    eod_delay_s: float = Field(120.0, ge=0.0, allow_inf_nan=False)
    misfire_grace_s: int = Field(900, ge=1)

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str) -> str:
        return check_calendar_name(value)


# --- session closes ----------------------------------------------------------------------------


class Closes(Protocol):
    """Session closes of one trading calendar (the role :class:`SessionCalendar` plays)."""

    name: str

    def next_close(self, ts: int) -> int: ...
    def session_date(self, close: int) -> date: ...


class SessionCalendar:
    """Session closes and session dates of an exchange calendar (or ``"24/7"``).

    Parameters
    ----------
    name : str
        exchange-calendars name (``"XNYS"``) or ``"24/7"`` (a session per UTC day).

    Raises
    ------
    backtest.calendar.CalendarError
        If the calendar is unknown.

    Examples
    --------
    >>> cal = SessionCalendar("24/7")
    >>> close = cal.next_close(1_700_000_000 * 10**9)
    >>> iso(close), cal.session_date(close).isoformat()
    ('2023-11-15T00:00:00Z', '2023-11-14')
    """

    def __init__(self, name: str) -> None:
        self.name = check_calendar_name(name)
        self._tz: ZoneInfo | None = None

    def next_close(self, ts: int) -> int:
        """Return the first session close strictly after ``ts``, epoch ns UTC (early closes included)."""
        return calendar_next_close(self.name, ts)

    def session_date(self, close: int) -> date:
        """Return the date of the session that closes at ``close`` (epoch ns UTC), in the exchange's
        local time zone (a close at local midnight belongs to the day before)."""
        if self._tz is None:
            self._tz = ZoneInfo("UTC") if self.name == ALWAYS_OPEN else _exchange_tz(self.name)
        moment = datetime.fromtimestamp((close - 1) // 1000 / 1_000_000, tz=timezone.utc)
        return moment.astimezone(self._tz).date()


def _exchange_tz(name: str) -> ZoneInfo:
    import exchange_calendars as xcals  # lazy, as in backtest.calendar: a slow import

    with warnings.catch_warnings():
        # exchange-calendars 4.x reads tz-aware Series.values, which pandas >= 3.1 deprecates; not ours to fix
        warnings.filterwarnings("ignore", message=".*values returning")
        return ZoneInfo(str(xcals.get_calendar(name).tz))


class SessionCloseTrigger(BaseTrigger):
    """APScheduler trigger firing ``delay_s`` after each session close of ``closes``.

    Parameters
    ----------
    closes : Closes
        The calendar (e.g. ``SessionCalendar("XNYS")``).
    delay_s : float
        Seconds after the close (>= 0).
    """

    __slots__ = ("closes", "delay_ns")

    def __init__(self, closes: Closes, delay_s: float = 0.0) -> None:
        if not delay_s >= 0:
            raise ValueError(f"delay_s must be >= 0, got {delay_s!r}")
        self.closes = closes
        self.delay_ns = round(delay_s * NANOS_PER_SECOND)

    def next_fire_ns(self, previous: int | None, now: int) -> int:
        """Return the next fire time in epoch ns UTC: after ``previous`` (a fire time), else at or after ``now``."""
        after = previous - self.delay_ns if previous is not None else now - self.delay_ns - 1
        fire = self.closes.next_close(after) + self.delay_ns
        while previous is not None and fire <= previous:  # never hand APScheduler the same time twice
            fire = self.closes.next_close(fire - self.delay_ns) + self.delay_ns
        return fire

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        """APScheduler's hook: :meth:`next_fire_ns` on timezone-aware datetimes."""
        previous = None if previous_fire_time is None else _to_ns(previous_fire_time)
        fire = self.next_fire_ns(previous, _to_ns(now))
        # datetimes hold microseconds: round up, so the fire time read back is never before the close
        micros = -(-fire // 1000)
        return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)

    def __str__(self) -> str:
        return f"session close of {self.closes.name} + {self.delay_ns / NANOS_PER_SECOND:g} s"


def _to_ns(moment: datetime) -> int:
    # whole microseconds, exactly: no float rounding of the epoch seconds
    delta = moment.astimezone(timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * NANOS_PER_SECOND + delta.microseconds * 1000


# --- the scheduler -----------------------------------------------------------------------------


class DaemonScheduler:
    """The live node's scheduled jobs: health, equity snapshots, the end-of-day report, and more.

    Parameters
    ----------
    config : SchedulerConfig
    enqueue : async callable
        The node's ``enqueue(item)``; awaits while the queue is full.
    status : callable returning dict
        The node's JSON-able snapshot; the equity job reads ``account``, ``cash`` and ``equity``.
    health_check : callable returning dict, optional
        Runs one health check and returns its report (``HealthMonitor.check``); None = no health job.
    calendar : Closes, optional
        Session closes for the end-of-day job (default ``SessionCalendar(config.calendar)``).
    now_ns : callable, optional
        Wall clock, epoch ns UTC (default :func:`time.time_ns`); stamps the items.

    Notes
    -----
    Call :meth:`start` inside the running event loop (or run :meth:`run` as a task of the node's
    ``TaskGroup``, which also shuts the scheduler down when cancelled).
    """

    def __init__(self, config: SchedulerConfig, *, enqueue: Callable[[object], Awaitable[None]],
                 status: Callable[[], dict[str, Any]], health_check: Callable[[], dict[str, Any]] | None = None,
                 calendar: Closes | None = None, now_ns: Callable[[], int] = time.time_ns) -> None:
        self.config = config
        self._enqueue = enqueue
        self._status = status
        self._now_ns = now_ns
        self.calendar = calendar if calendar is not None else SessionCalendar(config.calendar)
        self._jobs: dict[str, tuple[Callable[[], Awaitable[None]], Callable[[], Any], float | None]] = {}
        self.runs: dict[str, int] = {}
        """Completed runs per job name (an item enqueued, or nothing to enqueue)."""
        self.failures: dict[str, int] = {}
        """Runs per job name that raised (logged; the job runs again at its next time)."""
        self._scheduler = AsyncIOScheduler(timezone=timezone.utc, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": config.misfire_grace_s})
        if health_check is not None:
            self.every("health", config.health_interval_s, partial(self._health_tick, health_check), first_in_s=0)
        if config.equity_snapshot_interval_s > 0:
            self.every("equity", config.equity_snapshot_interval_s, self._equity_snapshot)
        self.at_session_close("end_of_day", self._end_of_day, delay_s=config.eod_delay_s)

    # -- adding jobs --

    def every(self, name: str, seconds: float, make: Callable[[int], object | None], *,
              first_in_s: float | None = None) -> None:
        """Enqueue ``make(now_ns)`` every ``seconds`` (nothing when it returns None).

        ``first_in_s`` is when the first run is due, counted from :meth:`start` (default one
        interval; 0 = at start).
        """
        if not seconds > 0:
            raise ValueError(f"interval of job {name!r} must be > 0 s, got {seconds!r}")
        self._add(name, lambda: IntervalTrigger(seconds=seconds, timezone=timezone.utc),
                  lambda: make(self._now_ns()), first_in_s)

    def at_session_close(self, name: str, make: Callable[[int, int], object | None], *,
                         delay_s: float = 0.0) -> None:
        """Enqueue ``make(close_ns, now_ns)`` ``delay_s`` after each session close of the calendar."""
        trigger = SessionCloseTrigger(self.calendar, delay_s)

        def build() -> object | None:
            now = self._now_ns()
            return make(self._close_passed(now, trigger.delay_ns), now)

        self._add(name, lambda: trigger, build, None)

    def _close_passed(self, now: int, delay_ns: int) -> int:
        # the latest close at or before now - delay: this run fired at close + delay + lateness, and
        # APScheduler skips runs later than the grace, so the search can start a grace earlier
        grace = round(self.config.misfire_grace_s * NANOS_PER_SECOND)
        due = now - delay_ns
        close = self.calendar.next_close(due - grace - 1)
        while (following := self.calendar.next_close(close)) <= due:
            close = following
        return close

    def _add(self, name: str, trigger: Callable[[], Any], build: Callable[[], object | None],
             first_in_s: float | None) -> None:
        async def job() -> None:
            try:
                item = build()
                if item is not None:
                    await self._enqueue(item)
            except Exception as exc:  # a failing job must not stop the others or the node
                self.failures[name] = self.failures.get(name, 0) + 1
                _log.error("scheduled job failed", job=name, error=repr(exc))
            else:
                self.runs[name] = self.runs.get(name, 0) + 1

        self._jobs[name] = (job, trigger, first_in_s)
        if self.running:
            self._schedule(name)

    def _schedule(self, name: str) -> None:
        # triggers are made here, at start, so intervals count from when the node starts
        job, trigger, first_in_s = self._jobs[name]
        first = {} if first_in_s is None else {
            "next_run_time": datetime.fromtimestamp(time.time() + first_in_s, tz=timezone.utc)}
        self._scheduler.add_job(job, trigger(), id=name, name=name, replace_existing=True, **first)

    async def run_now(self, name: str) -> None:
        """Run job ``name`` once now, outside its schedule (e.g. a health check on request).

        Raises
        ------
        KeyError
            If no job has that name.
        """
        if name not in self._jobs:
            raise KeyError(f"no scheduled job {name!r} (known: {', '.join(sorted(self._jobs))})")
        await self._jobs[name][0]()

    # -- the built-in jobs --

    @staticmethod
    def _health_tick(check: Callable[[], dict[str, Any]], now: int) -> HealthTick:
        return HealthTick(report=check(), ts_event=now, ts_init=now)

    def _equity_snapshot(self, now: int) -> EquitySnapshot:
        status = self._status()
        return EquitySnapshot(account=str(status["account"]), cash=float(status["cash"]),
                              equity=float(status["equity"]), ts_event=now, ts_init=now)

    def _end_of_day(self, close: int, now: int) -> EndOfDay:
        return EndOfDay(calendar=self.calendar.name, session_date=self.calendar.session_date(close).isoformat(),
                        ts_event=close, ts_init=now)

    # -- running --

    def next_runs(self) -> dict[str, str]:
        """Return each job's next fire time (ISO-8601 UTC) by name, for ``status`` (empty before :meth:`start`)."""
        out = {}
        for job in self._scheduler.get_jobs():
            when = getattr(job, "next_run_time", None)
            if when is not None:
                out[job.id] = iso(_to_ns(when))
        return out

    @property
    def running(self) -> bool:
        """Whether the scheduler has been started and not shut down."""
        return bool(self._scheduler.running)

    def start(self) -> None:
        """Start firing jobs on the running event loop.

        Raises
        ------
        RuntimeError
            If no event loop is running in this thread.
        """
        self._scheduler.start()
        for name in self._jobs:
            self._schedule(name)
        _log.info("scheduler started", jobs=self.next_runs())

    def shutdown(self) -> None:
        """Stop firing jobs and cancel the ones still running (no effect when not running)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    async def run(self) -> None:
        """Start, then wait until cancelled; shut down on the way out (a ``TaskGroup`` task)."""
        self.start()
        try:
            await asyncio.Event().wait()
        finally:
            self.shutdown()
            # AsyncIOScheduler shuts down in a loop callback: give it that turn before the loop closes
            await asyncio.sleep(0)


__all__ = ["Closes", "DaemonScheduler", "EndOfDay", "EquitySnapshot", "HealthTick", "SchedulerConfig",
           "SessionCalendar", "SessionCloseTrigger"]
