"""Benchmark: trials/s of a parameter study (research.optimize.run_study) for sma_cross on one
symbol's ~200,000 bars, with 1 and 2 worker processes, the per-trial overhead beyond the replay,
and the time the overfitting statistics then take to gather the trials' daily returns.

Run:  .venv/bin/python benchmarks/optimize_throughput.py [--bars 200000] [--trials 6] [--jobs 1 2]

The bars are a seeded random walk of one-minute bars (speed does not depend on where prices come
from). Each study is a grid over ``fast`` with ``slow`` fixed (no pruning, no result cache, so every
trial is a full replay) in a fresh SQLite state database prepared as the CLI prepares it. Figures:

* ``trials_per_s``: trials / wall time of ``run_study`` (storage opening included);
* ``replay_s``: mean time of the replays themselves (inside the workers);
* ``overhead_s``: per trial, (time from the first trial's start to the last one's end - the replays'
  time / workers) / trials: asking and telling Optuna, the storage writes, the metrics and daily
  returns (pandas), the hand-off to the workers; ``overhead_pct`` is it over ``replay_s``;
* ``setup_s``: once per study, the rest of the wall time: opening the storage (Optuna creates its
  tables in the fresh database), creating the study, forking the workers, reading the trials back;
* ``overhead_with_setup_s``: (wall time - the replays' time / workers) / trials, both together;
* ``statistics_s``: ``research.study_stats.trial_returns`` after the study (the T x N matrix of the
  PBO and DSR), with ``statistics_replays`` the trials it had to replay (none when the trials
  brought their returns back);
* ``bare_replay_s``: one ``run_replay`` of the same bars outside any study, for comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from replay_throughput import make_series  # noqa: E402  (the same seeded one-minute random walk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=200_000)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    from alerts.sinks import MemoryAlertSink
    from backtest.replay import run_replay
    from backtest.spec import RunSpec
    from research.optimize import StudyData, TrialFilters, run_study
    from research.search_space import parse_space
    from research.study_stats import trial_returns
    from state import SqlStore, StoreConfig
    from state.memory import MemoryStore

    series = make_series(args.bars)
    data = StudyData.of([series])
    base = RunSpec(strategy="sma_cross", params={"slow": 400})
    step = 10
    space = parse_space({"params": {"fast": {"type": "int", "low": 10, "high": 10 + step * (args.trials - 1),
                                             "step": step}}}, strategy="sma_cross")
    started = time.perf_counter()
    run_replay([series], base.model_copy(update={"params": {"fast": 20, "slow": 400}}), store=MemoryStore(),
               alerts=MemoryAlertSink())
    bare = time.perf_counter() - started
    figures: dict[str, object] = {"bars": args.bars, "trials": args.trials, "bare_replay_s": round(bare, 3)}
    for jobs in args.jobs:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/state.db"
            SqlStore(StoreConfig(database_url=url)).close()  # as `tradingd optimize` prepares the database
            started = time.perf_counter()
            result = run_study(base, space, data, storage=url, method="grid", jobs=jobs, prune=False, use_cache=False,
                               filters=TrialFilters(min_trades=0))
            wall = time.perf_counter() - started
            started = time.perf_counter()
            returns = trial_returns(result, data, jobs=jobs)
            statistics = time.perf_counter() - started
        assert result.replays == args.trials, result.counts()
        replay = result.replay_s / result.replays
        # the trials' span, from the first one's creation to the last one's tell (UTC stamps of the storage)
        first = min(t.started for t in result.trials if t.started is not None)
        last = max(t.started + timedelta(seconds=t.duration_s or 0.0) for t in result.trials if t.started is not None)
        span = (last - first).total_seconds()
        overhead = (span - result.replay_s / jobs) / args.trials
        figures[f"jobs_{jobs}"] = {
            "wall_s": round(wall, 3), "trials_per_s": round(args.trials / wall, 4), "replay_s": round(replay, 3),
            "bars_per_s_per_worker": round(args.bars / replay),
            "overhead_s": round(overhead, 4), "overhead_pct": round(100 * overhead / replay, 2),
            "setup_s": round(wall - span, 3),
            "overhead_with_setup_s": round((wall - result.replay_s / jobs) / args.trials, 4),
            "statistics_s": round(statistics, 3),
            "statistics_replays": len(getattr(returns, "replayed", returns.returns.columns))}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
