"""The Engine: the single path every event takes, in live trading and in replay alike.

``Engine.handle(event)`` is synchronous and deterministic: it never awaits, never reads the wall
clock and never does network I/O (adapters behind the ports may buffer I/O). Steps for a bar
(DESIGN.md "The one path"): advance the clock and fire due timers; let the broker fill pending
orders against the bar (a simulated broker fills market orders at this bar's open, i.e. at a
price after the decision); mark to market and re-check breakers; update signals (features,
regime, learners); ask the strategy; pass each intent through risk; persist; submit.
"""

from __future__ import annotations

import traceback
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from core.clock import Clock
from core.context import StrategyContext
from core.enums import OrderStatus, OrderType, Side, TimeInForce, TradingState
from core.events import (Bar, CancelOrder, HaltTrading, OrderAccepted, OrderCanceled, OrderDenied,
                         OrderFilled, OrderRejected, RearmTrading, RegimeChanged, SubmitOrder,
                         TimerFired, TradingStateChanged)
from core.intents import OrderIntent
from core.orders import Order
from core.portfolio import Portfolio
from core.ports import AlertSink, Broker, Decision, EquitySnapshot, RiskManager, SignalModel, Store, Strategy
from core.time import NANOS_PER_DAY
from core.trades import TradeTracker

EquityRecorder = Callable[[int, float, float, float], None]
"""Called after every bar with (ts ns, cash USD, equity USD, gross exposure USD)."""


class Engine:
    """Wire the core together and process events one at a time.

    Parameters
    ----------
    clock, portfolio, strategy, risk, broker, store, alerts
        The collaborators (ports). ``store`` batching is the store's business.
    signals
        Optional features/regime/learner model; ``None`` skips that step entirely.
    equity_recorder
        Optional callback receiving every post-bar equity point (replay builds its curve with it).
    snapshot_interval_ns
        The store receives one :class:`EquitySnapshot` per interval (the last one in it); 0 means
        every bar timestamp. Default one UTC day.
    """

    def __init__(self, *, clock: Clock, portfolio: Portfolio, strategy: Strategy, risk: RiskManager,
                 broker: Broker, store: Store, alerts: AlertSink, signals: SignalModel | None = None,
                 equity_recorder: EquityRecorder | None = None,
                 snapshot_interval_ns: int = NANOS_PER_DAY) -> None:
        self.clock = clock
        self.portfolio = portfolio
        self.strategy = strategy
        self.risk = risk
        self.broker = broker
        self.store = store
        self.alerts = alerts
        self.signals = signals
        self.trades = TradeTracker()
        self.context = StrategyContext(self)
        self.strategy_enabled = True
        self.denied_while_halted = 0
        self.dropped_bars = 0
        self._last_bar_ts: dict[str, int] = {}
        self.orders: dict[str, Order] = {}
        self.open_orders: dict[str, Order] = {}
        self._pending: dict[str, float] = defaultdict(float)
        self._seq_key: tuple[str, int] = ("", -1)
        self._seq = 0
        self._recorder = equity_recorder
        self._snapshot_interval = snapshot_interval_ns
        self._last_point: tuple[int, float, float, float, int] | None = None
        self._snapshot_bucket = -1
        self._subscribers: dict[type, list[Callable[[Any], None]]] = {}
        self._handlers: dict[type, Callable[[Any], None]] = {
            Bar: self._on_bar, TimerFired: self._on_timer, OrderAccepted: self._on_accepted,
            OrderRejected: self._on_rejected, OrderCanceled: self._on_canceled, OrderFilled: self._on_filled,
            CancelOrder: self._on_cancel, HaltTrading: self._on_halt, RearmTrading: self._on_rearm,
        }

    # --- public ------------------------------------------------------------------------------
    def handle(self, event: Any) -> None:
        """Process one event or command completely (including what it causes).

        Raises
        ------
        TypeError
            For an object the engine has no handler for.
        """
        handler = self._handlers.get(type(event))
        if handler is None:
            raise TypeError(f"Engine.handle: no handler for {type(event).__name__}")
        handler(event)

    def subscribe(self, event_type: type, callback: Callable[[Any], None]) -> None:
        """Call ``callback(event)`` for every published event of ``event_type`` (OrderFilled,
        OrderDenied, OrderRejected, TradeClosed, RegimeChanged, TradingStateChanged)."""
        self._subscribers.setdefault(event_type, []).append(callback)

    def pending_quantity(self, symbol: str) -> float:
        """Signed shares in open orders for ``symbol``."""
        return self._pending.get(symbol, 0.0)

    def finish(self) -> None:
        """Write the last equity snapshot and flush the store (end of replay or shutdown)."""
        if self._last_point is not None:
            self.store.save_equity(EquitySnapshot(*self._last_point))
            self._last_point = None
        self.store.flush()

    # --- bars --------------------------------------------------------------------------------
    def _on_bar(self, bar: Bar) -> None:
        last = self._last_bar_ts.get(bar.symbol)
        # NaN fails every comparison, so these chained tests also reject NaN prices and volume
        if (last is not None and bar.ts_event <= last) or not (
                0.0 < bar.low <= bar.open <= bar.high and bar.low <= bar.close <= bar.high and bar.volume >= 0.0):
            self._drop_bar(bar, last)
            return
        self._last_bar_ts[bar.symbol] = bar.ts_event
        ts = bar.ts_init
        for timer in self.clock.advance_to(ts):
            self._on_timer(timer)
        for event in self.broker.on_bar(bar):
            self.handle(event)
        portfolio = self.portfolio
        portfolio.update_mark(bar.symbol, bar.close)
        equity = portfolio.equity
        change = self.risk.on_equity(equity, ts)
        if change is not None:
            self._state_changed(change)
        signals = self.signals
        if signals is not None:
            regime_change = signals.on_bar(bar)
            if regime_change is not None and RegimeChanged in self._subscribers:
                self._publish(RegimeChanged(bar.symbol, regime_change[0], regime_change[1], bar.ts_event, ts))
        if self.strategy_enabled:
            try:
                intents = self.strategy.on_bar(self.context, bar)
            except Exception as exc:  # strategy code is untrusted: contain it, keep running
                self._disable_strategy(exc, bar)
                intents = ()
            if intents:
                if self.risk.state is TradingState.HALTED:
                    self.denied_while_halted += len(intents)  # one row per bar would flood the store
                else:
                    self._process_intents(intents, bar)
        self._record_equity(ts, equity)

    def _drop_bar(self, bar: Bar, last: int | None) -> None:
        if last is not None and bar.ts_event <= last:
            why = "duplicate" if bar.ts_event == last else "out-of-order"
            detail = f"{why} bar {bar.symbol} at {bar.ts_event} (last accepted {last})"
        else:
            detail = f"malformed bar {bar.symbol} at {bar.ts_event}: {bar}"
        self.dropped_bars += 1
        self.alerts.alert("warning", "bar dropped", detail, symbol=bar.symbol)

    def _record_equity(self, ts: int, equity: float) -> None:
        portfolio = self.portfolio
        cash = portfolio.cash
        open_positions = portfolio.open_positions
        gross = portfolio.gross_exposure if open_positions else 0.0
        if self._recorder is not None:
            self._recorder(ts, cash, equity, gross)
        # the store gets the last point of each snapshot interval, built only when one closes
        bucket = ts // self._snapshot_interval if self._snapshot_interval else ts
        if bucket != self._snapshot_bucket and self._last_point is not None:
            self.store.save_equity(EquitySnapshot(*self._last_point))
        self._snapshot_bucket = bucket
        self._last_point = (ts, cash, equity, gross, open_positions)

    def _disable_strategy(self, exc: Exception, bar: Bar) -> None:
        self.strategy_enabled = False
        self.alerts.alert("error", f"strategy {self.strategy.strategy_id} disabled",
                          f"{type(exc).__name__}: {exc} on {bar.symbol} bar at {bar.ts_event}",
                          traceback="".join(traceback.format_exception(exc)))

    # --- intents -> risk -> orders ---------------------------------------------------------
    def _process_intents(self, intents: Iterable[OrderIntent], bar: Bar) -> None:
        strategy_id = self.strategy.strategy_id
        regime = self.signals.regime(bar.symbol).value if self.signals is not None else ""
        for intent in intents:
            key = (intent.symbol, bar.ts_event)
            if key != self._seq_key:
                self._seq_key, self._seq = key, 0
            self._seq += 1
            # deterministic: a retry or restart re-derives the same id and cannot duplicate
            client_order_id = f"{strategy_id}-{intent.symbol}-{bar.ts_event // 1_000_000_000}-{self._seq}"
            verdict = self.risk.evaluate(intent, strategy_id, self.portfolio, self.pending_quantity(intent.symbol),
                                         client_order_id, self.clock.now)
            if isinstance(verdict, OrderDenied):
                self.store.save_decision(Decision(self.clock.now, strategy_id, intent.symbol, intent.side,
                                                  verdict.quantity, "denied", verdict.reason, "",
                                                  intent.confidence, regime))
                self._publish(verdict)
                continue
            self.store.save_decision(Decision(self.clock.now, strategy_id, intent.symbol, verdict.side,
                                              verdict.quantity, "submitted", verdict.reason, client_order_id,
                                              intent.confidence, regime))
            self._submit(verdict)

    def _submit(self, command: SubmitOrder) -> None:
        order = Order(command)
        self.orders[order.client_order_id] = order
        self.store.save_order(order)  # the intent is durable before the broker hears of it
        order.transition(OrderStatus.SUBMITTED, self.clock.now)
        self.open_orders[order.client_order_id] = order
        self._pending[order.symbol] += order.quantity * order.side.sign
        for event in self.broker.submit(order, self.clock.now):
            self.handle(event)

    # --- order events ----------------------------------------------------------------------
    def _order(self, client_order_id: str) -> Order | None:
        order = self.orders.get(client_order_id)
        if order is None:
            self.alerts.alert("error", "event for unknown order", client_order_id)
        return order

    def _close_order(self, order: Order) -> None:
        if not order.is_open and self.open_orders.pop(order.client_order_id, None) is not None:
            self._pending[order.symbol] -= order.leaves_quantity * order.side.sign

    def _on_accepted(self, event: OrderAccepted) -> None:
        order = self._order(event.client_order_id)
        if order is None or order.status is not OrderStatus.SUBMITTED:
            return  # late or duplicate acceptance after a fill: nothing to change
        order.broker_order_id = event.broker_order_id
        order.transition(OrderStatus.ACCEPTED, event.ts_init)
        self.store.save_order(order)

    def _on_rejected(self, event: OrderRejected) -> None:
        order = self._order(event.client_order_id)
        if order is None or not order.is_open:
            return
        order.transition(OrderStatus.REJECTED, event.ts_init)
        self._close_order(order)
        self.store.save_order(order)
        self.alerts.alert("warning", f"order rejected: {order.symbol}", event.reason,
                          client_order_id=order.client_order_id)
        self._publish(event)

    def _on_canceled(self, event: OrderCanceled) -> None:
        order = self._order(event.client_order_id)
        if order is None or not order.is_open:
            return
        order.transition(OrderStatus.CANCELED, event.ts_init)
        self._close_order(order)
        self.store.save_order(order)

    def _on_filled(self, fill: OrderFilled) -> None:
        order = self._order(fill.client_order_id)
        if order is None:
            return
        shares = order.apply_fill(fill.cum_quantity, fill.price, fill.commission, fill.ts_init)
        if shares == 0.0:
            return  # duplicate report
        self._pending[order.symbol] -= shares * order.side.sign
        portfolio = self.portfolio
        before = portfolio.position(order.symbol)
        realized = portfolio.apply_fill(order.symbol, order.side, shares, fill.price, fill.commission)
        after = portfolio.position(order.symbol)
        self._close_order(order)
        self.store.save_fill(fill)
        self.store.save_order(order)
        self._publish(fill)
        trade = self.trades.on_fill(order.symbol, order.side, shares, fill.price, fill.commission, realized,
                                    before, after, fill.ts_event, order.reason)
        if trade is not None:
            self.store.save_trade(trade)
            self._publish(trade)
            change = self.risk.on_trade_closed(trade)
            if change is not None:
                self._state_changed(change)

    # --- timers and commands ---------------------------------------------------------------
    def _on_timer(self, timer: TimerFired) -> None:
        change = self.risk.on_timer(timer.name, timer.ts_init)
        if change is not None:
            self._state_changed(change)

    def _on_cancel(self, command: CancelOrder) -> None:
        order = self._order(command.client_order_id)
        if order is not None and order.is_open:
            for event in self.broker.cancel(order, command.ts_init):
                self.handle(event)

    def _on_halt(self, command: HaltTrading) -> None:
        change = self.risk.halt(command.reason, command.ts_init)
        if change is not None:
            self._state_changed(change)

    def _on_rearm(self, command: RearmTrading) -> None:
        change = self.risk.rearm(command.reason, command.ts_init)
        if change is not None:
            self._state_changed(change)

    def _state_changed(self, change: TradingStateChanged) -> None:
        self.store.save_trading_state(change)
        severity = "critical" if change.current is TradingState.HALTED else "warning"
        self.alerts.alert(severity, f"trading state {change.previous.value} -> {change.current.value}", change.reason)
        self._publish(change)
        if change.current is TradingState.HALTED:
            for order in list(self.open_orders.values()):
                for event in self.broker.cancel(order, change.ts_init):
                    self.handle(event)
            if getattr(self.risk.config, "flatten_on_halt", False):
                self._flatten(change.ts_init)

    def _flatten(self, ts: int) -> None:
        """Close every open position with market orders. These bypass the risk engine on purpose:
        HALTED denies everything, and a kill switch that cannot exit is no kill switch."""
        portfolio = self.portfolio
        for symbol in sorted(sym for sym, pos in portfolio.positions().items() if pos.quantity != 0.0):
            quantity = portfolio.position(symbol) + self.pending_quantity(symbol)
            if quantity == 0.0:
                continue
            side = Side.SELL if quantity > 0 else Side.BUY
            self._submit(SubmitOrder(f"{self.strategy.strategy_id}-{symbol}-{ts // 1_000_000_000}-halt",
                                     self.strategy.strategy_id, symbol, side, abs(quantity), OrderType.MARKET,
                                     None, None, TimeInForce.GTC, "halt_flatten", ts))

    def _publish(self, event: Any) -> None:
        callbacks = self._subscribers.get(type(event))
        if callbacks:
            for callback in callbacks:
                callback(event)


__all__ = ["Engine", "EquityRecorder"]
