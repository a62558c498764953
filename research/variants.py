"""Replay a finished run's strategy under variants: other bars, other settings, stressed bars,
entries held back one bar, a window of the data. The engine is the one every replay uses
(:func:`research.rerun.quiet_replay`: :func:`backtest.replay.run_replay`, nothing stored); this
module only decides what each replay gets.

The bars are loaded once (:class:`VariantData`, one named set per universe) and shared: with
``jobs > 1`` the variants run in worker processes forked from this one, which inherit the loaded
arrays copy-on-write (never re-parsed) and send back only each variant's result. A variant that
raises is recorded with the error, never the end of the loop.

A windowed variant (``window``) replays from ``warm_start`` so indicators are warm when the
window opens, trades only from the window start (:class:`research.walk_forward.TradeFrom`), and
is measured from there: equity before the window start is flat at the starting cash and not part
of its metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtest.replay import ReplayResult
from backtest.sources import BarSeries
from backtest.spec import RunSpec
from core.events import Bar
from core.intents import OrderIntent
from research.fork_pool import fork_map
from research.metrics import compute_metrics
from research.optimize import METRIC_KEYS, StudyData, trial_metrics
from research.rerun import error_text, quiet_replay
from research.stress import StressScenario, stress_series
from research.walk_forward import TradeFrom, window_data
from strategies.registry import build_strategy
from strategies.wrapper import WrappedStrategy

__all__ = ["DelayedEntries", "Variant", "VariantData", "VariantResult", "replay_variant", "run_variants", "warm_start",
           "warmup_bars"]

VariantData = Mapping[str, Sequence[BarSeries]]
"""Named sets of loaded bars (``"base"``: the run's own), one timeframe each."""

_WINDOW_PARAMS = ("fast", "slow", "period", "window", "lookback")


class DelayedEntries(WrappedStrategy):
    """A strategy whose entries reach the market one bar late; exits are unchanged.

    Every bar goes to ``inner``. Its entry intents (not ``reduce_only``) are held and emitted on
    the symbol's next bar, before what ``inner`` says on that bar; exits pass at once. An entry
    held when the data ends is dropped. With market orders filling at the next bar's open, each
    entry fills exactly one bar of its symbol later than in the plain run (the pessimistic
    assumption of a slow signal or a late operator).

    On the bar a held entry goes out, ``inner`` cannot see it as pending yet, so a strategy that
    enters whenever it is flat with nothing pending would ask again: its entries of the same
    side on that bar are dropped (in the plain run the pending order would have stopped them).

    Parameters
    ----------
    inner
        The strategy (``strategy_id``, ``params``, ``uses_learner``, ``on_bar``; see
        :class:`core.ports.Strategy`).
    """

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self._held: dict[str, list[OrderIntent]] = {}

    def on_bar(self, ctx: Any, bar: Bar) -> Sequence[OrderIntent]:
        released = self._held.pop(bar.symbol, [])
        intents = self.inner.on_bar(ctx, bar)
        going = {i.side for i in released}
        held = [i for i in intents if not i.reduce_only and i.side not in going]
        if held:
            self._held[bar.symbol] = held
        if not released and not held:
            return intents  # no entry held or going out: what inner said passes as it is
        return [*released, *(i for i in intents if i.reduce_only)]


@dataclass(frozen=True)
class Variant:
    """One replay of a robustness study.

    Attributes
    ----------
    name, kind : str
        Identifier and group (``"base"``, ``"period"``, ``"universe"``, ``"stress"``,
        ``"assumption"``).
    spec : RunSpec
        Strategy, parameters, risk, fill, signal and replay settings.
    bars : str
        Key of the :data:`VariantData` set to replay.
    label : str
        What the variant is, for the report.
    stress : StressScenario or None
        Injected into every series of the set in ``stress_window`` (epoch ns UTC, end exclusive).
    window : (int, int) or None
        Measured window ``[start, end]`` (epoch ns UTC): bars starting at or after
        ``warm_start`` and released by ``end`` are replayed, trading starts at ``start``.
    warm_start : int or None
        First bar start of a windowed replay (default: the window start).
    delay_entries : bool
        Wrap the strategy in :class:`DelayedEntries`.
    note : str
        Extra facts for the report (how a period was chosen, what was changed).
    """

    name: str
    kind: str
    spec: RunSpec
    bars: str = "base"
    label: str = ""
    stress: StressScenario | None = None
    stress_window: tuple[int, int] | None = None
    window: tuple[int, int] | None = None
    warm_start: int | None = None
    delay_entries: bool = False
    note: str = ""


@dataclass(frozen=True)
class VariantResult:
    """What one variant's replay gave.

    Attributes
    ----------
    name, kind, label, note
        From the :class:`Variant`.
    start, end : pd.Timestamp or None
        First and last point of the measured equity (UTC).
    metrics : dict
        :data:`research.optimize.METRIC_KEYS` of the measured part (fractions; ``None`` where
        undefined; empty when the replay failed).
    equity : pd.Series
        Measured equity, USD, on bar-end UTC times (empty when the replay failed).
    trades : pd.DataFrame
        Round trips closed in the measured part: symbol, side, quantity (shares), entry_time,
        exit_time (UTC), pnl (USD, net of commission).
    slippage, commission : float
        USD paid on the measured part's fills.
    bars : int
        Bars replayed (warm-up included).
    denied : int
        Order intents the risk engine denied.
    elapsed_s : float
        Seconds the replay took.
    error : str
        Why the variant has no result ("" when it has one).
    """

    name: str
    kind: str
    label: str = ""
    note: str = ""
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    equity: pd.Series = field(default_factory=lambda: pd.Series(dtype="float64"))
    trades: pd.DataFrame = field(default_factory=pd.DataFrame)
    slippage: float = 0.0
    commission: float = 0.0
    bars: int = 0
    denied: int = 0
    elapsed_s: float = 0.0
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the replay ran to the end."""
        return not self.error


def warmup_bars(spec: RunSpec) -> int:
    """Bars the run needs before its first decision is informed: the strategy's own
    ``warmup_bars()`` when it has one, else its longest window parameter (fast, slow, period,
    window, lookback, ``*_period``, ``*_window``, ``*_lookback``); at least the regime detector's
    warm-up when it is on, and the learner's ``min_samples + horizon_bars`` when the strategy
    reads predictions.

    Raises
    ------
    strategies.registry.StrategyConfigError
        For an unknown strategy or invalid parameters.
    """
    strategy = build_strategy(spec.strategy, spec.params)
    found = [0]
    asked = getattr(strategy, "warmup_bars", None)
    if callable(asked):
        found.append(int(asked()))
    else:
        for key, value in strategy.params.model_dump().items():
            named = key in _WINDOW_PARAMS or key.endswith(("_period", "_window", "_lookback"))
            if named and isinstance(value, int) and not isinstance(value, bool):
                found.append(value)
    if spec.signals.regime_enabled:
        found.append(spec.signals.regime.warmup_bars)
    if strategy.uses_learner:
        found.append(spec.signals.learner.min_samples + spec.signals.learner.horizon_bars)
    return max(found)


def warm_start(series: Sequence[BarSeries], start_ns: int, bars: int) -> int:
    """The bar start ``bars`` bars before ``start_ns`` in the series that reaches back furthest
    (at most to its first bar), epoch ns UTC."""
    starts = []
    for one in series:
        if len(one):
            at = int(np.searchsorted(one.ts_event, start_ns, side="left"))
            starts.append(int(one.ts_event[max(0, min(at, len(one) - 1) - bars)]))
    return min(starts) if starts else start_ns


def _bars_of(data: VariantData, variant: Variant) -> list[BarSeries]:
    if variant.bars not in data:
        raise ValueError(f"variant {variant.name}: no bar set {variant.bars!r} (loaded: {', '.join(data)})")
    series = list(data[variant.bars])
    if variant.stress is not None:
        if variant.stress_window is None:
            raise ValueError(f"variant {variant.name}: a stress scenario needs its window")
        series = stress_series(series, variant.stress, variant.stress_window)
    if variant.window is not None:
        first = variant.warm_start if variant.warm_start is not None else variant.window[0]
        series = list(window_data(StudyData.of(series), first, variant.window[1]).get(None))
    return series


def _measured(result: ReplayResult, start: int | None) -> tuple[pd.Series, dict[str, Any], list[Any], list[Any]]:
    """Equity, metrics, trades and fills of the replay from ``start`` on (None: all of it)."""
    index = pd.to_datetime(result.equity_ts, unit="ns", utc=True)
    if start is None:
        equity = pd.Series(result.equity, index=index, name="equity")
        return equity, trial_metrics(result), list(result.trades), list(result.fills)
    before = int(np.searchsorted(result.equity_ts, start, side="right"))
    anchor = float(result.equity[before - 1]) if before > 0 else result.starting_cash
    ts = np.concatenate(([start], result.equity_ts[before:]))
    equity = pd.Series(np.concatenate(([anchor], result.equity[before:])), name="equity",
                       index=pd.to_datetime(ts, unit="ns", utc=True))
    trades = [t for t in result.trades if t.ts_init > start]
    fills = [f for f in result.fills if f.ts_init > start]
    exposure = pd.Series(result.gross_exposure[before:] / result.equity[before:])
    metrics = compute_metrics(equity, trades=pd.DataFrame({"pnl": [t.pnl for t in trades]}),
                              fills=pd.DataFrame({"quantity": [f.quantity for f in fills],
                                                  "price": [f.price for f in fills]}),
                              exposure=exposure if len(exposure) else None).to_dict()
    return equity, {key: metrics.get(key) for key in METRIC_KEYS}, trades, fills


def _trades_frame(trades: Sequence[Any]) -> pd.DataFrame:
    frame = pd.DataFrame({"symbol": [t.symbol for t in trades], "side": [t.side.value for t in trades],
                          "quantity": [t.quantity for t in trades],
                          "entry_time": pd.to_datetime([t.entry_ts for t in trades], unit="ns", utc=True),
                          "exit_time": pd.to_datetime([t.exit_ts for t in trades], unit="ns", utc=True),
                          "pnl": [t.pnl for t in trades]})
    return frame


def replay_variant(data: VariantData, variant: Variant) -> VariantResult:
    """Replay one variant; never raises for what its replay raises (that is the result's ``error``)."""
    started = time.perf_counter()
    base = VariantResult(variant.name, variant.kind, variant.label, variant.note)
    try:
        series = _bars_of(data, variant)
        strategy: Any = build_strategy(variant.spec.strategy, variant.spec.params)
        if variant.delay_entries:
            strategy = DelayedEntries(strategy)
        if variant.window is not None:
            strategy = TradeFrom(strategy, variant.window[0])
        result, crash = quiet_replay(series, variant.spec, variant.name, strategy)
        elapsed = time.perf_counter() - started
        if crash is not None:
            return _failed(base, f"the strategy raised and was disabled: {crash}", elapsed)
        if not len(result.equity_ts):
            return _failed(base, "no bar was replayed", elapsed)
        equity, metrics, trades, fills = _measured(result, variant.window[0] if variant.window else None)
        return VariantResult(
            variant.name, variant.kind, variant.label, variant.note, start=equity.index[0], end=equity.index[-1],
            metrics=metrics, equity=equity, trades=_trades_frame(trades),
            slippage=float(sum(f.slippage for f in fills)), commission=float(sum(f.commission for f in fills)),
            bars=result.bars, denied=result.denied, elapsed_s=elapsed)
    except Exception as exc:  # recorded with where it happened, never the end of the study
        return _failed(base, error_text(exc), time.perf_counter() - started)


def _failed(base: VariantResult, error: str, elapsed: float) -> VariantResult:
    return VariantResult(base.name, base.kind, base.label, base.note, error=error, elapsed_s=elapsed)


# --- fan-out ----------------------------------------------------------------------------------------

def run_variants(data: VariantData, variants: Sequence[Variant], *, jobs: int = 1,
                 progress: Callable[[VariantResult], None] | None = None) -> list[VariantResult]:
    """Replay every variant; results in the order of ``variants``.

    Parameters
    ----------
    data
        The loaded bar sets.
    variants
        What to replay.
    jobs
        Replays at a time: worker processes forked from this one (:func:`research.fork_pool.fork_map`)
        when above 1.
    progress
        Called with each result as it arrives (in completion order).

    Raises
    ------
    ValueError
        If ``jobs`` < 1, or ``jobs`` > 1 where processes cannot be forked.
    research.fork_pool.WorkerDied
        If a worker process died.
    """
    return fork_map(lambda index: replay_variant(data, variants[index]), len(variants), jobs=jobs,
                    done=None if progress is None else lambda _, result: progress(result))
