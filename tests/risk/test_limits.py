"""Limit scenarios: each denial with its reason text; exits; order fields; config validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.enums import OrderType, Side, TimeInForce
from core.events import OrderDenied, SubmitOrder
from core.intents import OrderIntent
from core.time import NANOS_PER_SECOND
from risk.config import RiskConfig
from risk.limits import OrderRateLimiter, check_order_size
from tests.risk import NO_ORDERS, Working, T0, View, make_engine

BUY, SELL = Side.BUY, Side.SELL
MARKS = {"XYZ": 100.0, "AAA": 100.0, "BBB": 100.0, "CCC": 100.0}

# (id, config, positions {symbol: shares}, pending XYZ shares, intent, exact reason)
DENIALS = [
    ("no mark yet", {}, {}, 0.0, OrderIntent("NEW", BUY), "no mark price for NEW yet"),
    ("shorting disabled", {}, {}, 0.0, OrderIntent("XYZ", SELL),
     "shorting disabled: no long XYZ position to sell"),
    ("shorting disabled, long already being sold", {}, {"XYZ": 50.0}, -50.0, OrderIntent("XYZ", SELL, 10.0),
     "shorting disabled: no long XYZ position to sell"),
    ("explicit sell beyond the long", {}, {"XYZ": 50.0}, 0.0, OrderIntent("XYZ", SELL, 80.0),
     "shorting disabled: sell 80.0 > long 50.0 net of pending"),
    ("already positioned", {}, {"XYZ": 50.0}, 0.0, OrderIntent("XYZ", BUY),
     "already positioned: XYZ position 50.0, pending 0.0"),
    ("already pending", {}, {}, 50.0, OrderIntent("XYZ", BUY),
     "already positioned: XYZ position 0.0, pending 50.0"),
    ("already short", {"allow_short": True}, {"XYZ": -50.0}, 0.0, OrderIntent("XYZ", SELL),
     "already positioned: XYZ position -50.0, pending 0.0"),
    ("confidence floor", {"min_confidence": 0.55}, {}, 0.0, OrderIntent("XYZ", BUY, confidence=0.4),
     "confidence 0.4 < min_confidence 0.55"),
    ("max open positions", {"max_open_positions": 2}, {"AAA": 10.0, "BBB": 10.0}, 0.0, OrderIntent("XYZ", BUY),
     "open positions 3 > max_open_positions 2"),
    ("explicit quantity over max_position_fraction", {}, {}, 0.0, OrderIntent("XYZ", BUY, 150.0),
     "position fraction 0.15 > max_position_fraction 0.1"),
    ("adding over max_position_fraction", {}, {"XYZ": 60.0}, 0.0, OrderIntent("XYZ", BUY, 50.0),
     "position fraction 0.11 > max_position_fraction 0.1"),
    ("explicit quantity over gross exposure", {}, {"AAA": 950.0}, 0.0, OrderIntent("XYZ", BUY, 90.0),
     "gross exposure 1.04 > max_gross_exposure 1.0"),
    ("explicit quantity over max_order_notional", {"max_order_notional": 10_000.0, "max_position_fraction": 1.0},
     {}, 0.0, OrderIntent("XYZ", BUY, 200.0), "order notional 20000.0 > max_order_notional 10000.0"),
    ("sized with no gross room", {}, {"AAA": 600.0, "BBB": 400.0}, 0.0, OrderIntent("XYZ", BUY),
     "gross exposure 1.0 >= max_gross_exposure 1.0: no room"),
    ("stop on the wrong side of a buy", {"sizing": "risk_per_trade"}, {}, 0.0,
     OrderIntent("XYZ", BUY, stop_loss=101.0), "stop_loss 101.0 is not below price 100.0 for a buy"),
    ("stop at the price", {"sizing": "risk_per_trade", "allow_short": True}, {}, 0.0,
     OrderIntent("XYZ", SELL, stop_loss=100.0), "stop_loss 100.0 is not above price 100.0 for a sell"),
    ("invalid quantity", {}, {}, 0.0, OrderIntent("XYZ", BUY, -5.0), "invalid quantity -5.0: must be > 0 shares"),
    ("nan quantity", {}, {}, 0.0, OrderIntent("XYZ", BUY, float("nan")), "invalid quantity nan: must be > 0 shares"),
    ("limit without price", {}, {}, 0.0, OrderIntent("XYZ", BUY, order_type=OrderType.LIMIT),
     "limit order needs limit_price > 0, got None"),
    ("stop without price", {}, {}, 0.0, OrderIntent("XYZ", BUY, order_type=OrderType.STOP),
     "stop order needs stop_price > 0, got None"),
    ("stop-limit without stop price", {}, {}, 0.0,
     OrderIntent("XYZ", BUY, order_type=OrderType.STOP_LIMIT, limit_price=101.5),
     "stop_limit order needs stop_price > 0, got None"),
    ("stop-limit without limit price", {}, {}, 0.0,
     OrderIntent("XYZ", BUY, order_type=OrderType.STOP_LIMIT, stop_price=101.0),
     "stop_limit order needs limit_price > 0, got None"),
    ("stop-limit with a zero limit price", {}, {}, 0.0,
     OrderIntent("XYZ", BUY, order_type=OrderType.STOP_LIMIT, stop_price=101.0, limit_price=0.0),
     "stop_limit order needs limit_price > 0, got 0.0"),
    ("stop-limit with a negative stop price", {}, {}, 0.0,
     OrderIntent("XYZ", BUY, order_type=OrderType.STOP_LIMIT, stop_price=-1.0, limit_price=101.5),
     "stop_limit order needs stop_price > 0, got -1.0"),
    ("stop-limit with a nan stop price", {}, {}, 0.0,
     OrderIntent("XYZ", BUY, order_type=OrderType.STOP_LIMIT, stop_price=float("nan"), limit_price=101.5),
     "stop_limit order needs stop_price > 0, got nan"),
    ("reduce_only while flat", {}, {}, 0.0, OrderIntent("XYZ", SELL, reduce_only=True),
     "nothing to reduce: reduce_only sell but XYZ position is 0.0"),
    ("reduce_only on the wrong side", {}, {"XYZ": 50.0}, 0.0, OrderIntent("XYZ", BUY, reduce_only=True),
     "nothing to reduce: reduce_only buy but XYZ position is 50.0"),
    ("reduce_only already covered by pending", {}, {"XYZ": 50.0}, -50.0, OrderIntent("XYZ", SELL, reduce_only=True),
     "nothing to reduce: XYZ position 50.0 is covered by pending -50.0"),
    ("reduce_only rounding to zero", {}, {"XYZ": 50.0}, 0.0, OrderIntent("XYZ", SELL, 0.5, reduce_only=True),
     "size rounds to zero (0.5 shares)"),
]


@pytest.mark.parametrize(("config", "positions", "pending", "intent", "reason"),
                         [case[1:] for case in DENIALS], ids=[case[0] for case in DENIALS])
def test_denial_reasons(config, positions, pending, intent, reason):
    risk, _ = make_engine(**config)
    view = View(100_000.0, positions, MARKS)
    verdict = risk.evaluate(intent, "s1", view, Working.net(view, "XYZ", pending), "s1-XYZ-1", T0)
    assert isinstance(verdict, OrderDenied), verdict
    assert verdict.reason == reason
    assert (verdict.strategy_id, verdict.symbol, verdict.side, verdict.ts_init) == ("s1", intent.symbol,
                                                                                   intent.side, T0)


def test_confidence_at_the_floor_or_unknown_passes():
    risk, _ = make_engine(min_confidence=0.55)
    view = View(100_000.0, marks=MARKS)
    assert isinstance(risk.evaluate(OrderIntent("XYZ", BUY, confidence=0.55), "s", view, NO_ORDERS, "a", T0), SubmitOrder)
    assert isinstance(risk.evaluate(OrderIntent("AAA", BUY), "s", view, NO_ORDERS, "b", T0), SubmitOrder)


def test_adding_to_an_existing_symbol_does_not_count_as_a_new_position():
    risk, _ = make_engine(max_open_positions=2)
    view = View(100_000.0, {"XYZ": 10.0, "AAA": 10.0}, MARKS)
    assert isinstance(risk.evaluate(OrderIntent("XYZ", BUY, 10.0), "s", view, NO_ORDERS, "a", T0), SubmitOrder)


def test_working_entries_count_against_max_open_positions_until_they_fill():
    """B3: entries approved on earlier bars and still working count, not only same-time ones."""
    risk, _ = make_engine(max_open_positions=2)
    view = View(100_000.0, marks=MARKS)  # nothing filled yet: the view cannot see the first orders
    first = risk.evaluate(OrderIntent("XYZ", BUY), "s", view, NO_ORDERS, "a", T0)
    second = risk.evaluate(OrderIntent("AAA", BUY), "s", view, Working({"XYZ": first.quantity}), "b", T0)
    assert isinstance(first, SubmitOrder) and isinstance(second, SubmitOrder)
    working = Working({"XYZ": first.quantity, "AAA": second.quantity})
    an_hour_later = T0 + 3_600 * NANOS_PER_SECOND  # a later bar: the two entries still work
    third = risk.evaluate(OrderIntent("BBB", BUY), "s", view, working, "c", an_hour_later)
    assert isinstance(third, OrderDenied)
    assert third.reason == "open positions 3 > max_open_positions 2"
    # once one of them is gone (filled into the view, or canceled) there is room again
    assert isinstance(risk.evaluate(OrderIntent("BBB", BUY), "s", view, Working({"XYZ": first.quantity}), "d",
                                    an_hour_later), SubmitOrder)


def test_working_entries_count_against_max_gross_exposure():
    risk, _ = make_engine(max_position_fraction=0.4, fixed_fraction=0.4)
    view = View(100_000.0, marks=MARKS)
    working: dict[str, float] = {}
    quantities = []
    for i, symbol in enumerate(("XYZ", "AAA", "BBB")):  # one per bar: earlier ones still working
        verdict = risk.evaluate(OrderIntent(symbol, BUY), "s", view, Working(dict(working)), symbol,
                                T0 + i * 3_600 * NANOS_PER_SECOND)
        quantities.append(verdict.quantity)
        working[symbol] = verdict.quantity
    assert quantities == [400.0, 400.0, 200.0]  # 40k + 40k + 20k = 1.0 x equity


def test_order_rate_cap_slides_over_60_seconds():
    risk, _ = make_engine(max_orders_per_minute=3, max_position_fraction=1.0, max_gross_exposure=4.0)
    view = View(100_000.0, marks=MARKS)
    second = NANOS_PER_SECOND
    times = [T0, T0 + 10 * second, T0 + 20 * second]
    for i, ts in enumerate(times):
        assert isinstance(risk.evaluate(OrderIntent("XYZ", BUY, 1.0), "s", view, NO_ORDERS, str(i), ts), SubmitOrder)
    denied = risk.evaluate(OrderIntent("XYZ", BUY, 1.0), "s", view, NO_ORDERS, "x", T0 + 59 * second)
    assert isinstance(denied, OrderDenied)
    assert denied.reason == "order rate 4 in 60s > max_orders_per_minute 3"
    # exits are capped too
    exit_ = risk.evaluate(OrderIntent("XYZ", SELL, reduce_only=True), "s", View(100_000.0, {"XYZ": 5.0}, MARKS),
                          NO_ORDERS, "y", T0 + 59 * second)
    assert isinstance(exit_, OrderDenied) and exit_.reason.startswith("order rate")
    # at T0 + 60 s the first order left the window
    assert isinstance(risk.evaluate(OrderIntent("XYZ", BUY, 1.0), "s", view, NO_ORDERS, "z", T0 + 60 * second),
                      SubmitOrder)


def test_denied_orders_do_not_use_the_rate_budget():
    limiter = OrderRateLimiter(1)
    assert limiter.check(T0) is None
    assert limiter.check(T0) is None  # checking alone records nothing
    limiter.record(T0)
    assert limiter.check(T0 + 1) == "order rate 2 in 60s > max_orders_per_minute 1"


# (id, position, pending, intent quantity, expected shares) -- always within what is held net of pending exits
EXITS = [
    ("whole long", 50.0, 0.0, None, 50.0),
    ("part of a long", 50.0, 0.0, 20.0, 20.0),
    ("more than held is capped", 50.0, 0.0, 80.0, 50.0),
    ("net of a pending exit", 50.0, -20.0, None, 30.0),
    ("a pending add is not held yet", 50.0, 30.0, None, 50.0),
    ("whole short", -40.0, 0.0, None, 40.0),
    ("fraction of a share rounded down", 50.0, 0.0, 20.6, 20.0),
    ("a fractional remainder is closed whole", 50.5, 0.0, None, 50.5),
]


@pytest.mark.parametrize(("position", "pending", "quantity", "expected"),
                         [case[1:] for case in EXITS], ids=[case[0] for case in EXITS])
def test_reduce_only_quantity(position, pending, quantity, expected):
    risk, _ = make_engine(max_open_positions=1, max_gross_exposure=0.01)  # limits do not apply to exits
    side = SELL if position > 0 else BUY
    view = View(100_000.0, {"XYZ": position, "AAA": 500.0}, {"XYZ": 100.0, "AAA": 100.0})
    verdict = risk.evaluate(OrderIntent("XYZ", side, quantity, reduce_only=True, reason="exit"), "s", view,
                            Working.net(view, "XYZ", pending), "id", T0)
    assert isinstance(verdict, SubmitOrder), verdict
    assert verdict.quantity == pytest.approx(expected)


def test_exit_needs_no_mark_and_ignores_the_confidence_floor():
    risk, _ = make_engine(min_confidence=0.9)
    view = View(100_000.0, {"XYZ": 10.0}, {})
    verdict = risk.evaluate(OrderIntent("XYZ", SELL, reduce_only=True, confidence=0.1), "s", view, NO_ORDERS, "id", T0)
    assert isinstance(verdict, SubmitOrder)


def test_submit_order_carries_the_intent():
    risk, _ = make_engine(time_in_force="day")
    intent = OrderIntent("XYZ", BUY, 10.0, OrderType.LIMIT, limit_price=99.5, reason="breakout")
    order = risk.evaluate(intent, "s1", View(100_000.0, marks=MARKS), NO_ORDERS, "s1-XYZ-1700000000-1", T0)
    assert order == SubmitOrder(client_order_id="s1-XYZ-1700000000-1", strategy_id="s1", symbol="XYZ", side=BUY,
                                quantity=10.0, order_type=OrderType.LIMIT, limit_price=99.5, stop_price=None,
                                time_in_force=TimeInForce.DAY, reason="breakout", ts_event=T0, ts_init=T0)


@pytest.mark.parametrize("side, stop, limit", [(BUY, 101.0, 101.5), (BUY, 101.0, 100.0), (SELL, 99.0, 98.5)],
                         ids=["buy, limit above stop", "buy, limit below stop", "sell"])
def test_stop_limit_with_both_prices_is_approved_and_carries_them(side, stop, limit):
    risk, _ = make_engine(allow_short=True)
    intent = OrderIntent("XYZ", side, 10.0, OrderType.STOP_LIMIT, limit_price=limit, stop_price=stop,
                         reason="breakout")
    order = risk.evaluate(intent, "s1", View(100_000.0, marks=MARKS), NO_ORDERS, "s1-XYZ-1", T0)
    assert isinstance(order, SubmitOrder), order
    assert (order.order_type, order.stop_price, order.limit_price, order.quantity) == (OrderType.STOP_LIMIT, stop,
                                                                                       limit, 10.0)


def test_check_order_size_allows_reducing_even_over_the_caps():
    config = RiskConfig()
    # long 300 (0.3 of equity, over the 0.1 cap after a rally): selling 100 shrinks it, allowed
    assert check_order_size(config, 100.0, 100.0, 100_000.0, -1, 300.0, 0.0) is None
    assert check_order_size(config, 1.0, 100.0, 100_000.0, 1, 300.0, 0.0) == \
        "position fraction 0.301 > max_position_fraction 0.1"


# --- configuration ------------------------------------------------------------------------------


def test_defaults():
    config = RiskConfig()
    assert (config.sizing, config.fixed_fraction, config.risk_per_trade, config.max_position_fraction) == \
        ("fixed_fraction", 0.10, 0.01, 0.10)
    assert (config.max_open_positions, config.max_gross_exposure, config.max_order_notional, config.allow_short) == \
        (10, 1.0, 1_000_000.0, False)
    assert (config.max_drawdown, config.daily_loss_limit, config.max_consecutive_losses, config.loss_cooldown) == \
        (0.20, 0.05, 5, "1d")
    assert (config.max_orders_per_minute, config.min_confidence, config.time_in_force) == (60, 0.0, TimeInForce.GTC)
    assert config.fractional_shares is False
    assert config.loss_cooldown_ns == 86_400 * NANOS_PER_SECOND


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("fixed_fraction", 0.0, "greater than 0"),
    ("fixed_fraction", 1.5, "less than or equal to 1"),
    ("max_drawdown", -0.1, "greater than 0"),
    ("max_open_positions", 0, "greater than or equal to 1"),
    ("max_order_notional", float("inf"), "finite number"),
    ("sizing", "kelly", "'fixed_fraction' or 'risk_per_trade'"),
    ("loss_cooldown", "1 week", "expected e.g. '1min', '5m', '1h', '1d'"),
    ("loss_cooldown", "0d", "expected e.g."),
    ("time_in_force", "ioc", "'day' or 'gtc'"),
    ("min_confidence", 1.2, "less than or equal to 1"),
    ("max_gross_exposure", 10.0, "less than or equal to 4"),
])
def test_invalid_values_name_key_value_and_what_is_allowed(key, value, allowed):
    with pytest.raises(ValidationError) as info:
        RiskConfig(**{key: value})
    text = str(info.value)
    assert key in text and repr(value) in text.replace("input_value=", "") and allowed in text


def test_unknown_key_and_mutation_are_refused():
    with pytest.raises(ValidationError, match="max_leverage"):
        RiskConfig(max_leverage=2.0)
    with pytest.raises(ValidationError):
        RiskConfig().max_drawdown = 0.5  # type: ignore[misc]
