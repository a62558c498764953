"""Accounting invariants of core.portfolio: cash + market value = equity after every event."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.enums import Side
from core.portfolio import Portfolio

SYMBOLS = ["AAA", "BBB", "CCC"]
prices = st.floats(min_value=0.5, max_value=2000, allow_nan=False, allow_infinity=False)
quantities = st.floats(min_value=0.01, max_value=5000, allow_nan=False, allow_infinity=False)
fill_op = st.tuples(st.just("fill"), st.sampled_from(SYMBOLS), st.sampled_from([Side.BUY, Side.SELL]), quantities,
                    prices, st.floats(min_value=0, max_value=50))
mark_op = st.tuples(st.just("mark"), st.sampled_from(SYMBOLS), prices)


def _independent_equity(portfolio: Portfolio) -> float:
    # recomputed from the books, not from Portfolio.equity
    return portfolio.cash + sum(p.quantity * p.mark for p in portfolio.positions().values())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(fill_op, mark_op), min_size=1, max_size=60))
def test_cash_plus_positions_equals_equity_after_every_event(ops):
    portfolio = Portfolio(1_000_000.0)
    flows = 0.0  # cash paid out minus received, independently tracked
    for op in ops:
        if op[0] == "mark":
            portfolio.update_mark(op[1], op[2])
        else:
            _, symbol, side, qty, price, commission = op
            portfolio.apply_fill(symbol, side, qty, price, commission)
            flows += qty * price * side.sign + commission
        assert math.isclose(portfolio.equity, _independent_equity(portfolio), rel_tol=1e-12, abs_tol=1e-6)
        assert math.isclose(portfolio.cash, 1_000_000.0 - flows, rel_tol=1e-12, abs_tol=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([Side.BUY, Side.SELL]), quantities, prices), min_size=1, max_size=40))
def test_realized_plus_unrealized_minus_commission_is_total_pnl(fills):
    portfolio = Portfolio(1_000_000.0)
    commission = 0.0
    for side, qty, price in fills:
        portfolio.apply_fill("AAA", side, qty, price, 1.0)
        commission += 1.0
    last = fills[-1][2]
    portfolio.update_mark("AAA", last)
    pos = portfolio.positions()["AAA"]
    total = portfolio.equity - 1_000_000.0
    assert math.isclose(pos.realized_pnl + pos.unrealized_pnl - commission, total, rel_tol=1e-9, abs_tol=1e-4)


def test_average_cost_and_realized_pnl_scenario():
    p = Portfolio(10_000.0)
    p.apply_fill("X", Side.BUY, 10, 100.0, 1.0)
    p.apply_fill("X", Side.BUY, 10, 110.0, 1.0)
    assert p.avg_price("X") == pytest.approx(105.0)
    realized = p.apply_fill("X", Side.SELL, 5, 120.0, 1.0)
    assert realized == pytest.approx(75.0)  # 5 * (120 - 105)
    assert p.position("X") == 15
    assert p.cash == pytest.approx(10_000 - 1000 - 1100 + 600 - 3)


def test_flip_through_zero_opens_remainder_at_fill_price():
    p = Portfolio(10_000.0)
    p.apply_fill("X", Side.BUY, 10, 100.0, 0.0)
    realized = p.apply_fill("X", Side.SELL, 15, 90.0, 0.0)
    assert realized == pytest.approx(-100.0)
    assert p.position("X") == -5
    assert p.avg_price("X") == 90.0
    p.update_mark("X", 80.0)
    assert p.equity == pytest.approx(10_000 - 100 + 50)  # short 5 gained 10 each


def test_invalid_fill_is_rejected_with_reason():
    with pytest.raises(ValueError, match="invalid fill for X"):
        Portfolio(1000.0).apply_fill("X", Side.BUY, 0, 10.0, 0.0)
    with pytest.raises(ValueError, match="starting_cash"):
        Portfolio(0)
