"""P&L attribution: every dimension's buckets plus the open-at-end line add up to the run's P&L
(a real replay with positions open at the end, and a hand-built run with a partial exit), the
open-at-end check catches files that disagree, and the factor split sums to the total with the
beta of a direct OLS."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.sources import BarSeries
from research.attribution import (DIMENSIONS, RECONCILE_TOLERANCE, attribute, attribution_document, factor_split,
                                  holding_buckets, reconcile_tolerance, write_attribution_files)
from research.benchmark import buy_and_hold
from research.finished_run import FinishedRun, load_run_folder
from research.frames import DECISION_COLUMNS, FILL_COLUMNS, LINKED_TRADE_COLUMNS, ORDER_COLUMNS, POSITION_COLUMNS
from research.metrics import daily_returns
from research.output import write_outputs
from research.trade_context import build_trade_context
from tests.support import STRATEGY_PARAMS, load_two_symbols, replay

HOUR = 3_600 * 10**9
T0 = pd.Timestamp("2024-03-04 15:00", tz="UTC")


def real_replay_folder(folder: Path, strategy: str = "online_ml") -> tuple[FinishedRun, list[BarSeries]]:
    """Replay SPY + AAPL hourly 2018-2019 into an output folder; return the run read back and its bars."""
    series = load_two_symbols()
    result, store, _ = replay(series, strategy)
    info = {"run_id": f"test-{strategy}", "strategy": strategy, "params": STRATEGY_PARAMS[strategy],
            "symbols": [s.symbol for s in series], "timeframe": "1h", "starting_cash": result.starting_cash,
            "signals": {"learner_enabled": False, "learner": {"model": "logistic", "horizon_bars": 5,
                                                              "label_threshold": 0.0, "seed": 42}},
            "data_files": [s.source for s in series]}
    write_outputs(result, folder, info, report=False, decisions=store.decisions)
    return load_run_folder(folder), series


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    run, series = real_replay_folder(tmp_path_factory.mktemp("replay"))
    return run, series, attribute(run, build_trade_context(run, series), series)


def test_every_dimension_adds_up_to_the_run_pnl_on_a_real_replay(real):
    run, _, result = real
    assert len(run.positions) >= 1 and len(run.trades) > 50  # positions open at the end: the open line matters
    total = float(run.equity.iloc[-1] - run.starting_cash)
    assert result.total_pnl == total and result.reconciled
    assert abs(result.open_at_end.pnl) > 1.0
    document = attribution_document(result)
    assert set(document["dimensions"]) == set(DIMENSIONS)
    for name, buckets in document["dimensions"].items():
        assert sum(b["trades"] for b in buckets) == len(run.trades), name
        assert math.fsum([b["pnl"] for b in buckets] + [document["open_at_end_pnl"]]) == pytest.approx(total, abs=1e-6)
        for bucket in buckets:
            members = run.trades["pnl"].astype(float)[result.context.trades[name].astype(str) == bucket["bucket"]]
            assert bucket["expectancy"] == pytest.approx(members.mean())
            assert bucket["hit_rate"] == pytest.approx(float((members > 0).mean()))
    # the confidence quartiles of online_ml split the trades in four equal-count buckets
    counts = [b["trades"] for b in document["dimensions"]["signal_strength"]]
    assert len(counts) == 4 and max(counts) - min(counts) <= 1


def test_files_hold_the_contract_keys_and_no_nan(real, tmp_path):
    _, _, result = real
    written = write_attribution_files(result, tmp_path)
    document = __import__("json").loads((tmp_path / "attribution.json").read_text())  # strict JSON: no NaN
    assert {"run_id", "total_pnl", "dimensions", "open_at_end_pnl", "factor"} <= set(document)
    assert set(document["factor"]) == {"beta", "market_pnl", "alpha_pnl"}
    assert set(document["dimensions"]["symbol"][0]) == {"bucket", "pnl", "trades", "hit_rate", "expectancy"}
    long = pd.read_csv(tmp_path / "attribution.csv")
    for name, rows in long.groupby("dimension"):
        assert rows["pnl"].sum() == pytest.approx(result.total_pnl, abs=1e-6), name
        assert rows["kind"].tolist()[-1] == "open"
    assert "attribution_trades.csv" in written and len(pd.read_csv(tmp_path / "attribution_trades.csv")) == len(
        result.context.trades)


def _bars(symbol: str, closes: list[float]) -> BarSeries:
    c = np.array(closes)
    return BarSeries(symbol, HOUR, T0.value + HOUR * np.arange(len(c)), c, c * 1.01, c * 0.99, c, np.ones(len(c)))


def _hand_run(unrealized: float | None = None) -> FinishedRun:
    """Two symbols: B closed one round trip; A bought 10, sold 4 (a partial exit) and is still open.

    Cash 10,000. B: buy 5 at 20 (fee 0.1), sell 5 at 22 (fee 0.1) -> pnl 9.8. A: buy 10 at 100 (fee 1),
    sell 4 at 110 (fee 0.5): realised 40 on the partial exit; 6 left, marked at 105 -> unrealized 30.
    Equity at the end = 10,000 + 9.8 + 30 + 40 - 1.5 = 10,078.3.
    """
    t = [T0 + pd.Timedelta(hours=k) for k in range(8)]
    fills = pd.DataFrame([(t[1], "B", "buy", 5.0, 20.0, 0.1, 0.0, "b1", "f1"), (t[2], "A", "buy", 10.0, 100.0, 1.0, 0.0,
                                                                                  "a1", "f2"),
                          (t[3], "B", "sell", 5.0, 22.0, 0.1, 0.0, "b2", "f3"),
                          (t[4], "A", "sell", 4.0, 110.0, 0.5, 0.0, "a2", "f4")], columns=FILL_COLUMNS)
    trades = pd.DataFrame([{"trade_id": 1, "symbol": "B", "side": "buy", "quantity": 5.0, "entry_time": t[1],
                            "exit_time": t[3], "entry_price": 20.0, "exit_price": 22.0, "pnl": 9.8,
                            "return": 9.8 / 100.0, "commission": 0.2, "exit_reason": "profit_target",
                            "holding_time_s": 7200.0, "entry_order_ids": "b1", "exit_order_ids": "b2",
                            "entry_fill_ids": "f1", "exit_fill_ids": "f3"}], columns=LINKED_TRADE_COLUMNS)
    positions = pd.DataFrame([{"symbol": "A", "side": "long", "quantity": 6.0, "avg_price": 100.0, "mark": 105.0,
                               "market_value": 630.0, "unrealized_pnl": 30.0 if unrealized is None else unrealized,
                               "weight": 0.06, "entry_time": t[2]}], columns=POSITION_COLUMNS)
    equity = pd.Series([10_000.0, 10_000.0, 9_999.0, 10_008.8, 10_078.8, 10_078.3],
                       index=pd.DatetimeIndex([t[0], t[1], t[2], t[3], t[4], t[7]]))
    return FinishedRun(run_id="hand", strategy="demo", params={}, symbols=["A", "B"], timeframe="1h",
                       starting_cash=10_000.0, equity=equity, trades=trades, fills=fills,
                       orders=pd.DataFrame(columns=ORDER_COLUMNS), decisions=pd.DataFrame(columns=DECISION_COLUMNS),
                       run_info={}, positions=positions)


def test_hand_built_run_with_a_partial_exit_reconciles_exactly():
    run = _hand_run()
    series = [_bars("A", [100.0, 100, 100, 104, 110, 106, 105, 105]), _bars("B", [20.0, 20, 21, 22, 22, 22, 22, 22])]
    result = attribute(run, build_trade_context(run, series), series)
    o = result.open_at_end
    assert (o.unrealized, o.realized_partial, o.commissions, o.positions) == pytest.approx((30.0, 40.0, 1.5, 1))
    assert o.pnl == pytest.approx(68.5) and o.from_equity == pytest.approx(68.5) and result.reconciled
    for name, buckets in result.dimensions.items():
        assert math.fsum([b.pnl for b in buckets] + [o.pnl]) == pytest.approx(78.3, abs=1e-9), name
    assert [(b.bucket, b.pnl, b.trades, b.hit_rate) for b in result.dimensions["exit_type"]] == [
        ("target", 9.8, 1, 1.0)]


def test_positions_that_disagree_with_the_equity_curve_are_reported():
    run = _hand_run(unrealized=30.01)  # positions.csv says 1 cent more than the equity curve
    series = [_bars("A", [100.0] * 8), _bars("B", [20.0] * 8)]
    result = attribute(run, build_trade_context(run, series), series)
    assert not result.reconciled
    assert result.open_at_end.difference == pytest.approx(0.01)
    assert attribution_document(result)["reconciliation"]["ok"] is False


def test_factor_split_sums_to_the_total_and_its_beta_is_the_ols_slope(real):
    run, series, result = real
    f = result.factor
    assert f.benchmark == "SPY"
    assert f.market_pnl + f.alpha_pnl == pytest.approx(result.total_pnl, abs=1e-6)
    assert f.daily["pnl"].sum() == pytest.approx(result.total_pnl, abs=1e-6)
    spy = next(s for s in series if s.symbol == "SPY")
    close = pd.Series(spy.close, index=pd.DatetimeIndex(pd.to_datetime(spy.ts_init, unit="ns", utc=True)))
    bench = buy_and_hold({"SPY": close}, run.starting_cash, run.equity.index)
    joined = pd.concat([daily_returns(run.equity), daily_returns(bench)], axis=1, join="inner").dropna()
    design = np.column_stack([np.ones(len(joined)), joined.iloc[:, 1].to_numpy()])
    (_, slope), *_ = np.linalg.lstsq(design, joined.iloc[:, 0].to_numpy(), rcond=None)
    assert f.beta == pytest.approx(slope, rel=1e-9) and f.days == len(joined)
    # one day by hand: market = beta x SPY's return that day x equity at the previous day's end
    day = f.daily.index[10]
    # the trading day: the date each hourly bar starts in New York
    trading_day = (pd.DatetimeIndex(run.equity.index) - pd.Timedelta(hours=1)).tz_convert(
        "America/New_York").tz_localize(None).normalize()
    ends = run.equity.groupby(trading_day).last()
    bench_ends = bench.groupby(trading_day).last()
    previous = ends.index[ends.index.get_loc(day) - 1]
    expected = slope * (bench_ends[day] / bench_ends[previous] - 1) * ends[previous]
    assert f.daily.at[day, "market"] == pytest.approx(expected, rel=1e-9)


def test_holding_buckets_count_trading_days_for_daily_bars():
    buckets, unit = holding_buckets(pd.Series([9, 10, 19, 20, 30, 45]), pd.Series([0.0] * 6), 86_400 * 10**9)
    assert buckets.tolist() == ["<10", "10-20", "10-20", "20-30", "20-30", ">30"]
    assert unit == "trading days (1d bars)"
    weekly, unit = holding_buckets(pd.Series([1, 2]), pd.Series([7 * 86_400.0, 35 * 86_400.0]), 7 * 86_400 * 10**9)
    assert weekly.tolist() == ["<10", ">30"] and unit == "calendar days"


def test_a_large_account_reconciles_within_float_rounding_but_not_beyond():
    """The equity curve of a 1e9 USD account carries a few 1e-6 USD of float rounding: within the
    tolerance that scales with the account; a 1e-2 USD gap is still an error there, and 1e-5 USD
    is on the small hand-built account."""
    small = _hand_run()
    assert reconcile_tolerance(small) == RECONCILE_TOLERANCE  # 10k USD of equity, 2.6k traded: the floor
    scale = 1e5
    big = _hand_run(unrealized=30.0 * scale + 3.5e-6)
    big = replace(big, starting_cash=big.starting_cash * scale, equity=(big.equity - 10_000.0) * scale + 1e9,
                  fills=big.fills.assign(quantity=big.fills["quantity"] * scale,
                                         commission=big.fills["commission"] * scale),
                  trades=big.trades.assign(quantity=big.trades["quantity"] * scale, pnl=big.trades["pnl"] * scale),
                  positions=big.positions.assign(quantity=big.positions["quantity"] * scale))
    series = [_bars("A", [100.0, 100, 100, 104, 110, 106, 105, 105]), _bars("B", [20.0, 20, 21, 22, 22, 22, 22, 22])]
    result = attribute(big, build_trade_context(big, series), series)
    o = result.open_at_end
    assert o.tolerance == pytest.approx(1e-12 * 1.00783e9, rel=1e-3)  # the largest equity beats the 2.6e8 traded
    assert abs(o.difference) == pytest.approx(3.5e-6, abs=1e-6) and result.reconciled
    document = attribution_document(result)["reconciliation"]
    assert document["ok"] is True and document["tolerance"] == o.tolerance and "1e-12 x" in document["tolerance_rule"]
    off = _hand_run(unrealized=30.0 * scale + 1e-2)
    off = replace(big, positions=off.positions.assign(quantity=off.positions["quantity"] * scale))
    assert not attribute(off, build_trade_context(off, series), series).reconciled
    nudged = _hand_run(unrealized=30.0 + 1e-5)
    assert not attribute(nudged, build_trade_context(nudged, series), series).reconciled


def test_daily_pnl_is_grouped_by_the_trading_day_a_bar_starts_on():
    """Daily bars of an exchange in New York start at local midnight (05:00 UTC in winter) and end a
    day later: Friday's bar ends on Saturday UTC, and its P&L belongs to Friday."""
    starts = pd.DatetimeIndex(["2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"], tz="America/New_York")
    ends = (starts + pd.Timedelta(days=1)).tz_convert("UTC")
    equity = pd.Series([100_000.0, 100_500.0, 101_000.0, 100_800.0], index=ends)
    close = pd.Series([400.0, 402.0, 405.0, 404.0], index=ends)
    f = factor_split(equity, 100_000.0, close, "SPY", timeframe_ns=86_400 * 10**9, zone="America/New_York")
    assert [str(d.date()) for d in f.daily.index] == ["2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"]
    assert f.daily.loc["2024-01-05", "pnl"] == pytest.approx(500.0)  # Friday's bar, not "Saturday"
    utc = factor_split(equity, 100_000.0, close, "SPY")  # without the bar length and zone: the end's UTC day
    assert str(utc.daily.index[2].date()) == "2024-01-06"
