"""Benchmark: bars/s of the full replay pipeline (engine, signals, strategy, risk, paper broker,
batched SQLite state writes) on 1,000,000 one-minute bars, plus peak memory.

Run:  .venv/bin/python benchmarks/replay_throughput.py [--bars 1000000] [--strategy sma_cross online_ml]

Each strategy runs in its own subprocess so the peak RSS figure is that run's alone. The bars are
a seeded geometric random walk (speed does not depend on where prices come from; the bundled real
sample has ~200k hourly bars, too few for this size). Loading/merging time is reported separately
from the replay time; report writing is not part of the figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
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
    return BarSeries("BENCH", NANOS_PER_MINUTE, ts, open_, high, low, close, volume, "synthetic", "")


def run_one(strategy_name: str, bars: int) -> dict:
    from alerts.sinks import MemoryAlertSink
    from backtest.replay import run_replay
    from backtest.spec import RunSpec
    from state.config import StoreConfig
    from state.store import SqlStore

    series = make_series(bars)
    params = {"sma_cross": {"fast": 20, "slow": 100}, "online_ml": {}}.get(strategy_name, {})
    spec = RunSpec(strategy=strategy_name, params=params)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(StoreConfig(database_url=f"sqlite:///{tmp}/bench.db", batch_size=5000), account="bench",
                         durable_state=False)  # as the replay job opens it
        store.start_run("bench", "replay", strategy_name, params, "", "", 0)
        started = time.perf_counter()
        result = run_replay([series], spec, store=store, alerts=MemoryAlertSink(), run_id="bench")
        total = time.perf_counter() - started
        store.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"strategy": strategy_name, "bars": result.bars, "seconds": round(total, 3),
            "bars_per_s": round(result.bars / total), "trades": len(result.trades), "fills": len(result.fills),
            "peak_rss_mb": round(peak_mb)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--strategy", nargs="+", default=["sma_cross", "online_ml"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.strategy[0], args.bars)))
        return
    print(f"full pipeline, {args.bars:,} one-minute bars, one core, batched SQLite writes")
    for name in args.strategy:
        out = subprocess.run([sys.executable, __file__, "--child", "--bars", str(args.bars), "--strategy", name],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        print(f"{r['strategy']:<12} {r['bars_per_s']:>10,} bars/s  {r['seconds']:>7.2f} s  "
              f"trades {r['trades']:>6,}  fills {r['fills']:>6,}  peak RSS {r['peak_rss_mb']:>5,} MB")


if __name__ == "__main__":
    main()
