"""One trial of a parameter study: a replay of the one engine (:func:`backtest.replay.run_replay`)
on the study's bars, its metrics (:func:`trial_metrics`, the figures ``tradingd replay`` reports)
and the daily returns of its equity curve (:class:`research.optimize_returns.DailyReturns`).

:func:`evaluate_trial` is what every executor runs (in the study's process, a forked worker, a
Dask worker), so where a trial runs never changes its result. A :class:`TrialTask` goes out, a
:class:`TrialOutcome` comes back; both are picklable.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alerts.sinks import MemoryAlertSink
from backtest.replay import ReplayResult, run_replay
from backtest.sources import BarSeries
from backtest.spec import RunSpec
from core.events import OrderFilled, TradeClosed, TradingStateChanged
from core.orders import Order
from core.ports import Decision, EquitySnapshot
from core.recovery import RestoredPosition, RiskSnapshot
from research.metrics import compute_metrics
from research.optimize_data import StudyData
from research.optimize_objectives import METRIC_KEYS
from research.optimize_returns import DailyReturns
from strategies.registry import StrategyConfigError

__all__ = ["DiscardStore", "TrialOutcome", "TrialTask", "evaluate_trial", "trial_metrics"]


class DiscardStore:
    """A Store port that keeps nothing: research replays need the result object, not the rows."""

    def save_order(self, order: Order) -> None:
        pass

    def save_fill(self, fill: OrderFilled, order: Order) -> None:
        pass

    def save_decision(self, decision: Decision) -> None:
        pass

    def save_trade(self, trade: TradeClosed) -> None:
        pass

    def save_equity(self, snapshot: EquitySnapshot) -> None:
        pass

    def save_trading_state(self, change: TradingStateChanged) -> None:
        pass

    def save_risk_state(self, snapshot: RiskSnapshot) -> None:
        pass

    def save_account(self, cash: float, positions: Iterable[RestoredPosition], ts: int, *,
                     last_bar_ts: Mapping[str, int] | None = None) -> None:
        pass

    def save_learner_state(self, symbol: str, state: bytes, ts: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


class _TrialStore(DiscardStore):
    """The Store port for a trial: keeps the daily equity snapshots (ns UTC, USD) and closed
    trades' P&L (USD) for the pruning step's metrics, drops the rest. A study never writes its
    replays' rows."""

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.equity: list[float] = []
        self.pnl: list[float] = []

    def save_trade(self, trade: TradeClosed) -> None:
        self.pnl.append(trade.pnl)

    def save_equity(self, snapshot: EquitySnapshot) -> None:
        self.ts.append(snapshot.ts)
        self.equity.append(snapshot.equity)

    def metrics(self) -> dict[str, Any]:
        """Metrics of the run so far, from the daily snapshots (drawdown at daily resolution)."""
        if not self.ts:
            return {}
        equity = pd.Series(self.equity, index=pd.to_datetime(np.asarray(self.ts, dtype=np.int64), unit="ns", utc=True))
        no_fills = pd.DataFrame({"quantity": [], "price": []})  # turnover is not needed here
        return _pick(compute_metrics(equity, trades=pd.DataFrame({"pnl": self.pnl}), fills=no_fills).to_dict())


def _pick(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {key: metrics.get(key) for key in METRIC_KEYS}


def _equity(result: ReplayResult) -> pd.Series:
    """The full-resolution equity curve of a replay (USD, bar-end UTC index)."""
    # the index pd.to_datetime(equity_ts, unit="ns", utc=True) gives, without converting the stamps
    index = pd.DatetimeIndex(np.asarray(result.equity_ts, dtype=np.int64).view("M8[ns]")).tz_localize("UTC")
    return pd.Series(result.equity, index=index, copy=False)


def _metrics(result: ReplayResult, equity: pd.Series) -> dict[str, Any]:
    exposure = pd.Series(result.gross_exposure / result.equity, index=equity.index, copy=False)
    trades = pd.DataFrame({"pnl": [t.pnl for t in result.trades]})
    fills = pd.DataFrame({"quantity": [f.quantity for f in result.fills], "price": [f.price for f in result.fills]})
    return _pick(compute_metrics(equity, trades=trades, fills=fills, exposure=exposure).to_dict())


def trial_metrics(result: ReplayResult) -> dict[str, Any]:
    """Return :data:`METRIC_KEYS` of a replay, computed as ``tradingd replay`` computes its
    metrics.json (full-resolution equity, round-trip pnl, fill notional, exposure); ``None`` where
    a metric is undefined (see :mod:`research.metrics`)."""
    return _metrics(result, _equity(result))


@dataclass(frozen=True)
class TrialTask:
    """One replay to run: what an executor ships to wherever the trial runs (picklable).

    Attributes
    ----------
    number
        The Optuna trial number (the executor hands it back with the outcome).
    spec
        The trial's run spec, strategy params validated.
    timeframe
        Bar length label of the series to replay (None = the study's default).
    prune_fraction
        Fraction of the period after which to ask whether to prune (None = no pruning step).
    """

    number: int
    spec: RunSpec
    timeframe: str | None
    prune_fraction: float | None


@dataclass(frozen=True)
class TrialOutcome:
    """What running a :class:`TrialTask` gave: full-period metrics, or pruned, or an error.

    Attributes
    ----------
    metrics
        :data:`METRIC_KEYS` of the full period (None when pruned or failed).
    intermediate
        Metrics at the pruning step, when there was one.
    pruned
        True when stopped at the pruning step.
    error
        Why the trial failed (None when it did not).
    replay_s
        Seconds the replay took where it ran.
    returns
        Daily returns of the full-period equity curve (None when pruned, failed, or the curve
        has fewer than two points): what the overfitting statistics use instead of a second replay.
    """

    metrics: dict[str, Any] | None = None
    intermediate: dict[str, Any] | None = None
    pruned: bool = False
    error: str | None = None
    replay_s: float = 0.0
    returns: DailyReturns | None = field(default=None, compare=False)


class _Pruned(Exception):
    pass


def _split_bars(series: Sequence[BarSeries], fraction: float) -> int:
    """Bars released by ``fraction`` of the period (replay merges by release time)."""
    releases = [s.ts_init for s in series if len(s)]
    first = min(int(r[0]) for r in releases)
    last = max(int(r[-1]) for r in releases)
    cut = first + int((last - first) * fraction)
    return int(sum(np.searchsorted(r, cut, side="right") for r in releases))


def evaluate_trial(data: StudyData, task: TrialTask, decide: Callable[[dict[str, Any]], bool]) -> TrialOutcome:
    """Replay one trial on ``data``; at the pruning step ask ``decide`` (True = prune) with the
    metrics so far. Never raises for what a replay raises: that is the outcome's ``error``.

    A trial replayed to the end comes back with its metrics and the daily returns of its equity
    curve (:class:`research.optimize_returns.DailyReturns`), computed here, where the curve is.

    Every executor runs trials through this one function (in this process, a forked worker or a
    Dask worker), so where a trial runs never changes its result.
    """
    started = time.perf_counter()
    store, alerts = _TrialStore(), MemoryAlertSink()
    try:
        series = data.get(task.timeframe)
        spec, progress = task.spec, None
        total = sum(len(s) for s in series)
        split = _split_bars(series, task.prune_fraction) if task.prune_fraction else 0
        intermediate: dict[str, Any] = {}
        if 0 < split < total:
            spec = spec.model_copy(update={"replay": spec.replay.model_copy(update={"progress_every": split})})
            asked = False

            def progress(done: int) -> None:
                nonlocal asked
                if asked:
                    return
                asked = True  # the first call comes after exactly `split` bars
                intermediate.update(store.metrics())
                if decide(intermediate):
                    raise _Pruned
        try:
            result = run_replay(series, spec, store=store, alerts=alerts, run_id=f"trial-{task.number}",
                                progress=progress)
        except _Pruned:
            return TrialOutcome(intermediate=intermediate, pruned=True, replay_s=time.perf_counter() - started)
        replay_s = time.perf_counter() - started
        if not result.strategy_enabled:
            crash = next((text for _, title, text, _ in alerts.alerts if "disabled" in title), "see the alerts")
            return TrialOutcome(error=f"the strategy raised and was disabled: {crash}", replay_s=replay_s)
        equity = _equity(result)
        return TrialOutcome(metrics=_metrics(result, equity), intermediate=intermediate or None, replay_s=replay_s,
                            returns=DailyReturns.of_equity(equity))
    except (StrategyConfigError, ValueError) as exc:
        return TrialOutcome(error=f"{type(exc).__name__}: {exc}", replay_s=time.perf_counter() - started)
    except Exception as exc:  # whatever else a replay raises: recorded with where, never the study's end
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return TrialOutcome(error=f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})",
                        replay_s=time.perf_counter() - started)
