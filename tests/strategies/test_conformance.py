"""Conformance suite every registered strategy must pass: determinism, no mutation of inputs,
save/load (pickle) round trip mid-stream, and tolerance of gaps and duplicate bars."""

from __future__ import annotations

import copy
import pickle

import pytest

from core.clock import Clock
from core.enums import Regime, TradingState
from core.events import Bar
from strategies.registry import STRATEGIES, StrategyConfigError, build_strategy
from tests.support import STRATEGY_PARAMS


class FakeContext:
    """A minimal read-only context: flat book, a prediction oscillating around 0.5."""

    def __init__(self) -> None:
        self.clock = Clock(0)
        self.positions: dict[str, float] = {}
        self.i = 0

    now = property(lambda self: self.clock.now)
    cash = equity = property(lambda self: 100_000.0)
    trading_state = property(lambda self: TradingState.ACTIVE)

    def position(self, symbol): return self.positions.get(symbol, 0.0)
    def avg_price(self, symbol): return 100.0 if self.positions.get(symbol) else 0.0
    def entry_time(self, symbol): return None
    def pending(self, symbol): return 0.0
    def features(self, symbol): return None
    def prediction(self, symbol): return 0.5 + 0.3 * ((self.i % 7) - 3) / 3
    def regime(self, symbol): return Regime.UNKNOWN


def _bars(two_symbols, n=1500):
    series = two_symbols[0]
    return [Bar(series.symbol, int(series.ts_event[i]), int(series.ts_init[i]), float(series.open[i]),
                float(series.high[i]), float(series.low[i]), float(series.close[i]), float(series.volume[i]))
            for i in range(n)]


def _drive(strategy, bars, ctx=None):
    ctx = ctx or FakeContext()
    out = []
    for bar in bars:
        ctx.i += 1
        ctx.clock.advance_to(bar.ts_init)
        intents = list(strategy.on_bar(ctx, bar))
        for intent in intents:  # apply intents as instant fills so exits are exercised
            sign = 1 if intent.side.value == "buy" else -1
            ctx.positions[intent.symbol] = ctx.position(intent.symbol) + sign * (intent.quantity or 10.0)
        out.append(intents)
    return out, ctx


@pytest.fixture(params=sorted(STRATEGIES))
def name(request):
    return request.param


def test_deterministic(two_symbols, name):
    bars = _bars(two_symbols)
    a, _ = _drive(build_strategy(name, STRATEGY_PARAMS[name]), bars)
    b, _ = _drive(build_strategy(name, STRATEGY_PARAMS[name]), bars)
    assert a == b
    assert any(a), f"{name} produced no intents on 1500 real bars"


def test_does_not_mutate_inputs(two_symbols, name):
    bars = _bars(two_symbols, 400)
    before = copy.deepcopy(bars)
    params = build_strategy(name, STRATEGY_PARAMS[name]).params
    _drive(build_strategy(name, STRATEGY_PARAMS[name]), bars)
    assert bars == before
    assert build_strategy(name, STRATEGY_PARAMS[name]).params == params


def test_pickle_round_trip_mid_stream_continues_identically(two_symbols, name):
    bars = _bars(two_symbols)
    strategy = build_strategy(name, STRATEGY_PARAMS[name])
    _, ctx = _drive(strategy, bars[:700])
    restored = pickle.loads(pickle.dumps(strategy))
    ctx_copy = copy.deepcopy(ctx)
    a, _ = _drive(strategy, bars[700:], ctx)
    b, _ = _drive(restored, bars[700:], ctx_copy)
    assert a == b


def test_tolerates_gaps(two_symbols, name):
    bars = _bars(two_symbols)
    gapped = bars[:300] + bars[900:]  # a long gap: months of missing bars
    out, _ = _drive(build_strategy(name, STRATEGY_PARAMS[name]), gapped)
    assert len(out) == len(gapped)


def test_unknown_strategy_and_bad_params_are_named():
    with pytest.raises(StrategyConfigError, match="available: online_ml, rsi_momentum, sma_cross"):
        build_strategy("nope")
    with pytest.raises(StrategyConfigError, match=r"fast \(30\) must be smaller than slow \(10\)"):
        build_strategy("sma_cross", {"fast": 30, "slow": 10})
    with pytest.raises(StrategyConfigError, match="fast='abc'"):
        build_strategy("sma_cross", {"fast": "abc"})
