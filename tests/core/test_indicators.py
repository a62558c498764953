"""core.indicators against pandas references on real data, plus Hypothesis properties, including
every finite input from denormals to the float limit."""

from __future__ import annotations

import doctest
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import core.indicators as ind
from core.indicators import (
    ATR,
    EMA,
    MACD,
    RSI,
    SMA,
    Bollinger,
    EfficiencyRatio,
    RollingMax,
    RollingMin,
    RollingStats,
)

SPY = Path(__file__).resolve().parents[2] / "data" / "us_equity_1hour_adjusted" / "SPY.csv.gz"
ROWS = 4000


@pytest.fixture(scope="module")
def ohlcv() -> pd.DataFrame:
    """SPY hourly bars if bundled, else a seeded random walk with the same columns."""
    if SPY.exists():
        df = pd.read_csv(SPY, nrows=ROWS)
        return df[["open", "high", "low", "close", "volume"]].astype(float).reset_index(drop=True)
    rng = np.random.default_rng(7)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, ROWS)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0.0, 0.004, ROWS)) * close
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.integers(1_000, 100_000, ROWS).astype(float),
        }
    )


def run(indicator, values) -> np.ndarray:
    """Feed values one by one; None -> NaN."""
    out = [indicator.update(v) for v in values]
    return np.array([np.nan if v is None else v for v in out])


def seeded_ema(s: pd.Series, n: int, alpha: float) -> pd.Series:
    """Reference EMA seeded with the SMA of the first n values (pandas ewm, adjust=False)."""
    s = s.reset_index(drop=True)
    seeded = s.copy()
    seeded.iloc[: n - 1] = np.nan
    seeded.iloc[n - 1] = s.iloc[:n].mean()
    return seeded.ewm(alpha=alpha, adjust=False).mean()


def close_(a: np.ndarray, b, rtol: float = 1e-9, atol: float = 1e-9) -> None:
    np.testing.assert_allclose(a, np.asarray(b, dtype=float), rtol=rtol, atol=atol, equal_nan=True)


# --- pandas references -----------------------------------------------------------------------


@pytest.mark.parametrize("period", [1, 2, 20, 200])
def test_sma_matches_pandas(ohlcv, period):
    close_(run(SMA(period), ohlcv.close), ohlcv.close.rolling(period).mean())


@pytest.mark.parametrize("period", [1, 12, 26])
def test_ema_matches_pandas(ohlcv, period):
    close_(run(EMA(period), ohlcv.close), seeded_ema(ohlcv.close, period, 2.0 / (period + 1)))


def test_ema_custom_alpha_matches_pandas(ohlcv):
    close_(run(EMA(14, alpha=1 / 14), ohlcv.close), seeded_ema(ohlcv.close, 14, 1 / 14))


@pytest.mark.parametrize("period", [2, 14])
def test_rsi_matches_wilder_reference(ohlcv, period):
    d = ohlcv.close.diff()
    gain = seeded_ema(d.clip(lower=0.0).iloc[1:], period, 1.0 / period)
    loss = seeded_ema((-d).clip(lower=0.0).iloc[1:], period, 1.0 / period)
    ref = np.r_[np.nan, (100.0 * gain / (gain + loss)).to_numpy()]
    close_(run(RSI(period), ohlcv.close), ref)


def test_atr_matches_wilder_reference(ohlcv):
    pc = ohlcv.close.shift()
    tr = pd.concat([ohlcv.high - ohlcv.low, (ohlcv.high - pc).abs(), (ohlcv.low - pc).abs()], axis=1).max(axis=1)
    atr = ATR(14)
    got = np.array([np.nan if v is None else v for v in map(atr.update, ohlcv.high, ohlcv.low, ohlcv.close)])
    close_(got, seeded_ema(tr, 14, 1 / 14))


@pytest.mark.parametrize("period", [2, 20, 300])
def test_rolling_stats_matches_pandas(ohlcv, period):
    rs = RollingStats(period)
    means, stds, zs = [], [], []
    for x in ohlcv.close:
        rs.update(x)
        means.append(rs.mean)
        stds.append(rs.std)
        zs.append(rs.zscore(x))
    # pandas' rolling var keeps running sums and leaves ~1e-8 residue on flat windows (where we are
    # exactly 0), so the std reference is the exact two-pass numpy std of each window.
    c = ohlcv.close.to_numpy()
    windows = np.lib.stride_tricks.sliding_window_view(c, period)
    ref_std = np.r_[np.full(period - 1, np.nan), windows.std(axis=1, ddof=1)]
    ref_mean = ohlcv.close.rolling(period).mean().to_numpy()
    nan = lambda xs: [np.nan if v is None else v for v in xs]  # noqa: E731
    close_(np.array(nan(means)), ref_mean)
    close_(np.array(nan(stds)), ref_std, rtol=1e-8, atol=1e-12)
    ref_z = np.divide(c - ref_mean, ref_std, out=np.zeros_like(c), where=ref_std > 0)
    ref_z[: period - 1] = np.nan
    close_(np.array(nan(zs)), ref_z, rtol=1e-7, atol=1e-7)


def test_rolling_stats_population_matches_pandas(ohlcv):
    rs = RollingStats(20, ddof=0)
    stds = []
    for x in ohlcv.volume:
        rs.update(x)
        stds.append(np.nan if rs.std is None else rs.std)
    close_(np.array(stds), ohlcv.volume.rolling(20).std(ddof=0), rtol=1e-8)


def test_macd_matches_appel_reference(ohlcv):
    c = ohlcv.close
    line = seeded_ema(c, 12, 2 / 13) - seeded_ema(c, 26, 2 / 27)
    valid = line.dropna()
    signal = seeded_ema(valid, 9, 2 / 10)
    signal.index = valid.index
    hist = (line - signal.reindex(line.index)).to_numpy()
    macd = MACD(12, 26, 9)
    got = run(macd, c)
    close_(got, hist)
    assert np.isnan(got[: 26 + 9 - 2]).all() and not np.isnan(got[26 + 9 - 2])
    assert macd.macd == pytest.approx(line.iloc[-1], rel=1e-9)
    assert macd.signal == pytest.approx(signal.iloc[-1], rel=1e-9)
    assert macd.histogram == macd.value == pytest.approx(hist[-1], rel=1e-6, abs=1e-9)


def test_bollinger_percent_b_matches_pandas(ohlcv):
    c = ohlcv.close
    mid, sd = c.rolling(20).mean(), c.rolling(20).std(ddof=0)
    bb = Bollinger(20, 2.0)
    close_(run(bb, c), (c - (mid - 2 * sd)) / (4 * sd), rtol=1e-7, atol=1e-7)
    assert bb.upper == pytest.approx(mid.iloc[-1] + 2 * sd.iloc[-1], rel=1e-9)
    assert bb.lower == pytest.approx(mid.iloc[-1] - 2 * sd.iloc[-1], rel=1e-9)
    assert bb.middle == pytest.approx(mid.iloc[-1], rel=1e-12)


@pytest.mark.parametrize("period", [1, 10, 50])
def test_efficiency_ratio_matches_kaufman_reference(ohlcv, period):
    c = ohlcv.close
    path = c.diff().abs().rolling(period).sum()
    ref = ((c - c.shift(period)).abs() / path).where(path != 0.0, 0.0)  # flat path: ER 0 by definition
    ref.iloc[:period] = np.nan
    close_(run(EfficiencyRatio(period), c), ref.clip(upper=1.0))


@pytest.mark.parametrize("period", [1, 5, 20])
def test_rolling_max_min_match_pandas(ohlcv, period):
    np.testing.assert_array_equal(run(RollingMax(period), ohlcv.high), ohlcv.high.rolling(period).max())
    np.testing.assert_array_equal(run(RollingMin(period), ohlcv.low), ohlcv.low.rolling(period).min())


# --- protocol: ready / value / reset ---------------------------------------------------------

FACTORIES = [
    lambda: SMA(5),
    lambda: EMA(5),
    lambda: RSI(5),
    lambda: RollingStats(5),
    lambda: MACD(3, 6, 4),
    lambda: Bollinger(5),
    lambda: EfficiencyRatio(5),
    lambda: RollingMax(5),
    lambda: RollingMin(5),
]


@pytest.mark.parametrize("factory", FACTORIES)
def test_ready_value_and_reset(ohlcv, factory):
    a = factory()
    assert not a.ready and a.value is None
    first = run(a, ohlcv.close[:100])
    warm = int(np.argmax(~np.isnan(first)))
    assert warm > 0 and not np.isnan(first[warm:]).any()
    assert a.ready and a.value == first[-1]
    a.reset()
    assert not a.ready and a.value is None
    np.testing.assert_array_equal(run(a, ohlcv.close[:100]), first)
    np.testing.assert_array_equal(run(factory(), ohlcv.close[:100]), first)


def test_atr_ready_and_reset(ohlcv):
    atr = ATR(3)
    bars = list(zip(ohlcv.high[:10], ohlcv.low[:10], ohlcv.close[:10]))
    first = [atr.update(*b) for b in bars]
    assert first[:2] == [None, None] and first[2] is not None
    atr.reset()
    assert not atr.ready and [atr.update(*b) for b in bars] == first


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda: SMA(0), "period"),
        (lambda: SMA(True), "period"),
        (lambda: SMA(2.0), "period"),
        (lambda: EMA(3, alpha=0.0), "alpha"),
        (lambda: EMA(3, alpha=1.5), "alpha"),
        (lambda: RSI(0), "period"),
        (lambda: ATR(-1), "period"),
        (lambda: RollingStats(1), "period"),
        (lambda: RollingStats(5, ddof=2), "ddof"),
        (lambda: MACD(26, 12, 9), "fast"),
        (lambda: MACD(12, 26, 0), "signal"),
        (lambda: Bollinger(20, 0.0), "k"),
        (lambda: Bollinger(20, math.inf), "k"),
        (lambda: EfficiencyRatio(0), "period"),
        (lambda: RollingMax(0), "period"),
    ],
)
def test_invalid_parameters_name_the_key(make, key):
    with pytest.raises(ValueError, match=key):
        make()


def test_doctests():
    assert doctest.testmod(ind).failed == 0


# --- properties ------------------------------------------------------------------------------

consts = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(period=st.integers(1, 60), c=consts, extra=st.integers(0, 150))
def test_sma_and_ema_of_constant_is_the_constant(period, c, extra):
    for indicator in (SMA(period), EMA(period)):
        for _ in range(period + extra):
            v = indicator.update(c)
        assert math.isclose(v, c, rel_tol=1e-12, abs_tol=1e-12)


@given(period=st.integers(1, 40), c=st.floats(min_value=0.01, max_value=1e6), extra=st.integers(0, 100))
def test_constant_series_edge_values(period, c, extra):
    rs, bb, er, rsi = RollingStats(period + 1), Bollinger(period), EfficiencyRatio(period), RSI(period)
    for _ in range(period + 1 + extra):
        rs.update(c), bb.update(c), er.update(c), rsi.update(c)
    assert rs.std == 0.0 and rs.zscore(c + 1.0) == 0.0
    assert bb.value == 0.5 and er.value == 0.0 and rsi.value == 50.0


prices = st.lists(st.floats(min_value=1.0, max_value=1e4, allow_nan=False), min_size=1, max_size=300)


@given(xs=prices, period=st.integers(1, 30))
def test_bounded_outputs(xs, period):
    rsi, er = RSI(period), EfficiencyRatio(period)
    for x in xs:
        r, e = rsi.update(x), er.update(x)
        assert r is None or 0.0 <= r <= 100.0
        assert e is None or 0.0 <= e <= 1.0


@given(xs=prices, period=st.integers(1, 30))
def test_rolling_extremes_are_window_extremes(xs, period):
    mx, mn = RollingMax(period), RollingMin(period)
    for i, x in enumerate(xs):
        hi, lo = mx.update(x), mn.update(x)
        if i + 1 < period:
            assert hi is None and lo is None
        else:
            window = xs[i + 1 - period : i + 1]
            assert hi == max(window) and lo == min(window)


@settings(max_examples=4, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    period=st.integers(2, 300),
    level=st.sampled_from([0.0, 100.0, 1e4]),
    walk=st.booleans(),
)
def test_rolling_stats_drift_is_bounded_over_long_streams(seed, period, level, walk):
    """After 200k updates mean/std still match numpy on the last window to 1e-9 relative."""
    rng = np.random.default_rng(seed)
    steps = rng.standard_normal(200_000)
    data = level + (np.cumsum(steps) * 0.1 if walk else steps)
    rs = RollingStats(period)
    update = rs.update
    for x in data.tolist():
        update(x)
    window = data[-period:]
    assert math.isclose(rs.mean, float(np.mean(window)), rel_tol=1e-9, abs_tol=1e-9 * np.abs(window).max())
    assert math.isclose(rs.std, float(np.std(window, ddof=1)), rel_tol=1e-9)


# --- extreme values: any finite input (issue 5 B17) ---------------------------------------------
# Every finite float is accepted: no update or query raises, every output is finite or None, and
# nothing stays poisoned (windowed indicators recover exact values once the extremes have left).

MAX = sys.float_info.max
EXTREMES = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-8, 1.0, -1.0, 1e9, 1e15, 1e140, -1e150,
            1e155, 1e305, -1e305, MAX / 2, MAX, -MAX]
finite = st.one_of(st.sampled_from(EXTREMES), st.floats(allow_nan=False, allow_infinity=False))
# runs of one value (constant windows) and jumps between values of any size
runs = st.lists(st.tuples(finite, st.integers(1, 12)), min_size=1, max_size=30).map(
    lambda segments: [x for x, n in segments for _ in range(n)])
ordinary = st.lists(st.integers(-10**6, 10**6).map(float), min_size=1, max_size=40)


def finite_or_none(x) -> bool:
    return x is None or (isinstance(x, float) and math.isfinite(x))


def outputs(indicator, probe: float) -> list:
    """Every query an indicator answers, after an update."""
    out = [indicator.value]
    if isinstance(indicator, RollingStats):
        out += [indicator.mean, indicator.variance, indicator.std, indicator.zscore(probe), indicator.zscore(-probe)]
    elif isinstance(indicator, MACD):
        out += [indicator.macd, indicator.signal, indicator.histogram]
    elif isinstance(indicator, Bollinger):
        out += [indicator.percent_b, indicator.middle, indicator.upper, indicator.lower]
    return out


ALL = [SMA, EMA, RSI, lambda p: RollingStats(p + 1), lambda p: RollingStats(p, ddof=0),
       lambda p: MACD(p, p + 2, p), Bollinger, EfficiencyRatio, RollingMax, RollingMin]
ALL_IDS = ["SMA", "EMA", "RSI", "RollingStats", "RollingStats0", "MACD", "Bollinger", "EfficiencyRatio",
           "RollingMax", "RollingMin"]


@pytest.mark.parametrize("make", ALL, ids=ALL_IDS)
@settings(max_examples=150, deadline=None)
@given(xs=runs, period=st.integers(1, 8), probe=finite)
def test_any_finite_input_gives_finite_outputs(make, xs, period, probe):
    indicator = make(period)
    for x in xs:
        v = indicator.update(x)
        assert finite_or_none(v), (x, v)
        assert all(finite_or_none(o) for o in outputs(indicator, probe)), (x, outputs(indicator, probe))


@settings(max_examples=150, deadline=None)
@given(bars=st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=120), period=st.integers(1, 8))
def test_atr_of_any_finite_bars_is_finite(bars, period):
    atr = ATR(period)
    for a, b, c in bars:
        v = atr.update(max(a, b, c), min(a, b, c), c)
        assert finite_or_none(v) and (v is None or v >= 0.0), v


WINDOWED = [SMA, lambda p: RollingStats(p + 1), lambda p: RollingStats(p, ddof=0), EfficiencyRatio, RollingMax,
            RollingMin, Bollinger]
WINDOWED_IDS = ["SMA", "RollingStats", "RollingStats0", "EfficiencyRatio", "RollingMax", "RollingMin", "Bollinger"]


@pytest.mark.parametrize("make", WINDOWED, ids=WINDOWED_IDS)
@settings(max_examples=100, deadline=None)
@given(xs=runs, tail=ordinary, period=st.integers(1, 8))
def test_windowed_indicators_recover_once_extremes_leave(make, xs, tail, period):
    """After two windows of ordinary values the state equals a fresh indicator's: nothing sticks."""
    healed, fresh = make(period), make(period)
    for x in xs:
        healed.update(x)
    n = healed.period
    tail = (tail * (2 * n + 2))[: 2 * n + 2]  # at least two whole windows
    for x in tail:
        healed.update(x)
        fresh.update(x)
    if isinstance(healed, RollingStats):
        scale = max(map(abs, tail[-n:])) + 1.0
        assert healed.mean == pytest.approx(fresh.mean, rel=1e-9, abs=1e-9 * scale)
        assert healed.std == pytest.approx(fresh.std, rel=1e-6, abs=1e-6 * scale)
    elif isinstance(healed, Bollinger):
        assert healed.middle == pytest.approx(fresh.middle, rel=1e-9, abs=1e-9)
    else:  # integer-valued data: the running sums are exact, so the values must be identical
        assert healed.value == fresh.value


@settings(max_examples=30, deadline=None)
@given(xs=runs, period=st.integers(1, 8))
def test_recursive_indicators_forget_extremes(xs, period):
    """EMA, RSI and MACD weigh their past with geometrically decaying weights: after any finite
    input, a long enough stretch of ordinary prices brings them to a fresh indicator's values. A NaN
    or inf in their state would stick forever (an RSI stuck at 50, an EMA at NaN)."""
    ramp = [float(i) for i in range(1, 750 * (period + 3))]  # (1 - alpha) ** len(ramp) < 1e-320
    healed = (EMA(period), RSI(period), MACD(period, period + 2, period))
    fresh = (EMA(period), RSI(period), MACD(period, period + 2, period))
    for x in xs:
        for ind in healed:
            assert finite_or_none(ind.update(x))
    for x in ramp:
        for h, f in zip(healed, fresh):
            assert finite_or_none(h.update(x))
            f.update(x)
    for h, f in zip(healed, fresh):
        assert h.value == pytest.approx(f.value, rel=1e-9, abs=1e-9), type(h).__name__
