"""learning.features: values against pandas, warm-up, fresh dicts, validation.

Duplicate and out-of-order bars are the engine's to drop (core.bars gate); the features no longer
check them, so there is no component-level duplicate test here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from core.events import Bar
from core.indicators import MACD, RSI, Bollinger
from learning.features import FeatureConfig, StreamingFeatures

SPY = Path(__file__).resolve().parents[2] / "data" / "us_equity_1hour_adjusted" / "SPY.csv.gz"
HOUR = 3_600_000_000_000


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """2000 SPY hourly bars if bundled, else a seeded random walk."""
    if SPY.exists():
        return pd.read_csv(SPY, nrows=2000)[["open", "high", "low", "close", "volume"]].astype(float)
    rng = np.random.default_rng(11)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, 2000)))
    return pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
         "volume": rng.integers(1_000, 100_000, 2000).astype(float)}
    )


def to_bars(df: pd.DataFrame, symbol: str = "SPY") -> list[Bar]:
    return [
        Bar(symbol, i * HOUR, (i + 1) * HOUR, o, h, lo, c, v)
        for i, (o, h, lo, c, v) in enumerate(df[["open", "high", "low", "close", "volume"]].itertuples(index=False))
    ]


def test_feature_names_and_order():
    f = StreamingFeatures()
    assert f.feature_names == ("ret_1", "ret_5", "ret_20", "rsi", "macd_hist", "bb_pct_b", "volume_z", "realized_vol")
    custom = StreamingFeatures(FeatureConfig(return_horizons=(3, 2)))
    assert custom.feature_names[:2] == ("ret_3", "ret_2")


def test_none_until_every_feature_is_warm(frame):
    f = StreamingFeatures()
    out = [f.update(b) for b in to_bars(frame)[:60]]
    warm = FeatureConfig().warmup_bars
    assert warm == 26 + 9 - 1  # MACD is the slowest with the defaults
    assert all(o is None for o in out[: warm - 1])
    assert all(o is not None for o in out[warm - 1 :])
    assert list(out[warm - 1]) == list(f.feature_names)
    assert f.ready and f.bars_seen == 60


def test_values_match_pandas_reference(frame):
    bars = to_bars(frame)
    f = StreamingFeatures()
    rows = [f.update(b) for b in bars]
    warm = f.config.warmup_bars - 1
    got = pd.DataFrame(rows[warm:], index=range(warm, len(rows)))
    c, v = frame.close, frame.volume
    ref = pd.DataFrame(
        {
            "ret_1": c.pct_change(1),
            "ret_5": c.pct_change(5),
            "ret_20": c.pct_change(20),
            "realized_vol": np.log(c).diff().rolling(20).std(ddof=1),
            "volume_z": (v - v.rolling(20).mean()) / v.rolling(20).std(ddof=1),
        }
    ).iloc[warm:]
    for col in ref:
        np.testing.assert_allclose(got[col], ref[col], rtol=1e-8, atol=1e-10, err_msg=col)
    # indicator features equal the (pandas-validated) core indicators fed the same closes
    rsi, macd, bb = RSI(14), MACD(12, 26, 9), Bollinger(20, 2.0)
    expected = [(rsi.update(x), macd.update(x), bb.update(x)) for x in c]
    np.testing.assert_array_equal(got[["rsi", "macd_hist", "bb_pct_b"]].to_numpy(), np.array(expected[warm:], dtype=float))
    assert ((got.rsi >= 0) & (got.rsi <= 100)).all()
    assert (got.realized_vol > 0).all()


def test_returns_a_new_dict_each_bar(frame):
    f = StreamingFeatures()
    bars = to_bars(frame)[:50]
    outs = [f.update(b) for b in bars]
    a, b = outs[-2], outs[-1]
    assert a is not b
    snapshot = dict(b)
    a.clear()
    a["junk"] = 1.0
    g = StreamingFeatures()
    assert [g.update(x) for x in bars][-1] == snapshot == b


def test_reset_restarts_from_scratch(frame):
    bars = to_bars(frame)[:50]
    f = StreamingFeatures()
    first = [f.update(b) for b in bars]
    f.reset()
    assert not f.ready and f.bars_seen == 0
    assert [f.update(b) for b in bars] == first


def test_flat_volume_gives_zero_z():
    f = StreamingFeatures()
    closes = 100 + np.sin(np.arange(60))
    out = [f.update(Bar("X", i, i + 1, c, c, c, c, 500.0)) for i, c in enumerate(closes)]
    assert out[-1]["volume_z"] == 0.0


@pytest.mark.parametrize("close", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_close_raises(close):
    with pytest.raises(ValueError, match="close"):
        StreamingFeatures().update(Bar("X", 0, 1, 1.0, 1.0, 1.0, close, 1.0))


def test_negative_volume_raises():
    with pytest.raises(ValueError, match="volume"):
        StreamingFeatures().update(Bar("X", 0, 1, 1.0, 1.0, 1.0, 1.0, -5.0))


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"rsi_period": 0}, "rsi_period"),
        ({"return_horizons": ()}, "return_horizons"),
        ({"return_horizons": (1, 0)}, "return_horizons"),
        ({"return_horizons": (5, 5)}, "return_horizons"),
        ({"macd_fast": 30}, "macd_fast"),
        ({"bollinger_k": 0.0}, "bollinger_k"),
        ({"bollinger_k": float("nan")}, "bollinger_k"),
        ({"volume_z_period": 1}, "volume_z_period"),
        ({"volatility_period": 1}, "volatility_period"),
        ({"rsi_periodd": 14}, "rsi_periodd"),
    ],
)
def test_config_validation_names_the_key(kwargs, key):
    with pytest.raises(ValidationError, match=key):
        FeatureConfig(**kwargs)


def test_config_is_frozen():
    cfg = FeatureConfig()
    with pytest.raises(ValidationError):
        cfg.rsi_period = 3  # type: ignore[misc]


def test_a_price_ratio_that_underflows_does_not_raise():
    """1e300 -> 1e-300 (beyond the bar gate): the log return is taken as a difference of logs."""
    cfg = FeatureConfig(return_horizons=(1,), rsi_period=1, macd_fast=1, macd_slow=2, macd_signal=1,
                        bollinger_period=1, volume_z_period=2, volatility_period=2)
    f = StreamingFeatures(cfg)
    out = [f.update(Bar("X", i, i + 1, c, c, c, c, 1.0)) for i, c in enumerate([1e300, 1e300, 1e-300])]
    assert out[-1]["ret_1"] == -1.0
    assert out[-1]["realized_vol"] == pytest.approx(np.std([0.0, -600 * np.log(10)], ddof=1))
