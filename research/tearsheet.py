"""Return-based tear-sheet statistics: worst drawdowns, yearly returns, rolling ratios, alpha/beta.

Conventions follow :mod:`research.metrics`: returns and drawdowns are fractions (``0.01`` = 1 %),
daily returns are those of :func:`research.metrics.daily_returns` (last equity value of each UTC
day with data), and annualisation uses the run's inferred ``periods_per_year``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.core.window.rolling import Rolling

from research.metrics import BLOCK, _check_equity, _daily_closes, daily_returns

__all__ = ["ROLLING_WINDOW", "DrawdownPeriod", "RelativeStats", "drawdown_periods", "relative_stats",
           "rolling_sharpe", "rolling_volatility", "yearly_returns"]

ROLLING_WINDOW = 126
"""Daily returns per rolling window (about six months of US trading days)."""
_ZERO_VAR = 1e-24  # daily-return variance below this is treated as zero (floating-point noise)
_ZERO_STD = 1e-12  # ... and a standard deviation below this, as research.metrics does


@dataclass(frozen=True)
class DrawdownPeriod:
    """One spell under water, from a peak until equity regains it.

    Attributes
    ----------
    start : pd.Timestamp
        Time of the peak the spell starts from (UTC).
    trough : pd.Timestamp
        Time of the lowest equity in the spell (UTC).
    recovery : pd.Timestamp or None
        First time equity is back at (or above) the peak; ``None`` if not regained by the end.
    depth : float
        Decline from the peak to the trough, a positive fraction (``0.12`` = 12 % below the peak),
        the same convention as :attr:`research.metrics.PerformanceMetrics.max_drawdown`.
    days : float
        Calendar days from ``start`` to ``recovery`` (or to the end of the curve if not recovered).
    """

    start: pd.Timestamp
    trough: pd.Timestamp
    recovery: pd.Timestamp | None
    depth: float
    days: float


def drawdown_periods(equity: pd.Series, top: int = 5) -> list[DrawdownPeriod]:
    """Return the ``top`` deepest drawdown spells of the full-resolution equity curve, deepest first.

    A spell starts at a running peak and ends at the first later point whose equity is at least
    that peak (the recovery); a spell still open at the end has ``recovery=None``. The deepest
    spell's ``depth`` equals the run's ``max_drawdown``.

    Parameters
    ----------
    equity : pd.Series
        Equity in USD on a strictly increasing tz-aware DatetimeIndex, positive at the start.
    top : int, default 5
        Number of spells returned at most (fewer if the curve has fewer), ``>= 1``.

    Returns
    -------
    list[DrawdownPeriod]
        Sorted by ``depth``, deepest first; ties by start time.

    Raises
    ------
    ValueError
        If ``top < 1`` or ``equity`` fails the checks of :func:`research.metrics.drawdown_series`.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC")
    >>> worst = drawdown_periods(pd.Series([100.0, 90.0, 100.0, 120.0, 102.0, 110.0], index=idx))
    >>> [(p.start.day, p.trough.day, p.recovery and p.recovery.day, round(p.depth, 2), p.days) for p in worst]
    [(4, 5, None, 0.15, 2.0), (1, 2, 3, 0.1, 2.0)]
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    values = _check_equity(equity)
    times = pd.DatetimeIndex(values.index)
    worst = _worst_spells(values.to_numpy(), top)
    n = len(times)
    out = []
    for depth, peak, pos, last in worst:
        recovered = last + 1 < n
        end = times[last + 1] if recovered else times[-1]
        out.append(DrawdownPeriod(start=times[peak], trough=times[pos], recovery=end if recovered else None,
                                  depth=float(-depth), days=(end - times[peak]) / pd.Timedelta(days=1)))
    return out


def _worst_spells(values: np.ndarray, top: int) -> list[tuple[float, int, int, int]]:
    """Return (drawdown at the trough, peak, trough, last underwater position) of the ``top``
    deepest spells of a checked curve, deepest first, ties by peak, in one pass of blocks.

    A spell is a maximal run of points below the running peak (drawdown < 0); its peak is the
    point before the run, its trough the run's first lowest point. Only the ``top`` deepest
    spells so far are kept, so no temporary is longer than a block (:data:`research.metrics.BLOCK`).
    """
    depths, where = np.empty(0), np.empty((0, 3), dtype=np.int64)  # where: peak, trough, last
    open_spell: tuple[float, int, int, int] | None = None  # still underwater at the previous block's end
    peak = -np.inf
    for low in range(0, len(values), BLOCK):
        part = values[low:low + BLOCK]
        dd = np.maximum.accumulate(part)
        np.maximum(dd, peak, out=dd)
        peak = dd[-1]
        np.divide(part, dd, out=dd)
        np.subtract(dd, 1.0, out=dd)  # the drawdown, as drawdown_series computes it
        under = dd < 0
        edges = np.flatnonzero(np.diff(under.view(np.int8), prepend=np.int8(0), append=np.int8(0)))
        starts, stops = edges[0::2], edges[1::2]  # runs of underwater points [start, stop) in the block
        if open_spell is not None:
            if len(starts) and starts[0] == 0:  # the open spell goes on into this block
                depth, spell_peak, trough, _ = open_spell
                stop = int(stops[0])
                i = int(dd[:stop].argmin())
                if dd[i] < depth:  # strictly lower: the first lowest point stays the trough
                    depth, trough = float(dd[i]), low + i
                open_spell = (depth, spell_peak, trough, low + stop - 1)
                starts, stops = starts[1:], stops[1:]
                under[:stop] = False  # done with: only the runs left are looked at below
                if stop == len(dd):  # underwater to the block's end: still open
                    continue
            depths, where = _deepest(depths, where, np.array([open_spell[0]]),
                                     np.array([open_spell[1:]], dtype=np.int64), top)
            open_spell = None
        if not len(starts):
            continue
        bounds = np.column_stack([starts, stops]).ravel()
        lows = np.minimum.reduceat(dd, bounds[:-1] if bounds[-1] == len(dd) else bounds)[0::2]
        # the first lowest point of each run: where the drawdown equals its run's low
        run_low = np.full(len(dd), np.inf)
        run_low[under] = np.repeat(lows, stops - starts)
        hits = np.flatnonzero(dd == run_low)
        troughs = hits[np.searchsorted(hits, starts)]
        found = np.column_stack([starts - 1, troughs, stops - 1]) + low
        if stops[-1] == len(dd):  # the last run may go on in the next block
            open_spell = (float(lows[-1]), int(found[-1, 0]), int(found[-1, 1]), int(found[-1, 2]))
            lows, found = lows[:-1], found[:-1]
        depths, where = _deepest(depths, where, lows, found, top)
    if open_spell is not None:
        depths, where = _deepest(depths, where, np.array([open_spell[0]]),
                                 np.array([open_spell[1:]], dtype=np.int64), top)
    return [(float(d), int(p), int(t), int(e)) for d, (p, t, e) in zip(depths, where)]


def _deepest(depths: np.ndarray, where: np.ndarray, more_depths: np.ndarray, more_where: np.ndarray,
             top: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``top`` deepest of two sets of spells, deepest first, ties by peak position."""
    depths, where = np.concatenate([depths, more_depths]), np.concatenate([where, more_where])
    order = np.lexsort((where[:, 0], depths))[:top]
    return depths[order], where[order]


def yearly_returns(equity: pd.Series) -> pd.Series:
    """Return each UTC calendar year's return: last equity of the year over the previous year's last.

    The first year is measured from the first equity value, so compounding all years gives the
    total return (the same rule as :func:`research.metrics.monthly_returns`).

    Parameters
    ----------
    equity : pd.Series
        Equity in USD on a strictly increasing tz-aware DatetimeIndex, positive at the start.

    Returns
    -------
    pd.Series
        Fractions indexed by year (int, ascending, named ``year``); years without data are absent.

    Raises
    ------
    ValueError
        Same conditions as :func:`research.metrics.drawdown_series`.

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2023-01-02", "2023-12-29", "2024-12-31"], tz="UTC")
    >>> yearly_returns(pd.Series([100.0, 110.0, 99.0], index=idx)).round(4).to_dict()
    {2023: 0.1, 2024: -0.1}
    """
    values = _check_equity(equity)
    daily = _daily_closes(values)  # a year's last value is its last day's: group days, not points
    year_end = daily.groupby(pd.DatetimeIndex(daily.index).year).last()
    previous = year_end.shift(1)
    previous.iloc[0] = values.iloc[0]
    out = (year_end / previous - 1.0).astype(float)
    out.index = out.index.astype(int)
    out.index.name = "year"
    return out


def _rolling(returns: pd.Series, window: int) -> Rolling:
    if window < 2:
        raise ValueError(f"window must be at least 2 daily returns, got {window}")
    return returns.rolling(window, min_periods=window)


def rolling_volatility(returns: pd.Series, periods_per_year: float, window: int = ROLLING_WINDOW) -> pd.Series:
    """Return the annualised volatility over a trailing window, ``std(ddof=1) * sqrt(ppy)``.

    Parameters
    ----------
    returns : pd.Series
        Daily returns (fractions), e.g. from :func:`research.metrics.daily_returns`.
    periods_per_year : float
        Daily periods per year (``PerformanceMetrics.periods_per_year``).
    window : int, default :data:`ROLLING_WINDOW`
        Daily returns per window, ``>= 2``; the first ``window - 1`` values are NaN.

    Returns
    -------
    pd.Series
        Same index as ``returns``; fractions per year.

    Raises
    ------
    ValueError
        If ``window < 2``.

    Examples
    --------
    >>> r = pd.Series([0.01, -0.01, 0.01, -0.01])
    >>> rolling_volatility(r, 252.0, window=2).round(4).tolist()[1:]
    [0.2245, 0.2245, 0.2245]
    """
    return _rolling(returns, window).std(ddof=1) * math.sqrt(periods_per_year)


def rolling_sharpe(returns: pd.Series, periods_per_year: float, window: int = ROLLING_WINDOW) -> pd.Series:
    """Return the annualised Sharpe ratio over a trailing window (risk-free rate 0).

    ``mean(r) / std(r, ddof=1) * sqrt(ppy)`` over each window of ``window`` daily returns, the
    definition of :func:`research.metrics.compute_metrics` (Sharpe 1994) applied per window.
    Windows whose standard deviation is (numerically) zero are NaN, not infinite.

    Parameters
    ----------
    returns : pd.Series
        Daily returns (fractions).
    periods_per_year : float
        Daily periods per year.
    window : int, default :data:`ROLLING_WINDOW`
        Daily returns per window, ``>= 2``; the first ``window - 1`` values are NaN.

    Returns
    -------
    pd.Series
        Same index as ``returns``; dimensionless.

    Raises
    ------
    ValueError
        If ``window < 2``.

    Examples
    --------
    >>> r = pd.Series([0.01, 0.03, 0.01, 0.03])
    >>> rolling_sharpe(r, 4.0, window=2).round(4).tolist()[1:]
    [2.8284, 2.8284, 2.8284]
    """
    rolling = _rolling(returns, window)
    std = rolling.std(ddof=1)
    ratio = rolling.mean() / std.where(std > 1e-12)
    return ratio * math.sqrt(periods_per_year)


@dataclass(frozen=True)
class RelativeStats:
    """Strategy against its benchmark, from aligned daily returns (risk-free rate 0).

    Attributes
    ----------
    alpha : float or None
        Jensen's alpha annualised by compounding, ``(1 + mean(r_s - beta * r_b)) ** ppy - 1``
        (the fraction per year the strategy earned beyond its beta exposure to the benchmark).
    beta : float or None
        ``cov(r_s, r_b) / var(r_b)``: the OLS slope of strategy on benchmark daily returns.
    correlation : float or None
        Pearson correlation of the daily returns, in [-1, 1].
    days : int
        Number of aligned daily returns used.
    alpha_daily : float or None
        The CAPM regression intercept ``mean(r_s - beta * r_b)``, a fraction per day (``alpha``
        before compounding).
    tracking_error : float or None
        ``std(r_s - r_b, ddof=1) * sqrt(ppy)``: annualised dispersion of the active daily return.
    information_ratio : float or None
        ``mean(r_s - r_b) / std(r_s - r_b, ddof=1) * sqrt(ppy)``; ``None`` when the tracking
        error is (numerically) zero.
    """

    alpha: float | None
    beta: float | None
    correlation: float | None
    days: int
    alpha_daily: float | None = None
    tracking_error: float | None = None
    information_ratio: float | None = None


def relative_stats(equity: pd.Series, benchmark: pd.Series, periods_per_year: float) -> RelativeStats:
    """Return alpha, beta and correlation of ``equity`` against ``benchmark``.

    Both curves are reduced to daily returns with :func:`research.metrics.daily_returns` and
    aligned on the days both have a return. With ``r_s``, ``r_b`` the strategy and benchmark daily
    returns (risk-free rate 0):

    * ``beta = cov(r_s, r_b) / var(r_b)`` (the CAPM beta, Sharpe 1964; the OLS slope);
    * ``alpha = (1 + mean(r_s - beta * r_b)) ** periods_per_year - 1`` (Jensen 1968, "The
      Performance of Mutual Funds in the Period 1945-1964"; annualised by compounding as in
      empyrical's ``alpha_beta``, which matches it to 1e-12 in the tests);
    * ``correlation`` = Pearson's r of ``r_s`` and ``r_b``;
    * of the active return ``r_s - r_b``: ``tracking_error = std(ddof=1) * sqrt(ppy)`` and
      ``information_ratio = mean / std(ddof=1) * sqrt(ppy)`` (Grinold & Kahn 1999, "Active
      Portfolio Management", 2nd ed.).

    Parameters
    ----------
    equity, benchmark : pd.Series
        Equity curves in USD on strictly increasing tz-aware DatetimeIndexes, positive at the
        start (usually the same index).
    periods_per_year : float
        Daily periods per year used to annualise alpha (``PerformanceMetrics.periods_per_year``).

    Returns
    -------
    RelativeStats
        ``None`` fields when fewer than two aligned daily returns exist or the benchmark's daily
        returns do not vary (beta and alpha undefined; the tracking error and information ratio
        are still given then); ``correlation`` is also ``None`` when the strategy's returns do not
        vary (e.g. it never traded).

    Raises
    ------
    ValueError
        If either curve fails the checks of :func:`research.metrics.drawdown_series`.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    >>> bench = pd.Series([100.0, 101.0, 99.0, 102.0, 101.0], index=idx)
    >>> strat = 100.0 * (1 + 2 * bench.pct_change().fillna(0)).cumprod()
    >>> s = relative_stats(strat, bench, 252.0)
    >>> round(s.beta, 6), round(s.correlation, 6), round(s.alpha, 6), s.days
    (2.0, 1.0, 0.0, 4)
    """
    joined = pd.concat([daily_returns(equity), daily_returns(benchmark)], axis=1, join="inner").dropna()
    r_s, r_b = joined.iloc[:, 0].to_numpy(), joined.iloc[:, 1].to_numpy()
    n = len(joined)
    if n < 2:
        return RelativeStats(None, None, None, n)
    active = r_s - r_b
    spread = float(np.std(active, ddof=1))
    tracking = spread * math.sqrt(periods_per_year)
    information = float(np.mean(active)) / spread * math.sqrt(periods_per_year) if spread > _ZERO_STD else None
    d_s, d_b = r_s - r_s.mean(), r_b - r_b.mean()
    var_b, var_s = float(np.mean(d_b * d_b)), float(np.mean(d_s * d_s))
    if var_b <= _ZERO_VAR:
        return RelativeStats(None, None, None, n, tracking_error=tracking, information_ratio=information)
    cov = float(np.mean(d_s * d_b))
    beta = cov / var_b
    alpha_daily = float(np.mean(r_s - beta * r_b))
    try:
        alpha = (1.0 + alpha_daily) ** periods_per_year - 1.0
    except OverflowError:
        alpha = math.inf
    correlation = None if var_s <= _ZERO_VAR else max(-1.0, min(1.0, cov / math.sqrt(var_s * var_b)))
    return RelativeStats(float(alpha), beta, correlation, n, alpha_daily, tracking, information)
