"""Turn a :class:`backtest.replay.ReplayResult` into pandas frames (the CSV layouts users read)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import pandas as pd

from backtest.replay import ReplayResult
from core.enums import OrderStatus, OrderType, Side
from core.events import OrderFilled
from core.ports import Decision
from research.metrics import drawdown_series
from research.trade_stats import OPEN_POSITION_COLUMNS, open_positions_frame

TRADE_COLUMNS = ["symbol", "side", "quantity", "entry_time", "exit_time", "entry_price", "exit_price",
                 "pnl", "return", "commission", "exit_reason"]
LINK_COLUMNS = ["trade_id", "holding_time_s", "entry_order_ids", "exit_order_ids", "entry_fill_ids", "exit_fill_ids"]
LINKED_TRADE_COLUMNS = ["trade_id", *TRADE_COLUMNS, *LINK_COLUMNS[1:]]
ID_SEPARATOR = ";"
"""Joins several ids in one CSV cell (ids never contain it)."""
FILL_COLUMNS = ["time", "symbol", "side", "quantity", "price", "commission", "slippage", "client_order_id",
                "fill_id"]
POSITION_COLUMNS = [*OPEN_POSITION_COLUMNS, "entry_time"]
DECISION_COLUMNS = ["time", "strategy_id", "symbol", "side", "quantity", "outcome", "reason", "client_order_id",
                    "confidence", "regime"]
ORDER_COLUMNS = ["client_order_id", "created_time", "updated_time", "symbol", "side", "order_type", "quantity",
                 "limit_price", "stop_price", "status", "filled_quantity", "avg_fill_price", "commission",
                 "reason", "broker_order_id"]


_ENUM_TEXT: dict[Enum, str] = {member: member.value for kind in (Side, OrderType, OrderStatus) for member in kind}
"""Each member's text, looked up instead of read through ``.value`` (an Enum property, ~10x
slower) for every row of a long run."""


def _utc(ns) -> pd.DatetimeIndex | pd.Series:
    return pd.to_datetime(ns, unit="ns", utc=True)


def equity_frame(result: ReplayResult) -> pd.DataFrame:
    """Columns: time (UTC, bar end), cash, equity, gross_exposure (USD), exposure (fraction of
    equity), drawdown (fraction <= 0 from the running peak)."""
    time = _utc(result.equity_ts)
    # copy=False: the columns are the result's arrays, not copies (8 bytes a bar each, per run)
    frame = pd.DataFrame({"time": time, "cash": result.cash, "equity": result.equity,
                          "gross_exposure": result.gross_exposure}, copy=False)
    frame["exposure"] = frame["gross_exposure"] / frame["equity"]
    frame["drawdown"] = drawdown_series(pd.Series(result.equity, index=time, copy=False)).to_numpy()
    return frame


def trades_frame(result: ReplayResult) -> pd.DataFrame:
    """One row per round trip; ``return`` = pnl / (entry_price * quantity) as a fraction."""
    text = _ENUM_TEXT
    rows = [(t.symbol, text[t.side], t.quantity, t.entry_ts, t.exit_ts, t.entry_price, t.exit_price, t.pnl,
             t.pnl / (t.entry_price * t.quantity), t.commission, t.exit_reason) for t in result.trades]
    frame = pd.DataFrame(rows, columns=TRADE_COLUMNS)
    frame["entry_time"] = _utc(frame["entry_time"].astype("int64"))
    frame["exit_time"] = _utc(frame["exit_time"].astype("int64"))
    return frame


def fills_frame(result: ReplayResult) -> pd.DataFrame:
    """One row per fill: time is the fill's market time (the bar open for market orders); price
    USD per share including slippage; commission and slippage USD (slippage = quantity x |price -
    reference price|, already inside the price, not an extra charge)."""
    text = _ENUM_TEXT
    rows = [(f.ts_event, f.symbol, text[f.side], f.quantity, f.price, f.commission, f.slippage, f.client_order_id,
             f.fill_id) for f in result.fills]
    frame = pd.DataFrame(rows, columns=FILL_COLUMNS)
    frame["time"] = _utc(frame["time"].astype("int64"))
    return frame


def orders_frame(result: ReplayResult) -> pd.DataFrame:
    """One row per order in submission order, with its final status; quantities shares, prices
    and commission USD, times UTC (created = decision time, updated = last status change)."""
    text = _ENUM_TEXT
    rows = [(o.client_order_id, o.ts_created, o.ts_last, o.symbol, text[o.side], text[o.order_type], o.quantity,
             o.limit_price, o.stop_price, text[o.status], o.filled_quantity, o.avg_fill_price, o.commission,
             o.reason, o.broker_order_id) for o in result.orders]
    frame = pd.DataFrame(rows, columns=ORDER_COLUMNS)
    frame["created_time"] = _utc(frame["created_time"].astype("int64"))
    frame["updated_time"] = _utc(frame["updated_time"].astype("int64"))
    return frame


def closes_series(result: ReplayResult, index: pd.DatetimeIndex | None = None) -> dict[str, pd.Series]:
    """Close per symbol indexed by bar END time (when the close became known).

    The closes are not copied, and a symbol whose bar end times are exactly ``index`` (the
    equity curve's, for one symbol without dropped bars) shares that index instead of a new one.
    """
    # a view, the data shared (as_unit copies even when the unit is already ns)
    plain = None if index is None else (index if index.unit == "ns" else index.as_unit("ns")).rename(None)

    def times(ts: np.ndarray) -> pd.DatetimeIndex:
        if plain is not None and np.array_equal(ts, plain.asi8):
            return plain
        return pd.DatetimeIndex(_utc(ts))

    return {sym: pd.Series(close, index=times(ts), name=sym, copy=False) for sym, (ts, close) in result.closes.items()}


@dataclass
class _Leg:
    """The fills of one round trip: those that opened or added to it and those that reduced it."""

    entry_ts: int
    entries: list[OrderFilled] = field(default_factory=list)
    exits: list[OrderFilled] = field(default_factory=list)


@dataclass
class _Legs:
    closed: dict[str, list[_Leg]]  # per symbol, in closing order
    open: dict[str, _Leg]  # per symbol, the round trip still open at the end


def _legs(fills: Sequence[OrderFilled]) -> _Legs:
    """Split the fills into round trips exactly as the engine's books do.

    Mirrors :meth:`core.portfolio.Portfolio.apply_fill` (a reduction leaving under 1e-9 shares is
    flat) and :meth:`core.trades.TradeTracker.on_fill` (a fill through zero closes one trip and
    opens the next with its remainder), so the k-th closed leg of a symbol is the k-th
    :class:`core.events.TradeClosed` of that symbol.
    """
    position: dict[str, float] = {}
    closed: dict[str, list[_Leg]] = {}
    open_: dict[str, _Leg] = {}
    for fill in fills:
        symbol, quantity = fill.symbol, fill.quantity
        buy = fill.side is Side.BUY
        old = position.get(symbol, 0.0)
        new = old + (quantity if buy else -quantity)
        reducing = old != 0.0 and (old > 0) != buy
        if reducing and abs(new) < 1e-9:
            new = 0.0
        position[symbol] = new
        leg = open_.get(symbol)
        opening = quantity
        if leg is not None and reducing:
            leg.exits.append(fill)
            opening = quantity - min(quantity, abs(old))
            if new == 0.0 or (new > 0) != (old > 0):
                closed.setdefault(symbol, []).append(leg)
                del open_[symbol]
                leg = None
        if opening > 1e-12:
            if leg is None:
                leg = open_[symbol] = _Leg(fill.ts_event)
            leg.entries.append(fill)
    return _Legs(closed, open_)


def _distinct(ids: list[str]) -> str:
    return ID_SEPARATOR.join(dict.fromkeys(ids))


def linked_trades_frame(result: ReplayResult) -> pd.DataFrame:
    """Return the round trips with an id, their holding time and links to their orders and fills.

    Columns :data:`LINKED_TRADE_COLUMNS`: ``trade_id`` (1, 2, ... in closing order), the columns of
    :func:`trades_frame`, ``holding_time_s`` (seconds from the first entry fill to the closing
    fill, float), ``entry_order_ids`` / ``exit_order_ids`` (distinct ``client_order_id`` of the
    fills that opened or added to / reduced the trade, in fill order, joined by
    :data:`ID_SEPARATOR`) and ``entry_fill_ids`` / ``exit_fill_ids`` (the fills' ``fill_id``).
    A fill through zero (a reversal) is the exit of one trade and the entry of the next. The
    links are derived from the fills of the symbol between ``entry_time`` and ``exit_time`` as the
    engine's books split them; a trade whose fills cannot be matched has empty links.
    """
    frame = trades_frame(result)
    legs = _legs(result.fills)
    taken: dict[str, int] = {}
    links = []
    for trade in result.trades:
        number = taken.get(trade.symbol, 0)
        taken[trade.symbol] = number + 1
        symbol_legs = legs.closed.get(trade.symbol, [])
        leg = symbol_legs[number] if number < len(symbol_legs) else None
        if leg is None or leg.entry_ts != trade.entry_ts or not leg.exits or leg.exits[-1].ts_event != trade.exit_ts:
            links.append(("", "", "", ""))  # defensive: never link a trade to the wrong fills
            continue
        links.append((_distinct([f.client_order_id for f in leg.entries]),
                      _distinct([f.client_order_id for f in leg.exits]),
                      _distinct([f.fill_id for f in leg.entries]), _distinct([f.fill_id for f in leg.exits])))
    frame.insert(0, "trade_id", range(1, len(frame) + 1))
    frame["holding_time_s"] = (frame["exit_time"] - frame["entry_time"]).dt.total_seconds()
    for number, column in enumerate(LINK_COLUMNS[2:]):
        frame[column] = [link[number] for link in links]
    return frame[LINKED_TRADE_COLUMNS]


def positions_frame(result: ReplayResult) -> pd.DataFrame:
    """Return the positions still open at the end, one row per symbol, sorted by symbol.

    Columns :data:`POSITION_COLUMNS`: those of :func:`research.trade_stats.open_positions_frame`
    (signed ``quantity`` shares, ``avg_price`` and ``mark`` (last close) USD per share,
    ``market_value`` and ``unrealized_pnl`` USD, ``weight`` fraction of ending equity) and
    ``entry_time`` (UTC, the first fill of the round trip still open; NaT if unknown).
    """
    ending = float(result.equity[-1]) if len(result.equity) else result.starting_cash
    frame = open_positions_frame(result.positions, ending)
    legs = _legs(result.fills).open
    entry = pd.array([legs[s].entry_ts if s in legs else None for s in frame["symbol"]], dtype="Int64")
    frame["entry_time"] = pd.to_datetime(entry, unit="ns", utc=True)
    return frame[POSITION_COLUMNS]


def decisions_frame(decisions: Sequence[Decision]) -> pd.DataFrame:
    """Return one row per decision (columns :data:`DECISION_COLUMNS`, in the order given).

    ``time`` is the decision's bar end (UTC); ``confidence`` is NaN when the strategy gave none;
    ``client_order_id`` is empty for a denial.
    """
    text = _ENUM_TEXT
    rows = [(d.ts, d.strategy_id, d.symbol, text[d.side], d.quantity, d.outcome, d.reason, d.client_order_id,
             float("nan") if d.confidence is None else d.confidence, d.regime) for d in decisions]
    frame = pd.DataFrame(rows, columns=DECISION_COLUMNS)
    frame["time"] = _utc(frame["time"].astype("int64"))
    frame["quantity"] = frame["quantity"].astype("float64")
    frame["confidence"] = frame["confidence"].astype("float64")
    return frame
