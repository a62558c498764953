"""``tradingd benchmark``'s statistics and its two new benchmarks: alpha, beta, correlation,
information ratio and tracking error against empyrical (an independent implementation) on a real
replay; 60/40 and naive momentum on hand-made closes with known results; no look-ahead in the
momentum's choice; recovery, monthly win rate and the favourable rule as a user reads them."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.sources import load_bars
from research.benchmark import BenchmarkError, buy_and_hold, equal_weight_monthly
from research.benchmark_portfolios import momentum_picks, naive_momentum, sixty_forty
from research.benchmark_compare import (build_benchmarks, compare, coverage, curve_stats, favourable, monthly_table,
                                        versus)
from research.frames import closes_series, equity_frame
from tests.support import load_two_symbols, replay

IEF = Path(__file__).resolve().parents[2] / "data" / "us_equity_daily_adjusted" / "IEF.csv.gz"


def _days(start: str, end: str) -> pd.DatetimeIndex:
    return pd.date_range(start, end, freq="D", tz="UTC")


# --- against empyrical, on a real replay --------------------------------------------------------


@pytest.fixture(scope="module")
def real_run() -> tuple[pd.Series, dict[str, pd.Series], float]:
    """A real replay (sma_cross on SPY + AAPL hourly, 2018-2019): equity, closes, starting cash."""
    result, _, _ = replay(load_two_symbols(), "sma_cross")
    frame = equity_frame(result)
    equity = pd.Series(frame["equity"].to_numpy(), index=pd.DatetimeIndex(frame["time"]))
    return equity, closes_series(result), result.starting_cash


def _independent_daily(curve: pd.Series) -> pd.Series:
    """Last value of each UTC day with data, then simple returns (pandas resampling, not research.metrics)."""
    return curve.resample("1D").last().dropna().pct_change().dropna()


def test_relative_statistics_match_empyrical_on_the_same_daily_returns(real_run):
    import empyrical  # empyrical-reloaded (dev dependency): the independent reference

    equity, closes, cash = real_run
    bench = buy_and_hold({"SPY": closes["SPY"]}, cash, equity.index)
    r_s, r_b = _independent_daily(equity), _independent_daily(bench)
    assert len(r_s) > 400 and r_s.index.equals(r_b.index)
    ppy = 251.7
    v = versus(equity, bench, ppy)
    assert v.days == len(r_s)
    assert v.beta == pytest.approx(empyrical.beta(r_s, r_b), rel=1e-9)
    # alpha = the regression intercept x periods: empyrical's alpha with annualization 1 is the intercept
    assert v.alpha == pytest.approx(empyrical.alpha(r_s, r_b, annualization=1) * ppy, rel=1e-9)
    assert v.alpha_compounded == pytest.approx(empyrical.alpha(r_s, r_b, annualization=ppy), rel=1e-9)
    assert v.information_ratio == pytest.approx(empyrical.excess_sharpe(r_s, r_b) * math.sqrt(ppy), rel=1e-9)
    assert v.tracking_error == pytest.approx(empyrical.annual_volatility(r_s - r_b, annualization=ppy), rel=1e-9)
    assert v.correlation == pytest.approx(float(np.corrcoef(r_s, r_b)[0, 1]), rel=1e-9)
    # a trend follower on SPY and AAPL moves with SPY, less than one for one
    assert 0 < v.beta < 1 and 0 < v.correlation < 1 and v.tracking_error > 0


def test_compare_reports_the_strategy_and_every_benchmark_with_the_strategys_periods_per_year(real_run):
    import empyrical

    equity, closes, cash = real_run
    bond = load_bars(IEF)  # ends in 2013: held flat over 2018-2019, coverage 0
    bond_close = pd.Series(bond.close, index=pd.to_datetime(bond.ts_init, unit="ns", utc=True))
    curves = build_benchmarks(closes, ("SPY", closes["SPY"]), ("IEF", bond_close), cash, equity.index, 1)
    c = compare("run-1", "sma_cross", equity, curves)
    assert [b.curve.name for b in c.benchmarks] == ["SPY", "equal_weight", "60_40", "momentum"]
    assert c.primary.curve.name == "SPY"
    r_s = _independent_daily(equity)
    ppy = len(r_s) / ((equity.index[-1] - equity.index[0]) / pd.Timedelta(days=365.25))
    assert c.periods_per_year == pytest.approx(ppy)
    assert c.stats.sharpe == pytest.approx(empyrical.sharpe_ratio(r_s, annualization=ppy), rel=1e-9)
    for b in c.benchmarks:
        r_b = _independent_daily(b.curve.equity)
        assert b.versus.beta == pytest.approx(empyrical.beta(r_s, r_b), rel=1e-9), b.curve.name
        assert b.stats.sharpe == pytest.approx(empyrical.sharpe_ratio(r_b, annualization=ppy), rel=1e-9)
        assert b.stats.max_drawdown == pytest.approx(-empyrical.max_drawdown(b.curve.equity.pct_change().fillna(0.0)))
    mix = c.benchmarks[2]
    assert mix.extra["bond_coverage"] == 0.0 and mix.extra["bond_last"].startswith("2014-01-01")
    # the bond ended years before: its 40 % is in effect cash, so 60/40 moves 60 % as much as SPY each month
    spy_months = c.monthly["SPY"]
    assert np.corrcoef(c.monthly["60_40"], spy_months)[0, 1] > 0.999
    assert float(c.monthly["60_40"].abs().sum()) == pytest.approx(0.6 * float(spy_months.abs().sum()), rel=0.02)
    doc = c.to_json()
    assert set(doc["benchmarks"]) == {"SPY", "equal_weight", "60_40", "momentum"}
    # the closes start with the run (2018): momentum needs 12 months of them before its first choice
    assert doc["benchmarks"]["momentum"]["first_invested"].startswith("2019-01")


# --- 60/40 ------------------------------------------------------------------------------------


def test_sixty_forty_restores_its_weights_at_each_month():
    index = pd.DatetimeIndex(["2024-01-02", "2024-01-31", "2024-02-01", "2024-02-02", "2024-03-01"], tz="UTC")
    stock = pd.Series([10.0, 20.0, 20.0, 10.0, 10.0], index=index)  # doubles in January, halves on Feb 2
    bond = pd.Series([100.0, 100.0, 100.0, 200.0, 200.0], index=index)  # doubles on Feb 2
    mix = sixty_forty(stock, bond, 1000.0, index)
    # Jan: 60 shares + 4 bonds; Jan 31: 1200 + 400. Feb 1: 1600 re-split 960 / 640 (48 shares, 6.4 bonds);
    # Feb 2: 480 + 1280 = 1760. Held from January without rebalancing it would be 600 + 800 = 1400.
    assert mix.tolist() == pytest.approx([1000.0, 1600.0, 1600.0, 1760.0, 1760.0])
    # a 100 % stock "mix" is buy and hold of the stock
    assert sixty_forty(stock, bond, 1000.0, index, stock_weight=1.0).tolist() == pytest.approx(
        buy_and_hold({"S": stock}, 1000.0, index).tolist())


def test_sixty_forty_keeps_the_bond_share_in_cash_until_its_first_close_and_flat_after_its_last():
    index = _days("2024-01-01", "2024-04-30")
    stock = pd.Series(10.0, index=index)  # flat stock: every change below is the bond's
    bond = pd.Series(np.linspace(50.0, 100.0, 40), index=_days("2024-01-15", "2024-02-23"))
    mix = sixty_forty(stock, bond, 1000.0, index)
    jan, feb = mix[index.month == 1], mix[index.month == 2]
    assert (jan == 1000.0).all()  # the bond's 400 USD waits in cash through January
    bond_on_feb1 = float(bond[bond.index <= "2024-02-01"].iloc[-1])
    assert feb.iloc[-1] == pytest.approx(600.0 + 400.0 * 100.0 / bond_on_feb1)  # bought Feb 1, then rises
    assert (mix[index >= "2024-02-23"] == feb.iloc[-1]).all()  # held flat after its last close


def test_a_daily_bond_is_taken_as_of_each_hourly_timestamp():
    start, end = datetime(2012, 1, 1, tzinfo=timezone.utc), datetime(2012, 7, 1, tzinfo=timezone.utc)
    spy = load_bars(Path(__file__).resolve().parents[2] / "data" / "us_equity_1hour_adjusted" / "SPY.csv.gz",
                    start=start, end=end)
    hourly = pd.DatetimeIndex(pd.to_datetime(spy.ts_init, unit="ns", utc=True))
    ief = load_bars(IEF)
    bond = pd.Series(ief.close, index=pd.to_datetime(ief.ts_init, unit="ns", utc=True))
    stock = pd.Series(spy.close, index=hourly)
    mix = sixty_forty(stock, bond, 1000.0, hourly, stock_weight=0.0)  # all bond
    # all in the bond, rebalancing changes nothing: 1000 x the daily close known at each hour over the first's
    known = bond.reindex(hourly, method="ffill")
    np.testing.assert_allclose(mix.to_numpy(), 1000.0 * (known / known.iloc[0]).to_numpy(), rtol=1e-10)
    assert known.nunique() > 100 and len(hourly) > 5 * known.nunique()  # many hours share one daily close
    assert coverage(bond, hourly) == 1.0
    wider = pd.date_range("2010-01-01", "2016-01-01", freq="D", tz="UTC")
    assert coverage(bond, wider) == pytest.approx(4 / 6, abs=0.01)  # the bond ends with 2013


# --- naive momentum ------------------------------------------------------------------------------


def _leader_switch() -> tuple[dict[str, pd.Series], pd.DatetimeIndex]:
    """A rises 1 % a month from 2022; B is flat at 10 and doubles on 2023-03-15. The run is 2023."""
    closes_index = _days("2022-01-01", "2023-12-31")
    months = (closes_index.year - 2022) * 12 + closes_index.month - 1
    a = pd.Series(100.0 * 1.01 ** months.to_numpy(), index=closes_index)
    b = pd.Series(np.where(closes_index >= "2023-03-15", 20.0, 10.0), index=closes_index)
    return {"A": a, "B": b}, _days("2023-01-01", "2023-12-31")


def test_momentum_holds_the_symbol_that_doubled_once_it_leads_its_trailing_twelve_months():
    closes, index = _leader_switch()
    picks = dict(momentum_picks(closes, index, top=1))
    held = {t.strftime("%Y-%m"): symbols for t, symbols in picks.items()}
    # B's doubling on Mar 15 is in the formation window (t-12m .. t-1m) only from the May rebalance on
    assert [held[f"2023-{m:02d}"] for m in range(1, 5)] == [("A",)] * 4
    assert [held[f"2023-{m:02d}"] for m in range(5, 13)] == [("B",)] * 8
    equity = naive_momentum(closes, 1000.0, index, top=1)
    a = closes["A"]
    # A from Jan 1 to May 1 (four 1 % months), then B, flat at 20: no other exit
    assert equity["2023-04-30"] == pytest.approx(1000.0 * a["2023-04-30"] / a["2023-01-01"])
    after = equity[equity.index >= "2023-05-01"].to_numpy()
    assert after == pytest.approx(np.full(len(after), 1000.0 * 1.01 ** 4))
    # holding both of two symbols is the equal-weight monthly portfolio
    np.testing.assert_allclose(naive_momentum(closes, 1000.0, index, top=2).to_numpy(),
                               equal_weight_monthly(closes, 1000.0, index).to_numpy(), rtol=1e-12)


def test_momentum_is_cash_until_a_symbol_has_twelve_months_of_closes():
    closes, _ = _leader_switch()
    index = _days("2022-01-01", "2023-03-31")  # the closes start with the run: no formation period before it
    picks = momentum_picks(closes, index, top=1)
    first = next(t for t, held in picks if held)
    assert first == pd.Timestamp("2023-01-01", tz="UTC")  # 12 months after the first close
    equity = naive_momentum(closes, 1000.0, index, top=1)
    assert (equity[equity.index < first] == 1000.0).all()
    assert equity.iloc[-1] > 1000.0


def test_momentum_choice_never_looks_ahead():
    rng = np.random.default_rng(11)
    stamps = pd.date_range("2020-01-01", "2023-06-30 23:00", freq="7h", tz="UTC")
    closes = {s: pd.Series(50 * np.exp(np.cumsum(rng.normal(0.0002, 0.01, len(stamps)))), index=stamps)
              for s in ("A", "B", "C", "D")}
    index = stamps[stamps >= "2021-03-01"]
    full = momentum_picks(closes, index, top=2)
    value = naive_momentum(closes, 1000.0, index, top=2)
    assert len({held for _, held in full}) > 3  # the choice does change over time
    for k in range(0, len(full), 4):
        t = full[k][0]
        # rewrite every close stamped at or after the rebalance time: its choice must not change
        changed = {s: c.where(c.index < t, c * rng.uniform(0.2, 5.0, len(c))) for s, c in closes.items()}
        picks = momentum_picks(changed, index, top=2)
        assert picks[: k + 1] == full[: k + 1], t
        before = index < t
        np.testing.assert_array_equal(naive_momentum(changed, 1000.0, index, top=2).to_numpy()[before],
                                      value.to_numpy()[before])


def test_momentum_top_out_of_range_is_a_clear_error():
    closes, index = _leader_switch()
    with pytest.raises(BenchmarkError, match="--momentum-top 3: must be between 1 and the 2 symbols"):
        build_benchmarks(closes, ("A", closes["A"]), ("B", closes["B"]), 1000.0, index, momentum_top=3)
    with pytest.raises(ValueError, match="top must be at least 1"):
        naive_momentum(closes, 1000.0, index, top=0)


def test_the_primary_benchmarks_coverage_of_the_period_is_stated_and_none_is_refused():
    closes, index = _leader_switch()  # closes 2022-2023, the run 2023
    a, b = closes["A"], closes["B"]
    equity = pd.Series(1000.0 * np.linspace(1.0, 1.1, len(index)), index=index)
    full = compare("r", "s", equity, build_benchmarks(closes, ("A", a), ("B", b), 1000.0, index, 1))
    assert full.primary_coverage == 1.0 and full.to_json()["primary_coverage"] == 1.0
    assert "Caution" not in full.favourable_reason
    # the primary's closes stop at the end of June: half the run is compared with a flat line
    half = a[a.index <= "2023-07-02"]
    partial = compare("r", "s", equity, build_benchmarks(closes, ("A", half), ("B", b), 1000.0, index, 1))
    share = coverage(half, index)
    assert share == pytest.approx(182 / 364) and partial.to_json()["primary_coverage"] == pytest.approx(share)
    assert f"Caution: A buy & hold has closes for only {share * 100:.1f}% of the run's period" in (
        partial.favourable_reason)
    assert partial.to_json()["benchmarks"]["A"]["last"].startswith("2023-07-02")
    # closes that end before the run starts: no verdict against them
    before = a[a.index < "2022-12-01"]
    with pytest.raises(BenchmarkError, match=r"--benchmark A: no data in the run's period 2023-01-01T00:00:00Z to "
                                             r"2023-12-31T00:00:00Z \(its closes run 2022-01-01T00:00:00Z to "
                                             r"2022-11-30T00:00:00Z\); pass bars of A"):
        build_benchmarks(closes, ("A", before), ("B", b), 1000.0, index, 1)


# --- stand-alone statistics and the verdict -----------------------------------------------------


def test_recovery_is_the_longest_spell_to_a_new_peak_and_null_when_never_regained():
    index = pd.DatetimeIndex(["2024-01-01", "2024-01-11", "2024-02-10", "2024-02-20", "2024-03-01"], tz="UTC")
    regained = curve_stats(pd.Series([100.0, 90.0, 101.0, 95.0, 96.0], index=index))
    assert regained.recovery_days == 40.0  # Jan 1 peak regained Feb 10; the open Feb 10 spell is shorter (20 days)
    assert regained.underwater_days == 40.0
    lost = curve_stats(pd.Series([100.0, 110.0, 105.0, 100.0, 99.0], index=index))
    assert lost.recovery_days is None and lost.underwater_days == 50.0  # under water since Jan 11
    flat = curve_stats(pd.Series([100.0] * 5, index=index))
    assert flat.recovery_days == 0.0 and flat.max_drawdown == 0.0 and flat.sharpe is None


def test_monthly_win_rate_is_the_share_of_positive_months():
    index = pd.DatetimeIndex(["2024-01-01", "2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"], tz="UTC")
    equity = pd.Series([100.0, 105.0, 104.0, 104.0, 110.0], index=index)  # Jan +, Feb -, Mar 0, Apr +
    s = curve_stats(equity)
    assert (s.months, s.win_rate_months) == (4, 0.5)  # a flat month is not a win
    table = monthly_table({"strategy": equity})
    assert table.index.tolist() == ["2024-01", "2024-02", "2024-03", "2024-04"]
    assert (1 + table["strategy"]).prod() == pytest.approx(1.1)


def test_favourable_by_sharpe_or_by_alpha_with_no_worse_drawdown():
    idx = _days("2024-01-01", "2024-12-31")
    rng = np.random.default_rng(5)
    market = pd.Series(100 * np.exp(np.cumsum(rng.normal(0.0003, 0.012, len(idx)))), index=idx)
    half = 100 * (1 + 0.5 * market.pct_change().fillna(0.0)).cumprod()  # half the market's moves
    cases = {"calm": half * np.exp(np.linspace(0, 0.02, len(idx))),  # beta 0.5 plus a steady edge
             "wild": 100 * (1 + 2 * market.pct_change().fillna(0.0)).cumprod() * np.exp(np.linspace(0, -0.3, len(idx)))}
    for name, strategy in cases.items():
        s, b = curve_stats(strategy), curve_stats(market)
        v = versus(strategy, market, 252.0)
        ok, reason = favourable(s, b, v, "M buy & hold")
        assert "Sharpe is > 0 and >= M buy & hold's" in reason and "alpha" in reason
        expected = (s.sharpe > 0 and s.sharpe >= b.sharpe) or (v.alpha > 0 and s.max_drawdown <= b.max_drawdown)
        assert ok is expected
        if name == "calm":
            assert ok and v.alpha > 0 and s.max_drawdown < b.max_drawdown
        else:
            assert not ok and v.alpha < 0 and s.max_drawdown > b.max_drawdown and s.sharpe < b.sharpe


def test_a_losing_run_is_not_favourable_because_a_falling_market_has_the_worse_sharpe():
    idx = _days("2024-01-01", "2024-12-31")
    n = len(idx) - 1
    # the market falls 0.2% a day on average; the run loses 0.05% a day, uncorrelated with it (beta ~ 0)
    market = pd.Series(100 * np.cumprod(np.r_[1.0, 1 + np.resize([-0.012, 0.006, 0.0], n)]), index=idx)
    losing = pd.Series(100 * np.cumprod(np.r_[1.0, 1 + np.resize([0.0025, -0.0035], n)]), index=idx)
    s, b = curve_stats(losing), curve_stats(market)
    v = versus(losing, market, 252.0)
    assert s.total_return < 0 and b.sharpe < s.sharpe < 0 and v.alpha < 0 and abs(v.beta) < 0.01
    ok, reason = favourable(s, b, v, "M buy & hold")
    assert not ok
    assert f"Sharpe {s.sharpe:.2f} vs {b.sharpe:.2f} (not met)" in reason
    # the same run making money instead: its Sharpe is positive and it is favourable on Sharpe
    winning = pd.Series(100 * np.cumprod(np.r_[1.0, 1 + np.resize([0.0035, -0.0025], n)]), index=idx)
    ok, reason = favourable(curve_stats(winning), b, versus(winning, market, 252.0), "M buy & hold")
    assert ok and "(met); alpha" in reason
