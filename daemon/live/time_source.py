"""Where the live node's "now" comes from.

* :class:`WallTime`: the system clock (live trading).
* :class:`PacedTime`: historical time moving ``speed`` times faster than the wall clock, from the
  first bar of a file (the paced file feed: the demo of the live node on bundled data).
* :class:`BarTime`: the release time of the latest bar (a feed of historical bars over MQTT: the
  node's clock follows the data, never the wall).

All times are epoch ns UTC; ``sleep_until`` waits in wall time for a moment of this time source.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class TimeSource(Protocol):
    """The node's clock: ``now()`` in epoch ns UTC; ``observe_bar`` lets bar-driven time move."""

    def now(self) -> int: ...
    def observe_bar(self, ts_init: int) -> None: ...
    async def sleep_until(self, ts: int) -> None: ...


class WallTime:
    """The system clock."""

    def now(self) -> int:
        return time.time_ns()

    def observe_bar(self, ts_init: int) -> None:
        """Bars do not move wall time."""

    async def sleep_until(self, ts: int) -> None:
        delay = (ts - time.time_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)


class PacedTime:
    """Historical time from ``origin_ns`` advancing ``speed`` ns per wall ns (``speed = 600``: ten
    bar-minutes per second); ``speed = 0`` means as fast as possible (sleeps return at once and
    time follows the bars).

    Raises
    ------
    ValueError
        If ``speed`` is negative or not finite.
    """

    def __init__(self, origin_ns: int, speed: float) -> None:
        if not (speed >= 0 and speed != float("inf")):
            raise ValueError(f"speed must be a finite number >= 0 (bar-seconds per second), got {speed!r}")
        self.speed = speed
        self._origin = origin_ns
        self._wall0 = time.monotonic_ns()
        self._latest = origin_ns

    def now(self) -> int:
        if self.speed == 0:
            return self._latest
        return self._origin + int((time.monotonic_ns() - self._wall0) * self.speed)

    def observe_bar(self, ts_init: int) -> None:
        if ts_init > self._latest:
            self._latest = ts_init

    async def sleep_until(self, ts: int) -> None:
        if self.speed == 0:
            await asyncio.sleep(0)
            return
        delay = (ts - self.now()) / self.speed / 1e9
        if delay > 0:
            await asyncio.sleep(delay)


class BarTime:
    """Time is the latest bar's release time (starts at ``origin_ns``)."""

    def __init__(self, origin_ns: int = 0) -> None:
        self._latest = origin_ns

    def now(self) -> int:
        return self._latest

    def observe_bar(self, ts_init: int) -> None:
        if ts_init > self._latest:
            self._latest = ts_init

    async def sleep_until(self, ts: int) -> None:
        await asyncio.sleep(0)


__all__ = ["BarTime", "PacedTime", "TimeSource", "WallTime"]
