"""FillConfig validation and the pure arithmetic of FillModel (slippage, commission, fill size)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from backtest.fill_model import EPS_SHARES, MAX_SLIPPAGE_FRACTION, FillConfig, FillModel
from core.enums import Side

BUY, SELL = Side.BUY, Side.SELL


# --- config ------------------------------------------------------------------------------------
def test_defaults() -> None:
    config = FillConfig()
    assert config.slippage_bps == 1.0
    assert config.slippage_volatility == 0.0
    assert config.commission_per_share == 0.0
    assert config.commission_minimum == 0.0
    assert config.commission_bps == 0.0
    assert config.participation_cap is None
    assert config.fractional_shares is True
    assert config.calendars == {}
    assert config.max_order_age is None
    assert not FillModel(config).tracks_previous_bar
    assert FillModel(config).max_order_age_ns is None


@pytest.mark.parametrize("field, value", [
    ("slippage_bps", -0.1),
    ("slippage_bps", 5_000.1),
    ("slippage_bps", math.nan),
    ("slippage_volatility", -1.0),
    ("slippage_volatility", math.inf),
    ("commission_per_share", -0.01),
    ("commission_minimum", -1.0),
    ("commission_bps", -1.0),
    ("participation_cap", 0.0),
    ("participation_cap", -0.1),
    ("participation_cap", 1.01),
    ("participation_cap", math.nan),
    ("unknown_key", 1.0),
    ("calendars", {"SPY": "NOT_A_CALENDAR"}),
    ("max_order_age", "5 days"),
    ("max_order_age", "0d"),
])
def test_config_rejects(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        FillConfig(**{field: value})


def test_config_is_frozen() -> None:
    config = FillConfig()
    with pytest.raises(ValidationError):
        config.slippage_bps = 2.0  # type: ignore[misc]


def test_config_accepts_calendars_and_order_age() -> None:
    config = FillConfig(calendars={"BTCUSD": "24/7", "VOD": "XLON", "SPY": "NYSE"}, max_order_age="5d")
    assert config.calendars["VOD"] == "XLON"
    assert FillModel(config).max_order_age_ns == 5 * 86_400 * 10**9
    # still usable as a key (caches of runs by configuration)
    assert {config: 1}[FillConfig(calendars={"BTCUSD": "24/7", "VOD": "XLON", "SPY": "NYSE"},
                                  max_order_age="5d")] == 1
    assert hash(FillConfig()) != hash(config)


def test_config_accepts_boundaries() -> None:
    config = FillConfig(slippage_bps=0.0, participation_cap=1.0, slippage_volatility=2.0)
    assert config.participation_cap == 1.0
    assert FillModel(config).tracks_previous_bar


# --- slippage ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bps, vol, side, price, prev_range, limit, expected", [
    # fixed slippage: buys pay up, sells receive less
    (0.0, 0.0, BUY, 100.0, 0.0, None, 100.0),
    (0.0, 0.0, SELL, 100.0, 0.0, None, 100.0),
    (10.0, 0.0, BUY, 100.0, 0.0, None, 100.1),
    (10.0, 0.0, SELL, 100.0, 0.0, None, 99.9),
    # a previous-bar range means nothing without slippage_volatility
    (10.0, 0.0, BUY, 100.0, 0.05, None, 100.1),
    # volatility term: 0.5 x 8 % range = 4 %, plus 10 bps
    (0.0, 0.5, BUY, 100.0, 0.08, None, 104.0),
    (0.0, 0.5, SELL, 100.0, 0.08, None, 96.0),
    (10.0, 0.5, BUY, 100.0, 0.08, None, 104.1),
    # a negative (corrupt) range counts as zero
    (10.0, 0.5, BUY, 100.0, -0.08, None, 100.1),
    # limit orders: never worse than the limit
    (10.0, 0.0, BUY, 98.0, 0.0, 99.0, 98.098),
    (10.0, 0.0, BUY, 98.95, 0.0, 99.0, 99.0),
    (10.0, 0.0, BUY, 99.0, 0.0, 99.0, 99.0),
    (10.0, 0.0, SELL, 102.0, 0.0, 101.0, 101.898),
    (10.0, 0.0, SELL, 101.05, 0.0, 101.0, 101.0),
    (10.0, 0.0, SELL, 101.0, 0.0, 101.0, 101.0),
])
def test_slipped_price(bps: float, vol: float, side: Side, price: float, prev_range: float,
                       limit: float | None, expected: float) -> None:
    model = FillModel(FillConfig(slippage_bps=bps, slippage_volatility=vol))
    assert model.slipped_price(side, price, prev_range, limit) == pytest.approx(expected, rel=1e-12)


def test_slippage_fraction_is_capped() -> None:
    model = FillModel(FillConfig(slippage_bps=100.0, slippage_volatility=10.0))
    assert model.slippage_fraction(0.5) == MAX_SLIPPAGE_FRACTION
    assert model.slipped_price(SELL, 100.0, 0.5) == pytest.approx(50.0)


@pytest.mark.parametrize("side, price, limit", [(BUY, 99.5, 99.0), (SELL, 100.5, 101.0)])
def test_slipped_price_refuses_price_beyond_limit(side: Side, price: float, limit: float) -> None:
    with pytest.raises(ValueError, match="limit"):
        FillModel(FillConfig()).slipped_price(side, price, 0.0, limit)


@given(bps=st.floats(0.0, 5_000.0), vol=st.floats(0.0, 5.0), price=st.floats(0.01, 1e6),
       prev_range=st.floats(0.0, 2.0), offset=st.floats(0.0, 0.2))
def test_slippage_is_adverse_and_bounded_by_limit(bps: float, vol: float, price: float, prev_range: float,
                                                  offset: float) -> None:
    model = FillModel(FillConfig(slippage_bps=bps, slippage_volatility=vol))
    buy = model.slipped_price(BUY, price, prev_range)
    sell = model.slipped_price(SELL, price, prev_range)
    assert sell <= price <= buy
    assert sell > 0.0
    buy_limit = price * (1.0 + offset)
    sell_limit = price * (1.0 - offset)
    assert price <= model.slipped_price(BUY, price, prev_range, buy_limit) <= buy_limit
    assert sell_limit <= model.slipped_price(SELL, price, prev_range, sell_limit) <= price


# --- commission --------------------------------------------------------------------------------
@pytest.mark.parametrize("per_share, minimum, bps, quantity, price, expected", [
    (0.0, 0.0, 0.0, 100.0, 100.0, 0.0),
    (0.005, 0.0, 0.0, 100.0, 100.0, 0.5),
    (0.005, 1.0, 0.0, 100.0, 100.0, 1.0),  # the minimum binds
    (0.005, 1.0, 0.0, 1_000.0, 100.0, 5.0),  # above the minimum
    (0.0, 1.0, 0.0, 100.0, 100.0, 0.0),  # minimum only with a per-share rate
    (0.0, 0.0, 5.0, 100.0, 100.0, 5.0),  # 5 bps of 10,000 USD
    (0.0, 1.0, 5.0, 100.0, 100.0, 5.0),
    (0.01, 0.5, 1.0, 100.0, 100.1, 1.0 + 1.001),  # per share plus bps of notional
    (0.005, 1.0, 2.0, 10.0, 50.0, 1.0 + 0.1),
])
def test_commission(per_share: float, minimum: float, bps: float, quantity: float, price: float,
                    expected: float) -> None:
    model = FillModel(FillConfig(commission_per_share=per_share, commission_minimum=minimum, commission_bps=bps))
    assert model.commission(quantity, price) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("per_share, minimum, bps, quantity, before, expected", [
    (0.005, 1.0, 0.0, 100.0, 100.0, 0.0),  # 200 shares x 0.005 = 1.0: the minimum already covered it
    (0.005, 1.0, 0.0, 100.0, 200.0, 0.5),  # 1.5 in all, 1.0 paid before
    (0.005, 1.0, 0.0, 300.0, 100.0, 1.0),  # 2.0 in all, 1.0 paid before
    (0.005, 1.0, 0.0, 100.0, 1_000.0, 0.5),  # far past the minimum: the per-share rate only
    (0.005, 0.0, 0.0, 100.0, 500.0, 0.5),
    (0.0, 1.0, 0.0, 100.0, 100.0, 0.0),
    (0.005, 1.0, 5.0, 100.0, 100.0, 5.0),  # the bps part is per fill, on this fill's notional
])
def test_commission_of_a_later_fill_of_the_same_order(per_share: float, minimum: float, bps: float,
                                                      quantity: float, before: float, expected: float) -> None:
    model = FillModel(FillConfig(commission_per_share=per_share, commission_minimum=minimum, commission_bps=bps))
    assert model.commission(quantity, 100.0, before) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@given(per_share=st.floats(0.0, 0.05), minimum=st.floats(0.0, 10.0),
       fills=st.lists(st.floats(1e-6, 10_000.0), min_size=1, max_size=30))
def test_order_commission_telescopes_to_the_per_order_minimum(per_share: float, minimum: float,
                                                               fills: list[float]) -> None:
    model = FillModel(FillConfig(commission_per_share=per_share, commission_minimum=minimum))
    before, paid = 0.0, 0.0
    for quantity in fills:
        fee = model.commission(quantity, 100.0, before)
        assert fee >= 0.0
        paid += fee
        before += quantity
    assert paid == pytest.approx(max(before * per_share, minimum) if per_share > 0 else 0.0, rel=1e-9, abs=1e-12)


# --- fill quantity -----------------------------------------------------------------------------
@pytest.mark.parametrize("cap, leaves, volume, expected", [
    (None, 500.0, 1_000.0, 500.0),
    (None, 500.0, 0.0, 500.0),  # no cap: volume does not matter
    (0.1, 500.0, 2_000.0, 200.0),
    (0.1, 150.0, 2_000.0, 150.0),  # the cap allows more than is left
    (0.1, 500.0, 0.0, 0.0),  # zero-volume bar fills nothing under a cap
    (0.1, 500.0, -10.0, 0.0),
    (1.0, 500.0, 500.0, 500.0),
    (0.5, 0.0, 1_000.0, 0.0),
    (0.1, 100.0 + EPS_SHARES / 2, 1_000.0, 100.0 + EPS_SHARES / 2),  # dust is filled, not left over
    (0.1, 100.0, EPS_SHARES, 0.0),  # an allowance too small to trade fills nothing
    (0.1, 100.0, 5e-320, 0.0),
])
def test_fill_quantity(cap: float | None, leaves: float, volume: float, expected: float) -> None:
    model = FillModel(FillConfig(participation_cap=cap))
    assert model.fill_quantity(leaves, volume) == expected


@pytest.mark.parametrize("cap, leaves, volume, expected", [
    (0.1, 500.0, 127.0, 12.0),  # 12.7 allowed -> 12 whole shares
    (0.1, 500.0, 9.0, 0.0),  # under one share: nothing on this bar
    (0.1, 500.0, 0.0, 0.0),
    (0.29, 500.0, 100.0, 29.0),  # 28.999999999999996 in floats is 29 shares, not 28
    (0.1, 12.0, 127.0, 12.0),  # the cap covers the remainder
    (0.1, 0.5, 7.0, 0.5),  # a fractional remainder (e.g. of a restored position) fills once allowed
    (0.1, 12.5, 124.0, 12.0),
    (None, 12.5, 0.0, 12.5),  # no cap: the order as it is
])
def test_fill_quantity_whole_shares(cap: float | None, leaves: float, volume: float, expected: float) -> None:
    model = FillModel(FillConfig(participation_cap=cap, fractional_shares=False))
    assert model.fill_quantity(leaves, volume) == expected


@given(cap=st.floats(0.001, 1.0), leaves=st.integers(1, 10_000_000), volume=st.floats(0.0, 1e8))
def test_fill_quantity_whole_shares_bounds(cap: float, leaves: int, volume: float) -> None:
    quantity = FillModel(FillConfig(participation_cap=cap, fractional_shares=False)).fill_quantity(float(leaves), volume)
    assert quantity.is_integer() and 0.0 <= quantity <= leaves
    assert quantity <= cap * volume * (1 + 1e-9)
    assert quantity >= min(leaves, math.floor(cap * volume * (1 - 1e-12)))  # never more than one ulp lost


@given(cap=st.floats(0.001, 1.0), leaves=st.floats(0.0, 1e7), volume=st.floats(0.0, 1e8))
def test_fill_quantity_bounds(cap: float, leaves: float, volume: float) -> None:
    quantity = FillModel(FillConfig(participation_cap=cap)).fill_quantity(leaves, volume)
    assert 0.0 <= quantity <= leaves
    assert quantity <= cap * volume + EPS_SHARES
    assert quantity == 0.0 or quantity >= min(leaves, EPS_SHARES)
    assert leaves - quantity == 0.0 or leaves - quantity > EPS_SHARES
