"""Benchmark: time of ``tradingd montecarlo``'s simulations, 5,000 per method, on a 1,000-trade run.

Run:  .venv/bin/python benchmarks/monte_carlo_speed.py [--trades 1000] [--sims 5000] [--run DIR]

The run is synthetic by default (seeded): 1,000 round trips over four years of hourly equity
(~7,000 points, ~1,000 daily returns), so the figure does not depend on a strategy happening to
trade that often; ``--run DIR`` times a real replay output folder instead. Reported: seconds per
method (trade shuffle, trade bootstrap, daily block bootstrap, price noise), the total of
``run_monte_carlo`` and, separately, writing the JSON/CSVs and the HTML report. Cost replays are
replays (see benchmarks/replay_throughput.py) and are not part of the figure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synthetic_run(n_trades: int, seed: int = 7):
    """A FinishedRun of ``n_trades`` back-to-back long trades over 4 years of hourly bars."""
    import numpy as np
    import pandas as pd

    from research.finished_run import FinishedRun

    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2020-01-01", periods=4 * 252)  # 7 hourly bars a weekday, 14:00-20:00 UTC
    hours = pd.DatetimeIndex([d + pd.Timedelta(hours=h) for d in days for h in range(14, 21)], tz="UTC")
    per = len(hours) // n_trades
    cash, equity = 100_000.0, np.empty(len(hours))
    rows = []
    for k in range(n_trades):
        first, last = k * per, (k + 1) * per - 1
        quantity, price = 0.1 * cash / 100.0, 100.0
        move = rng.normal(0.001, 0.02, last - first + 1)
        path = price * np.cumprod(1 + move)
        equity[first:last + 1] = cash + quantity * (path - price)
        pnl = quantity * (path[-1] - price)
        rows.append({"trade_id": k + 1, "symbol": "SYN", "side": "buy", "quantity": quantity,
                     "entry_time": hours[first], "exit_time": hours[last], "entry_price": price,
                     "exit_price": path[-1], "pnl": pnl, "return": pnl / (quantity * price), "commission": 0.0})
        cash += pnl
    equity[n_trades * per:] = cash
    risk = {"max_drawdown": 0.2, "daily_loss_limit": 0.05, "max_consecutive_losses": 5}
    return FinishedRun(run_id="bench", strategy="synthetic", params={}, symbols=["SYN"], timeframe="1h",
                       starting_cash=100_000.0, equity=pd.Series(equity, index=hours), trades=pd.DataFrame(rows),
                       fills=pd.DataFrame(), orders=pd.DataFrame(), decisions=pd.DataFrame(), run_info={"risk": risk})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=1000)
    parser.add_argument("--sims", type=int, default=5000)
    parser.add_argument("--run", type=Path, default=None, help="a replay output folder instead of the synthetic run")
    args = parser.parse_args()

    import numpy as np

    from research import monte_carlo as mc
    from research.finished_run import load_run_folder
    from research.metrics import compute_metrics, daily_returns
    from research.reports.monte_carlo_page import write_monte_carlo_report

    run = load_run_folder(args.run) if args.run else synthetic_run(args.trades)
    days = daily_returns(run.equity)
    print(f"run {run.run_id}: {len(run.trades):,} trades, {len(run.equity):,} equity points, {len(days):,} daily "
          f"returns; {args.sims:,} simulations per method")
    trades = mc._ordered(run.trades)
    returns = mc.trade_returns(trades, run.equity, run.starting_cash)
    at_entry = mc.entry_equity(trades, run.equity, run.starting_cash)
    ppy = compute_metrics(run.equity).periods_per_year
    rng = np.random.default_rng(7)
    for name, call in (("trade_shuffle", lambda: mc.shuffle_trades(returns, args.sims, rng, 250.0)),
                       ("trade_bootstrap", lambda: mc.bootstrap_trades(returns, args.sims, rng, 250.0)),
                       ("daily_bootstrap", lambda: mc.block_bootstrap_daily(days, args.sims, rng, 20, ppy)),
                       ("price_noise", lambda: mc.price_noise(trades, at_entry, args.sims, rng, 5.0, 250.0))):
        started = time.perf_counter()
        call()
        print(f"  {name:<16} {time.perf_counter() - started:6.3f} s")
    started = time.perf_counter()
    result = mc.run_monte_carlo(run, sims=args.sims, seed=7)
    total = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        mc.write_monte_carlo_outputs(result, tmp)
        files = time.perf_counter() - started
        started = time.perf_counter()
        write_monte_carlo_report(result, tmp)
        report = time.perf_counter() - started
    print(f"run_monte_carlo (4 methods x {args.sims:,}): {total:.2f} s; montecarlo.json + CSVs {files:.2f} s; "
          f"report.html {report:.2f} s")


if __name__ == "__main__":
    main()
