"""Pure mapping: tradingd orders -> alpaca-py requests, Alpaca snapshots -> core events (FillTracker)."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # websockets.legacy, imported by alpaca.trading
    from alpaca.trading.models import Order as AlpacaOrder
    from alpaca.trading.models import TradeUpdate

from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.events import OrderAccepted, OrderCanceled, OrderExpired, OrderFilled, OrderRejected, SubmitOrder
from core.orders import Order
from daemon.adapters.alpaca.orders import FillTracker, order_request, to_ns

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=timezone.utc)
OID = "4efcc8cc-6c33-42ad-b90b-1282241a28c5"


def local(coid: str = "c1", *, quantity: float = 10.0, order_type: OrderType = OrderType.MARKET,
          limit: float | None = None, stop: float | None = None, tif: TimeInForce = TimeInForce.GTC,
          side: Side = Side.BUY, symbol: str = "SPY") -> Order:
    return Order(SubmitOrder(client_order_id=coid, strategy_id="s", symbol=symbol, side=side, quantity=quantity,
                             order_type=order_type, limit_price=limit, stop_price=stop, time_in_force=tif,
                             ts_event=1, ts_init=1))


def snap(status: str, filled: str | None = "0", avg: str | None = None, *, coid: str = "c1", oid: str = OID,
         at: int = 0, side: str = "buy", symbol: str = "SPY", tif: str = "gtc", **extra: Any) -> AlpacaOrder:
    """An Alpaca order in the wire shape (numbers as strings), ``at`` seconds after T0."""
    ts = (T0 + timedelta(seconds=at)).isoformat().replace("+00:00", "Z")
    body: dict[str, Any] = {
        "id": oid, "client_order_id": coid, "created_at": ts, "updated_at": ts, "submitted_at": ts,
        "filled_at": ts if status == "filled" else None, "canceled_at": ts if status == "canceled" else None,
        "expired_at": ts if status == "expired" else None, "failed_at": ts if status == "rejected" else None,
        "asset_id": "1aa75380-b7f2-5fe5-a220-77e15cfac0ce", "symbol": symbol, "asset_class": "us_equity",
        "qty": "10", "filled_qty": filled, "filled_avg_price": avg, "order_class": "", "order_type": "market",
        "type": "market", "side": side, "time_in_force": tif, "status": status, "extended_hours": False}
    body.update(extra)
    return AlpacaOrder(**body)


def tracker() -> Any:
    """A fresh FillTracker (typed Any: the tests read event fields of the union freely)."""
    return FillTracker()


def kinds(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


# --- order_request ---------------------------------------------------------------------------------
@pytest.mark.parametrize("tif", [TimeInForce.DAY, TimeInForce.GTC])
@pytest.mark.parametrize("order_type, limit, stop, cls, wire_type", [
    (OrderType.MARKET, None, None, "MarketOrderRequest", "market"),
    (OrderType.LIMIT, 101.25, None, "LimitOrderRequest", "limit"),
    (OrderType.STOP, None, 99.5, "StopOrderRequest", "stop"),
    (OrderType.STOP_LIMIT, 121.0, 120.0, "StopLimitOrderRequest", "stop_limit"),
])
def test_every_type_and_time_in_force_maps_to_the_wire_body(tif, order_type, limit, stop, cls, wire_type):
    request = order_request(local("cid-7", quantity=3, order_type=order_type, limit=limit, stop=stop, tif=tif,
                                  side=Side.SELL))
    assert type(request).__name__ == cls
    body = request.to_request_fields()
    assert body["client_order_id"] == "cid-7"
    assert body["qty"] == 3.0 and body["side"] == "sell" and body["type"] == wire_type
    assert body["time_in_force"] == tif.value and body["symbol"] == "SPY"
    assert body.get("limit_price") == limit and body.get("stop_price") == stop


def test_crypto_takes_gtc_only_and_no_plain_stop():
    assert order_request(local(symbol="BTC/USD", order_type=OrderType.LIMIT, limit=40_000.0, quantity=0.01),
                         crypto=True).time_in_force.value == "gtc"
    with pytest.raises(ValueError, match=r"order 'btc-day'.*GTC only"):
        order_request(local("btc-day", symbol="BTC/USD", tif=TimeInForce.DAY), crypto=True)
    with pytest.raises(ValueError, match=r"order 'btc-stop'.*stop"):
        order_request(local("btc-stop", symbol="BTC/USD", order_type=OrderType.STOP, stop=1.0), crypto=True)


@pytest.mark.parametrize("order, why", [
    (local("q0", quantity=0.0), "quantity 0.0"),
    (local("qneg", quantity=-5.0), "quantity -5.0"),
    (local("qnan", quantity=math.nan), "quantity nan"),
    (local("qinf", quantity=math.inf), "quantity inf"),
    (local("nolimit", order_type=OrderType.LIMIT), "needs limit_price"),
    (local("nostop", order_type=OrderType.STOP), "needs stop_price"),
    (local("halfsl", order_type=OrderType.STOP_LIMIT, stop=10.0), "needs limit_price"),
    (local("badprice", order_type=OrderType.LIMIT, limit=-1.0), "needs limit_price"),
    (local("x" * 129), "at most 128"),
    (local("nosym", symbol=""), "symbol"),
])
def test_an_order_alpaca_cannot_express_raises_naming_it(order, why):
    with pytest.raises(ValueError) as caught:
        order_request(order)
    assert repr(order.client_order_id) in str(caught.value) and why in str(caught.value)


def test_order_request_does_not_modify_the_order():
    order = local(order_type=OrderType.LIMIT, limit=5.0)
    before = {name: getattr(order, name) for name in Order.__slots__}
    order_request(order)
    assert {name: getattr(order, name) for name in Order.__slots__} == before


# --- FillTracker --------------------------------------------------------------------------------
def test_accepted_then_partial_fills_then_filled_books_each_increment_at_its_exact_vwap():
    t = tracker()
    t.seed(local())
    first = t.from_snapshot(snap("accepted"), ts_init=100)
    assert first == [OrderAccepted(client_order_id="c1", broker_order_id=OID, ts_event=to_ns(T0), ts_init=100)]
    part = t.from_snapshot(snap("partially_filled", "3", "10.00", at=1), ts_init=101)
    more = t.from_snapshot(snap("partially_filled", "5", "10.40", at=2), ts_init=102)
    done = t.from_snapshot(snap("filled", "10", "10.7", at=3), ts_init=103)
    fills = [*part, *more, *done]
    assert kinds(fills) == ["OrderFilled"] * 3
    assert [(f.quantity, f.price, f.cum_quantity) for f in fills] == [(3.0, 10.0, 3.0), (2.0, 11.0, 5.0), (5.0, 11.0, 10.0)]
    assert [f.fill_id for f in fills] == [f"alpaca-{OID}-3", f"alpaca-{OID}-5", f"alpaca-{OID}-10"]
    assert [f.ts_event for f in fills] == [to_ns(T0 + timedelta(seconds=s)) for s in (1, 2, 3)]
    assert all(f.symbol == "SPY" and f.side is Side.BUY and f.commission == 0.0 for f in fills)
    # the increments' cost adds up to Alpaca's average exactly
    assert sum(f.quantity * f.price for f in fills) == pytest.approx(10 * 10.7, abs=1e-9)


def test_duplicated_and_reordered_snapshots_change_nothing():
    t = tracker()
    t.seed(local())
    filled = snap("filled", "10", "100.5", at=2)
    events = t.from_snapshot(filled, ts_init=5)  # the fill overtook the acceptance
    assert kinds(events) == ["OrderAccepted", "OrderFilled"] and events[1].quantity == 10.0
    assert t.from_snapshot(filled, ts_init=6) == []  # duplicate
    assert t.from_snapshot(snap("new", at=1), ts_init=7) == []  # older
    assert t.from_snapshot(snap("partially_filled", "4", "100.0", at=1), ts_init=8) == []  # older, lower cum
    assert t.is_done("c1")


def test_cancel_after_a_partial_fill_keeps_the_fill_and_ends_once():
    t = tracker()
    t.seed(local())
    canceled = snap("canceled", "4", "50.25", at=3)
    events = t.from_snapshot(canceled, ts_init=9)
    assert kinds(events) == ["OrderAccepted", "OrderFilled", "OrderCanceled"]
    assert (events[1].quantity, events[1].price) == (4.0, 50.25)
    assert events[2].ts_event == to_ns(T0 + timedelta(seconds=3))
    assert t.from_snapshot(canceled, ts_init=10) == []
    # a late fill after the cancel (real brokers send them) is still booked, the end is not repeated
    late = t.from_snapshot(snap("canceled", "6", "50.5", at=4), ts_init=11)
    assert kinds(late) == ["OrderFilled"] and (late[0].quantity, late[0].price) == (2.0, 51.0)


def test_replaced_outside_tradingd_is_a_cancel_naming_the_new_order():
    t = tracker()
    new_id = "b5a5c2d6-1c49-4e40-9d3e-2b1f3f0a7a11"
    events = t.from_snapshot(snap("replaced", replaced_by=new_id, replaced_at=T0.isoformat()), ts_init=3)
    assert kinds(events) == ["OrderAccepted", "OrderCanceled"]
    assert events[1].reason == f"replaced outside tradingd by {new_id}"


def test_rejected_expired_and_done_for_day():
    t = tracker()
    assert t.from_snapshot(snap("rejected", coid="r"), ts_init=1) == [
        OrderRejected(client_order_id="r", reason="rejected by Alpaca after submission", ts_event=to_ns(T0), ts_init=1)]
    assert kinds(t.from_snapshot(snap("expired", coid="e"), ts_init=1)) == ["OrderAccepted", "OrderExpired"]
    day = t.from_snapshot(snap("done_for_day", coid="d", tif="day"), ts_init=1)
    assert kinds(day) == ["OrderAccepted", "OrderExpired"] and isinstance(day[1], OrderExpired)
    # a GTC order that is done for the day works again tomorrow: not an end
    assert kinds(t.from_snapshot(snap("done_for_day", coid="g", tif="gtc"), ts_init=1)) == ["OrderAccepted"]
    assert not t.is_done("g")


def test_seeded_restored_order_books_only_what_came_after_the_restart():
    order = local(quantity=10)
    order.transition(OrderStatus.SUBMITTED, 2)
    order.transition(OrderStatus.ACCEPTED, 3)
    order.broker_order_id = OID
    order.apply_fill(3.0, 10.0, 0.0, 4)
    t = tracker()
    t.seed(order)
    assert t.from_snapshot(snap("partially_filled", "3", "10"), ts_init=5) == []
    events = t.from_snapshot(snap("partially_filled", "5", "10.4", at=1), ts_init=6)
    assert kinds(events) == ["OrderFilled"] and (events[0].quantity, events[0].price) == (2.0, 11.0)


def test_fill_ids_of_fractional_cumulative_quantities_never_collide():
    t = tracker()
    a = t.from_snapshot(snap("partially_filled", "0.1234567", "10", coid="f"), ts_init=1)
    b = t.from_snapshot(snap("partially_filled", "0.1234568", "10", coid="f"), ts_init=2)
    assert a[-1].fill_id != b[-1].fill_id
    assert b[-1].quantity == pytest.approx(1e-7)


def test_events_of_one_order_never_go_back_in_time():
    t = tracker()
    later = t.from_snapshot(snap("partially_filled", "2", "10", at=10), ts_init=50)
    # a newer cumulative with an older broker time and an earlier receive time (clock skew)
    earlier = t.from_snapshot(snap("filled", "4", "10", at=5), ts_init=40)
    assert earlier[0].ts_event >= later[-1].ts_event and earlier[0].ts_init >= later[-1].ts_init


def test_trade_update_uses_cumulative_order_fields_and_falls_back_to_its_own_qty_and_price():
    t = tracker()
    t.seed(local())
    ts = T0.isoformat()

    def update(event: str, order: AlpacaOrder, **extra: Any) -> TradeUpdate:
        return TradeUpdate(event=event, order=order, timestamp=ts, **extra)

    first = t.from_trade_update(update("partial_fill", snap("partially_filled", "4", "20"), qty=4, price=20,
                                       execution_id=str(uuid.uuid4())), ts_init=1)
    assert [(e.quantity, e.price) for e in first if isinstance(e, OrderFilled)] == [(4.0, 20.0)]
    lagging = snap("partially_filled", None, None)  # no cumulative fields: use the update's own
    second = t.from_trade_update(update("partial_fill", lagging, qty=1, price=21), ts_init=2)
    assert [(e.quantity, e.price, e.cum_quantity) for e in second] == [(1.0, 21.0, 5.0)]
    assert t.from_trade_update(update("partial_fill", snap("partially_filled", "5", "20.2")), ts_init=3) == []


def test_crypto_symbol_spelling_follows_the_local_order():
    t = tracker()
    t.seed(local("btc", symbol="BTC/USD", quantity=0.5))
    events = t.from_snapshot(snap("filled", "0.5", "40000", coid="btc", symbol="BTCUSD"), ts_init=1)
    assert events[-1].symbol == "BTC/USD"
    assert kinds(events) == ["OrderAccepted", "OrderFilled"]
    assert not any(isinstance(e, (OrderCanceled, OrderExpired)) for e in events)
