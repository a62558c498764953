"""Ports: the roles the engine talks to. Adapters (PaperBroker, AlpacaBroker, SqlStore, ...) live in
outer layers and satisfy these protocols structurally.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from core.enums import Regime, Side, TradingState
from core.events import Bar, OrderDenied, OrderFilled, SubmitOrder, TradeClosed, TradingStateChanged
from core.intents import OrderIntent
from core.orders import Order
from core.recovery import RestoredPosition, RiskSnapshot


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
    """Where orders go: submit and cancel, nothing else.

    Returned events are fed back into the engine in order. A simulated broker answers at once
    (accepted or rejected); a real broker (``AlpacaBroker``) returns nothing and delivers its events
    through the live node's queue. A submit has three outcomes: accepted, rejected, or unknown
    until looked up (a real broker resolves it by ``client_order_id``, never by resubmitting).
    """

    def submit(self, order: Order, ts: int) -> Sequence[Any]: ...
    def cancel(self, order: Order, ts: int) -> Sequence[Any]: ...


class SimulatedVenue(Protocol):
    """The simulated market the kernel lets fill working orders against each bar (the paper fill
    model), in replay and in live paper trading alike. A real broker has no venue.

    ``on_bar`` returns the fills (and expiries) the bar causes, in order; it is called before the
    bar is marked, with orders submitted before the bar started only (no look-ahead). ``idle`` is
    True while nothing works (no order, nothing tracked): the engine then skips the call.
    """

    @property
    def idle(self) -> bool: ...
    def on_bar(self, bar: Bar) -> Sequence[Any]: ...


class Store(Protocol):
    """Persistence of everything the engine does. Implementations may batch writes but must keep
    their order, and must make :meth:`save_order` durable before a live broker call.

    :meth:`save_fill` writes the fill together with the order row it updated: both or neither
    reach the database (a crash never leaves a fill whose order still says unfilled).
    :meth:`save_account` snapshots cash (USD), open positions and the last bar time per symbol;
    recovery books the fills stored after the snapshot on top of it, so the snapshot may be sparse.
    """

    def save_order(self, order: Order) -> None: ...
    def save_fill(self, fill: OrderFilled, order: Order) -> None: ...
    def save_decision(self, decision: Decision) -> None: ...
    def save_trade(self, trade: TradeClosed) -> None: ...
    def save_equity(self, snapshot: EquitySnapshot) -> None: ...
    def save_trading_state(self, change: TradingStateChanged) -> None: ...
    def save_risk_state(self, snapshot: RiskSnapshot) -> None: ...
    def save_account(self, cash: float, positions: Iterable[RestoredPosition], ts: int, *,
                     last_bar_ts: Mapping[str, int] | None = None) -> None: ...
    def save_learner_state(self, symbol: str, state: bytes, ts: int | None = None) -> None: ...
    def flush(self) -> None: ...


class AlertSink(Protocol):
    """Receives notable things (halts, rejections, strategy crashes). Must never block or raise."""

    def alert(self, severity: str, title: str, text: str, **fields: Any) -> None: ...


class PendingOrdersView(Protocol):
    """Read-only view of the working orders (implemented by :class:`core.order_book.OrderBook`).

    Quantities are signed shares still to fill (+ buys, - sells), split into entries (orders that
    may open or grow a position) and exits (``reduce_only`` orders).
    """

    def pending(self, symbol: str) -> float: ...
    def pending_entries(self, symbol: str) -> float: ...
    def pending_exits(self, symbol: str) -> float: ...
    def symbols_with_pending_entries(self) -> Iterable[str]: ...


class RiskManager(Protocol):
    """The risk engine as the Engine sees it (implemented in ``risk/``).

    ``flatten_on_halt`` tells the engine to close every position when trading halts.
    """

    @property
    def state(self) -> TradingState: ...
    @property
    def reason(self) -> str: ...
    @property
    def flatten_on_halt(self) -> bool: ...
    @property
    def version(self) -> int: ...
    def snapshot(self, ts: int) -> RiskSnapshot: ...
    def evaluate(self, intent: OrderIntent, strategy_id: str, view: PortfolioView, orders: PendingOrdersView,
                 client_order_id: str, ts: int) -> SubmitOrder | OrderDenied: ...
    def on_equity(self, equity: float, ts: int) -> TradingStateChanged | None: ...
    def on_trade_closed(self, trade: TradeClosed) -> TradingStateChanged | None: ...
    def on_timer(self, name: str, ts: int) -> TradingStateChanged | None: ...
    def halt(self, reason: str, ts: int) -> TradingStateChanged | None: ...
    def rearm(self, reason: str, ts: int) -> TradingStateChanged | None: ...
    def add_cause(self, cause: str, reason: str, ts: int) -> TradingStateChanged | None: ...
    def clear_cause(self, cause: str, reason: str, ts: int) -> TradingStateChanged | None: ...


class SignalModel(Protocol):
    """Features, regime and online-learner predictions per symbol (implemented in ``learning/``).

    ``on_bar`` updates everything for ``bar.symbol`` and returns the new regime when it changed.
    ``observe`` is the cheaper form while nobody listens for regime changes: the bar's close is
    queued and the regime computed in a batch when read (same values).
    """

    def on_bar(self, bar: Bar) -> tuple[Regime, Regime] | None: ...
    def observe(self, bar: Bar) -> None: ...
    def features(self, symbol: str) -> dict[str, float] | None: ...
    def prediction(self, symbol: str) -> float | None: ...
    def regime(self, symbol: str) -> Regime: ...
    def learner_states(self) -> dict[str, bytes]: ...


class Strategy(Protocol):
    """A trading strategy (see ``strategies/``): read-only context in, order intents out.

    What it needs is declared, not guessed: ``params`` is its validated parameter model (a frozen
    pydantic model; ``params.model_dump()`` is what the run records) and ``uses_learner`` is True
    when it reads ``ctx.prediction`` (the kernel then runs the online learners).

    ``on_bar`` is called once per bar after the bar closed; it must not mutate its inputs, call a
    broker, the store or the network, or read the wall clock.
    """

    strategy_id: str

    @property
    def params(self) -> Any: ...
    @property
    def uses_learner(self) -> bool: ...
    def on_bar(self, ctx: Any, bar: Bar) -> Sequence[OrderIntent]: ...
