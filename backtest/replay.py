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
from itertools import islice
from typing import Any, cast

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


def _view(column: np.ndarray) -> Any:
    return memoryview(cast(Any, column))


class EquityCurve:
    """Collects one point per bar timestamp (bars of several symbols sharing a timestamp collapse
    into the last one). Columns: ts ns UTC; cash, equity, gross exposure USD.

    The columns are numpy arrays of 8 bytes a value written in place (through memoryviews,
    faster than list appends), not lists of Python objects (32-36 bytes a value). Given the
    number of bars up front (``capacity``) they are allocated once, so a long run never copies or
    fragments them; beyond it they double.

    Parameters
    ----------
    capacity
        Points to allocate room for (at most one per bar); more are accepted.
    """

    __slots__ = ("_columns", "_ts", "_cash", "_equity", "_gross", "_n", "_capacity", "_last")

    def __init__(self, capacity: int = 1024) -> None:
        self._n = 0
        self._last = -1
        self._columns: tuple[np.ndarray, ...] = ()
        self._allocate(max(1, capacity))

    def _allocate(self, capacity: int) -> None:
        old = self._columns
        self._columns = (np.empty(capacity, dtype=np.int64), np.empty(capacity), np.empty(capacity),
                         np.empty(capacity))
        for new_column, old_column in zip(self._columns, old):
            new_column[:self._n] = old_column[:self._n]
        # memoryviews of the arrays: item assignment through them is the cheapest in-place write
        self._ts, self._cash, self._equity, self._gross = (_view(column) for column in self._columns)
        self._capacity = capacity

    def __call__(self, ts: int, cash: float, equity: float, gross: float) -> None:
        n = self._n
        if ts == self._last:
            n -= 1
        else:
            if n == self._capacity:
                self._allocate(2 * n)
            self._last = ts
            self._n = n + 1
        self._ts[n] = ts
        self._cash[n] = cash
        self._equity[n] = equity
        self._gross[n] = gross

    def __len__(self) -> int:
        return self._n

    @property
    def ts(self) -> np.ndarray:
        """int64 ns UTC of each point (a view)."""
        return self._columns[0][:self._n]

    @property
    def cash(self) -> np.ndarray:
        """Cash, USD (a view)."""
        return self._columns[1][:self._n]

    @property
    def equity(self) -> np.ndarray:
        """Equity, USD (a view)."""
        return self._columns[2][:self._n]

    @property
    def gross(self) -> np.ndarray:
        """Gross exposure, USD (a view)."""
        return self._columns[3][:self._n]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return (ts int64, cash, equity, gross float64): views when the curve is at least
        half full, else compact copies (so the unused room is given back)."""
        columns = (self.ts, self.cash, self.equity, self.gross)
        if 2 * self._n < self._capacity:
            columns = tuple(column.copy() for column in columns)  # type: ignore[assignment]
        return columns


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
    curve = EquityCurve(capacity=sum(len(s) for s in series))
    venue = paper_venue(spec)
    if clock is None:
        clock = Clock(start_ns)
    else:
        clock.advance_to(start_ns)
    kernel = build_kernel(spec, clock=clock, broker=venue, venue=venue, store=store, alerts=alerts,
                          strategy=strategy, equity_recorder=curve)
    engine = kernel.engine
    collected = ResultCollector(engine)
    every = spec.replay.progress_every
    started = time.perf_counter()
    bars = merge_bars(series)
    if progress is None:
        count = engine.handle_bars(bars)
    else:
        count = 0
        while True:
            done = engine.handle_bars(islice(bars, every))
            count += done
            if done < every:
                break
            progress(count)
        progress(count)
    engine.finish()
    elapsed = time.perf_counter() - started
    equity_ts, cash, equity, gross = curve.arrays()
    return ReplayResult(
        run_id=run_id, strategy_id=kernel.strategy.strategy_id, params=kernel.strategy.params.model_dump(),
        symbols=[s.symbol for s in series], timeframe_ns=timeframes.pop(), starting_cash=spec.replay.starting_cash,
        bars=count, elapsed_s=elapsed, equity_ts=equity_ts, cash=cash,
        equity=equity, gross_exposure=gross, trades=collected.trades,
        orders=list(kernel.book.orders.values()), fills=collected.fills, positions=kernel.portfolio.positions(),
        trading_state=kernel.risk.state, strategy_enabled=engine.strategy_enabled,
        closes={s.symbol: (_release_times(s, equity_ts), s.close) for s in series}, state_changes=collected.state_changes,
        trading_state_reason=kernel.risk.reason, denied=collected.denied,
        denied_while_halted=engine.denied_while_halted, rejected=collected.rejected,
        dropped_bars=engine.dropped_bars)


def _release_times(series: BarSeries, equity_ts: np.ndarray) -> np.ndarray:
    """``series.ts_init``, or the equity curve's own timestamps when they are the same (one
    symbol, no bar dropped): one array of 8 bytes a bar less for the rest of the run."""
    ts_init = series.ts_init
    return equity_ts if np.array_equal(ts_init, equity_ts) else ts_init


__all__ = ["EquityCurve", "ProgressCallback", "ReplayConfig", "ReplayResult", "ResultCollector", "run_replay"]
