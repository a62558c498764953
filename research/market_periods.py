"""Market periods of a robustness study (``tradingd robustness``, kind ``period``): one calendar
quarter per market type, detected from the benchmark's closes, or the windows given with
``--period``.

Detection reads the benchmark symbol's closes (SPY when in the run, else the first symbol) with the
engine's regime detector (:class:`learning.regime.RegimeDetector`, the run's ``[signals.regime]``
settings): each bar's regime maps to *trending* (low- or high-vol trending), *high volatility*
(high-vol trending or mean-reverting) or *sideways* (low-vol sideways). Every calendar quarter (UTC)
with at least half of its bars past the detector's warm-up is a candidate, and one quarter is taken
per label, each quarter used once, in this order: **high_vol** the quarter with the largest
high-volatility share; **bear** among quarters the benchmark lost in, the largest trending share
times the fall; **bull** among quarters it gained in, the largest trending share times the gain;
**sideways** among quarters that moved less than the median quarter, the largest sideways share
(ties: the smallest move). Hourly bars rarely trend by the detector's measure for most of a
quarter, hence shares and moves rather than a majority rule.

:class:`RobustnessError` is defined here, the first module of the study that checks its input;
:mod:`research.robustness` re-exports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from backtest.sources import BarSeries
from core.enums import Regime
from learning.regime import RegimeConfig, RegimeDetector

__all__ = ["PERIOD_LABELS", "MarketPeriod", "RobustnessError", "benchmark_of", "detect_periods", "given_periods"]

PERIOD_LABELS = ("bull", "bear", "high_vol", "sideways")
"""Names of the detected periods, in report order."""
_TRENDING = (Regime.LOW_VOL_TRENDING.value, Regime.HIGH_VOL_TRENDING.value)
_HIGH_VOL = (Regime.HIGH_VOL_TRENDING.value, Regime.HIGH_VOL_MEAN_REVERTING.value)


class RobustnessError(ValueError):
    """Bad input to a robustness study (a period outside the data, an unknown universe, ...); the
    message says which and what to do."""


@dataclass(frozen=True)
class MarketPeriod:
    """A market period to replay.

    Attributes
    ----------
    name : str
        ``bull``, ``bear``, ``high_vol``, ``sideways``, or the name given with ``--period``.
    start, end : int
        Window, epoch ns UTC (end exclusive).
    benchmark : str
        Symbol whose closes the period was judged on.
    benchmark_return : float or None
        Its return over the period, a fraction.
    share : float or None
        Share of the period's bars (past the detector's warm-up) carrying the period's label.
    source : str
        ``"detected"`` or ``"given"``.
    note : str
        How a given period was cut to the data (empty when it was not).
    """

    name: str
    start: int
    end: int
    benchmark: str
    benchmark_return: float | None = None
    share: float | None = None
    source: str = "detected"
    note: str = ""

    def describe(self) -> str:
        """One line for the report: window, benchmark move and label share."""
        quarter = pd.Timestamp(self.start, unit="ns", tz="UTC").tz_localize(None).to_period("Q")
        when = f"{quarter} " if self.source == "detected" else ""
        span = f"{_date(self.start)} .. {_date(self.end - 1)}"
        move = "" if self.benchmark_return is None else f", {self.benchmark} {self.benchmark_return:+.1%}"
        label = {"bull": "trending", "bear": "trending", "high_vol": "high-volatility", "sideways": "sideways"}
        share = "" if self.share is None else f", {label.get(self.name, self.name)} {self.share:.0%} of its bars"
        return f"{when}({span}{move}{share}; {self.source})"


def benchmark_of(series: Sequence[BarSeries]) -> BarSeries:
    """SPY when among ``series``, else the first."""
    return next((s for s in series if s.symbol.upper() == "SPY"), series[0])


class _Quarter(NamedTuple):
    """A candidate quarter: window (epoch ns UTC), benchmark move (fraction) and label shares."""

    start: int
    end: int
    move: float
    high_vol: float
    trending: float
    sideways: float


def detect_periods(series: BarSeries, regime: RegimeConfig) -> tuple[list[MarketPeriod], list[str]]:
    """One calendar quarter per label (bull, bear, high_vol, sideways), chosen as the module
    docstring says from the regime detector's reading of ``series``' closes.

    Returns
    -------
    (periods, notes)
        The periods found (in label order) and a note per label no quarter fits.
    """
    detector = RegimeDetector(regime)
    labels = np.array([detector.update_closes((float(c),)).value for c in series.close], dtype=object)
    quarters = pd.DatetimeIndex(pd.to_datetime(series.ts_event, unit="ns", utc=True)).tz_localize(None).to_period("Q")
    candidates: list[_Quarter] = []
    codes = np.asarray(quarters.asi8)
    bounds = np.flatnonzero(np.diff(codes)) + 1
    for first, stop in zip(np.r_[0, bounds].tolist(), np.r_[bounds, len(codes)].tolist()):
        part = labels[first:stop]
        known = part[part != Regime.UNKNOWN.value]
        if stop - first < 20 or len(known) < 0.5 * (stop - first):
            continue  # mostly the detector's warm-up
        quarter = quarters[first]
        ref = float(series.close[first - 1]) if first > 0 else float(series.open[first])
        candidates.append(_Quarter(
            start=max(int(quarter.start_time.tz_localize("UTC").value), int(series.ts_event[first])),
            end=int((quarter + 1).start_time.tz_localize("UTC").value), move=float(series.close[stop - 1]) / ref - 1.0,
            high_vol=float(np.isin(known, _HIGH_VOL).mean()), trending=float(np.isin(known, _TRENDING).mean()),
            sideways=float((known == Regime.LOW_VOL_SIDEWAYS.value).mean())))
    quiet = float(np.median([abs(q.move) for q in candidates])) if candidates else 0.0
    rules: list[tuple[str, Callable[[_Quarter], float], Callable[[_Quarter], bool],
                      Callable[[_Quarter], tuple[float, float]]]] = [
        ("high_vol", lambda q: q.high_vol, lambda q: True, lambda q: (q.high_vol, abs(q.move))),
        ("bear", lambda q: q.trending, lambda q: q.move < 0, lambda q: (q.trending * -q.move, -q.move)),
        ("bull", lambda q: q.trending, lambda q: q.move > 0, lambda q: (q.trending * q.move, q.move)),
        ("sideways", lambda q: q.sideways, lambda q: abs(q.move) <= quiet, lambda q: (q.sideways, -abs(q.move))),
    ]
    chosen: dict[str, MarketPeriod] = {}
    used: set[int] = set()
    notes = []
    for label, share, eligible, key in rules:
        pool = [q for q in candidates if q.start not in used and eligible(q)]
        if not pool:
            notes.append(f"period {label}: no calendar quarter of {series.symbol} fits (too little data past the "
                         "regime detector's warm-up, or no quarter moved that way)")
            continue
        best = max(pool, key=key)
        used.add(best.start)
        chosen[label] = MarketPeriod(label, best.start, best.end, series.symbol, best.move, share(best))
    return [chosen[label] for label in PERIOD_LABELS if label in chosen], notes


def given_periods(series: Sequence[BarSeries], given: Sequence[tuple[str, int, int]]) -> list[MarketPeriod]:
    """The ``--period`` windows, checked against the data.

    The data covers whole UTC days, from the midnight of the first bar to the midnight after the
    last one ends (so ``2019-01-01`` covers a 14:30 first bar). A period that runs past either end
    is cut to it, as a detected quarter is measured only over the bars it has, and says so in its
    :attr:`MarketPeriod.note`; one entirely outside the data, or without a bar, is refused.

    Raises
    ------
    RobustnessError
        For a period outside the data, or without a bar.
    """
    kept = [s for s in series if len(s)]
    first = min(int(s.ts_event[0]) for s in kept)
    last = max(int(s.ts_init[-1]) for s in kept)
    day = 86_400_000_000_000
    low, high = first - first % day, last - last % day + day  # whole days: 2019-01-01 covers a 14:30 first bar
    if last % day == 0:
        high = last  # the last bar ends at midnight: that day holds none of the data
    bench = benchmark_of(kept)
    periods = []
    for name, start, end in given:
        if end <= low or start >= high:
            raise RobustnessError(f"--period {name}={_date(start)}:{_date(end)} is outside the run's data "
                                  f"({_date(first)} .. {_date(last - 1)}); give dates inside it")
        cuts = []
        if start < low:
            start = low
            cuts.append(f"starts on {_date(low)}")
        if end > high:
            end = high
            cuts.append(f"ends on {_date(high - 1)}")
        note = (f"--period {name}: cut to {_date(start)} .. {_date(end - 1)}, the run's data, which "
                f"{' and '.join(cuts)}") if cuts else ""
        if not any(np.any((s.ts_event >= start) & (s.ts_event < end)) for s in kept):
            raise RobustnessError(f"--period {name}: no bar between {_date(start)} and {_date(end)}")
        closes = bench.close[(bench.ts_event >= start) & (bench.ts_event < end)]
        before = bench.close[bench.ts_event < start]
        ref = float(before[-1]) if len(before) else (float(closes[0]) if len(closes) else None)
        move = float(closes[-1]) / ref - 1.0 if len(closes) and ref else None
        periods.append(MarketPeriod(name, start, end, bench.symbol, move, None, "given", note))
    return periods


def _date(ns: int) -> str:
    """The UTC date of epoch ``ns`` (``"2019-01-02"``), for messages and notes."""
    return str(pd.Timestamp(ns, unit="ns", tz="UTC").date())
