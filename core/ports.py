"""Ports: the roles the engine talks to. Adapters (PaperBroker, AlpacaBroker, SqlStore, ...) live in
outer layers and satisfy these protocols structurally.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from core.enums import Regime, Side, TradingState
from core.events import Bar, OrderDenied, OrderFilled, SubmitOrder, TradeClosed, TradingStateChanged
from core.intents import OrderIntent
from core.orders import Order


class Decision(NamedTuple):
    """What the engine decided about one intent (persisted for audit).

    ``outcome`` is ``"submitted"`` or ``"denied"``; ``reason`` is the strategy's reason for a
    submission or the risk engine's reason for a denial.
    """

    ts: int
    strategy_id: str
    symbol: str
    side: Side
    quantity: float
    outcome: str
    reason: str
    client_order_id: str
    confidence: float | None
    regime: str


class EquitySnapshot(NamedTuple):
    """Account value at ``ts`` (ns UTC): USD amounts; ``gross_exposure`` USD."""

    ts: int
    cash: float
    equity: float
    gross_exposure: float
    open_positions: int


class PortfolioView(Protocol):
    """Read-only account view given to strategies and the risk engine."""

    @property
    def cash(self) -> float: ...
    @property
    def equity(self) -> float: ...
    @property
    def gross_exposure(self) -> float: ...
    @property
    def open_positions(self) -> int: ...
    def position(self, symbol: str) -> float: ...
    def avg_price(self, symbol: str) -> float: ...
    def mark(self, symbol: str) -> float | None: ...


class Broker(Protocol):
    """Where orders go. Returned events are fed back into the engine in order.

    A simulated broker answers synchronously (accept now, fill on a later bar); a real broker
    returns nothing and delivers its events through the live node's queue.
    """

    def submit(self, order: Order, ts: int) -> Sequence[Any]: ...
    def cancel(self, order: Order, ts: int) -> Sequence[Any]: ...
    def on_bar(self, bar: Bar) -> Sequence[Any]: ...


class Store(Protocol):
    """Persistence of everything the engine does. Implementations may batch writes but must keep
    their order, and must make :meth:`save_order` durable before a live broker call."""

    def save_order(self, order: Order) -> None: ...
    def save_fill(self, fill: OrderFilled) -> None: ...
    def save_decision(self, decision: Decision) -> None: ...
    def save_trade(self, trade: TradeClosed) -> None: ...
    def save_equity(self, snapshot: EquitySnapshot) -> None: ...
    def save_trading_state(self, change: TradingStateChanged) -> None: ...
    def flush(self) -> None: ...


class AlertSink(Protocol):
    """Receives notable things (halts, rejections, strategy crashes). Must never block or raise."""

    def alert(self, severity: str, title: str, text: str, **fields: Any) -> None: ...


class RiskManager(Protocol):
    """The risk engine as the Engine sees it (implemented in ``risk/``).

    ``config.flatten_on_halt`` tells the engine to close every position when trading halts.
    """

    config: Any

    @property
    def state(self) -> TradingState: ...
    def evaluate(self, intent: OrderIntent, strategy_id: str, view: PortfolioView, pending: float,
                 client_order_id: str, ts: int) -> SubmitOrder | OrderDenied: ...
    def on_equity(self, equity: float, ts: int) -> TradingStateChanged | None: ...
    def on_trade_closed(self, trade: TradeClosed) -> TradingStateChanged | None: ...
    def on_timer(self, name: str, ts: int) -> TradingStateChanged | None: ...
    def halt(self, reason: str, ts: int) -> TradingStateChanged | None: ...
    def rearm(self, reason: str, ts: int) -> TradingStateChanged | None: ...


class SignalModel(Protocol):
    """Features, regime and online-learner predictions per symbol (implemented in ``learning/``).

    ``on_bar`` updates everything for ``bar.symbol`` and returns the new regime when it changed.
    """

    def on_bar(self, bar: Bar) -> tuple[Regime, Regime] | None: ...
    def features(self, symbol: str) -> dict[str, float] | None: ...
    def prediction(self, symbol: str) -> float | None: ...
    def regime(self, symbol: str) -> Regime: ...


class Strategy(Protocol):
    """A trading strategy (see ``strategies/``): read-only context in, order intents out.

    ``on_bar`` is called once per bar after the bar closed; it must not mutate its inputs, call a
    broker, the store or the network, or read the wall clock.
    """

    strategy_id: str

    def on_bar(self, ctx: Any, bar: Bar) -> Sequence[OrderIntent]: ...
