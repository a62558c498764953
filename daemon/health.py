"""Health of the live daemon: process readings (psutil), the thresholds that raise alerts, and
the JSON-able report the heartbeat carries.

Three parts, so each can be tested alone:

* :class:`LoopLagProbe`, a small coroutine that sleeps a fixed interval and records how late it
  woke up: the event-loop lag (a slow callback or a blocking call delays every task, the pump
  included).
* :func:`assess`, pure: readings + thresholds -> the problems found (disk nearly full, RSS growth
  over a window, loop lag, queue nearly full).
* :class:`HealthMonitor`: reads the process (CPU %, RSS, open files), the disk of the state
  directory, the lag probe, the queue depth and feed freshness; raises an alert when a problem
  starts and an ``info`` when it clears (edge-triggered, so a full disk is one alert, not one
  every 30 s); and returns the report dict.

Feed freshness is reported, not judged: whether a quiet feed is stale depends on the exchange
calendar, which the staleness watchdog of the feeds owns.

Units: bytes, seconds, fractions (0.05 = 5 %), CPU in percent of one core (may exceed 100 with
threads); timestamps epoch ns UTC (ISO-8601 ``...Z`` in the report).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field

from core.ports import AlertSink
from core.time import NANOS_PER_SECOND, iso


class HealthConfig(BaseModel):
    """Thresholds of the health check.

    Parameters
    ----------
    min_disk_free_fraction
        Free space of the state directory's file system below this fraction of its size is
        "disk nearly full", in [0, 1). Default 0.05.
    min_disk_free_bytes
        ... or below this many bytes, whichever comes first (>= 0). Default 512 MiB.
    rss_growth_window_s
        Window of the RSS growth check, seconds (> 0). Default 3600.
    max_rss_growth_fraction
        RSS now versus RSS one window ago above ``1 + this`` is "RSS growth" (a leak), > 0.
        Default 0.5. Not judged until one full window of samples after the warm-up.
    rss_warmup_s
        Seconds after start whose RSS samples are ignored (>= 0): imports, caches and model state
        make a fresh process grow before it levels off, which is not a leak. Default 600.
    max_loop_lag_s
        Event-loop lag above this is "loop lag", seconds (> 0). Default 0.25.
    max_queue_fill_fraction
        Queue depth / capacity at or above this is "queue nearly full", in (0, 1]. Default 0.8.
    loop_lag_probe_interval_s
        Sleep of the lag probe between measurements, seconds (> 0). Default 0.5.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_disk_free_fraction: float = Field(0.05, ge=0.0, lt=1.0, allow_inf_nan=False)
    min_disk_free_bytes: int = Field(512 * 1024 * 1024, ge=0)
    rss_growth_window_s: float = Field(3600.0, gt=0.0, allow_inf_nan=False)
    max_rss_growth_fraction: float = Field(0.5, gt=0.0, allow_inf_nan=False)
    rss_warmup_s: float = Field(600.0, ge=0.0, allow_inf_nan=False)
    max_loop_lag_s: float = Field(0.25, gt=0.0, allow_inf_nan=False)
    max_queue_fill_fraction: float = Field(0.8, gt=0.0, le=1.0, allow_inf_nan=False)
    loop_lag_probe_interval_s: float = Field(0.5, gt=0.0, allow_inf_nan=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReadings:
    """One set of raw readings (what :meth:`HealthMonitor.read` measures; tests build their own).

    ``ts`` epoch ns UTC (wall clock); ``cpu_percent`` of one core since the previous reading;
    ``rss_bytes`` resident set size; ``open_fds`` open file descriptors (None if unknown);
    ``disk_free_bytes``/``disk_total_bytes`` of the state directory's file system (free = what an
    unprivileged process may still write); ``loop_lag_s`` the largest lag since the previous
    reading (None before the probe's first measurement); ``queue_depth``/``queue_capacity`` items
    (capacity 0 = unbounded); ``last_bar_ns`` symbol -> when its last bar was received, ns UTC.
    """

    ts: int
    cpu_percent: float
    rss_bytes: int
    open_fds: int | None
    disk_free_bytes: int
    disk_total_bytes: int
    loop_lag_s: float | None
    queue_depth: int
    queue_capacity: int
    last_bar_ns: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Problem:
    """One threshold crossed: ``key`` names the kind (stable, for de-dup), the rest is the alert."""

    key: str
    severity: str
    title: str
    text: str


class RssTrend:
    """RSS samples over a sliding window: the growth from one window ago to now.

    Parameters
    ----------
    window_ns : int
        Window length, ns.

    Examples
    --------
    >>> trend = RssTrend(window_ns=60)
    >>> [trend.add(t, rss) for t, rss in [(0, 100), (30, 120), (60, 150), (90, 180)]]
    [None, None, 0.5, 0.5]
    """

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self._samples: deque[tuple[int, int]] = deque()

    def add(self, ts: int, rss_bytes: int) -> float | None:
        """Record a sample; return RSS now / RSS one window ago - 1, or None before a full window."""
        samples = self._samples
        samples.append((ts, rss_bytes))
        # keep the newest sample that is at least one window old as the baseline, drop older ones
        while len(samples) > 1 and ts - samples[1][0] >= self.window_ns:
            samples.popleft()
        base_ts, base_rss = samples[0]
        if ts - base_ts < self.window_ns or base_rss <= 0:
            return None
        return rss_bytes / base_rss - 1.0


def assess(readings: HealthReadings, config: HealthConfig, rss_growth: float | None) -> list[Problem]:
    """Return the problems in ``readings`` under ``config`` (empty when healthy).

    Parameters
    ----------
    readings : HealthReadings
    config : HealthConfig
    rss_growth : float or None
        RSS growth over the window as a fraction (see :class:`RssTrend`); None = not known yet.

    Returns
    -------
    list of Problem
        In a fixed order: ``disk_low`` (critical: a full disk stops the store, and with it
        trading), ``rss_growth``, ``loop_lag``, ``queue_full`` (warnings).
    """
    problems = []
    total, free = readings.disk_total_bytes, readings.disk_free_bytes
    fraction = free / total if total > 0 else 0.0
    if fraction < config.min_disk_free_fraction or free < config.min_disk_free_bytes:
        problems.append(Problem(
            "disk_low", "critical", "disk nearly full",
            f"state directory has {_mib(free)} free ({fraction:.1%} of {_mib(total)}); limits "
            f"{config.min_disk_free_fraction:.1%} and {_mib(config.min_disk_free_bytes)}"))
    if rss_growth is not None and rss_growth > config.max_rss_growth_fraction:
        problems.append(Problem(
            "rss_growth", "warning", "memory growing",
            f"RSS {_mib(readings.rss_bytes)} grew {rss_growth:.0%} over the last "
            f"{config.rss_growth_window_s:g} s (limit {config.max_rss_growth_fraction:.0%})"))
    if readings.loop_lag_s is not None and readings.loop_lag_s > config.max_loop_lag_s:
        problems.append(Problem(
            "loop_lag", "warning", "event loop lagging",
            f"event loop {readings.loop_lag_s * 1000:.0f} ms late (limit {config.max_loop_lag_s * 1000:.0f} ms)"))
    capacity = readings.queue_capacity
    if capacity > 0 and readings.queue_depth >= config.max_queue_fill_fraction * capacity:
        problems.append(Problem(
            "queue_full", "warning", "event queue nearly full",
            f"{readings.queue_depth} of {capacity} queue slots in use (limit "
            f"{config.max_queue_fill_fraction:.0%}): the engine is falling behind its feeds"))
    return problems


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


class LoopLagProbe:
    """Measure event-loop lag: sleep ``interval_s``, see how much later than asked the loop woke us.

    Run :meth:`run` as a task of the node's ``TaskGroup``; :meth:`take_max` (the health check)
    returns the largest lag since its previous call.

    Parameters
    ----------
    interval_s : float
        Seconds between measurements (> 0).
    monotonic : callable, optional
        Clock in seconds (default :func:`time.monotonic`).
    """

    def __init__(self, interval_s: float = 0.5, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self.interval_s = interval_s
        self._monotonic = monotonic
        self.last_s: float | None = None
        """Lag of the latest measurement, seconds (None before the first)."""
        self._max_s: float | None = None

    def record(self, lag_s: float) -> None:
        """Record one measured lag in seconds (negative values, clock jitter, count as 0)."""
        lag_s = max(0.0, lag_s)
        self.last_s = lag_s
        self._max_s = lag_s if self._max_s is None else max(self._max_s, lag_s)

    def take_max(self) -> float | None:
        """Return the largest lag since the previous call (None if none measured) and start afresh."""
        value, self._max_s = self._max_s, None
        return value if value is not None else self.last_s

    async def run(self) -> None:
        """Measure until cancelled."""
        while True:
            start = self._monotonic()
            await asyncio.sleep(self.interval_s)
            self.record(self._monotonic() - start - self.interval_s)


class HealthMonitor:
    """Take readings, raise alerts on threshold transitions and build the heartbeat report.

    Parameters
    ----------
    config : HealthConfig
    state_dir : str or Path
        Directory of the daemon's state (SQLite file, journal); its file system is checked.
    alerts : AlertSink
        Receives one alert when a problem starts and an ``info`` when it clears.
    queue_depth : callable returning int, optional
        Items waiting in the node's queue now (e.g. ``queue.qsize``). Default: always 0.
    queue_capacity : int, optional
        The queue's ``maxsize`` (0 = unbounded, never "full"). Default 0.
    last_bars : callable returning a mapping of str to int, optional
        Symbol -> when its latest bar was received, epoch ns UTC. Default: no feeds.
    lag_probe : LoopLagProbe, optional
        The running probe whose lag is reported; None reports no lag.
    now_ns : callable, optional
        Wall clock, epoch ns UTC (default :func:`time.time_ns`).
    process : psutil.Process, optional
        The process to read (default this one).
    """

    def __init__(self, config: HealthConfig, *, state_dir: str | Path, alerts: AlertSink,
                 queue_depth: Callable[[], int] = lambda: 0, queue_capacity: int = 0,
                 last_bars: Callable[[], Mapping[str, int]] = dict,
                 lag_probe: LoopLagProbe | None = None, now_ns: Callable[[], int] = time.time_ns,
                 process: psutil.Process | None = None) -> None:
        self.config = config
        self.state_dir = Path(state_dir)
        self.alerts = alerts
        self._queue_depth = queue_depth
        self._queue_capacity = queue_capacity
        self._last_bars = last_bars
        self.lag_probe = lag_probe
        self._now_ns = now_ns
        self._process = process or psutil.Process()
        self._process.cpu_percent(None)  # primes the counter: the first reading is then since startup
        self.started_ns = now_ns()
        self._rss = RssTrend(round(config.rss_growth_window_s * NANOS_PER_SECOND))
        self.active: dict[str, Problem] = {}
        """Problems present at the latest check, by key."""

    def read(self) -> HealthReadings:
        """Measure the process, the state directory's disk, the lag probe, the queue and the feeds.

        Raises
        ------
        OSError
            If the state directory does not exist or cannot be inspected.
        """
        proc = self._process
        with proc.oneshot():
            cpu = proc.cpu_percent(None)
            rss = proc.memory_info().rss
            try:
                fds: int | None = proc.num_fds()
            except (AttributeError, psutil.Error):  # not on every platform / under every sandbox
                fds = None
        disk = psutil.disk_usage(os.fspath(self.state_dir))
        return HealthReadings(
            ts=self._now_ns(), cpu_percent=cpu, rss_bytes=rss, open_fds=fds,
            disk_free_bytes=disk.free, disk_total_bytes=disk.total,
            loop_lag_s=self.lag_probe.take_max() if self.lag_probe is not None else None,
            queue_depth=self._queue_depth(), queue_capacity=self._queue_capacity,
            last_bar_ns=dict(self._last_bars()))

    def check(self, readings: HealthReadings | None = None) -> dict[str, Any]:
        """Assess ``readings`` (default: :meth:`read` now), alert on changes, return the report.

        Returns
        -------
        dict
            JSON-able: ``ts`` (ISO), ``uptime_s``, ``pid``, ``ok``, ``problems`` (keys),
            ``cpu_percent``, ``rss_bytes``, ``rss_growth`` (fraction or None), ``open_fds``,
            ``disk`` {``path``, ``free_bytes``, ``total_bytes``, ``free_fraction``}, ``loop_lag_s``,
            ``queue`` {``depth``, ``capacity``}, ``feeds`` {symbol: {``last_bar``, ``age_s``}}.
        """
        r = self.read() if readings is None else readings
        warm = r.ts - self.started_ns >= self.config.rss_warmup_s * NANOS_PER_SECOND
        growth = self._rss.add(r.ts, r.rss_bytes) if warm else None
        problems = assess(r, self.config, growth)
        self._alert_transitions(problems)
        total = r.disk_total_bytes
        return {
            "ts": iso(r.ts),
            "uptime_s": round((r.ts - self.started_ns) / NANOS_PER_SECOND, 3),
            "pid": self._process.pid,
            "ok": not problems,
            "problems": [p.key for p in problems],
            "cpu_percent": round(r.cpu_percent, 1),
            "rss_bytes": r.rss_bytes,
            "rss_growth": None if growth is None else round(growth, 4),
            "open_fds": r.open_fds,
            "disk": {"path": str(self.state_dir), "free_bytes": r.disk_free_bytes, "total_bytes": total,
                     "free_fraction": round(r.disk_free_bytes / total, 4) if total > 0 else 0.0},
            "loop_lag_s": None if r.loop_lag_s is None else round(r.loop_lag_s, 4),
            "queue": {"depth": r.queue_depth, "capacity": r.queue_capacity},
            "feeds": {symbol: {"last_bar": iso(ts), "age_s": round((r.ts - ts) / NANOS_PER_SECOND, 3)}
                      for symbol, ts in sorted(r.last_bar_ns.items())},
        }

    def _alert_transitions(self, problems: list[Problem]) -> None:
        now = {p.key: p for p in problems}
        for key, problem in now.items():
            if key not in self.active:
                self.alerts.alert(problem.severity, problem.title, problem.text, health=key)
        for key, problem in self.active.items():
            if key not in now:
                self.alerts.alert("info", f"{problem.title}: cleared", "back within limits", health=key)
        self.active = now


__all__ = ["HealthConfig", "HealthMonitor", "HealthReadings", "LoopLagProbe", "Problem", "RssTrend", "assess"]
