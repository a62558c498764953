"""Benchmark: the same 20-combination sma_cross grid by ``tradingd optimize --method grid`` and by
backtrader's ``Cerebro.optstrategy``, on the same data file, side by side in one run.

Run:  .venv/bin/python benchmarks/optimize_vs_backtrader.py [--data FILE] [--jobs 1 2] [--show-trades]

Both sides are timed whole-process, as a user runs them: a fresh interpreter per run, imports,
reading the CSV, every replay, the results (tradingd also its study database and output files).
The grid is ``fast`` in 10..50 step 10 x ``slow`` in 100..250 step 50 on hourly bars of the bundled
SPY file (40,832 bars, 1998-2021). ``--jobs N`` is ``tradingd optimize --jobs N`` and
``optstrategy``'s ``maxcpus=N`` (both fork worker processes that share the loaded bars).

The strategies trade the same rule: long when the fast SMA of closes crosses above the slow one,
flat on the cross below, market orders filled at the next bar's open, 10 % of equity per entry,
2 bps slippage and 0.5 bps commission; tradingd's drawdown and loss-streak breakers are relaxed
so they do not stop trading. ``--show-trades`` prints each combination's round trips by both as a
check that they ran the same rule (small differences come from sizing at the close vs the fill).

Needs backtrader in the virtualenv (``pip install backtrader==1.9.78.123``), for this benchmark only.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "us_equity_1hour_adjusted" / "SPY.csv.gz"
FAST = list(range(10, 51, 10))
SLOW = list(range(100, 251, 50))
SPACE = f"""strategy = "sma_cross"
[params.fast]
type = "int"
low = {FAST[0]}
high = {FAST[-1]}
step = {FAST[1] - FAST[0]}
[params.slow]
type = "int"
low = {SLOW[0]}
high = {SLOW[-1]}
step = {SLOW[1] - SLOW[0]}
"""
CONFIG = """[strategy]
name = "sma_cross"
[replay]
starting_cash = 100000.0
[fill]
slippage_bps = 2.0
commission_bps = 0.5
[risk]
sizing = "fixed_fraction"
fixed_fraction = 0.10
max_position_fraction = 0.10
max_drawdown = 1.0
daily_loss_limit = 1.0
max_consecutive_losses = 1000000
[logging]
level = "WARNING"
"""

try:
    import backtrader as bt  # type: ignore[import-untyped]
except ImportError:  # main() says how to install it
    bt = None

if bt is not None:
    class BtSmaCross(bt.Strategy):
        """sma_cross in backtrader (module level: optstrategy's worker processes pickle it by name)."""

        params = (("fast", 10), ("slow", 30))

        def __init__(self) -> None:
            fast = bt.ind.SMA(self.data.close, period=self.p.fast)
            slow = bt.ind.SMA(self.data.close, period=self.p.slow)
            self.cross = bt.ind.CrossOver(fast, slow)

        def next(self) -> None:
            if self.cross > 0 and not self.position:
                self.buy()
            elif self.cross < 0 and self.position:
                self.close()


def run_tradingd(data: Path, jobs: int, folder: Path) -> tuple[float, dict[tuple[int, int], int]]:
    """Wall seconds of ``tradingd optimize --method grid`` as a subprocess, and trades per (fast, slow)."""
    (folder / "space.toml").write_text(SPACE)
    (folder / "bench.toml").write_text(CONFIG)
    out = folder / f"out-{jobs}"
    command = [str(Path(sys.executable).with_name("tradingd")), "optimize", "-c", str(folder / "bench.toml"),
               "--data", str(data), "--space", str(folder / "space.toml"), "--method", "grid", "--jobs", str(jobs),
               "--no-cache", "--no-prune", "--no-progress", "--min-trades", "0", "--db",
               f"sqlite:///{folder / f'state-{jobs}.db'}", "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"tradingd optimize failed ({done.returncode}):\n{done.stderr[-3000:]}")
    with open(out / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    trades = {(int(r["params.fast"]), int(r["params.slow"])): int(r["trades"] or 0) for r in rows}
    if len(trades) != len(FAST) * len(SLOW):
        raise SystemExit(f"tradingd ran {len(trades)} combinations, not {len(FAST) * len(SLOW)}")
    return wall, trades


def run_backtrader(data: Path, jobs: int) -> tuple[float, dict[tuple[int, int], int]]:
    """Wall seconds of this file's ``--backtrader`` mode as a subprocess, and trades per (fast, slow)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--backtrader", "--data", str(data), "--jobs", str(jobs)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"backtrader failed ({done.returncode}):\n{done.stderr[-3000:]}")
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    return wall, {(r["fast"], r["slow"]): r["trades"] for r in rows}


def backtrader_main(data: Path, jobs: int) -> None:
    """The backtrader side: load the file, optstrategy over the grid, print trades per combination."""
    import pandas as pd

    frame = pd.read_csv(data)
    frame.index = pd.to_datetime(frame.pop("timestamp"), utc=True).dt.tz_localize(None)
    cerebro = bt.Cerebro(maxcpus=jobs, stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, openinterest=None))
    cerebro.broker.setcash(100_000.0)
    cerebro.broker.setcommission(commission=0.00005)  # 0.5 bps of notional
    cerebro.broker.set_slippage_perc(0.0002)  # 2 bps adverse
    cerebro.addsizer(bt.sizers.PercentSizer, percents=10)
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    cerebro.optstrategy(BtSmaCross, fast=FAST, slow=SLOW)
    results = cerebro.run()
    rows = []
    for (strategy,) in results:
        closed = strategy.analyzers.trades.get_analysis().get("total", {}).get("closed", 0)
        rows.append({"fast": strategy.params.fast, "slow": strategy.params.slow, "trades": int(closed)})
    print(json.dumps(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--show-trades", action="store_true")
    parser.add_argument("--backtrader", action="store_true", help=argparse.SUPPRESS)  # the subprocess side
    args = parser.parse_args()
    if args.backtrader:
        backtrader_main(args.data, args.jobs[0])
        return
    if bt is None:
        raise SystemExit("backtrader is not installed: .venv/bin/pip install backtrader==1.9.78.123")
    combos = len(FAST) * len(SLOW)
    print(f"{combos}-combination sma_cross grid on {args.data.name}; tradingd vs backtrader {bt.__version__}; "
          f"{os.cpu_count()} CPUs", flush=True)
    print(f"{'jobs':>4} {'tradingd s':>11} {'backtrader s':>13} {'ratio':>7} {'tradingd trials/s':>18}", flush=True)
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in args.jobs:
            ours, our_trades = run_tradingd(args.data, jobs, Path(tmp))
            theirs, their_trades = run_backtrader(args.data, jobs)
            figures.append({"jobs": jobs, "tradingd_s": round(ours, 2), "backtrader_s": round(theirs, 2),
                            "ratio": round(theirs / ours, 2)})
            print(f"{jobs:>4} {ours:>11.2f} {theirs:>13.2f} {theirs / ours:>6.1f}x {combos / ours:>18.2f}", flush=True)
            if args.show_trades:
                for key in sorted(our_trades):
                    print(f"     fast {key[0]:>3} slow {key[1]:>3}: tradingd {our_trades[key]:>4} round trips, "
                          f"backtrader {their_trades.get(key, 0):>4}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
