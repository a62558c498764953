"""Stress scenarios injected into bar series: a crash month, a flash crash, an extended drawdown and
a low-volatility stretch, for ``tradingd robustness`` (:mod:`research.robustness`).

Each scenario rewrites only the bars whose start lies in its window ``[start, end)`` (UTC):

* bars before the window are untouched (the very same values);
* bars after it keep their bar-to-bar returns: every price is multiplied by one constant (the level
  the window ended at, relative to the original), volumes unchanged;
* every bar stays valid OHLC: ``0 < low <= open, close <= high``, ``volume >= 0``.

Kinds (prices are USD, depths fractions):

``decline``
    Prices scaled down progressively: the ``k``-th of the window's ``n`` bars is multiplied by
    ``1 - depth * k / n`` (whole bar: open, high, low, close), so the window ends ``depth`` below
    where it would have been, and everything after it is scaled by ``1 - depth``.
``flash_crash``
    On one day: the middle bar of the day plunges to a low ``depth`` below the previous bar's close
    and closes ``depth / 2`` down; the day's later bars recover linearly, the last one unchanged.
    With a single bar in the day the bar recovers by its own close (only its low moves).
``low_volatility``
    Log returns shrunk toward 0: with ``keep = 1 - depth`` and ``ref`` the close before the window,
    ``close' = ref * (close / ref) ** keep`` and each of open, high, low keeps its log distance to
    the close times ``keep`` (``x' = close' * (x / close) ** keep``, monotone, so the bar's order
    survives). After the window the level is scaled by ``close'_last / close_last``.

Windows are calendar spans (``months`` / ``days``), so they are about the same length for 24/7 and
session-based markets: one month holds about 21 US trading days. The market-wide stress hits every
symbol of a universe in the same window (:func:`stress_series`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from backtest.aggregator import AggregatedSeries
from backtest.sources import BarSeries
from core.time import NANOS_PER_DAY

__all__ = ["STRESS_SCENARIOS", "StressError", "StressScenario", "StressWindow", "inject", "ohlc_problems",
           "place_window", "stress_series"]

StressKind = Literal["decline", "flash_crash", "low_volatility"]


class StressError(ValueError):
    """A stress window that cannot be placed in the data (the message says where and why)."""


@dataclass(frozen=True)
class StressScenario:
    """One stress scenario.

    Attributes
    ----------
    name : str
        Identifier (``robustness.json``, ``scenarios.csv``).
    label : str
        What it does, for the report.
    kind : {"decline", "flash_crash", "low_volatility"}
        See the module docstring.
    depth : float
        Decline or crash depth, or the share of each return removed (``low_volatility``); a
        fraction in (0, 1).
    months, days : int
        Length of the window (calendar months plus days, UTC).
    """

    name: str
    label: str
    kind: StressKind
    depth: float
    months: int = 0
    days: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.depth < 1.0:
            raise ValueError(f"stress {self.name}: depth must be a fraction in (0, 1), got {self.depth}")
        if self.months < 0 or self.days < 0 or self.months + self.days == 0:
            raise ValueError(f"stress {self.name}: the window needs a positive length")

    def end_of(self, start_ns: int) -> int:
        """End (exclusive, epoch ns UTC) of the window starting at ``start_ns``."""
        start = pd.Timestamp(start_ns, unit="ns", tz="UTC")
        return int((start + pd.DateOffset(months=self.months, days=self.days)).value)


STRESS_SCENARIOS: tuple[StressScenario, ...] = (
    StressScenario("crash_month", "-20% over one month (about 21 trading days)", "decline", 0.20, months=1),
    StressScenario("flash_crash", "flash crash: -10% intraday low, recovered by the day's close", "flash_crash", 0.10,
                   days=1),
    StressScenario("extended_drawdown", "-35% over six months", "decline", 0.35, months=6),
    StressScenario("low_volatility", "low volatility: returns shrunk by 75% for three months", "low_volatility", 0.75,
                   months=3),
)
"""The four scenarios ``tradingd robustness`` injects (``--no-stress`` skips them)."""


class StressWindow(NamedTuple):
    """Where a stress scenario goes: ``[start, end)`` epoch ns UTC, both UTC midnights, and how it
    was placed.

    Attributes
    ----------
    start, end : int
        The window, end exclusive.
    shortened : bool
        The window is shorter than the scenario's calendar length from ``start`` (the data is
        shorter than twice the window: half of its span instead).
    moved : bool
        The window would have run past the last bar and was moved back to end at the midnight
        after it.
    """

    start: int
    end: int
    shortened: bool = False
    moved: bool = False


def place_window(series: Sequence[BarSeries], scenario: StressScenario, at_ns: int | None = None) -> StressWindow:
    """Where ``scenario`` goes in ``series`` (:class:`StressWindow`).

    The window starts at UTC midnight of the first bar (of any series) at or after ``at_ns``
    (before the first bar: the first bar) and lasts the scenario's calendar length counted from
    that start (:meth:`StressScenario.end_of`); by default it is centred on the middle of the data.
    A window that would run past the last bar is moved back: it then ends at the UTC midnight
    after the last bar and starts the scenario's length before that (a midnight too), so it keeps
    its length (``moved``). Data shorter than twice the window gets a window of about half its
    span (widened to whole UTC days), centred or at ``at_ns`` (``shortened``), so a short run is
    still stressed.

    Raises
    ------
    StressError
        If there are no bars, or ``at_ns`` is after the last bar.

    Examples
    --------
    >>> ts = np.arange(0, 400 * 24, 6, dtype=np.int64) * 3_600_000_000_000  # 400 days of 6-hour bars
    >>> bars = BarSeries("X", 6 * 3_600_000_000_000, ts, *[np.ones(len(ts))] * 5)
    >>> w = place_window([bars], STRESS_SCENARIOS[0], int(pd.Timestamp("1971-01-20T13:00Z").value))
    >>> [str(pd.Timestamp(t, unit="ns").date()) for t in (w.start, w.end)], w.moved, w.shortened
    (['1971-01-05', '1971-02-05'], True, False)
    """
    kept = [s for s in series if len(s)]
    if not kept:
        raise StressError(f"stress {scenario.name}: no bars to stress")
    first = min(int(s.ts_event[0]) for s in kept)
    last = max(int(s.ts_event[-1]) for s in kept)
    if at_ns is not None and at_ns > last:
        raise StressError(f"stress {scenario.name}: --stress-at {_day(at_ns)} is after the last bar ({_day(last)})")
    centre = first + (last - first) // 2
    nominal = scenario.end_of(centre) - centre  # the length around the middle: months differ by a few days
    if last + 1 - first < 2 * nominal:
        half = (last + 1 - first) // 2
        start = first + half // 2 if at_ns is None else max(first, min(at_ns, last + 1 - half))
        start, end = start - start % NANOS_PER_DAY, start + half  # whole UTC days
        end += -end % NANOS_PER_DAY
        return StressWindow(start, end, shortened=end - start < scenario.end_of(start) - start)
    if at_ns is None:
        at_ns = centre - nominal // 2
    at_ns = max(at_ns, first)
    nxt = min(int(s.ts_event[min(int(np.searchsorted(s.ts_event, at_ns)), len(s) - 1)]) for s in kept
              if int(s.ts_event[-1]) >= at_ns)
    start = nxt - nxt % NANOS_PER_DAY
    end = scenario.end_of(start)
    if end <= last + 1:
        return StressWindow(start, end)
    end = last - last % NANOS_PER_DAY + NANOS_PER_DAY  # the midnight after the last bar: a bar boundary
    start = int((pd.Timestamp(end, unit="ns", tz="UTC") - pd.DateOffset(months=scenario.months,
                                                                        days=scenario.days)).value)
    return StressWindow(start, max(end, scenario.end_of(start)), moved=True)


def stress_series(series: Sequence[BarSeries], scenario: StressScenario, window: tuple[int, int]) -> list[BarSeries]:
    """``scenario`` injected into every series in the same ``window`` (a market-wide shock)."""
    return [inject(s, scenario, *window) for s in series]


def inject(series: BarSeries, scenario: StressScenario, start_ns: int, end_ns: int) -> BarSeries:
    """Return ``series`` with ``scenario`` applied to its bars starting in ``[start_ns, end_ns)``.

    The result has the type of ``series`` (an aggregated series keeps its release times), the same
    timestamps and volumes, and prices changed as the module docstring says. A series without
    a bar in the window is returned as it is.

    Raises
    ------
    StressError
        If the result is not valid OHLC (only for input that was not valid to begin with).

    Examples
    --------
    >>> ts = np.arange(4, dtype=np.int64) * 3_600_000_000_000
    >>> bars = BarSeries("X", 3_600_000_000_000, ts, [10.0] * 4, [11.0] * 4, [9.0] * 4, [10.0] * 4, [1.0] * 4)
    >>> month = StressScenario("m", "-20%", "decline", 0.2, days=1)
    >>> inject(bars, month, int(ts[1]), int(ts[3])).close.tolist()
    [10.0, 9.0, 8.0, 8.0]
    """
    ts = series.ts_event
    i0 = int(np.searchsorted(ts, start_ns, side="left"))
    i1 = int(np.searchsorted(ts, end_ns, side="left"))
    if i1 <= i0:
        return series
    o, h, low, c = (np.array(getattr(series, name), dtype=np.float64) for name in ("open", "high", "low", "close"))
    if scenario.kind == "decline":
        _decline(o, h, low, c, i0, i1, scenario.depth)
    elif scenario.kind == "flash_crash":
        _flash_crash(o, h, low, c, i0, i1, scenario.depth)
    else:
        _low_volatility(o, h, low, c, i0, i1, 1.0 - scenario.depth)
    stressed = _with_prices(series, o, h, low, c)
    problems = ohlc_problems(stressed)
    if problems:
        raise StressError(f"stress {scenario.name} on {series.symbol}: {problems[0]} (is the input valid OHLC?)")
    return stressed


def _scale(arrays: Sequence[np.ndarray], rows: slice, factor: np.ndarray | float) -> None:
    for values in arrays:
        values[rows] *= factor


def _decline(o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, i0: int, i1: int, depth: float) -> None:
    n = i1 - i0
    factor = 1.0 - depth * np.arange(1, n + 1, dtype=np.float64) / n
    _scale((o, h, low, c), slice(i0, i1), factor)
    _scale((o, h, low, c), slice(i1, None), 1.0 - depth)


def _flash_crash(o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, i0: int, i1: int, depth: float) -> None:
    crash = i0 + (i1 - i0) // 2
    before = c[crash - 1] if crash > 0 else o[crash]
    after = i1 - 1 - crash  # bars of the day after the crash bar: they recover
    if after > 0:
        trough = 1.0 - depth / 2
        c[crash] *= trough
        # factor from the trough back to 1 on the day's last bar
        factor = 1.0 - (1.0 - trough) * (after - np.arange(1, after + 1, dtype=np.float64)) / after
        _scale((o, h, low, c), slice(crash + 1, i1), factor)
    low[crash] = min(low[crash], before * (1.0 - depth), c[crash])
    h[crash] = max(h[crash], o[crash], c[crash])


def _low_volatility(o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, i0: int, i1: int,
                    keep: float) -> None:
    ref = c[i0 - 1] if i0 > 0 else o[i0]
    rows = slice(i0, i1)
    close = ref * np.exp(keep * np.log(c[rows] / ref))
    for values in (o, h, low):
        values[rows] = close * np.exp(keep * np.log(values[rows] / c[rows]))
    level = close[-1] / c[i1 - 1]
    c[rows] = close
    _scale((o, h, low, c), slice(i1, None), level)


def _with_prices(series: BarSeries, o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray) -> BarSeries:
    if isinstance(series, AggregatedSeries):
        return AggregatedSeries(series.symbol, series.timeframe_ns, series.ts_event, o, h, low, c, series.volume,
                                source=series.source, release=series.ts_init)
    return BarSeries(series.symbol, series.timeframe_ns, series.ts_event, o, h, low, c, series.volume,
                     source=series.source)


def ohlc_problems(series: BarSeries) -> list[str]:
    """What makes ``series`` invalid OHLC (``0 < low <= open, close <= high``, finite prices,
    ``volume >= 0``), at most one message per rule, each naming the first bad bar; [] when valid.

    Examples
    --------
    >>> one = BarSeries("X", 60_000_000_000, [0], [10.0], [9.0], [8.0], [9.5], [0.0])
    >>> ohlc_problems(one)
    ['bar 0 (1970-01-01T00:00:00+00:00): high 9.0 below max(open, close) 10.0']
    """
    o, h, low, c, v = series.open, series.high, series.low, series.close, series.volume
    rules = (
        (~np.isfinite(o) | ~np.isfinite(h) | ~np.isfinite(low) | ~np.isfinite(c), "a price is not finite"),
        (low <= 0, "low {low} is not positive"),
        (low > np.minimum(o, c), "low {low} above min(open, close) {lo}"),
        (h < np.maximum(o, c), "high {high} below max(open, close) {hi}"),
        (~(v >= 0), "volume {volume} is negative"),
    )
    problems = []
    for bad, text in rules:
        where = np.flatnonzero(bad)
        if len(where):
            i = int(where[0])
            detail = text.format(low=low[i], high=h[i], volume=v[i], lo=min(o[i], c[i]), hi=max(o[i], c[i]))
            problems.append(f"bar {i} ({pd.Timestamp(int(series.ts_event[i]), unit='ns', tz='UTC').isoformat()}): "
                            f"{detail}")
    return problems


def _day(ns: int) -> str:
    return str(pd.Timestamp(ns, unit="ns", tz="UTC").date())
