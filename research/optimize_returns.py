"""The daily returns of a trial's full-period equity curve (:class:`DailyReturns`), carried with its
outcome so the overfitting statistics (:mod:`research.study_stats`: the T x N return matrix of the
PBO, the Sharpe variance of the DSR) never replay a trial a second time.

They travel through the forked workers' pipes and Dask (pickled arrays), and are kept with the
trial in the study storage and in the result cache (:mod:`research.trial_cache`) as a compact
JSON form (:meth:`DailyReturns.to_json`: zlib-compressed little-endian arrays in base64; 16 bytes
a day before compression, far less for a curve that is often flat), so a resumed or re-run study
has them too.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from research.metrics import daily_returns

__all__ = ["RETURNS_FORMAT", "DailyReturns"]

RETURNS_FORMAT = 1
"""Version of :meth:`DailyReturns.to_json`; another version is read as missing (the statistics then replay)."""


def _pack(array: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(array.tobytes(), 6)).decode("ascii")


def _unpack(text: Any, dtype: str, n: int) -> np.ndarray:
    if not isinstance(text, str):
        raise ValueError("not a string")
    array = np.frombuffer(zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True)), dtype=dtype)
    if array.size != n:
        raise ValueError(f"{array.size} values, expected {n}")
    return array


class DailyReturns:
    """Daily returns of one equity curve: :func:`research.metrics.daily_returns` (the last equity
    of each UTC day with data, ``pct_change``), the returns behind every Sharpe ratio tradingd reports.

    Parameters
    ----------
    days : np.ndarray, shape (T,)
        int64 ns UTC, midnight of each day after the first day with data, increasing.
    values : np.ndarray, shape (T,)
        float64 fractions (0.01 = +1 %).

    Raises
    ------
    ValueError
        If the arrays are not one-dimensional of the same length.

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2024-01-01 10:00", "2024-01-02 15:00", "2024-01-03 15:00"], tz="UTC")
    >>> r = DailyReturns.of_equity(pd.Series([100.0, 110.0, 99.0], index=idx))
    >>> r.series().round(4).tolist(), DailyReturns.from_json(r.to_json()) == r
    ([0.1, -0.1], True)
    """

    __slots__ = ("days", "values")

    def __init__(self, days: np.ndarray, values: np.ndarray) -> None:
        days = np.ascontiguousarray(days, dtype=np.int64)
        values = np.ascontiguousarray(values, dtype=np.float64)
        if days.ndim != 1 or values.shape != days.shape:
            raise ValueError(f"daily returns: {days.shape} days for {values.shape} values; expected two (T,) arrays")
        self.days = days
        self.values = values

    @classmethod
    def of_equity(cls, equity: pd.Series) -> DailyReturns | None:
        """The daily returns of ``equity`` (USD on a tz-aware increasing index); None for a curve
        of fewer than two points (no return to tell)."""
        if len(equity) < 2:
            return None
        daily = daily_returns(equity)
        return cls(pd.DatetimeIndex(daily.index).as_unit("ns").asi8, daily.to_numpy(dtype=np.float64))

    def __len__(self) -> int:
        return int(self.days.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DailyReturns):
            return NotImplemented
        return bool(np.array_equal(self.days, other.days) and np.array_equal(self.values, other.values))

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside

    def __repr__(self) -> str:
        return f"DailyReturns({len(self)} days)"

    def __reduce__(self) -> tuple[Any, tuple[np.ndarray, np.ndarray]]:
        return (DailyReturns, (self.days, self.values))

    def series(self) -> pd.Series:
        """The returns as a Series on their UTC midnight index (named ``returns``)."""
        return pd.Series(self.values, index=pd.to_datetime(self.days, unit="ns", utc=True), name="returns")

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe form: ``format``, ``n``, ``days`` (differences of the ns stamps, the first
        from 0) and ``values``, each zlib-compressed little-endian bytes in base64."""
        deltas = np.diff(self.days, prepend=np.int64(0)).astype("<i8")
        return {"format": RETURNS_FORMAT, "n": len(self), "days": _pack(deltas), "values": _pack(self.values.astype("<f8"))}

    @classmethod
    def from_json(cls, value: Any) -> DailyReturns | None:
        """Read :meth:`to_json`'s form back; None when ``value`` is missing, of another format
        or damaged (the caller then treats the returns as missing and replays)."""
        if not isinstance(value, Mapping) or value.get("format") != RETURNS_FORMAT:
            return None
        n = value.get("n")
        if not isinstance(n, int) or n < 0:
            return None
        try:
            days = np.cumsum(_unpack(value.get("days"), "<i8", n), dtype=np.int64)
            values = _unpack(value.get("values"), "<f8", n)
        except (ValueError, TypeError, zlib.error, binascii.Error):
            return None
        return cls(days, values)
