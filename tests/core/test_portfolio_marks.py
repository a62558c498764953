"""core.portfolio: what the engine reads after every bar (the equity a mark returns, the number of
open positions, gross exposure) always agrees with the books."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.enums import Side
from core.portfolio import Portfolio

SYMBOLS = ["AAA", "BBB", "CCC"]
prices = st.floats(min_value=0.5, max_value=2000)
quantities = st.floats(min_value=0.01, max_value=5000)
ops = st.lists(st.one_of(
    st.tuples(st.just("fill"), st.sampled_from(SYMBOLS), st.sampled_from([Side.BUY, Side.SELL]), quantities, prices),
    st.tuples(st.just("mark"), st.sampled_from(SYMBOLS), prices),
    st.tuples(st.just("restore"), st.lists(st.tuples(st.sampled_from(SYMBOLS), st.floats(-100, 100), prices),
                                           max_size=3, unique_by=lambda p: p[0])),
), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops=ops)
def test_mark_equity_open_count_and_gross_exposure_match_the_books(ops) -> None:
    portfolio = Portfolio(1_000_000.0)
    for op in ops:
        if op[0] == "mark":
            equity = portfolio.update_mark(op[1], op[2])
            assert equity == portfolio.equity  # bit for bit: the same sum in the same order
        elif op[0] == "fill":
            _, symbol, side, quantity, price = op
            portfolio.apply_fill(symbol, side, quantity, price, 0.5)
        else:
            portfolio.restore(5_000.0, [(symbol, q, price, price) for symbol, q, price in op[1]])
        held = [p for p in portfolio.positions().values() if p.quantity != 0.0]
        assert portfolio.open_positions == len(held)
        assert portfolio.gross_exposure == pytest.approx(sum(abs(p.quantity * p.mark) for p in held), rel=1e-12)
