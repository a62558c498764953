"""learning.regime: the fused detector gives exactly what the indicator classes give.

The detector inlines the arithmetic of core.indicators' EfficiencyRatio, RollingStats and EMA for
speed. ``ReferenceDetector`` below is the detector as it was built from those classes; every
output (regime, raw class, change flag, previous regime, efficiency ratio, volatility ratio) must
be bit for bit the same after every close, whether the closes come one by one or in batches of
any size, for closes anywhere in the positive float range and long runs of equal closes.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.enums import Regime
from core.events import Bar
from core.indicators import EMA, EfficiencyRatio, RollingStats
from learning.regime import RegimeConfig, RegimeDetector

_MIN_RATIO = sys.float_info.min
_MAX = sys.float_info.max


class ReferenceDetector:
    """The regime detector composed of core.indicators objects (the specification)."""

    def __init__(self, config: RegimeConfig) -> None:
        self.er = EfficiencyRatio(config.trend_period)
        self.vol = RollingStats(config.volatility_period)
        self.baseline = EMA(config.volatility_baseline_period)
        self.config = config
        self.prev_close: float | None = None
        self.regime = self.previous = self.raw = self.candidate = Regime.UNKNOWN
        self.changed = False
        self.streak = 0
        self.ratio: float | None = None

    def update(self, close: float) -> Regime:
        self.changed = False
        er = self.er.update(close)
        prev, self.prev_close = self.prev_close, close
        if prev is None:
            return self.regime
        r = close / prev
        log_return = math.log(r) if _MIN_RATIO <= r <= _MAX else math.log(close) - math.log(prev)
        if self.vol.update(log_return) is None:
            return self.regime
        sigma = self.vol.std
        assert sigma is not None
        base = self.baseline.update(sigma)
        if base is None or er is None:
            return self.regime
        self.ratio = ratio = sigma / base if base > 0.0 else (_MAX if sigma > 0.0 else 1.0)
        high = ratio >= self.config.high_vol_ratio
        if er >= self.config.trend_threshold:
            raw = Regime.HIGH_VOL_TRENDING if high else Regime.LOW_VOL_TRENDING
        else:
            raw = Regime.HIGH_VOL_MEAN_REVERTING if high else Regime.LOW_VOL_SIDEWAYS
        self.raw = raw
        if raw is self.regime:
            self.streak = 0
            return self.regime
        if self.regime is not Regime.UNKNOWN:
            if raw is self.candidate and self.streak:
                self.streak += 1
            else:
                self.candidate, self.streak = raw, 1
            if self.streak < self.config.min_bars_in_regime:
                return self.regime
        self.previous, self.regime, self.changed, self.streak = self.regime, raw, True, 0
        return raw


def same(detector: RegimeDetector, reference: ReferenceDetector) -> bool:
    return (detector.regime is reference.regime and detector.raw is reference.raw
            and detector.changed == reference.changed and detector.previous is reference.previous
            and detector.efficiency_ratio == reference.er.value and detector.volatility_ratio == reference.ratio)


def bar(close: float, i: int = 0) -> Bar:
    return Bar("X", i, i + 1, close, close, close, close, 1.0)


closes = st.one_of(
    st.sampled_from([5e-324, 1e-300, 1e-8, 1.0, 1e9, 1e300, _MAX]),
    st.floats(min_value=1e-8, max_value=1e9),
    st.floats(min_value=5e-324, max_value=_MAX),
)
runs = st.lists(st.tuples(closes, st.integers(1, 30)), min_size=1, max_size=40)
configs = st.builds(RegimeConfig, trend_period=st.integers(1, 8), volatility_period=st.integers(2, 6),
                    volatility_baseline_period=st.integers(1, 10), min_bars_in_regime=st.integers(1, 4),
                    trend_threshold=st.floats(0.0, 1.0), high_vol_ratio=st.floats(0.1, 3.0))
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def expand(values: list[tuple[float, int]]) -> list[float]:
    return [c for c, n in values for _ in range(n)]


@SETTINGS
@given(values=runs, config=configs)
@example(values=[(1e300, 1), (1e-300, 1), (1.0, 40)], config=RegimeConfig(trend_period=1, volatility_period=2,
                                                                          volatility_baseline_period=1))
def test_update_matches_the_indicator_classes_after_every_bar(values: list[tuple[float, int]],
                                                              config: RegimeConfig) -> None:
    detector, reference = RegimeDetector(config), ReferenceDetector(config)
    for i, close in enumerate(expand(values)):
        assert detector.update(bar(close, i)) is reference.update(close)
        assert same(detector, reference), i


@SETTINGS
@given(values=runs, config=configs, cuts=st.lists(st.integers(1, 50), min_size=1, max_size=20))
def test_batches_of_any_size_match_one_update_per_close(values: list[tuple[float, int]], config: RegimeConfig,
                                                        cuts: list[int]) -> None:
    series = expand(values)
    detector, reference = RegimeDetector(config), ReferenceDetector(config)
    start, k = 0, 0
    while start < len(series):
        batch = series[start:start + cuts[k % len(cuts)]]
        for close in batch:
            reference.update(close)
        assert detector.update_closes(batch) is reference.regime
        assert same(detector, reference), start
        start, k = start + len(batch), k + 1


def test_default_config_on_a_long_random_walk_matches_in_batches() -> None:
    """The replay's case: default periods, thousands of bars, batches as decisions come."""
    rng = np.random.default_rng(11)
    series = (100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, 20_000)))).tolist()
    detector, reference = RegimeDetector(), ReferenceDetector(RegimeConfig())
    switches = 0
    for start in range(0, len(series), 37):
        for close in series[start:start + 37]:
            reference.update(close)
            switches += reference.changed
        detector.update_closes(series[start:start + 37])
        assert same(detector, reference)
    assert switches > 10  # the walk does move between regimes


def test_reset_forgets_everything() -> None:
    detector = RegimeDetector(RegimeConfig(trend_period=2, volatility_period=2, volatility_baseline_period=1))
    detector.update_closes([1.0, 2.0, 1.5, 3.0, 2.0, 2.5])
    detector.reset()
    fresh = RegimeDetector(detector.config)
    for close in (5.0, 4.0, 6.0, 5.5):
        assert detector.update(bar(close)) is fresh.update(bar(close))
    assert detector.efficiency_ratio == fresh.efficiency_ratio and detector.volatility_ratio == fresh.volatility_ratio
