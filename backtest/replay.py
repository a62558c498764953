"""The replay node: drive the one Engine path from historical bars with a simulated clock and the
paper broker, as fast as the CPU allows. No event loop.

A bar is released at its end (``ts_init = start + timeframe``); the clock advances to it; the
paper broker fills earlier orders against it (market orders at its open, i.e. at a later price
than the decision); then the engine marks, updates signals and asks the strategy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backtest.kernel import build_kernel, paper_venue
from backtest.merge import merge_bars
from backtest.sources import BarSeries
from backtest.spec import ReplayConfig, RunSpec
from core.clock import Clock
from core.engine import Engine
from core.enums import TradingState
from core.events import OrderDenied, OrderFilled, OrderRejected, TradeClosed, TradingStateChanged
from core.orders import Order
from core.portfolio import Position
from core.ports import AlertSink, Store, Strategy

ProgressCallback = Callable[[int], None]
"""Called with the number of bars processed so far, every ``progress_every`` bars."""


class EquityCurve:
    """Collects one point per bar timestamp (bars of several symbols sharing a timestamp collapse
    into the last one). Arrays: ts ns UTC; cash, equity, gross exposure USD."""

    __slots__ = ("ts", "cash", "equity", "gross", "_last")

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.cash: list[float] = []
        self.equity: list[float] = []
        self.gross: list[float] = []
        self._last = -1

    def __call__(self, ts: int, cash: float, equity: float, gross: float) -> None:
        if ts == self._last:
            self.cash[-1] = cash
            self.equity[-1] = equity
            self.gross[-1] = gross
        else:
            self._last = ts
            self.ts.append(ts)
            self.cash.append(cash)
            self.equity.append(equity)
            self.gross.append(gross)


class ResultCollector:
    """Gathers what a replay reports from the engine's published events (no reading of engine
    internals): fills, closed trades, trading-state changes, denial and rejection counts."""

    def __init__(self, engine: Engine) -> None:
        self.fills: list[OrderFilled] = []
        self.trades: list[TradeClosed] = []
        self.state_changes: list[TradingStateChanged] = []
        self.denied = 0
        self.rejected = 0
        engine.subscribe(OrderFilled, self.fills.append)
        engine.subscribe(TradeClosed, self.trades.append)
        engine.subscribe(TradingStateChanged, self.state_changes.append)
        engine.subscribe(OrderDenied, self._on_denied)
        engine.subscribe(OrderRejected, self._on_rejected)

    def _on_denied(self, _event: OrderDenied) -> None:
        self.denied += 1

    def _on_rejected(self, _event: OrderRejected) -> None:
        self.rejected += 1


@dataclass
class ReplayResult:
    """Everything a replay produced; research tools consume it (metrics, reports, optimizers).

    Arrays: ``equity_ts`` int64 ns UTC (one per bar timestamp), ``cash``/``equity``/
    ``gross_exposure`` float64 USD. ``state_changes`` lists every trading-state change (breaker
    trips, timers, commands) with its replay time (``ts_init``) and reason.
    """

    run_id: str
    strategy_id: str
    params: dict[str, Any]
    symbols: list[str]
    timeframe_ns: int
    starting_cash: float
    bars: int
    elapsed_s: float
    equity_ts: np.ndarray
    cash: np.ndarray
    equity: np.ndarray
    gross_exposure: np.ndarray
    trades: list[TradeClosed]
    orders: list[Order]
    fills: list[OrderFilled]
    positions: dict[str, Position]
    trading_state: TradingState
    strategy_enabled: bool
    closes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # symbol -> (ts_init, close)
    data_hash: str = ""
    config_hash: str = ""
    state_changes: list[TradingStateChanged] = field(default_factory=list)
    trading_state_reason: str = ""
    denied: int = 0
    denied_while_halted: int = 0
    rejected: int = 0
    dropped_bars: int = 0

    @property
    def bars_per_second(self) -> float:
        return self.bars / self.elapsed_s if self.elapsed_s > 0 else float("inf")


def run_replay(series: Sequence[BarSeries], spec: RunSpec, *, store: Store, alerts: AlertSink,
               run_id: str = "replay", progress: ProgressCallback | None = None,
               strategy: Strategy | None = None, clock: Clock | None = None) -> ReplayResult:
    """Replay ``series`` (merged by bar end time, ties by symbol) through the full pipeline.

    Parameters
    ----------
    series
        One :class:`BarSeries` per symbol, all of one timeframe.
    spec
        Strategy, parameters and component settings.
    store, alerts
        Where the run's rows and alerts go.
    run_id
        Name of the run (the paper broker's order ids do not depend on it).
    progress
        Called with the number of bars done every ``spec.replay.progress_every`` bars.
    strategy
        A ready strategy instance instead of building ``spec.strategy`` (tests, user code).
    clock
        The simulated clock to drive (so the caller can read replay time, e.g. for log lines);
        default a new one. It is advanced to the first bar's start.

    Returns
    -------
    ReplayResult
        Trades, orders, fills, equity curve, breaker history and final state. The store has
        received the same rows a live session would write; it is flushed before returning.

    Raises
    ------
    ValueError
        If ``series`` is empty or the series have different timeframes.
    strategies.registry.StrategyConfigError
        For an unknown strategy or invalid parameters.
    """
    if not series:
        raise ValueError("run_replay: no bar series given")
    timeframes = {s.timeframe_ns for s in series}
    if len(timeframes) != 1:
        raise ValueError(f"run_replay: series mix timeframes {sorted(timeframes)} ns; replay one timeframe at a time")
    start_ns = min((int(s.ts_event[0]) for s in series if len(s)), default=0)
    curve = EquityCurve()
    venue = paper_venue(spec)
    if clock is None:
        clock = Clock(start_ns)
    else:
        clock.advance_to(start_ns)
    kernel = build_kernel(spec, clock=clock, broker=venue, venue=venue, store=store, alerts=alerts,
                          strategy=strategy, equity_recorder=curve)
    engine = kernel.engine
    collected = ResultCollector(engine)
    handle = engine.handle
    every = spec.replay.progress_every
    count = 0
    started = time.perf_counter()
    if progress is None:
        for bar in merge_bars(series):
            handle(bar)
        count = sum(len(s) for s in series)
    else:
        for bar in merge_bars(series):
            handle(bar)
            count += 1
            if count % every == 0:
                progress(count)
        progress(count)
    engine.finish()
    elapsed = time.perf_counter() - started
    return ReplayResult(
        run_id=run_id, strategy_id=kernel.strategy.strategy_id, params=kernel.strategy.params.model_dump(),
        symbols=[s.symbol for s in series], timeframe_ns=timeframes.pop(), starting_cash=spec.replay.starting_cash,
        bars=count, elapsed_s=elapsed, equity_ts=np.asarray(curve.ts, dtype=np.int64), cash=np.asarray(curve.cash),
        equity=np.asarray(curve.equity), gross_exposure=np.asarray(curve.gross), trades=collected.trades,
        orders=list(kernel.book.orders.values()), fills=collected.fills, positions=kernel.portfolio.positions(),
        trading_state=kernel.risk.state, strategy_enabled=engine.strategy_enabled,
        closes={s.symbol: (s.ts_init, s.close) for s in series}, state_changes=collected.state_changes,
        trading_state_reason=kernel.risk.reason, denied=collected.denied,
        denied_while_halted=engine.denied_while_halted, rejected=collected.rejected,
        dropped_bars=engine.dropped_bars)


__all__ = ["EquityCurve", "ProgressCallback", "ReplayConfig", "ReplayResult", "ResultCollector", "run_replay"]
