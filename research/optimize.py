"""Parameter studies: a loop over replays of the one engine (:func:`backtest.replay.run_replay`),
driven by Optuna.

:func:`run_study` samples points of a :class:`research.search_space.SearchSpace`, replays each on
bars loaded once (:class:`StudyData`), scores it (:data:`OBJECTIVES`, from
:func:`research.metrics.compute_metrics`, the figures ``tradingd replay`` reports) and returns a
:class:`StudyResult`: every trial with its parameters, metrics, status and reason, the ranking under
the filters and, for several objectives, the Pareto front.

* Methods (:data:`METHODS`): ``grid`` (every combination that meets the constraints, in order),
  ``random``, ``lhs`` (Latin hypercube, scipy), ``sobol`` / ``qmc`` (Optuna's QMCSampler),
  ``tpe``, ``cmaes`` (needs the ``cmaes`` package) and ``nsga2``. Several objectives
  (``("sharpe", "max_drawdown")``) give a Pareto front; every method but ``cmaes`` accepts them.
* Trials are asked and told by this process only (Optuna's ask-and-tell): it is the one writer of
  the study storage. With ``jobs > 1`` replays run in forked worker processes that inherit the
  loaded bars (copy-on-write, never re-parsed) and report back over pipes. With ``dask_address``
  they run on a Dask cluster (:mod:`research.distributed`): the bars are shipped once to each
  worker, the study lives in PostgreSQL. Executors are pluggable (:class:`TrialExecutor`).
* Pruning (single objective): a trial replays the first ``prune_fraction`` of the period, reports
  its objective there as an intermediate value and Optuna's ``MedianPruner`` decides; a kept trial
  goes on to the full period in the same replay (nothing is replayed twice).
* Filters (:class:`TrialFilters`) never crash a study: a trial that breaks one is recorded with its
  reason (status ``filtered``) and left out of the ranking; TPE and NSGA-II also see it as
  infeasible (Optuna constraints). A trial that raises is ``failed``, with the error as its reason.
* Studies persist in the storage and resume: running a study name again continues it up to
  ``n_trials`` in all. Trials left running by a run that was interrupted (or killed) are recorded
  ``interrupted`` and do not count. A result cache (:mod:`research.trial_cache`) keyed by the data
  and the trial's spec hash means a parameter set already replayed is never replayed again.

Trial statuses: ``complete`` (ranked), ``filtered``, ``pruned``, ``failed``, ``skipped`` (broke a
constraint; not replayed, not counted), ``interrupted`` (not counted), ``running``, ``waiting``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import re
import secrets
import signal
import socket
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from alerts.sinks import MemoryAlertSink
from backtest.data import load_data
from backtest.replay import ReplayResult, run_replay
from backtest.sources import BarSeries, DataError
from backtest.spec import RunSpec
from core.events import OrderFilled, SubmitOrder, TradeClosed, TradingStateChanged
from core.orders import Order
from core.ports import Decision, EquitySnapshot
from core.recovery import RestoredPosition, RiskSnapshot
from core.time import format_timeframe, to_datetime
from research.metrics import compute_metrics
from research.search_space import Dimension, SearchSpace, SpaceError, TrialSetup, TrialSetupError
from research.trial_cache import TrialCache, cache_key, series_fingerprint
from strategies.registry import StrategyConfigError, build_strategy

__all__ = ["GRID_WARNING", "METHODS", "DiscardStore", "METRIC_KEYS", "OBJECTIVES", "ExecutorFactory", "Intermediate", "OptimizeError",
           "StudyData", "StudyProgress", "StudyResult", "TrialExecutor", "TrialFilters", "TrialOutcome", "TrialRecord",
           "TrialTask", "default_study_name", "evaluate_trial", "open_study_storage", "parse_objectives",
           "require_shared_storage", "run_study", "trial_metrics", "write_study_outputs"]

OBJECTIVES: dict[str, str] = {
    "sharpe": "maximize", "sortino": "maximize", "calmar": "maximize", "total_return": "maximize",
    "cagr": "maximize", "win_rate": "maximize", "profit_factor": "maximize", "expectancy": "maximize",
    "max_drawdown": "minimize", "volatility": "minimize"}
"""Metrics a study may optimize (see :class:`research.metrics.PerformanceMetrics`) and their direction."""
METRIC_KEYS = ("sharpe", "sortino", "calmar", "total_return", "cagr", "volatility", "max_drawdown", "win_rate",
               "profit_factor", "expectancy", "exposure", "turnover", "trades")
"""Metrics recorded for every trial (fractions, USD for ``expectancy``, a count for ``trades``)."""
METHODS = ("grid", "random", "lhs", "sobol", "qmc", "tpe", "cmaes", "nsga2")
"""Search methods; ``qmc`` is another name of ``sobol``."""
GRID_WARNING = 1_000
"""A grid of more combinations than this gets a warning suggesting random, lhs or tpe."""
DEFAULT_TRIALS = 100
"""Trials of a study when ``n_trials`` is not given (grid: every combination)."""
COUNTED = ("complete", "filtered", "pruned", "failed")
"""Statuses that count towards ``n_trials``."""
MAX_SKIPS = 1_000
"""Samples in a row breaking the constraints after which a study gives up."""
_META = "tradingd"  # study user attribute holding what the study was created for
_RESULT = "tradingd"  # trial user attribute holding status, reason, metrics
_RUNNER = "tradingd_runner"  # trial user attribute: host:pid of the process that runs it


class OptimizeError(ValueError):
    """A study that cannot run as asked (bad method, objective, trial count, resumed study that
    does not match); the message says what and how to fix it."""


def parse_objectives(text: str | Sequence[str]) -> tuple[str, ...]:
    """Return the objective names of ``"sharpe,max_drawdown"`` (or a sequence), validated.

    Raises
    ------
    OptimizeError
        For an empty list, an unknown name (listing :data:`OBJECTIVES`) or a repeated one.

    Examples
    --------
    >>> parse_objectives("sharpe, max_drawdown")
    ('sharpe', 'max_drawdown')
    """
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise OptimizeError(f"no objective given; choose from {', '.join(OBJECTIVES)}")
    for name in names:
        if name not in OBJECTIVES:
            raise OptimizeError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
    if len(set(names)) != len(names):
        raise OptimizeError(f"objective repeated in {', '.join(names)}")
    return tuple(names)


@dataclass(frozen=True)
class TrialFilters:
    """What a trial must reach to be ranked.

    Attributes
    ----------
    min_trades
        Fewest round trips (0 = no filter).
    max_drawdown
        Largest drawdown, a fraction (0.3 = 30 %); None = no filter. Not the risk breaker.
    min_win_rate
        Smallest fraction of winning round trips; None or 0 = no filter.
    """

    min_trades: int = 20
    max_drawdown: float | None = None
    min_win_rate: float | None = None

    def __post_init__(self) -> None:
        if self.min_trades < 0:
            raise OptimizeError(f"min trades {self.min_trades}: must be 0 or more")
        if self.max_drawdown is not None and not 0 < self.max_drawdown <= 1:
            raise OptimizeError(f"max drawdown {self.max_drawdown}: must be a fraction in (0, 1]")
        if self.min_win_rate is not None and not 0 <= self.min_win_rate <= 1:
            raise OptimizeError(f"min win rate {self.min_win_rate}: must be a fraction in [0, 1]")

    def problems(self, metrics: Mapping[str, Any]) -> list[str]:
        """Return why ``metrics`` fail the filters (empty: they pass).

        Examples
        --------
        >>> TrialFilters(min_trades=20, max_drawdown=0.3).problems({"trades": 12, "max_drawdown": 0.1})
        ['12 trades < min trades 20']
        """
        out = []
        trades = int(metrics.get("trades") or 0)
        if trades < self.min_trades:
            out.append(f"{trades} trades < min trades {self.min_trades}")
        drawdown = metrics.get("max_drawdown")
        if self.max_drawdown is not None and drawdown is not None and drawdown > self.max_drawdown:
            out.append(f"max drawdown {drawdown:.4f} > {self.max_drawdown}")
        if self.min_win_rate:
            win = metrics.get("win_rate")
            if win is None or win < self.min_win_rate:
                shown = "none" if win is None else f"{win:.4f}"
                out.append(f"win rate {shown} < min win rate {self.min_win_rate}")
        return out

    def constraints(self, metrics: Mapping[str, Any]) -> dict[str, float]:
        """Optuna constraint values of the active filters (<= 0 = met), for TPE and NSGA-II."""
        out = {}
        if self.min_trades:
            out["min_trades"] = float(self.min_trades - int(metrics.get("trades") or 0))
        if self.max_drawdown is not None:
            out["max_drawdown"] = float((metrics.get("max_drawdown") or 0.0) - self.max_drawdown)
        if self.min_win_rate:
            out["min_win_rate"] = float(self.min_win_rate - (metrics.get("win_rate") or 0.0))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"min_trades": self.min_trades, "max_drawdown": self.max_drawdown, "min_win_rate": self.min_win_rate}


# --- the bars, loaded once -------------------------------------------------------------------------

@dataclass(frozen=True)
class StudyData:
    """The bars of a study, loaded once: one list of series per timeframe the space uses.

    Attributes
    ----------
    series
        Timeframe label (``"1h"``) -> the series of every symbol at that timeframe.
    default
        The label trials use when the space does not set the timeframe.
    """

    series: Mapping[str, Sequence[BarSeries]]
    default: str
    _fingerprints: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.default not in self.series:
            raise OptimizeError(f"study data: no series for the default timeframe {self.default!r}")
        for label, series in self.series.items():
            if not series:
                raise OptimizeError(f"study data: no bar series for timeframe {label!r}")

    @classmethod
    def of(cls, series: Sequence[BarSeries]) -> StudyData:
        """Wrap already loaded series (one timeframe), labelled by their bar length."""
        if not series:
            raise OptimizeError("study data: no bar series given")
        label = format_timeframe(series[0].timeframe_ns)
        return cls({label: list(series)}, label)

    @classmethod
    def load(cls, paths: Sequence[str | Path], *, timeframe: str | None = None, timeframes: Iterable[str] = (),
             start: datetime | None = None, end: datetime | None = None,
             calendars: Mapping[str, str] | None = None) -> StudyData:
        """Load ``paths`` once per timeframe with :func:`backtest.data.load_data` (the same call
        ``tradingd replay`` makes, so a trial replays exactly the bars a replay of its config would).

        Parameters
        ----------
        paths
            Bar files.
        timeframe
            The default bar length (``[data] timeframe``); None = inferred from the data.
        timeframes
            Further bar lengths trials use (the space's ``timeframe`` choices), aggregated by
            :func:`backtest.aggregator.aggregate_series`.
        start, end, calendars
            As :func:`backtest.data.load_data`.

        Raises
        ------
        backtest.sources.DataError
            For a malformed file, bars that cannot be aggregated to a timeframe, or no bars in the window.
        """
        base = load_data(paths, timeframe=timeframe, start=start, end=end, calendars=calendars)
        label = timeframe or format_timeframe(base[0].timeframe_ns)
        loaded: dict[str, list[BarSeries]] = {label: base}
        for other in timeframes:
            if other not in loaded:
                try:
                    loaded[other] = load_data(paths, timeframe=other, start=start, end=end, calendars=calendars)
                except DataError as exc:
                    raise DataError(f"timeframe {other!r} of the search space: {exc}") from None
        return cls(loaded, label)

    def get(self, timeframe: str | None) -> Sequence[BarSeries]:
        """The series of ``timeframe`` (None = the default)."""
        label = self.default if timeframe is None else timeframe
        if label not in self.series:
            raise OptimizeError(f"study data: timeframe {label!r} was not loaded (loaded: {', '.join(self.series)})")
        return self.series[label]

    def fingerprint(self, timeframe: str | None) -> str:
        """:func:`research.trial_cache.series_fingerprint` of the series of ``timeframe``."""
        label = self.default if timeframe is None else timeframe
        if label not in self._fingerprints:
            self._fingerprints[label] = series_fingerprint(self.get(label))
        return self._fingerprints[label]

    def period(self) -> tuple[str, str]:
        """First bar start and last bar end of the default series, ISO-8601 UTC."""
        series = self.get(None)
        first = min(int(s.ts_event[0]) for s in series if len(s))
        last = max(int(s.ts_init[-1]) for s in series if len(s))
        return to_datetime(first).isoformat(), to_datetime(last).isoformat()


# --- one trial: a replay and its metrics ------------------------------------------------------------

class DiscardStore:
    """A Store port that keeps nothing: research replays need the result object, not the rows."""

    def save_order(self, order: Order) -> None:
        pass

    def save_fill(self, fill: OrderFilled, order: Order) -> None:
        pass

    def save_decision(self, decision: Decision) -> None:
        pass

    def save_trade(self, trade: TradeClosed) -> None:
        pass

    def save_equity(self, snapshot: EquitySnapshot) -> None:
        pass

    def save_trading_state(self, change: TradingStateChanged) -> None:
        pass

    def save_risk_state(self, snapshot: RiskSnapshot) -> None:
        pass

    def save_account(self, cash: float, positions: Iterable[RestoredPosition], ts: int, *,
                     last_bar_ts: Mapping[str, int] | None = None) -> None:
        pass

    def save_learner_state(self, symbol: str, state: bytes, ts: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


class _TrialStore(DiscardStore):
    """The Store port for a trial: keeps the daily equity snapshots (ns UTC, USD) and closed
    trades' P&L (USD) for the pruning step's metrics, drops the rest. A study never writes its
    replays' rows."""

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.equity: list[float] = []
        self.pnl: list[float] = []

    def save_trade(self, trade: TradeClosed) -> None:
        self.pnl.append(trade.pnl)

    def save_equity(self, snapshot: EquitySnapshot) -> None:
        self.ts.append(snapshot.ts)
        self.equity.append(snapshot.equity)

    def metrics(self) -> dict[str, Any]:
        """Metrics of the run so far, from the daily snapshots (drawdown at daily resolution)."""
        if not self.ts:
            return {}
        equity = pd.Series(self.equity, index=pd.to_datetime(np.asarray(self.ts, dtype=np.int64), unit="ns", utc=True))
        no_fills = pd.DataFrame({"quantity": [], "price": []})  # turnover is not needed here
        return _pick(compute_metrics(equity, trades=pd.DataFrame({"pnl": self.pnl}), fills=no_fills).to_dict())


def _pick(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {key: metrics.get(key) for key in METRIC_KEYS}


def trial_metrics(result: ReplayResult) -> dict[str, Any]:
    """Return :data:`METRIC_KEYS` of a replay, computed as ``tradingd replay`` computes its
    metrics.json (full-resolution equity, round-trip pnl, fill notional, exposure); ``None`` where
    a metric is undefined (see :mod:`research.metrics`)."""
    index = pd.to_datetime(result.equity_ts, unit="ns", utc=True)
    equity = pd.Series(result.equity, index=index, copy=False)
    exposure = pd.Series(result.gross_exposure / result.equity, index=index, copy=False)
    trades = pd.DataFrame({"pnl": [t.pnl for t in result.trades]})
    fills = pd.DataFrame({"quantity": [f.quantity for f in result.fills], "price": [f.price for f in result.fills]})
    return _pick(compute_metrics(equity, trades=trades, fills=fills, exposure=exposure).to_dict())


@dataclass(frozen=True)
class TrialTask:
    """One replay to run: what an executor ships to wherever the trial runs (picklable).

    Attributes
    ----------
    number
        The Optuna trial number (the executor hands it back with the outcome).
    spec
        The trial's run spec, strategy params validated.
    timeframe
        Bar length label of the series to replay (None = the study's default).
    prune_fraction
        Fraction of the period after which to ask whether to prune (None = no pruning step).
    """

    number: int
    spec: RunSpec
    timeframe: str | None
    prune_fraction: float | None


@dataclass(frozen=True)
class TrialOutcome:
    """What running a :class:`TrialTask` gave: full-period metrics, or pruned, or an error.

    Attributes
    ----------
    metrics
        :data:`METRIC_KEYS` of the full period (None when pruned or failed).
    intermediate
        Metrics at the pruning step, when there was one.
    pruned
        True when stopped at the pruning step.
    error
        Why the trial failed (None when it did not).
    replay_s
        Seconds the replay took where it ran.
    """

    metrics: dict[str, Any] | None = None
    intermediate: dict[str, Any] | None = None
    pruned: bool = False
    error: str | None = None
    replay_s: float = 0.0


class _Pruned(Exception):
    pass


def _split_bars(series: Sequence[BarSeries], fraction: float) -> int:
    """Bars released by ``fraction`` of the period (replay merges by release time)."""
    releases = [s.ts_init for s in series if len(s)]
    first = min(int(r[0]) for r in releases)
    last = max(int(r[-1]) for r in releases)
    cut = first + int((last - first) * fraction)
    return int(sum(np.searchsorted(r, cut, side="right") for r in releases))


def evaluate_trial(data: StudyData, task: TrialTask, decide: Callable[[dict[str, Any]], bool]) -> TrialOutcome:
    """Replay one trial on ``data``; at the pruning step ask ``decide`` (True = prune) with the
    metrics so far. Never raises for what a replay raises: that is the outcome's ``error``.

    Every executor runs trials through this one function (in this process, a forked worker or a
    Dask worker), so where a trial runs never changes its result.
    """
    started = time.perf_counter()
    store, alerts = _TrialStore(), MemoryAlertSink()
    try:
        series = data.get(task.timeframe)
        spec, progress = task.spec, None
        total = sum(len(s) for s in series)
        split = _split_bars(series, task.prune_fraction) if task.prune_fraction else 0
        intermediate: dict[str, Any] = {}
        if 0 < split < total:
            spec = spec.model_copy(update={"replay": spec.replay.model_copy(update={"progress_every": split})})
            asked = False

            def progress(done: int) -> None:
                nonlocal asked
                if asked:
                    return
                asked = True  # the first call comes after exactly `split` bars
                intermediate.update(store.metrics())
                if decide(intermediate):
                    raise _Pruned
        try:
            result = run_replay(series, spec, store=store, alerts=alerts, run_id=f"trial-{task.number}",
                                progress=progress)
        except _Pruned:
            return TrialOutcome(intermediate=intermediate, pruned=True, replay_s=time.perf_counter() - started)
        replay_s = time.perf_counter() - started
        if not result.strategy_enabled:
            crash = next((text for _, title, text, _ in alerts.alerts if "disabled" in title), "see the alerts")
            return TrialOutcome(error=f"the strategy raised and was disabled: {crash}", replay_s=replay_s)
        return TrialOutcome(metrics=trial_metrics(result), intermediate=intermediate or None, replay_s=replay_s)
    except (StrategyConfigError, ValueError) as exc:
        return TrialOutcome(error=f"{type(exc).__name__}: {exc}", replay_s=time.perf_counter() - started)
    except Exception as exc:  # whatever else a replay raises: recorded with where, never the study's end
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return TrialOutcome(error=f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})",
                        replay_s=time.perf_counter() - started)


# --- executors: in this process, forked workers, or a Dask cluster ---------------------------------

Intermediate = Callable[[int, dict[str, Any]], bool]
"""Called by an executor at a trial's pruning step with (trial number, metrics so far); True = prune."""


class TrialExecutor(Protocol):
    """Where the replays of a study run. The study loop (the one Optuna writer) asks trials,
    :meth:`submit` s them while :meth:`idle` > 0 and takes results from :meth:`next`.

    Implementations: in this process (``jobs == 1``), forked worker processes (``jobs > 1``), and
    :class:`research.distributed.DaskExecutor` (a Dask cluster). A factory
    ``(data, jobs) -> TrialExecutor`` passed as ``run_study(executor=...)`` plugs in another.
    """

    @property
    def slots(self) -> int:
        """Trials it runs at a time now (may change while a study runs, e.g. workers joining)."""
        ...

    def idle(self) -> int:
        """Trials it can take now without queueing."""
        ...

    def submit(self, task: TrialTask) -> None:
        """Start ``task`` (only while :meth:`idle` > 0)."""
        ...

    def next(self, on_intermediate: Intermediate) -> tuple[int, TrialOutcome]:
        """Block until a submitted trial ends; return its number and outcome. Pruning questions
        arriving meanwhile go to ``on_intermediate`` and its answer back to the trial."""
        ...

    def close(self) -> None:
        """Let go of its workers (after the last trial, or after :meth:`terminate`); idempotent."""
        ...

    def terminate(self) -> None:
        """Stop the trials running now (interrupt or error); :meth:`close` follows."""
        ...


ExecutorFactory = Callable[[StudyData, int], TrialExecutor]
"""Builds an executor from the study's bars and ``jobs``; ``run_study`` closes what it builds."""


class _Inline:
    """Runs each trial in this process (``jobs == 1``)."""

    def __init__(self, data: StudyData) -> None:
        self.data = data
        self.pending: list[TrialTask] = []

    @property
    def slots(self) -> int:
        return 1

    def idle(self) -> int:
        return self.slots - len(self.pending)

    def submit(self, task: TrialTask) -> None:
        self.pending.append(task)

    def next(self, on_intermediate: Intermediate) -> tuple[int, TrialOutcome]:
        task = self.pending[0]
        outcome = evaluate_trial(self.data, task, lambda metrics: on_intermediate(task.number, metrics))
        self.pending.pop(0)
        return task.number, outcome

    def close(self) -> None:
        pass

    terminate = close


def _worker_main(conn: multiprocessing.connection.Connection, data: StudyData) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it stops us)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # not the parent's handlers: terminate() must just end us
        signal.signal(sig, signal.SIG_DFL)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if task is None:
            return

        def decide(metrics: dict[str, Any]) -> bool:
            conn.send(("intermediate", metrics))
            return bool(conn.recv())

        conn.send(("done", evaluate_trial(data, task, decide)))


@dataclass
class _Worker:
    process: Any
    conn: multiprocessing.connection.Connection
    task: TrialTask | None = None


class _ForkPool:
    """Worker processes forked with the loaded bars (copy-on-write: the arrays are never copied
    or re-parsed); one trial per worker at a time, over a pipe."""

    def __init__(self, data: StudyData, jobs: int) -> None:
        if "fork" not in multiprocessing.get_all_start_methods():
            raise OptimizeError("--jobs > 1 needs the fork start method (Linux); use --jobs 1 here")
        context = multiprocessing.get_context("fork")
        self.workers: list[_Worker] = []
        for index in range(jobs):
            parent, child = context.Pipe()
            process = context.Process(target=_worker_main, args=(child, data), daemon=True,
                                      name=f"tradingd-optimize-{index}")
            process.start()
            child.close()
            self.workers.append(_Worker(process, parent))

    @property
    def slots(self) -> int:
        return len(self.workers)

    def idle(self) -> int:
        return sum(1 for w in self.workers if w.task is None)

    def submit(self, task: TrialTask) -> None:
        worker = next(w for w in self.workers if w.task is None)
        worker.task = task
        worker.conn.send(task)

    def next(self, on_intermediate: Intermediate) -> tuple[int, TrialOutcome]:
        while True:
            busy = [w for w in self.workers if w.task is not None]
            ready = multiprocessing.connection.wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                assert worker.task is not None
                if worker.conn in ready:
                    try:
                        kind, payload = worker.conn.recv()
                    except (EOFError, OSError):
                        return self._lost(worker)
                    if kind == "intermediate":
                        worker.conn.send(on_intermediate(worker.task.number, payload))
                        continue
                    number, worker.task = worker.task.number, None
                    return number, payload
                if worker.process.sentinel in ready:
                    return self._lost(worker)

    def _lost(self, worker: _Worker) -> tuple[int, TrialOutcome]:
        assert worker.task is not None
        number, worker.task = worker.task.number, None
        worker.process.join(1)
        self.workers.remove(worker)
        if not self.workers:
            raise OptimizeError(f"every worker process exited (the last with code {worker.process.exitcode})")
        return number, TrialOutcome(error=f"the worker process exited with code {worker.process.exitcode}")

    def close(self) -> None:
        for worker in self.workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        for worker in self.workers:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(5)

    def terminate(self) -> None:
        for worker in self.workers:
            worker.process.terminate()
        for worker in self.workers:
            worker.process.join(5)


# --- records and results ----------------------------------------------------------------------------

@dataclass(frozen=True)
class TrialRecord:
    """One trial of a study.

    Attributes
    ----------
    number
        Optuna's trial number (0-based, in the order trials were asked).
    status, reason
        See the module docstring; ``reason`` says why a trial is not ``complete``.
    params
        Space key (``"params.fast"``, ``"risk.risk_per_trade"``, ``"timeframe"``) -> value.
    metrics
        :data:`METRIC_KEYS` of the full period (None when not replayed to the end).
    values
        The objective values told to Optuna (None unless complete or filtered).
    cached
        True when the metrics came from the result cache (no replay).
    replay_s
        Seconds the replay took (None when not replayed).
    intermediate
        Metrics at the pruning step, when there was one.
    started, duration_s
        When the trial started (UTC) and how long it took to ask, run and tell.
    state
        Optuna's state (``complete``, ``pruned``, ``fail``, ``running``, ``waiting``; filtered
        trials are ``complete`` there, skipped and interrupted ones ``fail``).
    """

    number: int
    status: str
    reason: str
    params: dict[str, Any]
    metrics: dict[str, Any] | None
    values: tuple[float, ...] | None
    cached: bool = False
    replay_s: float | None = None
    intermediate: dict[str, Any] | None = None
    started: datetime | None = None
    duration_s: float | None = None
    state: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "status": self.status, "reason": self.reason, "params": self.params,
                "metrics": self.metrics, "values": list(self.values) if self.values is not None else None,
                "cached": self.cached, "replay_s": self.replay_s}


@dataclass(frozen=True)
class StudyProgress:
    """Where a running study stands (given to the ``progress`` callback after every trial)."""

    done: int
    target: int
    running: int
    replays: int
    cache_hits: int
    best: TrialRecord | None
    last: TrialRecord | None


@dataclass
class StudyResult:
    """What :func:`run_study` returns; the outputs (:func:`write_study_outputs`) and later tools
    (reports, walk-forward) build on it.

    ``ranked`` holds the ``complete`` trials best first, each parameter set once (several
    objectives: the Pareto front first, each group by the first objective); ``best`` is ``ranked[0]`` and ``best_setup`` its run
    (spec and timeframe). Counts and timings (``replays``, ``cache_hits``, ``runtime_s``) are of
    this call; ``trials`` is every trial of the study.
    """

    study_name: str
    method: str
    strategy: str
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    filters: TrialFilters
    space: SearchSpace
    base: RunSpec
    trials: list[TrialRecord]
    ranked: list[TrialRecord]
    pareto: list[TrialRecord]
    target: int
    new_trials: int
    replays: int
    cache_hits: int
    skipped: int
    runtime_s: float
    replay_s: float
    period: tuple[str, str]
    timeframe: str
    seed: int
    pruning: bool
    grid_size: int | None = None
    interrupted: bool = False
    storage: str = ""
    best_setup: TrialSetup | None = None

    @property
    def best(self) -> TrialRecord | None:
        return self.ranked[0] if self.ranked else None

    def counts(self) -> dict[str, int]:
        """Trials of the study by status."""
        out: dict[str, int] = {}
        for trial in self.trials:
            out[trial.status] = out.get(trial.status, 0) + 1
        return out


def default_study_name(strategy: str, method: str, space: SearchSpace, base: RunSpec, data: StudyData,
                       objectives: Sequence[str]) -> str:
    """A study name that is the same for the same study (strategy, method, space, settings, data,
    objectives), so running the same command again resumes it; e.g. ``sma_cross-tpe-3f2a9c01d4``."""
    payload = json.dumps({"space": space.fingerprint(), "base": base.spec_hash(),
                          "data": {k: data.fingerprint(k) for k in sorted(data.series)}, "objectives": list(objectives),
                          "method": method}, sort_keys=True)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", strategy)
    return f"{slug}-{method}-{hashlib.sha256(payload.encode()).hexdigest()[:10]}"


def _distribution(dim: Dimension) -> BaseDistribution:
    if dim.kind == "categorical":
        return CategoricalDistribution(dim.choices)
    assert dim.low is not None and dim.high is not None
    if dim.kind == "int":
        return IntDistribution(int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log)
    return FloatDistribution(float(dim.low), float(dim.high), step=dim.step, log=dim.log)


_MODEL_BASED = frozenset({"tpe", "cmaes"})
"""Samplers that learn from told values (a skipped sample is told a penalty, not FAIL)."""


def _sampler(method: str, seed: int, jobs: int, multi: bool) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if method == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=jobs > 1)
        if method == "cmaes":
            if multi:
                raise OptimizeError("cmaes optimizes one objective; use nsga2 (or tpe) for several")
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if method == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        if method == "sobol":
            return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed,
                                              warn_independent_sampling=False)
        return optuna.samplers.RandomSampler(seed=seed)  # random; grid and lhs enqueue their points


def _record(trial: FrozenTrial) -> TrialRecord:
    attrs = trial.user_attrs.get(_RESULT) or {}
    status = attrs.get("status")
    if status is None:
        status = {TrialState.RUNNING: "running", TrialState.WAITING: "waiting", TrialState.PRUNED: "pruned",
                  TrialState.COMPLETE: "complete"}.get(trial.state, "failed")
    values = tuple(trial.values) if trial.values is not None and trial.state == TrialState.COMPLETE else None
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    return TrialRecord(trial.number, status, attrs.get("reason", ""), dict(trial.params), attrs.get("metrics"),
                       values, bool(attrs.get("cached", False)), attrs.get("replay_s"), attrs.get("intermediate"),
                       trial.datetime_start, duration, trial.state.name.lower())


def _refilter(record: TrialRecord, filters: TrialFilters) -> TrialRecord:
    if record.status not in ("complete", "filtered") or record.metrics is None:
        return record
    problems = filters.problems(record.metrics)
    return replace(record, status="filtered" if problems else "complete", reason="; ".join(problems))


def _dominates(a: Sequence[float], b: Sequence[float], signs: Sequence[float]) -> bool:
    better = False
    for x, y, sign in zip(a, b, signs):
        if sign * x < sign * y:
            return False
        better = better or sign * x > sign * y
    return better


def _rank(trials: Sequence[TrialRecord], directions: Sequence[str]) -> tuple[list[TrialRecord], list[TrialRecord]]:
    """(ranked complete trials, Pareto front) under ``directions``, each parameter set once (its first trial)."""
    signs = [1.0 if d == "maximize" else -1.0 for d in directions]
    complete: dict[str, TrialRecord] = {}
    for t in sorted(trials, key=lambda t: t.number):  # a parameter set asked again (a cache hit) is ranked once
        if t.status == "complete" and t.values is not None:
            complete.setdefault(_key(t.params), t)
    order = sorted(complete.values(), key=lambda t: (-signs[0] * (t.values or (0.0,))[0], t.number))
    if len(directions) == 1:
        return order, order[:1]
    front = [t for t in order if not any(_dominates(o.values or (), t.values or (), signs) for o in order)]
    ids = {t.number for t in front}
    return front + [t for t in order if t.number not in ids], front


def _host_pid() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(runner: str) -> bool:
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's trial: not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _key(params: Mapping[str, Any]) -> str:
    return json.dumps(sorted(params.items()), default=str)


def open_study_storage(storage: str | optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """Return the Optuna storage of a database URL (SQLite or PostgreSQL; a storage is returned as is).

    The tradingd state database keeps its Alembic revision in ``alembic_version``, as Optuna's
    schema does: open the state store on the URL first (so its revision is there), then this.
    Optuna leaves an existing revision alone and adds its own tables (``studies``, ``trials``,
    ...); its compatibility check, which would read the state's revision as a foreign schema, is
    skipped (Optuna is pinned). Tools opening the same database (``optuna-dashboard``,
    ``optuna.load_study``) need ``RDBStorage(url, skip_compatibility_check=True)`` likewise.
    """
    if not isinstance(storage, str):
        return storage
    url = storage
    if url.startswith("postgresql://"):  # bare postgresql means psycopg 3, as in the state store
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=True)


class _Study:
    """The ask-and-tell loop of one :func:`run_study` call."""

    def __init__(self, base: RunSpec, space: SearchSpace, data: StudyData, study: optuna.Study, cache: TrialCache | None,
                 filters: TrialFilters, objectives: tuple[str, ...], method: str, prune_fraction: float | None,
                 seed: int, target: int, progress: Callable[[StudyProgress], None] | None) -> None:
        self.base, self.space, self.data, self.study, self.cache = base, space, data, study, cache
        self.filters, self.objectives, self.method = filters, objectives, method
        self.prune_fraction, self.seed, self.target, self.progress = prune_fraction, seed, target, progress
        self.distributions = {d.key: _distribution(d) for d in space.dimensions}
        self.in_flight: dict[int, tuple[optuna.trial.Trial, str | None]] = {}
        self.replays = self.cache_hits = self.skipped = self.new = 0
        self.replay_s = 0.0
        self.best: TrialRecord | None = None
        self.done = 0
        self.queue: list[dict[str, Any]] = []
        self.batches = 0
        self.asking: optuna.trial.Trial | None = None  # asked, not yet running or told
        self.constrained = method in ("tpe", "nsga2")

    def _penalty(self) -> list[float]:
        """The worst value seen per objective (0 before any), for a sample that breaks a constraint."""
        worst: list[float] = []
        for i, direction in enumerate(self.study.directions):
            seen = [t.values[i] for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                    if t.values is not None and math.isfinite(t.values[i])]
            pick = min if direction == optuna.study.StudyDirection.MAXIMIZE else max
            worst.append(pick(seen) if seen else 0.0)
        return worst

    # -- bookkeeping
    def finish(self, trial: optuna.trial.Trial, status: str, reason: str = "", *, metrics: dict[str, Any] | None = None,
               values: Sequence[float] | None = None, cached: bool = False, replay_s: float | None = None,
               intermediate: dict[str, Any] | None = None) -> None:
        attrs = {"status": status, "reason": reason, "metrics": metrics, "cached": cached, "replay_s": replay_s,
                 "intermediate": intermediate}
        trial.set_user_attr(_RESULT, attrs)
        if status in ("complete", "filtered") and self.constrained and metrics is not None:
            for name, value in self.filters.constraints(metrics).items():
                trial.set_constraint(name, value)
        if status in ("complete", "filtered"):
            self.study.tell(trial, list(values or ()))
        elif status == "skipped" and self.method in _MODEL_BASED:
            # a model-based sampler ignores FAIL trials and keeps sampling the same infeasible
            # region (TPE stalled on `fast < slow`): tell it the point is as bad as the worst seen
            self.study.tell(trial, self._penalty())
        else:
            self.study.tell(trial, state=TrialState.PRUNED if status == "pruned" else TrialState.FAIL)
        if self.asking is trial:
            self.asking = None
        if status in COUNTED:
            self.done += 1
            self.new += 1
        record = TrialRecord(trial.number, status, reason, dict(trial.params), metrics,
                             tuple(values) if values is not None else None, cached, replay_s, intermediate)
        if status == "complete" and record.values is not None:
            sign = 1.0 if OBJECTIVES[self.objectives[0]] == "maximize" else -1.0
            if self.best is None or sign * record.values[0] > sign * (self.best.values or (0.0,))[0]:
                self.best = record
        if self.progress is not None and status in COUNTED:
            running = len(self.in_flight) - (trial.number in self.in_flight)
            self.progress(StudyProgress(self.done, self.target, running, self.replays, self.cache_hits, self.best,
                                        record))

    def scored(self, trial: optuna.trial.Trial, metrics: dict[str, Any], *, cached: bool,
               replay_s: float | None, intermediate: dict[str, Any] | None) -> None:
        values = [metrics.get(name) for name in self.objectives]
        undefined = [name for name, value in zip(self.objectives, values) if value is None]
        if undefined:
            why = "no trades" if not metrics.get("trades") else "flat or constant equity, or no losing trade"
            self.finish(trial, "failed", f"{', '.join(undefined)} undefined ({why})", metrics=metrics,
                        cached=cached, replay_s=replay_s, intermediate=intermediate)
            return
        problems = self.filters.problems(metrics)
        self.finish(trial, "filtered" if problems else "complete", "; ".join(problems), metrics=metrics,
                    values=[float(v) for v in values if v is not None], cached=cached, replay_s=replay_s,
                    intermediate=intermediate)

    # -- asking
    def next_point(self) -> dict[str, Any] | None:
        """The next enqueued point of grid / lhs (None: use the sampler; {} marks exhaustion)."""
        if self.method == "grid":
            return self.queue.pop(0) if self.queue else {}
        if self.method == "lhs":
            while not self.queue:
                if self.batches >= 50:
                    raise OptimizeError(f"{self.space.source}: Latin-hypercube points keep breaking the constraints "
                                        f"({', '.join(c.text for c in self.space.constraints)}); relax them")
                self.queue = self.lhs_batch(max(1, self.target - self.done - len(self.in_flight)))
                self.batches += 1
            return self.queue.pop(0)
        return None

    def lhs_batch(self, n: int) -> list[dict[str, Any]]:
        from scipy.stats import qmc

        dims = self.space.dimensions
        rng = np.random.default_rng([self.seed, len(self.study.get_trials(deepcopy=False)), self.batches])
        design = qmc.LatinHypercube(d=len(dims), rng=rng).random(n)
        points = [{d.key: d.from_unit(float(u)) for d, u in zip(dims, row)} for row in design]
        kept = [p for p in points if not self.space.violations(p, self.base, self.data.default)]
        self.skipped += len(points) - len(kept)
        return kept

    def launch(self, runner: TrialExecutor) -> bool:
        """Ask one trial and start it (or settle it at once); False when nothing is left to ask."""
        point = self.next_point()
        if point == {}:
            return False
        if point is not None:
            self.study.enqueue_trial(point)
        skips = 0
        while True:
            trial = self.asking = self.study.ask(self.distributions)
            values = dict(trial.params)
            try:
                broken = self.space.violations(values, self.base, self.data.default)
            except SpaceError as exc:
                self.finish(trial, "failed", str(exc))
                return True
            if not broken:
                break
            skips += 1
            self.skipped += 1
            self.finish(trial, "skipped", f"breaks constraint {', '.join(broken)}; not replayed")
            if skips >= MAX_SKIPS:
                raise OptimizeError(f"{self.space.source}: {MAX_SKIPS} samples in a row broke the constraints "
                                    f"({', '.join(c.text for c in self.space.constraints)}); relax them or narrow "
                                    "the ranges")
        trial.set_user_attr(_RUNNER, _host_pid())
        try:
            setup = self.space.apply(self.base, values)
            strategy = build_strategy(setup.spec.strategy, setup.spec.params)
            spec = setup.spec.model_copy(update={"params": strategy.params.model_dump(mode="json")})
            key = cache_key(self.data.fingerprint(setup.timeframe), spec.spec_hash()) if self.cache is not None else None
        except (TrialSetupError, StrategyConfigError, OptimizeError) as exc:
            self.finish(trial, "failed", str(exc))
            return True
        cached = self.cache.get(key) if self.cache is not None and key is not None else None
        if cached is not None:
            self.cache_hits += 1
            self.scored(trial, cached, cached=True, replay_s=None, intermediate=None)
            return True
        self.in_flight[trial.number] = (trial, key)
        self.asking = None
        runner.submit(TrialTask(trial.number, spec, setup.timeframe, self.prune_fraction))
        return True

    # -- results coming back
    def on_intermediate(self, number: int, metrics: dict[str, Any]) -> bool:
        value = metrics.get(self.objectives[0])
        if value is None or not math.isfinite(value):
            return False  # nothing to compare yet: run on
        trial = self.in_flight[number][0]
        trial.report(float(value), step=round(100 * (self.prune_fraction or 0)))
        return trial.should_prune()

    def on_outcome(self, number: int, outcome: TrialOutcome) -> None:
        trial, key = self.in_flight[number]  # removed once told, so an interruption before that records it
        self.replays += 1
        self.replay_s += outcome.replay_s
        if outcome.error is not None:
            self.finish(trial, "failed", outcome.error, replay_s=outcome.replay_s, intermediate=outcome.intermediate)
        elif outcome.pruned:
            shown = (outcome.intermediate or {}).get(self.objectives[0])
            self.finish(trial, "pruned", f"pruned at {self.prune_fraction:.0%} of the period: {self.objectives[0]} "
                        f"{shown:.4f} worse than the median of earlier trials" if shown is not None else "pruned",
                        replay_s=outcome.replay_s, intermediate=outcome.intermediate)
        else:
            assert outcome.metrics is not None
            if self.cache is not None and key is not None:
                self.cache.put(key, outcome.metrics)
            self.scored(trial, outcome.metrics, cached=False, replay_s=outcome.replay_s,
                        intermediate=outcome.intermediate)
        del self.in_flight[number]

    def interrupt_running(self) -> None:
        """Record the trials running (or being asked) as interrupted; a trial already told stays as it is."""
        for trial, _ in [*self.in_flight.values(), *([(self.asking, None)] if self.asking is not None else [])]:
            try:
                trial.set_user_attr(_RESULT, {"status": "interrupted", "reason": "the run was interrupted"})
                self.study.tell(trial, state=TrialState.FAIL)
            except Exception:  # the storage may be what failed; resuming marks them from their runner
                pass
        self.in_flight.clear()
        self.asking = None

    def run(self, runner: TrialExecutor) -> None:
        exhausted = False
        while True:
            while (not exhausted and runner.idle() > 0 and self.done + len(self.in_flight) < self.target):
                exhausted = not self.launch(runner)
            if not self.in_flight:
                if exhausted or self.done >= self.target:
                    return
                continue
            number, outcome = runner.next(self.on_intermediate)
            self.on_outcome(number, outcome)


def _settle_stale(storage: optuna.storages.BaseStorage, study_id: int) -> None:
    """Record trials left RUNNING by a run of this host that is gone as ``interrupted``."""
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        runner = trial.user_attrs.get(_RUNNER, "")
        if runner and not _alive(runner):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_user_attr(trial_id, _RESULT, {
                "status": "interrupted", "reason": f"its run ({runner}) ended before it finished"})
            storage.set_trial_state_values(trial_id, TrialState.FAIL)


def _check_meta(name: str, meta: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    for key in ("strategy", "method", "objectives", "space", "base", "data"):
        if key in meta and meta[key] != wanted[key]:
            what = {"space": "a different search space", "base": "different settings (risk, fill, signals, cash)",
                    "data": "different data"}.get(key, f"{key} {meta[key]!r}")
            raise OptimizeError(f"study {name!r} exists and was created with {what}; resuming needs the same "
                                f"{key}, or choose a new study name (--study-name)")


def run_study(base: RunSpec, space: SearchSpace, data: StudyData, *, storage: str | optuna.storages.BaseStorage,
              study_name: str | None = None, method: str = "tpe", objectives: str | Sequence[str] = ("sharpe",),
              n_trials: int | None = None, jobs: int = 1, seed: int | None = None,
              filters: TrialFilters = TrialFilters(), prune: bool | None = None, prune_fraction: float = 0.5,
              use_cache: bool = True, progress: Callable[[StudyProgress], None] | None = None,
              warn: Callable[[str], None] | None = None, executor: str | ExecutorFactory | None = None,
              dask_address: str | None = None) -> StudyResult:
    """Run (or resume) a parameter study over replays of ``base`` with the points of ``space``.

    Parameters
    ----------
    base
        The run every trial starts from; ``space`` sets its strategy, params, risk and fill keys.
    space
        The search space (:func:`research.search_space.load_space`).
    data
        The bars, loaded once (:meth:`StudyData.load`); every timeframe the space uses must be in it.
    storage
        An Optuna storage, or a database URL opened as ``RDBStorage`` (SQLite or PostgreSQL). A URL
        of the tradingd state database must already hold the state tables (the CLI opens the
        store first): both keep their Alembic revision in ``alembic_version``, and Optuna then
        leaves it alone.
    study_name
        Study to create or resume; default :func:`default_study_name`.
    method
        One of :data:`METHODS`.
    objectives
        One or more of :data:`OBJECTIVES` (``"sharpe,max_drawdown"``).
    n_trials
        Trials of the study in all (a resumed study runs only the rest); grid default and
        maximum: every combination meeting the constraints; else default :data:`DEFAULT_TRIALS`.
        Skipped and interrupted trials do not count.
    jobs
        Replays at a time (> 1: forked worker processes). On Dask: 1 (the default) means one per
        worker thread of the cluster, followed as workers come and go, plus one queued; N > 1
        keeps N in flight.
    seed
        Sampler seed; default a random one, kept with the study so resuming reuses it.
    filters
        What a trial must reach to be ranked.
    prune
        Prune on the first ``prune_fraction`` of the period (MedianPruner). Default: on for one
        objective with random, lhs, sobol, tpe and cmaes; off for grid and several objectives.
    use_cache
        Look up and store full-period metrics in the result cache of ``storage``.
    progress
        Called after every counted trial.
    warn
        Called with warnings for the user (a grid above :data:`GRID_WARNING` combinations).
    executor
        Where replays run: ``"local"`` (this process, or ``jobs`` forked workers), ``"dask"``
        (:class:`research.distributed.DaskExecutor` on the scheduler at ``dask_address``), or an
        :data:`ExecutorFactory`. Default: ``"dask"`` when ``dask_address`` is given, else ``"local"``.
        Wherever they run, this process alone asks and tells Optuna, so results do not depend on it.
    dask_address
        The Dask scheduler, ``tcp://host:port``. The study must then be in PostgreSQL (the
        storage every machine of the cluster can reach; see :func:`require_shared_storage`).

    Returns
    -------
    StudyResult
        With ``interrupted=True`` when KeyboardInterrupt stopped it (trials running then are
        recorded ``interrupted``; running it again resumes).

    Raises
    ------
    OptimizeError
        For an unknown method or objective, pruning with several objectives, ``n_trials`` or
        ``jobs`` below 1, a timeframe the data lacks, a grid over a continuous float, or a
        resumed study created for another strategy, method, objectives, space, settings or data;
        on Dask also for a storage that is not PostgreSQL, a malformed or unreachable scheduler
        address, no worker, or workers running other tradingd code.
    """
    started = time.perf_counter()
    method = "sobol" if method == "qmc" else method
    if method not in METHODS:
        raise OptimizeError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    names = parse_objectives(objectives)
    multi = len(names) > 1
    if method == "cmaes" and multi:
        raise OptimizeError("cmaes optimizes one objective; use nsga2 (or tpe) for several")
    if prune is None:
        prune = not multi and method != "grid"
    if prune and multi:
        raise OptimizeError("pruning needs a single objective (Optuna cannot prune multi-objective trials)")
    if not 0 < prune_fraction < 1:
        raise OptimizeError(f"prune fraction {prune_fraction}: must be in (0, 1)")
    if jobs < 1:
        raise OptimizeError(f"jobs {jobs}: must be 1 or more")
    if n_trials is not None and n_trials < 1:
        raise OptimizeError(f"trials {n_trials}: must be 1 or more")
    for timeframe in space.timeframes() or ():
        data.get(timeframe)
    grid: list[dict[str, Any]] = []
    grid_size = None
    if method == "grid":
        grid_size = space.grid_size()
        grid = [p for p in space.grid() if not space.violations(p, base, data.default)]
        if not grid:
            raise OptimizeError(f"{space.source}: no grid combination meets the constraints")
        if len(grid) > GRID_WARNING and warn is not None:
            warn(f"the grid has {grid_size:,} combinations ({len(grid):,} meet the constraints), more than "
                 f"{GRID_WARNING:,}: consider --method random, lhs or tpe")
    target = min(n_trials or len(grid), len(grid)) if method == "grid" else (n_trials or DEFAULT_TRIALS)
    name = study_name or default_study_name(space.strategy, method, space, base, data, names)
    wanted = {"strategy": space.strategy, "method": method, "objectives": list(names), "space": space.fingerprint(),
              "base": base.spec_hash(), "data": {k: data.fingerprint(k) for k in sorted(data.series)}}
    make_runner = _executor_factory(executor, dask_address, storage)
    runner = make_runner(data, jobs)  # before any connection: the local pool forks
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    interrupted = False
    try:
        store = open_study_storage(storage)
        directions: list[Any] = [OBJECTIVES[n] for n in names]
        probe = optuna.create_study(storage=store, study_name=name, directions=directions, load_if_exists=True)
        meta = probe.user_attrs.get(_META) or {}
        _check_meta(name, meta, wanted)
        if list(d.name.lower() for d in probe.directions) != directions:
            raise OptimizeError(f"study {name!r} exists with other objective directions; choose a new study name")
        chosen_seed = seed if seed is not None else int(meta.get("seed", secrets.randbelow(2**31)))
        if not meta:
            probe.set_user_attr(_META, {**wanted, "seed": chosen_seed, "filters": filters.to_dict(),
                                        "created": datetime.now(timezone.utc).isoformat()})
        _settle_stale(store, store.get_study_id_from_name(name))
        existing = probe.get_trials(deepcopy=False)
        # a resumed random/tpe/... sampler must not replay the sequence it drew before
        sampler_seed = chosen_seed if method == "sobol" else (chosen_seed + len(existing)) % 2**32
        pruner = (optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0) if prune
                  else optuna.pruners.NopPruner())
        study = optuna.load_study(study_name=name, storage=store, sampler=_sampler(method, sampler_seed, runner.slots, multi),
                                  pruner=pruner)
        cache = TrialCache(store) if use_cache else None
        loop = _Study(base, space, data, study, cache, filters, names, method, prune_fraction if prune else None,
                      chosen_seed, target, progress)
        records = [_record(t) for t in existing]
        loop.done = sum(1 for r in records if r.status in COUNTED)
        if method == "grid":
            visited = {_key(r.params) for r in records if r.status in COUNTED or r.status in ("running", "waiting")}
            loop.queue = [p for p in grid if _key(p) not in visited]
        try:
            loop.run(runner)
        except KeyboardInterrupt:
            interrupted = True
            runner.terminate()
            loop.interrupt_running()
        except BaseException:
            runner.terminate()
            loop.interrupt_running()
            raise
        # ranked under this call's filters, also the trials of earlier runs (they may have used others)
        trials = [_refilter(_record(t), filters) for t in study.get_trials(deepcopy=False)]
    finally:
        runner.close()
        optuna.logging.set_verbosity(verbosity)
    ranked, pareto = _rank(trials, directions)
    best_setup = None
    if ranked:
        setup = space.apply(base, ranked[0].params)
        params = build_strategy(setup.spec.strategy, setup.spec.params).params.model_dump(mode="json")
        best_setup = TrialSetup(setup.spec.model_copy(update={"params": params}), setup.timeframe)
    return StudyResult(
        study_name=name, method=method, strategy=space.strategy, objectives=names, directions=tuple(directions),
        filters=filters, space=space, base=base, trials=trials, ranked=ranked, pareto=pareto, target=target,
        new_trials=loop.new, replays=loop.replays, cache_hits=loop.cache_hits, skipped=loop.skipped,
        runtime_s=time.perf_counter() - started, replay_s=loop.replay_s, period=data.period(), timeframe=data.default,
        seed=chosen_seed, pruning=bool(prune), grid_size=grid_size, interrupted=interrupted,
        storage=_storage_label(storage), best_setup=best_setup)


def _local_executor(data: StudyData, jobs: int) -> TrialExecutor:
    return _ForkPool(data, jobs) if jobs > 1 else _Inline(data)


def _executor_factory(executor: str | ExecutorFactory | None, dask_address: str | None,
                      storage: str | optuna.storages.BaseStorage) -> ExecutorFactory:
    """The factory of ``run_study(executor=..., dask_address=...)``, validated before any work."""
    if executor is None:
        executor = "dask" if dask_address is not None else "local"
    if callable(executor):
        if dask_address is not None:
            raise OptimizeError("dask_address is given with a custom executor; pass one or the other")
        return executor
    if executor == "local":
        if dask_address is not None:
            raise OptimizeError(f"dask_address {dask_address!r} is given with executor 'local'; use executor 'dask'")
        return _local_executor
    if executor == "dask":
        if dask_address is None:
            raise OptimizeError("executor 'dask' needs the scheduler's address (dask_address='tcp://host:port')")
        require_shared_storage(storage, "a study on Dask")
        from research.distributed import DaskExecutor, parse_dask_address

        address = parse_dask_address(dask_address)
        return lambda data, jobs: DaskExecutor(address, data, jobs=jobs)
    raise OptimizeError(f"unknown executor {executor!r}; choose 'local' or 'dask' (or pass a factory)")


def require_shared_storage(storage: str | optuna.storages.BaseStorage, what: str = "a study on Dask") -> None:
    """Raise unless ``storage`` is a PostgreSQL database (a URL, or an ``RDBStorage`` on one).

    A study whose trials run on several machines lives where all of them, a dashboard and a
    resumed run on another host can reach it: PostgreSQL. SQLite (one file on one machine) and
    in-memory storage are refused.

    Raises
    ------
    OptimizeError
        Naming the storage (password masked) and how to pass a PostgreSQL URL.

    Examples
    --------
    >>> require_shared_storage("postgresql+psycopg://trader@db:5432/research")
    >>> require_shared_storage("sqlite:///tradingd.db")
    Traceback (most recent call last):
    ...
    research.optimize.OptimizeError: a study on Dask needs the study in PostgreSQL, shared by every machine of the cluster; got sqlite:///tradingd.db: pass --db postgresql+psycopg://user@host:5432/db
    """
    if isinstance(storage, str):
        url, shown = storage, _storage_label(storage)
    elif isinstance(storage, optuna.storages.RDBStorage):
        url = str(storage.url)
        shown = _storage_label(url)
    else:
        url, shown = "", f"an {type(storage).__name__}"
    if not url.startswith("postgresql"):
        raise OptimizeError(f"{what} needs the study in PostgreSQL, shared by every machine of the cluster; got "
                            f"{shown}: pass --db postgresql+psycopg://user@host:5432/db")


def _storage_label(storage: str | optuna.storages.BaseStorage) -> str:
    """The storage as shown in summaries: a URL with its password masked, else the class name.

    Examples
    --------
    >>> _storage_label("postgresql+psycopg://trader:p@ss@db:5432/x?sslmode=require")
    'postgresql+psycopg://trader:***@db:5432/x?sslmode=require'
    """
    if not isinstance(storage, str):
        return type(storage).__name__
    head, question, query = storage.partition("?")
    scheme, sep, rest = head.partition("://")
    if "@" in rest:  # credentials end at the last @ (a password may hold one)
        credentials, _, host = rest.rpartition("@")
        user, colon, _ = credentials.partition(":")
        rest = f"{user}:***@{host}" if colon else f"{credentials}@{host}"
    return f"{scheme}{sep}{rest}{question}{query}"


# --- output files -----------------------------------------------------------------------------------

def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _trials_csv(result: StudyResult, path: Path) -> None:
    value_columns = ["value"] if len(result.objectives) == 1 else [f"value_{n}" for n in result.objectives]
    keys = result.space.keys
    header = ["number", "status", "state", "reason", "cached", *value_columns, *keys, *METRIC_KEYS, "replay_s", "started",
              "duration_s"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for t in result.trials:
            values = list(t.values) if t.values is not None else [None] * len(value_columns)
            metrics = t.metrics or {}
            writer.writerow([_cell(v) for v in (
                t.number, t.status, t.state, t.reason, t.cached, *values, *(t.params.get(k) for k in keys),
                *(metrics.get(k) for k in METRIC_KEYS), t.replay_s,
                t.started.astimezone(timezone.utc).isoformat() if t.started is not None else None, t.duration_s)])


def _summary(result: StudyResult) -> dict[str, Any]:
    counts = result.counts()
    best = result.best
    return {
        "study": result.study_name, "storage": result.storage, "strategy": result.strategy, "method": result.method,
        "objectives": [{"name": n, "direction": d} for n, d in zip(result.objectives, result.directions)],
        "space": result.space.source, "period": {"start": result.period[0], "end": result.period[1]},
        "timeframe": result.timeframe, "seed": result.seed, "pruning": result.pruning, "filters": result.filters.to_dict(),
        "trials": {"target": result.target, "total": len(result.trials), "counted": sum(counts.get(s, 0) for s in COUNTED),
                   **{s: counts.get(s, 0) for s in ("complete", "filtered", "pruned", "failed", "skipped",
                                                     "interrupted")},
                   "new": result.new_trials, "replays": result.replays, "cache_hits": result.cache_hits},
        "grid_size": result.grid_size, "runtime_s": result.runtime_s, "replay_s": result.replay_s,
        "interrupted": result.interrupted,
        "best": best.to_dict() if best is not None else None,
        "pareto_front": [t.to_dict() for t in result.pareto] if len(result.objectives) > 1 else None,
        "top": [t.to_dict() for t in result.ranked[:10]],
    }


def _fmt(value: Any, kind: str = "num") -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind == "int":
        return f"{int(value)}"
    return f"{value:.3f}"


def _params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k.removeprefix('params.')}={v:.6g}" if isinstance(v, float) else f"{k.removeprefix('params.')}={v}"
                     for k, v in params.items())


def _summary_text(result: StudyResult) -> str:
    counts = result.counts()
    objectives = ", ".join(f"{n} ({d})" for n, d in zip(result.objectives, result.directions))
    counted = sum(counts.get(s, 0) for s in COUNTED)
    per_trial = result.runtime_s / result.new_trials if result.new_trials else None
    filters = result.filters
    lines = ["optimization summary",
             f"  study      {result.study_name} ({result.storage})",
             f"  strategy   {result.strategy}; space {result.space.source}",
             f"  method     {result.method}" + (f" ({result.grid_size:,} grid combinations)" if result.grid_size else "")
             + f", seed {result.seed}, pruning {'on' if result.pruning else 'off'}",
             f"  metric     {objectives}",
             f"  period     {result.period[0]} .. {result.period[1]} ({result.timeframe} bars)",
             f"  trials     {counted} of {result.target}: " + ", ".join(
                 f"{counts.get(s, 0)} {s}" for s in ("complete", "filtered", "pruned", "failed"))
             + f" ({counts.get('skipped', 0)} skipped by constraints, {counts.get('interrupted', 0)} interrupted)",
             f"  this run   {result.new_trials} trials, {result.replays} replays, {result.cache_hits} from the cache"
             + (" (interrupted)" if result.interrupted else ""),
             f"  filters    min trades {filters.min_trades}, max drawdown {filters.max_drawdown or 'none'}, "
             f"min win rate {filters.min_win_rate or 'none'}",
             f"  runtime    {result.runtime_s:.1f} s" + (f" ({per_trial:.2f} s per trial)" if per_trial else ""),
             ""]
    if len(result.objectives) > 1:
        lines.append(f"pareto front: {len(result.pareto)} trials (ranked first below)")
        lines.append("")
    lines.append("top 10")
    header = (f"  {'rank':>4} {'trial':>5} {'sharpe':>8} {'return':>9} {'max dd':>8} {'win rate':>8} {'trades':>6}"
              "  parameters")
    lines.append(header)
    for rank, t in enumerate(result.ranked[:10], 1):
        m = t.metrics or {}
        lines.append(f"  {rank:>4} {t.number:>5} {_fmt(m.get('sharpe')):>8} {_fmt(m.get('total_return'), 'pct'):>9} "
                     f"{_fmt(m.get('max_drawdown'), 'pct'):>8} {_fmt(m.get('win_rate'), 'pct'):>8} "
                     f"{_fmt(m.get('trades'), 'int'):>6}  {_params_text(t.params)}")
    if not result.ranked:
        lines.append("  (no trial passed the filters)")
    return "\n".join(lines) + "\n"


def write_study_outputs(result: StudyResult, out_dir: str | Path) -> list[str]:
    """Write ``trials.csv`` (every trial: params, metrics, status, reason), ``summary.json`` and
    ``summary.txt`` (sections "optimization summary" and "top 10") into ``out_dir`` (created).

    Each file is written to a temporary name and moved into place, so a reader never sees half a
    file. Returns the names written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, write in (("trials.csv", lambda p: _trials_csv(result, p)),
                        ("summary.json", lambda p: p.write_text(json.dumps(_summary(result), indent=2,
                                                                           default=_json_default) + "\n")),
                        ("summary.txt", lambda p: p.write_text(_summary_text(result)))):
        tmp = out / f".{name}.tmp"
        write(tmp)
        os.replace(tmp, out / name)
        written.append(name)
    return written


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)
