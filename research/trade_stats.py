"""Trade-level tear-sheet statistics: wins and losses, holding times, P&L per symbol, costs, open positions.

Inputs are the frames of :mod:`research.frames`: round trips (``pnl`` is net USD after commission;
slippage is already inside the fill prices, so it is inside ``pnl`` too) and fills (``commission``
and, when the broker reports it, ``slippage`` in USD per fill).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.portfolio import Position

__all__ = ["OPEN_POSITION_COLUMNS", "SYMBOL_PNL_COLUMNS", "CostTotals", "TradeSummary", "cost_totals",
           "holding_times", "open_positions_frame", "symbol_pnl", "trade_summary"]

OPEN_POSITION_COLUMNS = ["symbol", "side", "quantity", "avg_price", "mark", "market_value", "unrealized_pnl",
                         "weight"]
SYMBOL_PNL_COLUMNS = ["symbol", "trades", "win_rate", "pnl", "avg_pnl", "best", "worst", "commission",
                      "slippage", "unrealized_pnl"]


@dataclass(frozen=True)
class TradeSummary:
    """Win/loss statistics of the round trips.

    Attributes
    ----------
    trades, winners, losers : int
        Round trips, those with ``pnl > 0`` and those with ``pnl < 0`` (break-even trades are neither).
    avg_win, avg_loss : float or None
        Mean net ``pnl`` of winners (> 0) and of losers (< 0), USD; ``None`` without any.
    payoff_ratio : float or None
        ``avg_win / |avg_loss|``; ``None`` unless there are both winners and losers.
    largest_win, largest_loss : float or None
        Best and worst net ``pnl``, USD; ``None`` without trades.
    avg_holding, avg_holding_win, avg_holding_loss : pd.Timedelta or None
        Mean time from entry fill to exit fill, over all trades, winners and losers.
    """

    trades: int
    winners: int
    losers: int
    avg_win: float | None
    avg_loss: float | None
    payoff_ratio: float | None
    largest_win: float | None
    largest_loss: float | None
    avg_holding: pd.Timedelta | None
    avg_holding_win: pd.Timedelta | None
    avg_holding_loss: pd.Timedelta | None


def holding_times(trades: pd.DataFrame) -> pd.Series:
    """Return each round trip's holding time, ``exit_time - entry_time``.

    Parameters
    ----------
    trades : pd.DataFrame
        Round trips with tz-aware ``entry_time`` and ``exit_time`` columns.

    Returns
    -------
    pd.Series
        Timedeltas, same index as ``trades``.

    Examples
    --------
    >>> t = pd.Timestamp("2024-01-02 15:00", tz="UTC")
    >>> holding_times(pd.DataFrame({"entry_time": [t], "exit_time": [t + pd.Timedelta(hours=26)]})).tolist()
    [Timedelta('1 days 02:00:00')]
    """
    return (pd.to_datetime(trades["exit_time"], utc=True) - pd.to_datetime(trades["entry_time"], utc=True))


def _mean_time(values: pd.Series) -> pd.Timedelta | None:
    return None if len(values) == 0 else pd.Timedelta(values.mean())


def trade_summary(trades: pd.DataFrame | None) -> TradeSummary:
    """Summarise round trips: average win and loss, payoff ratio, extremes and holding times.

    Parameters
    ----------
    trades : pd.DataFrame, optional
        Round trips with ``pnl`` (net USD), ``entry_time`` and ``exit_time``; ``None`` or empty
        gives a summary of zeros and ``None``.

    Returns
    -------
    TradeSummary
        See the class for definitions and units.

    Raises
    ------
    KeyError
        If a required column is missing.

    Examples
    --------
    >>> t = pd.Timestamp("2024-01-02", tz="UTC")
    >>> frame = pd.DataFrame({"pnl": [30.0, -10.0, 10.0], "entry_time": [t] * 3,
    ...                       "exit_time": [t + pd.Timedelta(hours=h) for h in (1, 2, 3)]})
    >>> s = trade_summary(frame)
    >>> s.avg_win, s.avg_loss, s.payoff_ratio, str(s.avg_holding), str(s.avg_holding_loss)
    (20.0, -10.0, 2.0, '0 days 02:00:00', '0 days 02:00:00')
    """
    if trades is None or len(trades) == 0:
        return TradeSummary(0, 0, 0, None, None, None, None, None, None, None, None)
    pnl = trades["pnl"].astype(float)
    held = holding_times(trades)
    wins, losses = pnl > 0, pnl < 0
    avg_win = float(pnl[wins].mean()) if wins.any() else None
    avg_loss = float(pnl[losses].mean()) if losses.any() else None
    payoff = avg_win / -avg_loss if avg_win is not None and avg_loss is not None else None
    return TradeSummary(
        trades=int(len(pnl)), winners=int(wins.sum()), losers=int(losses.sum()), avg_win=avg_win,
        avg_loss=avg_loss, payoff_ratio=payoff, largest_win=float(pnl.max()), largest_loss=float(pnl.min()),
        avg_holding=_mean_time(held), avg_holding_win=_mean_time(held[wins]),
        avg_holding_loss=_mean_time(held[losses]),
    )


@dataclass(frozen=True)
class CostTotals:
    """Trading costs over the whole run, USD.

    Attributes
    ----------
    commission : float
        Sum of fill commissions.
    slippage : float or None
        Sum of fill slippage (``quantity * |fill price - reference price|``); ``None`` when the
        fills carry no ``slippage`` column.
    fills : int
        Number of fills.
    """

    commission: float
    slippage: float | None
    fills: int

    @property
    def total(self) -> float:
        """Commission plus slippage (slippage counted as 0 when unknown), USD."""
        return self.commission + (self.slippage or 0.0)


def cost_totals(fills: pd.DataFrame | None) -> CostTotals:
    """Return total commission and slippage of the fills.

    Parameters
    ----------
    fills : pd.DataFrame, optional
        One row per fill with ``commission`` and optionally ``slippage`` (USD).

    Returns
    -------
    CostTotals
        Zeros for ``None`` or an empty frame.

    Examples
    --------
    >>> c = cost_totals(pd.DataFrame({"commission": [1.0, 2.0], "slippage": [0.5, 0.25]}))
    >>> c.commission, c.slippage, c.total, c.fills
    (3.0, 0.75, 3.75, 2)
    """
    if fills is None or len(fills) == 0:
        has_slippage = fills is not None and "slippage" in fills.columns
        return CostTotals(0.0, 0.0 if has_slippage else None, 0)
    slippage = float(fills["slippage"].astype(float).sum()) if "slippage" in fills.columns else None
    return CostTotals(float(fills["commission"].astype(float).sum()), slippage, int(len(fills)))


def open_positions_frame(positions: Mapping[str, Position] | None, ending_equity: float) -> pd.DataFrame:
    """Return the positions still open at the end of the run, one row per symbol.

    Parameters
    ----------
    positions : Mapping[str, core.portfolio.Position], optional
        Final positions (``ReplayResult.positions``); flat ones are left out.
    ending_equity : float
        Final equity, USD, for ``weight``.

    Returns
    -------
    pd.DataFrame
        Columns :data:`OPEN_POSITION_COLUMNS`: ``side`` "long"/"short", ``quantity`` signed
        shares, ``avg_price`` and ``mark`` USD per share, ``market_value`` and
        ``unrealized_pnl`` USD (signed), ``weight`` = market value / ending equity (a signed
        fraction). Sorted by symbol.

    Examples
    --------
    >>> p = Position("SPY", mark=110.0)
    >>> p.quantity, p.avg_price = 10.0, 100.0
    >>> open_positions_frame({"SPY": p}, 10_000.0)[["side", "market_value", "unrealized_pnl", "weight"]].values.tolist()
    [['long', 1100.0, 100.0, 0.11]]
    """
    rows = []
    for symbol in sorted(positions or {}):
        p = (positions or {})[symbol]
        if p.quantity == 0:
            continue
        value = p.quantity * p.mark
        weight = value / ending_equity if ending_equity else float("nan")
        rows.append((symbol, "long" if p.quantity > 0 else "short", p.quantity, p.avg_price, p.mark, value,
                     p.quantity * (p.mark - p.avg_price), weight))
    return pd.DataFrame(rows, columns=OPEN_POSITION_COLUMNS)


def symbol_pnl(trades: pd.DataFrame | None, fills: pd.DataFrame | None = None,
               open_positions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return P&L per symbol: closed round trips, their costs and what is still open.

    Parameters
    ----------
    trades : pd.DataFrame, optional
        Round trips with ``symbol`` and ``pnl`` (net USD).
    fills : pd.DataFrame, optional
        Fills with ``symbol``, ``commission`` and optionally ``slippage`` (USD); all fills count,
        also those of positions still open.
    open_positions : pd.DataFrame, optional
        From :func:`open_positions_frame`, for ``unrealized_pnl``.

    Returns
    -------
    pd.DataFrame
        Columns :data:`SYMBOL_PNL_COLUMNS`, one row per symbol seen in any input, sorted by
        ``pnl`` descending: ``trades`` count, ``win_rate`` fraction (NaN without trades), ``pnl``
        total net closed P&L, ``avg_pnl``, ``best`` and ``worst`` trade, ``commission`` and
        ``slippage`` totals and ``unrealized_pnl`` (USD; NaN slippage when unknown).

    Examples
    --------
    >>> trades = pd.DataFrame({"symbol": ["A", "A", "B"], "pnl": [10.0, -4.0, 5.0]})
    >>> symbol_pnl(trades)[["symbol", "trades", "pnl", "win_rate"]].values.tolist()
    [['A', 2, 6.0, 0.5], ['B', 1, 5.0, 1.0]]
    """
    frames = []
    if trades is not None and len(trades):
        pnl = trades.assign(pnl=trades["pnl"].astype(float), win=trades["pnl"].astype(float) > 0)
        grouped = pnl.groupby("symbol")
        frames.append(pd.DataFrame({"trades": grouped.size(), "win_rate": grouped["win"].mean(),
                                    "pnl": grouped["pnl"].sum(), "avg_pnl": grouped["pnl"].mean(),
                                    "best": grouped["pnl"].max(), "worst": grouped["pnl"].min()}))
    if fills is not None and len(fills):
        grouped = fills.groupby("symbol")
        costs = pd.DataFrame({"commission": grouped["commission"].sum().astype(float)})
        if "slippage" in fills.columns:
            costs["slippage"] = grouped["slippage"].sum().astype(float)
        frames.append(costs)
    if open_positions is not None and len(open_positions):
        frames.append(open_positions.set_index("symbol")[["unrealized_pnl"]])
    if not frames:
        return pd.DataFrame(columns=SYMBOL_PNL_COLUMNS)
    table = pd.concat(frames, axis=1).reindex(columns=SYMBOL_PNL_COLUMNS[1:])
    table["trades"] = table["trades"].fillna(0).astype(int)
    for column in ("pnl", "commission", "unrealized_pnl"):
        table[column] = table[column].astype(float).fillna(0.0)
    if fills is not None and "slippage" in fills.columns:
        table["slippage"] = table["slippage"].astype(float).fillna(0.0)
    table.index.name = "symbol"
    table = table.reset_index()
    order = np.lexsort((table["symbol"].to_numpy(dtype=str), -table["pnl"].to_numpy(dtype=float)))
    return table.iloc[order].reset_index(drop=True)[SYMBOL_PNL_COLUMNS]
