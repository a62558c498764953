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

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from backtest.broker import PaperBroker
from backtest.fill_model import FillConfig
from backtest.merge import merge_bars
from backtest.sources import BarSeries
from core.clock import Clock
from core.engine import Engine
from core.enums import TradingState
from core.events import OrderFilled, TradeClosed
from core.orders import Order
from core.portfolio import Portfolio, Position
from core.ports import AlertSink, Store, Strategy
from core.time import parse_timeframe
from learning.pipeline import SignalConfig, SignalPipeline
from risk.config import RiskConfig
from risk.engine import RiskEngine

ProgressCallback = Callable[[int], None]
"""Called with the number of bars processed so far, every ``progress_every`` bars."""


class ReplayConfig(BaseModel):
    """Settings of one replay that are not a component's own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    starting_cash: float = Field(100_000.0, gt=0, description="USD")
    snapshot_interval: str = Field("1d", description="equity snapshot cadence in the store, e.g. '1d', '1h'")
    progress_every: int = Field(16_384, ge=1, description="bars between progress callbacks")

    @field_validator("snapshot_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        parse_timeframe(value)
        return value


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


@dataclass
class ReplayResult:
    """Everything a replay produced; research tools consume it (metrics, reports, optimizers)."""

    run_id: str
    strategy_id: str
    params: dict
    symbols: list[str]
    timeframe_ns: int
    starting_cash: float
    bars: int
    elapsed_s: float
    equity_ts: np.ndarray  # int64 ns UTC, one per bar timestamp
    cash: np.ndarray  # float64 USD
    equity: np.ndarray  # float64 USD
    gross_exposure: np.ndarray  # float64 USD
    trades: list[TradeClosed]
    orders: list[Order]
    fills: list[OrderFilled]
    positions: dict[str, Position]
    trading_state: TradingState
    strategy_enabled: bool
    closes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # symbol -> (ts_init, close)
    data_hash: str = ""
    config_hash: str = ""

    @property
    def bars_per_second(self) -> float:
        return self.bars / self.elapsed_s if self.elapsed_s > 0 else float("inf")


def build_engine(strategy: Strategy, *, risk_config: RiskConfig, fill_config: FillConfig,
                 signal_config: SignalConfig, replay_config: ReplayConfig, store: Store,
                 alerts: AlertSink, start_ns: int = 0) -> tuple[Engine, EquityCurve, list[OrderFilled]]:
    """Assemble an Engine with a simulated clock and the paper broker (shared by replay and tests)."""
    clock = Clock(start_ns)
    uses_learner = bool(getattr(strategy, "uses_learner", False))
    if uses_learner and not signal_config.learner_enabled:
        signal_config = signal_config.model_copy(update={"learner_enabled": True})
    signals = SignalPipeline(signal_config) if (signal_config.regime_enabled or signal_config.learner_enabled) else None
    curve = EquityCurve()
    engine = Engine(clock=clock, portfolio=Portfolio(replay_config.starting_cash), strategy=strategy,
                    risk=RiskEngine(risk_config, clock), broker=PaperBroker(fill_config), store=store,
                    alerts=alerts, signals=signals, equity_recorder=curve,
                    snapshot_interval_ns=parse_timeframe(replay_config.snapshot_interval))
    fills: list[OrderFilled] = []
    engine.subscribe(OrderFilled, fills.append)
    return engine, curve, fills


def run_replay(series: Sequence[BarSeries], strategy: Strategy, *, risk_config: RiskConfig,
               fill_config: FillConfig, signal_config: SignalConfig, replay_config: ReplayConfig,
               store: Store, alerts: AlertSink, run_id: str = "replay",
               progress: ProgressCallback | None = None) -> ReplayResult:
    """Replay ``series`` (merged by bar end time) through the full pipeline.

    Returns
    -------
    ReplayResult
        Trades, orders, fills, equity curve and final state. The store has received the same rows
        a live session would write; it is flushed before returning.

    Raises
    ------
    ValueError
        If ``series`` is empty or the series have different timeframes.
    """
    if not series:
        raise ValueError("run_replay: no bar series given")
    timeframes = {s.timeframe_ns for s in series}
    if len(timeframes) != 1:
        raise ValueError(f"run_replay: series mix timeframes {sorted(timeframes)} ns; replay one timeframe at a time")
    start_ns = min(int(s.ts_event[0]) for s in series if len(s))
    engine, curve, fills = build_engine(strategy, risk_config=risk_config, fill_config=fill_config,
                                        signal_config=signal_config, replay_config=replay_config,
                                        store=store, alerts=alerts, start_ns=start_ns)
    handle = engine.handle
    every = replay_config.progress_every
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
    params = strategy.params.model_dump() if hasattr(strategy, "params") else {}
    return ReplayResult(
        run_id=run_id, strategy_id=strategy.strategy_id, params=params, symbols=[s.symbol for s in series],
        timeframe_ns=timeframes.pop(), starting_cash=replay_config.starting_cash, bars=count, elapsed_s=elapsed,
        equity_ts=np.asarray(curve.ts, dtype=np.int64), cash=np.asarray(curve.cash),
        equity=np.asarray(curve.equity), gross_exposure=np.asarray(curve.gross),
        trades=list(engine.trades.closed), orders=list(engine.orders.values()), fills=fills,
        positions=engine.portfolio.positions(), trading_state=engine.risk.state,
        strategy_enabled=engine.strategy_enabled,
        closes={s.symbol: (s.ts_init, s.close) for s in series})
