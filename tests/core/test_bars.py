"""The bar gate: one rule, stated in core.bars, applied by the engine to every bar."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from core.bars import MAX_PRICE, MIN_PRICE, bar_is_sound, bar_problem
from core.events import Bar
from tests.support import paper_kernel
from strategies.base import Strategy

EDGE = [math.nan, math.inf, -math.inf, 0.0, -1.0, 5e-324, 1e-300, MIN_PRICE, MIN_PRICE / 2, MAX_PRICE,
        MAX_PRICE * 2, 1e305, 1.0, 100.0]
values = st.sampled_from(EDGE) | st.floats(1e-9, 1e10)
T0 = 1_600_000_000 * 1_000_000_000


class Quiet(Strategy):
    name = "quiet"

    def on_bar(self, ctx, bar):
        return ()


@settings(max_examples=300, deadline=None)
@given(values, values, values, values, values, st.integers(-2, 2))
def test_the_engine_books_exactly_the_bars_the_gate_passes(o, h, lo, c, v, shift):
    bar = Bar("X", T0, T0 + shift * 60_000_000_000, o, h, lo, c, v)
    assert (bar_problem(bar) is None) == bar_is_sound(bar)
    kernel, _, alerts, curve = paper_kernel(Quiet(), start_ns=T0)
    kernel.engine.handle(bar)
    assert (len(curve.ts) == 1) == bar_is_sound(bar)
    if not bar_is_sound(bar):
        assert bar_problem(bar) in alerts.alerts[0][2]
