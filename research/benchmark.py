"""Benchmarks: what the replay's starting cash would have become without the strategy.

Four choices (:func:`build_benchmark`, ``--benchmark`` / ``[output] benchmark``):

* a symbol of the data, e.g. ``spy`` (matched case-insensitively): buy-and-hold of that symbol;
* ``equal_weight``: every symbol of the data, rebalanced to equal weights at the first equity
  timestamp (bar end, UTC) of each calendar month, among the symbols whose price is known then;
* ``equal_weight_hold``: starting cash split equally, each share bought once and never rebalanced
  (a symbol whose data start later keeps its share in cash until then);
* ``none``: no benchmark.

The default (``None`` or ``"auto"``) is ``SPY`` when SPY is in the data, else ``equal_weight``.
``tradingd benchmark`` adds two more on the same footing, in :mod:`research.benchmark_portfolios`:
a stock/bond mix rebalanced monthly and naive momentum, the best symbols by trailing 12-month return
each month.

Benchmarks trade fractional shares at the last known close with no commission and no slippage,
and idle cash earns nothing. Alongside the equity each benchmark has its exposure (invested value
/ equity, a fraction): below 1 while cash waits for a symbol whose data start later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from research.metrics import BLOCK

__all__ = ["AUTO", "EQUAL_WEIGHT", "EQUAL_WEIGHT_HOLD", "NONE", "BenchmarkCurve", "BenchmarkError", "benchmark_curve",
           "build_benchmark", "buy_and_hold", "equal_weight_monthly", "resolve_benchmark"]

AUTO = "auto"
EQUAL_WEIGHT = "equal_weight"
EQUAL_WEIGHT_HOLD = "equal_weight_hold"
NONE = "none"
DEFAULT_SYMBOL = "SPY"
"""Symbol the default benchmark holds when it is in the data."""
_KEYWORDS = (EQUAL_WEIGHT, EQUAL_WEIGHT_HOLD, NONE)


class BenchmarkError(ValueError):
    """An unknown benchmark name, or a benchmark symbol that is not in the data."""


@dataclass(frozen=True)
class BenchmarkCurve:
    """A benchmark evaluated on the strategy's equity index.

    Attributes
    ----------
    name : str
        Resolved name: ``"equal_weight"``, ``"equal_weight_hold"`` or the symbol as spelled in the
        data (``"SPY"``).
    label : str
        How tables and legends show it (``"SPY buy & hold"``).
    rule : str
        One sentence saying how it is built.
    equity : pd.Series
        Value in USD on the requested index.
    exposure : pd.Series
        Invested value / equity (fraction in [0, 1]) on the same index.
    """

    name: str
    label: str
    rule: str
    equity: pd.Series
    exposure: pd.Series


@dataclass(frozen=True)
class _Closes:
    """One symbol's validated closes: positive float USD, sorted, NaN dropped, UTC index.
    ``aligned`` when its stamps are exactly the (unique) valuation index, so the last known close
    at each point is the close itself."""

    values: np.ndarray
    index: pd.DatetimeIndex
    aligned: bool


def _same_stamps(a: pd.DatetimeIndex, b: pd.DatetimeIndex) -> bool:
    """Whether two indexes hold the same stamps in the same unit, compared a block at a time."""
    if a.dtype != b.dtype or len(a) != len(b):
        return False
    left, right = a.asi8, b.asi8
    return all(np.array_equal(left[low:low + BLOCK], right[low:low + BLOCK]) for low in range(0, len(left), BLOCK))


def _closes(close: pd.Series, symbol: str, index: pd.DatetimeIndex) -> _Closes:
    """Validate ``close`` for valuation on ``index`` (UTC, sorted), without copying it when it
    is float64 without NaN."""
    if not isinstance(close.index, pd.DatetimeIndex) or close.index.tz is None:
        raise ValueError(f"closes[{symbol!r}] must have a timezone-aware DatetimeIndex")
    clean = close.astype(float)  # float64 already: a view
    if clean.hasnans:
        clean = clean.dropna()
    if len(clean) and clean.min() <= 0:
        raise ValueError(f"closes[{symbol!r}] contains non-positive prices")
    if not clean.index.is_monotonic_increasing:
        clean = clean.sort_index(kind="stable")
    clean_index = pd.DatetimeIndex(clean.index).tz_convert("UTC")
    aligned = index.is_unique and _same_stamps(clean_index, index)
    return _Closes(clean.to_numpy(), clean_index, aligned)


def _asof(closes: _Closes, index: pd.DatetimeIndex, low: int, high: int) -> np.ndarray:
    """Return the last known close at or before each timestamp of ``index[low:high]`` (NaN
    before the first); a view of the closes when they are aligned with ``index``."""
    if closes.aligned:
        return closes.values[low:high]
    # side="right": a close stamped exactly at t is known at t; later closes never leak backwards.
    pos = closes.index.searchsorted(index[low:high], side="right") - 1
    out = np.full(high - low, np.nan)
    known = pos >= 0
    out[known] = closes.values[pos[known]]
    return out


def _first_known(closes: _Closes, index: pd.DatetimeIndex) -> int:
    """Position of the first timestamp of ``index`` at which a close is known (``len(index)`` if none)."""
    if not len(closes.values):
        return len(index)
    return 0 if closes.aligned else int(index.searchsorted(closes.index[0], side="left"))


def _check(closes: dict[str, pd.Series], starting_cash: float, index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    if not closes:
        raise ValueError("closes is empty: need at least one symbol for the benchmark")
    if not starting_cash > 0:
        raise ValueError(f"starting_cash must be positive, got {starting_cash!r}")
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ValueError("index must be a timezone-aware DatetimeIndex")
    if not index.is_monotonic_increasing:
        raise ValueError("index must be sorted in increasing order")
    return index.tz_convert("UTC")


def _hold(closes: dict[str, pd.Series], starting_cash: float,
          index: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Return (value, invested) USD arrays of equal-weight buy-and-hold on ``index``.

    Built a block at a time: the two results are the only index-long arrays.
    """
    index_utc = _check(closes, starting_cash, index)
    n = len(index)
    allocation = float(starting_cash) / len(closes)
    total = np.zeros(n)
    invested = np.zeros(n)
    for symbol, close in closes.items():
        known = _closes(close, symbol, index_utc)
        entry = _first_known(known, index_utc)
        shares = allocation / _asof(known, index_utc, entry, entry + 1)[0] if entry < n else 0.0
        for low in range(0, n, BLOCK):
            high = min(low + BLOCK, n)
            value = np.full(high - low, allocation)
            if entry < high:
                begin = max(entry, low)
                held = value[begin - low:]
                # prices are forward-filled, never NaN after entry
                np.multiply(shares, _asof(known, index_utc, begin, high), out=held)
                invested[begin:high] += held
            total[low:high] += value
    return total, invested


def buy_and_hold(closes: dict[str, pd.Series], starting_cash: float, index: pd.DatetimeIndex) -> pd.Series:
    """Return the equity of an equal-weight buy-and-hold portfolio on ``index``.

    ``starting_cash`` is split equally among the symbols. Each symbol's share is invested, in
    fractional shares and without costs, at the first timestamp of ``index`` at which a close is
    known for it, at that last known close (closes before ``index[0]`` are warm-up data: the
    purchase happens at ``index[0]`` at the close known then). A symbol whose data start later keeps
    its share in cash (0 % interest) until then; one with no close at or before ``index[-1]`` stays
    in cash throughout. Positions are then held to the end; no rebalancing. With one symbol this is
    that symbol's buy-and-hold.

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
    value, _ = _hold(closes, starting_cash, index)
    return pd.Series(value, index=index, name="buy_and_hold", copy=False)


def _monthly(closes: dict[str, pd.Series], starting_cash: float,
             index: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Return (value, invested) USD arrays of the monthly rebalanced equal-weight portfolio."""
    index_utc = _check(closes, starting_cash, index)
    n = len(index)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    known_closes = [_closes(close, symbol, index_utc) for symbol, close in closes.items()]
    value, invested = np.empty(n), np.zeros(n)
    cash, shares = float(starting_cash), np.zeros(len(known_closes))
    # one month of prices at a time (each month's rows are valued together, as one matrix)
    for begin, stop in _months(index_utc):
        prices = np.column_stack([_asof(known, index_utc, begin, stop) for known in known_closes])
        held = shares > 0
        wealth = cash + float(shares[held] @ prices[0, held])  # held prices stay known (forward fill)
        known = ~np.isnan(prices[0])
        count = int(known.sum())
        shares = np.zeros(prices.shape[1])
        if count == 0:  # nothing priced yet: all cash until a later month
            cash = wealth
            value[begin:stop] = wealth
            continue
        cash = 0.0
        shares[known] = wealth / count / prices[0, known]
        segment = prices[:, known] @ shares[known]
        value[begin:stop] = segment
        invested[begin:stop] = segment
    return value, invested


def _months(index: pd.DatetimeIndex) -> list[tuple[int, int]]:
    """(start, stop) positions of each UTC calendar month's run of a sorted UTC index, found a
    block at a time."""
    stamps = index.asi8
    n = len(stamps)
    starts = [0]
    previous = None
    for low in range(0, n, BLOCK):
        month = stamps[low:low + BLOCK].view(f"M8[{index.unit}]").astype("M8[M]").view(np.int64)
        if previous is not None and month[0] != previous:
            starts.append(low)
        starts.extend((np.flatnonzero(np.diff(month) != 0) + 1 + low).tolist())
        previous = month[-1]
    return list(zip(starts, starts[1:] + [n]))


def equal_weight_monthly(closes: dict[str, pd.Series], starting_cash: float, index: pd.DatetimeIndex) -> pd.Series:
    """Return the equity of an equal-weight portfolio rebalanced monthly, on ``index``.

    At ``index[0]`` and at the first timestamp of ``index`` in each later UTC calendar month, the
    whole portfolio is rebalanced to equal weights among the symbols whose close is known then
    (last known close, fractional shares, no costs); a symbol whose data start later joins at the
    first rebalance after its first close. Before any close is known the portfolio is cash.

    Parameters
    ----------
    closes : dict[str, pd.Series]
        Close price per symbol in USD on a tz-aware DatetimeIndex, stamped when known (bar end).
    starting_cash : float
        Cash at the start, USD.
    index : pd.DatetimeIndex
        Timestamps at which to value the portfolio (the equity curve's index), tz-aware, sorted.

    Returns
    -------
    pd.Series
        Portfolio value in USD on ``index``, named ``"equal_weight"``; no look-ahead.

    Raises
    ------
    ValueError
        Same conditions as :func:`buy_and_hold`.

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2024-01-30", "2024-01-31", "2024-02-01", "2024-02-02"], tz="UTC")
    >>> closes = {"A": pd.Series([10.0, 20.0, 20.0, 40.0], index=idx), "B": pd.Series([10.0] * 4, index=idx)}
    >>> equal_weight_monthly(closes, 100.0, idx).tolist()  # Feb 1: 150 USD re-split 75/75
    [100.0, 150.0, 150.0, 225.0]
    """
    value, _ = _monthly(closes, starting_cash, index)
    return pd.Series(value, index=index, name=EQUAL_WEIGHT, copy=False)


def resolve_benchmark(name: str | None, symbols: Iterable[str]) -> str:
    """Return the canonical benchmark name for ``name`` given the data's ``symbols``.

    Parameters
    ----------
    name : str or None
        ``None`` or ``"auto"`` (the default: ``SPY`` if in the data, else ``equal_weight``),
        ``"equal_weight"``, ``"equal_weight_hold"``, ``"none"``, or a symbol of the data (any case).
    symbols : Iterable[str]
        Symbols of the replay.

    Returns
    -------
    str
        ``"equal_weight"``, ``"equal_weight_hold"``, ``"none"`` or the symbol as spelled in the data.

    Raises
    ------
    BenchmarkError
        If ``name`` is neither a keyword nor a symbol of the data (the message lists the choices).

    Examples
    --------
    >>> resolve_benchmark(None, ["AAPL", "SPY"]), resolve_benchmark("auto", ["AAPL"])
    ('SPY', 'equal_weight')
    >>> resolve_benchmark("aapl", ["AAPL"])
    'AAPL'
    """
    available = list(symbols)
    key = (name or AUTO).strip()
    lowered = key.lower()
    if lowered == AUTO:
        return DEFAULT_SYMBOL if DEFAULT_SYMBOL in available else EQUAL_WEIGHT
    if lowered in _KEYWORDS:
        return lowered
    matches = [s for s in available if s.lower() == lowered]
    if matches:
        return key if key in matches else matches[0]
    raise BenchmarkError(
        f"benchmark {name!r}: not a symbol of the data ({', '.join(available) or 'none'}) nor one of "
        f"{', '.join((AUTO, *_KEYWORDS))}; choose a symbol to buy and hold (e.g. spy when SPY is in the data), "
        f"equal_weight (rebalanced monthly), equal_weight_hold (never rebalanced) or none")


def benchmark_curve(name: str | None, closes: dict[str, pd.Series], starting_cash: float,
                    index: pd.DatetimeIndex) -> BenchmarkCurve | None:
    """Build the benchmark ``name`` on ``index`` with its equity and exposure.

    Parameters
    ----------
    name : str or None
        See :func:`resolve_benchmark`.
    closes : dict[str, pd.Series]
        Close per symbol in USD stamped when known (bar end), tz-aware index.
    starting_cash : float
        USD.
    index : pd.DatetimeIndex
        The strategy's equity index (tz-aware, sorted).

    Returns
    -------
    BenchmarkCurve or None
        ``None`` for ``"none"``.

    Raises
    ------
    BenchmarkError
        For an unknown name or a symbol not in ``closes``.
    ValueError
        For invalid closes, cash or index (see :func:`buy_and_hold`).
    """
    resolved = resolve_benchmark(name, closes)
    if resolved == NONE:
        return None
    if resolved == EQUAL_WEIGHT:
        value, invested = _monthly(closes, starting_cash, index)
        label = "Equal weight (monthly)"
        rule = (f"equal weights of {', '.join(closes)}, rebalanced at the first bar of each month (UTC) among "
                "the symbols priced then; fractional shares at the last close, no costs")
    elif resolved == EQUAL_WEIGHT_HOLD:
        value, invested = _hold(closes, starting_cash, index)
        label = "Equal weight buy & hold"
        rule = (f"starting cash split equally over {', '.join(closes)}, each bought at its first close and never "
                "rebalanced (a later-starting symbol's share waits in cash); no costs")
    else:
        value, invested = _hold({resolved: closes[resolved]}, starting_cash, index)
        label = f"{resolved} buy & hold"
        rule = f"all starting cash in {resolved} at its first close, held to the end; fractional shares, no costs"
    return _as_curve(resolved, label, rule, value, invested, index)


def _as_curve(name: str, label: str, rule: str, value: np.ndarray, invested: np.ndarray,
              index: pd.DatetimeIndex) -> BenchmarkCurve:
    """The curve of (value, invested) USD arrays; ``invested`` becomes the exposure in place."""
    for low in range(0, len(value), BLOCK):  # exposure = invested / value (0 where value <= 0), in place
        part, share = value[low:low + BLOCK], invested[low:low + BLOCK]
        positive = part > 0
        np.divide(share, part, out=share, where=positive)
        share[~positive] = 0.0
    # copy=False: the arrays are ours (pandas copies an array by default: 8 bytes a point each)
    equity = pd.Series(value, index=index, name="benchmark", copy=False)
    exposure = pd.Series(invested, index=index, name="benchmark_exposure", copy=False)
    return BenchmarkCurve(name, label, rule, equity, exposure)


def build_benchmark(name: str | None, closes: dict[str, pd.Series], starting_cash: float,
                    index: pd.DatetimeIndex) -> tuple[pd.Series | None, str]:
    """Return the benchmark ``name``'s equity on ``index`` and its label.

    Parameters
    ----------
    name : str or None
        A symbol of the data (``"spy"``), ``"equal_weight"``, ``"equal_weight_hold"``, ``"none"``,
        or ``None``/``"auto"`` for the default (see :func:`resolve_benchmark`).
    closes : dict[str, pd.Series]
        Close per symbol in USD stamped when known (bar end), tz-aware index.
    starting_cash : float
        USD.
    index : pd.DatetimeIndex
        Where to value it (the strategy's equity index).

    Returns
    -------
    tuple[pd.Series or None, str]
        Equity in USD on ``index`` (``None`` for ``"none"``) and the label (``"SPY buy & hold"``).

    Raises
    ------
    BenchmarkError
        For an unknown name or a symbol not in the data.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=2, freq="D", tz="UTC")
    >>> equity, label = build_benchmark("spy", {"SPY": pd.Series([10.0, 11.0], index=idx)}, 100.0, idx)
    >>> label, equity.round(6).tolist()
    ('SPY buy & hold', [100.0, 110.0])
    """
    curve = benchmark_curve(name, closes, starting_cash, index)
    return (None, NONE) if curve is None else (curve.equity, curve.label)
