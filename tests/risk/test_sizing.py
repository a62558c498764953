"""Sizing scenarios: fixed fraction, risk per trade with a stop, clipping by each cap, rounding;
and the pure helpers on extreme values (finite, >= 0, never raising)."""

from __future__ import annotations

import math
import sys

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.enums import Side
from core.events import OrderDenied, SubmitOrder
from core.intents import OrderIntent
from risk.config import RiskConfig
from risk.sizing import base_quantity, quantity_caps, round_quantity
from tests.risk import NO_ORDERS, Working, T0, View, make_engine

BUY, SELL = Side.BUY, Side.SELL

# (id, config, equity USD, price USD, other positions {symbol: (shares, mark)}, side, stop_loss, expected shares)
SIZED = [
    ("fixed fraction 10%", {}, 100_000.0, 100.0, {}, BUY, None, 100.0),
    ("fixed fraction 5%", {"fixed_fraction": 0.05}, 100_000.0, 100.0, {}, BUY, None, 50.0),
    ("fixed fraction of a smaller account", {}, 25_000.0, 50.0, {}, BUY, None, 50.0),
    ("risk per trade with stop", {"sizing": "risk_per_trade", "max_position_fraction": 0.5},
     100_000.0, 100.0, {}, BUY, 95.0, 200.0),
    ("risk per trade, tight stop", {"sizing": "risk_per_trade", "max_position_fraction": 1.0},
     100_000.0, 100.0, {}, BUY, 98.0, 500.0),
    ("risk per trade, short with stop above", {"sizing": "risk_per_trade", "max_position_fraction": 0.5,
                                               "allow_short": True}, 100_000.0, 100.0, {}, SELL, 105.0, 200.0),
    ("risk per trade without stop falls back to fixed fraction", {"sizing": "risk_per_trade"},
     100_000.0, 100.0, {}, BUY, None, 100.0),
    ("fixed fraction ignores the stop for sizing", {}, 100_000.0, 100.0, {}, BUY, 50.0, 100.0),
    ("clipped by max_position_fraction", {"fixed_fraction": 0.25, "max_position_fraction": 0.10},
     100_000.0, 100.0, {}, BUY, None, 100.0),
    ("risk per trade clipped by max_position_fraction", {"sizing": "risk_per_trade"},
     100_000.0, 100.0, {}, BUY, 99.0, 100.0),
    ("clipped by gross exposure room", {}, 100_000.0, 100.0, {"OTHER": (950.0, 100.0)}, BUY, None, 50.0),
    ("clipped by gross room with leverage", {"max_gross_exposure": 2.0, "max_position_fraction": 1.0,
                                             "fixed_fraction": 1.0}, 100_000.0, 100.0,
     {"OTHER": (1500.0, 100.0)}, BUY, None, 500.0),
    ("clipped by max_order_notional", {"max_order_notional": 3_000.0}, 100_000.0, 100.0, {}, BUY, None, 30.0),
    ("rounded down to whole shares", {}, 100_000.0, 300.0, {}, BUY, None, 33.0),
    ("fractional shares kept", {"fractional_shares": True}, 100_000.0, 300.0, {}, BUY, None, 10_000.0 / 300.0),
    ("clip then round", {"max_order_notional": 1_000.0}, 100_000.0, 300.0, {}, BUY, None, 3.0),
    ("short sized when allowed", {"allow_short": True}, 100_000.0, 100.0, {}, SELL, None, 100.0),
]


@pytest.mark.parametrize(("config", "equity", "price", "others", "side", "stop", "expected"),
                         [case[1:] for case in SIZED], ids=[case[0] for case in SIZED])
def test_sized_entry(config, equity, price, others, side, stop, expected):
    positions = {s: q for s, (q, _) in others.items()}
    marks = {"XYZ": price, **{s: m for s, (_, m) in others.items()}}
    risk, _ = make_engine(**config)
    verdict = risk.evaluate(OrderIntent("XYZ", side, stop_loss=stop, reason="signal"), "s1",
                            View(equity, positions, marks), NO_ORDERS, "s1-XYZ-1", T0)
    assert isinstance(verdict, SubmitOrder), verdict
    assert verdict.quantity == pytest.approx(expected)
    assert verdict.side is side


@pytest.mark.parametrize(("config", "price", "reason"), [
    ({}, 20_000.0, "size rounds to zero (0.5 shares at 20000.0 USD)"),
    ({"max_order_notional": 50.0}, 100.0, "size rounds to zero (0.5 shares at 100.0 USD)"),
])
def test_size_rounding_to_zero_is_denied(config, price, reason):
    risk, _ = make_engine(**config)
    verdict = risk.evaluate(OrderIntent("XYZ", BUY), "s1", View(100_000.0, marks={"XYZ": price}), NO_ORDERS, "id", T0)
    assert isinstance(verdict, OrderDenied)
    assert verdict.reason == reason


def test_fractional_account_does_not_round_to_zero():
    risk, _ = make_engine(fractional_shares=True)
    verdict = risk.evaluate(OrderIntent("XYZ", BUY), "s1", View(100_000.0, marks={"XYZ": 20_000.0}), NO_ORDERS, "id", T0)
    assert isinstance(verdict, SubmitOrder)
    assert verdict.quantity == pytest.approx(0.5)


def test_explicit_quantity_is_rounded_down_unless_fractional():
    view = View(100_000.0, marks={"XYZ": 100.0})
    whole, _ = make_engine()
    fractional, _ = make_engine(fractional_shares=True)
    assert whole.evaluate(OrderIntent("XYZ", BUY, 12.7), "s", view, NO_ORDERS, "id", T0).quantity == 12.0
    assert fractional.evaluate(OrderIntent("XYZ", BUY, 12.7), "s", view, NO_ORDERS, "id", T0).quantity == 12.7


def test_sell_sized_against_a_long_without_shorting_is_clipped_to_the_long():
    risk, _ = make_engine()
    view = View(100_000.0, {"XYZ": 30.0}, {"XYZ": 100.0})
    verdict = risk.evaluate(OrderIntent("XYZ", SELL), "s1", view, NO_ORDERS, "id", T0)
    assert isinstance(verdict, SubmitOrder)
    assert verdict.quantity == 30.0


# --- the pure helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "stop", "expected"), [
    ({}, None, 200.0),
    ({"fixed_fraction": 0.2}, None, 400.0),
    ({"sizing": "risk_per_trade"}, 45.0, 200.0),
    ({"sizing": "risk_per_trade", "risk_per_trade": 0.02}, 55.0, 400.0),
    ({"sizing": "risk_per_trade"}, None, 200.0),
])
def test_base_quantity(config, stop, expected):
    assert base_quantity(RiskConfig(**config), 100_000.0, 50.0, stop) == pytest.approx(expected)


@pytest.mark.parametrize(("side", "net", "gross_other", "expected"), [
    (1, 0.0, 0.0, (100.0, "max_position_fraction")),
    (1, 40.0, 0.0, (60.0, "max_position_fraction")),
    (1, 0.0, 97_000.0, (30.0, "max_gross_exposure")),
    (-1, 40.0, 0.0, (100.0, "max_position_fraction")),  # against a long: the order itself <= the cap
    (-1, 40.0, 99_000.0, (50.0, "max_gross_exposure")),  # closes 40 (frees 4k), room 1k: 10 short
    (1, 0.0, 120_000.0, (0.0, "max_gross_exposure")),  # over the cap already: no room
])
def test_quantity_caps(side, net, gross_other, expected):
    caps = quantity_caps(RiskConfig(), 100_000.0, 100.0, side, net, gross_other)
    assert min(caps) == pytest.approx(expected)


@pytest.mark.parametrize(("quantity", "fractional", "expected"), [
    (12.7, False, 12.0), (12.7, True, 12.7), (0.99, False, 0.0), (99.99999999999, False, 100.0), (5.0, False, 5.0),
])
def test_round_quantity(quantity, fractional, expected):
    assert round_quantity(quantity, fractional) == expected


# --- extreme values: finite, non-negative, never raising (issue 5 B17) -----------------------

MAX = sys.float_info.max
positive = st.one_of(
    st.sampled_from([5e-324, 2.2250738585072014e-308, 1e-300, 1e-8, 1.0, 1e9, 1e300, MAX]),
    st.floats(min_value=5e-324, max_value=MAX),  # every positive finite float, denormals included
)
finite = st.floats(allow_nan=False, allow_infinity=False)
configs = st.builds(
    RiskConfig,
    sizing=st.sampled_from(["fixed_fraction", "risk_per_trade"]),
    fixed_fraction=st.floats(1e-6, 1.0),
    risk_per_trade=st.floats(1e-6, 1.0),
    max_position_fraction=st.floats(1e-6, 4.0),
    max_gross_exposure=st.floats(1e-6, 4.0),
    max_order_notional=positive,
)


def is_size(q: float) -> bool:
    return isinstance(q, float) and 0.0 <= q < math.inf


@given(config=configs, equity=positive, price=positive, stop=st.none() | positive)
@example(config=RiskConfig(), equity=100_000.0, price=5e-324, stop=None)  # equity / price overflows
@example(config=RiskConfig(sizing="risk_per_trade"), equity=100_000.0, price=1.0, stop=1.0 - 1e-16)
@example(config=RiskConfig(sizing="risk_per_trade"), equity=100_000.0, price=1e-300, stop=1e-300)  # no distance
@example(config=RiskConfig(sizing="risk_per_trade"), equity=1e308, price=1.0, stop=1.0 + 2.220446049250313e-16)
def test_base_quantity_is_finite_and_non_negative(config, equity, price, stop):
    q = base_quantity(config, equity, price, stop)
    assert is_size(q)
    for fractional in (False, True):
        assert is_size(round_quantity(q, fractional))


@given(config=configs, equity=positive, price=positive, side=st.sampled_from([1, -1]), net=finite,
       gross_other=st.floats(0.0, MAX))
@example(config=RiskConfig(), equity=100_000.0, price=5e-324, side=1, net=0.0, gross_other=0.0)
@example(config=RiskConfig(max_gross_exposure=4.0), equity=MAX, price=1e-8, side=-1, net=-MAX, gross_other=MAX)
def test_caps_and_the_sized_order_are_finite_and_non_negative(config, equity, price, side, net, gross_other):
    caps = quantity_caps(config, equity, price, side, net, gross_other)
    assert [name for _, name in caps] == ["max_position_fraction", "max_gross_exposure", "max_order_notional"]
    assert all(is_size(room) for room, _ in caps)
    # what the risk engine does with them: clip the base size to the tightest cap, then round
    room, _ = min(caps)
    for stop in (None, price * 0.5):
        wanted = min(base_quantity(config, equity, price, stop), room)
        assert is_size(round_quantity(wanted, False)) and is_size(round_quantity(wanted, True))


@given(quantity=st.floats(), fractional=st.booleans())
@example(quantity=math.inf, fractional=False)
@example(quantity=math.nan, fractional=False)
@example(quantity=MAX, fractional=False)
@example(quantity=-0.5, fractional=False)
def test_round_quantity_of_any_float_is_a_size_never_above_the_input(quantity, fractional):
    q = round_quantity(quantity, fractional)
    assert is_size(q)
    if 0.0 < quantity < math.inf:
        assert q <= quantity + 1e-9 * max(1.0, quantity)
    else:
        assert q == 0.0
