"""learning.pipeline: closes queued by ``observe`` give the regime ``on_bar`` would have given.

The engine feeds bars through ``observe`` while nobody subscribes to RegimeChanged (the detector
then catches up in batches when the regime is read, for a decision's audit row) and through
``on_bar`` once someone does. A user sees the same regime in every decision either way, and a
RegimeChanged subscriber gets every change.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.merge import merge_bars
from core.enums import Regime
from core.events import Bar, RegimeChanged
from learning.pipeline import MAX_PENDING_CLOSES, SignalConfig, SignalPipeline
from learning.regime import RegimeConfig, RegimeDetector
from strategies.registry import build_strategy
from tests.support import STRATEGY_PARAMS, load_two_symbols, paper_kernel

SMALL = RegimeConfig(trend_period=3, volatility_period=2, volatility_baseline_period=3, min_bars_in_regime=2)


def walk(n: int, seed: int, symbols: tuple[str, ...] = ("A", "B")) -> list[Bar]:
    rng = np.random.default_rng(seed)
    bars = []
    for i in range(n):
        symbol = symbols[int(rng.integers(len(symbols)))]
        close = float(100.0 * np.exp(rng.normal(0.0, 0.05)))
        bars.append(Bar(symbol, i * 60, (i + 1) * 60, close, close, close, close, 1000.0))
    return bars


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 300), seed=st.integers(0, 10_000), reads=st.lists(st.integers(0, 299), max_size=30),
       learner=st.booleans())
def test_observed_closes_give_the_regime_of_bar_by_bar_updates(n: int, seed: int, reads: list[int],
                                                              learner: bool) -> None:
    config = SignalConfig(regime=SMALL, learner_enabled=learner, learner={"min_samples": 5, "horizon_bars": 2})
    eager, lazy = SignalPipeline(config), SignalPipeline(config)
    read_at = set(reads)
    for i, bar in enumerate(walk(n, seed)):
        eager.on_bar(bar)
        lazy.observe(bar)
        assert lazy.prediction(bar.symbol) == eager.prediction(bar.symbol)  # the learner never waits
        if i in read_at:
            assert [lazy.regime(s) for s in "AB"] == [eager.regime(s) for s in "AB"]
    assert [lazy.regime(s) for s in "ABC"] == [eager.regime(s) for s in "ABC"]


def test_the_queue_is_bounded_and_switching_to_on_bar_catches_up_first() -> None:
    bars = walk(MAX_PENDING_CLOSES + 500, 3, symbols=("A",))
    lazy = SignalPipeline(SignalConfig(regime=SMALL))
    reference = RegimeDetector(SMALL)
    for bar in bars[:-1]:
        lazy.observe(bar)
        reference.update(bar)
    pending = lazy._symbols["A"].pending
    assert pending is not None and len(pending) < MAX_PENDING_CLOSES  # caught up on its own once
    change = lazy.on_bar(bars[-1])  # someone subscribed: on_bar again, queued closes first
    reference.update(bars[-1])
    assert lazy.regime("A") is reference.regime
    assert change == ((reference.previous, reference.regime) if reference.changed else None)


def run_sma_cross(subscribe: bool) -> tuple[list[Regime], list[RegimeChanged]]:
    strategy = build_strategy("sma_cross", STRATEGY_PARAMS["sma_cross"])
    kernel, store, _, _ = paper_kernel(strategy, signals=SignalConfig())
    events: list[RegimeChanged] = []
    if subscribe:
        kernel.engine.subscribe(RegimeChanged, events.append)
    kernel.engine.handle_bars(merge_bars(load_two_symbols()))
    return [d.regime for d in store.decisions], events


def test_decisions_record_the_same_regime_with_and_without_a_regime_subscriber() -> None:
    lazy_regimes, none = run_sma_cross(subscribe=False)
    eager_regimes, events = run_sma_cross(subscribe=True)
    assert none == [] and len(lazy_regimes) > 20
    assert lazy_regimes == eager_regimes
    assert {r for r in lazy_regimes} - {Regime.UNKNOWN.value} and len(events) > 5
    # every change the subscriber saw is what a detector of that symbol reports on that bar
    detectors = {s.symbol: RegimeDetector() for s in load_two_symbols()}
    expected = []
    for bar in merge_bars(load_two_symbols()):
        detectors[bar.symbol].update(bar)
        event = detectors[bar.symbol].change_event(bar)
        if event is not None:
            expected.append(event)
    assert events == expected
