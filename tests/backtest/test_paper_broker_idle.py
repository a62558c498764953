"""PaperBroker.idle: true exactly while a bar can change nothing, so the engine may skip the call.

The engine does not call an idle venue; if ``idle`` were ever true with an order working, that
order would silently never fill or expire. Each transition that adds or removes working orders
is checked, and against on_bar itself: an idle broker returns nothing for any bar.
"""

from __future__ import annotations

from backtest.broker import PaperBroker
from backtest.fill_model import FillConfig
from core.enums import OrderType, Side, TimeInForce
from core.events import Bar, OrderFilled, SubmitOrder
from core.orders import Order

NS = 1_000_000_000
MIN = 60 * NS
T0 = 1_700_000_040 * NS


def order(client_order_id: str, order_type: OrderType = OrderType.MARKET, limit: float | None = None,
          quantity: float = 100.0) -> Order:
    return Order(SubmitOrder(client_order_id=client_order_id, strategy_id="s", symbol="AAA", side=Side.BUY,
                             quantity=quantity, order_type=order_type, limit_price=limit,
                             time_in_force=TimeInForce.GTC, reason="t", ts_event=T0, ts_init=T0))


def bar(i: int, price: float = 10.0, volume: float = 1e6) -> Bar:
    return Bar("AAA", T0 + i * MIN, T0 + (i + 1) * MIN, price, price, price, price, volume)


def test_idle_follows_the_working_orders_through_fills_partial_fills_cancels_and_expiries() -> None:
    broker = PaperBroker(FillConfig(slippage_bps=0.0, participation_cap=0.5, max_order_age="5min"))
    assert broker.idle and broker.on_bar(bar(0)) == ()
    broker.submit(order("fill-me", quantity=100.0), T0)
    assert not broker.idle
    events = broker.on_bar(bar(0, volume=100.0))  # half of it: still working
    assert [type(e) for e in events] == [OrderFilled] and not broker.idle
    broker.on_bar(bar(1, volume=1e6))
    assert broker.idle  # filled
    broker.submit(order("cancel-me", OrderType.LIMIT, limit=1.0), T0 + 2 * MIN)
    assert not broker.idle
    broker.cancel(order("cancel-me", OrderType.LIMIT, limit=1.0), T0 + 2 * MIN)
    assert broker.idle
    broker.submit(order("expire-me", OrderType.LIMIT, limit=1.0), T0 + 3 * MIN)
    assert not broker.on_bar(bar(4)) and not broker.idle  # out of reach, not yet expired
    assert [e.client_order_id for e in broker.on_bar(bar(9))] == ["expire-me"] and broker.idle
    restored = order("restored")
    broker.restore(restored, T0 + 10 * MIN)
    assert not broker.idle


def test_a_broker_tracking_bar_ranges_is_never_idle() -> None:
    broker = PaperBroker(FillConfig(slippage_bps=0.0, slippage_volatility=1.0))
    assert not broker.idle
    broker.on_bar(bar(0))
    assert not broker.idle
