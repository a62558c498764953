"""Benchmark: trials/s of a parameter study (research.optimize.run_study) for sma_cross on one
symbol's ~200,000 bars, with 1 and 2 worker processes, and the per-trial overhead beyond the replay.

Run:  .venv/bin/python benchmarks/optimize_throughput.py [--bars 200000] [--trials 6] [--jobs 1 2]

The bars are a seeded random walk of one-minute bars (speed does not depend on where prices come
from). Each study is a grid over ``fast`` with ``slow`` fixed (no pruning, no result cache, so every
trial is a full replay) in a fresh SQLite state database prepared as the CLI prepares it. Figures:

* ``trials_per_s``: trials / wall time of ``run_study`` (storage opening included);
* ``replay_s``: mean time of the replays themselves (inside the workers);
* ``overhead_s``: per trial, (wall time - the replays' time / workers) / trials at 1 worker: asking
  and telling Optuna, the storage writes, the metrics (pandas), process hand-off;
* ``bare_replay_s``: one ``run_replay`` of the same bars outside any study, for comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_series(n: int, seed: int = 7):
    import numpy as np

    from backtest.sources import BarSeries
    from core.time import NANOS_PER_MINUTE

    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.0005, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.integers(1_000, 50_000, n).astype(float)
    ts = (1_577_836_800 * 1_000_000_000) + np.arange(n, dtype=np.int64) * NANOS_PER_MINUTE
    return BarSeries("BENCH", NANOS_PER_MINUTE, ts, open_, high, low, close, volume, "synthetic", "bench")


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
        assert result.replays == args.trials, result.counts()
        replay = result.replay_s / result.replays
        figures[f"jobs_{jobs}"] = {
            "wall_s": round(wall, 3), "trials_per_s": round(args.trials / wall, 4), "replay_s": round(replay, 3),
            "bars_per_s_per_worker": round(args.bars / replay),
            "overhead_s": round((wall - result.replay_s / jobs) / args.trials, 4)}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
