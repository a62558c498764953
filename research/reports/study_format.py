"""How a study report reads and shows values: metric formatting by kind, percent tick formats,
display names of space keys, and tolerant readers of loosely typed inputs (a mapping or an object
with the same fields, numbers that may be None, NaN or strings)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from research.reports.formatting import NOT_AVAILABLE, fmt_num, fmt_pct, fmt_usd

__all__ = ["PERCENT_METRICS", "as_float", "as_int", "fmt_metric", "is_finite_number", "is_number", "param_name",
           "pct_tickformat", "pick", "show_value"]

PERCENT_METRICS = frozenset({"total_return", "cagr", "annual_return", "volatility", "max_drawdown", "win_rate",
                             "exposure"})
"""Metrics that are fractions, shown in percent."""


def fmt_metric(name: str, value: Any) -> str:
    """Format a metric by its kind: fractions in %, ratios with 2 decimals, USD, counts.

    Examples
    --------
    >>> fmt_metric("sharpe", 1.2345), fmt_metric("max_drawdown", 0.0123), fmt_metric("trades", 41.0)
    ('1.23', '1.23%', '41')
    >>> fmt_metric("expectancy", 12.5), fmt_metric("sharpe", None)
    ('$12.50', 'n/a')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_AVAILABLE
    if name in PERCENT_METRICS:
        return fmt_pct(float(value))
    if name == "expectancy":
        return fmt_usd(float(value))
    if name == "trades":
        return f"{int(value)}"
    return fmt_num(float(value))


def pct_tickformat(values: Any) -> str:
    """A plotly percent tick format with enough decimals for ``values`` (fractions).

    Examples
    --------
    >>> pct_tickformat([0.006, 0.011]), pct_tickformat([0.05, 0.4]), pct_tickformat([])
    ('.2%', '.1%', '.1%')
    """
    data = np.asarray(values, dtype=float).ravel()
    data = data[np.isfinite(data)]
    if not len(data):
        return ".1%"
    span = float(data.max() - data.min()) or abs(float(data.max()))
    return ".2%" if span < 0.05 else ".1%" if span < 0.5 else ".0%"


def param_name(key: str) -> str:
    """The display name of a space key: ``"params.fast"`` -> ``"fast"`` (risk./fill. keep theirs).

    Examples
    --------
    >>> param_name("params.fast"), param_name("risk.risk_per_trade"), param_name("timeframe")
    ('fast', 'risk.risk_per_trade', 'timeframe')
    """
    return key.removeprefix("params.")


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite int or float (numpy ones too; a bool is not a number here)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(float(value))


def is_number(value: Any) -> bool:
    """Whether ``value`` is an int or float (numpy ones too; not a bool), NaN and inf included."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def show_value(value: Any) -> str:
    """A parameter value as shown: floats with 6 significant digits, anything else as ``str``."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def pick(source: Any, *names: str) -> Any:
    """The first of ``names`` found as a mapping key or an attribute of ``source`` (None if none)."""
    if source is None:
        return None
    for name in names:
        if isinstance(source, Mapping):
            if name in source and source[name] is not None:
                return source[name]
        elif getattr(source, name, None) is not None:
            return getattr(source, name)
    return None


def as_float(value: Any) -> float | None:
    """``value`` as a float; None for None, a bool, NaN or anything ``float()`` refuses."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if not math.isnan(number) else None


def as_int(value: Any) -> int | None:
    """``value`` as an int (truncated); None where :func:`as_float` is None or the value is infinite."""
    number = as_float(value)
    return None if number is None or not math.isfinite(number) else int(number)
