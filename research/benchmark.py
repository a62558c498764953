"""Buy-and-hold benchmark: what the replay's starting cash would have become by just holding."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["buy_and_hold"]


def _asof_prices(close: pd.Series, symbol: str, index: pd.DatetimeIndex) -> np.ndarray:
    """Return the last known close at or before each timestamp of ``index`` (NaN before the first)."""
    if not isinstance(close.index, pd.DatetimeIndex) or close.index.tz is None:
        raise ValueError(f"closes[{symbol!r}] must have a timezone-aware DatetimeIndex")
    clean = close.astype(float).dropna()
    if (clean <= 0).any():
        raise ValueError(f"closes[{symbol!r}] contains non-positive prices")
    if not clean.index.is_monotonic_increasing:
        clean = clean.sort_index(kind="stable")
    clean_index = clean.index.tz_convert("UTC")
    # side="right": a close stamped exactly at t is known at t; later closes never leak backwards.
    pos = clean_index.searchsorted(index, side="right") - 1
    prices = clean.to_numpy()
    out = np.full(len(index), np.nan)
    known = pos >= 0
    out[known] = prices[pos[known]]
    return out


def buy_and_hold(closes: dict[str, pd.Series], starting_cash: float, index: pd.DatetimeIndex) -> pd.Series:
    """Return the equity of an equal-weight buy-and-hold portfolio on ``index``.

    ``starting_cash`` is split equally among the symbols. Each symbol's share is invested, in
    fractional shares and without costs, at the first timestamp of ``index`` at which a close is
    known for it, at that last known close (closes before ``index[0]`` are warm-up data: the
    purchase happens at ``index[0]`` at the close known then). A symbol whose data start later keeps
    its share in cash (0 % interest) until then; one with no close at or before ``index[-1]`` stays
    in cash throughout. Positions are then held to the end; no rebalancing.

    Parameters
    ----------
    closes : dict[str, pd.Series]
        Close price per symbol in USD on a tz-aware DatetimeIndex. Each close must be stamped with
        the time it became known (bar **end**, as the equity curve is); a series labelled by bar
        start must be shifted by one timeframe first, otherwise the benchmark looks ahead by a bar.
        NaN prices are ignored.
    starting_cash : float
        Cash at the start, USD (usually the replay's starting equity).
    index : pd.DatetimeIndex
        Timestamps at which to value the portfolio (usually the equity curve's index), tz-aware.

    Returns
    -------
    pd.Series
        Portfolio value in USD on ``index``, named ``"buy_and_hold"``. Values at ``t`` only use
        closes stamped at or before ``t`` (forward fill, no look-ahead).

    Raises
    ------
    ValueError
        If ``closes`` is empty, ``starting_cash`` is not positive, an index is naive, ``index`` is
        not sorted, or a close is not positive.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    >>> bh = buy_and_hold({"A": pd.Series([10.0, 20.0, 15.0], index=idx)}, 1000.0, idx)
    >>> bh.tolist()
    [1000.0, 2000.0, 1500.0]
    """
    if not closes:
        raise ValueError("closes is empty: need at least one symbol for the benchmark")
    if not starting_cash > 0:
        raise ValueError(f"starting_cash must be positive, got {starting_cash!r}")
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ValueError("index must be a timezone-aware DatetimeIndex")
    if not index.is_monotonic_increasing:
        raise ValueError("index must be sorted in increasing order")
    index_utc = index.tz_convert("UTC")
    allocation = float(starting_cash) / len(closes)
    total = np.zeros(len(index))
    for symbol, close in closes.items():
        prices = _asof_prices(close, symbol, index_utc)
        known = np.flatnonzero(~np.isnan(prices))
        value = np.full(len(index), allocation)
        if len(known):
            entry = known[0]
            shares = allocation / prices[entry]
            value[entry:] = shares * prices[entry:]  # prices are forward-filled, never NaN after entry
        total += value
    return pd.Series(total, index=index, name="buy_and_hold")
