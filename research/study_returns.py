"""The daily returns of a study's parameter sets (:func:`trial_returns`): the T x N matrix behind
the overfitting statistics of :mod:`research.study_stats` (the PBO's CSCV, the DSR's spread of
Sharpe ratios).

Every trial the optimizer replays to the end comes back with the daily returns of its equity
curve (:class:`research.optimize_returns.DailyReturns`: :func:`research.metrics.daily_returns`,
the returns behind every Sharpe ratio tradingd reports), kept with the trial and in the result
cache, so for a study of this version nothing is replayed here. Trials without them (recorded by
an older tradingd, or asked for with other statuses) are replayed with
:func:`backtest.replay.run_replay` on the study's bars (:func:`replay_daily_returns`).
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alerts.sinks import MemoryAlertSink
from backtest.replay import run_replay
from backtest.spec import RunSpec
from research.optimize_data import StudyData
from research.optimize_records import StudyResult, param_key
from research.optimize_returns import DailyReturns
from research.optimize_trial import DiscardStore

__all__ = ["REPLAYED", "TrialReturns", "replay_daily_returns", "trial_returns"]

REPLAYED = ("complete", "filtered")
"""Statuses whose full-period returns :func:`trial_returns` gathers by default (their trials carry them)."""


@dataclass(frozen=True)
class TrialReturns:
    """Daily returns of the parameter sets of a study, one column per set.

    Attributes
    ----------
    returns : pd.DataFrame, shape (T, N)
        Fractions; index the UTC days (midnight) after the first day with data, oldest first;
        columns the trial numbers (int), each parameter set once (its first trial). A day on which
        a set's curve has no point is a 0 return (its equity did not change).
    params : dict[int, dict[str, Any]]
        Trial number -> its space values.
    trades : dict[int, int]
        Trial number -> round trips of the replay.
    failed : dict[int, str]
        Trials whose replay raised or disabled the strategy -> why (left out of ``returns``).
    replayed : tuple[int, ...]
        Trials replayed here because they carried no returns (empty for a study of this version).
    """

    returns: pd.DataFrame
    params: dict[int, dict[str, Any]]
    trades: dict[int, int]
    failed: dict[int, str]
    replayed: tuple[int, ...] = ()

    @property
    def periods_per_year(self) -> float:
        """Daily periods per year: ``T / years spanned`` (as :mod:`research.metrics`), else 252."""
        index = self.returns.index
        if len(index) < 2:
            return 252.0
        years = (index[-1] - index[0]) / pd.Timedelta(days=365.25)
        return float(len(index) / years) if years > 2 / 365.25 else 252.0

    def column(self, params: Mapping[str, Any]) -> int | None:
        """The trial number whose column holds ``params`` (None when not replayed)."""
        key = param_key(params)
        return next((n for n, p in self.params.items() if param_key(p) == key and n in self.returns.columns), None)


_SHARED: StudyData | None = None  # the bars, inherited by forked workers (never pickled)


def _replay_one(task: tuple[int, RunSpec, str | None]) -> tuple[int, np.ndarray | None, np.ndarray | None, int, str]:
    number, spec, timeframe = task
    assert _SHARED is not None
    alerts = MemoryAlertSink()
    try:
        result = run_replay(_SHARED.get(timeframe), spec, store=DiscardStore(), alerts=alerts, run_id=f"trial-{number}")
    except Exception as exc:  # recorded per trial: one bad set never ends the statistics
        return number, None, None, 0, f"{type(exc).__name__}: {exc}"
    if not result.strategy_enabled:
        return number, None, None, 0, "the strategy raised and was disabled"
    equity = pd.Series(result.equity, index=pd.to_datetime(result.equity_ts, unit="ns", utc=True))
    daily = DailyReturns.of_equity(equity)  # as the study's own trials compute them
    if daily is None:
        return number, None, None, 0, "fewer than two equity points"
    return number, daily.days, daily.values, len(result.trades), ""


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it stops us)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # not the parent's handlers: terminate() must just end us
        signal.signal(sig, signal.SIG_DFL)


def replay_daily_returns(data: StudyData, tasks: Sequence[tuple[int, RunSpec, str | None]], jobs: int = 1,
                         ) -> list[tuple[int, np.ndarray | None, np.ndarray | None, int, str]]:
    """Replay ``(number, spec, timeframe)`` tasks on ``data``; return per task ``(number, day ns,
    daily returns, trades, error)`` (arrays None and ``error`` set when the replay failed).

    With ``jobs > 1`` the replays run in forked processes that inherit the loaded bars.
    """
    global _SHARED
    _SHARED = data
    try:
        if jobs <= 1 or len(tasks) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            return [_replay_one(t) for t in tasks]
        pool = multiprocessing.get_context("fork").Pool(min(jobs, len(tasks)), initializer=_worker_init)
        try:
            out = pool.map(_replay_one, tasks, chunksize=1)
        except BaseException:
            pool.terminate()
            raise
        pool.close()  # workers end on their own: no SIGTERM needed
        pool.join()
        return out
    finally:
        _SHARED = None


def trial_returns(result: StudyResult, data: StudyData, *, statuses: Sequence[str] = REPLAYED,
                  jobs: int = 1) -> TrialReturns:
    """Return the daily returns of every parameter set of ``result`` with status in ``statuses``
    (the T x N matrix the PBO needs), each set once (its first such trial).

    A trial the study replayed to the end carries its returns
    (:attr:`research.optimize_records.TrialRecord.returns`, computed by that replay and kept with
    the trial and in the result cache): they are used as they are, so a study of this version is
    not replayed again. Only a trial without them is
    replayed here on ``data`` (:func:`backtest.replay.run_replay`): one recorded by an older
    tradingd or taken from an older cache entry, one of a status that keeps none (``statuses``
    beyond complete and filtered), or every trial when ``data`` is not what the study ran on (a
    period, default timeframe or bar content other than the study's).

    Parameters
    ----------
    result
        A finished study.
    data
        The bars the study ran on (each trial's timeframe must be loaded).
    statuses
        Which trials to take (default complete and filtered: those replayed to the end).
    jobs
        Replays at a time (forked processes), for the trials replayed here.

    Returns
    -------
    TrialReturns
        Columns in trial-number order; trials whose replay failed are in ``failed``, those
        replayed here in ``replayed``.

    Raises
    ------
    research.search_space.TrialSetupError
        If a trial replayed here has risk or fill keys that no longer form a valid configuration.
    """
    # stored returns count only for the bars they were computed on (not merely the same window)
    same_data = (tuple(result.period) == data.period() and result.timeframe == data.default
                 and result.data_fingerprint in ("", data.fingerprint(None)))
    seen: set[str] = set()
    tasks: list[tuple[int, RunSpec, str | None]] = []
    params: dict[int, dict[str, Any]] = {}
    columns: dict[int, pd.Series] = {}
    trades: dict[int, int] = {}
    failed: dict[int, str] = {}
    for trial in sorted(result.trials, key=lambda t: t.number):
        key = param_key(trial.params)
        if trial.status not in statuses or key in seen:
            continue
        seen.add(key)
        params[trial.number] = dict(trial.params)
        if same_data and trial.returns is not None:
            columns[trial.number] = trial.returns.series()
            trades[trial.number] = int((trial.metrics or {}).get("trades") or 0)
            continue
        setup = result.space.apply(result.base, trial.params)
        tasks.append((trial.number, setup.spec, setup.timeframe))
    for number, days, values, n_trades, error in replay_daily_returns(data, tasks, jobs):
        if error or days is None or values is None:
            failed[number] = error
            continue
        columns[number] = pd.Series(values, index=pd.to_datetime(days, unit="ns", utc=True))
        trades[number] = n_trades
    frame = pd.DataFrame({n: columns[n] for n in sorted(columns)}).sort_index().fillna(0.0) if columns else pd.DataFrame()
    return TrialReturns(frame, params, trades, failed, tuple(number for number, _, _ in tasks))
