"""The portfolio benchmarks of ``tradingd benchmark``: a stock/bond mix (60/40 by default) and naive
12-1 momentum, both rebalanced at the first timestamp of each UTC month (:func:`sixty_forty`,
:func:`naive_momentum`, and their curves with exposure and label for the comparison).

The same rules as every benchmark of :mod:`research.benchmark`: fractional shares at the last known
close, no commission, no slippage, idle cash earns nothing, and no close is used before the time it
is stamped with (bar end). The validated closes, the as-of lookup and the month runs are that
module's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from research.benchmark import BenchmarkCurve, _as_curve, _asof, _check, _Closes, _closes, _months

__all__ = ["MOMENTUM", "SIXTY_FORTY", "momentum_curve", "momentum_picks", "naive_momentum", "sixty_forty",
           "sixty_forty_curve"]

SIXTY_FORTY = "60_40"
"""Name of the 60/40 benchmark (:func:`sixty_forty`)."""
MOMENTUM = "momentum"
"""Name of the naive momentum benchmark (:func:`naive_momentum`)."""


def _rebalanced(known_closes: list[_Closes], starting_cash: float, index: pd.DatetimeIndex,
                weights: Callable[[int, int], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Return (value, invested) USD arrays of a portfolio reset at the first timestamp of each UTC
    month to the target ``weights(month number, position)`` (fractions of wealth per symbol, sum
    <= 1); a target whose close is not known yet, and whatever the weights leave, is cash."""
    n = len(index)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    value, invested = np.empty(n), np.zeros(n)
    cash, shares = float(starting_cash), np.zeros(len(known_closes))
    for month, (begin, stop) in enumerate(_months(index)):
        prices = np.column_stack([_asof(known, index, begin, stop) for known in known_closes])
        held = shares > 0
        wealth = cash + float(shares[held] @ prices[0, held])  # held prices stay known (forward fill)
        target = weights(month, begin)
        buy = (target > 0) & ~np.isnan(prices[0])
        shares = np.zeros(len(known_closes))
        shares[buy] = wealth * target[buy] / prices[0, buy]
        cash = wealth - wealth * float(target[buy].sum())
        segment = prices[:, buy] @ shares[buy]
        value[begin:stop] = cash + segment
        invested[begin:stop] = segment
    return value, invested


def _sixty_forty(stock: pd.Series, bond: pd.Series, starting_cash: float, index: pd.DatetimeIndex,
                 stock_weight: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 <= stock_weight <= 1.0:
        raise ValueError(f"stock_weight must be a fraction in [0, 1], got {stock_weight!r}")
    index_utc = _check({"stock": stock, "bond": bond}, starting_cash, index)
    known = [_closes(stock, "stock", index_utc), _closes(bond, "bond", index_utc)]
    target = np.array([stock_weight, 1.0 - stock_weight])
    return _rebalanced(known, starting_cash, index_utc, lambda month, begin: target)


def sixty_forty(stock: pd.Series, bond: pd.Series, starting_cash: float, index: pd.DatetimeIndex,
                stock_weight: float = 0.6) -> pd.Series:
    """Return the equity of a stock/bond mix (60/40 by default) rebalanced monthly, on ``index``.

    At ``index[0]`` and at the first timestamp of ``index`` in each later UTC calendar month, the
    portfolio is reset to ``stock_weight`` of its value in ``stock`` and the rest in ``bond``, at
    the last known closes (fractional shares, no costs). A side whose close is not known yet
    keeps its share in cash (0 % interest) until the first rebalance after its first close; a
    series that has ended is valued at its last close from then on (held flat), so its share is
    in effect cash. The classic balanced portfolio (e.g. Bogle 1994, "Bogle on Mutual Funds").

    Parameters
    ----------
    stock, bond : pd.Series
        Closes in USD on tz-aware indexes, stamped when known (bar end); any spacing (daily bond
        closes against an hourly equity index are taken as of each timestamp).
    starting_cash : float
        Cash at the start, USD.
    index : pd.DatetimeIndex
        Timestamps at which to value the portfolio (the equity curve's index), tz-aware, sorted.
    stock_weight : float, default 0.6
        Fraction of the value put in ``stock`` at each rebalance, in [0, 1].

    Returns
    -------
    pd.Series
        Portfolio value in USD on ``index``, named ``"60_40"``; values at ``t`` use only closes
        stamped at or before ``t``.

    Raises
    ------
    ValueError
        If ``stock_weight`` is outside [0, 1], or as :func:`buy_and_hold`.

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2024-01-30", "2024-01-31", "2024-02-01", "2024-02-02"], tz="UTC")
    >>> stock = pd.Series([10.0, 20.0, 20.0, 20.0], index=idx)
    >>> bond = pd.Series([10.0] * 4, index=idx)
    >>> sixty_forty(stock, bond, 100.0, idx).tolist()  # Jan 31: 60 -> 120; Feb 1: 160 re-split 96/64
    [100.0, 160.0, 160.0, 160.0]
    """
    value, _ = _sixty_forty(stock, bond, starting_cash, index, stock_weight)
    return pd.Series(value, index=index, name=SIXTY_FORTY, copy=False)


def _check_momentum(top: int, lookback_months: int, skip_months: int) -> None:
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    if not 1 <= skip_months < lookback_months:
        raise ValueError(f"need 1 <= skip_months < lookback_months, got skip {skip_months}, lookback "
                         f"{lookback_months}")


def _known_at(known: _Closes, times: pd.DatetimeIndex) -> np.ndarray:
    """The last close stamped at or before each of ``times`` (NaN if none)."""
    pos = known.index.searchsorted(times, side="right") - 1
    out = np.full(len(times), np.nan)
    out[pos >= 0] = known.values[pos[pos >= 0]]
    return out


def _momentum_choice(closes: dict[str, pd.Series], index_utc: pd.DatetimeIndex, top: int, lookback_months: int,
                     skip_months: int) -> tuple[list[_Closes], list[tuple[int, int]], list[list[int]]]:
    """(validated closes, month runs of ``index_utc``, positions of the symbols held each month)."""
    _check_momentum(top, lookback_months, skip_months)
    symbols = list(closes)
    known = [_closes(closes[s], s, index_utc) for s in symbols]
    months = _months(index_utc) if len(index_utc) else []
    rebalances = pd.DatetimeIndex(index_utc[[begin for begin, _ in months]])
    # formation window [t - lookback, t - skip] with skip >= 1 month: its closes are known a month
    # before the rebalance time t, so nothing stamped at or after t can change the choice
    end = np.column_stack([_known_at(k, rebalances - pd.DateOffset(months=skip_months)) for k in known])
    start = np.column_stack([_known_at(k, rebalances - pd.DateOffset(months=lookback_months)) for k in known])
    with np.errstate(invalid="ignore", divide="ignore"):
        score = end / start - 1.0
    chosen = []
    for row in score:
        eligible = [j for j in range(len(symbols)) if np.isfinite(row[j])]
        chosen.append(sorted(eligible, key=lambda j: (-row[j], j))[:top])  # ties: the order of ``closes``
    return known, months, chosen


def momentum_picks(closes: dict[str, pd.Series], index: pd.DatetimeIndex, top: int = 2, lookback_months: int = 12,
                   skip_months: int = 1) -> list[tuple[pd.Timestamp, tuple[str, ...]]]:
    """Return what :func:`naive_momentum` holds each month: (rebalance time, symbols held).

    At the first timestamp ``t`` of ``index`` in each UTC calendar month, every symbol is scored
    by its return from ``t - lookback_months`` to ``t - skip_months`` (calendar months), each end
    being the last close stamped at or before that time, so every close used is known at least
    ``skip_months`` before ``t``; the ``top`` highest scores are held (ties: the order of
    ``closes``). A symbol without a close at or before ``t - lookback_months`` cannot be scored
    that month. The 12-month formation period skipping the most recent month is
    the momentum of Jegadeesh & Titman (1993), "Returns to Buying Winners and Selling Losers",
    Journal of Finance 48(1), long side only.

    Parameters
    ----------
    closes : dict[str, pd.Series]
        Close per symbol in USD, stamped when known (bar end), tz-aware; closes before
        ``index[0]`` serve as the formation period of the first months.
    index : pd.DatetimeIndex
        The strategy's equity index (tz-aware, sorted).
    top : int, default 2
        Symbols held at a time, ``>= 1`` (fewer when fewer can be scored; none: cash).
    lookback_months, skip_months : int, default 12 and 1
        Formation period, ``1 <= skip_months < lookback_months``.

    Returns
    -------
    list[tuple[pd.Timestamp, tuple[str, ...]]]
        One entry per month of ``index``, best score first; ``()`` when no symbol can be scored.

    Raises
    ------
    ValueError
        If ``top < 1`` or the months are inconsistent, or as :func:`buy_and_hold`.

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2023-01-15", "2024-01-01", "2024-02-01", "2024-03-01"], tz="UTC")
    >>> closes = {"A": pd.Series([10.0, 11.0, 12.0, 13.0], index=idx),
    ...           "B": pd.Series([10.0, 30.0, 5.0, 10.0], index=idx)}
    >>> [(t.strftime("%Y-%m"), held) for t, held in momentum_picks(closes, idx, top=1)]
    [('2023-01', ()), ('2024-01', ()), ('2024-02', ('B',)), ('2024-03', ('A',))]
    """
    index_utc = _check(closes, 1.0, index)
    _, months, chosen = _momentum_choice(closes, index_utc, top, lookback_months, skip_months)
    symbols = list(closes)
    return [(index_utc[begin], tuple(symbols[j] for j in held)) for (begin, _), held in zip(months, chosen)]


def _momentum(closes: dict[str, pd.Series], starting_cash: float, index: pd.DatetimeIndex, top: int,
              lookback_months: int, skip_months: int) -> tuple[np.ndarray, np.ndarray]:
    index_utc = _check(closes, starting_cash, index)
    known, _, chosen = _momentum_choice(closes, index_utc, top, lookback_months, skip_months)
    targets = []
    for held in chosen:
        target = np.zeros(len(known))
        target[held] = 1.0 / len(held) if held else 0.0
        targets.append(target)
    return _rebalanced(known, starting_cash, index_utc, lambda month, begin: targets[month])


def naive_momentum(closes: dict[str, pd.Series], starting_cash: float, index: pd.DatetimeIndex, top: int = 2,
                   lookback_months: int = 12, skip_months: int = 1) -> pd.Series:
    """Return the equity of a naive momentum portfolio rebalanced monthly, on ``index``.

    Each month the whole portfolio is put, in equal weights, into the ``top`` symbols with the
    best trailing return (:func:`momentum_picks`: 12 months skipping the last, Jegadeesh & Titman
    1993), at the last known close at the first timestamp of the month (fractional shares, no
    costs), and held until the next month: no stop, no other exit. A month in which no symbol
    can be scored (less than ``lookback_months`` of closes before it) is cash.

    Parameters
    ----------
    closes : dict[str, pd.Series]
        The universe: close per symbol in USD, stamped when known (bar end), tz-aware.
    starting_cash : float
        Cash at the start, USD.
    index : pd.DatetimeIndex
        Timestamps at which to value the portfolio (the equity curve's index), tz-aware, sorted.
    top : int, default 2
        Symbols held at a time, ``>= 1``.
    lookback_months, skip_months : int, default 12 and 1
        Formation period (calendar months), ``1 <= skip_months < lookback_months``.

    Returns
    -------
    pd.Series
        Portfolio value in USD on ``index``, named ``"momentum"``; no look-ahead (the choice at
        ``t`` uses closes stamped a month or more before ``t``, the value at ``t`` closes stamped at or before ``t``).

    Raises
    ------
    ValueError
        If ``top < 1``, the months are inconsistent, or as :func:`buy_and_hold`.

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2023-01-15", "2024-01-01", "2024-02-01", "2024-03-01"], tz="UTC")
    >>> closes = {"A": pd.Series([10.0, 11.0, 12.0, 13.0], index=idx),
    ...           "B": pd.Series([10.0, 30.0, 5.0, 10.0], index=idx)}
    >>> naive_momentum(closes, 100.0, idx, top=1).tolist()  # cash, then B from Feb 1 (5 -> 10), then A
    [100.0, 100.0, 100.0, 200.0]
    """
    value, _ = _momentum(closes, starting_cash, index, top, lookback_months, skip_months)
    return pd.Series(value, index=index, name=MOMENTUM, copy=False)


def sixty_forty_curve(stock_symbol: str, stock: pd.Series, bond_symbol: str, bond: pd.Series, starting_cash: float,
                      index: pd.DatetimeIndex, stock_weight: float = 0.6) -> BenchmarkCurve:
    """Build :func:`sixty_forty` of ``stock_symbol``/``bond_symbol`` with its exposure and label.

    Raises
    ------
    ValueError
        As :func:`sixty_forty`.
    """
    value, invested = _sixty_forty(stock, bond, starting_cash, index, stock_weight)
    stock_pct, bond_pct = f"{stock_weight * 100:g}", f"{(1 - stock_weight) * 100:g}"
    rule = (f"{stock_pct}% {stock_symbol} and {bond_pct}% {bond_symbol}, weights restored at the first bar of "
            f"each month (UTC); fractional shares at the last close, no costs; a side not priced yet waits in "
            f"cash, a series that has ended is held at its last close")
    return _as_curve(SIXTY_FORTY, f"{stock_pct}/{bond_pct} {stock_symbol}/{bond_symbol} (monthly)", rule, value,
                     invested, index)


def momentum_curve(closes: dict[str, pd.Series], starting_cash: float, index: pd.DatetimeIndex, top: int = 2,
                   lookback_months: int = 12, skip_months: int = 1) -> BenchmarkCurve:
    """Build :func:`naive_momentum` over ``closes`` with its exposure and label.

    Raises
    ------
    ValueError
        As :func:`naive_momentum`.
    """
    value, invested = _momentum(closes, starting_cash, index, top, lookback_months, skip_months)
    rule = (f"each month (first bar, UTC) all in the {top} of {', '.join(closes)} with the best return over the "
            f"{lookback_months} months before, skipping the last {skip_months} (Jegadeesh & Titman 1993), equal "
            f"weights, held to the next month with no other exit; cash while no symbol has "
            f"{lookback_months} months of closes; fractional shares at the last close, no costs")
    label = f"Momentum top {top} ({lookback_months}-{skip_months}, monthly)"
    return _as_curve(MOMENTUM, label, rule, value, invested, index)
