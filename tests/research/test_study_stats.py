"""The statistics block of a study and of a walk-forward run: every number is the published
formula (research.overfitting, checked against the papers there) applied to the right inputs —
the trials' own daily returns from real replays, the real number of trials tried and the spread
of their Sharpe ratios — and the verdict is built from them.

Real replays of SPY hourly bars of 2019 (bundled data, ~1,750 bars); grid studies of 6 sets. The
trials' returns come back with the study's own replays: the statistics replay only trials that lack
them (a study recorded by an older tradingd, here one whose records are stripped of them).
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from alerts.sinks import MemoryAlertSink
from backtest.replay import run_replay
from backtest.spec import RunSpec
from research.metrics import daily_returns
from research.optimize import StudyData, StudyResult, TrialFilters, run_study
from research.overfitting import (deflated_sharpe_ratio, minimum_track_record_length, probability_of_backtest_overfitting,
                                  psr_from_returns, sample_moments)
from research.search_space import parse_space
from research.study_stats import TrialReturns, choose_splits, statistics_text, study_statistics, trial_returns
from research.walk_forward import walk_forward
from state.memory import MemoryStore

SPY = Path(__file__).resolve().parents[2] / "data" / "us_equity_1hour_adjusted" / "SPY.csv.gz"
BASE = RunSpec(strategy="sma_cross")
FEW = TrialFilters(min_trades=3)
GRID = parse_space({"params": {"fast": {"type": "int", "low": 5, "high": 15, "step": 5},
                               "slow": {"type": "int", "low": 20, "high": 40, "step": 20}}}, strategy="sma_cross")
WIDE = parse_space({"params": {"fast": {"type": "int", "low": 2, "high": 40},
                               "slow": {"type": "int", "low": 10, "high": 120}},
                    "constraints": ["fast < slow"]}, strategy="sma_cross")


@pytest.fixture(scope="module")
def data() -> StudyData:
    return StudyData.load([SPY], start=datetime(2019, 1, 1, tzinfo=timezone.utc),
                          end=datetime(2020, 1, 1, tzinfo=timezone.utc))


@pytest.fixture(scope="module")
def study(data):
    return run_study(BASE, GRID, data, storage=optuna.storages.InMemoryStorage(), method="grid", filters=FEW)


@pytest.fixture(scope="module")
def returns(study, data) -> TrialReturns:
    return trial_returns(study, data)


@pytest.fixture(scope="module")
def stats(study, data, returns):
    return study_statistics(study, data, returns=returns)


def as_recorded_before_returns(study: StudyResult) -> StudyResult:
    """The study as an older tradingd recorded it: trials without daily returns."""
    return replace(study, trials=[replace(t, returns=None) for t in study.trials])


def test_the_statistics_of_a_finished_study_replay_nothing(study, data, returns):
    # every set's returns came back with its trial, equal to the daily returns of a replay of our own
    assert returns.replayed == () and not returns.failed
    for trial in study.trials:
        setup = study.space.apply(study.base, trial.params)
        replay = run_replay(data.get(setup.timeframe), setup.spec, store=MemoryStore(), alerts=MemoryAlertSink())
        equity = pd.Series(replay.equity, index=pd.to_datetime(replay.equity_ts, unit="ns", utc=True))
        pd.testing.assert_series_equal(returns.returns[trial.number], daily_returns(equity), check_names=False)
    # nothing is replayed: the same matrix, even once the study's settings could no longer be replayed
    broken = replace(study, space=replace(study.space, strategy="no_such_strategy"))
    pd.testing.assert_frame_equal(trial_returns(broken, data).returns, returns.returns)
    assert study_statistics(broken, data) == study_statistics(study, data)


def test_trials_without_returns_are_replayed_for_them(study, data, returns):
    older = as_recorded_before_returns(study)
    again = trial_returns(older, data)
    assert again.replayed == tuple(t.number for t in study.trials)
    pd.testing.assert_frame_equal(again.returns, returns.returns)
    assert again.trades == returns.trades
    # returns kept for other bars than those given are not used: the sets are replayed on these
    other = StudyData.load([SPY], start=datetime(2019, 1, 1, tzinfo=timezone.utc),
                           end=datetime(2019, 7, 1, tzinfo=timezone.utc))
    shorter = trial_returns(study, other)
    assert shorter.replayed == again.replayed and shorter.returns.index[-1] < returns.returns.index[-1]
    # nor for other bars of the same window and timeframe (another symbol)
    aapl = StudyData.load([SPY.with_name("AAPL.csv.gz")], start=datetime(2019, 1, 1, tzinfo=timezone.utc),
                          end=datetime(2020, 1, 1, tzinfo=timezone.utc))
    assert aapl.period() == data.period()
    on_aapl = trial_returns(study, aapl)
    assert on_aapl.replayed == again.replayed
    assert not on_aapl.returns.equals(returns.returns)


def test_each_trials_daily_returns_compound_to_its_total_return_and_give_its_sharpe(study, returns):
    assert list(returns.returns.columns) == [t.number for t in study.trials]  # 6 sets, each once
    for trial in study.trials:
        r = returns.returns[trial.number]
        assert np.prod(1 + r) - 1 == pytest.approx(trial.metrics["total_return"], rel=1e-9, abs=1e-12)
        assert returns.trades[trial.number] == trial.metrics["trades"]
        sr = r.mean() / r.std(ddof=1) * math.sqrt(returns.periods_per_year)
        assert sr == pytest.approx(trial.metrics["sharpe"], rel=0.01)  # periods per year from days, not bar times


def test_psr_and_min_trl_are_those_of_the_best_sets_daily_returns(study, returns, stats):
    best = returns.returns[study.best.number].to_numpy()
    sr, skew, kurt, n = sample_moments(best)
    assert stats["best_trial"] == study.best.number and stats["best"]["n_obs"] == n == len(returns.returns)
    assert stats["psr"] == pytest.approx(psr_from_returns(best))
    assert stats["min_trl"]["observations"] == pytest.approx(minimum_track_record_length(sr, 0.0, skew, kurt))
    assert stats["min_trl"]["years"] == pytest.approx(stats["min_trl"]["observations"] / returns.periods_per_year)
    assert stats["min_trl"]["enough"] == (n >= stats["min_trl"]["observations"])


def test_the_dsr_deflates_by_every_trial_tried_and_the_spread_of_their_sharpe_ratios(study, returns, stats):
    sharpes = [sample_moments(returns.returns[n].to_numpy())[0] for n in returns.returns]
    sr, skew, kurt, n = sample_moments(returns.returns[study.best.number].to_numpy())
    assert stats["trials"]["tried"] == 6
    assert stats["trials"]["sharpe_variance_per_period"] == pytest.approx(np.var(sharpes, ddof=1))
    assert stats["dsr"] == pytest.approx(deflated_sharpe_ratio(sr, n, skew, kurt, 6, float(np.var(sharpes, ddof=1))))
    assert stats["dsr"] < stats["psr"]  # six tries cost confidence


def test_pruned_trials_count_as_tried_for_the_dsr(data):
    study = run_study(BASE, WIDE, data, storage=optuna.storages.InMemoryStorage(), method="random", n_trials=14, seed=3,
                      filters=FEW, prune=True)
    pruned = {str(sorted(t.params.items())) for t in study.trials if t.status == "pruned"}
    assert pruned
    stats = study_statistics(study, data)
    replayed = {str(sorted(t.params.items())) for t in study.trials if t.status in ("complete", "filtered")}
    assert stats["trials"]["tried"] >= len(pruned | replayed) > stats["trials"]["with_returns"]


def test_the_pbo_is_cscv_over_the_trials_daily_returns(returns, stats):
    matrix = returns.returns.to_numpy()
    splits = choose_splits(len(matrix))
    assert splits is not None
    expected = probability_of_backtest_overfitting(matrix, splits)
    assert stats["pbo"] == expected.pbo and stats["pbo_detail"]["n_splits"] == splits == 16
    assert set(stats["pbo_detail"]["best_trial"]) <= set(returns.returns.columns)  # trial numbers, not columns


def test_without_a_holdout_the_degradation_is_the_is_best_sets_cscv_halves(returns, stats):
    matrix = returns.returns.to_numpy()
    splits = choose_splits(len(matrix))
    assert splits is not None
    pbo = probability_of_backtest_overfitting(matrix, splits)
    root = math.sqrt(returns.periods_per_year)
    degradation = stats["degradation"]
    assert degradation["source"] == "cscv"
    assert degradation["in_sample"]["sharpe"] == pytest.approx(np.mean(pbo.is_performance) * root)
    assert degradation["out_of_sample"]["sharpe"] == pytest.approx(np.mean(pbo.oos_performance) * root)
    verdict = stats["verdict"]
    assert {p["name"] for p in verdict["parts"]} == {"degradation", "pbo", "dsr", "parameters_per_trade", "trade_count",
                                                    "period_concentration"}
    assert 0 <= verdict["score"] <= 100 and verdict["remedy"]


def test_a_holdout_is_judged_against_the_best_sets_in_sample_metrics(study, data, returns):
    oos = {**study.best.metrics, "sharpe": study.best.metrics["sharpe"] / 2}
    stats = study_statistics(study, data, returns=returns, out_of_sample=oos)
    assert stats["degradation"]["source"] == "holdout"
    sharpe = next(d for d in stats["verdict"]["degradations"] if d["metric"] == "sharpe")
    assert sharpe["degradation"] == pytest.approx(0.5) and sharpe["flagged"]


def test_too_few_days_for_cscv_leave_the_pbo_out_and_say_why(study, data, returns):
    short = TrialReturns(returns.returns.iloc[:7], returns.params, returns.trades, returns.failed)
    stats = study_statistics(study, data, returns=short)
    assert stats["pbo"] is None and any("PBO needs" in n for n in stats["notes"])
    assert "pbo" not in {p["name"] for p in stats["verdict"]["parts"]}


def test_a_study_without_a_ranked_set_has_no_statistics_of_a_best_set(data):
    study = run_study(BASE, GRID, data, storage=optuna.storages.InMemoryStorage(), method="grid",
                      filters=TrialFilters(min_trades=10_000))
    stats = study_statistics(study, data)
    assert stats["best_trial"] is None and stats["psr"] is None and stats["verdict"] is None
    assert "no ranked trial" in stats["notes"][0] and stats["trials"]["tried"] == 6


def test_two_worker_processes_replay_the_same_returns_as_one(study, data, returns):
    two = trial_returns(as_recorded_before_returns(study), data, jobs=2)
    assert len(two.replayed) == 6
    pd.testing.assert_frame_equal(two.returns, returns.returns)


def test_the_text_section_shows_each_statistic_and_the_verdict(stats):
    text = statistics_text(stats)
    assert text.startswith("overfitting\n")
    for label in ("PSR", "DSR", "MinTRL", "PBO", "IS -> OOS  (cscv)", "score", "remedy"):
        assert f"  {label}" in text, label
    assert f"{stats['psr']:.3f}" in text and f"deflated over {stats['trials']['tried']} trials" in text


def test_a_walk_forward_block_judges_the_stitched_oos_curve_and_the_folds_studies():
    data = StudyData.load([SPY], start=datetime(2017, 1, 1, tzinfo=timezone.utc),
                          end=datetime(2019, 1, 1, tzinfo=timezone.utc))
    result = walk_forward(BASE, GRID, data, storage=optuna.storages.InMemoryStorage(), train="1y", test="6m",
                          method="grid", filters=FEW, final=False)
    stats = result.statistics
    assert stats is not None and stats["kind"] == "walk_forward" and stats["study"] is None
    folds = [f.statistics for f in result.folds]
    assert all(f is not None for f in folds) and all(f.oos_metrics is not None for f in result.folds)
    assert stats["psr"] == pytest.approx(psr_from_returns(daily_returns(result.oos_equity).to_numpy()))
    assert stats["pbo"] == pytest.approx(np.median([f["pbo"] for f in folds if f is not None]))
    assert stats["dsr"] == pytest.approx(np.median([f["dsr"] for f in folds if f is not None]))
    assert stats["degradation"]["source"] == "walk_forward"
    assert stats["degradation"]["out_of_sample"]["sharpe"] == pytest.approx(
        np.mean([f.oos_metrics["sharpe"] for f in result.folds if f.oos_metrics is not None]))
    concentration = next(p for p in stats["verdict"]["parts"] if p["name"] == "period_concentration")
    working = sum(f.oos_metrics["total_return"] > 0 for f in result.folds if f.oos_metrics is not None)
    assert f"in {working} of {len(result.folds)} periods" in concentration["detail"]
    for fold in result.folds:  # each fold's own block judges its study against its real OOS window
        assert fold.statistics is not None and fold.oos_metrics is not None
        assert fold.statistics["degradation"]["source"] == "holdout"
        assert fold.statistics["degradation"]["out_of_sample"]["sharpe"] == fold.oos_metrics["sharpe"]


def test_bad_calls_say_what_is_missing(study):
    with pytest.raises(ValueError, match="give a study result"):
        study_statistics()
    with pytest.raises(ValueError, match="needs the data it ran on"):
        study_statistics(study)
