"""The Engine: the single path every event takes, in live trading and in replay alike.

``Engine.handle(event)`` is synchronous and deterministic: it never awaits, never reads the wall
clock and never does network I/O (adapters behind the ports may buffer I/O). Steps for a bar
(DESIGN.md "The one path"): refuse it unless it passes the gate (:mod:`core.bars`, duplicates and
out-of-order times); advance the clock and fire due timers; let the simulated venue (if any) fill
working orders against the bar (market orders at this bar's open, a price after the decision);
mark to market and re-check breakers; update signals (features, regime, learners); ask the
strategy; pass each intent through risk; persist the intent; submit.

No broker event makes ``handle`` raise: contradictory, late, duplicated or malformed reports are
recorded, alerted and leave the books consistent (cash + positions = equity).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from core.bars import MAX_BAR_NS, MAX_PRICE, MAX_TS, MAX_VOLUME, MIN_PRICE, bar_problem
from core.clock import Clock
from core.context import StrategyContext
from core.enums import OrderStatus, OrderType, Side, TimeInForce, TradingState
from core.events import (Bar, CancelOrder, ClockTick, DataResumed, DataStale, FlattenPositions, HaltTrading, OrderAccepted, OrderCanceled, OrderDenied,
                         OrderExpired, OrderFilled, OrderRejected, PauseTrading, RearmTrading, RegimeChanged,
                         ResumeTrading, SubmitOrder, TimerFired, TradingStateChanged)
from core.intents import OrderIntent
from core.order_book import OrderBook
from core.orders import Order
from core.portfolio import Portfolio
from core.recovery import RestoredPosition
from core.ports import (AlertSink, Broker, Decision, EquitySnapshot, RiskManager, SignalModel, SimulatedVenue, Store,
                        Strategy)
from core.time import NANOS_PER_DAY
from core.trades import TradeTracker

EquityRecorder = Callable[[int, float, float, float], None]
"""Called after every bar with (ts ns, cash USD, equity USD, gross exposure USD)."""

PAUSE_CAUSE = "paused"
"""REDUCING cause set by :class:`PauseTrading` and cleared by :class:`ResumeTrading`."""
_OVERFILL_TOLERANCE = 1e-6  # shares (relative and absolute): broker float noise, not an overfill


class Engine:
    """Wire the core together and process events one at a time.

    Parameters
    ----------
    clock, portfolio, strategy, risk, broker, store, alerts
        The collaborators (ports). ``store`` batching is the store's business.
    venue
        The simulated venue that fills working orders against each bar (the paper broker, in
        replay and live paper trading); ``None`` with a real broker.
    signals
        Optional features/regime/learner model; ``None`` skips that step entirely.
    book, trades
        The order book and round-trip tracker (new empty ones by default; recovery passes restored
        ones).
    equity_recorder
        Optional callback receiving every post-bar equity point (replay builds its curve with it).
    snapshot_interval_ns
        The store receives one :class:`EquitySnapshot` and one risk snapshot per interval (the last
        one in it); 0 means every bar timestamp (live: so a restart loses no high-water mark).
    max_bar_lead_ns
        Live only: refuse a bar released more than this after the clock's time (a feed with a
        broken clock); ``None`` (replay) trusts the bar's release time.
    """

    def __init__(self, *, clock: Clock, portfolio: Portfolio, strategy: Strategy, risk: RiskManager,
                 broker: Broker, store: Store, alerts: AlertSink, venue: SimulatedVenue | None = None,
                 signals: SignalModel | None = None, book: OrderBook | None = None,
                 trades: TradeTracker | None = None, equity_recorder: EquityRecorder | None = None,
                 snapshot_interval_ns: int = NANOS_PER_DAY, max_bar_lead_ns: int | None = None) -> None:
        self.clock = clock
        self.portfolio = portfolio
        self.strategy = strategy
        self.risk = risk
        self.broker = broker
        self.venue = venue
        self.store = store
        self.alerts = alerts
        self.signals = signals
        self.book = book if book is not None else OrderBook()
        self.trades = trades if trades is not None else TradeTracker()
        self.context = StrategyContext(clock=clock, portfolio=portfolio, book=self.book, trades=self.trades,
                                       signals=signals, trading_state=lambda: risk.state)
        self.strategy_enabled = True
        self.denied_while_halted = 0
        self.dropped_bars = 0
        self.broker_event_errors = 0
        self.last_bar_ts: dict[str, int] = {}
        self._recorder = equity_recorder
        self._snapshot_interval = snapshot_interval_ns
        self._max_lead = max_bar_lead_ns
        self._last_point: tuple[int, float, float, float, int] | None = None
        self._bucket_low = self._bucket_high = 0  # empty: the first bar opens an interval
        self._risk_version = risk.version
        self._subscribers: dict[type, list[Callable[[Any], None]]] = {}
        # Signals that can queue closes for their regime detector (``observe``, see
        # learning.pipeline) get them that way until someone subscribes to RegimeChanged: the
        # regime is then only computed when read, in batches, at half the cost.
        self._observe: Callable[[Bar], None] | None = signals.observe if signals is not None else None
        self._handlers: dict[type, Callable[[Any], None]] = {
            Bar: self._on_bar, TimerFired: self._on_timer, OrderAccepted: self._on_accepted,
            OrderRejected: self._on_rejected, OrderCanceled: self._on_canceled, OrderExpired: self._on_expired,
            OrderFilled: self._on_filled, CancelOrder: self._on_cancel, HaltTrading: self._on_halt,
            RearmTrading: self._on_rearm, FlattenPositions: self._on_flatten, PauseTrading: self._on_pause,
            ResumeTrading: self._on_resume, ClockTick: self._on_tick, DataStale: self._on_stale,
            DataResumed: self._on_resumed,
        }

    # --- public ------------------------------------------------------------------------------
    def handle(self, event: Any) -> None:
        """Process one event or command completely (including what it causes).

        Never raises for an event of a known type: an unexpected error inside a step is caught,
        alerted (``critical``) and counted in ``broker_event_errors``, and the engine keeps running.

        Raises
        ------
        TypeError
            For an object the engine has no handler for (a programming error, not bad data).
        """
        handler = self._handlers.get(type(event))
        if handler is None:
            raise TypeError(f"Engine.handle: no handler for {type(event).__name__}")
        try:
            handler(event)
        except Exception as exc:  # the one path must survive anything an adapter or a bug sends it
            self._step_failed(event, exc)

    def handle_bars(self, bars: Iterable[Bar]) -> int:
        """:meth:`handle` every bar of ``bars`` in order (replay's loop, without the per-event
        dispatch); return how many were given (dropped ones included).

        Raises
        ------
        TypeError
            For an item that is not a :class:`~core.events.Bar` (nothing after it is handled).
        """
        on_bar = self._on_bar
        count = 0
        for bar in bars:
            count += 1
            if type(bar) is not Bar:
                self.handle(bar)  # raises TypeError for anything without a handler
                continue
            try:
                on_bar(bar)
            except Exception as exc:  # as in handle: contain, alert, keep going
                self._step_failed(bar, exc)
        return count

    def _step_failed(self, event: Any, exc: Exception) -> None:
        self.broker_event_errors += 1
        self.alerts.alert("critical", f"engine error on {type(event).__name__}",
                          f"{type(exc).__name__}: {exc}", event=repr(event),
                          traceback="".join(traceback.format_exception(exc)))

    def subscribe(self, event_type: type, callback: Callable[[Any], None]) -> None:
        """Call ``callback(event)`` for every published event of ``event_type`` (OrderFilled,
        OrderDenied, OrderRejected, OrderCanceled, OrderExpired, TradeClosed, RegimeChanged,
        TradingStateChanged)."""
        self._subscribers.setdefault(event_type, []).append(callback)
        if event_type is RegimeChanged:
            self._observe = None  # changes are wanted bar by bar from now on

    def finish(self) -> None:
        """Write the last equity, risk, account and learner snapshots and flush the store (end of
        replay or shutdown), so a restart resumes exactly here."""
        if self._last_point is not None:
            self.store.save_equity(EquitySnapshot(*self._last_point))
            self._last_point = None
        self._save_risk_state()
        self._save_account()
        if self.signals is not None:
            now = self.clock.now
            for symbol, state in self.signals.learner_states().items():
                self.store.save_learner_state(symbol, state, now)
        self.store.flush()

    def _save_account(self) -> None:
        trades = self.trades
        positions = [RestoredPosition(symbol=p.symbol, quantity=p.quantity, avg_price=p.avg_price, mark=p.mark,
                                      entry_ts=trades.entry_ts(p.symbol))
                     for p in self.portfolio.positions().values() if p.quantity != 0.0]
        self.store.save_account(self.portfolio.cash, positions, self.clock.now, last_bar_ts=self.last_bar_ts)

    # --- bars --------------------------------------------------------------------------------
    def _on_bar(self, bar: Bar) -> None:
        # The hot path: it runs for every bar, so collaborators are read into locals once and the
        # per-bar tail (equity point, snapshot bucket) is inlined; the rare branches call out.
        symbol, ts_event, ts, o, h, lo, c, v = bar
        last_bar_ts = self.last_bar_ts
        last = last_bar_ts.get(symbol)
        # the gate of core.bars.bar_is_sound, inlined; NaN fails every test
        if (not (MIN_PRICE <= lo <= o <= h <= MAX_PRICE and lo <= c <= h and 0.0 <= v <= MAX_VOLUME
                 and 0 <= ts_event <= ts < MAX_TS and ts - ts_event <= MAX_BAR_NS)
                or (last is not None and ts_event <= last)
                or (self._max_lead is not None and ts > self.clock.now + self._max_lead)):
            self._drop_bar(bar, last)
            return
        last_bar_ts[symbol] = ts_event
        for timer in self.clock.advance_to(ts):
            self._on_timer(timer)
        venue = self.venue
        # a venue that says it is idle (the paper broker with no working order) is not called:
        # such a bar cannot fill or expire anything
        if venue is not None and not venue.idle:
            for event in venue.on_bar(bar):
                self.handle(event)
        portfolio = self.portfolio
        equity = portfolio.update_mark(symbol, c)
        risk = self.risk
        change = risk.on_equity(equity, ts)
        if change is not None:
            self._state_changed(change)
        signals = self.signals
        if signals is not None:
            observe = self._observe
            if observe is not None:
                observe(bar)
            else:
                regime_change = signals.on_bar(bar)
                if regime_change is not None and RegimeChanged in self._subscribers:
                    self._publish(RegimeChanged(symbol=bar.symbol, previous=regime_change[0],
                                                current=regime_change[1], ts_event=bar.ts_event, ts_init=ts))
        if self.strategy_enabled:
            try:
                intents = self.strategy.on_bar(self.context, bar)
            except Exception as exc:  # strategy code is untrusted: contain it, keep running
                self._disable_strategy(exc, bar)
                intents = ()
            if intents:
                if risk.state is TradingState.HALTED:
                    self._audit_halted(intents)
                else:
                    self._process_intents(intents, bar)
        # the equity point: cash and exposure as the bar's orders left them, equity as marked
        cash = portfolio.cash
        open_positions = portfolio.open_positions
        gross = portfolio.gross_exposure if open_positions else 0.0
        recorder = self._recorder
        if recorder is not None:
            recorder(ts, cash, equity, gross)
        # the store gets the last point of each snapshot interval, built only when one closes; the
        # interval's bounds are compared, not ts // interval (a division of 19-digit ints per bar)
        if not self._bucket_low <= ts < self._bucket_high:
            self._close_snapshot_bucket(ts)
        self._last_point = (ts, cash, equity, gross, open_positions)

    def _drop_bar(self, bar: Bar, last: int | None) -> None:
        if last is not None and bar.ts_event <= last:
            why = "duplicate" if bar.ts_event == last else "out-of-order"
            detail = f"{why} bar {bar.symbol} at {bar.ts_event} (last accepted {last})"
        elif self._max_lead is not None and bar.ts_init > self.clock.now + self._max_lead:
            detail = (f"bar {bar.symbol} at {bar.ts_event} released at {bar.ts_init}, more than "
                      f"{self._max_lead} ns after the clock ({self.clock.now})")
        else:
            detail = f"malformed bar {bar.symbol} at {bar.ts_event}: {bar_problem(bar)}"
        self.dropped_bars += 1
        self.alerts.alert("warning", "bar dropped", detail, symbol=bar.symbol)

    def _close_snapshot_bucket(self, ts: int) -> None:
        """A bar at ``ts`` opened a new snapshot interval: save the previous interval's last point."""
        interval = self._snapshot_interval
        bucket = ts // interval if interval else ts
        if self._last_point is not None:
            self.store.save_equity(EquitySnapshot(*self._last_point))
            self._save_account()
        if self.risk.version != self._risk_version:
            self._save_risk_state()
        # [low, high): the times of this interval (one instant when every bar timestamp is one)
        self._bucket_low = bucket * interval if interval else ts
        self._bucket_high = self._bucket_low + (interval if interval else 1)

    def _save_risk_state(self) -> None:
        self._risk_version = self.risk.version
        self.store.save_risk_state(self.risk.snapshot(self.clock.now))

    def _disable_strategy(self, exc: Exception, bar: Bar) -> None:
        self.strategy_enabled = False
        self.alerts.alert("error", f"strategy {self.strategy.strategy_id} disabled",
                          f"{type(exc).__name__}: {exc} on {bar.symbol} bar at {bar.ts_event}",
                          traceback="".join(traceback.format_exception(exc)))

    # --- intents -> risk -> orders ---------------------------------------------------------
    def _regime(self, symbol: str) -> str:
        return self.signals.regime(symbol).value if self.signals is not None else ""

    def _process_intents(self, intents: Sequence[OrderIntent], bar: Bar) -> None:
        strategy_id = self.strategy.strategy_id
        now = self.clock.now
        book = self.book
        for intent in intents:
            client_order_id = book.next_client_order_id(strategy_id, intent.symbol, now)
            verdict = self.risk.evaluate(intent, strategy_id, self.portfolio, book, client_order_id, now)
            if isinstance(verdict, OrderDenied):
                self.store.save_decision(Decision(now, strategy_id, intent.symbol, intent.side, verdict.quantity,
                                                  "denied", verdict.reason, client_order_id, intent.confidence,
                                                  self._regime(intent.symbol)))
                self._publish(verdict)
                continue
            self.store.save_decision(Decision(now, strategy_id, intent.symbol, verdict.side, verdict.quantity,
                                              "submitted", verdict.reason, client_order_id, intent.confidence,
                                              self._regime(intent.symbol)))
            self._submit(verdict)

    def _audit_halted(self, intents: Sequence[OrderIntent]) -> None:
        """While HALTED, record one aggregated denial per symbol for this bar (not one per intent),
        so the audit trail has no hole and the store is not flooded."""
        self.denied_while_halted += len(intents)
        per_symbol: dict[str, list[OrderIntent]] = {}
        for intent in intents:
            per_symbol.setdefault(intent.symbol, []).append(intent)
        now, strategy_id, reason = self.clock.now, self.strategy.strategy_id, self.risk.reason
        for symbol, group in per_symbol.items():
            sides = {i.side for i in group}
            side = group[0].side if len(sides) == 1 else group[-1].side
            quantity = sum(i.quantity or 0.0 for i in group)
            self.store.save_decision(Decision(now, strategy_id, symbol, side, quantity, "denied",
                                              f"trading halted: {reason} ({len(group)} intent(s) on this bar)", "",
                                              group[0].confidence, self._regime(symbol)))

    def _submit(self, command: SubmitOrder) -> None:
        order = Order(command)
        self.book.add(order)
        self.store.save_order(order)  # the intent is durable before the broker hears of it
        order.transition(OrderStatus.SUBMITTED, self.clock.now)
        try:
            events = self.broker.submit(order, self.clock.now)
        except Exception as exc:  # outcome unknown: the order stays SUBMITTED until looked up
            self.alerts.alert("error", f"broker submit failed: {order.symbol}", f"{type(exc).__name__}: {exc}",
                              client_order_id=order.client_order_id)
            return
        for event in events:
            self.handle(event)

    # --- order events ----------------------------------------------------------------------
    def _order(self, client_order_id: str, what: str) -> Order | None:
        order = self.book.get(client_order_id)
        if order is None:
            self.alerts.alert("error", f"{what} for unknown order", client_order_id)
        return order

    def _on_accepted(self, event: OrderAccepted) -> None:
        order = self._order(event.client_order_id, "acceptance")
        if order is None or order.status not in (OrderStatus.INITIALIZED, OrderStatus.SUBMITTED):
            return  # late or duplicate acceptance after a fill or cancel: nothing to change
        order.broker_order_id = event.broker_order_id
        order.transition(OrderStatus.ACCEPTED, event.ts_init)
        self.store.save_order(order)

    def _end(self, order: Order, status: OrderStatus, ts: int) -> None:
        leaves = max(0.0, order.leaves_quantity)
        order.transition(status, ts)
        self.book.close(order, leaves)
        self.store.save_order(order)

    def _on_rejected(self, event: OrderRejected) -> None:
        order = self._order(event.client_order_id, "rejection")
        if order is None:
            return
        if not order.is_open:
            self.alerts.alert("warning", f"rejection ignored: order already {order.status.value}", event.reason,
                              client_order_id=order.client_order_id)
            return
        self._end(order, OrderStatus.REJECTED, event.ts_init)
        self.alerts.alert("warning", f"order rejected: {order.symbol}", event.reason,
                          client_order_id=order.client_order_id)
        self._publish(event)

    def _on_canceled(self, event: OrderCanceled) -> None:
        order = self._order(event.client_order_id, "cancel")
        if order is not None and order.is_open:
            self._end(order, OrderStatus.CANCELED, event.ts_init)
            self._publish(event)

    def _on_expired(self, event: OrderExpired) -> None:
        order = self._order(event.client_order_id, "expiry")
        if order is not None and order.is_open:
            self._end(order, OrderStatus.EXPIRED, event.ts_init)
            self._publish(event)

    @staticmethod
    def _fill_problem(fill: OrderFilled, order: Order) -> str | None:
        if fill.symbol != order.symbol or fill.side is not order.side:
            return f"fill for {fill.side.value} {fill.symbol} but the order is {order.side.value} {order.symbol}"
        if not (MIN_PRICE <= fill.price <= MAX_PRICE):  # NaN fails too
            return f"price {fill.price!r} is not a finite USD price in [{MIN_PRICE}, {MAX_PRICE}]"
        if not (0.0 < fill.cum_quantity <= MAX_VOLUME):
            return f"cum_quantity {fill.cum_quantity!r} is not a positive number of shares up to {MAX_VOLUME}"
        limit = MAX_PRICE * MAX_VOLUME
        if not (0.0 <= fill.commission <= limit):
            return f"commission {fill.commission!r} is not a finite USD amount >= 0"
        if not (0.0 <= fill.slippage <= limit):
            return f"slippage {fill.slippage!r} is not a finite USD amount >= 0"
        return None

    def _on_filled(self, fill: OrderFilled) -> None:
        order = self._order(fill.client_order_id, "fill")
        if order is None:
            return
        problem = self._fill_problem(fill, order)
        if problem is not None:  # validate first, then apply: a bad report changes nothing
            self.alerts.alert("error", f"fill refused: {order.symbol}", problem, client_order_id=order.client_order_id,
                              fill_id=fill.fill_id)
            return
        cum = fill.cum_quantity
        limit = order.quantity
        if limit < cum <= limit * (1 + _OVERFILL_TOLERANCE) + _OVERFILL_TOLERANCE:
            cum = limit  # float noise of the broker's arithmetic, not a real overfill
        was_open = order.is_open
        leaves = max(0.0, order.leaves_quantity)
        shares = order.apply_fill(cum, fill.price, fill.commission, fill.ts_init)
        if shares == 0.0:
            return  # duplicate or reordered report: nothing new
        if cum > limit:
            self.alerts.alert("critical", f"overfill: {order.symbol}",
                              f"broker reports {cum} filled of {limit}; booked as reported",
                              client_order_id=order.client_order_id)
        if not was_open:
            self.alerts.alert("warning", f"late fill after {order.status.value}: {order.symbol}",
                              f"{shares} shares at {fill.price} booked as reported", client_order_id=order.client_order_id)
        book = self.book
        if was_open:
            book.filled(order, min(shares, leaves))
            if not order.is_open:
                book.close(order, 0.0)
        if shares != fill.quantity or cum != fill.cum_quantity:
            fill = replace(fill, quantity=shares, cum_quantity=cum)
        portfolio = self.portfolio
        before = portfolio.position(order.symbol)
        realized = portfolio.apply_fill(order.symbol, order.side, shares, fill.price, fill.commission)
        after = portfolio.position(order.symbol)
        self.store.save_fill(fill, order)
        self._publish(fill)
        trade = self.trades.on_fill(order.symbol, order.side, shares, fill.price, fill.commission, realized,
                                    before, after, fill.ts_event, order.reason, fill.ts_init)
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

    def _cancel(self, order: Order, ts: int) -> None:
        try:
            events = self.broker.cancel(order, ts)
        except Exception as exc:
            self.alerts.alert("error", f"broker cancel failed: {order.symbol}", f"{type(exc).__name__}: {exc}",
                              client_order_id=order.client_order_id)
            return
        for event in events:
            self.handle(event)

    def _on_cancel(self, command: CancelOrder) -> None:
        order = self._order(command.client_order_id, "cancel request")
        if order is not None and order.is_open:
            self._cancel(order, command.ts_init)

    def _on_halt(self, command: HaltTrading) -> None:
        change = self.risk.halt(command.reason, command.ts_init)
        if change is not None:
            self._state_changed(change)

    def _on_rearm(self, command: RearmTrading) -> None:
        change = self.risk.rearm(command.reason, command.ts_init)
        if change is not None:
            self._state_changed(change)

    def _on_tick(self, tick: ClockTick) -> None:
        for timer in self.clock.advance_to(tick.ts_init):
            self._on_timer(timer)

    def _on_stale(self, event: DataStale) -> None:
        change = self.risk.add_cause(f"stale:{event.symbol}", event.reason, event.ts_init)
        if change is not None:
            self._state_changed(change)
        self.alerts.alert("warning", f"stale data: {event.symbol}", event.reason, symbol=event.symbol)

    def _on_resumed(self, event: DataResumed) -> None:
        change = self.risk.clear_cause(f"stale:{event.symbol}", f"bars of {event.symbol} resumed", event.ts_init)
        if change is not None:
            self._state_changed(change)

    def _on_pause(self, command: PauseTrading) -> None:
        change = self.risk.add_cause(PAUSE_CAUSE, f"paused by operator: {command.reason}", command.ts_init)
        if change is not None:
            self._state_changed(change)

    def _on_resume(self, command: ResumeTrading) -> None:
        change = self.risk.clear_cause(PAUSE_CAUSE, command.reason or "resumed", command.ts_init)
        if change is not None:
            self._state_changed(change)

    def _on_flatten(self, command: FlattenPositions) -> None:
        for order in self.book.open_orders():
            if not order.reduce_only:
                self._cancel(order, command.ts_init)
        self._flatten(command.ts_init, "flatten", command.reason or "flatten")

    def _state_changed(self, change: TradingStateChanged) -> None:
        self.store.save_trading_state(change)
        self._save_risk_state()
        severity = "critical" if change.current is TradingState.HALTED else "warning"
        self.alerts.alert(severity, f"trading state {change.previous.value} -> {change.current.value}", change.reason)
        self._publish(change)
        if change.current is TradingState.HALTED:
            for order in self.book.open_orders():
                self._cancel(order, change.ts_init)
            if self.risk.flatten_on_halt:
                self._flatten(change.ts_init, "halt", "halt_flatten")

    def _flatten(self, ts: int, tag: str, reason: str) -> None:
        """Close every open position with reduce-only market orders. These bypass the risk engine
        on purpose: HALTED denies everything, and a kill switch that cannot exit is no kill switch.
        Exits still working (a real broker's cancel is not instant) are netted out."""
        portfolio, book = self.portfolio, self.book
        strategy_id = self.strategy.strategy_id
        for symbol in sorted(sym for sym, pos in portfolio.positions().items() if pos.quantity != 0.0):
            quantity = portfolio.position(symbol) + book.pending_exits(symbol)
            if abs(quantity) < 1e-9 or (quantity > 0) != (portfolio.position(symbol) > 0):
                continue
            side = Side.SELL if quantity > 0 else Side.BUY
            self._submit(SubmitOrder(client_order_id=book.next_client_order_id(strategy_id, symbol, ts, tag),
                                     strategy_id=strategy_id, symbol=symbol, side=side, quantity=abs(quantity),
                                     order_type=OrderType.MARKET, time_in_force=TimeInForce.GTC, reduce_only=True,
                                     reason=reason, ts_event=ts, ts_init=ts))

    def _publish(self, event: Any) -> None:
        callbacks = self._subscribers.get(type(event))
        if callbacks:
            for callback in callbacks:
                callback(event)


__all__ = ["Engine", "EquityRecorder"]
