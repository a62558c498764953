"""The replay job: load data, build the strategy and store from a validated config, run the replay,
persist the run and write the output folder. The CLI only adds presentation around it.

A run ends in one of three states in the store: ``finished`` (metrics stored, output files in
place), ``failed`` (an error; the note names it) or ``interrupted`` (SIGINT, SIGTERM or SIGHUP).
An interrupted run keeps the rows it wrote so far, labelled by its status; its metrics are only
``{"partial": true, ...}`` and no output file is written or replaced. The job stops at the next
bar boundary it checks (every :data:`CHECK_EVERY_BARS` bars), records the run and raises
:class:`RunInterrupted`, a :class:`SystemExit` with code 128 + the signal number.

Output files are written into a staging folder inside the output folder and moved into place
only once all of them are complete, so a signal (or kill -9) never leaves a half-written or
mixed set of files under the final names.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

from alerts.sinks import FanOutAlertSink, LogAlertSink, MemoryAlertSink
from backtest.data import data_hash
from backtest.data import load_data as load_series
from backtest.replay import ProgressCallback, ReplayResult, run_replay
from backtest.sources import BarSeries
from backtest.spec import RunSpec
from core.clock import Clock
from core.ports import Decision
from core.time import format_timeframe, iso, to_nanos
from daemon.config import AppConfig
from research.output import OUTPUT_FILES, ReplaySummary, summarize, write_outputs
from state.config import StoreConfig
from state.store import SqlStore, process_alive
from strategies.registry import build_strategy

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Signals that stop a replay cleanly (recorded ``interrupted``)."""
CHECK_EVERY_BARS = 1024
"""Bars between two checks for a pending stop signal (a bound on how long stopping takes)."""
PRUNE_HINT = "tradingd runs prune --status interrupted"
_STAGING_PREFIX = ".partial-"


@dataclass
class ReplayOutcome:
    """A finished replay job: the raw result, its metrics, the run id in the store and the alerts."""

    result: ReplayResult
    summary: ReplaySummary
    run_id: str
    alerts: MemoryAlertSink


class RunInterrupted(SystemExit):
    """A replay stopped by a signal; the exit code is 128 + the signal number (130 for SIGINT,
    143 for SIGTERM, 129 for SIGHUP).

    Attributes
    ----------
    signum, signal_name
        The signal (e.g. 15, ``"SIGTERM"``).
    run_id
        The run, recorded ``interrupted`` (or ``finished`` when the signal came as it completed).
    bars_done, bars_total
        Bars replayed before stopping, bars given.
    message
        What happened, for the user (already printed by :func:`run_replay_job` unless the caller
        passed its own ``on_interrupted``).
    """

    def __init__(self, signum: int, *, run_id: str, bars_done: int, bars_total: int, message: str) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.run_id = run_id
        self.bars_done = bars_done
        self.bars_total = bars_total
        self.message = message

    def __str__(self) -> str:
        return self.message


class _Stop(BaseException):
    """Raised inside the job when a stop signal is acted upon (never escapes it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _SignalGuard:
    """Turn SIGINT/SIGTERM/SIGHUP into a pending stop the job acts on where it is safe.

    By default the handler only records the signal (:meth:`check` raises at the next safe point,
    so no store transaction is cut in half); inside :meth:`raising` it raises at once (used
    while writing staged output files, which are thrown away anyway). Outside the main thread
    signals cannot be handled and the guard does nothing.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._raise_now = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:  # the first signal names the cause; later ones change nothing
            self.signum = signum
        if self._raise_now:
            self._raise_now = False
            raise _Stop(self.signum)

    def check(self) -> None:
        if self.signum is not None:
            raise _Stop(self.signum)

    @contextmanager
    def raising(self) -> Iterator[None]:
        self.check()
        self._raise_now = True
        try:
            yield
        finally:
            self._raise_now = False


def load_data(config: AppConfig) -> list[BarSeries]:
    """Load and validate every data file of ``config`` (see :func:`backtest.data.load_data`)."""
    return load_series(config.data_files(), timeframe=config.data.timeframe, start=config.data.start,
                       end=config.data.end, calendars=config.fill.calendars)


def _print_interrupted(exc: RunInterrupted) -> None:
    try:
        print(exc.message, file=sys.stderr, flush=True)
    except OSError:  # SIGHUP: the terminal may be gone; the run is recorded all the same
        pass


def run_replay_job(config: AppConfig, series: list[BarSeries], out_dir: Path | None,
                   progress: ProgressCallback | None = None, store_config: StoreConfig | None = None, *,
                   on_interrupted: Callable[[RunInterrupted], None] | None = None) -> ReplayOutcome:
    """Run one replay end to end and return its result and metrics.

    The run, its orders, fills, trades, decisions, equity snapshots and final positions go to the
    state database (``config.state``); files go to ``out_dir`` unless it is ``None``.

    Parameters
    ----------
    config
        The validated configuration.
    series
        The loaded bars (:func:`load_data`).
    out_dir
        Output folder, or ``None`` for no files.
    progress
        Called with the number of bars done every ``[replay] progress_every`` bars and at the end.
    store_config
        Instead of ``config.state``.
    on_interrupted
        Called with the :class:`RunInterrupted` before it is raised (to present it); default:
        print its message to stderr.

    Raises
    ------
    RunInterrupted
        On SIGINT, SIGTERM or SIGHUP while the job runs (main thread only): the run is recorded
        ``interrupted`` with its partial rows, no output file is written, and the exception
        exits the process with 128 + the signal number if nobody catches it.
    state.db.StoreError
        If the store cannot be opened or written (the run is recorded ``failed`` if possible).
    """
    spec = config.run_spec()
    strategy = build_strategy(spec.strategy, spec.params)
    config_hash = config.config_hash()
    hash_of_data = data_hash(series)
    now = datetime.now(timezone.utc)
    run_id = f"{strategy.strategy_id}-{now:%Y%m%dT%H%M%S%f}-{config_hash[:8]}"
    memory = MemoryAlertSink()
    clock = Clock()  # the replay's simulated clock: log lines carry its time as replay_time
    alerts = FanOutAlertSink(memory, LogAlertSink(time_source=lambda: clock.now))
    total = sum(len(s) for s in series)
    done = 0
    every = spec.replay.progress_every
    reported = 0

    def checked_progress(n: int) -> None:
        nonlocal done, reported
        done = n
        guard.check()  # between two bars: the engine and the store are consistent here
        if progress is not None and (n // every > reported // every or n >= total):
            reported = n
            progress(n)

    with _SignalGuard() as guard:
        # a replay has no broker to protect: its breaker-state rows ride the batched flush
        store = SqlStore(store_config or config.state, account=run_id, durable_state=False)
        try:
            store.start_run(run_id, "replay", strategy.strategy_id, strategy.params.model_dump(), config_hash,
                            hash_of_data, to_nanos(now))
            guard.check()
            result = run_replay(series, _checking(spec), store=store, alerts=alerts, run_id=run_id,
                                progress=checked_progress, strategy=strategy, clock=clock)
            done = result.bars
            result.data_hash, result.config_hash = hash_of_data, config_hash
            last_ts = int(result.equity_ts[-1]) if len(result.equity_ts) else to_nanos(now)
            store.save_positions(run_id, result.positions, last_ts)
            run_info = {"run_id": run_id, "strategy": strategy.strategy_id, "params": strategy.params.model_dump(),
                        "symbols": list(result.symbols), "timeframe": format_timeframe(result.timeframe_ns),
                        "bars": result.bars, "data_files": [s.source for s in series],
                        "config_hash": config_hash, "data_hash": hash_of_data,
                        "starting_cash": config.replay.starting_cash, "fill": config.fill.model_dump(mode="json"),
                        "risk": config.risk.model_dump(mode="json"), "replay": config.replay.model_dump(mode="json"),
                        "signals": config.signals.model_dump(mode="json"),
                        "data": {"start": _iso(config.data.start), "end": _iso(config.data.end),
                                 "timeframe": config.data.timeframe},
                        "equity_span": _equity_span(result),
                        "out_dir": str(Path(out_dir).resolve()) if out_dir is not None else None}
            benchmark = config.output.benchmark
            if out_dir is not None:
                store.flush()
                summary = _write_outputs_staged(result, Path(out_dir), run_info, config.output.report, guard,
                                                benchmark, store.decisions(run_id))
            else:
                guard.check()
                summary = summarize(result, benchmark=benchmark)
            # from here on the run is complete: a signal now is honoured after recording it so
            store.finish_run(run_id, to_nanos(datetime.now(timezone.utc)), "finished",
                             {**summary.to_dict(), "bars": result.bars, "bars_total": total, "run": run_info})
        except _Stop as stop:
            raise _interrupted(store, run_id, stop.signum, done, total, out_dir, on_interrupted) from None
        except BaseException as exc:  # never leave the run "running" forever
            try:
                store.finish_run(run_id, to_nanos(datetime.now(timezone.utc)), "failed", {"bars": done},
                                 note=f"{type(exc).__name__}: {exc}"[:500])
            except Exception:
                pass
            raise
        finally:
            store.close()
        if guard.signum is not None:
            late = RunInterrupted(guard.signum, run_id=run_id, bars_done=done, bars_total=total, message=(
                f"{signal.Signals(guard.signum).name} arrived as run {run_id} completed: it is kept as "
                f"finished, with all {total:,} bars and its output files"))
            (on_interrupted or _print_interrupted)(late)
            raise late
    return ReplayOutcome(result, summary, run_id, memory)


def _checking(spec: RunSpec) -> RunSpec:
    """``spec`` with progress callbacks at least every :data:`CHECK_EVERY_BARS` bars (the stop
    check rides on them; the caller's own progress is forwarded at its own cadence)."""
    if spec.replay.progress_every <= CHECK_EVERY_BARS:
        return spec
    return spec.model_copy(update={"replay": spec.replay.model_copy(update={"progress_every": CHECK_EVERY_BARS})})


def _interrupted(store: SqlStore, run_id: str, signum: int, done: int, total: int, out_dir: Path | None,
                 on_interrupted: Callable[[RunInterrupted], None] | None) -> RunInterrupted:
    """Record run ``run_id`` as interrupted and return the exception that says so."""
    name = signal.Signals(signum).name
    where = (f"after {done:,} of {total:,} bars" if done < total
             else f"after all {total:,} bars, before the run was complete")
    files = "no output file written" if out_dir is None or done < total else f"{out_dir} left as it was"
    note = f"interrupted by {name} {where}; partial: no metrics, {files}"
    try:
        store.finish_run(run_id, to_nanos(datetime.now(timezone.utc)), "interrupted",
                         {"partial": True, "bars": done, "bars_total": total, "signal": name}, note=note)
        kept = f"partial run {run_id} kept as interrupted in {store.url}, {files}"
    except Exception as exc:  # the database may be what failed; still stop and say so
        kept = f"run {run_id} could not be recorded as interrupted ({exc})"
    stopped = RunInterrupted(signum, run_id=run_id, bars_done=done, bars_total=total,
                             message=f"interrupted by {name} {where}; {kept}; remove it with `{PRUNE_HINT}`")
    (on_interrupted or _print_interrupted)(stopped)
    return stopped


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


def _equity_span(result: ReplayResult) -> dict[str, str] | None:
    """The first and last bar end of the equity curve (ISO UTC), ``None`` for a run of no bar.

    The database keeps one equity snapshot per ``[replay] snapshot_interval`` (the last point of
    each), so a run read back from it lacks the curve's first point; that point is the starting
    cash: an order is submitted at the earliest at the first bar's end and fills only on a bar
    that starts at or after its submission (``backtest.broker``), so nothing has filled or been
    marked by then. :func:`research.finished_run.run_from_rows` puts it back from this field.
    """
    if not len(result.equity_ts):
        return None
    return {"first": iso(int(result.equity_ts[0])), "last": iso(int(result.equity_ts[-1]))}


def _write_outputs_staged(result: ReplayResult, out_dir: Path, run_info: dict[str, Any], report: bool,
                          guard: _SignalGuard, benchmark: str | None = None,
                          decisions: Sequence[Decision] = ()) -> ReplaySummary:
    """Write the output files into ``out_dir/.partial-<pid>/``, then move them into ``out_dir``.

    Writing can be stopped at once by a signal (the staging folder is deleted); moving cannot.
    Staging folders of dead processes and temporary files of killed earlier runs are removed,
    and so are outputs of an earlier run this run does not write (a stale ``report.html``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_dead_staging(out_dir)
    staging = out_dir / f"{_STAGING_PREFIX}{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with guard.raising():
            summary = write_outputs(result, staging, run_info, report=report, benchmark=benchmark,
                                    decisions=decisions)
        for name in summary.files:
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for path in out_dir.iterdir():
        name = path.name
        stale_tmp = (name.startswith(".") and name.endswith(".tmp")) or name.startswith("report.html.tmp")
        if path.is_file() and (stale_tmp or (name in OUTPUT_FILES and name not in summary.files)):
            path.unlink(missing_ok=True)
    return replace(summary, out_dir=out_dir)


def _remove_dead_staging(out_dir: Path) -> None:
    for path in out_dir.glob(f"{_STAGING_PREFIX}*"):
        pid = path.name[len(_STAGING_PREFIX):]
        if path.is_dir() and (not pid.isdigit() or not process_alive(int(pid), None)):
            shutil.rmtree(path, ignore_errors=True)


__all__ = ["CHECK_EVERY_BARS", "STOP_SIGNALS", "ReplayOutcome", "RunInterrupted", "load_data", "run_replay_job"]
