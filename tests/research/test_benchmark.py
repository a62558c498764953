"""Benchmarks: equal-weight buy-and-hold (allocation, late starters, no look-ahead), monthly
rebalanced equal weight, single-symbol buy-and-hold, the name rules and the benchmark's real exposure."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from backtest.sources import load_bars
from research.benchmark import (BenchmarkError, benchmark_curve, build_benchmark, buy_and_hold, equal_weight_monthly,
                                resolve_benchmark)
from research.output import summarize
from tests.support import DATA, replay


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


# --- equal weight rebalanced monthly -----------------------------------------------------------------


def test_monthly_rebalance_resets_to_equal_weights_at_the_first_bar_of_each_month():
    index = _idx("2024-01-30", "2024-01-31", "2024-02-01", "2024-02-02", "2024-03-01")
    closes = {"A": pd.Series([10.0, 20.0, 20.0, 40.0, 40.0], index=index),
              "B": pd.Series([10.0, 10.0, 10.0, 10.0, 5.0], index=index)}
    ew = equal_weight_monthly(closes, 100.0, index)
    # Jan 30: 5 + 5 shares; Jan 31: A doubled -> 150; Feb 1: 75/75 -> 3.75 A + 7.5 B; Feb 2: A doubles -> 225;
    # Mar 1: B halves before the rebalance: 3.75 * 40 + 7.5 * 5 = 187.5
    assert ew.tolist() == pytest.approx([100.0, 150.0, 150.0, 225.0, 187.5])
    # never rebalanced, the same prices give a different path (A keeps its 5 shares)
    assert buy_and_hold(closes, 100.0, index).tolist() == pytest.approx([100.0, 150.0, 150.0, 250.0, 225.0])


def test_monthly_rebalance_lets_a_late_symbol_join_at_the_next_month():
    index = pd.DatetimeIndex(["2024-01-15", "2024-01-20", "2024-02-01", "2024-02-10"], tz="UTC")
    closes = {"A": pd.Series([10.0, 10.0, 10.0, 10.0], index=index),
              "B": pd.Series([10.0, 10.0, 20.0], index=index[1:])}  # starts mid-January
    curve = benchmark_curve("equal_weight", closes, 100.0, index)
    assert curve is not None
    # all in A until Feb 1 (B is not bought mid-month), then 50/50; B doubles on Feb 10 -> 150
    assert curve.equity.tolist() == pytest.approx([100.0, 100.0, 100.0, 150.0])
    assert curve.exposure.tolist() == pytest.approx([1.0, 1.0, 1.0, 1.0])


def test_monthly_rebalance_is_cash_until_a_price_is_known_and_never_looks_ahead():
    rng = np.random.default_rng(3)
    stamps = pd.date_range("2024-01-01", periods=400, freq="6h", tz="UTC")
    closes = {"A": pd.Series(50 * np.exp(np.cumsum(rng.normal(0, 0.01, 380))), index=stamps[20:]),
              "B": pd.Series(20 * np.exp(np.cumsum(rng.normal(0, 0.01, 250))), index=stamps[150:])}
    index = pd.date_range("2023-12-30", periods=120, freq="19h", tz="UTC")
    full = equal_weight_monthly(closes, 1000.0, index)
    assert full.iloc[0] == 1000.0  # no price known yet: cash
    for i in range(0, len(index), 9):
        known = {s: c[c.index <= index[i]] for s, c in closes.items()}
        known = {s: c for s, c in known.items() if len(c)} or {"A": closes["A"].iloc[:0]}
        partial = equal_weight_monthly(known, 1000.0, index[: i + 1])
        assert partial.iloc[-1] == pytest.approx(full.iloc[i])


# --- names, labels, errors ------------------------------------------------------------------------


def test_default_is_spy_when_present_else_equal_weight_and_names_are_case_insensitive():
    assert resolve_benchmark(None, ["AAPL", "SPY"]) == "SPY"
    assert resolve_benchmark("auto", ["AAPL", "IBM"]) == "equal_weight"
    assert resolve_benchmark("Spy", ["AAPL", "SPY"]) == "SPY"
    assert resolve_benchmark("ibm", ["AAPL", "IBM"]) == "IBM"
    assert resolve_benchmark("EQUAL_WEIGHT_HOLD", ["AAPL"]) == "equal_weight_hold"
    assert resolve_benchmark("none", ["AAPL"]) == "none"


@pytest.mark.parametrize(("name", "symbols"), [("spy", ["AAPL", "IBM"]), ("equal_wieght", ["SPY"]), ("", ["X"])])
def test_unknown_name_or_symbol_not_in_the_data_is_a_clear_error(name, symbols):
    if name == "":  # empty means the default, never an error
        assert resolve_benchmark(name, symbols) == "equal_weight"
        return
    with pytest.raises(BenchmarkError) as info:
        resolve_benchmark(name, symbols)
    message = str(info.value)
    assert repr(name) in message and ", ".join(symbols) in message
    for choice in ("equal_weight", "equal_weight_hold", "none"):
        assert choice in message
    assert isinstance(info.value, ValueError)


def test_build_benchmark_returns_equity_and_label():
    index = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    closes = {"SPY": pd.Series([100.0, 110.0, 121.0], index=index), "A": pd.Series([1.0, 1.0, 4.0], index=index)}
    equity, label = build_benchmark(None, closes, 1000.0, index)
    assert label == "SPY buy & hold" and equity is not None
    assert equity.tolist() == pytest.approx([1000.0, 1100.0, 1210.0])
    equity, label = build_benchmark("equal_weight_hold", closes, 1000.0, index)
    assert label == "Equal weight buy & hold" and equity is not None
    assert equity.tolist() == pytest.approx(buy_and_hold(closes, 1000.0, index).tolist())
    assert build_benchmark("none", closes, 1000.0, index) == (None, "none")
    with pytest.raises(BenchmarkError):
        build_benchmark("QQQ", closes, 1000.0, index)


# --- the benchmark's exposure (issue 5 B11) ---------------------------------------------------------


def test_exposure_counts_cash_waiting_for_a_later_symbol():
    index = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    closes = {"A": pd.Series([10.0, 20.0, 20.0, 10.0], index=index), "B": pd.Series([50.0, 100.0], index=index[2:])}
    hold = benchmark_curve("equal_weight_hold", closes, 1000.0, index)
    assert hold is not None
    # A's 500 USD invested from day 1; B's 500 USD cash until day 3
    assert hold.exposure.tolist() == pytest.approx([0.5, 1000 / 1500, 1.0, 1.0])
    single = benchmark_curve("B", closes, 1000.0, index)
    assert single is not None
    assert single.exposure.tolist() == [0.0, 0.0, 1.0, 1.0]
    assert single.equity.tolist() == pytest.approx([1000.0, 1000.0, 1000.0, 2000.0])


@pytest.fixture(scope="module")
def spy_and_late_bac():
    """SPY from 1998-01 and BAC, whose bundled data start in 1998-10 (real data)."""
    start, end = datetime(1998, 1, 1, tzinfo=timezone.utc), datetime(1999, 7, 1, tzinfo=timezone.utc)
    series = [load_bars(DATA / f"{sym}.csv.gz", start=start, end=end) for sym in ("SPY", "BAC")]
    assert pd.Timestamp(int(series[1].ts_event[0]), unit="ns", tz="UTC") >= pd.Timestamp("1998-10-01", tz="UTC")
    result, _, _ = replay(series, "sma_cross")
    return result


def test_benchmark_metrics_use_the_real_exposure_when_a_symbol_starts_later(spy_and_late_bac):
    result = spy_and_late_bac
    index = pd.DatetimeIndex(pd.to_datetime(result.equity_ts, unit="ns", utc=True))
    # independent recomputation: closes (stamped at bar end) forward-filled onto the equity index
    known = {s: pd.Series(c, index=pd.to_datetime(t, unit="ns", utc=True)).reindex(index, method="ffill")
             for s, (t, c) in result.closes.items()}
    spy, bac = known["SPY"].to_numpy(), known["BAC"].to_numpy()
    started = ~np.isnan(bac)
    assert 0.3 < started.mean() < 0.9  # BAC misses a good part of the run
    half = result.starting_cash / 2
    spy_value = half * spy / spy[0]
    bac_value = np.where(started, half * bac / bac[np.argmax(started)], 0.0)
    hold_exposure = (spy_value + bac_value) / (spy_value + bac_value + np.where(started, 0.0, half))
    for name, expected in (("equal_weight_hold", hold_exposure.mean()), ("BAC", started.mean())):
        summary = summarize(result, benchmark=name)
        assert summary.benchmark is not None
        # cash waiting for BAC is not invested: the benchmark's exposure is well below 1
        assert summary.benchmark.exposure == pytest.approx(expected, rel=1e-9)
        assert summary.benchmark.exposure < 0.9
    assert 0.45 < hold_exposure[~started].min() and hold_exposure[~started].max() < 0.6  # about half invested
    # SPY from the first bar and equal weight rebalanced monthly (fully in SPY until BAC joins) are invested throughout
    for name in ("SPY", "equal_weight"):
        summary = summarize(result, benchmark=name)
        assert summary.benchmark is not None and summary.benchmark.exposure == pytest.approx(1.0)


# --- block-at-a-time valuation --------------------------------------------------------------------
# The benchmarks are valued a block (or a month) of the index at a time so a 10M-bar index costs
# only the two result columns; the values must be exactly the whole-index definitions below.

def _whole_asof(close: pd.Series, index: pd.DatetimeIndex) -> np.ndarray:
    clean = close.astype(float).dropna().sort_index(kind="stable")
    pos = pd.DatetimeIndex(clean.index).tz_convert("UTC").searchsorted(index, side="right") - 1
    out = np.full(len(index), np.nan)
    out[pos >= 0] = clean.to_numpy()[pos[pos >= 0]]
    return out


def _whole_hold(closes, cash, index):
    allocation = cash / len(closes)
    total, invested = np.zeros(len(index)), np.zeros(len(index))
    for close in closes.values():
        prices = _whole_asof(close, index)
        known = np.flatnonzero(~np.isnan(prices))
        value = np.full(len(index), allocation)
        if len(known):
            value[known[0]:] = allocation / prices[known[0]] * prices[known[0]:]
            invested[known[0]:] += value[known[0]:]
        total += value
    return total, invested


def _whole_monthly(closes, cash, index):
    prices = np.column_stack([_whole_asof(c, index) for c in closes.values()])
    month = index.year.to_numpy() * 12 + index.month.to_numpy()
    starts = np.concatenate(([0], np.flatnonzero(np.diff(month) != 0) + 1, [len(index)]))
    value, invested = np.empty(len(index)), np.zeros(len(index))
    shares = np.zeros(prices.shape[1])
    for begin, stop in zip(starts[:-1], starts[1:]):
        held = shares > 0
        wealth = cash + float(shares[held] @ prices[begin, held])
        known = ~np.isnan(prices[begin])
        shares = np.zeros(prices.shape[1])
        if not known.any():
            cash, value[begin:stop] = wealth, wealth
            continue
        cash = 0.0
        shares[known] = wealth / int(known.sum()) / prices[begin, known]
        value[begin:stop] = invested[begin:stop] = prices[begin:stop][:, known] @ shares[known]
    return value, invested


def _random_benchmark_inputs(seed: int):
    """An index (various units, spacings, some duplicate stamps) and 1-3 closes each either on
    exactly that index, on a part of it, or on their own New York stamps with a NaN."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    step = int(rng.choice([60, 3600, 86400, 5 * 86400]))
    seconds = 1_577_889_000 + int(rng.integers(-10**8, 10**8)) + np.cumsum(rng.integers(1, 3, n)) * step
    if seed % 7 == 3:
        seconds = np.sort(np.concatenate([seconds[: n // 2], seconds[: n // 3]]))[:n]
    unit = ("s", "us", "ns")[seed % 3]
    index = pd.DatetimeIndex((seconds * {"s": 1, "us": 10**6, "ns": 10**9}[unit]).view(f"M8[{unit}]")).tz_localize("UTC")
    closes = {}
    for j in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 4))
        if kind == 2:
            own = np.sort(rng.choice(np.arange(seconds[0] - 5 * step, seconds[-1] + 5 * step, step), int(rng.integers(1, n + 5))))
            where = pd.DatetimeIndex((own * 10**9).view("M8[ns]")).tz_localize("UTC").tz_convert("America/New_York")
        else:
            where = {0: index, 1: index[int(rng.integers(0, n // 2 + 1)):], 3: index[: max(1, n // 3)]}[kind]
        values = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, len(where))))
        if kind == 2 and len(values) > 3:
            values[1] = np.nan
        closes[f"S{j}"] = pd.Series(values, index=where)
    return index, closes, float(rng.choice([1000.0, 100_000.0, 12_345.678]))


@pytest.mark.parametrize("block", [1, 3, 50, 1 << 16])
def test_benchmarks_valued_a_block_at_a_time_equal_the_whole_index_definitions(block, monkeypatch):
    import research.benchmark as benchmark

    monkeypatch.setattr(benchmark, "BLOCK", block)
    for seed in range(30):
        index, closes, cash = _random_benchmark_inputs(seed)
        utc = index.tz_convert("UTC")
        for name, (value, invested) in [("equal_weight", _whole_monthly(closes, cash, utc)),
                                        ("equal_weight_hold", _whole_hold(closes, cash, utc)),
                                        *((s, _whole_hold({s: closes[s]}, cash, utc)) for s in closes)]:
            curve = benchmark_curve(name, closes, cash, index)
            assert curve is not None
            np.testing.assert_array_equal(curve.equity.to_numpy(), value, err_msg=f"{name} seed {seed}")
            exposure = np.divide(invested, value, out=np.zeros_like(value), where=value > 0)
            np.testing.assert_array_equal(curve.exposure.to_numpy(), exposure, err_msg=f"{name} seed {seed}")
            assert curve.equity.index is index and curve.exposure.index is index


def test_a_long_benchmark_allocates_only_its_two_columns():
    import tracemalloc

    from research.metrics import BLOCK

    n = 600_000
    rng = np.random.default_rng(2)
    index = pd.DatetimeIndex(1_577_889_000_000_000_000 + np.arange(n, dtype=np.int64) * 60_000_000_000,
                             dtype="datetime64[ns, UTC]")
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), index=index, copy=False)
    for name, closes in [("SPY", {"SPY": close}), ("equal_weight", {"SPY": close}),
                         ("equal_weight", {"SPY": close, "LATE": close.iloc[n // 2::3]})]:
        tracemalloc.start()
        try:
            curve = benchmark_curve(name, closes, 1e5, index)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        # equity and exposure (16 bytes a point), a few blocks, and one month of the closes
        assert peak < 16 * n + 8 * BLOCK * 8 + 2 * 44_640 * 8 * len(closes), (name, len(closes))
        assert curve is not None and len(curve.equity) == n
