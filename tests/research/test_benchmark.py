"""Equal-weight buy-and-hold benchmark: allocation, late starters and no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.benchmark import buy_and_hold


def _idx(*stamps: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(list(stamps), tz="UTC")


def test_equal_weight_with_a_symbol_starting_later():
    index = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    closes = {
        "A": pd.Series([10.0, 20.0, 20.0, 10.0], index=index),
        "B": pd.Series([50.0, 100.0], index=index[2:]),  # first bar on day 3
    }
    bh = buy_and_hold(closes, 1000.0, index)
    # A: 500 USD -> 50 shares at 10; B: 500 USD cash until day 3, then 10 shares at 50
    assert bh.tolist() == pytest.approx([1000.0, 1500.0, 1500.0, 1500.0])
    assert bh.index.equals(index)


def test_values_use_last_close_at_or_before_each_timestamp():
    index = _idx("2024-01-01 10:00", "2024-01-01 11:00", "2024-01-01 12:00")
    close = pd.Series([100.0, 110.0, 120.0], index=_idx("2024-01-01 10:00", "2024-01-01 10:30", "2024-01-01 12:00"))
    bh = buy_and_hold({"A": close}, 1000.0, index)
    # 10:00 buys 10 shares at 100; 11:00 sees the 10:30 close (110); 12:00 sees 120 stamped exactly at 12:00
    assert bh.tolist() == pytest.approx([1000.0, 1100.0, 1200.0])


def test_no_look_ahead_against_truncated_history():
    rng = np.random.default_rng(7)
    stamps = pd.date_range("2024-01-01", periods=300, freq="7min", tz="UTC")
    closes = {
        "A": pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300))), index=stamps),
        "B": pd.Series(20 * np.exp(np.cumsum(rng.normal(0, 0.01, 200))), index=stamps[100:] + pd.Timedelta("3min")),
    }
    index = pd.date_range("2024-01-01", periods=150, freq="13min", tz="UTC")
    full = buy_and_hold(closes, 10_000.0, index)
    for i in range(0, len(index), 7):
        t = index[i]
        known = {s: c[c.index <= t] for s, c in closes.items()}
        partial = buy_and_hold(known, 10_000.0, index[: i + 1])
        assert partial.iloc[-1] == pytest.approx(full.iloc[i])


def test_warm_up_closes_before_the_index_are_not_the_entry_price():
    close = pd.Series([50.0, 100.0, 200.0], index=_idx("2023-12-30", "2023-12-31", "2024-01-02"))
    index = _idx("2024-01-01", "2024-01-02")
    bh = buy_and_hold({"A": close}, 1000.0, index)
    assert bh.tolist() == pytest.approx([1000.0, 2000.0])  # bought at 100 (known on Jan 1), not at 50


def test_symbol_without_data_in_range_stays_cash_and_nan_closes_are_ignored():
    index = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    closes = {
        "A": pd.Series([10.0, np.nan, 30.0], index=index),
        "B": pd.Series([5.0], index=_idx("2024-02-01")),
    }
    bh = buy_and_hold(closes, 200.0, index)
    assert bh.tolist() == pytest.approx([200.0, 200.0, 400.0])


def test_inputs_are_not_mutated():
    index = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    close = pd.Series([3.0, 1.0, 2.0], index=index[::-1])  # unsorted input is tolerated
    before = close.copy()
    bh = buy_and_hold({"A": close}, 90.0, index)
    pd.testing.assert_series_equal(close, before)
    assert bh.tolist() == pytest.approx([90.0, 45.0, 135.0])  # sorted: 2, 1, 3


@pytest.mark.parametrize(
    ("closes", "cash", "index", "message"),
    [
        ({}, 100.0, pd.date_range("2024-01-01", periods=2, tz="UTC"), "empty"),
        ({"A": pd.Series([1.0], index=_idx("2024-01-01"))}, 0.0, _idx("2024-01-01"), "positive"),
        ({"A": pd.Series([1.0], index=_idx("2024-01-01"))}, 100.0, pd.DatetimeIndex(["2024-01-01"]), "timezone"),
        ({"A": pd.Series([1.0], index=pd.DatetimeIndex(["2024-01-01"]))}, 100.0, _idx("2024-01-01"), "timezone"),
        ({"A": pd.Series([-1.0], index=_idx("2024-01-01"))}, 100.0, _idx("2024-01-01"), "non-positive"),
        ({"A": pd.Series([1.0], index=_idx("2024-01-01"))}, 100.0, _idx("2024-01-02", "2024-01-01"), "sorted"),
    ],
)
def test_invalid_inputs_raise(closes, cash, index, message):
    with pytest.raises(ValueError, match=message):
        buy_and_hold(closes, cash, index)
