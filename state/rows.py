"""Mapping between ``core`` types and the store's rows (plain dicts keyed by column name).

Timestamps are epoch ns UTC outside and UTC ``DateTime`` inside (microsecond precision: a
nanosecond remainder is dropped on the way in). The snapshot sentinel -1 ("none") is stored as
NULL. Enumerations are stored as their string values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from core.enums import OrderStatus, OrderType, Side, TimeInForce, TradingState
from core.events import OrderFilled, SubmitOrder, TradeClosed
from core.orders import Order
from core.ports import Decision, EquitySnapshot
from core.recovery import RestoredPosition, RiskSnapshot
from core.time import to_datetime, to_nanos


def ns(moment: datetime | None) -> int | None:
    """Return the epoch ns of a stored UTC datetime, or ``None`` (SQLite hands them back naive).

    Examples
    --------
    >>> ns(to_datetime(1_500_000_000_000_000_000))
    1500000000000000000
    >>> ns(None) is None
    True
    """
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return to_nanos(moment)


def ns_required(moment: datetime) -> int:
    """Epoch ns of a NOT NULL datetime column."""
    value = ns(moment)
    assert value is not None  # the column is NOT NULL
    return value


def value(item: Any) -> Any:
    """An enum's stored value (anything else unchanged)."""
    return item.value if isinstance(item, Enum) else item


def _optional_time(nanos: int | None) -> datetime | None:
    return None if nanos is None or nanos < 0 else to_datetime(nanos)


# --- orders ------------------------------------------------------------------------------------


def order_row(run_id: str, order: Order) -> dict[str, Any]:
    """The ``orders`` row of the current state of ``order`` in run ``run_id``."""
    return {
        "run_id": run_id, "client_order_id": order.client_order_id, "strategy_id": order.strategy_id,
        "symbol": order.symbol, "side": value(order.side), "quantity": order.quantity,
        "order_type": value(order.order_type), "limit_price": order.limit_price, "stop_price": order.stop_price,
        "time_in_force": value(order.time_in_force), "reduce_only": bool(order.reduce_only), "reason": order.reason,
        "status": value(order.status), "filled_quantity": order.filled_quantity,
        "avg_fill_price": order.avg_fill_price, "commission": order.commission,
        "broker_order_id": order.broker_order_id, "created_at": to_datetime(order.ts_created),
        "updated_at": to_datetime(order.ts_last)}


def order_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """An ``orders`` row as a dict keyed like :class:`core.orders.Order` plus ``run_id``
    (``ts_created``/``ts_last`` epoch ns; enums as ``core.enums`` members)."""
    return {"run_id": row["run_id"], "client_order_id": row["client_order_id"], "strategy_id": row["strategy_id"],
            "symbol": row["symbol"], "side": Side(row["side"]), "quantity": row["quantity"],
            "order_type": OrderType(row["order_type"]), "limit_price": row["limit_price"],
            "stop_price": row["stop_price"], "time_in_force": TimeInForce(row["time_in_force"]),
            "reduce_only": bool(row["reduce_only"]), "reason": row["reason"], "status": OrderStatus(row["status"]),
            "filled_quantity": row["filled_quantity"], "avg_fill_price": row["avg_fill_price"],
            "commission": row["commission"], "broker_order_id": row["broker_order_id"],
            "ts_created": ns(row["created_at"]), "ts_last": ns(row["updated_at"])}


def order_from_row(row: Mapping[str, Any]) -> Order:
    """Rebuild the :class:`core.orders.Order` an ``orders`` row recorded, status and fills included.

    The status is set as stored, not replayed through the state machine: the row is the
    outcome of transitions the machine already allowed.
    """
    created = ns_required(row["created_at"])
    order = Order(SubmitOrder(
        client_order_id=row["client_order_id"], strategy_id=row["strategy_id"], symbol=row["symbol"],
        side=Side(row["side"]), quantity=row["quantity"], order_type=OrderType(row["order_type"]),
        limit_price=row["limit_price"], stop_price=row["stop_price"],
        time_in_force=TimeInForce(row["time_in_force"]), reduce_only=bool(row["reduce_only"]), reason=row["reason"],
        ts_event=created, ts_init=created))
    order.status = OrderStatus(row["status"])
    order.filled_quantity = row["filled_quantity"]
    order.avg_fill_price = row["avg_fill_price"]
    order.commission = row["commission"]
    order.broker_order_id = row["broker_order_id"]
    order.ts_last = ns_required(row["updated_at"])
    return order


# --- fills, decisions, trades, equity ----------------------------------------------------------


def fill_row(run_id: str, fill: OrderFilled) -> dict[str, Any]:
    """The ``fills`` row of ``fill`` in run ``run_id``."""
    return {"run_id": run_id, "client_order_id": fill.client_order_id, "fill_id": fill.fill_id,
            "symbol": fill.symbol, "side": value(fill.side), "quantity": fill.quantity, "price": fill.price,
            "cum_quantity": fill.cum_quantity, "commission": fill.commission, "slippage": fill.slippage,
            "ts_event": to_datetime(fill.ts_event), "ts_init": to_datetime(fill.ts_init)}


def fill_from_row(row: Mapping[str, Any]) -> OrderFilled:
    """The :class:`core.events.OrderFilled` a ``fills`` row recorded."""
    return OrderFilled(client_order_id=row["client_order_id"], fill_id=row["fill_id"], symbol=row["symbol"],
                       side=Side(row["side"]), quantity=row["quantity"], price=row["price"],
                       cum_quantity=row["cum_quantity"], commission=row["commission"], slippage=row["slippage"],
                       ts_event=ns_required(row["ts_event"]), ts_init=ns_required(row["ts_init"]))


def decision_row(run_id: str, decision: Decision) -> dict[str, Any]:
    """The ``decisions`` row of ``decision`` in run ``run_id``."""
    return {"run_id": run_id, "ts": to_datetime(decision.ts), "strategy_id": decision.strategy_id,
            "symbol": decision.symbol, "side": value(decision.side), "quantity": decision.quantity,
            "outcome": decision.outcome, "reason": decision.reason, "client_order_id": decision.client_order_id,
            "confidence": decision.confidence, "regime": value(decision.regime)}


def decision_from_row(row: Mapping[str, Any]) -> Decision:
    """The :class:`core.ports.Decision` a ``decisions`` row recorded."""
    return Decision(ns_required(row["ts"]), row["strategy_id"], row["symbol"], Side(row["side"]), row["quantity"],
                    row["outcome"], row["reason"], row["client_order_id"], row["confidence"], row["regime"])


def trade_row(run_id: str, trade: TradeClosed) -> dict[str, Any]:
    """The ``trades`` row of ``trade`` in run ``run_id`` (its ``ts_event`` is its ``exit_ts``)."""
    return {"run_id": run_id, "symbol": trade.symbol, "side": value(trade.side), "quantity": trade.quantity,
            "entry_ts": to_datetime(trade.entry_ts), "exit_ts": to_datetime(trade.exit_ts),
            "entry_price": trade.entry_price, "exit_price": trade.exit_price, "pnl": trade.pnl,
            "commission": trade.commission, "exit_reason": trade.exit_reason, "ts_init": to_datetime(trade.ts_init)}


def trade_from_row(row: Mapping[str, Any]) -> TradeClosed:
    """The :class:`core.events.TradeClosed` a ``trades`` row recorded."""
    exit_ts = ns_required(row["exit_ts"])
    return TradeClosed(symbol=row["symbol"], side=Side(row["side"]), quantity=row["quantity"],
                       entry_ts=ns_required(row["entry_ts"]), exit_ts=exit_ts, entry_price=row["entry_price"],
                       exit_price=row["exit_price"], pnl=row["pnl"], commission=row["commission"],
                       exit_reason=row["exit_reason"], ts_event=exit_ts, ts_init=ns_required(row["ts_init"]))


def equity_row(run_id: str, snapshot: EquitySnapshot) -> dict[str, Any]:
    """The ``equity_snapshots`` row of ``snapshot`` in run ``run_id``."""
    return {"run_id": run_id, "ts": to_datetime(snapshot.ts), "cash": snapshot.cash, "equity": snapshot.equity,
            "gross_exposure": snapshot.gross_exposure, "open_positions": snapshot.open_positions}


def equity_from_row(row: Mapping[str, Any]) -> EquitySnapshot:
    """The :class:`core.ports.EquitySnapshot` an ``equity_snapshots`` row recorded."""
    return EquitySnapshot(ns_required(row["ts"]), row["cash"], row["equity"], row["gross_exposure"],
                          row["open_positions"])


# --- account state -----------------------------------------------------------------------------


def risk_row(account: str, snapshot: RiskSnapshot) -> dict[str, Any]:
    """The ``risk_state`` row of ``snapshot`` for ``account``."""
    return {"account": account, "state": value(snapshot.state), "reason": snapshot.reason,
            "causes": dict(snapshot.causes), "peak_equity": snapshot.peak_equity,
            "day_start_equity": snapshot.day_start_equity, "day_end": _optional_time(snapshot.day_end_ns),
            "cooldown_until": _optional_time(snapshot.cooldown_until_ns), "loss_streak": snapshot.loss_streak,
            "ts": to_datetime(snapshot.ts)}


def risk_from_row(row: Mapping[str, Any]) -> RiskSnapshot:
    """The :class:`core.recovery.RiskSnapshot` a ``risk_state`` row recorded."""
    day_end, cooldown = ns(row["day_end"]), ns(row["cooldown_until"])
    return RiskSnapshot(state=TradingState(row["state"]), reason=row["reason"],
                        causes={str(k): str(v) for k, v in (row["causes"] or {}).items()},
                        peak_equity=row["peak_equity"], day_start_equity=row["day_start_equity"],
                        day_end_ns=-1 if day_end is None else day_end,
                        cooldown_until_ns=-1 if cooldown is None else cooldown,
                        loss_streak=row["loss_streak"], ts=ns_required(row["ts"]))


def position_row(account: str, position: RestoredPosition) -> dict[str, Any]:
    """The ``account_positions`` row of ``position`` for ``account``."""
    return {"account": account, "symbol": position.symbol, "quantity": position.quantity,
            "avg_price": position.avg_price, "mark": position.mark, "entry_ts": _optional_time(position.entry_ts)}


def position_from_row(row: Mapping[str, Any]) -> RestoredPosition:
    """The :class:`core.recovery.RestoredPosition` an ``account_positions`` row recorded."""
    return RestoredPosition(symbol=row["symbol"], quantity=row["quantity"], avg_price=row["avg_price"],
                            mark=row["mark"], entry_ts=ns(row["entry_ts"]))


__all__ = ["decision_from_row", "decision_row", "equity_from_row", "equity_row", "fill_from_row", "fill_row",
           "ns", "ns_required", "order_dict", "order_from_row", "order_row", "position_from_row", "position_row",
           "risk_from_row", "risk_row", "trade_from_row", "trade_row", "value"]
