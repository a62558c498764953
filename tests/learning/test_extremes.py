"""Extreme bars through features, regime detector, learner and pipeline (issue 5 B17).

Bars are drawn from the whole range the engine's gate (core.bars) lets through: prices from 1e-8
to 1e9 USD with jumps between them, zero and 1e15 volumes, long runs of identical bars. Whatever
passes the gate must never raise out of a component nor produce NaN/inf. The regime detector is
also driven with every positive finite close (beyond the gate), where a price ratio underflows.
"""

from __future__ import annotations

import math
import sys

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.bars import MAX_PRICE, MAX_VOLUME, MIN_PRICE, bar_is_sound
from core.enums import Regime
from core.events import Bar, RegimeChanged
from learning.features import FeatureConfig, StreamingFeatures
from learning.learner import LearnerConfig, OnlineLearner
from learning.pipeline import SignalConfig, SignalPipeline
from learning.regime import RegimeConfig, RegimeDetector

MINUTE = 60_000_000_000
T0 = 1_577_836_800 * 1_000_000_000

price = st.one_of(
    st.sampled_from([MIN_PRICE, MAX_PRICE, MIN_PRICE * (1 + 2**-52), MAX_PRICE * (1 - 2**-53), 1.0]),
    st.floats(MIN_PRICE, MAX_PRICE),
)
volume = st.one_of(  # tiny volumes too: squares of their deviations are denormal
    st.sampled_from([0.0, 5e-324, 1e-160, 1.0, MAX_VOLUME]), st.floats(0.0, 1e-150), st.floats(0.0, MAX_VOLUME))
# (open, close, two more prices widening the range, volume, bars in this run of identical bars)
segment = st.tuples(price, price, price, price, volume, st.integers(1, 40))


def expand(segments: list[tuple[float, float, float, float, float, int]], symbol: str = "X") -> list[Bar]:
    """Runs of identical bars, one minute apart; consecutive runs jump to new prices."""
    bars = []
    for o, c, a, b, v, run in segments:
        high, low = max(o, c, a, b), min(o, c, a, b)
        for _ in range(run):
            ts = T0 + len(bars) * MINUTE
            bars.append(Bar(symbol, ts, ts + MINUTE, o, high, low, c, v))
    assert all(bar_is_sound(bar) for bar in bars)  # exactly the gate's domain
    return bars


bar_streams = st.lists(segment, min_size=1, max_size=14).map(expand)

small_features = st.builds(
    FeatureConfig,
    return_horizons=st.sampled_from([(1,), (1, 3), (2, 5)]),
    rsi_period=st.integers(1, 5),
    macd_fast=st.integers(1, 3),
    macd_slow=st.integers(4, 6),
    macd_signal=st.integers(1, 4),
    bollinger_period=st.integers(1, 6),
    volume_z_period=st.integers(2, 6),
    volatility_period=st.integers(2, 6),
)
small_regime = st.builds(
    RegimeConfig,
    trend_period=st.integers(1, 8),
    volatility_period=st.integers(2, 6),
    volatility_baseline_period=st.integers(1, 10),
    min_bars_in_regime=st.integers(1, 4),
)
feature_configs = st.one_of(st.just(FeatureConfig()), small_features)
regime_configs = st.one_of(st.just(RegimeConfig()), small_regime)
learner_configs = st.builds(
    LearnerConfig,
    model=st.sampled_from(["logistic", "hoeffding_tree"]),
    horizon_bars=st.integers(1, 4),
    min_samples=st.integers(0, 5),
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def finite_or_none(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isfinite(x))


@SETTINGS
@given(bars=bar_streams, config=feature_configs)
@example(bars=expand([(1.0, 1.0, 1.0, 1.0, v, 1) for v in (0.0, 6.743048698597217e-155, 0.0, 9.128072417098585e-163)]
                     + [(1.0, 1.0, 1.0, 1.0, 9.128072417098585e-163, 2)]),
         config=FeatureConfig(return_horizons=(1,), rsi_period=1, macd_fast=1, macd_slow=2, macd_signal=1,
                              bollinger_period=1, volume_z_period=4, volatility_period=2))  # a denormal M2
def test_features_of_gate_bars_are_finite(bars, config):
    f = StreamingFeatures(config)
    for bar in bars:
        out = f.update(bar)
        assert out is None or (list(out) == list(f.feature_names) and all(map(math.isfinite, out.values()))), out


@SETTINGS
@given(bars=bar_streams, config=regime_configs)
def test_regime_of_gate_bars_is_finite(bars, config):
    d = RegimeDetector(config)
    for bar in bars:
        assert isinstance(d.update(bar), Regime)
        assert finite_or_none(d.efficiency_ratio) and finite_or_none(d.volatility_ratio)
        event = d.change_event(bar)
        assert event is None or isinstance(event, RegimeChanged)


closes = st.one_of(
    st.sampled_from([5e-324, 1e-300, 1e-8, 1.0, 1e9, 1e300, sys.float_info.max]),
    st.floats(min_value=5e-324, max_value=sys.float_info.max),
)


@SETTINGS
@given(values=st.lists(st.tuples(closes, st.integers(1, 20)), min_size=2, max_size=20), config=small_regime)
@example(values=[(1e300, 1), (1e-300, 1)], config=RegimeConfig(trend_period=1, volatility_period=2,
                                                                volatility_baseline_period=1))
def test_regime_survives_any_positive_close(values, config):
    """Beyond the gate too: a ratio of closes that underflows to 0 (or overflows) must not raise."""
    d = RegimeDetector(config)
    i = 0
    for c, run in values:
        for _ in range(run):
            d.update(Bar("X", i, i + 1, c, c, c, c, 1.0))
            assert finite_or_none(d.efficiency_ratio) and finite_or_none(d.volatility_ratio)
            i += 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars=bar_streams, features=small_features, config=learner_configs)
def test_learner_on_gate_bars_predicts_probabilities(bars, features, config):
    f, learner = StreamingFeatures(features), OnlineLearner(config)
    for bar in bars:
        x = f.update(bar)
        p = learner.on_bar(bar, x)
        assert p is None or 0.0 <= p <= 1.0
        if x is not None:
            q = learner.predict(x)
            assert q is None or 0.0 <= q <= 1.0
    restored = OnlineLearner.from_bytes(learner.to_bytes(), config)
    assert restored.samples_learned == learner.samples_learned


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams=st.lists(bar_streams, min_size=1, max_size=3), features=small_features, regime=small_regime,
       learner=learner_configs)
def test_pipeline_on_gate_bars_stays_finite(streams, features, regime, learner):
    """Several symbols interleaved by time, as the engine feeds them."""
    symbols = [f"S{i}" for i in range(len(streams))]
    bars = sorted((b._replace(symbol=s) for s, stream in zip(symbols, streams) for b in stream),
                  key=lambda b: (b.ts_event, b.symbol))
    pipe = SignalPipeline(SignalConfig(learner_enabled=True, features=features, regime=regime, learner=learner))
    for bar in bars:
        change = pipe.on_bar(bar)
        assert change is None or all(isinstance(r, Regime) for r in change)
        x = pipe.features(bar.symbol)
        assert x is None or all(map(math.isfinite, x.values()))
        p = pipe.prediction(bar.symbol)
        assert p is None or 0.0 <= p <= 1.0
        assert isinstance(pipe.regime(bar.symbol), Regime)
    assert set(pipe.learner_states()) == set(symbols)
