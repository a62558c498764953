"""Risk metrics of a replay's equity curve: historical value at risk and expected shortfall of
daily returns, a summary of the rolling Sharpe and volatility, the distance from the equity high,
and the drawdown figures of a whole curve (Ulcer index, max drawdown in USD, recovery factor).

Conventions follow :mod:`research.metrics`: returns are fractions (``0.01`` = 1 %), daily returns
are those of :func:`research.metrics.daily_returns` (last equity of each UTC day with data), money
is USD and times are UTC. The tail and rolling figures are O(days); the equity high and the drawdown
figures are one pass over the full-resolution curve.

Value at risk and expected shortfall (losses are positive fractions)
-------------------------------------------------------------------
With ``n`` daily returns sorted ascending ``r(1) <= ... <= r(n)`` and the tail probability
``p = 1 - level`` (0.05 at the 95 % level):

* **VaR** (historical simulation, Jorion 2007, "Value at Risk", 3rd ed., ch. 10) is minus the
  empirical lower ``p``-quantile, ``VaR = -r(ceil(n p))``: the loss that the worst ``p`` share of
  days reached or exceeded. This is ``-numpy.quantile(r, p, method="inverted_cdf")`` (definition 1 of
  Hyndman & Fan 1996). ``0.021`` = a 2.1 % daily loss.
* **CVaR** (expected shortfall) is the mean loss over the worst ``p`` share of days, with the
  boundary day weighted by the fraction of it inside the tail (Acerbi & Tasche 2002, "On the
  coherence of expected shortfall", J. Banking & Finance 26, eq. 3.1 applied to the empirical
  distribution): ``CVaR = -(r(1) + ... + r(k) + (n p - k) r(k + 1)) / (n p)`` with ``k = floor(n p)``.
  It is coherent (sub-additive) and always ``>= VaR``.

Both are ``None`` when the tail holds less than one whole day (``n p < 1``: fewer than 20 daily
returns at 95 %, fewer than 100 at 99 %), where either would only restate the worst day. A negative
value means that even the tail days were gains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from research.metrics import _check_equity, daily_returns, drawdown_series
from research.safe_files import json_safe
from research.tearsheet import ROLLING_WINDOW, rolling_sharpe, rolling_volatility

__all__ = ["VAR_LEVELS", "EquityHigh", "RiskMetrics", "RollingSummary", "TailRisk", "compute_risk_metrics",
           "equity_high", "historical_cvar", "historical_var", "max_drawdown_usd", "recovery_factor", "rolling_summary",
           "tail_risk", "ulcer_index"]

VAR_LEVELS = (0.95, 0.99)
"""Confidence levels of the VaR and CVaR reported (metrics.json keys ``var_95``, ``cvar_99``...)."""


def _sorted_returns(returns: Any, level: float) -> tuple[np.ndarray, float]:
    """Return (returns sorted ascending, ``n * p``), or raise ``ValueError`` for a bad input."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1 (0.95 = 95 %), got {level!r}")
    values = np.asarray(returns, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"returns must be one-dimensional, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("returns contain NaN or infinite values")
    return np.sort(values), len(values) * (1.0 - level)


def _loss(value: float) -> float:
    return -value + 0.0  # + 0.0: a zero return is a loss of 0.0, not -0.0


def historical_var(returns: Any, level: float = 0.95) -> float | None:
    """Historical value at risk of daily returns: minus the empirical lower ``1 - level`` quantile.

    Parameters
    ----------
    returns : array-like of float
        Daily returns, fractions (any order), shape ``(n,)``.
    level : float, default 0.95
        Confidence level in (0, 1).

    Returns
    -------
    float or None
        ``-r(ceil(n p))`` with ``p = 1 - level`` (see the module docstring), a loss as a positive
        fraction; ``None`` when ``n p < 1``.

    Raises
    ------
    ValueError
        If ``level`` is not in (0, 1), or ``returns`` is not 1-D or holds NaN/inf.

    Examples
    --------
    >>> historical_var([-0.05, -0.04, -0.03] + [0.01] * 17, 0.95)  # n p = 1: the worst day
    0.05
    >>> historical_var([-0.05, -0.04, -0.03] + [0.01] * 37, 0.95)  # n p = 2: the 2nd worst
    0.04
    """
    ordered, tail = _sorted_returns(returns, level)
    if tail < 1.0 - 1e-9:
        return None
    # ceil with a tolerance: n * (1 - 0.95) is 5.000000000000004 for n = 100, and means 5
    rank = max(1, math.ceil(tail - 1e-9))
    return _loss(float(ordered[rank - 1]))


def historical_cvar(returns: Any, level: float = 0.95) -> float | None:
    """Historical expected shortfall (CVaR) of daily returns (Acerbi & Tasche 2002).

    Parameters
    ----------
    returns : array-like of float
        Daily returns, fractions, shape ``(n,)``.
    level : float, default 0.95
        Confidence level in (0, 1).

    Returns
    -------
    float or None
        Mean loss over the worst ``n p`` days, the boundary day weighted by its fraction in the
        tail (module docstring); a positive fraction for a loss, ``>= historical_var``; ``None``
        when ``n p < 1``.

    Raises
    ------
    ValueError
        As :func:`historical_var`.

    Examples
    --------
    >>> round(historical_cvar([-0.05, -0.04, -0.03] + [0.01] * 37, 0.95), 6)  # mean of the 2 worst
    0.045
    """
    ordered, tail = _sorted_returns(returns, level)
    if tail < 1.0 - 1e-9:
        return None
    whole = int(math.floor(tail + 1e-9))
    part = max(0.0, tail - whole) if whole < len(ordered) else 0.0
    total = float(ordered[:whole].sum()) + (part * float(ordered[whole]) if part > 1e-9 else 0.0)
    return _loss(total / tail)


@dataclass(frozen=True)
class TailRisk:
    """VaR and CVaR at one confidence level.

    Attributes
    ----------
    level : float
        Confidence level (0.95).
    var, cvar : float or None
        Daily loss, positive fractions (``None`` with fewer than ``1 / (1 - level)`` daily returns).
    tail_days : float
        ``n * (1 - level)``: how many daily returns the tail holds.
    """

    level: float
    var: float | None
    cvar: float | None
    tail_days: float


def tail_risk(returns: Any, level: float) -> TailRisk:
    """Return :class:`TailRisk` of daily ``returns`` at ``level`` (raises as :func:`historical_var`)."""
    values = np.asarray(returns, dtype=float)
    return TailRisk(level, historical_var(values, level), historical_cvar(values, level), len(values) * (1.0 - level))


@dataclass(frozen=True)
class RollingSummary:
    """Last, lowest and highest value of a rolling statistic over full windows of daily returns.

    Attributes
    ----------
    window : int
        Daily returns per window.
    windows : int
        Full windows with a defined value (0 when the run has fewer than ``window`` returns).
    last, min, max : float or None
        Value of the most recent window (``None`` if undefined there, e.g. zero dispersion) and the
        extremes over all defined windows; ``None`` without any.
    """

    window: int
    windows: int
    last: float | None
    min: float | None
    max: float | None


def rolling_summary(values: pd.Series, window: int) -> RollingSummary:
    """Summarise a rolling series (NaN where undefined, as from :func:`research.tearsheet.rolling_sharpe`).

    Examples
    --------
    >>> rolling_summary(pd.Series([np.nan, 1.0, -2.0, 0.5]), 2)
    RollingSummary(window=2, windows=3, last=0.5, min=-2.0, max=1.0)
    """
    array = np.asarray(values, dtype=float)
    defined = array[np.isfinite(array)]
    if not len(defined):
        return RollingSummary(window, 0, None, None, None)
    last = float(array[-1]) if math.isfinite(array[-1]) else None
    return RollingSummary(window, len(defined), last, float(defined.min()), float(defined.max()))


@dataclass(frozen=True)
class EquityHigh:
    """Where the curve stands against its high-water mark.

    Attributes
    ----------
    distance : float
        ``last equity / running peak - 1``, a fraction ``<= 0`` (``-0.08`` = 8 % below the high;
        the last point of ``equity.csv``'s drawdown column).
    peak : float
        The high, USD (the largest equity of the curve).
    peak_time : pd.Timestamp
        The last time equity stood at the high (UTC).
    since : pd.Timedelta
        From ``peak_time`` to the end of the curve (0 when the run ends at its high).
    """

    distance: float
    peak: float
    peak_time: pd.Timestamp
    since: pd.Timedelta


def equity_high(equity: pd.Series) -> EquityHigh:
    """Return the distance from the equity high and the time since it (full-resolution curve).

    Parameters
    ----------
    equity : pd.Series
        Equity in USD on a strictly increasing tz-aware DatetimeIndex, positive at the start.

    Raises
    ------
    ValueError
        As :func:`research.metrics.drawdown_series`.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    >>> h = equity_high(pd.Series([100.0, 120.0, 90.0, 108.0], index=idx))
    >>> round(h.distance, 4), h.peak, h.peak_time.day, h.since.days
    (-0.1, 120.0, 2, 2)
    """
    values = _check_equity(equity)
    array = values.to_numpy()
    at = len(array) - 1 - int(np.argmax(array[::-1]))  # the last position of the maximum (a view, no copy)
    peak = float(array[at])
    times = pd.DatetimeIndex(values.index)
    return EquityHigh(float(array[-1]) / peak - 1.0, peak, times[at], times[-1] - times[at])


# --- drawdown figures of a whole curve (``tradingd sizing``) ---------------------------------------

def ulcer_index(equity: pd.Series) -> float:
    """Return the Ulcer index of an equity curve: ``sqrt(mean(drawdown ** 2))`` over every point.

    Martin & McCann (1989), *The Investor's Guide to Fidelity Funds*: the root mean square of the
    percentage drawdown from the running peak. Here the drawdown is a fraction, so the result is
    too (0.05 = Martin's 5); it is taken over the curve's points as given (bar resolution).

    Raises
    ------
    ValueError
        For an ``equity`` curve :func:`research.metrics.drawdown_series` refuses.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    >>> round(ulcer_index(pd.Series([100.0, 110.0, 99.0, 121.0], index=idx)), 4)
    0.05
    """
    drawdown = drawdown_series(equity).to_numpy()
    return float(math.sqrt(float(np.mean(drawdown * drawdown))))


def max_drawdown_usd(equity: pd.Series) -> float:
    """Return the largest fall from a running peak in USD (>= 0), ``max(peak - equity)``.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    >>> max_drawdown_usd(pd.Series([100.0, 110.0, 99.0, 121.0], index=idx))
    11.0
    """
    values = equity.to_numpy(dtype="float64")
    if not len(values):
        raise ValueError("equity is empty: need at least one point")
    return float(np.max(np.maximum.accumulate(values) - values))


def recovery_factor(equity: pd.Series) -> float | None:
    """Return net profit / max drawdown, both USD (None when the curve never falls).

    The recovery factor of the strategy performance reports of trading platforms (TradeStation,
    MetaTrader): net profit is the last point minus the first (so positions still open count at
    their mark), the max drawdown is :func:`max_drawdown_usd`. Negative for a net loss.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    >>> recovery_factor(pd.Series([100.0, 110.0, 99.0, 121.0], index=idx))
    1.9090909090909092
    """
    drawdown = max_drawdown_usd(equity)
    if drawdown <= 0:
        return None
    return float(equity.iloc[-1] - equity.iloc[0]) / drawdown


@dataclass(frozen=True)
class RiskMetrics:
    """Risk of one equity curve (``metrics.json`` ``risk`` block, the report's Risk section).

    Attributes
    ----------
    observations : int
        Daily returns used.
    tails : tuple[TailRisk, ...]
        VaR and CVaR at each of :data:`VAR_LEVELS`.
    rolling_sharpe, rolling_volatility : RollingSummary
        Of :func:`research.tearsheet.rolling_sharpe` / :func:`~research.tearsheet.rolling_volatility`
        (annualised, risk-free rate 0) over the same window the report charts.
    high : EquityHigh
        Distance from the equity high and time since it.
    """

    observations: int
    tails: tuple[TailRisk, ...]
    rolling_sharpe: RollingSummary
    rolling_volatility: RollingSummary
    high: EquityHigh

    def tail(self, level: float) -> TailRisk:
        """The :class:`TailRisk` at ``level`` (one of :data:`VAR_LEVELS`); ``KeyError`` otherwise."""
        for t in self.tails:
            if abs(t.level - level) < 1e-12:
                return t
        raise KeyError(f"no VaR at level {level}; have {[t.level for t in self.tails]}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: ``observations``, ``var_95``, ``cvar_95``, ``var_99``, ``cvar_99`` (positive
        fractions = loss, or ``None``), ``var_method``, ``rolling`` (``window``, ``windows``,
        ``sharpe`` and ``volatility`` as ``{last, min, max}``), ``equity_high`` (``distance``
        fraction <= 0, ``peak`` USD, ``peak_time`` ISO-8601 UTC, ``time_since`` as seconds, days
        and text)."""
        out: dict[str, Any] = {"observations": self.observations}
        for t in self.tails:
            suffix = f"{round(t.level * 100):d}"
            out[f"var_{suffix}"], out[f"cvar_{suffix}"] = t.var, t.cvar
        out["var_method"] = ("historical, daily returns: VaR = -r(ceil(n p)), CVaR = mean loss of the worst n p days "
                             "(Acerbi & Tasche 2002); p = 1 - level; null when n p < 1")

        def summary(s: RollingSummary) -> dict[str, Any]:
            return {"last": s.last, "min": s.min, "max": s.max}

        out["rolling"] = {"window": self.rolling_sharpe.window, "windows": self.rolling_sharpe.windows,
                          "sharpe": summary(self.rolling_sharpe), "volatility": summary(self.rolling_volatility)}
        since = self.high.since
        out["equity_high"] = {"distance": self.high.distance, "peak": self.high.peak,
                              "peak_time": self.high.peak_time.isoformat(),
                              "time_since": {"seconds": since.total_seconds(), "days": since / pd.Timedelta(days=1),
                                             "text": str(since)}}
        return json_safe(out)


def compute_risk_metrics(equity: pd.Series, periods_per_year: float, window: int = ROLLING_WINDOW) -> RiskMetrics:
    """Compute the risk metrics of an equity curve.

    Parameters
    ----------
    equity : pd.Series
        Equity in USD on a strictly increasing tz-aware (UTC) DatetimeIndex, positive at the start.
    periods_per_year : float
        Daily periods per year for the rolling ratios (``PerformanceMetrics.periods_per_year``).
    window : int, default :data:`research.tearsheet.ROLLING_WINDOW`
        Daily returns per rolling window, ``>= 2``.

    Returns
    -------
    RiskMetrics

    Raises
    ------
    ValueError
        If ``equity`` fails the checks of :func:`research.metrics.drawdown_series`, or ``window < 2``.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC")
    >>> r = compute_risk_metrics(pd.Series(np.linspace(100.0, 129.0, 30), index=idx), 365.0, window=5)
    >>> r.observations, r.tail(0.95).var < 0, r.tail(0.99).var, r.high.distance
    (29, True, None, 0.0)
    """
    returns = daily_returns(equity)
    values = returns.to_numpy()
    return RiskMetrics(
        observations=len(values),
        tails=tuple(tail_risk(values, level) for level in VAR_LEVELS),
        rolling_sharpe=rolling_summary(rolling_sharpe(returns, periods_per_year, window), window),
        rolling_volatility=rolling_summary(rolling_volatility(returns, periods_per_year, window), window),
        high=equity_high(equity),
    )
