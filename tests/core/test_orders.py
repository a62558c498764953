import pytest

from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.events import SubmitOrder
from core.orders import ALLOWED_TRANSITIONS, InvalidTransition, Order


def _order(qty=100.0):
    return Order(SubmitOrder("s-X-1-1", "s", "X", Side.BUY, qty, OrderType.MARKET, None, None, TimeInForce.GTC, "r", 0))


def test_cumulative_fills_are_idempotent():
    order = _order()
    order.transition(OrderStatus.SUBMITTED, 1)
    assert order.apply_fill(40, 10.0, 1.0, 2) == 40
    assert order.apply_fill(40, 10.0, 1.0, 3) == 0.0  # duplicate report
    assert order.apply_fill(100, 12.0, 1.0, 4) == 60
    assert order.status is OrderStatus.FILLED
    assert order.avg_fill_price == pytest.approx((40 * 10 + 60 * 12) / 100)
    assert order.commission == 2.0


def test_fill_beyond_quantity_raises():
    order = _order()
    order.transition(OrderStatus.SUBMITTED, 1)
    with pytest.raises(InvalidTransition, match="exceeds order quantity"):
        order.apply_fill(101, 10.0, 0.0, 2)


def test_no_fill_after_cancel():
    order = _order()
    order.transition(OrderStatus.SUBMITTED, 1)
    order.transition(OrderStatus.CANCELED, 2)
    with pytest.raises(InvalidTransition, match="canceled -> partially_filled"):
        order.apply_fill(10, 10.0, 0.0, 3)


def test_terminal_states_have_no_exit():
    for status in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED):
        assert ALLOWED_TRANSITIONS[status] == frozenset()
