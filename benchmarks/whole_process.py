"""Benchmark: the whole `tradingd replay` command, as a user waits for it (imports, CSV parsing,
the replay, the state database, every output file and the HTML report), plus backtrader on the
same file for comparison.

Run:  .venv/bin/python benchmarks/whole_process.py [--bars 300000] [--repeat 3] [--no-backtrader]
      .venv/bin/python benchmarks/whole_process.py --bars 1000000 --repeat 1 --no-backtrader
      .venv/bin/python benchmarks/whole_process.py --bars 3000000 --growth-from 1000000 --repeat 1 --no-backtrader

The data is one symbol of one-minute bars, a seeded geometric random walk written like our data
files: ``timestamp,open,high,low,close,volume`` as gzip CSV with ISO-8601 timestamps carrying a
UTC offset (``2020-01-01T09:30:00-05:00``). Files are cached under ``--cache`` (default: the
system temp folder) by bar count and seed, so only the first run pays for writing them.

Each timed run is a fresh subprocess: ``tradingd replay --config config.toml --data FILE
--strategy sma_cross --param fast=10 --param slow=30 --out DIR --db sqlite:///NEW.db
--no-progress`` (default outputs, report included), in a fresh temporary folder. Figures: wall
time, bars/s (bars / wall time) and the child's peak RSS (``ru_maxrss`` of that child alone, read
with ``os.wait4``). The machine may be shared: each figure is the best of ``--repeat`` runs.
With ``--growth-from N`` tradingd also replays an N-bar file and the peak RSS growth per bar is
printed, ``(peak(bars) - peak(N)) / (bars - N)`` in bytes: what each further bar costs, without
the fixed cost of imports and the report (1 MB = 2**20 bytes here).

backtrader (``pip install backtrader`` into .venv; it is not a dependency of tradingd) runs the
same strategy on the same file in its own subprocess: pandas reads the file, a ``PandasData`` feed
carries it, two SMAs and a ``CrossOver`` buy 10% of equity on the up-cross and close on the
down-cross, with 0.5 bps commission (the bundled config's fill costs, without slippage).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MINUTE_NS = 60 * 1_000_000_000
OFFSET_NS = -5 * 3600 * 1_000_000_000  # timestamps written in US Eastern standard time (-05:00)


def make_file(bars: int, seed: int, folder: Path) -> Path:
    """Write (once) and return ``BENCH.csv.gz`` with ``bars`` one-minute bars of a random walk."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    path = folder / f"whole_process_{bars}_{seed}" / "BENCH.csv.gz"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, bars)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.0005, bars)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.integers(1_000, 50_000, bars)
    start = 1_577_889_000 * 1_000_000_000  # 2020-01-01T14:30:00Z = 09:30 in New York
    local = (start + OFFSET_NS + np.arange(bars, dtype=np.int64) * MINUTE_NS).view("datetime64[ns]")
    stamps = pc.binary_join_element_wise(pa.array(np.datetime_as_string(local, unit="s")), "-05:00", "")
    columns = {"timestamp": stamps, "open": np.round(open_, 4), "high": np.round(high, 4),
               "low": np.round(low, 4), "close": np.round(close, 4), "volume": volume}
    # round after max/min: keep high >= max(open, close) and low <= min(open, close) exactly
    columns["high"] = np.maximum(columns["high"], np.maximum(columns["open"], columns["close"]))
    columns["low"] = np.minimum(columns["low"], np.minimum(columns["open"], columns["close"]))
    partial = path.with_suffix(".tmp")
    with gzip.open(partial, "wb", compresslevel=6) as sink:
        sink.write(b"timestamp,open,high,low,close,volume\n")
        pa_csv.write_csv(pa.table(columns), sink, pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    partial.replace(path)
    return path


def timed(argv: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run ``argv`` in ``cwd``; return (wall s, peak RSS MB of that child, stdout). Raises on failure."""
    started = time.perf_counter()
    with open(cwd / "stdout.txt", "w+b") as out, open(cwd / "stderr.txt", "w+b") as err:
        child = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({child.returncode}):\n{stdout}\n{stderr}")
    return wall, usage.ru_maxrss / 1024, stdout


def run_tradingd(data: Path, keep: Path | None) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="whole_process_") as tmp:
        work = Path(tmp)
        out = work / "out"
        argv = [str(ROOT / ".venv" / "bin" / "tradingd"), "replay", "--config", str(ROOT / "config.toml"),
                "--data", str(data), "--strategy", "sma_cross", "--param", "fast=10", "--param", "slow=30",
                "--out", str(out), "--db", f"sqlite:///{work / 'state.db'}", "--no-progress"]
        wall, rss, _ = timed(argv, work)
        missing = [name for name in ("report.html", "metrics.json", "trades.csv", "equity.csv")
                   if not (out / name).exists()]
        if missing:
            raise SystemExit(f"tradingd replay wrote no {', '.join(missing)}")
        if keep is not None:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(out, keep)
    return wall, rss


BACKTRADER = r'''
import sys, json
import backtrader as bt
import pandas as pd

frame = pd.read_csv(sys.argv[1])
frame.index = pd.to_datetime(frame.pop("timestamp"), format="ISO8601", utc=True).dt.tz_localize(None)

class SmaCross(bt.Strategy):
    params = dict(fast=10, slow=30)

    def __init__(self):
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))

    def next(self):
        if self.cross > 0 and not self.position:
            self.order_target_percent(target=0.10)
        elif self.cross < 0 and self.position:
            self.close()

cerebro = bt.Cerebro(stdstats=False)
cerebro.adddata(bt.feeds.PandasData(dataname=frame))
cerebro.addstrategy(SmaCross)
cerebro.broker.setcash(100_000.0)
cerebro.broker.setcommission(commission=0.00005)
cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
strategy = cerebro.run()[0]
closed = strategy.analyzers.trades.get_analysis().get("total", {}).get("closed", 0)
print(json.dumps({"trades": closed, "value": cerebro.broker.getvalue()}))
'''


def run_backtrader(data: Path) -> tuple[float, float, dict]:
    with tempfile.TemporaryDirectory(prefix="whole_process_bt_") as tmp:
        wall, rss, stdout = timed([sys.executable, "-c", BACKTRADER, str(data)], Path(tmp))
    return wall, rss, json.loads(stdout.strip().splitlines()[-1])


def backtrader_installed() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import backtrader"], capture_output=True)
    return probe.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=300_000, help="one-minute bars in the file (e.g. 1000000, 3000000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is reported")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()), help="where the data file is kept")
    parser.add_argument("--keep", type=Path, default=None, help="copy the last run's output folder here")
    parser.add_argument("--no-backtrader", action="store_true", help="skip the backtrader comparison")
    parser.add_argument("--growth-from", type=int, default=None, metavar="N",
                        help="also replay N bars and print the peak RSS growth per bar between N and --bars")
    args = parser.parse_args()
    if args.growth_from is not None and not 0 < args.growth_from < args.bars:
        parser.error(f"--growth-from must be between 0 and --bars ({args.bars:,}), got {args.growth_from:,}")

    data = make_file(args.bars, args.seed, args.cache)
    size = data.stat().st_size / 1e6
    print(f"whole process, `tradingd replay` sma_cross 10/30, {args.bars:,} one-minute bars of one symbol "
          f"({data}, {size:.1f} MB), default outputs and report; best of {args.repeat}")
    runs = [run_tradingd(data, args.keep) for _ in range(args.repeat)]
    wall, rss = min(w for w, _ in runs), min(r for _, r in runs)
    print(f"{'tradingd':<11} {wall:>7.2f} s  {args.bars / wall:>10,.0f} bars/s  peak RSS {rss:>6,.0f} MB  "
          f"(runs: {', '.join(f'{w:.2f}' for w, _ in runs)} s)")
    if args.growth_from is not None:
        small = make_file(args.growth_from, args.seed, args.cache)
        small_runs = [run_tradingd(small, None) for _ in range(args.repeat)]
        small_wall, small_rss = min(w for w, _ in small_runs), min(r for _, r in small_runs)
        growth = (rss - small_rss) * 2**20 / (args.bars - args.growth_from)
        print(f"{'':<11} {small_wall:>7.2f} s  {args.growth_from / small_wall:>10,.0f} bars/s  peak RSS "
              f"{small_rss:>6,.0f} MB  with {args.growth_from:,} bars")
        print(f"peak RSS growth {growth:,.0f} bytes a bar between {args.growth_from:,} and {args.bars:,} bars")
    if args.no_backtrader:
        return
    if not backtrader_installed():
        print("backtrader    not installed (.venv/bin/pip install backtrader): comparison skipped")
        return
    bt_runs = [run_backtrader(data) for _ in range(args.repeat)]
    bt_wall, bt_rss = min(w for w, _, _ in bt_runs), min(r for _, r, _ in bt_runs)
    print(f"{'backtrader':<11} {bt_wall:>7.2f} s  {args.bars / bt_wall:>10,.0f} bars/s  peak RSS {bt_rss:>6,.0f} MB  "
          f"(runs: {', '.join(f'{w:.2f}' for w, _, _ in bt_runs)} s; {bt_runs[0][2]['trades']:,} trades)")
    print(f"tradingd is {bt_wall / wall:.1f}x faster than backtrader on this file")


if __name__ == "__main__":
    main()
