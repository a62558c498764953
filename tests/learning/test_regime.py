"""learning.regime: classification of synthetic series, hysteresis, RegimeChanged information.

Duplicate and out-of-order bars are the engine's to drop (core.bars gate); the detector no longer
checks them, so there is no component-level duplicate test here."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.enums import Regime
from core.events import Bar, RegimeChanged
from learning.regime import RegimeConfig, RegimeDetector

TRENDING = {Regime.LOW_VOL_TRENDING, Regime.HIGH_VOL_TRENDING}
NOT_TRENDING = {Regime.LOW_VOL_SIDEWAYS, Regime.HIGH_VOL_MEAN_REVERTING}
HOUR = 3_600_000_000_000


def to_bars(log_prices, symbol: str = "X") -> list[Bar]:
    closes = 100.0 * np.exp(np.asarray(log_prices, dtype=float))
    return [Bar(symbol, i * HOUR, (i + 1) * HOUR, c, c, c, c, 1000.0) for i, c in enumerate(closes.tolist())]


def run(detector: RegimeDetector, bars: list[Bar]) -> list[Regime]:
    return [detector.update(b) for b in bars]


def alternating(n: int, amplitude: float, drift: float = 0.0, start: int = 0) -> np.ndarray:
    """Log prices drift*t + amplitude*(-1)^t: constant 1-bar volatility, deterministic."""
    t = np.arange(start, start + n)
    return drift * t + amplitude * (-1.0) ** t


def test_unknown_during_warm_up_then_first_regime_at_once():
    cfg = RegimeConfig()
    d = RegimeDetector(cfg)
    out = run(d, to_bars(alternating(cfg.warmup_bars + 5, 0.001)))
    assert cfg.warmup_bars == 20 + 200
    assert set(out[: cfg.warmup_bars - 1]) == {Regime.UNKNOWN}
    d2 = RegimeDetector(cfg)
    bars = to_bars(alternating(cfg.warmup_bars, 0.001))
    run(d2, bars[:-1])
    assert d2.regime is Regime.UNKNOWN and not d2.changed
    assert d2.update(bars[-1]) is Regime.LOW_VOL_SIDEWAYS
    assert d2.changed and d2.previous is Regime.UNKNOWN
    assert d2.change_event(bars[-1]) == RegimeChanged(
        symbol="X", previous=Regime.UNKNOWN, current=Regime.LOW_VOL_SIDEWAYS,
        ts_event=bars[-1].ts_event, ts_init=bars[-1].ts_init,
    )


def test_steady_low_noise_trend_is_trending():
    rng = np.random.default_rng(1)
    n = 600
    log_p = 0.002 * np.arange(n) + 0.0005 * rng.standard_normal(n)
    d = RegimeDetector()
    out = run(d, to_bars(log_p))[d.config.warmup_bars - 1 :]
    assert set(out) <= TRENDING
    assert Counter(out).most_common(1)[0][0] is Regime.LOW_VOL_TRENDING
    assert d.efficiency_ratio > 0.9


def test_constant_volatility_trend_is_low_vol_trending():
    d = RegimeDetector()
    out = run(d, to_bars(alternating(400, 0.0005, drift=0.002)))[d.config.warmup_bars - 1 :]
    assert set(out) == {Regime.LOW_VOL_TRENDING}
    assert d.volatility_ratio == pytest.approx(1.0)


def test_noisy_flat_series_is_sideways():
    rng = np.random.default_rng(2)
    d = RegimeDetector()
    out = run(d, to_bars(0.01 * rng.standard_normal(600)))[d.config.warmup_bars - 1 :]
    assert set(out) <= NOT_TRENDING
    assert Counter(out).most_common(1)[0][0] is Regime.LOW_VOL_SIDEWAYS
    assert d.efficiency_ratio < 0.3


@pytest.mark.parametrize("min_bars", [1, 5, 8])
def test_volatility_burst_switches_only_after_min_bars(min_bars):
    cfg = RegimeConfig(min_bars_in_regime=min_bars)
    calm = alternating(300, 0.001)
    burst = alternating(40, 0.01, start=300)
    bars = to_bars(np.r_[calm, burst], symbol="SPY")
    d = RegimeDetector(cfg)
    reported, raws, changed = [], [], []
    events = []
    for b in bars:
        reported.append(d.update(b))
        raws.append(d.raw)
        changed.append(d.changed)
        if (e := d.change_event(b)) is not None:
            events.append(e)
    assert reported[299] is Regime.LOW_VOL_SIDEWAYS
    k = next(i for i in range(300, len(bars)) if raws[i] is not Regime.LOW_VOL_SIDEWAYS)
    assert k == 300  # the very first wide bar lifts short vol over 1.2x its baseline
    assert raws[k : k + min_bars] == [Regime.HIGH_VOL_MEAN_REVERTING] * min_bars
    switch = k + min_bars - 1
    assert reported[k:switch] == [Regime.LOW_VOL_SIDEWAYS] * (min_bars - 1)
    assert reported[switch] is Regime.HIGH_VOL_MEAN_REVERTING
    assert [i for i, c in enumerate(changed) if c] == [cfg.warmup_bars - 1, switch]
    assert events[-1] == RegimeChanged(
        symbol="SPY", previous=Regime.LOW_VOL_SIDEWAYS, current=Regime.HIGH_VOL_MEAN_REVERTING,
        ts_event=bars[switch].ts_event, ts_init=bars[switch].ts_init,
    )
    assert d.previous is Regime.LOW_VOL_SIDEWAYS


def test_change_event_is_none_without_a_switch():
    d = RegimeDetector()
    bars = to_bars(alternating(5, 0.001))
    for b in bars:
        d.update(b)
        assert d.change_event(b) is None


def test_reset_returns_to_unknown():
    bars = to_bars(alternating(260, 0.001))
    d = RegimeDetector()
    first = run(d, bars)
    d.reset()
    assert d.regime is Regime.UNKNOWN and d.previous is Regime.UNKNOWN and not d.changed
    assert run(d, bars) == first


def test_invalid_close_raises():
    with pytest.raises(ValueError, match="close"):
        RegimeDetector().update(Bar("X", 0, 1, 1.0, 1.0, 1.0, 0.0, 1.0))


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"trend_period": 0}, "trend_period"),
        ({"volatility_period": 1}, "volatility_period"),
        ({"volatility_baseline_period": 0}, "volatility_baseline_period"),
        ({"trend_threshold": 1.5}, "trend_threshold"),
        ({"high_vol_ratio": 0.0}, "high_vol_ratio"),
        ({"min_bars_in_regime": 0}, "min_bars_in_regime"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_config_validation_names_the_key(kwargs, key):
    with pytest.raises(ValidationError, match=key):
        RegimeConfig(**kwargs)


segment = st.tuples(
    st.sampled_from([0.0, 0.003, -0.003]),  # drift per bar (log)
    st.sampled_from([0.001, 0.004, 0.012]),  # noise sd per bar (log)
    st.integers(5, 60),  # length
)


@settings(max_examples=40, deadline=None)
@given(segments=st.lists(segment, min_size=2, max_size=8), min_bars=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_hysteresis_invariants(segments, min_bars, seed):
    """Switches happen exactly when a new raw class held min_bars consecutive bars."""
    rng = np.random.default_rng(seed)
    steps = np.concatenate([drift + sd * rng.standard_normal(n) for drift, sd, n in segments])
    cfg = RegimeConfig(trend_period=10, volatility_period=5, volatility_baseline_period=20, min_bars_in_regime=min_bars)
    d = RegimeDetector(cfg)
    reported, raws, changed, previous = [], [], [], []
    for b in to_bars(np.cumsum(steps)):
        reported.append(d.update(b))
        raws.append(d.raw)
        changed.append(d.changed)
        previous.append(d.previous)
    for t in range(1, len(reported)):
        assert changed[t] == (reported[t] is not reported[t - 1])
        if changed[t]:
            assert previous[t] is reported[t - 1]
            if reported[t - 1] is not Regime.UNKNOWN:
                assert len(set(raws[t - min_bars + 1 : t + 1])) == 1 and raws[t] is reported[t]
        if t >= min_bars and raws[t] is not Regime.UNKNOWN and len(set(raws[t - min_bars + 1 : t + 1])) == 1:
            assert reported[t] is raws[t]  # a class held for min_bars bars is always reported

