"""Orders and their status state machine.

An :class:`Order` is the engine's mutable record of one order. Status changes go through
:meth:`Order.transition`, which refuses illegal moves (e.g. a fill after a cancel).
"""

from __future__ import annotations

from core.enums import TERMINAL_STATUSES, OrderStatus, OrderType, Side, TimeInForce
from core.events import SubmitOrder

_S = OrderStatus
ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    # INITIALIZED -> ACCEPTED/fills: recovery found that an intent whose submit outcome was unknown
    # did reach the broker. ACCEPTED/PARTIALLY_FILLED -> REJECTED: real brokers reject after
    # accepting (the remainder is dead, what filled stays filled).
    _S.INITIALIZED: frozenset({_S.SUBMITTED, _S.ACCEPTED, _S.REJECTED, _S.CANCELED, _S.PARTIALLY_FILLED,
                               _S.FILLED, _S.EXPIRED}),
    _S.SUBMITTED: frozenset({_S.ACCEPTED, _S.REJECTED, _S.CANCELED, _S.PARTIALLY_FILLED, _S.FILLED, _S.EXPIRED}),
    _S.ACCEPTED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED, _S.REJECTED}),
    _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED, _S.REJECTED}),
    _S.FILLED: frozenset(),
    _S.CANCELED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.EXPIRED: frozenset(),
}


class InvalidTransition(ValueError):
    """An event tried to move an order along a transition the state machine forbids."""


class Order:
    """The engine's record of one order (quantities in shares, prices in USD, times in ns UTC)."""

    __slots__ = ("client_order_id", "strategy_id", "symbol", "side", "quantity", "order_type",
                 "limit_price", "stop_price", "time_in_force", "reduce_only", "reason", "status", "filled_quantity",
                 "avg_fill_price", "commission", "broker_order_id", "ts_created", "ts_last")

    def __init__(self, command: SubmitOrder) -> None:
        self.client_order_id = command.client_order_id
        self.strategy_id = command.strategy_id
        self.symbol = command.symbol
        self.side: Side = command.side
        self.quantity = command.quantity
        self.order_type: OrderType = command.order_type
        self.limit_price = command.limit_price
        self.stop_price = command.stop_price
        self.time_in_force: TimeInForce = command.time_in_force
        self.reduce_only = command.reduce_only
        self.reason = command.reason
        self.status = OrderStatus.INITIALIZED
        self.filled_quantity = 0.0
        self.avg_fill_price = 0.0
        self.commission = 0.0
        self.broker_order_id = ""
        self.ts_created = command.ts_init
        self.ts_last = command.ts_init

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL_STATUSES

    @property
    def leaves_quantity(self) -> float:
        """Shares still to fill."""
        return self.quantity - self.filled_quantity

    def transition(self, status: OrderStatus, ts: int) -> None:
        """Move to ``status``.

        Raises
        ------
        InvalidTransition
            If the state machine does not allow ``self.status -> status``.
        """
        if status not in ALLOWED_TRANSITIONS[self.status]:
            raise InvalidTransition(f"order {self.client_order_id}: {self.status.value} -> {status.value} is not allowed")
        self.status = status
        self.ts_last = ts

    def apply_fill(self, cum_quantity: float, price: float, commission: float, ts: int) -> float:
        """Apply a fill reported as a cumulative quantity; return the new shares (0 for a duplicate).

        Idempotent: a report whose ``cum_quantity`` is not above what was applied changes nothing.
        Never raises: the caller (the engine) validates the numbers first. A fill on a terminal
        order (a late fill after a cancel, which real brokers send) updates the filled quantity and
        average price but not the status; a fill beyond the order quantity (an overfill) is
        recorded as reported and leaves the order FILLED.

        Parameters
        ----------
        cum_quantity
            Shares filled so far in total (finite, > 0).
        price, commission
            This fill's price and commission, USD.
        ts
            Epoch ns UTC of the report.
        """
        delta = cum_quantity - self.filled_quantity
        if delta <= 1e-12:
            return 0.0
        if self.is_open:
            self.status = OrderStatus.FILLED if cum_quantity >= self.quantity * (1 - 1e-12) else OrderStatus.PARTIALLY_FILLED
        self.ts_last = ts
        self.avg_fill_price = (self.avg_fill_price * self.filled_quantity + price * delta) / cum_quantity
        self.filled_quantity = cum_quantity
        self.commission += commission
        return delta
