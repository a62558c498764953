"""Turn a :class:`backtest.replay.ReplayResult` into pandas frames (the CSV layouts users read)."""

from __future__ import annotations

import pandas as pd

from backtest.replay import ReplayResult
from research.metrics import drawdown_series

TRADE_COLUMNS = ["symbol", "side", "quantity", "entry_time", "exit_time", "entry_price", "exit_price",
                 "pnl", "return", "commission", "exit_reason"]
FILL_COLUMNS = ["time", "symbol", "side", "quantity", "price", "commission", "client_order_id", "fill_id"]
ORDER_COLUMNS = ["client_order_id", "created_time", "updated_time", "symbol", "side", "order_type", "quantity",
                 "limit_price", "stop_price", "status", "filled_quantity", "avg_fill_price", "commission",
                 "reason", "broker_order_id"]


def _utc(ns) -> pd.DatetimeIndex | pd.Series:
    return pd.to_datetime(ns, unit="ns", utc=True)


def equity_frame(result: ReplayResult) -> pd.DataFrame:
    """Columns: time (UTC, bar end), cash, equity, gross_exposure (USD), exposure (fraction of
    equity), drawdown (fraction <= 0 from the running peak)."""
    time = _utc(result.equity_ts)
    frame = pd.DataFrame({"time": time, "cash": result.cash, "equity": result.equity,
                          "gross_exposure": result.gross_exposure})
    frame["exposure"] = frame["gross_exposure"] / frame["equity"]
    frame["drawdown"] = drawdown_series(pd.Series(result.equity, index=time)).to_numpy()
    return frame


def trades_frame(result: ReplayResult) -> pd.DataFrame:
    """One row per round trip; ``return`` = pnl / (entry_price * quantity) as a fraction."""
    rows = [(t.symbol, t.side.value, t.quantity, t.entry_ts, t.exit_ts, t.entry_price, t.exit_price, t.pnl,
             t.pnl / (t.entry_price * t.quantity), t.commission, t.exit_reason) for t in result.trades]
    frame = pd.DataFrame(rows, columns=TRADE_COLUMNS)
    frame["entry_time"] = _utc(frame["entry_time"].astype("int64"))
    frame["exit_time"] = _utc(frame["exit_time"].astype("int64"))
    return frame


def fills_frame(result: ReplayResult) -> pd.DataFrame:
    """One row per fill: time is the fill's market time (the bar open for market orders)."""
    rows = [(f.ts_event, f.symbol, f.side.value, f.quantity, f.price, f.commission, f.client_order_id, f.fill_id)
            for f in result.fills]
    frame = pd.DataFrame(rows, columns=FILL_COLUMNS)
    frame["time"] = _utc(frame["time"].astype("int64"))
    return frame


def orders_frame(result: ReplayResult) -> pd.DataFrame:
    """One row per order in submission order, with its final status; quantities shares, prices
    and commission USD, times UTC (created = decision time, updated = last status change)."""
    rows = [(o.client_order_id, o.ts_created, o.ts_last, o.symbol, o.side.value, o.order_type.value, o.quantity,
             o.limit_price, o.stop_price, o.status.value, o.filled_quantity, o.avg_fill_price, o.commission,
             o.reason, o.broker_order_id) for o in result.orders]
    frame = pd.DataFrame(rows, columns=ORDER_COLUMNS)
    frame["created_time"] = _utc(frame["created_time"].astype("int64"))
    frame["updated_time"] = _utc(frame["updated_time"].astype("int64"))
    return frame


def closes_series(result: ReplayResult) -> dict[str, pd.Series]:
    """Close per symbol indexed by bar END time (when the close became known)."""
    return {sym: pd.Series(close, index=_utc(ts), name=sym) for sym, (ts, close) in result.closes.items()}
