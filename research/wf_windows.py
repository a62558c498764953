"""Walk-forward windows (folds) and the bars in them.

The origin is the first bar start of the data, floored to UTC midnight. Fold ``k`` trains on
``[is_start, is_end]`` and is tested on ``[oos_start, oos_end]`` with ``oos_start = is_end``:

* rolling: ``is_start = origin + k * step``, ``is_end = is_start + train``;
* anchored (``anchored=True``): ``is_start = origin``, ``is_end = origin + train + k * step``;
* ``oos_end = min(oos_start + test, last bar end)``; a last window shorter than half of ``test``
  is dropped. ``step`` must not exceed ``test`` (no OOS gaps); when it is shorter, the stitched
  curve takes the first ``step`` of each test window (the set is re-optimized after that), while
  the fold's own metrics are of its whole test window.

A window holds the bars that start at or after its start and are released (known) by its end, so
**no bar of a fold's optimization is released after its OOS window starts**, and every OOS bar
starts at or after it: nothing of the future reaches the choice. Months and years are calendar
ones (``pandas.DateOffset``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtest.aggregator import AggregatedSeries
from backtest.sources import BarSeries
from core.time import to_datetime
from research.optimize import StudyData

__all__ = ["MIN_TEST_FRACTION", "FoldWindow", "WalkForwardError", "data_span", "parse_period", "plan_folds",
           "slice_series", "timestamp_ns", "window_data"]

MIN_TEST_FRACTION = 0.5
"""A last test window shorter than this fraction of ``test`` is dropped."""
_PERIOD = re.compile(r"^\s*(\d+)\s*(y|m|w|d)\s*$", re.IGNORECASE)


class WalkForwardError(ValueError):
    """A walk-forward that cannot run as asked (bad period, windows that do not fit the data)."""


def parse_period(text: str) -> pd.DateOffset:
    """Return the calendar offset of ``"2y"``, ``"6m"`` (months), ``"2w"`` or ``"90d"``.

    Raises
    ------
    WalkForwardError
        If the text is not ``<positive integer><y|m|w|d>``.

    Examples
    --------
    >>> parse_period("6m"), parse_period("2y")
    (<DateOffset: months=6>, <DateOffset: years=2>)
    """
    match = _PERIOD.match(text or "")
    if not match or int(match.group(1)) <= 0:
        raise WalkForwardError(f"period {text!r}: expected a positive number and a unit y, m (months), w or d, "
                               "e.g. 2y, 6m, 3m, 90d")
    n, unit = int(match.group(1)), match.group(2).lower()
    if unit == "y":
        return pd.DateOffset(years=n)
    if unit == "m":
        return pd.DateOffset(months=n)
    return pd.DateOffset(weeks=n) if unit == "w" else pd.DateOffset(days=n)


def timestamp_ns(ts: pd.Timestamp) -> int:
    """Epoch ns of a pandas timestamp (UTC when tz-aware)."""
    return int(ts.value)


@dataclass(frozen=True)
class FoldWindow:
    """The windows of one fold, epoch ns UTC.

    Attributes
    ----------
    index
        Fold number, 0-based, in time order.
    is_start, is_end
        Training window: bars starting at or after ``is_start`` and released by ``is_end``.
    oos_start, oos_end
        Test window; ``oos_start == is_end``.
    stitch_end
        End of the part of the test window in the stitched curve (``min(oos_end, oos_start + step)``).
    """

    index: int
    is_start: int
    is_end: int
    oos_start: int
    oos_end: int
    stitch_end: int

    def label(self, which: str) -> str:
        """``"2019-01-01..2021-01-01"`` for ``"is"``, ``"oos"`` or ``"stitch"``."""
        start, end = {"is": (self.is_start, self.is_end), "oos": (self.oos_start, self.oos_end),
                      "stitch": (self.oos_start, self.stitch_end)}[which]
        return f"{to_datetime(start).date()}..{to_datetime(end).date()}"

    def to_dict(self) -> dict[str, Any]:
        return {"fold": self.index, **{k: to_datetime(getattr(self, k)).isoformat()
                                       for k in ("is_start", "is_end", "oos_start", "oos_end", "stitch_end")}}


def plan_folds(first_ns: int, last_ns: int, *, train: str, test: str, step: str | None = None,
               anchored: bool = False) -> list[FoldWindow]:
    """Return the folds of data spanning ``first_ns`` (first bar start) .. ``last_ns`` (last bar end).

    Parameters
    ----------
    first_ns, last_ns
        Epoch ns UTC.
    train, test, step
        Periods (:func:`parse_period`); ``step`` defaults to ``test``.
    anchored
        Training windows all start at the origin (growing) instead of rolling.

    Raises
    ------
    WalkForwardError
        For a bad period, ``step`` longer than ``test``, or data too short for one fold.

    Examples
    --------
    >>> day = 86_400_000_000_000
    >>> folds = plan_folds(0, 800 * day, train="1y", test="6m")
    >>> [f.label("oos") for f in folds]  # 1972-01-01..03-11 is shorter than half of 6m: dropped
    ['1971-01-01..1971-07-01', '1971-07-01..1972-01-01']
    """
    train_off, test_off = parse_period(train), parse_period(test)
    step_off = parse_period(step) if step is not None else test_off
    origin = pd.Timestamp(first_ns, unit="ns", tz="UTC").floor("D")
    probe = pd.Timestamp("2001-01-01", tz="UTC")
    test_len = timestamp_ns(probe + test_off) - timestamp_ns(probe)
    if timestamp_ns(probe + step_off) - timestamp_ns(probe) > test_len:
        raise WalkForwardError(f"step {step} is longer than test {test}: the OOS windows would leave gaps; "
                               "use a step of at most the test length")
    folds: list[FoldWindow] = []
    k = 0
    while True:
        if anchored:
            is_start, is_end = origin, origin + train_off + step_off * k
        else:
            is_start = origin + step_off * k
            is_end = is_start + train_off
        oos_start = timestamp_ns(is_end)
        if oos_start >= last_ns:
            break
        oos_end = min(timestamp_ns(is_end + test_off), last_ns)
        if oos_end - oos_start < MIN_TEST_FRACTION * (timestamp_ns(is_end + test_off) - oos_start):
            break
        stitch_end = min(oos_end, timestamp_ns(is_end + step_off))
        folds.append(FoldWindow(k, timestamp_ns(is_start), oos_start, oos_start, oos_end, stitch_end))
        k += 1
    if not folds:
        raise WalkForwardError(
            f"the data span {to_datetime(first_ns).date()}..{to_datetime(last_ns).date()} is too short for a "
            f"training window of {train} and (at least half of) a test window of {test}")
    return folds


def slice_series(series: BarSeries, start: int, end: int) -> BarSeries:
    """Bars of ``series`` starting at or after ``start`` and released by ``end`` (epoch ns UTC);
    an :class:`backtest.aggregator.AggregatedSeries` keeps its release times."""
    ts, release = series.ts_event, series.ts_init
    first = int(np.searchsorted(ts, start, side="left"))
    stop = int(np.searchsorted(release, end, side="right"))  # release is non-decreasing
    stop = max(stop, first)
    columns = {name: getattr(series, name)[first:stop] for name in ("ts_event", "open", "high", "low", "close",
                                                                       "volume")}
    if isinstance(series, AggregatedSeries):
        return AggregatedSeries(series.symbol, series.timeframe_ns, **columns, source=series.source,
                                sha256=series.sha256, release=release[first:stop])
    return BarSeries(series.symbol, series.timeframe_ns, **columns, source=series.source, sha256=series.sha256)


def window_data(data: StudyData, start: int, end: int) -> StudyData:
    """The bars of ``data`` in ``[start, end]`` (start at or after ``start``, released by ``end``),
    every timeframe; symbols without a bar there are left out.

    Raises
    ------
    WalkForwardError
        If a timeframe has no bar in the window.
    """
    series: dict[str, list[BarSeries]] = {}
    for label, group in data.series.items():
        kept = [s for s in (slice_series(one, start, end) for one in group) if len(s)]
        if not kept:
            raise WalkForwardError(f"no {label} bars between {to_datetime(start).isoformat()} and "
                                   f"{to_datetime(end).isoformat()}")
        series[label] = kept
    return StudyData(series, data.default)


def data_span(data: StudyData) -> tuple[int, int]:
    """(first bar start, last bar end) of the default timeframe of ``data``, epoch ns UTC."""
    group = data.get(None)
    return (min(int(s.ts_event[0]) for s in group if len(s)), max(int(s.ts_init[-1]) for s in group if len(s)))
