"""Monte Carlo analysis of a finished run: how much of its result is the luck of trade order,
of which trades and days happened, of fill prices and of costs.

Methods (vectorised numpy; every method draws from its own child of
``numpy.random.default_rng(seed)``, so the same seed gives the same numbers and adding cost
replays changes no other method's numbers):

``trade_shuffle``
    The run's trade RETURNS on account (``pnl / equity at entry``, as-of the last equity point at
    or before the entry) compounded, ``prod(1 + r_i)``, in a random permutation. Shuffling dollar
    P&L instead ignores compounding and position size (the bug Jesse shipped, jesse#607). The
    final return of a permutation is the same for every order; drawdown and losing streaks are
    not, so this method is for the path statistics.
``trade_bootstrap``
    The same returns resampled with replacement (Efron 1979): the distribution of the final
    return and the Sharpe ratio.
``daily_bootstrap``
    Circular block bootstrap (Politis & Romano 1992, after Künsch 1989) of the run's daily returns
    (:func:`research.metrics.daily_returns`): blocks of ``block_days`` consecutive days, starting
    anywhere and wrapping around the end, glued to the run's length. Keeps the short-range
    dependence of returns (volatility clusters) and sees drawdowns of open positions.
``price_noise``
    Each trade's entry and exit price moved by independent ``N(0, noise_bps)`` bps (adverse or
    favourable); the P&L recomputed with the trade's quantity and commission, compounded in the
    run's order.
``cost_replays``
    Re-replays of the run with its slippage and commission multiplied by factors drawn uniformly
    from [1, 3] (:func:`cost_replays`; optional, slow).

Statistics per simulation: total return, max drawdown (positive fraction of the running peak,
start included), Sharpe (per-trade paths: ``mean / std * sqrt(trades per year of the run)``;
daily paths: ``mean / std * sqrt(days per year)`` as :func:`research.metrics.compute_metrics`),
lowest equity (fraction of the start), longest losing streak (trades with ``pnl < 0`` in a row, a
break-even trade neither adds nor resets, as :mod:`risk.breakers` counts) and worst day.

Modules (each imports only those above it; this module runs them and re-exports their public names):

* :mod:`research.monte_carlo_sims`: the trade returns, the numpy methods and :class:`Simulations`;
* :mod:`research.monte_carlo_costs`: the cost replays (the engine, fanned out over processes);
* :mod:`research.monte_carlo_result`: percentiles, risk of ruin, breaker trips, the verdict and the
  files.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from research.metrics import compute_metrics, daily_returns
from research.monte_carlo_costs import COST_FACTOR_RANGE, ReplayProgress, cost_replays
from research.monte_carlo_result import (ACCEPTABLE_RUIN, LOWER_BOUNDS, MIN_SIMS, NOTES, TRADE_METHODS,
                                         MonteCarloResult, quantiles, write_monte_carlo_outputs)
from research.monte_carlo_sims import (BAND_PERCENTILES, MAX_BAND_STEPS, METHODS, MonteCarloError, Simulations, _ordered,
                                       _sharpe, block_bootstrap_daily, bootstrap_trades, entry_equity,
                                       longest_losing_streak, price_noise, shuffle_trades, trade_returns)

if TYPE_CHECKING:
    from research.finished_run import FinishedRun

__all__ = ["ACCEPTABLE_RUIN", "BAND_PERCENTILES", "COST_FACTOR_RANGE", "LOWER_BOUNDS", "MAX_BAND_STEPS", "METHODS",
           "MIN_SIMS", "NOTES", "TRADE_METHODS", "MonteCarloError", "MonteCarloResult", "ReplayProgress", "Simulations",
           "block_bootstrap_daily", "bootstrap_trades", "cost_replays", "entry_equity", "longest_losing_streak",
           "price_noise", "quantiles", "run_monte_carlo", "shuffle_trades", "trade_returns",
           "write_monte_carlo_outputs"]


def _limits(run: FinishedRun) -> dict[str, float | None]:
    risk = run.run_info.get("risk") or {}
    return {k: (float(risk[k]) if risk.get(k) is not None else None)
            for k in ("max_drawdown", "daily_loss_limit", "max_consecutive_losses")}


def run_monte_carlo(run: FinishedRun, *, sims: int = 5000, seed: int = 7, ruin: float = 0.5, noise_bps: float = 5.0,
                    block_days: int = 20, n_cost_replays: int = 0, jobs: int = 1,
                    progress: ReplayProgress | None = None) -> MonteCarloResult:
    """Run every method on a finished run.

    Parameters
    ----------
    run : FinishedRun
        With at least 2 closed trades and 2 days of equity.
    sims : int
        Simulations per numpy method (>= 1).
    seed : int
        ``numpy.random.default_rng(seed)``; its children (``spawn``) feed the methods in
        :data:`METHODS` order.
    ruin : float
        Loss fraction of starting equity that counts as ruin, in (0, 1].
    noise_bps : float
        Standard deviation of the entry/exit price noise, bps.
    block_days : int
        Block length of the daily bootstrap, days.
    n_cost_replays : int
        Cost replays (0: skipped).
    jobs : int
        Cost replays at a time (forked worker processes above 1); changes no number.
    progress : callable, optional
        Called after each cost replay with (done, total).

    Raises
    ------
    research.finished_run.RunLoadError
        If the run has fewer than 2 trades (or, for cost replays, its settings or data are gone).
    MonteCarloError
        For a parameter out of range or data the methods cannot use.
    """
    if sims < 1:
        raise MonteCarloError(f"--sims {sims}: must be 1 or more")
    if not (0 < ruin <= 1):
        raise MonteCarloError(f"--ruin {ruin}: must be a loss fraction in (0, 1], e.g. 0.5 for losing half")
    if block_days < 1:
        raise MonteCarloError(f"--block-days {block_days}: must be 1 or more")
    if n_cost_replays < 0:
        raise MonteCarloError(f"--cost-replays {n_cost_replays}: must be 0 or more")
    if not (math.isfinite(noise_bps) and noise_bps >= 0):
        raise MonteCarloError(f"--noise-bps {noise_bps}: must be a finite number >= 0")
    run.require_trades("montecarlo", 2)
    trades = _ordered(run.trades)
    at_entry = entry_equity(trades, run.equity, run.starting_cash)
    returns = trade_returns(trades, run.equity, run.starting_cash)
    metrics = compute_metrics(run.equity)
    span_years = (run.equity.index[-1] - run.equity.index[0]) / pd.Timedelta(days=365.25)
    trades_per_year = len(returns) / span_years if span_years > 0 else float(len(returns))
    shuffle_rng, bootstrap_rng, daily_rng, noise_rng, cost_rng = np.random.default_rng(seed).spawn(len(METHODS))
    simulations = {
        "trade_shuffle": shuffle_trades(returns, sims, shuffle_rng, trades_per_year),
        "trade_bootstrap": bootstrap_trades(returns, sims, bootstrap_rng, trades_per_year),
        "daily_bootstrap": block_bootstrap_daily(daily_returns(run.equity), sims, daily_rng, block_days,
                                                 metrics.periods_per_year),
        "price_noise": price_noise(trades, at_entry, sims, noise_rng, noise_bps, trades_per_year),
    }
    if n_cost_replays:
        simulations["cost_replays"] = cost_replays(run, n_cost_replays, cost_rng, jobs=jobs, progress=progress)
    path = np.cumprod(np.maximum(1.0 + returns, 0.0))
    actual = {"total_return": metrics.total_return, "max_drawdown": metrics.max_drawdown, "sharpe": metrics.sharpe,
              "trade_path_return": float(path[-1] - 1.0),
              "trade_path_max_drawdown": float(1.0 - (path / np.maximum(np.maximum.accumulate(path), 1.0)).min()),
              "trade_path_sharpe": float(_sharpe(returns[None, :], trades_per_year)[0]),
              "trades": len(returns), "days": len(daily_returns(run.equity))}
    return MonteCarloResult(run_id=run.run_id, strategy=run.strategy, sims=sims, seed=seed, ruin=ruin,
                            noise_bps=noise_bps, block_days=block_days, starting_cash=float(run.starting_cash),
                            trades_per_year=trades_per_year, days_per_year=metrics.periods_per_year,
                            limits=_limits(run), actual=actual, simulations=simulations)

