"""The ``cost_replays`` method of ``tradingd montecarlo``: the run replayed again by the engine with
its slippage and commission multiplied by random factors (slow: one whole replay a simulation, fanned
out over processes by :func:`research.fork_pool.fork_map`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from research.fork_pool import WorkerDied, fork_map
from research.metrics import compute_metrics, daily_returns
from research.monte_carlo_sims import BAND_PERCENTILES, MonteCarloError, Simulations, _band_steps, longest_losing_streak

if TYPE_CHECKING:
    from backtest.replay import ReplayResult
    from research.finished_run import FinishedRun

__all__ = ["COST_FACTOR_RANGE", "ReplayProgress", "cost_replays"]

COST_FACTOR_RANGE = (1.0, 3.0)
"""Cost replays multiply slippage and commission by factors uniform in this range."""

ReplayProgress = Callable[[int, int], None]
"""Called with (replays done, replays in all)."""


class _Replayed(NamedTuple):
    """What one cost replay gave (fractions; ``path``: equity / starting cash at the band steps)."""

    total_return: float
    max_drawdown: float
    sharpe: float
    min_equity: float
    losing_streak: float
    worst_day: float
    path: np.ndarray


def _measure(result: ReplayResult, at: pd.DatetimeIndex) -> _Replayed:
    """The figures of one cost replay; its path is read at ``at``."""
    curve = pd.Series(result.equity, index=pd.DatetimeIndex(pd.to_datetime(result.equity_ts, unit="ns", utc=True)))
    metrics = compute_metrics(curve)
    start = float(result.starting_cash)
    pnl = np.array([[t.pnl for t in sorted(result.trades, key=lambda t: t.exit_ts)]])
    days = daily_returns(curve)
    where = np.maximum(curve.index.searchsorted(at, side="right") - 1, 0)
    return _Replayed(metrics.total_return, metrics.max_drawdown, math.nan if metrics.sharpe is None else metrics.sharpe,
                     min(float(curve.min()) / start, 1.0), float(longest_losing_streak(pnl)[0]),
                     float(days.min()) if len(days) else math.nan, curve.to_numpy()[where] / start)


def cost_replays(run: FinishedRun, n: int, rng: np.random.Generator, *, jobs: int = 1,
                 progress: ReplayProgress | None = None) -> Simulations:
    """Replay the run ``n`` times with its costs multiplied by random factors.

    Each replay draws a slippage factor and a commission factor uniform in
    :data:`COST_FACTOR_RANGE`; the slippage factor multiplies ``[fill] slippage_bps`` and
    ``slippage_volatility`` (capped at the 5,000 bps the fill model allows), the commission factor
    ``commission_bps``, ``commission_per_share`` and ``commission_minimum``
    (:func:`research.rerun.scaled_costs`).
    Everything else is the run's own (:func:`research.finished_run.run_spec`, the same bars). The
    factors are drawn before any replay, so ``jobs`` changes no number.

    Parameters
    ----------
    run : FinishedRun
        The run, with its settings and data files recorded.
    n : int
        Replays, >= 1.
    rng : np.random.Generator
        Source of the factors.
    jobs : int, default 1
        Replays at a time (forked worker processes above 1).
    progress : callable, optional
        Called with (replays done, replays in all) as each one finishes.

    Returns
    -------
    Simulations
        Metrics of each replay's equity curve (:func:`research.metrics.compute_metrics`: daily
        Sharpe), its losing streak and worst day; ``extra`` holds the two factors.

    Raises
    ------
    research.finished_run.RunLoadError
        If the run's settings or data cannot be read back.
    MonteCarloError
        If ``n < 1`` or ``jobs < 1``, the strategy raised during a replay, or a worker process died.
    """
    # imported here, before any worker forks: the engine and the optimizer's store take half a second
    from research.finished_run import load_run_bars, run_spec
    from research.rerun import quiet_replay, scaled_costs

    if n < 1:
        raise MonteCarloError(f"cost replays {n}: must be 1 or more")
    if jobs < 1:
        raise MonteCarloError(f"--jobs {jobs}: must be 1 or more")
    base, bars = run_spec(run), load_run_bars(run)
    factors = rng.uniform(*COST_FACTOR_RANGE, size=(n, 2))
    steps_index = pd.DatetimeIndex(run.equity.index)
    steps = _band_steps(len(steps_index) - 1)
    specs = [base.model_copy(update={"fill": base.fill.model_copy(update=scaled_costs(
        base.fill, slippage=slip, commission=comm))}) for slip, comm in factors]
    finished = 0

    def replay(k: int) -> _Replayed:
        result, crash = quiet_replay(bars, specs[k], f"montecarlo-cost-{k + 1}")
        if crash is not None:
            raise MonteCarloError(f"cost replay {k + 1}: the strategy raised and was disabled: {crash}")
        return _measure(result, steps_index[steps])

    def done(_: int, __: _Replayed) -> None:
        nonlocal finished
        finished += 1
        if progress is not None:
            progress(finished, n)

    try:
        replays = fork_map(replay, n, jobs=jobs, done=done)
    except WorkerDied as exc:
        raise MonteCarloError(str(exc)) from None
    actual = run.equity.to_numpy(dtype="float64")[steps] / float(run.starting_cash)
    return Simulations(
        method="cost_replays", total_return=np.array([r.total_return for r in replays]),
        max_drawdown=np.array([r.max_drawdown for r in replays]), sharpe=np.array([r.sharpe for r in replays]),
        min_equity=np.array([r.min_equity for r in replays]),
        losing_streak=np.array([r.losing_streak for r in replays]).astype(np.int64),
        worst_day=np.array([r.worst_day for r in replays]), steps=steps,
        bands=np.percentile(np.array([r.path for r in replays]), BAND_PERCENTILES, axis=0), actual=actual,
        times=steps_index[steps], extra={"slippage_factor": factors[:, 0], "commission_factor": factors[:, 1]})
