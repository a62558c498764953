"""Display formatting of report values: fractions as percent, USD, ratios, durations and UTC times.

Missing values (``None``, NaN, NaT) show as :data:`NOT_AVAILABLE`.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["NOT_AVAILABLE", "fmt_days", "fmt_duration", "fmt_num", "fmt_pct", "fmt_time", "fmt_usd", "is_missing"]

NOT_AVAILABLE = "n/a"


def is_missing(value: Any) -> bool:
    """Return True for ``None``, NaN and NaT.

    Examples
    --------
    >>> is_missing(None), is_missing(float("nan")), is_missing(pd.NaT), is_missing(0.0)
    (True, True, True, False)
    """
    if value is None or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def fmt_pct(value: float | None, digits: int = 2) -> str:
    """Format a fraction as percent (``0.2134`` -> ``"21.34%"``; ``inf`` -> ``"∞"``).

    Examples
    --------
    >>> fmt_pct(0.2134), fmt_pct(-0.05, 1), fmt_pct(None)
    ('21.34%', '-5.0%', 'n/a')
    """
    if value is None or is_missing(value):
        return NOT_AVAILABLE
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value * 100:.{digits}f}%"


def fmt_num(value: float | None, digits: int = 2) -> str:
    """Format a ratio with ``digits`` decimals (``inf`` -> ``"∞"``).

    Examples
    --------
    >>> fmt_num(1.234), fmt_num(float("inf")), fmt_num(None)
    ('1.23', '∞', 'n/a')
    """
    if value is None or is_missing(value):
        return NOT_AVAILABLE
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{digits}f}"


def fmt_usd(value: float | None) -> str:
    """Format USD with thousands separators and cents (``-1234.5`` -> ``"-$1,234.50"``).

    Examples
    --------
    >>> fmt_usd(-1234.5), fmt_usd(12.5), fmt_usd(float("inf"))
    ('-$1,234.50', '$12.50', 'n/a')
    """
    if value is None or is_missing(value) or math.isinf(value):
        return NOT_AVAILABLE
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def fmt_duration(value: pd.Timedelta | None) -> str:
    """Format a duration as ``"3d 4h"`` (a day or more) or ``"2h 5m"``.

    Examples
    --------
    >>> fmt_duration(pd.Timedelta(hours=76)), fmt_duration(pd.Timedelta(minutes=125)), fmt_duration(None)
    ('3d 4h', '2h 5m', 'n/a')
    """
    if value is None or pd.isna(value):
        return NOT_AVAILABLE
    minutes = int(value / pd.Timedelta(minutes=1))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m"


def fmt_days(value: float | None) -> str:
    """Format a number of calendar days with one decimal (``2.25`` -> ``"2.2"`` days).

    Examples
    --------
    >>> fmt_days(412.0), fmt_days(0.125)
    ('412.0', '0.1')
    """
    if value is None or is_missing(value):
        return NOT_AVAILABLE
    return f"{value:,.1f}"


def fmt_time(value: pd.Timestamp | None) -> str:
    """Format a timestamp as UTC ``"2024-01-02 15:30"`` (seconds only when non-zero).

    Examples
    --------
    >>> fmt_time(pd.Timestamp("2024-01-02 10:30", tz="America/New_York")), fmt_time(None)
    ('2024-01-02 15:30', 'n/a')
    """
    if value is None or is_missing(value):
        return NOT_AVAILABLE
    ts = pd.Timestamp(value)
    ts = ts.tz_convert("UTC") if ts.tzinfo is not None else ts
    return ts.strftime("%Y-%m-%d %H:%M:%S" if ts.second or ts.microsecond else "%Y-%m-%d %H:%M")
