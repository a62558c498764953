"""Parameter studies as a user sees them: determinism, grid counts and warnings, constraints, filters
and failing trials, pruning, resuming after an interruption or a crash, the result cache, worker
processes, several objectives, every method, and SQLite and PostgreSQL storage.

Real replays of a small slice of the bundled hourly data (SPY, 2019: ~1,750 bars) into real
databases (SQLite in tmp_path, a fresh PostgreSQL schema); few trials each.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest

from alerts.sinks import MemoryAlertSink
from backtest.replay import run_replay
from backtest.spec import RunSpec
from research.metrics import daily_returns
from research.optimize import (COUNTED, OBJECTIVES, OptimizeError, StudyData, TrialFilters, TrialRecord,
                               open_study_storage, parse_objectives, run_study,
                               trial_metrics)
from research.search_space import SearchSpace, parse_space
from research.trial_cache import CACHE_STUDY, RETURNS_STUDY
from state import SqlStore, StoreConfig
from state.memory import MemoryStore
from strategies.sma_cross import SmaCross

SPY = Path(__file__).resolve().parents[2] / "data" / "us_equity_1hour_adjusted" / "SPY.csv.gz"
BASE = RunSpec(strategy="sma_cross")
FEW = TrialFilters(min_trades=3)


@pytest.fixture(scope="module")
def data() -> StudyData:
    return StudyData.load([SPY], start=datetime(2019, 1, 1, tzinfo=timezone.utc),
                          end=datetime(2020, 1, 1, tzinfo=timezone.utc))


def sma(**extra: Any) -> SearchSpace:
    table: dict[str, Any] = {"params": {"fast": {"type": "int", "low": 5, "high": 15, "step": 5},
                                        "slow": {"type": "int", "low": 20, "high": 40, "step": 20}}}
    table.update(extra)
    return parse_space(table, strategy="sma_cross")


WIDE = parse_space({"params": {"fast": {"type": "int", "low": 2, "high": 40},
                               "slow": {"type": "int", "low": 10, "high": 120}},
                    "constraints": ["fast < slow"]}, strategy="sma_cross")


def mem() -> optuna.storages.InMemoryStorage:
    """A storage for tests about the search itself (fast: no disk)."""
    return optuna.storages.InMemoryStorage()


def db(tmp_path: Path, name: str = "study") -> str:
    """A SQLite state database as the CLI prepares it: state tables (and WAL mode) first."""
    url = f"sqlite:///{tmp_path / name}.db"
    SqlStore(StoreConfig(database_url=url)).close()
    return url


def outcome(records: list[TrialRecord]) -> list[tuple[Any, ...]]:
    return [(t.number, t.status, sorted(t.params.items()), t.metrics) for t in records]


def m(t: TrialRecord) -> dict[str, Any]:
    """The trial's full-period metrics (it must have them)."""
    assert t.metrics is not None, t
    return t.metrics


def counted(records: list[TrialRecord]) -> list[TrialRecord]:
    return [t for t in records if t.status in COUNTED]


class StopOnce(SmaCross):
    """sma_cross that raises KeyboardInterrupt (as Ctrl-C would) the first time it runs with fast = 10."""

    name = "stop_once"
    armed = True

    def on_bar(self, ctx, bar):
        if StopOnce.armed and self.params.fast == 10:
            StopOnce.armed = False
            raise KeyboardInterrupt
        return super().on_bar(ctx, bar)


class Crashing(SmaCross):
    """sma_cross whose on_bar raises with fast = 10 (the engine disables it)."""

    name = "crashing"

    def on_bar(self, ctx, bar):
        if self.params.fast == 10:
            raise RuntimeError("no fast=10 today")
        return super().on_bar(ctx, bar)


# --- determinism, grid, constraints -------------------------------------------------------------------

def test_the_same_seed_gives_the_same_trials_and_metrics(tmp_path, data):
    runs = [run_study(BASE, WIDE, data, storage=mem(), method="random", n_trials=5, seed=7,
                      filters=FEW) for i in range(2)]
    assert outcome(runs[0].trials) == outcome(runs[1].trials)
    assert len({tuple(sorted(t.params.items())) for t in runs[0].trials}) > 1
    other = run_study(BASE, WIDE, data, storage=mem(), method="random", n_trials=5, seed=8, filters=FEW)
    assert [t.params for t in other.trials] != [t.params for t in runs[0].trials]


def test_grid_runs_every_combination_meeting_the_constraints_once_in_order(tmp_path, data):
    space = sma(constraints=["fast * 4 <= slow"])  # drops (10, 20), (15, 20) and (15, 40)
    result = run_study(BASE, space, data, storage=mem(), method="grid", filters=FEW)
    assert result.grid_size == 6 and result.target == 3
    assert [(t.params["params.fast"], t.params["params.slow"]) for t in result.trials] == [(5, 20), (5, 40), (10, 40)]
    assert result.replays == 3 and all(t.status == "complete" for t in result.trials)


def test_a_grid_above_a_thousand_combinations_warns_and_suggests_other_methods(tmp_path, data):
    big = parse_space({"params": {"fast": {"type": "int", "low": 1, "high": 40},
                                  "slow": {"type": "int", "low": 41, "high": 80}}}, strategy="sma_cross")
    warnings: list[str] = []
    result = run_study(BASE, big, data, storage=mem(), method="grid", n_trials=2, filters=FEW,
                       warn=warnings.append)
    assert result.grid_size == 1600 and result.target == 2 and len(counted(result.trials)) == 2
    assert len(warnings) == 1 and "1,600 combinations" in warnings[0] and "random" in warnings[0]
    quiet: list[str] = []
    run_study(BASE, sma(), data, storage=mem(), method="grid", filters=FEW, warn=quiet.append)
    assert quiet == []


def test_sampled_trials_always_meet_the_constraints_and_skipped_ones_do_not_count(tmp_path, data):
    space = parse_space({"params": {"fast": {"type": "int", "low": 5, "high": 60},
                                    "slow": {"type": "int", "low": 10, "high": 70}},
                         "constraints": ["fast + 10 <= slow"]}, strategy="sma_cross")
    result = run_study(BASE, space, data, storage=mem(), method="tpe", n_trials=8, seed=3, filters=FEW)
    replayed = [t for t in result.trials if t.status != "skipped"]
    assert len(counted(result.trials)) == 8 == len(replayed)
    assert all(t.params["params.fast"] + 10 <= t.params["params.slow"] for t in replayed)
    skipped = [t for t in result.trials if t.status == "skipped"]
    assert skipped, "with this seed TPE proposes points breaking the constraint"
    assert all("fast + 10 <= slow" in t.reason and t.metrics is None for t in skipped)


def test_tpe_learns_from_samples_breaking_a_constraint_instead_of_stalling(data):
    """The shipped sma_cross space, whose constraint rules out part of the box: TPE is told such a sample is as
    bad as the worst seen (a FAIL it would ignore and sample the same region again, until the
    study gave up after 1,000 skips in a row)."""
    space = parse_space({"params": {"fast": {"type": "int", "low": 10, "high": 100, "step": 10},
                                    "slow": {"type": "int", "low": 50, "high": 400, "step": 50}},
                         "constraints": ["fast * 2 <= slow"]}, strategy="sma_cross")  # spaces/sma_cross.toml's
    result = run_study(BASE, space, data, storage=mem(), method="tpe", n_trials=60, seed=0, filters=FEW)
    assert len(counted(result.trials)) == 60
    skipped = [t for t in result.trials if t.status == "skipped"]
    assert len(skipped) < 20, f"{len(skipped)} skipped samples for 60 trials"  # told FAIL: 51 here
    assert all(t not in result.ranked for t in skipped)


# --- filters, failures, pruning -------------------------------------------------------------------------

def test_filtered_and_failing_trials_are_recorded_with_reasons_and_never_ranked(tmp_path, data):
    space = parse_space({"params": {"fast": {"type": "categorical", "choices": [5, 40]},
                                    "slow": {"type": "categorical", "choices": [30, 60]}}}, strategy="sma_cross")
    result = run_study(BASE, space, data, storage=mem(), method="grid",
                       filters=TrialFilters(min_trades=25, max_drawdown=0.5))
    by = {(t.params["params.fast"], t.params["params.slow"]): t for t in result.trials}
    failed = by[(40, 30)]  # fast >= slow: the strategy refuses its parameters
    assert failed.status == "failed" and "fast (40) must be smaller than slow (30)" in failed.reason
    few = [t for t in result.trials if t.status == "filtered"]
    assert few and all(m(t)["trades"] < 25 and "min trades 25" in t.reason for t in few)
    assert all(t.status == "complete" and m(t)["trades"] >= 25 for t in result.ranked)
    assert {t.number for t in result.ranked} | {t.number for t in few} | {failed.number} == {t.number for t in result.trials}
    assert len(counted(result.trials)) == 4


def test_filters_apply_when_ranking_so_a_resumed_study_is_ranked_under_the_new_ones(data):
    storage = mem()
    strict = run_study(BASE, sma(), data, storage=storage, study_name="f", method="grid",
                       filters=TrialFilters(min_trades=40))
    loose = run_study(BASE, sma(), data, storage=storage, study_name="f", method="grid", filters=FEW)
    assert loose.new_trials == 0 and {t.status for t in strict.trials} == {"complete", "filtered"}
    assert {t.status for t in loose.trials} == {"complete"} and len(loose.ranked) == 6 > len(strict.ranked)


def test_a_strategy_that_raises_fails_its_trial_and_the_study_goes_on(tmp_path, data):
    strategy = f"{__name__}:Crashing"
    space = parse_space({"params": {"fast": {"type": "int", "low": 5, "high": 15, "step": 5}}}, strategy=strategy)
    result = run_study(RunSpec(strategy=strategy, params={"slow": 40}), space, data, storage=mem(),
                       method="grid", filters=FEW)
    statuses = {t.params["params.fast"]: (t.status, t.reason) for t in result.trials}
    assert statuses[5][0] == statuses[15][0] == "complete"
    assert statuses[10][0] == "failed"
    assert "the strategy raised and was disabled" in statuses[10][1] and "no fast=10 today" in statuses[10][1]


def test_pruning_stops_trials_worse_than_the_median_at_half_the_period(tmp_path, data):
    result = run_study(BASE, WIDE, data, storage=mem(), method="random", n_trials=12, seed=1, filters=FEW)
    assert result.pruning
    pruned = [t for t in result.trials if t.status == "pruned"]
    kept = [t for t in result.trials if t.status in ("complete", "filtered")]
    assert pruned and kept
    for t in pruned:
        assert t.metrics is None and t.intermediate is not None and "50% of the period" in t.reason
    # every trial replayed to the end carries its half-period value too (what the pruner compared)
    assert all(t.intermediate is not None for t in kept)
    assert len(counted(result.trials)) == 12
    off = run_study(BASE, WIDE, data, storage=mem(), method="random", n_trials=7, seed=1, filters=FEW,
                    prune=False)
    assert not any(t.status == "pruned" for t in off.trials)


# --- resume, interruption, crash ---------------------------------------------------------------------------

def test_a_study_resumes_to_its_total_number_of_trials(tmp_path, data):
    url = db(tmp_path)  # a fresh process each time would see only what the database holds
    first = run_study(BASE, WIDE, data, storage=url, study_name="resume", method="tpe", n_trials=5, seed=2, filters=FEW)
    again = run_study(BASE, WIDE, data, storage=url, study_name="resume", method="tpe", n_trials=8, filters=FEW)
    assert first.new_trials == 5 and again.new_trials == 3
    assert len(counted(again.trials)) == 8 and again.seed == first.seed  # the seed is kept with the study
    assert outcome(again.trials[:len(first.trials)]) == outcome(first.trials)
    done = run_study(BASE, WIDE, data, storage=url, study_name="resume", method="tpe", n_trials=8, filters=FEW)
    assert done.new_trials == 0 and done.replays == 0


def test_a_resumed_study_must_match_what_it_was_created_for(tmp_path, data):
    storage = mem()
    run_study(BASE, sma(), data, storage=storage, study_name="fixed", method="grid", filters=FEW)
    with pytest.raises(OptimizeError, match="study 'fixed' exists and was created with method 'grid'"):
        run_study(BASE, sma(), data, storage=storage, study_name="fixed", method="random", filters=FEW)
    with pytest.raises(OptimizeError, match="a different search space"):
        run_study(BASE, WIDE, data, storage=storage, study_name="fixed", method="grid", filters=FEW)


def test_an_interrupted_study_records_its_running_trial_and_a_rerun_finishes_it(tmp_path, data):
    StopOnce.armed = True
    strategy = f"{__name__}:StopOnce"
    space = parse_space({"params": {"fast": {"type": "int", "low": 5, "high": 15, "step": 5}}}, strategy=strategy)
    base = RunSpec(strategy=strategy, params={"slow": 40})
    url = db(tmp_path)
    first = run_study(base, space, data, storage=url, study_name="stop", method="grid", filters=FEW)
    assert first.interrupted
    assert [(t.params["params.fast"], t.status) for t in first.trials] == [(5, "complete"), (10, "interrupted")]
    second = run_study(base, space, data, storage=url, study_name="stop", method="grid", filters=FEW)
    assert not second.interrupted and second.new_trials == 2  # fast=10 again, then fast=15
    finished = {t.params["params.fast"] for t in second.trials if t.status == "complete"}
    assert finished == {5, 10, 15}


def test_trials_left_running_by_a_killed_run_are_recorded_interrupted_on_resume(tmp_path, data):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    storage = open_study_storage(db(tmp_path))
    first = run_study(BASE, sma(), data, storage=storage, study_name="crash", method="grid", n_trials=2, filters=FEW)
    study = optuna.load_study(study_name="crash", storage=storage)
    orphan = study.ask()  # what a run killed with -9 leaves behind: a trial RUNNING forever
    import socket

    orphan.set_user_attr("tradingd_runner", f"{socket.gethostname()}:{dead_pid}")
    resumed = run_study(BASE, sma(), data, storage=storage, study_name="crash", method="grid", n_trials=4, filters=FEW)
    by_number = {t.number: t for t in resumed.trials}
    assert by_number[orphan.number].status == "interrupted" and str(dead_pid) in by_number[orphan.number].reason
    assert len(counted(resumed.trials)) == 4 and first.new_trials == 2 and resumed.new_trials == 2


# --- cache, workers, objectives, methods ---------------------------------------------------------------

def test_parameter_sets_already_replayed_on_the_same_data_come_from_the_cache(tmp_path, data):
    storage = mem()
    first = run_study(BASE, sma(), data, storage=storage, study_name="a", method="grid", filters=FEW)
    second = run_study(BASE, sma(), data, storage=storage, study_name="b", method="grid", filters=FEW)
    assert first.replays == 6 and second.replays == 0 and second.cache_hits == 6
    assert all(t.cached for t in second.trials)
    assert [t.metrics for t in second.trials] == [t.metrics for t in first.trials]
    costly = BASE.model_copy(update={"fill": BASE.fill.model_copy(update={"slippage_bps": 5.0})})
    third = run_study(costly, sma(), data, storage=storage, study_name="c", method="grid", filters=FEW)
    assert third.replays == 6 and third.cache_hits == 0  # other settings: another spec hash
    fourth = run_study(BASE, sma(), data, storage=storage, study_name="d", method="grid", filters=FEW,
                       use_cache=False)
    assert fourth.replays == 6
    assert CACHE_STUDY in {s.study_name for s in optuna.get_all_study_summaries(storage)}


def test_a_warm_cache_prunes_the_same_trials_as_a_fresh_study(tmp_path, data):
    """A cache hit shows the pruner the half-period value its replay reported, so which trials are
    pruned (and so the statistics over the kept ones) does not depend on the cache being warm."""
    storage = mem()
    fresh = run_study(BASE, WIDE, data, storage=storage, study_name="fresh", method="random", n_trials=12, seed=1,
                      filters=FEW)
    warm = run_study(BASE, WIDE, data, storage=storage, study_name="warm", method="random", n_trials=12, seed=1,
                     filters=FEW)
    assert any(t.status == "pruned" for t in fresh.trials) and warm.cache_hits > 0
    assert [(t.params, t.status) for t in warm.trials] == [(t.params, t.status) for t in fresh.trials]
    assert [t.metrics for t in warm.trials] == [t.metrics for t in fresh.trials]
    assert any(t.cached and t.intermediate is not None for t in warm.trials)


def direct_returns(result: Any, trial: TrialRecord, data: StudyData) -> pd.Series:
    """The daily returns of a trial's parameter set, from a replay of our own."""
    setup = result.space.apply(result.base, trial.params)
    replay = run_replay(data.get(setup.timeframe), setup.spec, store=MemoryStore(), alerts=MemoryAlertSink())
    return daily_returns(pd.Series(replay.equity, index=pd.to_datetime(replay.equity_ts, unit="ns", utc=True)))


def test_replayed_trials_keep_their_daily_returns_in_the_storage_and_the_cache(tmp_path, data):
    url = db(tmp_path)
    first = run_study(BASE, sma(), data, storage=url, study_name="a", method="grid", jobs=2, filters=FEW)
    kept = [t for t in first.trials if t.status in ("complete", "filtered")]
    assert len(kept) == 6 and first.replays == 6
    for trial in kept:  # computed by the worker's replay, the same as a replay of our own
        assert trial.returns is not None
        pd.testing.assert_series_equal(trial.returns.series(), direct_returns(first, trial, data), check_names=False)
    # running the same command again reads them back from the study storage
    again = run_study(BASE, sma(), data, storage=url, study_name="a", method="grid", filters=FEW)
    assert again.new_trials == 0 and [t.returns for t in again.trials] == [t.returns for t in first.trials]
    # another study of the same sets takes metrics and returns from the result cache
    other = run_study(BASE, sma(), data, storage=url, study_name="b", method="grid", filters=FEW)
    assert other.replays == 0 and other.cache_hits == 6
    assert [t.returns for t in other.trials] == [t.returns for t in first.trials]
    assert RETURNS_STUDY in {s.study_name for s in optuna.get_all_study_summaries(open_study_storage(url))}


def test_a_parameter_set_asked_again_in_a_study_is_not_replayed_and_ranked_once(data):
    result = run_study(BASE, sma(), data, storage=mem(), method="random", n_trials=12, seed=3, filters=FEW,
                       prune=False)
    distinct = {tuple(sorted(t.params.items())) for t in result.trials}
    assert len(distinct) <= 6 < 12  # 6 combinations, 12 trials: some asked again
    assert result.replays == len(distinct) and result.cache_hits == 12 - len(distinct)
    again = [t for t in result.trials if t.cached]
    assert again and all(t.replay_s is None for t in again)
    assert len(result.ranked) == len(distinct) == len({tuple(sorted(t.params.items())) for t in result.ranked})


def test_two_worker_processes_give_the_same_grid_trials_as_one(tmp_path, data):
    space = sma(timeframe={"type": "categorical", "choices": ["1h"]})
    one = run_study(BASE, space, data, storage=mem(), method="grid", jobs=1, filters=FEW)
    two = run_study(BASE, space, data, storage=mem(), method="grid", jobs=2, filters=FEW)
    assert two.replays == 6 and outcome(two.trials) == outcome(one.trials)


def test_workers_prune_and_fail_trials_like_the_main_process(tmp_path, data):
    result = run_study(BASE, WIDE, data, storage=mem(), method="random", n_trials=12, seed=1, jobs=2,
                       filters=FEW)
    assert len(counted(result.trials)) == 12 and result.replays == 12 - result.cache_hits
    assert {t.status for t in result.trials} <= {"complete", "filtered", "pruned", "failed", "skipped"}


def test_several_objectives_give_a_pareto_front_of_non_dominated_trials(tmp_path, data):
    result = run_study(BASE, WIDE, data, storage=mem(), method="nsga2", objectives="sharpe,max_drawdown",
                       n_trials=8, seed=4, filters=FEW)
    assert result.directions == ("maximize", "minimize") and not result.pruning
    complete = [t for t in result.trials if t.status == "complete"]
    assert result.pareto and set(t.number for t in result.pareto) <= {t.number for t in complete}

    def dominated(t: TrialRecord) -> bool:
        return any(m(o)["sharpe"] >= m(t)["sharpe"] and m(o)["max_drawdown"] <= m(t)["max_drawdown"]
                   and (m(o)["sharpe"], m(o)["max_drawdown"]) != (m(t)["sharpe"], m(t)["max_drawdown"])
                   for o in complete)

    def point(t: TrialRecord) -> tuple[Any, ...]:
        return tuple(sorted(t.params.items()))

    assert {point(t) for t in complete if not dominated(t)} == {point(t) for t in result.pareto}
    assert len({point(t) for t in result.pareto}) == len(result.pareto)
    assert result.ranked[:len(result.pareto)] == sorted(result.pareto, key=lambda t: -m(t)["sharpe"])


@pytest.mark.parametrize("method", ["random", "lhs", "sobol", "tpe", "cmaes", "nsga2"])
def test_every_method_runs_its_trials(tmp_path, data, method):
    result = run_study(BASE, WIDE, data, storage=mem(), method=method, n_trials=4, seed=5, filters=FEW)
    assert len(counted(result.trials)) == 4 and result.method == method
    replayed = [t for t in result.trials if t.status != "skipped"]
    assert all(2 <= t.params["params.fast"] < t.params["params.slow"] <= 120 for t in replayed)


def test_the_best_trial_replays_to_its_reported_metrics(tmp_path, data):
    result = run_study(BASE, sma(), data, storage=mem(), method="grid", filters=FEW)
    assert result.best is not None and result.best_setup is not None
    replayed = run_replay(list(data.get(result.best_setup.timeframe)), result.best_setup.spec, store=MemoryStore(),
                          alerts=MemoryAlertSink())
    assert trial_metrics(replayed) == result.best.metrics
    sharpes = [m(t)["sharpe"] for t in result.ranked]
    assert sharpes == sorted(sharpes, reverse=True) and m(result.best)["sharpe"] == max(sharpes)


def test_timeframes_of_the_space_are_aggregated_from_bars_loaded_once(tmp_path):
    space = parse_space({"params": {"fast": {"type": "int", "low": 3, "high": 5, "step": 2}},
                         "timeframe": {"type": "categorical", "choices": ["1h", "4h", "1d"]}}, strategy="sma_cross")
    data = StudyData.load([SPY], timeframes=space.timeframes() or (), start=datetime(2019, 1, 1, tzinfo=timezone.utc),
                          end=datetime(2020, 1, 1, tzinfo=timezone.utc))
    assert {k: len(v[0]) for k, v in data.series.items()} == {"1h": 1755, "4h": 504, "1d": 252}
    result = run_study(RunSpec(strategy="sma_cross", params={"slow": 12}), space, data, storage=mem(), method="grid",
                       filters=TrialFilters(0))
    assert len(result.trials) == 6
    by_timeframe = {t.params["timeframe"] for t in result.trials if t.status == "complete"}
    assert by_timeframe == {"1h", "4h", "1d"}


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "annealing"}, "unknown method 'annealing'; choose from grid, random"),
    ({"objectives": "sharpe,alpha"}, "unknown objective 'alpha'"),
    ({"method": "cmaes", "objectives": "sharpe,max_drawdown"}, "cmaes optimizes one objective"),
    ({"objectives": "sharpe,max_drawdown", "prune": True}, "pruning needs a single objective"),
    ({"n_trials": 0}, "trials 0: must be 1 or more"),
    ({"jobs": 0}, "jobs 0: must be 1 or more"),
])
def test_a_study_that_cannot_run_as_asked_says_why(tmp_path, data, kwargs, message):
    with pytest.raises(OptimizeError, match=message):
        run_study(BASE, WIDE, data, storage=mem(), **kwargs)


def test_a_timeframe_the_data_lacks_is_refused_before_any_trial(tmp_path, data):
    with pytest.raises(OptimizeError, match="timeframe '4h' was not loaded"):
        run_study(BASE, sma(timeframe={"type": "categorical", "choices": ["4h"]}), data, storage=mem())


def test_objectives_and_directions():
    assert parse_objectives(["sharpe"]) == ("sharpe",)
    assert OBJECTIVES["max_drawdown"] == "minimize" and OBJECTIVES["sharpe"] == "maximize"
    with pytest.raises(OptimizeError, match="objective repeated"):
        parse_objectives("sharpe,sharpe")


def test_a_study_on_postgresql_persists_and_resumes(postgres_url, data):
    name = f"pg-{datetime.now(timezone.utc):%H%M%S%f}"
    first = run_study(BASE, WIDE, data, storage=postgres_url, study_name=name, method="random", n_trials=3, seed=1,
                      filters=FEW)
    again = run_study(BASE, WIDE, data, storage=postgres_url, study_name=name, method="random", n_trials=5, filters=FEW)
    assert first.new_trials == 3 and again.new_trials == 2 and len(counted(again.trials)) == 5
    assert again.storage.startswith("postgresql")
