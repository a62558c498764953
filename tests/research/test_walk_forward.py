"""Walk-forward validation as a user relies on it: windows that never let the future into a choice,
out-of-sample replays that trade only out of sample, a stitched curve that chains the folds,
efficiency and stability figures that follow from the folds, the re-optimization step comparison,
the regime-aware mode, resuming, and the output files.

Real replays of SPY hourly bars 2016-2018 (bundled data, ~5,200 bars) with a 4-point sma_cross
grid per window (1-year training, 6-month test windows: 4 folds).
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest

from alerts.sinks import MemoryAlertSink
from backtest.replay import run_replay
from backtest.sources import BarSeries
from backtest.spec import RunSpec
from research import walk_forward as wf_module
from research import wf_regime
from research.optimize import OptimizeError, StudyData, TrialFilters
from research.search_space import parse_space
from research.study_stats import DiscardStore, trial_returns
from research.walk_forward import (TradeFrom, WalkForwardError, parameter_stability, parse_period, plan_folds,
                                   summary_text, walk_forward, window_data, write_walk_forward_outputs)
from research.wf_windows import slice_series
from state import SqlStore, StoreConfig
from strategies.sma_cross import SmaCross

SPY = Path(__file__).resolve().parents[2] / "data" / "us_equity_1hour_adjusted" / "SPY.csv.gz"
BASE = RunSpec(strategy="sma_cross")
FEW = TrialFilters(min_trades=3)
SPACE = parse_space({"params": {"fast": {"type": "int", "low": 10, "high": 20, "step": 10},
                                "slow": {"type": "int", "low": 50, "high": 100, "step": 50}}}, strategy="sma_cross")
DAY = 86_400_000_000_000


def run(data: StudyData, storage: Any = None, **kwargs: Any) -> wf_module.WalkForwardResult:
    options: dict[str, Any] = {"train": "1y", "test": "6m", "method": "grid", "filters": FEW}
    options.update(kwargs)
    return walk_forward(BASE, SPACE, data, storage=storage or optuna.storages.InMemoryStorage(), **options)


@pytest.fixture(scope="module")
def data() -> StudyData:
    return StudyData.load([SPY], start=datetime(2016, 1, 1, tzinfo=timezone.utc),
                          end=datetime(2019, 1, 1, tzinfo=timezone.utc))


@pytest.fixture(scope="module")
def result(data: StudyData) -> wf_module.WalkForwardResult:
    return run(data, regime_aware=True, compare_steps=["3m", "6m"])


# --- windows --------------------------------------------------------------------------------------

def test_rolling_windows_move_by_the_step_and_each_test_window_follows_its_training_window():
    start = int(pd.Timestamp("2010-01-04 14:30", tz="UTC").value)
    end = int(pd.Timestamp("2013-01-01", tz="UTC").value)
    folds = plan_folds(start, end, train="1y", test="6m")
    assert [f.label("is") for f in folds] == ["2010-01-04..2011-01-04", "2010-07-04..2011-07-04",
                                              "2011-01-04..2012-01-04", "2011-07-04..2012-07-04"]
    assert [f.label("oos") for f in folds][-1] == "2012-07-04..2013-01-01"
    for f in folds:
        assert f.oos_start == f.is_end < f.oos_end and f.stitch_end == f.oos_end
    for a, b in zip(folds, folds[1:]):
        assert a.oos_end == b.oos_start  # the OOS windows tile the span: no gap, no overlap


def test_anchored_windows_all_start_at_the_first_day_and_grow():
    folds = plan_folds(0, 1000 * DAY, train="1y", test="6m", anchored=True)
    assert {f.is_start for f in folds} == {0}
    assert [f.is_end for f in folds] == sorted(f.is_end for f in folds) and len({f.is_end for f in folds}) == len(folds)


def test_a_step_shorter_than_the_test_window_stitches_only_the_step():
    folds = plan_folds(0, 1000 * DAY, train="1y", test="6m", step="3m")
    three_months = [int((pd.Timestamp(f.oos_start, unit="ns", tz="UTC") + pd.DateOffset(months=3)).value)
                    for f in folds]
    assert [f.stitch_end for f in folds[:-2]] == three_months[:-2]
    assert [f.stitch_end for f in folds[:-1]] == [f.oos_start for f in folds[1:]]  # the pieces tile the span
    assert all(f.oos_end - f.oos_start > f.stitch_end - f.oos_start for f in folds[:-2])


def test_a_short_last_test_window_is_kept_only_from_half_the_test_length():
    kept = plan_folds(0, int(pd.Timestamp("1971-10-01", tz="UTC").value), train="1y", test="6m")
    dropped = plan_folds(0, int(pd.Timestamp("1971-09-01", tz="UTC").value), train="1y", test="6m")
    assert [f.label("oos") for f in kept] == ["1971-01-01..1971-07-01", "1971-07-01..1971-10-01"]
    assert [f.label("oos") for f in dropped] == ["1971-01-01..1971-07-01"]


@pytest.mark.parametrize("kwargs, message", [
    ({"train": "2x"}, "period '2x'"),
    ({"test": "0m"}, "period '0m'"),
    ({"step": "9m"}, "step 9m is longer than test 6m"),
    ({"train": "5y"}, "too short for a training window of 5y"),
])
def test_windows_that_cannot_work_are_refused_with_the_reason(kwargs, message):
    options = {"train": "1y", "test": "6m", **kwargs}
    with pytest.raises(WalkForwardError, match=message):
        plan_folds(0, 800 * DAY, **options)


def test_periods_are_calendar_months_years_weeks_and_days():
    assert pd.Timestamp("2020-01-31") + parse_period("1m") == pd.Timestamp("2020-02-29")
    assert pd.Timestamp("2020-02-29") + parse_period("1y") == pd.Timestamp("2021-02-28")
    assert pd.Timestamp("2020-01-01") + parse_period("2w") == pd.Timestamp("2020-01-15")
    assert pd.Timestamp("2020-01-01") + parse_period("90d") == pd.Timestamp("2020-03-31")


def test_a_window_holds_only_bars_started_in_it_and_released_by_its_end(data):
    start, end = int(pd.Timestamp("2017-01-01", tz="UTC").value), int(pd.Timestamp("2017-07-01", tz="UTC").value)
    window = window_data(data, start, end)
    for s in window.get(None):
        assert s.ts_event[0] >= start and s.ts_init[-1] <= end
    full = data.get(None)[0]
    inside = (full.ts_event >= start) & (full.ts_init <= end)
    assert len(window.get(None)[0]) == int(inside.sum())


# --- no look-ahead --------------------------------------------------------------------------------

def test_no_fold_trains_on_a_bar_released_after_its_test_window_starts(result):
    for fold in result.folds:
        assert fold.study is not None
        assert pd.Timestamp(fold.study.period[1]) <= fold.oos_start  # last IS bar end
        assert pd.Timestamp(fold.study.period[0]) >= fold.is_start
        assert fold.oos_equity.index[0] == fold.oos_start and fold.oos_equity.index[-1] <= fold.oos_end


def _perturbed(data: StudyData, after: int, seed: int = 1) -> StudyData:
    """``data`` with every bar starting at or after ``after`` moved by a random walk (a different future)."""
    out = []
    for s in data.get(None):
        factor = np.ones(len(s))
        late = s.ts_event >= after
        factor[late] = np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, int(late.sum()))))
        out.append(BarSeries(s.symbol, s.timeframe_ns, s.ts_event, s.open * factor, s.high * factor, s.low * factor,
                             s.close * factor, s.volume, source=s.source, sha256=s.sha256 + "-perturbed"))
    return StudyData({data.default: out}, data.default)


def test_changing_the_future_changes_nothing_of_the_folds_before_it(data, result):
    cut = result.folds[1].window.oos_end  # folds 0 and 1 end by here
    other = run(_perturbed(data, cut), statistics=False, final=False)
    for before, after in zip(result.folds[:2], other.folds[:2]):
        assert (before.params, before.is_metrics, before.oos_metrics) == (after.params, after.is_metrics,
                                                                          after.oos_metrics)
    pd.testing.assert_series_equal(result.oos_equity[result.oos_equity.index <= pd.Timestamp(cut, unit="ns", tz="UTC")],
                                   other.oos_equity[other.oos_equity.index <= pd.Timestamp(cut, unit="ns", tz="UTC")])
    assert other.folds[2].oos_metrics != result.folds[2].oos_metrics  # the perturbed future did reach later folds


def test_trade_from_warms_up_on_earlier_bars_but_trades_only_from_its_start(data):
    series = data.get(None)
    start = int(pd.Timestamp("2017-01-01", tz="UTC").value)
    strategy = TradeFrom(SmaCross(SmaCross.Params(fast=10, slow=50)), start)
    result = run_replay(series, BASE, store=DiscardStore(), alerts=MemoryAlertSink(), strategy=strategy)
    assert result.fills and min(f.ts_event for f in result.fills) >= start
    before = result.equity[result.equity_ts <= start]
    assert np.all(before == BASE.replay.starting_cash)
    # warm: the first trade comes sooner than in a replay that starts cold at the same time
    cold = run_replay([slice_series(s, start, 2**62) for s in series], BASE, store=DiscardStore(),
                      alerts=MemoryAlertSink(), strategy=SmaCross(SmaCross.Params(fast=10, slow=50)))
    assert min(f.ts_event for f in result.fills) <= min(f.ts_event for f in cold.fills)


# --- folds, stitching, figures ------------------------------------------------------------------

def test_each_fold_trades_the_best_ranked_set_of_its_training_window(result):
    assert [f.status for f in result.folds] == ["ok"] * 4
    for fold in result.folds:
        assert fold.study is not None and fold.study.best is not None
        assert fold.params == fold.study.best.params and fold.is_metrics == fold.study.best.metrics


def test_the_stitched_curve_chains_the_folds_returns_from_the_starting_cash(result):
    growth = [float(f.oos_equity.iloc[-1] / f.oos_equity.iloc[0]) for f in result.folds]  # step == test
    assert result.oos_equity.iloc[0] == BASE.replay.starting_cash
    assert result.oos_equity.iloc[-1] == pytest.approx(BASE.replay.starting_cash * np.prod(growth), rel=1e-12)
    assert result.oos_equity.index.is_monotonic_increasing and result.oos_equity.index.is_unique
    assert sorted(set(result.oos_fold)) == [0, 1, 2, 3]
    assert result.oos_metrics["total_return"] == pytest.approx(np.prod(growth) - 1, rel=1e-9)
    assert result.oos_metrics["trades"] == sum(f.oos_metrics["trades"] for f in result.folds)


def test_the_benchmark_is_spy_buy_and_hold_over_the_same_out_of_sample_span(result, data):
    assert result.benchmark_label == "SPY buy & hold" and result.benchmark_equity is not None
    assert result.benchmark_equity.index.equals(result.oos_equity.index)
    spy = data.get(None)[0]
    closes = pd.Series(spy.close, index=pd.to_datetime(spy.ts_init, unit="ns", utc=True))
    first, last = closes.asof(result.oos_equity.index[0]), closes.asof(result.oos_equity.index[-1])  # known then
    assert result.benchmark_metrics["total_return"] == pytest.approx(last / first - 1, rel=1e-9)


def test_efficiency_profitable_share_and_degradation_follow_from_the_folds(result):
    folds = result.folds
    assert result.efficiency == pytest.approx(np.mean([f.oos_metrics["cagr"] for f in folds])
                                              / np.mean([f.is_metrics["cagr"] for f in folds]))
    assert result.profitable_share == sum(f.oos_metrics["total_return"] > 0 for f in folds) / len(folds)
    for f in folds:
        assert f.degradation["sharpe"] == pytest.approx((f.is_metrics["sharpe"] - f.oos_metrics["sharpe"])
                                                        / abs(f.is_metrics["sharpe"]))
        assert f.degradation["max_drawdown"] == pytest.approx((f.oos_metrics["max_drawdown"] - f.is_metrics["max_drawdown"])
                                                              / f.is_metrics["max_drawdown"])
    chosen = [f.params["params.fast"] for f in folds]
    assert result.stability["params"]["params.fast"]["values"] == chosen


def test_parameter_stability_of_numeric_and_categorical_keys():
    space = parse_space({"params": {"fast": {"type": "int", "low": 10, "high": 20, "step": 10}},
                         "timeframe": {"type": "categorical", "choices": ["1h", "4h"]}}, strategy="sma_cross")
    same = parameter_stability(space, [{"params.fast": 10, "timeframe": "1h"}] * 3)
    moving = parameter_stability(space, [{"params.fast": v, "timeframe": t} for v, t in
                                         [(10, "1h"), (20, "4h"), (10, "1h"), (20, "4h")]])
    assert same["score"] == 1.0 and all(p["stable"] for p in same["params"].values())
    assert moving["params"]["params.fast"]["range_std"] == 0.5 and not moving["params"]["params.fast"]["stable"]
    assert moving["params"]["timeframe"]["changes"] == 3 and moving["params"]["timeframe"]["mode_share"] == 0.5
    assert moving["score"] == pytest.approx((0.0 + 0.5) / 2)


def test_a_fold_without_a_ranked_set_stays_in_cash(data):
    result = run(data, filters=TrialFilters(min_trades=10_000), statistics=False)
    assert {f.status for f in result.folds} == {"no_ranked_trial"}
    assert np.all(result.oos_equity == BASE.replay.starting_cash) and result.oos_metrics["trades"] == 0
    assert result.profitable_share == 0 and result.efficiency is None
    assert result.final_study is not None and result.final_study.best is None
    assert "(in cash)" in summary_text(result)


def test_with_a_shorter_step_each_fold_contributes_only_its_step_to_the_curve(data):
    result = run(data, step="3m", statistics=False, final=False)
    for fold in result.folds:
        part = result.oos_fold[result.oos_fold == fold.index]
        assert part.index[-1] <= pd.Timestamp(fold.window.stitch_end, unit="ns", tz="UTC")
        assert fold.window.stitch_end < fold.window.oos_end or fold is result.folds[-1]


# --- step comparison, regimes, final study --------------------------------------------------------

def test_the_best_reoptimization_step_has_the_best_oos_sharpe_on_the_common_span(result):
    steps = result.step_comparison
    assert steps is not None and [s.step for s in steps] == ["3m", "6m"]
    assert steps[0].folds == 8 and steps[1].folds == 4
    assert steps[0].oos_equity.index[0] == steps[1].oos_equity.index[0]
    assert steps[0].oos_equity.index[-1] == steps[1].oos_equity.index[-1]
    best = max(steps, key=lambda s: s.oos_metrics["sharpe"])
    assert result.best_step == best.step


def test_each_regime_gets_the_set_with_the_best_training_sharpe_on_its_days(result, data):
    fold = result.folds[1]
    assert fold.regime is not None and fold.study is not None and fold.regime.symbol == "SPY"
    window = window_data(data, fold.window.is_start, fold.window.is_end)
    returns = trial_returns(fold.study, window)
    labels = wf_regime.day_regimes(window.get(None)[0], BASE, pd.DatetimeIndex(returns.returns.index))
    for regime, params in fold.regime.params.items():
        days = labels == regime
        assert fold.regime.days[regime] == int(days.sum())
        if days.sum() < wf_regime.MIN_REGIME_DAYS:
            assert params == fold.params and fold.regime.scores[regime] is None
            continue
        sharpes = {n: returns.returns[n][days].mean() / returns.returns[n][days].std() for n in returns.returns}
        assert returns.column(params) == max(sharpes, key=lambda n: sharpes[n])
    assert result.regime is not None and result.regime.single_metrics == result.oos_metrics


def test_regime_aware_with_one_set_for_every_regime_replays_the_single_best_set(data, monkeypatch):
    monkeypatch.setattr(wf_regime, "MIN_REGIME_DAYS", 10**9)  # no regime has enough days: all use the best set
    result = run(data, regime_aware=True, statistics=False, final=False)
    assert result.regime is not None
    pd.testing.assert_series_equal(result.regime.oos_equity, result.oos_equity)
    assert result.regime.oos_metrics == result.oos_metrics and not result.regime.better


def test_the_final_study_trains_on_the_latest_window_ending_at_the_last_bar(result, data):
    assert result.final_study is not None and result.final_window is not None
    start, end = result.final_window
    assert end == max(int(s.ts_init[-1]) for s in data.get(None))
    assert pd.Timestamp(start, unit="ns", tz="UTC") == (pd.Timestamp(end, unit="ns", tz="UTC")
                                                         - pd.DateOffset(years=1)).floor("D")
    assert result.final_study.best is not None


def test_running_again_on_the_same_storage_resumes_every_study_and_gives_the_same_result(data, tmp_path):
    url = f"sqlite:///{tmp_path / 'wf.db'}"
    SqlStore(StoreConfig(database_url=url)).close()
    first = run(data, url, statistics=False)
    again = run(data, url, statistics=False)
    assert all(f.study is not None and f.study.new_trials == 0 for f in again.folds)
    assert [f.oos_metrics for f in again.folds] == [f.oos_metrics for f in first.folds]
    pd.testing.assert_series_equal(again.oos_equity, first.oos_equity)


# --- outputs --------------------------------------------------------------------------------------

def test_the_output_files_hold_every_fold_the_curve_and_the_summary_sections(result, tmp_path):
    written = write_walk_forward_outputs(result, tmp_path)
    assert written == ["folds.csv", "oos_equity.csv", "walkforward.json", "summary.txt"]
    rows = list(csv.DictReader((tmp_path / "folds.csv").open()))
    assert [int(r["fold"]) for r in rows] == [0, 1, 2, 3]
    assert [int(r["params.fast"]) for r in rows] == [f.params["params.fast"] for f in result.folds]
    assert float(rows[0]["oos_sharpe"]) == pytest.approx(result.folds[0].oos_metrics["sharpe"])
    curve = pd.read_csv(tmp_path / "oos_equity.csv")
    assert list(curve.columns) == ["ts", "equity", "fold", "benchmark", "regime_equity"]
    assert curve["equity"].iloc[-1] == pytest.approx(result.oos_equity.iloc[-1])
    payload = json.loads((tmp_path / "walkforward.json").read_text())
    assert payload["efficiency"] == pytest.approx(result.efficiency) and len(payload["folds"]) == 4
    assert payload["statistics"]["kind"] == "walk_forward" and payload["best_step"] == result.best_step
    # the per-combination CSCV arrays (12,870 values at 16 splits) are kept once (final study logits), not per fold
    assert "logits" not in payload["folds"][0]["statistics"]["pbo_detail"]
    assert len(payload["statistics"]["study"]["pbo_detail"]["logits"]) == 12_870
    assert "is_performance" not in payload["statistics"]["study"]["pbo_detail"]
    text = (tmp_path / "summary.txt").read_text()
    for section in ("optimization summary", "walk-forward", "re-optimization frequency", "regime-aware", "top 10",
                    "sensitivity", "overfitting", "recommended configuration", "implementation notes"):
        assert f"\n{section}" in f"\n{text}", section
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_study_that_cannot_run_in_any_window_stops_the_walk_forward_with_its_reason(data):
    never = parse_space({"params": {"fast": {"type": "int", "low": 10, "high": 20, "step": 10},
                                    "slow": {"type": "int", "low": 50, "high": 100, "step": 50}},
                         "constraints": ["fast > slow"]}, strategy="sma_cross")
    with pytest.raises(OptimizeError, match="no grid combination meets the constraints"):
        walk_forward(BASE, never, data, storage=optuna.storages.InMemoryStorage(), train="1y", test="6m",
                     method="grid", filters=FEW)
