"""The numpy methods of ``tradingd montecarlo`` (trade shuffle, trade bootstrap, daily block
bootstrap, price noise) and what they share: the run's trade returns on account, the path
simulation and its statistics per path (:class:`Simulations`). The methods and the statistics are
described in :mod:`research.monte_carlo`.

Vectorised: paths are simulated a chunk of rows at a time (each temporary about 16 MB), their
bands kept at :data:`MAX_BAND_STEPS` steps at most.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["BAND_PERCENTILES", "MAX_BAND_STEPS", "METHODS", "MonteCarloError", "Simulations", "block_bootstrap_daily",
           "bootstrap_trades", "entry_equity", "longest_losing_streak", "price_noise", "shuffle_trades",
           "trade_returns"]

METHODS = ("trade_shuffle", "trade_bootstrap", "daily_bootstrap", "price_noise", "cost_replays")
"""Simulation methods, in report order."""
BAND_PERCENTILES = (5, 25, 50, 75, 95)
"""Percentiles of the outcome tables and the fan chart's bands."""
MAX_BAND_STEPS = 500
"""Most path steps (trade numbers or days) whose percentiles the fan chart keeps."""
_CHUNK_VALUES = 1 << 21  # path values simulated at a time: each temporary stays ~16 MB
_ZERO_STD = 1e-12  # as research.metrics: a dispersion below this leaves the Sharpe ratio undefined


class MonteCarloError(ValueError):
    """Input a simulation cannot use; the message says what and where."""


@dataclass(frozen=True)
class Simulations:
    """The outcomes of one method's simulations.

    Attributes
    ----------
    method : str
        One of :data:`METHODS`.
    total_return, max_drawdown, sharpe, min_equity : np.ndarray
        Shape ``(sims,)`` float64 fractions; ``sharpe`` is NaN where undefined (zero dispersion),
        ``min_equity`` is the lowest equity over the path / starting equity (start included).
    losing_streak : np.ndarray or None
        ``(sims,)`` int64 longest losing streak (trade-based methods).
    worst_day : np.ndarray or None
        ``(sims,)`` lowest daily return (daily methods).
    steps : np.ndarray
        ``(k,)`` int64 path steps of the bands (trade number, day number or bar number; 0 = start).
    bands : np.ndarray
        ``(5, k)`` percentiles :data:`BAND_PERCENTILES` of equity / starting equity at ``steps``.
    actual : np.ndarray
        ``(k,)`` the run's own path at ``steps`` (equity / starting equity).
    times : pd.DatetimeIndex or None
        UTC time of each step (daily methods and cost replays).
    extra : dict[str, np.ndarray]
        Further per-simulation columns (cost replays: ``slippage_factor``, ``commission_factor``).
    """

    method: str
    total_return: np.ndarray
    max_drawdown: np.ndarray
    sharpe: np.ndarray
    min_equity: np.ndarray
    losing_streak: np.ndarray | None
    worst_day: np.ndarray | None
    steps: np.ndarray
    bands: np.ndarray
    actual: np.ndarray
    times: pd.DatetimeIndex | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def sims(self) -> int:
        """Number of simulations."""
        return len(self.total_return)


# --- inputs -------------------------------------------------------------------------------------

def entry_equity(trades: pd.DataFrame, equity: pd.Series, starting_cash: float) -> np.ndarray:
    """Account equity (USD) before each trade: the last equity point at or before its entry time
    (``starting_cash`` for an entry before the first point).

    Raises
    ------
    MonteCarloError
        If that equity is not positive for some trade (the message names the trade).

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2024-01-01", "2024-01-03"], tz="UTC")
    >>> t = pd.DataFrame({"entry_time": pd.DatetimeIndex(["2024-01-02", "2024-01-03"], tz="UTC")})
    >>> entry_equity(t, pd.Series([100.0, 120.0], index=idx), 100.0).tolist()
    [100.0, 120.0]
    """
    index = pd.DatetimeIndex(equity.index)
    at = index.searchsorted(pd.DatetimeIndex(trades["entry_time"]), side="right") - 1
    values = equity.to_numpy(dtype="float64")
    out = np.where(at >= 0, values[np.maximum(at, 0)], float(starting_cash))
    bad = np.flatnonzero(~(out > 0))
    if len(bad):
        row = trades.iloc[int(bad[0])]
        raise MonteCarloError(f"trade {row.get('trade_id', int(bad[0]) + 1)} entered at {row['entry_time']} with "
                              f"account equity {out[bad[0]]:.2f} USD: returns on account need positive equity")
    return out


def _ordered(trades: pd.DataFrame) -> pd.DataFrame:
    """Trades in the order their P&L was realised (exit time, then trade id)."""
    keys = ["exit_time", "trade_id"] if "trade_id" in trades.columns else ["exit_time"]
    return trades.sort_values(keys, kind="stable").reset_index(drop=True)


def trade_returns(trades: pd.DataFrame, equity: pd.Series, starting_cash: float) -> np.ndarray:
    """Each trade's return on account, ``pnl / equity at entry`` (fractions, exit-time order).

    Parameters
    ----------
    trades : pd.DataFrame
        ``trades.csv`` rows (``pnl`` USD net of commission, ``entry_time``, ``exit_time``).
    equity : pd.Series
        Account equity in USD on a UTC index.
    starting_cash : float
        USD, the equity before the first point.

    Returns
    -------
    np.ndarray
        ``(n_trades,)`` float64.

    Raises
    ------
    MonteCarloError
        See :func:`entry_equity`; also for a NaN P&L.
    """
    ordered = _ordered(trades)
    pnl = ordered["pnl"].to_numpy(dtype="float64")
    if not np.isfinite(pnl).all():
        raise MonteCarloError(f"trade {ordered['trade_id'].iloc[int(np.flatnonzero(~np.isfinite(pnl))[0])]} "
                              "has no finite pnl in trades.csv")
    return pnl / entry_equity(ordered, equity, starting_cash)


def longest_losing_streak(returns: np.ndarray) -> np.ndarray:
    """Longest run of losing trades per row, as :mod:`risk.breakers` counts it: a loss (< 0) adds
    one, a win (> 0) resets, a break-even trade leaves the count.

    Parameters
    ----------
    returns : np.ndarray
        ``(rows, n)`` trade returns (or P&L: only the sign counts).

    Returns
    -------
    np.ndarray
        ``(rows,)`` int64.

    Examples
    --------
    >>> longest_losing_streak(np.array([[-1.0, -1.0, 0.0, -1.0, 1.0, -1.0]])).tolist()
    [3]
    """
    if returns.shape[1] == 0:
        return np.zeros(len(returns), dtype=np.int64)
    losses = np.cumsum(returns < 0, axis=1, dtype=np.int32)  # losses so far
    at_win = np.where(returns > 0, losses, 0)  # ... as of the latest win
    np.maximum.accumulate(at_win, axis=1, out=at_win)
    np.subtract(losses, at_win, out=losses)  # the current streak
    return losses.max(axis=1).astype(np.int64)


def _band_steps(n: int) -> np.ndarray:
    """At most MAX_BAND_STEPS + 1 evenly spaced steps of 0..n, both ends included."""
    return np.unique(np.linspace(0, n, min(n, MAX_BAND_STEPS) + 1).round().astype(np.int64))


def _sharpe(returns: np.ndarray, periods_per_year: float) -> np.ndarray:
    if returns.shape[1] < 2:
        return np.full(len(returns), np.nan)
    std = returns.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = returns.mean(axis=1) / std * math.sqrt(periods_per_year)
    return np.where(std > _ZERO_STD, ratio, np.nan)


def _simulate(method: str, sims: int, n: int, draw: Callable[[int], np.ndarray], periods_per_year: float,
              actual_returns: np.ndarray, *, streaks: bool, days: bool,
              times: pd.DatetimeIndex | None = None) -> Simulations:
    """Run ``sims`` paths of ``n`` returns each, ``draw(rows)`` giving a ``(rows, n)`` block."""
    if sims < 1:
        raise MonteCarloError(f"sims {sims}: must be 1 or more")
    steps = _band_steps(n)
    rows_per_chunk = max(1, _CHUNK_VALUES // max(n, 1))
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("total", "dd", "sharpe", "low", "streak", "worst", "band")}
    done = 0
    while done < sims:
        rows = min(rows_per_chunk, sims - done)
        returns = draw(rows)
        out["sharpe"].append(_sharpe(returns, periods_per_year))
        if streaks:
            out["streak"].append(longest_losing_streak(returns))
        if days:
            out["worst"].append(returns.min(axis=1))
        paths = np.cumprod(np.maximum(1.0 + returns, 0.0), axis=1)  # an account cannot go below zero
        peak = np.maximum(np.maximum.accumulate(paths, axis=1), 1.0)
        out["total"].append(paths[:, -1] - 1.0)
        out["low"].append(np.minimum(paths.min(axis=1), 1.0))
        out["band"].append(np.concatenate([np.ones((rows, 1)), paths[:, steps[1:] - 1]], axis=1))
        np.divide(paths, peak, out=paths)
        out["dd"].append(1.0 - paths.min(axis=1))
        done += rows
    actual = np.concatenate([[1.0], np.cumprod(np.maximum(1.0 + actual_returns, 0.0))])[steps]
    return Simulations(
        method=method, total_return=np.concatenate(out["total"]), max_drawdown=np.concatenate(out["dd"]),
        sharpe=np.concatenate(out["sharpe"]), min_equity=np.concatenate(out["low"]),
        losing_streak=np.concatenate(out["streak"]) if streaks else None,
        worst_day=np.concatenate(out["worst"]) if days else None, steps=steps,
        bands=np.percentile(np.concatenate(out["band"]), BAND_PERCENTILES, axis=0), actual=actual,
        times=times[steps] if times is not None else None)


def _check_returns(returns: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(returns, dtype="float64")
    if values.ndim != 1 or len(values) == 0:
        raise MonteCarloError(f"{what}: need a non-empty 1-D array of returns")
    if not np.isfinite(values).all():
        raise MonteCarloError(f"{what}: returns contain NaN or infinite values")
    return values


# --- the methods --------------------------------------------------------------------------------

def shuffle_trades(returns: np.ndarray, sims: int, rng: np.random.Generator,
                   trades_per_year: float) -> Simulations:
    """Compound the trade returns in ``sims`` random orders (permutations without replacement).

    Parameters
    ----------
    returns : np.ndarray
        ``(n,)`` trade returns on account, fractions, in the run's order.
    sims : int
        Number of permutations.
    rng : np.random.Generator
        Source of randomness.
    trades_per_year : float
        Annualises the per-trade Sharpe ratio (``sqrt(trades_per_year)``).

    Returns
    -------
    Simulations
        The total return and Sharpe are the same for every order (a product and a mean do not
        depend on it); drawdown, lowest equity and losing streak do.

    Raises
    ------
    MonteCarloError
        If ``returns`` is empty or not finite, or ``sims < 1``.
    """
    r = _check_returns(returns, "trade_shuffle")
    return _simulate("trade_shuffle", sims, len(r), lambda rows: rng.permuted(np.tile(r, (rows, 1)), axis=1),
                     trades_per_year, r, streaks=True, days=False)


def bootstrap_trades(returns: np.ndarray, sims: int, rng: np.random.Generator,
                     trades_per_year: float) -> Simulations:
    """Compound ``n`` trade returns drawn with replacement (Efron 1979), ``sims`` times.

    Same parameters, result and errors as :func:`shuffle_trades`; here the total return varies:
    its log is a sum of ``n`` independent draws of ``log(1 + r_i)``, mean ``n * mean(log1p(r))``.
    """
    r = _check_returns(returns, "trade_bootstrap")
    n = len(r)
    return _simulate("trade_bootstrap", sims, n, lambda rows: r[rng.integers(0, n, size=(rows, n))],
                     trades_per_year, r, streaks=True, days=False)


def block_bootstrap_daily(returns: pd.Series, sims: int, rng: np.random.Generator, block_days: int,
                          days_per_year: float) -> Simulations:
    """Circular block bootstrap of daily returns (Politis & Romano 1992; Künsch 1989).

    Each path is ``ceil(m / block_days)`` blocks of ``block_days`` consecutive daily returns,
    each block starting at a uniform random day and wrapping past the last day to the first,
    cut to the run's ``m`` days.

    Parameters
    ----------
    returns : pd.Series
        ``(m,)`` daily returns (fractions) on a UTC day index, from
        :func:`research.metrics.daily_returns`.
    sims : int
        Number of paths.
    rng : np.random.Generator
        Source of randomness.
    block_days : int
        Block length in days (>= 1); longer than the run means whole rotations of it.
    days_per_year : float
        Annualises the Sharpe ratio.

    Returns
    -------
    Simulations
        Paths over the run's days (``times``: the day of each step), with ``worst_day``.

    Raises
    ------
    MonteCarloError
        If there are fewer than 2 daily returns, they are not finite, or ``block_days < 1``.
    """
    d = _check_returns(returns.to_numpy(dtype="float64"), "daily_bootstrap")
    m = len(d)
    if m < 2:
        raise MonteCarloError(f"daily_bootstrap: the run has {m} daily return(s); need at least 2 days of equity")
    if block_days < 1:
        raise MonteCarloError(f"block_days {block_days}: must be 1 or more")
    block = min(block_days, m)
    blocks = -(-m // block)
    offsets = np.arange(block)

    def draw(rows: int) -> np.ndarray:
        starts = rng.integers(0, m, size=(rows, blocks))
        return d[((starts[:, :, None] + offsets) % m).reshape(rows, blocks * block)[:, :m]]

    index = pd.DatetimeIndex(returns.index)
    first = index[0] - pd.Timedelta(days=1)  # step 0: the day before the first return
    return _simulate("daily_bootstrap", sims, m, draw, days_per_year, d, streaks=False, days=True,
                     times=pd.DatetimeIndex(pd.DatetimeIndex([first]).append(index)))


def price_noise(trades: pd.DataFrame, equity_at_entry: np.ndarray, sims: int, rng: np.random.Generator,
                noise_bps: float, trades_per_year: float) -> Simulations:
    """Move each trade's entry and exit price by independent normal noise and recompute its return.

    ``entry' = entry * (1 + e1)``, ``exit' = exit * (1 + e2)``, ``e ~ N(0, noise_bps / 1e4)``;
    ``pnl' = pnl + sign * quantity * (exit * e2 - entry * e1)`` (sign +1 long, -1 short; the
    commission stays), ``r' = pnl' / equity at entry``, compounded in the run's order.

    Parameters
    ----------
    trades : pd.DataFrame
        ``trades.csv`` rows in exit-time order (``side`` of the entry, ``quantity`` shares,
        ``entry_price``/``exit_price`` USD, ``pnl`` USD).
    equity_at_entry : np.ndarray
        ``(n,)`` USD, from :func:`entry_equity` on the same rows.
    sims : int
        Number of paths.
    rng : np.random.Generator
        Source of randomness.
    noise_bps : float
        Standard deviation of each price's noise, bps (>= 0).
    trades_per_year : float
        Annualises the per-trade Sharpe ratio.

    Raises
    ------
    MonteCarloError
        If ``noise_bps`` is negative or not finite, or a price, quantity or P&L is missing.
    """
    if not (math.isfinite(noise_bps) and noise_bps >= 0):
        raise MonteCarloError(f"noise_bps {noise_bps}: must be a finite number >= 0")
    columns = {c: trades[c].to_numpy(dtype="float64") for c in ("quantity", "entry_price", "exit_price", "pnl")}
    for name, values in columns.items():
        if not np.isfinite(values).all():
            raise MonteCarloError(f"trades.csv column {name} has missing or non-finite values")
    sign = np.where(trades["side"].astype(str).str.lower().to_numpy() == "sell", -1.0, 1.0)
    sigma = noise_bps / 1e4
    entry_usd = sign * columns["quantity"] * columns["entry_price"] / equity_at_entry
    exit_usd = sign * columns["quantity"] * columns["exit_price"] / equity_at_entry
    base = columns["pnl"] / equity_at_entry
    n = len(base)

    def draw(rows: int) -> np.ndarray:
        noise = rng.normal(0.0, sigma, size=(rows, 2, n))
        return base + exit_usd * noise[:, 1] - entry_usd * noise[:, 0]

    return _simulate("price_noise", sims, n, draw, trades_per_year, base, streaks=True, days=False)

