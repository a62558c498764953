"""Hand-computed checks of research.metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from research.metrics import PerformanceMetrics, compute_metrics, drawdown_series, monthly_returns

TRADE_COLUMNS = ["symbol", "side", "quantity", "entry_time", "exit_time", "entry_price", "exit_price",
                 "pnl", "commission", "exit_reason"]


def _series(values, start="2024-01-01", freq="h", tz="UTC") -> pd.Series:
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq=freq, tz=tz), dtype=float)


def _trades(pnls) -> pd.DataFrame:
    n = len(pnls)
    t = pd.Timestamp("2024-01-01", tz="UTC")
    return pd.DataFrame({
        "symbol": ["AAA"] * n, "side": ["buy"] * n, "quantity": [10.0] * n,
        "entry_time": [t] * n, "exit_time": [t + pd.Timedelta(hours=1)] * n,
        "entry_price": [100.0] * n, "exit_price": [100.0] * n, "pnl": list(map(float, pnls)),
        "commission": [0.0] * n, "exit_reason": ["signal"] * n,
    }, columns=TRADE_COLUMNS)


def test_hand_example_returns_and_drawdown():
    m = compute_metrics(_series([100, 110, 99, 121]))
    assert m.total_return == pytest.approx(0.21)
    assert m.max_drawdown == pytest.approx(0.10)
    # peak at t1 (110), regained at t3 (121): two hours under water
    assert m.max_drawdown_duration == pd.Timedelta(hours=2)
    assert m.starting_equity == 100.0 and m.ending_equity == 121.0
    assert m.start == pd.Timestamp("2024-01-01 00:00", tz="UTC")
    assert m.end == pd.Timestamp("2024-01-01 03:00", tz="UTC")


def test_drawdown_duration_longest_and_unrecovered():
    # spells: t0..t2 (2h), t3..t6 (3h) -> longest 3h
    m = compute_metrics(_series([100, 90, 100, 110, 100, 105, 111]))
    assert m.max_drawdown_duration == pd.Timedelta(hours=3)
    # peak at day 1, never regained: until the end (day 4) -> 3 days
    m = compute_metrics(_series([100, 120, 90, 100, 110], freq="D"))
    assert m.max_drawdown_duration == pd.Timedelta(days=3)
    assert m.max_drawdown == pytest.approx(0.25)
    # equal to the old peak counts as regained
    m = compute_metrics(_series([100, 120, 90, 120, 80], freq="D"))
    assert m.max_drawdown_duration == pd.Timedelta(days=2)


def test_drawdown_series_values():
    dd = drawdown_series(_series([100, 110, 99, 121, 108.9]))
    np.testing.assert_allclose(dd.to_numpy(), [0.0, 0.0, -0.1, 0.0, -0.1])
    assert (dd <= 0).all()


def test_daily_statistics_match_independent_numpy():
    r = np.array([0.01, -0.02, 0.03, 0.005, -0.01, 0.02, -0.004, 0.0, 0.012, -0.007])
    equity = _series(100.0 * np.cumprod(np.concatenate(([1.0], 1.0 + r))), freq="D")
    m = compute_metrics(equity)
    days = len(r)  # span in days, one point per calendar day
    ppy = len(r) / (days / 365.25)
    assert m.periods_per_year == pytest.approx(ppy)
    mean, std = r.sum() / len(r), math.sqrt(((r - r.sum() / len(r)) ** 2).sum() / (len(r) - 1))
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / len(r))
    assert m.volatility == pytest.approx(std * math.sqrt(ppy))
    assert m.sharpe == pytest.approx(mean / std * math.sqrt(ppy))
    assert m.sortino == pytest.approx(mean / downside * math.sqrt(ppy))
    growth = equity.iloc[-1] / equity.iloc[0]
    cagr = growth ** (365.25 / days) - 1
    assert m.cagr == pytest.approx(cagr)
    peak, worst = 0.0, 0.0
    for v in equity:
        peak = max(peak, v)
        worst = max(worst, 1 - v / peak)
    assert m.max_drawdown == pytest.approx(worst)
    assert m.calmar == pytest.approx(cagr / worst)


def test_risk_free_rate_is_subtracted_per_period():
    r = np.array([0.01, -0.02, 0.03, 0.005, -0.01])
    equity = _series(100.0 * np.cumprod(np.concatenate(([1.0], 1.0 + r))), freq="D")
    m = compute_metrics(equity, risk_free_rate=0.05)
    rf = 1.05 ** (1 / m.periods_per_year) - 1
    ex = r - rf
    assert m.sharpe == pytest.approx(ex.mean() / ex.std(ddof=1) * math.sqrt(m.periods_per_year))
    assert m.sortino == pytest.approx(
        ex.mean() / math.sqrt(np.mean(np.minimum(ex, 0) ** 2)) * math.sqrt(m.periods_per_year))


def test_intraday_equity_is_reduced_to_last_value_per_utc_day():
    rng = np.random.default_rng(1)
    idx = pd.date_range("2024-03-04 14:30", "2024-03-08 21:00", freq="30min", tz="UTC")
    idx = idx[(idx.hour >= 14) & (idx.hour <= 20)]  # session-only bars, overnight gaps
    equity = pd.Series(1000 * np.exp(np.cumsum(rng.normal(0, 0.002, len(idx)))), index=idx)
    m = compute_metrics(equity)
    day_end = [equity[equity.index.date == d].iloc[-1] for d in sorted(set(equity.index.date))]
    r = np.diff(day_end) / np.array(day_end[:-1])
    years = (idx[-1] - idx[0]) / pd.Timedelta(days=365.25)
    assert m.periods_per_year == pytest.approx(len(r) / years)
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(len(r) / years))


def test_periods_per_year_inferred_for_weekdays_and_24_7():
    weekdays = pd.Series(100.0 + np.arange(783.0), index=pd.bdate_range("2021-01-01", periods=783, tz="UTC"))
    assert 255 < compute_metrics(weekdays).periods_per_year < 265  # no holidays: ~261
    crypto = pd.Series(100.0 + np.arange(731.0), index=pd.date_range("2021-01-01", periods=731, tz="UTC"))
    assert compute_metrics(crypto).periods_per_year == pytest.approx(365.25)
    one_day = _series(np.linspace(100, 101, 20), freq="min")
    m = compute_metrics(one_day)
    assert m.periods_per_year == 252.0
    assert m.sharpe is None and m.volatility is None


def test_flat_equity_is_degenerate_not_a_crash():
    m = compute_metrics(_series([100.0] * 10, freq="D"))
    assert m.total_return == 0.0 and m.cagr == 0.0
    assert m.volatility == 0.0
    assert m.sharpe is None and m.sortino is None and m.calmar is None
    assert m.max_drawdown == 0.0 and m.max_drawdown_duration == pd.Timedelta(0)


def test_constant_positive_return_has_no_sharpe_sortino_or_calmar():
    m = compute_metrics(_series(100.0 * 1.01 ** np.arange(30), freq="D"))
    assert m.total_return == pytest.approx(1.01 ** 29 - 1)
    assert m.sharpe is None and m.sortino is None and m.calmar is None
    assert json.dumps(m.to_dict(), allow_nan=False)


def test_single_point():
    m = compute_metrics(_series([100.0]))
    assert m.total_return == 0.0 and m.cagr is None and m.max_drawdown == 0.0
    assert m.turnover is None


def test_trade_statistics_from_four_trades():
    m = compute_metrics(_series([100, 101, 102]), trades=_trades([100, -50, 200, -25]))
    assert m.trades == 4
    assert m.win_rate == pytest.approx(0.5)
    assert m.profit_factor == pytest.approx(300 / 75)
    assert m.expectancy == pytest.approx(56.25)


def test_trade_statistics_edge_cases():
    equity = _series([100, 101, 102])
    empty = compute_metrics(equity, trades=_trades([]))
    assert (empty.trades, empty.win_rate, empty.profit_factor, empty.expectancy) == (0, None, None, None)
    none = compute_metrics(equity)
    assert (none.trades, none.win_rate, none.profit_factor, none.expectancy) == (0, None, None, None)
    winners = compute_metrics(equity, trades=_trades([10, 20]))
    assert winners.profit_factor == math.inf
    assert winners.to_dict()["profit_factor"] is None
    flat = compute_metrics(equity, trades=_trades([0.0, 0.0]))
    assert flat.win_rate == 0.0 and flat.profit_factor is None and flat.expectancy == 0.0
    losers = compute_metrics(equity, trades=_trades([-10]))
    assert losers.profit_factor == 0.0 and losers.win_rate == 0.0


def test_turnover_and_exposure():
    idx = pd.DatetimeIndex(["2023-01-01", "2024-01-01 06:00"], tz="UTC")  # 365.25 days = 1 year
    equity = pd.Series([1000.0, 1000.0], index=idx)
    fills = pd.DataFrame({"time": idx, "symbol": ["A", "A"], "side": ["buy", "sell"],
                          "quantity": [10.0, 10.0], "price": [100.0, 110.0], "commission": [0.0, 0.0]})
    m = compute_metrics(equity, fills=fills, exposure=pd.Series([0.5, 1.5], index=idx))
    assert m.turnover == pytest.approx(2100 / 1000 / 1.0)
    assert m.exposure == pytest.approx(1.0)
    trades = _trades([5.0])
    trades["exit_price"] = 110.0
    assert compute_metrics(equity, trades=trades).turnover == pytest.approx(2.1)
    assert compute_metrics(equity, fills=fills.iloc[:0]).turnover == 0.0
    assert compute_metrics(equity).turnover is None and compute_metrics(equity).exposure is None


@pytest.mark.parametrize(
    ("equity", "message"),
    [
        (pd.Series([], dtype=float, index=pd.DatetimeIndex([], tz="UTC")), "empty"),
        (pd.Series([100.0, 101.0], index=pd.date_range("2024-01-01", periods=2, freq="D")), "naive"),
        (pd.Series([100.0, 101.0], index=pd.DatetimeIndex(["2024-01-02", "2024-01-01"], tz="UTC")), "increasing"),
        (pd.Series([100.0, 101.0], index=pd.DatetimeIndex(["2024-01-01", "2024-01-01"], tz="UTC")), "increasing"),
        (_series([0.0, 100.0]), "positive"),
        (_series([-5.0, 100.0]), "positive"),
        (_series([100.0, float("nan")]), "NaN"),
    ],
)
def test_invalid_equity_raises(equity, message):
    with pytest.raises(ValueError, match=message):
        compute_metrics(equity)
    with pytest.raises(ValueError, match=message):
        drawdown_series(equity)


def test_to_dict_is_json_safe():
    m = compute_metrics(_series([100, 110, 99, 121], freq="D"), trades=_trades([1.0, 2.0]))
    d = m.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["start"] == "2024-01-01T00:00:00+00:00"
    assert d["max_drawdown_duration_days"] == pytest.approx(2.0)
    assert isinstance(d["max_drawdown_duration"], str)
    assert d["trades"] == 2 and d["profit_factor"] is None
    assert set(d) >= {f for f in PerformanceMetrics.__dataclass_fields__}


def test_metrics_is_frozen_and_inputs_untouched():
    equity = _series([100, 110, 99, 121])
    before = equity.copy()
    m = compute_metrics(equity)
    pd.testing.assert_series_equal(equity, before)
    with pytest.raises(AttributeError):
        m.sharpe = 1.0  # type: ignore[misc]


def test_monthly_returns_across_year_boundary():
    idx = pd.DatetimeIndex(["2023-11-15", "2023-11-30", "2023-12-31 23:00", "2024-01-15", "2024-01-31",
                            "2024-03-31"], tz="UTC")
    equity = pd.Series([100.0, 110.0, 99.0, 99.0, 108.9, 114.345], index=idx)
    table = monthly_returns(equity)
    assert list(table.index) == [2023, 2024]
    assert list(table.columns) == list(range(1, 13))
    assert table.loc[2023, 11] == pytest.approx(0.10)  # from the first value
    assert table.loc[2023, 12] == pytest.approx(-0.10)
    assert table.loc[2024, 1] == pytest.approx(0.10)
    assert np.isnan(table.loc[2024, 2])  # no data in February
    assert table.loc[2024, 3] == pytest.approx(0.05)
    assert np.isnan(table.loc[2023, 1])
    compounded = np.nanprod(1.0 + table.to_numpy()) - 1.0
    assert compounded == pytest.approx(equity.iloc[-1] / equity.iloc[0] - 1.0)


def test_monthly_returns_use_utc_months():
    # 20:00 New York on Dec 31 is 01:00 UTC on Jan 1: it belongs to January
    idx = pd.DatetimeIndex(["2023-12-31 10:00", "2023-12-31 20:00"], tz="America/New_York")
    table = monthly_returns(pd.Series([100.0, 120.0], index=idx))
    assert table.loc[2023, 12] == pytest.approx(0.0)
    assert table.loc[2024, 1] == pytest.approx(0.20)


def test_to_dict_gives_the_drawdown_duration_in_seconds_and_days_and_as_text():
    m = compute_metrics(_series([100, 120, 90, 100, 110], freq="D"))  # under water from day 1 to the end
    d = m.to_dict()
    assert d["max_drawdown_duration_seconds"] == 3 * 86_400.0
    assert d["max_drawdown_duration_days"] == 3.0
    assert d["max_drawdown_duration"] == "3 days 00:00:00"
    assert json.loads(json.dumps(d, allow_nan=False))["max_drawdown_duration_seconds"] == 259_200.0


# --- the block-at-a-time passes over long curves ---------------------------------------------------
# compute_metrics, drawdown_series, the daily/monthly/yearly reductions and the worst drawdowns
# walk the full-resolution curve in blocks of research.metrics.BLOCK points, so a 10M-bar curve
# costs no curve-long temporaries. Their results must be exactly those of the whole-curve pandas
# definitions below, wherever the block boundaries fall.

def _whole_drawdown(values: pd.Series) -> pd.Series:
    return values / values.cummax() - 1.0


def _whole_duration(values: pd.Series) -> pd.Timedelta:
    arr, times = values.to_numpy(), values.index
    at_peak = arr >= np.maximum.accumulate(arr)
    peak_pos = np.maximum.accumulate(np.where(at_peak, np.arange(len(arr)), 0))
    longest = pd.Timedelta(0)
    recoveries = np.flatnonzero(at_peak[1:] & ~at_peak[:-1]) + 1
    if len(recoveries):
        longest = max(longest, (times[recoveries] - times[peak_pos[recoveries - 1]]).max())
    if not at_peak[-1]:
        longest = max(longest, times[-1] - times[peak_pos[-1]])
    return longest


def _whole_daily(values: pd.Series) -> pd.Series:
    return values.groupby(pd.DatetimeIndex(values.index).normalize()).last()


def _curves():
    """Random curves of every shape the passes branch on: trending, choppy integer steps (ties at
    the peak), flat, long unrecovered falls, plateaus; several index units and spacings, some
    before 1970, some spanning many days per point."""
    for seed in range(24):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(1, 700))
        kind = seed % 5
        if kind == 0:
            v = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        elif kind == 1:
            v = np.abs(100 + np.cumsum(rng.choice([-1.0, 0.0, 1.0], n))) + 1
        elif kind == 2:
            v = np.full(n, 100.0)
        elif kind == 3:
            v = np.maximum(100 + np.cumsum(rng.normal(-0.2, 1, n)), 1)
        else:
            v = np.repeat(100 * np.exp(np.cumsum(rng.normal(0, 0.02, n // 7 + 1))), 7)[:n]
        unit = ("s", "ms", "us", "ns")[seed % 4]
        step = int(rng.choice([60, 3600, 7 * 3600, 3 * 86400]))
        seconds = int(rng.integers(-10**9, 2 * 10**9)) + np.cumsum(rng.integers(1, 3, n)) * step
        scale = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
        index = pd.DatetimeIndex((seconds * scale).view(f"M8[{unit}]")).tz_localize("UTC")
        yield pd.Series(v, index=index.rename("time" if seed % 3 else None), name="equity" if seed % 2 else None)


@pytest.mark.parametrize("block", [1, 2, 7, 64, 1 << 16])
def test_block_passes_give_exactly_the_whole_curve_results(block, monkeypatch):
    import research.metrics as metrics
    import research.tearsheet as tearsheet

    monkeypatch.setattr(metrics, "BLOCK", block)
    monkeypatch.setattr(tearsheet, "BLOCK", block)
    for equity in _curves():
        got = compute_metrics(equity)
        assert got.max_drawdown == float(-_whole_drawdown(equity).min())
        duration = _whole_duration(equity)
        assert got.max_drawdown_duration == duration and str(got.max_drawdown_duration) == str(duration)
        pd.testing.assert_series_equal(drawdown_series(equity), _whole_drawdown(equity).rename("drawdown"),
                                       check_exact=True, check_freq=True)
        daily = _whole_daily(equity)
        pd.testing.assert_series_equal(metrics._daily_closes(equity), daily, check_exact=True, check_freq=True)
        pd.testing.assert_series_equal(metrics.daily_returns(equity), daily.pct_change().iloc[1:].rename("returns"),
                                       check_exact=True)
        idx = pd.DatetimeIndex(equity.index)
        month_end = equity.groupby([idx.year, idx.month]).last()
        previous = month_end.shift(1)
        previous.iloc[0] = equity.iloc[0]
        expected = (month_end / previous - 1.0).unstack().reindex(columns=range(1, 13))
        table = monthly_returns(equity)
        np.testing.assert_array_equal(table.to_numpy(), expected.to_numpy())
        assert table.index.tolist() == expected.index.tolist()
        year_end = equity.groupby(idx.year).last()
        previous = year_end.shift(1)
        previous.iloc[0] = equity.iloc[0]
        assert tearsheet.yearly_returns(equity).to_dict() == (year_end / previous - 1.0).to_dict()


def _worst_by_groups(equity: pd.Series, top: int) -> list[tuple]:
    """The worst spells by grouping every underwater point by its peak (whole-curve definition)."""
    dd = _whole_drawdown(equity).to_numpy()
    under = dd < 0
    if not under.any():
        return []
    peak_pos = np.maximum.accumulate(np.where(~under, np.arange(len(dd)), 0))
    frame = pd.DataFrame({"peak": peak_pos[under], "pos": np.flatnonzero(under), "dd": dd[under]})
    rows = frame.loc[frame.groupby("peak", sort=False)["dd"].idxmin()]
    rows = rows.assign(last=frame.groupby("peak", sort=False)["pos"].max().loc[rows["peak"]].to_numpy())
    rows = rows.sort_values(["dd", "peak"], kind="stable").head(top)
    times = equity.index
    out = []
    for peak, pos, depth, last in rows[["peak", "pos", "dd", "last"]].itertuples(index=False):
        end = times[last + 1] if last + 1 < len(dd) else times[-1]
        out.append((times[peak], times[pos], end if last + 1 < len(dd) else None, float(-depth),
                    (end - times[peak]) / pd.Timedelta(days=1)))
    return out


@pytest.mark.parametrize("block", [1, 3, 50, 1 << 16])
def test_worst_drawdowns_are_the_same_whatever_the_block_boundaries(block, monkeypatch):
    import research.tearsheet as tearsheet

    monkeypatch.setattr(tearsheet, "BLOCK", block)
    for equity in _curves():
        for top in (1, 5, 1000):
            got = [(p.start, p.trough, p.recovery, p.depth, p.days) for p in tearsheet.drawdown_periods(equity, top)]
            assert got == _worst_by_groups(equity, top)


def _traced_peak(call) -> int:
    """Bytes allocated at the peak of ``call()`` beyond what was allocated before (numpy and
    pandas allocations are traced)."""
    import tracemalloc

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_metrics_of_a_long_curve_allocate_no_curve_long_temporaries():
    from research.metrics import BLOCK, daily_returns
    from research.tearsheet import drawdown_periods, relative_stats, yearly_returns

    n = 600_000  # 4.8 MB a column: one curve-long temporary would show
    rng = np.random.default_rng(11)
    index = pd.DatetimeIndex(1_577_889_000_000_000_000 + np.arange(n, dtype=np.int64) * 60_000_000_000,
                             dtype="datetime64[ns, UTC]")
    equity = pd.Series(1e5 * np.exp(np.cumsum(rng.normal(0, 1e-4, n))), index=index, copy=False)
    other = pd.Series(1e5 * np.exp(np.cumsum(rng.normal(0, 1e-4, n))), index=index, copy=False)
    exposure = pd.Series(rng.random(n), index=index, copy=False)
    allowance = 4 * BLOCK * 8 + 512 * 1024  # a few blocks of float64, and the small daily series
    calls = {"compute_metrics": lambda: compute_metrics(equity, exposure=exposure),
             "daily_returns": lambda: daily_returns(equity), "monthly_returns": lambda: monthly_returns(equity),
             "yearly_returns": lambda: yearly_returns(equity), "drawdown_periods": lambda: drawdown_periods(equity),
             "relative_stats": lambda: relative_stats(equity, other, 252.0)}
    for name, call in calls.items():
        assert _traced_peak(call) < allowance, name
    assert _traced_peak(lambda: drawdown_series(equity)) < 8 * n + allowance  # the result itself only
