"""Walk-forward validation: optimize on a training window, trade the chosen set on the window after
it, move on, and stitch the out-of-sample (OOS) pieces into one curve. A loop over replays of the
one engine (:func:`research.optimize.run_study` in sample, :func:`backtest.replay.run_replay` out
of sample).

Windows (:func:`plan_folds`). The origin is the first bar start of the data, floored to UTC
midnight. Fold ``k`` trains on ``[is_start, is_end]`` and is tested on ``[oos_start, oos_end]``
with ``oos_start = is_end``:

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

Out of sample the chosen set is replayed from the start of its training window (at most ``train``
back) with its orders blocked until the OOS start (:class:`TradeFrom`): indicators, the regime
detector and learners are warm, as a live node started with history would be, but every trade
happens out of sample and the equity is flat until then. Each fold starts flat with the starting
cash; the stitched curve chains the folds' returns (a position open at a fold's end is valued at
its mark, as if sold there without costs). A fold whose study ranked no trial stays in cash.

Across folds: walk-forward efficiency (Pardo 2008, "The Evaluation and Optimization of Trading
Strategies", 2nd ed., Wiley, ch. 11: annualized OOS return over annualized IS return; here the mean
over folds of the OOS CAGR over the mean IS CAGR of the chosen sets), the share of profitable OOS
folds, parameter stability (:func:`parameter_stability`), and optionally the re-optimization
frequency that worked best (``compare_steps``: the whole walk-forward with ``test = step = s``
for each ``s``, compared on their common OOS span) and a regime-aware variant (the best set per
market regime of the training window, applied OOS by the regime the engine's detector reports,
against the single best set).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from alerts.sinks import MemoryAlertSink
from backtest.aggregator import AggregatedSeries
from backtest.replay import ReplayResult, run_replay
from backtest.sources import BarSeries
from backtest.spec import RunSpec
from core.enums import Regime
from core.events import Bar
from core.intents import OrderIntent
from core.time import to_datetime
from learning.regime import RegimeDetector
from research.benchmark import benchmark_curve, resolve_benchmark
from research.metrics import compute_metrics
from research.optimize import (COUNTED, METRIC_KEYS, OBJECTIVES, OptimizeError, StudyData, StudyResult, TrialFilters,
                               parse_objectives, run_study)
from research.overfitting_verdict import metric_degradation
from research.search_space import SearchSpace
from research.study_stats import DiscardStore, TrialReturns, statistics_text, study_statistics, trial_returns
from strategies.registry import build_strategy

__all__ = ["DEGRADATION_METRICS", "Fold", "FoldRegime", "FoldWindow", "RegimeSummary", "StepResult", "TradeFrom",
           "WalkForwardError", "WalkForwardResult", "parameter_stability", "parse_period", "plan_folds",
           "sensitivity", "summary_text", "walk_forward", "window_data", "write_walk_forward_outputs"]

DEGRADATION_METRICS = ("sharpe", "sortino", "cagr", "max_drawdown", "win_rate", "profit_factor")
"""Metrics compared in sample vs out of sample per fold (annualized ones, so windows of different
lengths compare)."""
MIN_TEST_FRACTION = 0.5
"""A last test window shorter than this fraction of ``test`` is dropped."""
MIN_REGIME_DAYS = 20
"""Training days a regime needs before it gets a set of its own (else the single best set)."""
STABLE_RANGE_STD = 0.25
"""A numeric parameter is stable when its std across folds is at most this fraction of its range
(project convention)."""
_PERIOD = re.compile(r"^\s*(\d+)\s*(y|m|w|d)\s*$", re.IGNORECASE)
_DAY = 86_400_000_000_000


class WalkForwardError(ValueError):
    """A walk-forward that cannot run as asked (bad period, windows that do not fit the data)."""


# --- windows ----------------------------------------------------------------------------------------

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


def _ns(ts: pd.Timestamp) -> int:
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
    test_len = _ns(probe + test_off) - _ns(probe)
    if _ns(probe + step_off) - _ns(probe) > test_len:
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
        oos_start = _ns(is_end)
        if oos_start >= last_ns:
            break
        oos_end = min(_ns(is_end + test_off), last_ns)
        if oos_end - oos_start < MIN_TEST_FRACTION * (_ns(is_end + test_off) - oos_start):
            break
        stitch_end = min(oos_end, _ns(is_end + step_off))
        folds.append(FoldWindow(k, _ns(is_start), oos_start, oos_start, oos_end, stitch_end))
        k += 1
    if not folds:
        raise WalkForwardError(
            f"the data span {to_datetime(first_ns).date()}..{to_datetime(last_ns).date()} is too short for a "
            f"training window of {train} and (at least half of) a test window of {test}")
    return folds


def _slice(series: BarSeries, start: int, end: int) -> BarSeries:
    """Bars of ``series`` starting at or after ``start`` and released by ``end``."""
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
        kept = [s for s in (_slice(one, start, end) for one in group) if len(s)]
        if not kept:
            raise WalkForwardError(f"no {label} bars between {to_datetime(start).isoformat()} and "
                                   f"{to_datetime(end).isoformat()}")
        series[label] = kept
    return StudyData(series, data.default)


def _span(data: StudyData) -> tuple[int, int]:
    group = data.get(None)
    return (min(int(s.ts_event[0]) for s in group if len(s)), max(int(s.ts_init[-1]) for s in group if len(s)))


# --- out-of-sample replays --------------------------------------------------------------------------

class TradeFrom:
    """A strategy that sees every bar but trades only from ``start_ns`` on.

    Every bar goes to ``inner`` (its indicators and state stay warm); its intents pass only for
    bars starting at or after ``start_ns`` (epoch ns UTC), so a replay that begins earlier warms up
    on past bars and trades none of them.

    Parameters
    ----------
    inner
        The strategy (anything with ``strategy_id``, ``params``, ``uses_learner``, ``on_bar``).
    start_ns
        First bar start that may trade.
    """

    def __init__(self, inner: Any, start_ns: int) -> None:
        self.inner = inner
        self.start_ns = start_ns
        self.strategy_id: str = inner.strategy_id

    @property
    def params(self) -> Any:
        return self.inner.params

    @property
    def uses_learner(self) -> bool:
        return bool(self.inner.uses_learner)

    def on_bar(self, ctx: Any, bar: Bar) -> Sequence[OrderIntent]:
        intents = self.inner.on_bar(ctx, bar)
        return intents if bar.ts_event >= self.start_ns else ()


class _RegimeSwitch:
    """Runs one strategy per market regime on every bar and passes on the intents of the one for
    the regime the engine's detector reports for ``symbol`` (``default`` for the others), from
    ``start_ns`` on."""

    def __init__(self, default: Any, by_regime: Mapping[Regime, Any], symbol: str, start_ns: int) -> None:
        self.default, self.by_regime, self.symbol, self.start_ns = default, dict(by_regime), symbol, start_ns
        self.strategies = list({id(s): s for s in (default, *by_regime.values())}.values())
        self.strategy_id: str = default.strategy_id

    @property
    def params(self) -> Any:
        return self.default.params

    @property
    def uses_learner(self) -> bool:
        return any(s.uses_learner for s in self.strategies)

    def on_bar(self, ctx: Any, bar: Bar) -> Sequence[OrderIntent]:
        out = {id(s): s.on_bar(ctx, bar) for s in self.strategies}  # every one stays warm
        if bar.ts_event < self.start_ns:
            return ()
        chosen = self.by_regime.get(ctx.regime(self.symbol), self.default)
        return out[id(chosen)]


@dataclass(frozen=True)
class _OosRun:
    equity: pd.Series  # USD, from the OOS start (first point = the value then)
    metrics: dict[str, Any]
    trades: list[Any]
    error: str = ""


def _oos_metrics(equity: pd.Series, result: ReplayResult | None, start: int, end: int) -> dict[str, Any]:
    trades = [t for t in (result.trades if result is not None else []) if start <= t.ts_init <= end]
    fills = [f for f in (result.fills if result is not None else []) if start <= f.ts_init <= end]
    exposure = None
    if result is not None:
        keep = (result.equity_ts > start) & (result.equity_ts <= end)
        exposure = pd.Series(result.gross_exposure[keep] / result.equity[keep])
    m = compute_metrics(equity, trades=pd.DataFrame({"pnl": [t.pnl for t in trades]}),
                        fills=pd.DataFrame({"quantity": [f.quantity for f in fills], "price": [f.price for f in fills]}),
                        exposure=exposure).to_dict()
    return {k: m.get(k) for k in METRIC_KEYS}


def _cut(equity_ts: np.ndarray, equity: np.ndarray, start: int, end: int, cash: float) -> pd.Series:
    """The curve on ``(start, end]`` with its value at ``start`` (the last point by then, else
    ``cash``) as the first point."""
    before = int(np.searchsorted(equity_ts, start, side="right"))
    stop = int(np.searchsorted(equity_ts, end, side="right"))
    anchor = float(equity[before - 1]) if before > 0 else cash
    ts = np.concatenate(([start], equity_ts[before:stop]))
    values = np.concatenate(([anchor], equity[before:stop]))
    if len(ts) == 1:  # no bar in the window: flat
        ts, values = np.array([start, end]), np.array([anchor, anchor])
    return pd.Series(values, index=pd.to_datetime(ts, unit="ns", utc=True), name="equity")


def _replay_oos(data: StudyData, spec: RunSpec, timeframe: str | None, window: FoldWindow, warm_start: int,
                strategy: Any = None) -> tuple[_OosRun, _OosRun]:
    """Replay on ``[warm_start, oos_end]``, trading from ``oos_start``; return the fold's run (whole
    test window) and its stitched part (to ``stitch_end``)."""
    cash = spec.replay.starting_cash
    series = [s for s in (_slice(one, warm_start, window.oos_end) for one in data.get(timeframe)) if len(s)]
    try:
        if strategy is None:
            strategy = TradeFrom(build_strategy(spec.strategy, spec.params), window.oos_start)
        alerts = MemoryAlertSink()
        result = run_replay(series, spec, store=DiscardStore(), alerts=alerts, strategy=strategy,
                            run_id=f"oos-{window.index}")
        error = "" if result.strategy_enabled else next(
            (text for _, title, text, _ in alerts.alerts if "disabled" in title), "the strategy was disabled")
    except Exception as exc:  # a fold that cannot replay stays in cash and says why
        reason = f"{type(exc).__name__}: {exc}"
        flat = [_cut(np.array([], dtype=np.int64), np.array([]), window.oos_start, end, cash)
                for end in (window.oos_end, window.stitch_end)]
        return (_OosRun(flat[0], _oos_metrics(flat[0], None, window.oos_start, window.oos_end), [], reason),
                _OosRun(flat[1], {}, [], reason))
    runs = []
    for end in (window.oos_end, window.stitch_end):
        equity = _cut(result.equity_ts, result.equity, window.oos_start, end, cash)
        trades = [t for t in result.trades if window.oos_start <= t.ts_init <= end]
        runs.append(_OosRun(equity, _oos_metrics(equity, result, window.oos_start, end), trades, error))
    return runs[0], runs[1]


def _stitch(segments: Sequence[tuple[int, pd.Series]], cash: float) -> tuple[pd.Series, pd.Series]:
    """Chain the segments' returns from ``cash``: (equity USD, fold index) on one UTC index."""
    values: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
    folds: list[np.ndarray] = []
    capital, last = cash, None
    for index, seg in segments:
        ts = pd.DatetimeIndex(seg.index).asi8
        growth = seg.to_numpy() / float(seg.iloc[0])
        keep = ts > last if last is not None else np.ones(len(ts), dtype=bool)
        values.append(capital * growth[keep])
        stamps.append(ts[keep])
        folds.append(np.full(int(keep.sum()), index))
        capital *= float(growth[-1])
        last = int(ts[-1]) if len(ts) else last
    index_ = pd.to_datetime(np.concatenate(stamps), unit="ns", utc=True)
    return (pd.Series(np.concatenate(values), index=index_, name="equity"),
            pd.Series(np.concatenate(folds), index=index_, name="fold"))


# --- regimes ----------------------------------------------------------------------------------------

def _regime_symbol(symbols: Sequence[str], wanted: str | None) -> str:
    if wanted:
        match = [s for s in symbols if s.lower() == wanted.lower()]
        if not match:
            raise WalkForwardError(f"regime symbol {wanted!r} is not in the data ({', '.join(symbols)})")
        return match[0]
    return "SPY" if "SPY" in symbols else symbols[0]


def _day_regimes(series: BarSeries, spec: RunSpec, days: pd.DatetimeIndex) -> np.ndarray:
    """Regime (value) of each day: the detector's reading on ``series`` as of the day's start (the
    last bar released by then), with ``spec``'s regime settings."""
    detector = RegimeDetector(spec.signals.regime)
    labels = np.array([detector.update_closes((float(c),)).value for c in series.close], dtype=object)
    at = np.searchsorted(series.ts_init, days.asi8, side="right") - 1
    out = np.full(len(days), Regime.UNKNOWN.value, dtype=object)
    out[at >= 0] = labels[at[at >= 0]]
    return out


@dataclass
class FoldRegime:
    """The regime-aware choice of one fold.

    Attributes
    ----------
    symbol
        Whose regime (the market's) picks the set.
    params
        Regime value (``"low_vol_trending"``, ...) -> the space values used in it; regimes with
        fewer than :data:`MIN_REGIME_DAYS` training days use the single best set.
    scores, days
        Regime -> annualized Sharpe of the chosen set on that regime's training days, and how
        many days there were.
    oos_metrics, oos_equity
        The regime-switching replay over the test window (USD from the starting cash).
    """

    symbol: str
    params: dict[str, dict[str, Any]]
    scores: dict[str, float | None]
    days: dict[str, int]
    oos_metrics: dict[str, Any] | None = None
    oos_equity: pd.Series | None = None
    stitched: pd.Series | None = field(default=None, repr=False)
    stitched_pnl: list[float] = field(default_factory=list, repr=False)


def _choose_by_regime(study: StudyResult, returns: TrialReturns, data: StudyData, symbol: str) -> FoldRegime | None:
    best = study.best
    setup = study.best_setup
    if best is None or setup is None:
        return None
    fixed = {k: v for k, v in best.params.items() if not k.startswith("params.")}
    candidates = [t for t in study.ranked
                  if {k: v for k, v in t.params.items() if not k.startswith("params.")} == fixed
                  and returns.column(t.params) is not None]
    frame = returns.returns
    if frame.empty:
        return None
    ref = next((s for s in data.get(setup.timeframe) if s.symbol == symbol), None)
    if ref is None:
        return None
    labels = _day_regimes(ref, setup.spec, pd.DatetimeIndex(frame.index))
    ppy = returns.periods_per_year
    out = FoldRegime(symbol, {}, {}, {})
    for regime in (r for r in Regime if r is not Regime.UNKNOWN):
        mask = labels == regime.value
        out.days[regime.value] = int(mask.sum())
        chosen, score = best, None
        if mask.sum() >= MIN_REGIME_DAYS:
            scored = []
            for t in candidates:
                r = frame[returns.column(t.params)].to_numpy()[mask]
                std = float(r.std(ddof=1))
                if std > 0:
                    scored.append((float(r.mean()) / std * math.sqrt(ppy), t))
            if scored:
                score, chosen = max(scored, key=lambda x: (x[0], -x[1].number))
        out.params[regime.value] = dict(chosen.params)
        out.scores[regime.value] = score
    return out


# --- results ----------------------------------------------------------------------------------------

@dataclass
class Fold:
    """One fold: the IS study, the chosen set and how it did out of sample.

    Attributes
    ----------
    index, window
        Fold number and its windows (:class:`FoldWindow`, ns UTC; ``is_start`` ... also as
        datetimes through the properties of the same names).
    status, reason
        ``"ok"``; ``"no_ranked_trial"`` (no trial passed the filters: the fold stays in cash);
        ``"failed"`` (the study or the OOS replay could not run; in cash).
    study_name
        The IS study (in the storage; running again resumes it).
    params
        Space values chosen (``"params.fast"``, ``"timeframe"``...), None without a ranked trial.
    spec, timeframe
        The chosen run.
    is_metrics, oos_metrics
        :data:`research.optimize.METRIC_KEYS` of the chosen set in sample (its study trial) and
        over the test window.
    degradation
        Metric -> ``(IS - OOS) / |IS|`` (lower-is-better metrics the other way round: positive =
        OOS worse), None when undefined; for :data:`DEGRADATION_METRICS`.
    efficiency
        OOS CAGR / IS CAGR (None unless the IS CAGR is positive).
    oos_equity
        Equity over the test window, USD, from the starting cash (first point at ``oos_start``).
    statistics
        :func:`research.study_stats.study_statistics` of the IS study with this fold's OOS
        metrics as the holdout (None when not computed).
    study
        The IS :class:`research.optimize.StudyResult`.
    regime
        The regime-aware choice (:class:`FoldRegime`), when asked for.
    """

    index: int
    window: FoldWindow
    status: str
    reason: str
    study_name: str
    params: dict[str, Any] | None
    spec: RunSpec | None
    timeframe: str | None
    is_metrics: dict[str, Any] | None
    oos_metrics: dict[str, Any] | None
    degradation: dict[str, float | None]
    efficiency: float | None
    oos_equity: pd.Series
    statistics: dict[str, Any] | None = None
    study: StudyResult | None = field(default=None, repr=False)
    regime: FoldRegime | None = None
    stitched: pd.Series | None = field(default=None, repr=False)  # the part in the stitched curve
    stitched_pnl: list[float] = field(default_factory=list, repr=False)  # its round trips, USD

    @property
    def is_start(self) -> pd.Timestamp:
        return pd.Timestamp(self.window.is_start, unit="ns", tz="UTC")

    @property
    def is_end(self) -> pd.Timestamp:
        return pd.Timestamp(self.window.is_end, unit="ns", tz="UTC")

    @property
    def oos_start(self) -> pd.Timestamp:
        return pd.Timestamp(self.window.oos_start, unit="ns", tz="UTC")

    @property
    def oos_end(self) -> pd.Timestamp:
        return pd.Timestamp(self.window.oos_end, unit="ns", tz="UTC")

    def to_dict(self) -> dict[str, Any]:
        return {**self.window.to_dict(), "status": self.status, "reason": self.reason, "study": self.study_name,
                "params": self.params, "timeframe": self.timeframe, "is_metrics": self.is_metrics,
                "oos_metrics": self.oos_metrics, "degradation": self.degradation, "efficiency": self.efficiency,
                "statistics": _trim(self.statistics, keep=()),
                "regime": None if self.regime is None else {
                    "symbol": self.regime.symbol, "params": self.regime.params, "scores": self.regime.scores,
                    "days": self.regime.days, "oos_metrics": self.regime.oos_metrics}}


@dataclass
class StepResult:
    """One re-optimization frequency of the comparison (``test = step``).

    Attributes
    ----------
    step
        The period (``"3m"``).
    folds
        Folds it ran.
    oos_metrics
        Metrics of its stitched OOS curve over the span all compared steps share.
    efficiency, profitable_share
        As :class:`WalkForwardResult`.
    oos_equity
        Its stitched curve on the common span, USD from the starting cash.
    """

    step: str
    folds: int
    oos_metrics: dict[str, Any]
    efficiency: float | None
    profitable_share: float
    oos_equity: pd.Series = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "folds": self.folds, "oos_metrics": self.oos_metrics,
                "efficiency": self.efficiency, "profitable_share": self.profitable_share}


@dataclass
class RegimeSummary:
    """Regime-aware sets against the single best set, both out of sample.

    Attributes
    ----------
    symbol
        The symbol whose regime picks the set.
    oos_equity
        Stitched OOS curve of the regime-switching replays, USD.
    oos_metrics, single_metrics
        Metrics of that curve and of the single-best-set curve (``WalkForwardResult.oos_equity``).
    better
        Whether the regime-aware curve beat the single set on the first objective.
    """

    symbol: str
    oos_equity: pd.Series = field(repr=False)
    oos_metrics: dict[str, Any] = field(default_factory=dict)
    single_metrics: dict[str, Any] = field(default_factory=dict)
    better: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "oos_metrics": self.oos_metrics, "single_metrics": self.single_metrics,
                "better": self.better}


@dataclass
class WalkForwardResult:
    """What :func:`walk_forward` returns; the CLI's files and the study report build on it.

    Attributes
    ----------
    strategy, method, objectives, directions
        As the studies.
    train, test, step, anchored
        The window settings as given (``"2y"``, ``"6m"``...).
    space, base
        The search space and the run every trial starts from.
    folds
        :class:`Fold` list, in time order.
    oos_equity, oos_fold
        The stitched OOS curve (USD from ``base.replay.starting_cash``, UTC index) and the fold
        each point belongs to.
    oos_metrics
        :data:`research.optimize.METRIC_KEYS` of the stitched curve (all OOS trades).
    benchmark_equity, benchmark_label, benchmark_metrics
        Buy-and-hold on the same index (:func:`research.benchmark.benchmark_curve`; SPY when in
        the data, else equal weight), None when ``benchmark="none"``.
    efficiency
        Walk-forward efficiency: mean OOS CAGR / mean IS CAGR of the chosen sets (Pardo 2008);
        None unless the IS mean is positive.
    sharpe_efficiency
        The same ratio of Sharpe ratios.
    profitable_share
        Share of folds whose test window made money (folds in cash count as not profitable).
    stability
        :func:`parameter_stability` of the chosen sets.
    step_comparison, best_step
        :class:`StepResult` per compared step and the best one (first objective), when asked.
    regime
        :class:`RegimeSummary`, when asked.
    final_study, final_window
        The study on the latest training window (ending at the last bar): its best set is the one
        for the next live period (``best.toml``); window as (start, end) ns UTC.
    statistics
        :func:`research.study_stats.study_statistics` of this run (``kind="walk_forward"``, with
        the final study's block under ``study``).
    runtime_s, period, timeframe
        Wall time, the data span (ISO-8601 UTC) and the default bar length.
    notes
        What went wrong on the way (a window's study that could not run: that fold stayed in cash).
    """

    strategy: str
    method: str
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    train: str
    test: str
    step: str
    anchored: bool
    space: SearchSpace
    base: RunSpec
    folds: list[Fold]
    oos_equity: pd.Series
    oos_fold: pd.Series
    oos_metrics: dict[str, Any]
    benchmark_equity: pd.Series | None
    benchmark_label: str
    benchmark_metrics: dict[str, Any] | None
    efficiency: float | None
    sharpe_efficiency: float | None
    profitable_share: float
    stability: dict[str, Any]
    step_comparison: list[StepResult] | None = None
    best_step: str | None = None
    regime: RegimeSummary | None = None
    final_study: StudyResult | None = None
    final_window: tuple[int, int] | None = None
    statistics: dict[str, Any] | None = None
    runtime_s: float = 0.0
    period: tuple[str, str] = ("", "")
    timeframe: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (curves left out: they are in oos_equity.csv)."""
        final = self.final_study
        return _json_safe({
            "strategy": self.strategy, "method": self.method, "objectives": list(self.objectives),
            "train": self.train, "test": self.test, "step": self.step, "anchored": self.anchored,
            "space": self.space.source, "period": {"start": self.period[0], "end": self.period[1]},
            "timeframe": self.timeframe, "runtime_s": self.runtime_s, "folds": [f.to_dict() for f in self.folds],
            "oos_metrics": self.oos_metrics, "benchmark": {"label": self.benchmark_label,
                                                           "metrics": self.benchmark_metrics},
            "efficiency": self.efficiency, "sharpe_efficiency": self.sharpe_efficiency,
            "profitable_share": self.profitable_share, "stability": self.stability,
            "step_comparison": None if self.step_comparison is None else [s.to_dict() for s in self.step_comparison],
            "best_step": self.best_step, "regime": None if self.regime is None else self.regime.to_dict(),
            "final": None if final is None else {
                "study": final.study_name, "window": None if self.final_window is None else
                [to_datetime(t).isoformat() for t in self.final_window],
                "best": None if final.best is None else final.best.to_dict()},
            "statistics": _trim(self.statistics, keep=("logits",)), "notes": self.notes})


_PBO_ARRAYS = ("logits", "oos_relative_rank", "best_trial", "is_performance", "oos_performance")


def _trim(stats: Mapping[str, Any] | None, keep: Sequence[str]) -> dict[str, Any] | None:
    """``stats`` without the per-combination CSCV arrays but ``keep`` (12,870 values each at 16
    splits: too many to repeat per fold in a JSON file), here and in its nested ``study`` block."""
    if stats is None:
        return None
    out = dict(stats)
    if out.get("pbo_detail"):
        out["pbo_detail"] = {k: v for k, v in out["pbo_detail"].items() if k not in _PBO_ARRAYS or k in keep}
    if isinstance(out.get("study"), Mapping):
        out["study"] = _trim(out["study"], keep)
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    return value


# --- across folds -----------------------------------------------------------------------------------

def parameter_stability(space: SearchSpace, chosen: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How much the chosen sets move from fold to fold.

    Per searched key: the values in fold order, ``changes`` (fold-to-fold changes), ``mode`` and
    ``mode_share``; numeric keys also ``mean``, ``std`` (population) and ``range_std`` = std /
    (high - low) of the space. A numeric key is ``stable`` when ``range_std <=``
    :data:`STABLE_RANGE_STD`, a categorical one when its mode holds in at least half the folds
    (project conventions). ``score`` = mean over keys of ``1 - min(1, 2 * range_std)`` (numeric)
    or ``mode_share`` (categorical), 1 = the same set every fold.

    Examples
    --------
    >>> from research.search_space import parse_space
    >>> space = parse_space({"params": {"fast": {"type": "int", "low": 10, "high": 50}}}, strategy="sma_cross")
    >>> s = parameter_stability(space, [{"params.fast": 20}, {"params.fast": 20}, {"params.fast": 30}])
    >>> s["params"]["params.fast"]["changes"], s["params"]["params.fast"]["stable"], round(s["score"], 3)
    (1, True, 0.764)
    """
    out: dict[str, Any] = {"params": {}, "score": None, "folds": len(chosen)}
    scores = []
    for dim in space.dimensions:
        values = [c.get(dim.key) for c in chosen if dim.key in c]
        if not values:
            continue
        counts: dict[str, int] = {}
        for v in values:
            counts[json.dumps(v)] = counts.get(json.dumps(v), 0) + 1
        mode_key = max(counts, key=lambda k: counts[k])
        entry: dict[str, Any] = {"values": values, "changes": sum(a != b for a, b in zip(values, values[1:])),
                                 "mode": json.loads(mode_key), "mode_share": counts[mode_key] / len(values)}
        if dim.kind != "categorical" and dim.low is not None and dim.high is not None:
            arr = np.asarray(values, dtype=float)
            width = float(dim.high) - float(dim.low)
            range_std = float(arr.std()) / width if width > 0 else 0.0
            entry.update(mean=float(arr.mean()), std=float(arr.std()), range_std=range_std,
                         stable=range_std <= STABLE_RANGE_STD)
            scores.append(1.0 - min(1.0, 2.0 * range_std))
        else:
            entry["stable"] = entry["mode_share"] >= 0.5
            scores.append(entry["mode_share"])
        out["params"][dim.key] = entry
    out["score"] = float(np.mean(scores)) if scores else None
    return out


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _mean(values: Iterable[Any]) -> float | None:
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(kept)) if kept else None


def _trades_metrics(equity: pd.Series, pnl: Sequence[float]) -> dict[str, Any]:
    """Metrics of a stitched curve with the round trips (net USD) of its parts."""
    no_fills = pd.DataFrame({"quantity": [], "price": []})  # turnover is per fold (folds.csv)
    m = compute_metrics(equity, trades=pd.DataFrame({"pnl": list(pnl)}), fills=no_fills).to_dict()
    return {k: m.get(k) for k in METRIC_KEYS}


def _better(a: float | None, b: float | None, direction: str) -> bool:
    if a is None:
        return False
    if b is None:
        return True
    return a > b if direction == "maximize" else a < b


# --- the loop ---------------------------------------------------------------------------------------

Progress = Callable[[str], None]


def walk_forward(base: RunSpec, space: SearchSpace, data: StudyData, *, storage: str | optuna.storages.BaseStorage,
                 train: str = "2y", test: str = "6m", step: str | None = None, anchored: bool = False,
                 method: str = "tpe", n_trials: int | None = 50, objectives: str | Sequence[str] = ("sharpe",),
                 jobs: int = 1, seed: int | None = 0, filters: TrialFilters = TrialFilters(),
                 prune: bool | None = None, use_cache: bool = True, regime_aware: bool = False,
                 regime_symbol: str | None = None, compare_steps: Sequence[str] = (), benchmark: str | None = None,
                 statistics: bool = True, final: bool = True, progress: Progress | None = None) -> WalkForwardResult:
    """Run a walk-forward validation of ``space`` on ``data``.

    Parameters
    ----------
    base, space, storage, method, n_trials, objectives, jobs, seed, filters, prune, use_cache
        As :func:`research.optimize.run_study`, for the study of every training window (each a
        study of its own, named after its window's data, so running again resumes them).
    data
        All the bars, loaded once; windows are cut from them.
    train, test, step, anchored
        The windows (:func:`plan_folds`); ``step`` defaults to ``test``.
    regime_aware
        Also choose the best set per market regime of each training window and replay it OOS by
        regime, against the single best set (:class:`RegimeSummary`). The sets per regime differ
        in strategy parameters only (trials sharing the best set's other keys).
    regime_symbol
        Whose regime is the market's (default SPY when in the data, else the first symbol).
    compare_steps
        Re-optimization steps to compare (``["1m", "3m", "6m"]``), each a whole walk-forward with
        ``test = step``.
    benchmark
        Buy-and-hold benchmark (:func:`research.benchmark.resolve_benchmark`; default SPY or
        equal weight; ``"none"`` for none).
    statistics
        Compute the statistics block (replays every ranked trial of every fold once more).
    final
        Run the study of the latest training window (the set for the next live period).
    progress
        Called with a line of text after each fold.

    Returns
    -------
    WalkForwardResult

    Raises
    ------
    WalkForwardError
        For bad periods, windows that do not fit the data, or a timeframe without bars in a window.
    research.optimize.OptimizeError
        As :func:`research.optimize.run_study`.
    KeyboardInterrupt
        When a fold's study was interrupted (Ctrl-C): its finished trials are kept in the storage
        and running the same walk-forward again resumes it.
    """
    started = time.perf_counter()
    names = parse_objectives(objectives)
    directions = tuple(OBJECTIVES[n] for n in names)
    step = step or test
    first, last = _span(data)
    windows = plan_folds(first, last, train=train, test=test, step=step, anchored=anchored)
    train_off = parse_period(train)
    cash = base.replay.starting_cash
    symbols = [s.symbol for s in data.get(None)]
    ref = _regime_symbol(symbols, regime_symbol) if regime_aware else ""
    resolve_benchmark(benchmark, symbols)  # a bad name fails before any study runs

    def study_of(start: int, end: int) -> tuple[StudyData, StudyResult]:
        window = window_data(data, start, end)
        study = run_study(base, space, window, storage=storage, method=method, objectives=names, n_trials=n_trials,
                          jobs=jobs, seed=seed, filters=filters, prune=prune, use_cache=use_cache)
        if study.interrupted:  # the study kept its finished trials; running again resumes it
            raise KeyboardInterrupt
        return window, study

    folds: list[Fold] = []
    errors: list[OptimizeError] = []
    notes: list[str] = []
    for w in windows:
        try:
            is_data, study = study_of(w.is_start, w.is_end)
        except OptimizeError as exc:  # e.g. a sampler stuck on constraints: this fold in cash, the others go on
            errors.append(exc)
            fold = _cash_fold(w, cash, "failed", f"the study could not run: {exc}", "", None)
            notes.append(f"fold {w.index}: {fold.reason}")
            folds.append(fold)
            if progress is not None:
                progress(f"fold {w.index + 1}/{len(windows)}: IS {w.label('is')} OOS {w.label('oos')} failed: {exc}")
            continue
        warm_start = max(w.is_start, _ns(pd.Timestamp(w.oos_start, unit="ns", tz="UTC") - train_off))
        best, setup = study.best, study.best_setup
        if best is None or setup is None:
            fold = _cash_fold(w, cash, "no_ranked_trial", "no trial of the study passed the filters: in cash",
                              study.study_name, study)
        else:
            run, part = _replay_oos(data, setup.spec, setup.timeframe, w, warm_start)
            degradation = {k: metric_degradation(k, (best.metrics or {}).get(k), run.metrics.get(k),
                                                 lower_is_better=k == "max_drawdown").degradation
                           for k in DEGRADATION_METRICS}
            fold = Fold(w.index, w, "failed" if run.error else "ok", run.error, study.study_name, dict(best.params),
                        setup.spec, setup.timeframe, best.metrics, run.metrics, degradation,
                        _ratio(run.metrics.get("cagr"), (best.metrics or {}).get("cagr")), run.equity, study=study)
            fold.stitched, fold.stitched_pnl = part.equity, [t.pnl for t in part.trades]
            returns: TrialReturns | None = None
            if statistics or regime_aware:
                returns = trial_returns(study, is_data, jobs=jobs)
            if statistics and returns is not None:
                fold.statistics = study_statistics(study, is_data, returns=returns, out_of_sample=run.metrics)
            if regime_aware and returns is not None:
                fold.regime = _regime_fold(study, returns, is_data, data, ref, w, warm_start)
        folds.append(fold)
        if progress is not None:
            m = fold.oos_metrics or {}
            progress(f"fold {w.index + 1}/{len(windows)}: IS {w.label('is')} OOS {w.label('oos')} "
                     f"{fold.status}; OOS return {_pct(m.get('total_return'))}, Sharpe {_num(m.get('sharpe'))}")

    if len(errors) == len(folds):
        raise errors[0]
    equity, fold_of = _stitch([(f.index, f.stitched) for f in folds if f.stitched is not None], cash)
    oos_metrics = _trades_metrics(equity, [p for f in folds for p in f.stitched_pnl])
    bench_equity, bench_label, bench_metrics = _benchmark(data, benchmark, cash, equity)
    chosen = [f for f in folds if f.params is not None]
    result = WalkForwardResult(
        strategy=space.strategy, method=method, objectives=names, directions=directions, train=train, test=test,
        step=step, anchored=anchored, space=space, base=base, folds=folds, oos_equity=equity, oos_fold=fold_of,
        oos_metrics=oos_metrics, benchmark_equity=bench_equity, benchmark_label=bench_label,
        benchmark_metrics=bench_metrics,
        efficiency=_ratio(_mean((f.oos_metrics or {}).get("cagr") for f in chosen),
                          _mean((f.is_metrics or {}).get("cagr") for f in chosen)),
        sharpe_efficiency=_ratio(_mean((f.oos_metrics or {}).get("sharpe") for f in chosen),
                                 _mean((f.is_metrics or {}).get("sharpe") for f in chosen)),
        profitable_share=sum(1 for f in folds if ((f.oos_metrics or {}).get("total_return") or 0.0) > 0) / len(folds),
        stability=parameter_stability(space, [f.params for f in chosen if f.params is not None]),
        period=data.period(), timeframe=data.default)
    if regime_aware:
        pieces = [(f.index, f.regime.stitched if f.regime is not None and f.regime.stitched is not None else f.stitched)
                  for f in folds if f.stitched is not None]
        r_equity, _ = _stitch([(i, s) for i, s in pieces if s is not None], cash)
        r_metrics = _trades_metrics(r_equity, [p for f in folds for p in (
            f.regime.stitched_pnl if f.regime is not None and f.regime.stitched is not None else f.stitched_pnl)])
        result.regime = RegimeSummary(ref, r_equity, r_metrics, oos_metrics,
                                      _better(r_metrics.get(names[0]), oos_metrics.get(names[0]), directions[0]))
    if compare_steps:
        result.step_comparison, result.best_step = _compare(
            result, compare_steps, lambda s: walk_forward(
                base, space, data, storage=storage, train=train, test=s, step=s, anchored=anchored, method=method,
                n_trials=n_trials, objectives=names, jobs=jobs, seed=seed, filters=filters, prune=prune,
                use_cache=use_cache, benchmark="none", statistics=False, final=False, progress=_prefixed(progress, s)))
    result.notes = notes
    if final:
        end = last
        start = first if anchored else max(first, _ns((pd.Timestamp(end, unit="ns", tz="UTC") - train_off).floor("D")))
        try:
            _, result.final_study = study_of(start, end)
            result.final_window = (start, end)
        except OptimizeError as exc:
            notes.append(f"final window: the study could not run: {exc}")
    if statistics:
        final_data = window_data(data, *result.final_window) if result.final_window is not None else None
        final_block = (study_statistics(result.final_study, final_data, jobs=jobs)
                       if result.final_study is not None and final_data is not None else None)
        wf_block = study_statistics(walk_forward=result)
        wf_block["study"] = final_block
        result.statistics = wf_block
    result.runtime_s = time.perf_counter() - started
    return result


def _prefixed(progress: Progress | None, step: str) -> Progress | None:
    if progress is None:
        return None
    report = progress
    return lambda line: report(f"[every {step}] {line}")


def _cash_fold(w: FoldWindow, cash: float, status: str, reason: str, study_name: str,
               study: StudyResult | None) -> Fold:
    """A fold that stays in cash over its test window."""
    empty = np.array([], dtype=np.int64), np.array([])
    flat = _cut(*empty, w.oos_start, w.oos_end, cash)
    fold = Fold(w.index, w, status, reason, study_name, None, None, None, None,
                _oos_metrics(flat, None, w.oos_start, w.oos_end), {}, None, flat, study=study)
    fold.stitched = _cut(*empty, w.oos_start, w.stitch_end, cash)
    return fold


def _regime_fold(study: StudyResult, returns: TrialReturns, is_data: StudyData, data: StudyData, symbol: str,
                 w: FoldWindow, warm_start: int) -> FoldRegime | None:
    choice = _choose_by_regime(study, returns, is_data, symbol)
    setup = study.best_setup
    if choice is None or setup is None:
        return choice
    spec = setup.spec.model_copy(update={"signals": setup.spec.signals.model_copy(update={"regime_enabled": True})})
    default = build_strategy(spec.strategy, spec.params)
    built: dict[str, Any] = {}
    by_regime: dict[Regime, Any] = {}
    for regime, params in choice.params.items():
        key = json.dumps(sorted(params.items()), default=str)
        if key not in built:
            trial_spec = study.space.apply(study.base, params).spec
            built[key] = (default if trial_spec.params == spec.params
                          else build_strategy(trial_spec.strategy, trial_spec.params))
        by_regime[Regime(regime)] = built[key]
    switch = _RegimeSwitch(default, by_regime, symbol, w.oos_start)
    run, part = _replay_oos(data, spec, setup.timeframe, w, warm_start, strategy=switch)
    choice.oos_metrics, choice.oos_equity, choice.stitched = run.metrics, run.equity, part.equity
    choice.stitched_pnl = [t.pnl for t in part.trades]
    return choice


def _benchmark(data: StudyData, name: str | None, cash: float,
               equity: pd.Series) -> tuple[pd.Series | None, str, dict[str, Any] | None]:
    closes = {s.symbol: pd.Series(s.close, index=pd.to_datetime(s.ts_init, unit="ns", utc=True))
              for s in data.get(None)}
    curve = benchmark_curve(name, closes, cash, pd.DatetimeIndex(equity.index))
    if curve is None:
        return None, "none", None
    valid = curve.equity[curve.equity > 0]
    if len(valid) < 2:
        return curve.equity, curve.label, None
    m = compute_metrics(valid).to_dict()
    return curve.equity, curve.label, {k: m.get(k) for k in METRIC_KEYS if k in m}


def _compare(main: WalkForwardResult, steps: Sequence[str],
             run: Callable[[str], WalkForwardResult]) -> tuple[list[StepResult], str | None]:
    runs: dict[str, WalkForwardResult] = {}
    for s in steps:
        parse_period(s)
        runs[s] = main if (s == main.step == main.test) else run(s)
    start = max(int(r.oos_equity.index[0].value) for r in runs.values())
    end = min(int(r.oos_equity.index[-1].value) for r in runs.values())
    out = []
    for s, r in runs.items():
        ts, values = pd.DatetimeIndex(r.oos_equity.index).asi8, r.oos_equity.to_numpy()
        common = _cut(ts, values, start, end, float(values[0]))
        common = common / float(common.iloc[0]) * main.base.replay.starting_cash
        m = compute_metrics(common).to_dict()
        out.append(StepResult(s, len(r.folds), {k: m.get(k) for k in METRIC_KEYS if k in m},
                              r.efficiency, r.profitable_share, common))
    objective, direction = main.objectives[0], main.directions[0]
    best: StepResult | None = None
    for item in out:
        if best is None or _better(item.oos_metrics.get(objective), best.oos_metrics.get(objective), direction):
            best = item
    return out, (best.step if best is not None and best.oos_metrics.get(objective) is not None else None)


# --- output files -----------------------------------------------------------------------------------

def _num(value: Any, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _params_text(params: Mapping[str, Any] | None) -> str:
    if not params:
        return "(in cash)"
    return ", ".join(f"{k.removeprefix('params.')}={v:.6g}" if isinstance(v, float) else f"{k.removeprefix('params.')}={v}"
                     for k, v in params.items())


def sensitivity(study: StudyResult) -> dict[str, dict[str, Any]]:
    """Per searched key of ``study``: the best first-objective value among its complete trials at
    each value of the key (floats in up to 8 equal bins) and ``spread`` = (best - worst of those)
    / |best overall|. ``robust`` (flat) when spread < 0.25, ``fragile`` (sharp) when > 0.5, else
    ``moderate`` (project conventions); None with fewer than two values tried."""
    sign = 1.0 if study.directions[0] == "maximize" else -1.0
    trials = [t for t in study.trials if t.status == "complete" and t.values]
    out: dict[str, dict[str, Any]] = {}
    if not trials:
        return out
    overall = max(sign * (t.values or (0.0,))[0] for t in trials)
    for dim in study.space.dimensions:
        groups: dict[Any, float] = {}
        values = [t.params.get(dim.key) for t in trials]
        if dim.kind == "float" and len(set(values)) > 8 and dim.low is not None and dim.high is not None:
            edges = np.linspace(float(dim.low), float(dim.high), 9)
            bins = np.clip(np.digitize(np.asarray(values, dtype=float), edges) - 1, 0, 7)
            keys: list[Any] = [f"{edges[i]:.4g}" for i in bins]
        else:
            keys = values
        for key, t in zip(keys, trials):
            score = sign * (t.values or (0.0,))[0]
            groups[key] = max(groups.get(key, -math.inf), score)
        if len(groups) < 2:
            out[dim.key] = {"profile": {str(k): sign * v for k, v in groups.items()}, "spread": None, "verdict": None}
            continue
        spread = (max(groups.values()) - min(groups.values())) / max(abs(overall), 1e-12)
        out[dim.key] = {"profile": {str(k): sign * v for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))},
                        "spread": spread,
                        "verdict": "robust" if spread < 0.25 else "fragile" if spread > 0.5 else "moderate"}
    return out


def summary_text(result: WalkForwardResult) -> str:
    """summary.txt of a walk-forward run: optimization summary, walk-forward, top 10 sets,
    sensitivity, overfitting, recommended configuration and implementation notes."""
    folds = result.folds
    chosen = [f for f in folds if f.params is not None]
    trials = sum(sum(t.status in COUNTED for t in f.study.trials) for f in folds if f.study is not None)
    final = result.final_study
    lines = ["optimization summary",
             f"  strategy   {result.strategy}; space {result.space.source}",
             f"  method     {result.method}, {folds[0].study.target if folds and folds[0].study else '?'} trials per "
             f"window; metric {', '.join(f'{n} ({d})' for n, d in zip(result.objectives, result.directions))}",
             f"  windows    {'anchored' if result.anchored else 'rolling'}: train {result.train}, test {result.test}, "
             f"step {result.step}; {len(folds)} folds, {trials} trials in all",
             f"  period     {result.period[0]} .. {result.period[1]} ({result.timeframe} bars)",
             f"  runtime    {result.runtime_s:.1f} s", *(f"  note       {n}" for n in result.notes), "",
             "walk-forward (out of sample, each fold's chosen set on the window after its training window)",
             f"  {'fold':>4} {'in sample':<23} {'out of sample':<23} {'IS sharpe':>9} {'OOS sharpe':>10} "
             f"{'IS cagr':>8} {'OOS cagr':>8} {'OOS ret':>8} {'Sh.degr':>8} {'WFE':>6}  parameters"]
    for f in folds:
        i, o = f.is_metrics or {}, f.oos_metrics or {}
        d = f.degradation.get("sharpe")
        lines.append(f"  {f.index:>4} {f.window.label('is'):<23} {f.window.label('oos'):<23} {_num(i.get('sharpe')):>9} "
                     f"{_num(o.get('sharpe')):>10} {_pct(i.get('cagr')):>8} {_pct(o.get('cagr')):>8} "
                     f"{_pct(o.get('total_return')):>8} {_pct(d) if d is not None else '-':>8} "
                     f"{_num(f.efficiency, '.2f'):>6}  {_params_text(f.params)}")
    m, b = result.oos_metrics, result.benchmark_metrics or {}
    lines += [f"  stitched OOS   return {_pct(m.get('total_return'))}, CAGR {_pct(m.get('cagr'))}, Sharpe "
              f"{_num(m.get('sharpe'))}, max drawdown {_pct(m.get('max_drawdown'))}, {m.get('trades')} trades",
              f"  {result.benchmark_label:<14} return {_pct(b.get('total_return'))}, CAGR {_pct(b.get('cagr'))}, "
              f"Sharpe {_num(b.get('sharpe'))}, max drawdown {_pct(b.get('max_drawdown'))}",
              f"  walk-forward efficiency {_num(result.efficiency, '.2f')} (OOS / IS CAGR; Sharpe ratio "
              f"{_num(result.sharpe_efficiency, '.2f')}); profitable OOS folds "
              f"{sum(1 for f in folds if ((f.oos_metrics or {}).get('total_return') or 0) > 0)} of {len(folds)} "
              f"({result.profitable_share:.0%})",
              f"  parameter stability score {_num(result.stability.get('score'), '.2f')} (1 = the same set every fold)"]
    for key, entry in result.stability.get("params", {}).items():
        spread = f", std {_num(entry.get('std'), '.3g')} = {_pct(entry.get('range_std'))} of its range" \
            if "range_std" in entry else ""
        lines.append(f"    {key:<24} {'stable' if entry['stable'] else 'unstable':<9} mode {entry['mode']} in "
                     f"{entry['mode_share']:.0%} of folds, {entry['changes']} changes{spread}")
    if result.step_comparison:
        lines += ["", "re-optimization frequency (test = step; metrics on the span all share)"]
        for s in result.step_comparison:
            sm = s.oos_metrics
            lines.append(f"  every {s.step:<4} {s.folds:>3} folds  return {_pct(sm.get('total_return')):>9}  Sharpe "
                         f"{_num(sm.get('sharpe')):>7}  max dd {_pct(sm.get('max_drawdown')):>8}  WFE "
                         f"{_num(s.efficiency, '.2f'):>5}  profitable {s.profitable_share:.0%}"
                         + ("  <- best" if s.step == result.best_step else ""))
    if result.regime is not None:
        r = result.regime
        lines += ["", f"regime-aware (best set per {r.symbol} regime of each training window, applied OOS by regime)",
                  f"  regime sets    return {_pct(r.oos_metrics.get('total_return'))}, Sharpe "
                  f"{_num(r.oos_metrics.get('sharpe'))}, max drawdown {_pct(r.oos_metrics.get('max_drawdown'))}",
                  f"  single set     return {_pct(r.single_metrics.get('total_return'))}, Sharpe "
                  f"{_num(r.single_metrics.get('sharpe'))}, max drawdown {_pct(r.single_metrics.get('max_drawdown'))}",
                  f"  {'the regime sets did better' if r.better else 'the single best set did as well or better'} "
                  f"on {result.objectives[0]}"]
    lines += ["", "top 10" + (f" (final training window {to_datetime(result.final_window[0]).date()}.."
                              f"{to_datetime(result.final_window[1]).date()})" if result.final_window else "")]
    lines.append(f"  {'rank':>4} {'trial':>5} {'sharpe':>8} {'return':>9} {'max dd':>8} {'win rate':>8} {'trades':>6}"
                 "  parameters")
    for rank, t in enumerate((final.ranked if final else [])[:10], 1):
        tm = t.metrics or {}
        lines.append(f"  {rank:>4} {t.number:>5} {_num(tm.get('sharpe')):>8} {_pct(tm.get('total_return')):>9} "
                     f"{_pct(tm.get('max_drawdown')):>8} {_pct(tm.get('win_rate')):>8} {tm.get('trades', '-'):>6}  "
                     f"{_params_text(t.params)}")
    if final is None or not final.ranked:
        lines.append("  (no ranked trial in the final training window)")
    lines += ["", "sensitivity (final study: best objective at each value; spread = range / |best|)"]
    for key, entry in (sensitivity(final) if final else {}).items():
        lines.append(f"  {key:<24} {entry['verdict'] or '-':<9} spread {_num(entry['spread'], '.2f')}")
    lines.append("")
    stats = result.statistics
    if stats:
        lines.append(statistics_text(stats, "overfitting (walk-forward)").rstrip("\n"))
        if stats.get("study"):
            lines.append(statistics_text(stats["study"], "  final study").rstrip("\n"))
    else:
        lines.append("overfitting\n  (statistics not computed)")
    lines += ["", "recommended configuration"]
    best = final.best if final else None
    score = ((stats or {}).get("verdict") or {}).get("score")
    confidence = "-" if score is None else "high" if score < 25 else "moderate" if score < 50 else "low"
    oos_cagr = [float(v) for v in ((f.oos_metrics or {}).get("cagr") for f in chosen) if v is not None]
    oos_sharpe = [float(v) for v in ((f.oos_metrics or {}).get("sharpe") for f in chosen) if v is not None]
    worst_dd = max(((f.oos_metrics or {}).get("max_drawdown") or 0.0 for f in chosen), default=None)
    lines.append(f"  parameters     {_params_text(best.params) if best else '(none: no trial passed the filters)'}")
    lines.append(f"  confidence     {confidence}" + (f" (overfitting score {score:.0f}/100)" if score is not None else ""))
    if oos_cagr:
        lo, hi = np.percentile(oos_cagr, [10, 90]) if len(oos_cagr) >= 5 else (min(oos_cagr), max(oos_cagr))
        lines.append(f"  expected range annualized return {_pct(lo)} .. {_pct(hi)} (OOS folds, "
                     f"{'10th-90th percentile' if len(oos_cagr) >= 5 else 'min-max'})"
                     + (f"; Sharpe {min(oos_sharpe):.2f} .. {max(oos_sharpe):.2f}" if oos_sharpe else ""))
    lines += ["", "implementation notes",
              "  apply          best.toml holds the final window's best set: tradingd replay --config best.toml to "
              "check it, tradingd run --config best.toml to trade it",
              f"  variability    OOS fold returns {_pct(min(((f.oos_metrics or {}).get('total_return') or 0) for f in folds))}"
              f" .. {_pct(max(((f.oos_metrics or {}).get('total_return') or 0) for f in folds))} per {result.test}; worst "
              f"OOS drawdown {_pct(worst_dd)}",
              f"  re-optimize    every {result.best_step or result.step}"
              + (" (the best of the steps compared)" if result.best_step else " (the step validated here)")
              + ", and sooner when live drawdown exceeds the worst OOS drawdown above"]
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _folds_csv(result: WalkForwardResult, path: Path) -> None:
    keys = result.space.keys
    header = ["fold", "is_start", "is_end", "oos_start", "oos_end", "status", "study", *keys,
              *(f"is_{k}" for k in METRIC_KEYS), *(f"oos_{k}" for k in METRIC_KEYS),
              *(f"degradation_{k}" for k in DEGRADATION_METRICS), "efficiency", "psr", "dsr", "pbo"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for f in result.folds:
            w, stats = f.window.to_dict(), f.statistics or {}
            row = [f.index, w["is_start"], w["is_end"], w["oos_start"], w["oos_end"], f.status, f.study_name,
                   *((f.params or {}).get(k) for k in keys), *((f.is_metrics or {}).get(k) for k in METRIC_KEYS),
                   *((f.oos_metrics or {}).get(k) for k in METRIC_KEYS), *(f.degradation.get(k) for k in DEGRADATION_METRICS),
                   f.efficiency, stats.get("psr"), stats.get("dsr"), stats.get("pbo")]
            writer.writerow(["" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v for v in row])


def _equity_csv(result: WalkForwardResult, path: Path) -> None:
    frame = pd.DataFrame({"equity": result.oos_equity, "fold": result.oos_fold})
    if result.benchmark_equity is not None:
        frame["benchmark"] = result.benchmark_equity
    if result.regime is not None:
        frame = frame.join(result.regime.oos_equity.rename("regime_equity"), how="outer")
        frame["fold"] = frame["fold"].ffill()
    frame.index.name = "ts"
    out = frame.reset_index()
    out["ts"] = out["ts"].map(lambda t: t.isoformat())
    out.to_csv(path, index=False, float_format="%.10g")


def write_walk_forward_outputs(result: WalkForwardResult, out_dir: str | Path) -> list[str]:
    """Write ``folds.csv`` (a row per fold: windows, chosen params, IS/OOS metrics, degradation,
    efficiency, PSR/DSR/PBO), ``oos_equity.csv`` (ts ISO-8601 UTC, stitched equity USD, fold,
    benchmark, regime_equity), ``walkforward.json`` (:meth:`WalkForwardResult.to_dict`) and
    ``summary.txt`` (:func:`summary_text`) into ``out_dir`` (created), each moved into place whole.
    Returns the names written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, write in (("folds.csv", lambda p: _folds_csv(result, p)),
                        ("oos_equity.csv", lambda p: _equity_csv(result, p)),
                        ("walkforward.json", lambda p: p.write_text(json.dumps(result.to_dict(), indent=2,
                                                                               default=str) + "\n")),
                        ("summary.txt", lambda p: p.write_text(summary_text(result)))):
        _write_atomic(out / name, write)
        written.append(name)
    return written
