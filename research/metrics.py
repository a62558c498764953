"""Performance metrics of a replay: returns, risk, risk-adjusted ratios and trade statistics.

Conventions
-----------
* Money in USD; returns, drawdowns, exposure and rates are fractions (``0.01`` = 1 %), never percent.
* Return-based statistics (volatility, Sharpe, Sortino) use **daily** returns: the equity curve is
  reduced to the last value of each UTC calendar day that has data, and ``returns = pct_change``.
  Days without data (weekends, holidays) are skipped, not filled, so the number of periods per year
  is inferred from the data: ``periods_per_year = n_daily_returns / years_spanned`` (about 252 for
  US equities, 365 for crypto). With fewer than two daily returns or less than two days spanned the
  fallback is 252.
* Drawdowns and the CAGR use the full-resolution curve; years are 365.25 days.

Degenerate cases (chosen and documented here)
---------------------------------------------
* A risk-adjusted ratio whose risk measure is zero is ``None`` (undefined), never ``inf``: Sharpe
  when the daily standard deviation is (numerically) zero, e.g. flat equity or a constant return;
  Sortino when no daily excess return is negative; Calmar when there is no drawdown. An optimizer
  therefore never chases an infinite score produced by a degenerate curve.
* ``profit_factor`` follows the common trading convention: ``inf`` when there are winning trades and
  no losing trades (gross loss 0), ``None`` when there are no trades or gross profit and gross loss
  are both 0. :meth:`PerformanceMetrics.to_dict` maps ``inf``/``nan`` to ``None``.
* Trade statistics (``win_rate``, ``profit_factor``, ``expectancy``) are ``None`` when there are no
  trades; ``trades`` is then ``0``. ``exposure`` and ``turnover`` are ``None`` when their inputs are
  not given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["BLOCK", "PerformanceMetrics", "compute_metrics", "daily_returns", "drawdown_series", "monthly_returns"]

DAYS_PER_YEAR = 365.25
"""Length of a year in days used for the CAGR and for annualising turnover."""
FALLBACK_PERIODS_PER_YEAR = 252.0
"""Daily periods per year assumed when the data span is too short to infer it."""
_MIN_SPAN_FOR_INFERENCE = pd.Timedelta(days=2)
_ZERO_STD = 1e-12  # daily-return dispersion below this is treated as zero (floating-point noise)


@dataclass(frozen=True)
class PerformanceMetrics:
    """Summary statistics of one equity curve (and optionally its trades).

    All ratios and returns are fractions, not percent. ``None`` means "not applicable" (see the
    module docstring for the exact rules).

    Attributes
    ----------
    start, end : pd.Timestamp
        First and last timestamp of the equity curve (UTC).
    starting_equity, ending_equity : float
        First and last equity value, USD.
    total_return : float
        ``ending_equity / starting_equity - 1``.
    cagr : float or None
        Compound annual growth rate ``(end/start) ** (1/years) - 1`` with years of 365.25 days;
        ``None`` when the curve spans no time. ``-1.0`` when equity ended at or below zero.
    volatility : float or None
        Annualised standard deviation of daily returns, ``std(ddof=1) * sqrt(periods_per_year)``.
    sharpe : float or None
        Annualised Sharpe ratio of daily excess returns (Sharpe 1994, "The Sharpe Ratio").
    sortino : float or None
        Annualised Sortino ratio, mean daily excess return over the downside deviation
        ``sqrt(mean(min(r - rf, 0) ** 2))`` (Sortino & Price 1994).
    calmar : float or None
        ``cagr / max_drawdown`` (Young 1991).
    max_drawdown : float
        Largest peak-to-trough decline of the full-resolution curve, a positive fraction (0.23).
    max_drawdown_duration : pd.Timedelta
        Longest time from a peak until equity regains that peak, or until the end if never
        regained; ``Timedelta(0)`` without any drawdown.
    win_rate : float or None
        Fraction of round trips with ``pnl > 0``.
    profit_factor : float or None
        Gross profit / gross loss of round trips (``inf`` with no losing trade).
    expectancy : float or None
        Mean net ``pnl`` per round trip, USD.
    exposure : float or None
        Mean gross exposure, a fraction of equity (1.0 = fully invested, 2.0 = 2x gross).
    turnover : float or None
        Traded notional per year divided by mean equity (fraction per year; 12.0 = 12x a year).
    trades : int
        Number of round trips.
    periods_per_year : float
        Daily return periods per year used to annualise (inferred, fallback 252).
    """

    start: pd.Timestamp
    end: pd.Timestamp
    starting_equity: float
    ending_equity: float
    total_return: float
    cagr: float | None
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float
    max_drawdown_duration: pd.Timedelta
    win_rate: float | None
    profit_factor: float | None
    expectancy: float | None
    exposure: float | None
    turnover: float | None
    trades: int
    periods_per_year: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict of the metrics.

        Timestamps become ISO-8601 strings; ``max_drawdown_duration`` becomes a string
        (``str(Timedelta)``) and extra keys ``max_drawdown_duration_days`` and
        ``max_drawdown_duration_seconds`` hold it as numbers (float days, float seconds); ``inf``
        and ``nan`` become ``None``.

        Returns
        -------
        dict[str, Any]
            Keys are the field names plus ``max_drawdown_duration_days`` and
            ``max_drawdown_duration_seconds``.
        """
        out: dict[str, Any] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, pd.Timestamp):
                out[field.name] = value.isoformat()
            elif isinstance(value, pd.Timedelta):
                out[field.name] = str(value)
                out[f"{field.name}_days"] = value / pd.Timedelta(days=1)
                out[f"{field.name}_seconds"] = value.total_seconds()
            elif isinstance(value, bool) or value is None:
                out[field.name] = value
            elif isinstance(value, (int, np.integer)):
                out[field.name] = int(value)
            else:
                number = float(value)
                out[field.name] = number if math.isfinite(number) else None
        return out


BLOCK = 1 << 16
"""Points handled at a time by the passes over a full-resolution curve (running peak, drawdown,
day ends): their temporaries stay at a few hundred KB however long the curve, where whole-curve
numpy expressions cost 8 bytes a point per temporary (a 10M-bar curve is 80 MB a column)."""


def _all_finite(values: np.ndarray) -> bool:
    """Whether every value is finite, checked a block at a time (no curve-long mask)."""
    return all(bool(np.isfinite(values[low:low + BLOCK]).all()) for low in range(0, len(values), BLOCK))


def _check_equity(equity: pd.Series) -> pd.Series:
    """Return ``equity`` as float with a UTC index, or raise ``ValueError`` explaining the problem.

    The result shares the data and the index values of ``equity`` when it is float64 (no copy).
    """
    if not isinstance(equity, pd.Series):
        raise ValueError(f"equity must be a pandas Series, got {type(equity).__name__}")
    if equity.empty:
        raise ValueError("equity is empty: need at least one point")
    if not isinstance(equity.index, pd.DatetimeIndex):
        raise ValueError("equity must be indexed by a DatetimeIndex")
    if equity.index.tz is None:
        raise ValueError("equity index is naive: timestamps must be timezone-aware (UTC)")
    if not equity.index.is_monotonic_increasing or not equity.index.is_unique:
        raise ValueError("equity index must be strictly increasing (sorted, no duplicate timestamps)")
    values = equity.astype(float)  # float64 already: a view (copy on write)
    array = values.to_numpy()
    if not _all_finite(array):
        raise ValueError("equity contains NaN or infinite values")
    if values.iloc[0] <= 0:
        raise ValueError(f"starting equity must be positive, got {values.iloc[0]!r}")
    return pd.Series(array, index=equity.index.tz_convert("UTC"), name=equity.name, copy=False)


def _drawdown_values(values: np.ndarray) -> np.ndarray:
    """``values / running_peak - 1`` (float64, finite, positive first value) built in place,
    a block at a time: the result is the only curve-long array."""
    out = np.empty(len(values))
    peak = -np.inf
    for low in range(0, len(values), BLOCK):
        part, block = values[low:low + BLOCK], out[low:low + BLOCK]
        np.maximum.accumulate(part, out=block)
        np.maximum(block, peak, out=block)
        peak = block[-1]
        np.divide(part, block, out=block)
        np.subtract(block, 1.0, out=block)
    return out


def _drawdown_stats(values: pd.Series) -> tuple[float, pd.Timedelta]:
    """Return (max drawdown as a positive fraction, longest peak-to-recovery time) of a checked
    curve in one pass of blocks (no curve-long temporary).

    A recovery is a point at the running peak right after a point below it; the spell still
    open at the end counts up to the last point.
    """
    array = values.to_numpy()
    stamps = pd.DatetimeIndex(values.index).asi8
    n = len(array)
    peak = -np.inf
    deepest = 0.0
    last_top, previous_at_peak = 0, True  # the first point is at its own peak
    longest, best = 0, (0, 0)  # (peak position, recovery position) of the longest spell
    for low in range(0, n, BLOCK):
        part = array[low:low + BLOCK]
        running = np.maximum.accumulate(part)
        np.maximum(running, peak, out=running)
        peak = running[-1]
        at_peak = part >= running  # a new high or the previous high regained
        np.divide(part, running, out=running)
        np.subtract(running, 1.0, out=running)
        deepest = min(deepest, float(running.min()))
        tops = np.flatnonzero(at_peak) + low
        before = np.empty_like(at_peak)
        before[0], before[1:] = previous_at_peak, at_peak[:-1]
        recoveries = np.flatnonzero(at_peak & ~before) + low
        if len(recoveries):
            # each recovery is itself in tops: the top before it is the spell's peak
            k = np.searchsorted(tops, recoveries) - 1
            starts = np.where(k >= 0, tops[np.maximum(k, 0)], last_top)
            spans = stamps[recoveries] - stamps[starts]
            i = int(spans.argmax())
            if spans[i] > longest:
                longest, best = int(spans[i]), (int(starts[i]), int(recoveries[i]))
        if len(tops):
            last_top = int(tops[-1])
        previous_at_peak = bool(at_peak[-1])
    if not previous_at_peak and stamps[n - 1] - stamps[last_top] > longest:
        best = (last_top, n - 1)
    times = values.index
    duration = max(pd.Timedelta(0), times[best[1]] - times[best[0]]) if best != (0, 0) else pd.Timedelta(0)
    return float(-deepest), duration


def drawdown_series(equity: pd.Series) -> pd.Series:
    """Return the drawdown at each point, ``equity / running_peak - 1``.

    Parameters
    ----------
    equity : pd.Series
        Equity in USD on a strictly increasing tz-aware DatetimeIndex, positive at the start.

    Returns
    -------
    pd.Series
        Same index and length as ``equity``; fractions ``<= 0`` (``-0.1`` = 10 % below the peak).
        Built in place: 8 bytes a point and no curve-long temporary.

    Raises
    ------
    ValueError
        If ``equity`` is empty, not positive at the start, contains NaN, or its index is naive or
        not strictly increasing.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    >>> drawdown_series(pd.Series([100.0, 110.0, 99.0, 121.0], index=idx)).round(4).tolist()
    [0.0, 0.0, -0.1, 0.0]
    """
    values = _check_equity(equity)
    return pd.Series(_drawdown_values(values.to_numpy()), index=values.index, name="drawdown", copy=False)


def _day_length(index: pd.DatetimeIndex) -> int:
    """One day in the units of ``index`` (its ``asi8``)."""
    return int(np.timedelta64(1, "D").astype(f"m8[{index.unit}]").astype(np.int64))


def _daily_closes(values: pd.Series) -> pd.Series:
    """Return the last value of each UTC calendar day that has data (``values`` checked, UTC).

    The same Series as ``values.groupby(index.normalize()).last()`` (index at UTC midnight,
    named as ``values.index``), found from the day number of each timestamp a block at a time
    instead of grouping the whole curve (a normalized index and group codes: 16 bytes a point).
    """
    index = pd.DatetimeIndex(values.index)
    stamps = index.asi8
    day = _day_length(index)
    ends: list[np.ndarray] = []
    previous = None
    for low in range(0, len(stamps), BLOCK):
        days = stamps[low:low + BLOCK] // day  # floor: midnight UTC of each point
        if previous is not None and days[0] != previous:
            ends.append(np.array([low - 1]))
        ends.append(np.flatnonzero(days[1:] != days[:-1]) + low)
        previous = days[-1]
    ends.append(np.array([len(stamps) - 1]))
    last = np.concatenate(ends)
    midnight = pd.DatetimeIndex((stamps[last] // day * day).view(f"M8[{index.unit}]")).tz_localize("UTC")
    return pd.Series(values.to_numpy()[last], index=midnight.rename(index.name), name=values.name)


def _ratio_or_none(numerator: float, denominator: float) -> float | None:
    """Return ``numerator / denominator`` or ``None`` if the denominator is (numerically) zero."""
    if not math.isfinite(denominator) or denominator <= _ZERO_STD:
        return None
    return numerator / denominator


def _trade_stats(trades: pd.DataFrame | None) -> tuple[float | None, float | None, float | None, int]:
    """Return (win_rate, profit_factor, expectancy, count) from round-trip net pnl (USD)."""
    if trades is None or len(trades) == 0:
        return None, None, None, 0
    if "pnl" not in trades.columns:
        raise ValueError("trades must have a 'pnl' column (net USD per round trip)")
    pnl = trades["pnl"].astype(float).to_numpy()
    gross_profit = float(pnl[pnl > 0].sum())
    gross_loss = float(-pnl[pnl < 0].sum())
    if gross_loss > 0:
        profit_factor: float | None = gross_profit / gross_loss
    elif gross_profit > 0:
        profit_factor = math.inf
    else:
        profit_factor = None
    return float((pnl > 0).mean()), profit_factor, float(pnl.mean()), int(len(pnl))


def _traded_notional(trades: pd.DataFrame | None, fills: pd.DataFrame | None) -> float | None:
    """Return total traded notional in USD, from fills if given, else from round-trip legs."""
    if fills is not None:
        if len(fills) == 0:
            return 0.0
        return float((fills["quantity"].astype(float) * fills["price"].astype(float)).abs().sum())
    if trades is not None:
        if len(trades) == 0:
            return 0.0
        qty = trades["quantity"].astype(float).abs()
        entry = (qty * trades["entry_price"].astype(float)).abs()
        exit_ = (qty * trades["exit_price"].astype(float)).abs()
        return float(entry.sum() + exit_.sum())
    return None


def compute_metrics(
    equity: pd.Series,
    trades: pd.DataFrame | None = None,
    fills: pd.DataFrame | None = None,
    exposure: pd.Series | None = None,
    risk_free_rate: float = 0.0,
) -> PerformanceMetrics:
    """Compute performance metrics of an equity curve and its trades.

    Parameters
    ----------
    equity : pd.Series
        Equity in USD, one point per bar close, on a strictly increasing tz-aware (UTC)
        DatetimeIndex; intraday, daily or 24/7 data are all accepted.
    trades : pd.DataFrame, optional
        One row per round trip with at least ``pnl`` (net USD); ``quantity``, ``entry_price`` and
        ``exit_price`` are used for turnover when ``fills`` is not given. May be empty.
    fills : pd.DataFrame, optional
        Executions with ``quantity`` (shares) and ``price`` (USD); preferred source of traded
        notional for turnover. May be empty (turnover 0).
    exposure : pd.Series, optional
        Gross exposure as a fraction of equity at each point; its plain mean is reported.
    risk_free_rate : float, default 0.0
        Annual risk-free rate as a fraction; converted to a per-period rate
        ``(1 + rf) ** (1 / periods_per_year) - 1`` and subtracted from daily returns (Sharpe,
        Sortino).

    Returns
    -------
    PerformanceMetrics
        See the class for the definition and units of each field.

    Raises
    ------
    ValueError
        If ``equity`` is empty, contains NaN, is not positive at the start, or its index is naive
        or not strictly increasing; if ``trades`` lacks a ``pnl`` column.

    Notes
    -----
    * Sharpe (Sharpe 1994): ``mean(r - rf) / std(r - rf, ddof=1) * sqrt(ppy)``.
    * Sortino (Sortino & Price 1994): ``mean(r - rf) / sqrt(mean(min(r - rf, 0) ** 2)) * sqrt(ppy)``
      with the downside deviation taken over all periods (target = risk-free rate).
    * Calmar (Young 1991): ``CAGR / max_drawdown`` over the whole replay (not a trailing 36 months).
    * Turnover: ``traded_notional / mean(equity) / years``.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    >>> m = compute_metrics(pd.Series([100.0, 110.0, 99.0, 121.0], index=idx))
    >>> round(m.total_return, 4), round(m.max_drawdown, 4)
    (0.21, 0.1)
    """
    values = _check_equity(equity)
    start, end = values.index[0], values.index[-1]
    first, last = float(values.iloc[0]), float(values.iloc[-1])
    span = end - start
    years = span / pd.Timedelta(days=DAYS_PER_YEAR)

    total_return = last / first - 1.0
    cagr: float | None = None
    if years > 0:
        if last <= 0:
            cagr = -1.0
        else:
            try:
                cagr = math.exp(math.log(last / first) / years) - 1.0
            except OverflowError:
                cagr = math.inf

    max_drawdown, max_dd_duration = _drawdown_stats(values)

    daily = _daily_closes(values)
    returns = daily.pct_change().iloc[1:].to_numpy()
    n = len(returns)
    if n >= 2 and span >= _MIN_SPAN_FOR_INFERENCE:
        periods_per_year = n / years
    else:
        periods_per_year = FALLBACK_PERIODS_PER_YEAR
    rf_period = (1.0 + risk_free_rate) ** (1.0 / periods_per_year) - 1.0
    excess = returns - rf_period

    volatility = sharpe = sortino = None
    if n >= 2:
        std = float(np.std(returns, ddof=1))
        volatility = std * math.sqrt(periods_per_year)
        excess_std = float(np.std(excess, ddof=1))
        ratio = _ratio_or_none(float(excess.mean()), excess_std)
        sharpe = None if ratio is None else ratio * math.sqrt(periods_per_year)
        downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
        ratio = _ratio_or_none(float(excess.mean()), downside)
        sortino = None if ratio is None else ratio * math.sqrt(periods_per_year)
    calmar = None if cagr is None or max_drawdown <= 0 else cagr / max_drawdown

    win_rate, profit_factor, expectancy, n_trades = _trade_stats(trades)

    mean_exposure = None
    if exposure is not None and len(exposure) > 0:
        mean_exposure = float(pd.Series(exposure, dtype=float).mean())
        if not math.isfinite(mean_exposure):
            mean_exposure = None

    turnover = None
    notional = _traded_notional(trades, fills)
    if notional is not None and years > 0:
        turnover = notional / float(values.mean()) / years

    return PerformanceMetrics(
        start=start,
        end=end,
        starting_equity=first,
        ending_equity=last,
        total_return=total_return,
        cagr=cagr,
        volatility=volatility,
        sharpe=sharpe,
        sortino=sortino,
        calmar=calmar,
        max_drawdown=max_drawdown,
        max_drawdown_duration=max_dd_duration,
        win_rate=win_rate,
        profit_factor=profit_factor,
        expectancy=expectancy,
        exposure=mean_exposure,
        turnover=turnover,
        trades=n_trades,
        periods_per_year=float(periods_per_year),
    )


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Return calendar-month returns as a year x month table.

    Each month's return is its last equity value over the previous month's last value, minus 1;
    the first month is measured from the first equity value, so compounding all cells gives the
    total return. Months are UTC calendar months; months without data are NaN.

    Parameters
    ----------
    equity : pd.Series
        Equity in USD on a strictly increasing tz-aware DatetimeIndex, positive at the start.

    Returns
    -------
    pd.DataFrame
        Index: years (int, ascending, named ``year``); columns: months ``1..12`` (all present,
        named ``month``); values: fractions (``0.02`` = +2 %), NaN where the month has no data.

    Raises
    ------
    ValueError
        Same conditions as :func:`drawdown_series`.

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2023-12-01", "2023-12-31", "2024-01-31"], tz="UTC")
    >>> table = monthly_returns(pd.Series([100.0, 110.0, 121.0], index=idx))
    >>> float(round(table.loc[2023, 12], 4)), float(round(table.loc[2024, 1], 4))
    (0.1, 0.1)
    """
    values = _check_equity(equity)
    daily = _daily_closes(values)  # a month's last value is its last day's: group days, not points
    idx = pd.DatetimeIndex(daily.index)
    month_end = daily.groupby([idx.year, idx.month]).last()
    previous = month_end.shift(1)
    previous.iloc[0] = values.iloc[0]
    rets = month_end / previous - 1.0
    table = rets.unstack()
    table = table.reindex(columns=range(1, 13))
    table.index = table.index.astype(int)
    table.index.name = "year"
    table.columns.name = "month"
    return table.astype(float)


def daily_returns(equity: pd.Series) -> pd.Series:
    """Return the daily returns the return-based metrics use.

    The curve is reduced to the last value of each UTC calendar day that has data (days without
    data are skipped, not filled) and ``pct_change`` is taken; these are exactly the returns
    behind ``volatility``, ``sharpe`` and ``sortino`` of :func:`compute_metrics`.

    Parameters
    ----------
    equity : pd.Series
        Equity in USD on a strictly increasing tz-aware DatetimeIndex, positive at the start.

    Returns
    -------
    pd.Series
        Fractions indexed by UTC midnight of each day after the first day with data (one fewer
        than the number of days with data), named ``returns``.

    Raises
    ------
    ValueError
        Same conditions as :func:`drawdown_series`.

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2024-01-01 10:00", "2024-01-01 15:00", "2024-01-03 15:00"], tz="UTC")
    >>> daily_returns(pd.Series([100.0, 110.0, 99.0], index=idx)).round(4).tolist()
    [-0.1]
    """
    values = _check_equity(equity)
    return _daily_closes(values).pct_change().iloc[1:].rename("returns")
