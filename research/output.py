"""Write a replay's output folder: metrics.json, trades.csv, orders.csv, fills.csv, equity.csv and
report.html. CSV times are ISO-8601 UTC; money USD; fractions, not percent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from backtest.replay import ReplayResult
from research.benchmark import buy_and_hold
from research.frames import closes_series, equity_frame, fills_frame, orders_frame, trades_frame
from research.metrics import PerformanceMetrics, compute_metrics
from research.report import write_report


@dataclass(frozen=True)
class ReplaySummary:
    """Strategy and buy-and-hold metrics of one replay, plus where the files went."""

    metrics: PerformanceMetrics
    benchmark: PerformanceMetrics
    out_dir: Path | None


def _iso(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    for column in columns:
        frame[column] = frame[column].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return frame


@dataclass(frozen=True)
class _Computed:
    summary: ReplaySummary
    frames: dict[str, pd.DataFrame]  # equity, trades, fills, orders
    equity: pd.Series  # USD on the bar-end UTC index
    benchmark: pd.Series  # USD, same index
    closes: dict[str, pd.Series]


def summarize(result: ReplayResult) -> ReplaySummary:
    """Compute metrics for the strategy and for equal-weight buy-and-hold of the same symbols."""
    return _compute(result).summary


def _compute(result: ReplayResult) -> _Computed:
    frames = {"equity": equity_frame(result), "trades": trades_frame(result), "fills": fills_frame(result),
              "orders": orders_frame(result)}
    eq = frames["equity"]
    equity = pd.Series(eq["equity"].to_numpy(), index=pd.DatetimeIndex(eq["time"]), name="equity")
    exposure = pd.Series(eq["exposure"].to_numpy(), index=equity.index)
    metrics = compute_metrics(equity, trades=frames["trades"], fills=frames["fills"], exposure=exposure)
    closes = closes_series(result)
    benchmark = buy_and_hold(closes, result.starting_cash, equity.index)
    benchmark_metrics = compute_metrics(benchmark, exposure=pd.Series(1.0, index=benchmark.index))
    return _Computed(ReplaySummary(metrics, benchmark_metrics, None), frames, equity, benchmark, closes)


def write_outputs(result: ReplayResult, out_dir: Path, run_info: dict, report: bool = True) -> ReplaySummary:
    """Write every output file of ``result`` into ``out_dir`` (created if missing).

    Files are written to temporary names and renamed at the end, so an interrupted run never
    leaves a half-written file under a final name.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    computed = _compute(result)
    summary, frames, benchmark = computed.summary, computed.frames, computed.benchmark
    pending: list[tuple[Path, Path]] = []

    def target(name: str) -> Path:
        final = out_dir / name
        tmp = out_dir / f".{name}.tmp"
        pending.append((tmp, final))
        return tmp

    eq = frames["equity"].copy()
    eq["benchmark"] = benchmark.to_numpy()
    _iso(eq, ["time"]).to_csv(target("equity.csv"), index=False)
    _iso(frames["trades"], ["entry_time", "exit_time"]).to_csv(target("trades.csv"), index=False)
    _iso(frames["fills"], ["time"]).to_csv(target("fills.csv"), index=False)
    _iso(frames["orders"], ["created_time", "updated_time"]).to_csv(target("orders.csv"), index=False)
    payload = {"run": run_info, "strategy": summary.metrics.to_dict(), "buy_and_hold": summary.benchmark.to_dict(),
               "bars": result.bars, "trading_state": result.trading_state.value,
               "strategy_enabled": result.strategy_enabled}
    target("metrics.json").write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    if report:
        write_report(target("report.html"), computed.equity, benchmark, summary.metrics, summary.benchmark,
                     frames["trades"], computed.closes, title=f"tradingd replay: {result.strategy_id}",
                     run_info=run_info)
    for tmp, final in pending:
        tmp.replace(final)
    return ReplaySummary(summary.metrics, summary.benchmark, out_dir)
