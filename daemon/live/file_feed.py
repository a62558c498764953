"""The paced file feed: bundled or downloaded bar files played through the live node in
simulated real time (``speed`` bar-seconds per wall second), each bar released at its end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from backtest.merge import merge_bars
from backtest.sources import BarSeries
from core.events import Bar
from daemon.live.time_source import TimeSource


class PacedFileFeed:
    """Emit the bars of ``series`` (merged by release time, ties by symbol) when ``time`` reaches
    each bar's end.

    Parameters
    ----------
    series
        One :class:`BarSeries` per symbol.
    time
        The node's time source (a :class:`~daemon.live.time_source.PacedTime` for a demo).
    skip_until
        Bars released at or before this epoch ns are skipped (a restarted node resumes after the
        last bar it had accepted instead of replaying the file from the start).
    """

    name = "file"

    def __init__(self, series: Sequence[BarSeries], time: TimeSource, skip_until: int | None = None) -> None:
        self._series = list(series)
        self._time = time
        self._skip = skip_until
        self.emitted = 0
        self.finished = False

    async def run(self, enqueue: Callable[[Bar], Awaitable[None]]) -> None:
        """Emit every bar, then return (the node keeps running until it is stopped)."""
        skip = self._skip
        for bar in merge_bars(self._series):
            if skip is not None and bar.ts_init <= skip:
                continue
            await self._time.sleep_until(bar.ts_init)
            await enqueue(bar)
            self.emitted += 1
        self.finished = True


__all__ = ["PacedFileFeed"]
