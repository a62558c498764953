import pytest

from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.events import SubmitOrder
from core.orders import ALLOWED_TRANSITIONS, InvalidTransition, Order


def _order(qty=100.0):
    return Order(SubmitOrder(client_order_id="s-X-1-1", strategy_id="s", symbol="X", side=Side.BUY, quantity=qty,
                             order_type=OrderType.MARKET, time_in_force=TimeInForce.GTC, reason="r", ts_event=0,
                             ts_init=0))


def test_cumulative_fills_are_idempotent():
    order = _order()
    order.transition(OrderStatus.SUBMITTED, 1)
    assert order.apply_fill(40, 10.0, 1.0, 2) == 40
    assert order.apply_fill(40, 10.0, 1.0, 3) == 0.0  # duplicate report
    assert order.apply_fill(100, 12.0, 1.0, 4) == 60
    assert order.status is OrderStatus.FILLED
    assert order.avg_fill_price == pytest.approx((40 * 10 + 60 * 12) / 100)
    assert order.commission == 2.0


def test_an_overfill_is_recorded_as_reported_and_leaves_the_order_filled():
    order = _order()
    order.transition(OrderStatus.SUBMITTED, 1)
    assert order.apply_fill(101, 10.0, 0.0, 2) == 101
    assert order.status is OrderStatus.FILLED and order.filled_quantity == 101


def test_a_late_fill_after_cancel_is_booked_but_the_order_stays_canceled():
    order = _order()
    order.transition(OrderStatus.SUBMITTED, 1)
    order.transition(OrderStatus.CANCELED, 2)
    assert order.apply_fill(10, 10.0, 0.0, 3) == 10  # the broker really traded these shares
    assert order.status is OrderStatus.CANCELED and order.filled_quantity == 10


def test_illegal_transitions_raise():
    order = _order()
    order.transition(OrderStatus.SUBMITTED, 1)
    order.transition(OrderStatus.CANCELED, 2)
    with pytest.raises(InvalidTransition, match="canceled -> accepted"):
        order.transition(OrderStatus.ACCEPTED, 3)


def test_terminal_states_have_no_exit():
    for status in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED):
        assert ALLOWED_TRANSITIONS[status] == frozenset()
