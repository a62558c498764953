"""The risk engine: turns order intents into :class:`SubmitOrder` or :class:`OrderDenied`.

Implements :class:`core.ports.RiskManager`. Entries are sized (:mod:`risk.sizing`) and checked
against the limits (:mod:`risk.limits`); exits (``reduce_only``) are only checked against what is
held; the trading state comes from the circuit breakers (:mod:`risk.breakers`). Deterministic:
time comes from ``ts`` arguments and the Clock only. Money USD, quantities shares, fractions of
equity (0.10 = 10 %), times ns UTC.
"""

from __future__ import annotations

import math

from core.clock import Clock
from core.enums import Side, TradingState
from core.events import OrderDenied, SubmitOrder, TradeClosed, TradingStateChanged
from core.intents import OrderIntent
from core.ports import PendingOrdersView, PortfolioView
from core.recovery import RiskSnapshot
from risk import limits, sizing
from risk.breakers import CircuitBreakers
from risk.config import RiskConfig

_QTY_EPS = 1e-9  # shares: less than this left to reduce counts as nothing


class RiskEngine:
    """Approve, size or deny order intents and own the trading state.

    Parameters
    ----------
    config
        Sizing, limits and breaker thresholds.
    clock
        The engine's clock; breaker timers (``"risk.daily_reset"``, ``"risk.cooldown"``) are set on
        it and come back through :meth:`on_timer`.
    initial_state, initial_reason
        Trading state restored from the store after a restart. A restored HALTED stays HALTED
        until :meth:`rearm`.
    peak_equity
        Restored equity high-water mark (USD) so the drawdown breaker survives a restart; None
        starts from the first equity seen.

    restored
        A persisted :class:`core.recovery.RiskSnapshot` (recovery after a restart); overrides
        ``initial_state``, ``initial_reason`` and ``peak_equity``.

    Notes
    -----
    Entries still working (approved on this or any earlier bar, not yet filled) count against
    ``max_open_positions`` and ``max_gross_exposure`` through the order book view passed to
    :meth:`evaluate`, valued at their symbol's mark.
    """

    __slots__ = ("config", "_breakers", "_rate")

    def __init__(self, config: RiskConfig, clock: Clock, initial_state: TradingState = TradingState.ACTIVE,
                 initial_reason: str = "", *, peak_equity: float | None = None,
                 restored: RiskSnapshot | None = None) -> None:
        self.config = config
        self._breakers = CircuitBreakers(config, clock, initial_state, initial_reason, peak_equity, restored)
        self._rate = limits.OrderRateLimiter(config.max_orders_per_minute)

    # --- state -------------------------------------------------------------------------------
    @property
    def state(self) -> TradingState:
        return self._breakers.state

    @property
    def reason(self) -> str:
        """Why the engine is in its current state."""
        return self._breakers.reason

    @property
    def peak_equity(self) -> float | None:
        """Equity high-water mark in USD (persist it to pass back as ``peak_equity``)."""
        return self._breakers.peak_equity

    @property
    def flatten_on_halt(self) -> bool:
        """Close every position when trading moves to HALTED (``RiskConfig.flatten_on_halt``)."""
        return self.config.flatten_on_halt

    @property
    def version(self) -> int:
        """Bumped whenever :meth:`snapshot` would return something new (persist it then)."""
        return self._breakers.version

    def snapshot(self, ts: int) -> RiskSnapshot:
        """The breakers' state to persist, stamped ``ts`` (ns UTC)."""
        return self._breakers.snapshot(ts)

    def add_cause(self, cause: str, reason: str, ts: int) -> TradingStateChanged | None:
        """Add a named REDUCING cause (e.g. the stale-data breaker); see :meth:`CircuitBreakers.add_cause`."""
        return self._breakers.add_cause(cause, reason, ts)

    def clear_cause(self, cause: str, reason: str, ts: int) -> TradingStateChanged | None:
        """Clear a named REDUCING cause; see :meth:`CircuitBreakers.clear_cause`."""
        return self._breakers.clear_cause(cause, reason, ts)

    def on_equity(self, equity: float, ts: int) -> TradingStateChanged | None:
        """Feed the post-bar equity (USD) at ``ts``; see :meth:`CircuitBreakers.on_equity`."""
        return self._breakers.on_equity(equity, ts)

    def on_trade_closed(self, trade: TradeClosed) -> TradingStateChanged | None:
        """Feed a closed round trip; see :meth:`CircuitBreakers.on_trade_closed`."""
        return self._breakers.on_trade_closed(trade)

    def on_timer(self, name: str, ts: int) -> TradingStateChanged | None:
        """Handle a fired clock timer; names other than ``"risk.*"`` are ignored."""
        return self._breakers.on_timer(name, ts)

    def halt(self, reason: str, ts: int) -> TradingStateChanged | None:
        """Move to HALTED; None when already HALTED."""
        return self._breakers.halt(reason, ts)

    def rearm(self, reason: str, ts: int) -> TradingStateChanged | None:
        """Return to ACTIVE (the only way out of HALTED); resets the high-water mark."""
        return self._breakers.rearm(reason, ts)

    # --- decisions ---------------------------------------------------------------------------
    def evaluate(self, intent: OrderIntent, strategy_id: str, view: PortfolioView, orders: PendingOrdersView,
                 client_order_id: str, ts: int) -> SubmitOrder | OrderDenied:
        """Turn ``intent`` into an order or a denial.

        Parameters
        ----------
        intent
            What the strategy wants.
        strategy_id
            Who wants it.
        view
            Read-only account (equity USD, signed positions in shares, marks USD).
        orders
            Working orders: pending entries and exits per symbol (signed shares).
        client_order_id
            Deterministic id to put on the order.
        ts
            Decision time, ns UTC (the order-rate window slides on it).

        Returns
        -------
        SubmitOrder or OrderDenied
            The order (quantity in shares, ``time_in_force`` from the config, the intent's reason
            and prices) or the denial with a reason naming the rule, the value and the limit.
        """
        state = self._breakers.state
        if state is TradingState.HALTED:
            return self._deny(intent, strategy_id, f"trading halted: {self._breakers.reason}", ts, client_order_id)
        if state is TradingState.REDUCING and not intent.reduce_only:
            return self._deny(intent, strategy_id, f"trading reducing ({self._breakers.reason}): "
                                                   "only reduce_only orders are allowed", ts, client_order_id)
        reason = limits.check_quantity(intent.quantity) or limits.check_order_prices(intent)
        if reason is not None:
            return self._deny(intent, strategy_id, reason, ts, client_order_id)
        if intent.reduce_only:
            quantity, reason = self._size_exit(intent, view, orders)
        else:
            quantity, reason = self._size_entry(intent, view, orders)
        if reason is None:
            reason = self._rate.check(ts)
        if reason is not None:
            return self._deny(intent, strategy_id, reason, ts, client_order_id, quantity)
        self._rate.record(ts)
        return SubmitOrder(client_order_id=client_order_id, strategy_id=strategy_id, symbol=intent.symbol,
                           side=intent.side, quantity=quantity, order_type=intent.order_type,
                           limit_price=intent.limit_price, stop_price=intent.stop_price,
                           time_in_force=self.config.time_in_force, reduce_only=intent.reduce_only,
                           reason=intent.reason, ts_event=ts, ts_init=ts)

    def _size_exit(self, intent: OrderIntent, view: PortfolioView,
                   orders: PendingOrdersView) -> tuple[float, str | None]:
        """Quantity of a reduce-only order: at most the position minus the exits already working,
        so exits can never take the position through zero (a long-only account is never short)."""
        symbol = intent.symbol
        position = view.position(symbol)
        sign = intent.side.sign
        if position * sign >= 0.0:
            return 0.0, (f"nothing to reduce: reduce_only {intent.side.value} but {symbol} "
                         f"position is {limits.fmt(position)}")
        working = orders.pending_exits(symbol)
        reducible = abs(position) - max(0.0, working * sign)  # exits already working reduce it
        if reducible <= _QTY_EPS:
            return 0.0, (f"nothing to reduce: {symbol} position {limits.fmt(position)} is covered "
                         f"by pending {limits.fmt(working)}")
        quantity = reducible if intent.quantity is None else min(intent.quantity, reducible)
        if quantity < reducible:  # a whole remainder is always allowed (it may be fractional)
            quantity = min(sizing.round_quantity(quantity, self.config.fractional_shares), reducible)
        if quantity <= 0.0:
            return 0.0, f"size rounds to zero ({limits.fmt(intent.quantity or 0.0)} shares)"
        return quantity, None

    def _size_entry(self, intent: OrderIntent, view: PortfolioView,
                    orders: PendingOrdersView) -> tuple[float, str | None]:
        """Quantity of an entry (given or sized), after every entry limit.

        The position this entry adds to is the *net* of what is held and every working order
        (entries and exits), so a pending close followed by an opposite entry reverses the
        position instead of being refused as "already positioned". Other symbols' working entries
        count against ``max_open_positions`` and ``max_gross_exposure`` (at their marks) from the
        bar they were approved on until they fill or end.
        """
        config = self.config
        symbol, side = intent.symbol, intent.side
        sign = side.sign
        requested = intent.quantity or 0.0
        reason = limits.check_confidence(intent.confidence, config.min_confidence)
        if reason is not None:
            return requested, reason
        price = view.mark(symbol)
        if price is None:
            return requested, f"no mark price for {symbol} yet"
        if not (price > 0.0 and math.isfinite(price)):
            return requested, f"invalid mark price {price!r} for {symbol}"
        equity = view.equity
        if not (equity > 0.0 and math.isfinite(equity)):
            return requested, f"equity {equity!r} USD is not positive"
        position = view.position(symbol)
        pending = orders.pending(symbol)
        net = position + pending
        if abs(net) < _QTY_EPS:
            net = 0.0
        if side is Side.SELL and not config.allow_short and net <= 0.0:
            return requested, f"shorting disabled: no long {symbol} position to sell"
        if intent.quantity is None and net * sign > 0.0:
            return requested, (f"already positioned: {symbol} position {limits.fmt(position)}, "
                               f"pending {limits.fmt(pending)}")
        reason = limits.check_stop_loss(side, price, intent.stop_loss)
        if reason is not None:
            return requested, reason

        other_gross, other_new = self._working_entries(symbol, view, orders)
        gross_other = max(0.0, view.gross_exposure - abs(position) * price) + other_gross
        if net == 0.0 and position == 0.0:
            reason = limits.check_open_positions(view.open_positions + other_new, config.max_open_positions)
            if reason is not None:
                return requested, reason

        if intent.quantity is not None:
            wanted = intent.quantity
            quantity = sizing.round_quantity(wanted, config.fractional_shares)
            reason = limits.check_order_size(config, quantity, price, equity, sign, net, gross_other)
            if reason is None and side is Side.SELL and not config.allow_short and quantity > net + _QTY_EPS:
                reason = (f"shorting disabled: sell {limits.fmt(quantity)} > long {limits.fmt(net)} "
                          f"net of pending")
            if reason is not None:
                return quantity, reason
        else:
            room, limit = min(sizing.quantity_caps(config, equity, price, sign, net, gross_other))
            if room <= 0.0:
                return 0.0, self._no_room(limit, net, price, equity, gross_other)
            if side is Side.SELL and not config.allow_short:
                room = min(room, net)
            wanted = min(sizing.base_quantity(config, equity, price, intent.stop_loss), room)
            quantity = sizing.round_quantity(wanted, config.fractional_shares)
        if quantity <= 0.0:
            return 0.0, f"size rounds to zero ({limits.fmt(wanted)} shares at {limits.fmt(price)} USD)"
        return quantity, None

    @staticmethod
    def _working_entries(symbol: str, view: PortfolioView, orders: PendingOrdersView) -> tuple[float, int]:
        """USD of working entries in symbols other than ``symbol`` (at their marks) and how many of
        them would open a new position."""
        gross, new = 0.0, 0
        for other in orders.symbols_with_pending_entries():
            if other == symbol:
                continue
            mark = view.mark(other)
            gross += abs(orders.pending_entries(other)) * (mark if mark is not None else 0.0)
            if view.position(other) == 0.0:
                new += 1
        return gross, new

    def _no_room(self, limit: str, net: float, price: float, equity: float, gross_other: float) -> str:
        config = self.config
        if limit == "max_position_fraction":
            return (f"position fraction {limits.fmt(abs(net) * price / equity)} >= max_position_fraction "
                    f"{config.max_position_fraction}: no room")
        gross = (gross_other + abs(net) * price) / equity
        return f"gross exposure {limits.fmt(gross)} >= max_gross_exposure {config.max_gross_exposure}: no room"

    @staticmethod
    def _deny(intent: OrderIntent, strategy_id: str, reason: str, ts: int, client_order_id: str,
              quantity: float | None = None) -> OrderDenied:
        if quantity is None or quantity <= 0.0:
            quantity = intent.quantity or 0.0
        return OrderDenied(client_order_id=client_order_id, strategy_id=strategy_id, symbol=intent.symbol,
                           side=intent.side, quantity=quantity, reason=reason, ts_event=ts, ts_init=ts)


__all__ = ["RiskEngine"]
