"""The replay job: load data, build the strategy and store from a validated config, run the replay,
persist the run and write the output folder. The CLI only adds presentation around it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from alerts.sinks import FanOutAlertSink, LogAlertSink, MemoryAlertSink
from backtest.replay import ProgressCallback, ReplayResult, run_replay
from backtest.sources import BarSeries, DataError, load_many
from core.time import format_timeframe, to_nanos
from daemon.config import AppConfig
from research.output import ReplaySummary, summarize, write_outputs
from state.config import StoreConfig
from state.store import SqlStore
from strategies.registry import build_strategy


@dataclass
class ReplayOutcome:
    """A finished replay job: the raw result, its metrics, the run id in the store and the alerts."""

    result: ReplayResult
    summary: ReplaySummary
    run_id: str
    alerts: MemoryAlertSink


def load_data(config: AppConfig) -> list[BarSeries]:
    """Load and validate every data file of ``config`` (raises backtest.sources.DataError, also when
    no bar falls in ``[data] start .. end``)."""
    series = load_many(config.data_files(), timeframe=config.data.timeframe, start=config.data.start,
                       end=config.data.end)
    if not any(len(s) for s in series):
        start, end = config.data.start, config.data.end
        window = f"{start.isoformat() if start else 'the first bar'} .. {end.isoformat() if end else 'the last bar'}"
        raise DataError(f"no bars between {window} (start inclusive, end exclusive) in "
                        f"{', '.join(s.source for s in series)}")
    return series


def data_hash(series: list[BarSeries]) -> str:
    """sha256 over the files' own sha256 digests, in replay order."""
    digest = hashlib.sha256()
    for s in series:
        digest.update(f"{s.symbol}:{s.sha256}:{len(s)}".encode())
    return digest.hexdigest()


def run_replay_job(config: AppConfig, series: list[BarSeries], out_dir: Path | None,
                   progress: ProgressCallback | None = None, store_config: StoreConfig | None = None) -> ReplayOutcome:
    """Run one replay end to end and return its result and metrics.

    The run, its orders, fills, trades, decisions, equity snapshots and final positions go to the
    state database (``config.state``); files go to ``out_dir`` unless it is ``None``.
    """
    strategy = build_strategy(config.strategy.name, config.strategy.params)
    config_hash = config.config_hash()
    hash_of_data = data_hash(series)
    now = datetime.now(timezone.utc)
    run_id = f"{strategy.strategy_id}-{now:%Y%m%dT%H%M%S%f}-{config_hash[:8]}"
    memory = MemoryAlertSink()
    alerts = FanOutAlertSink(memory, LogAlertSink())
    store = SqlStore(store_config or config.state, account=run_id)
    try:
        store.start_run(run_id, "replay", strategy.strategy_id, strategy.params.model_dump(), config_hash,
                        hash_of_data, to_nanos(now))
        result = run_replay(series, strategy, risk_config=config.risk, fill_config=config.fill,
                            signal_config=config.signals, replay_config=config.replay, store=store,
                            alerts=alerts, run_id=run_id, progress=progress)
        result.data_hash, result.config_hash = hash_of_data, config_hash
        last_ts = int(result.equity_ts[-1]) if len(result.equity_ts) else to_nanos(now)
        store.save_positions(run_id, result.positions, last_ts)
        run_info = {"run_id": run_id, "strategy": strategy.strategy_id, "params": strategy.params.model_dump(),
                    "symbols": ", ".join(result.symbols), "timeframe": format_timeframe(result.timeframe_ns),
                    "bars": result.bars, "data_files": ", ".join(s.source for s in series),
                    "config_hash": config_hash, "data_hash": hash_of_data,
                    "starting_cash": config.replay.starting_cash, "fill": config.fill.model_dump()}
        if out_dir is not None:
            summary = write_outputs(result, out_dir, run_info, report=config.output.report)
        else:
            summary = summarize(result)
        store.finish_run(run_id, to_nanos(datetime.now(timezone.utc)), "finished",
                         {"strategy": summary.metrics.to_dict(), "buy_and_hold": summary.benchmark.to_dict()})
    except BaseException:  # never leave the run "running" forever
        try:
            store.finish_run(run_id, to_nanos(datetime.now(timezone.utc)), "failed", {})
        except Exception:
            pass
        raise
    finally:
        store.close()
    return ReplayOutcome(result, summary, run_id, memory)
