"""MemoryStore: the Store port kept in lists (research loops that run thousands of replays, tests)."""

from __future__ import annotations

from core.events import OrderFilled, TradeClosed, TradingStateChanged
from core.orders import Order
from core.ports import Decision, EquitySnapshot


class MemoryStore:
    """Store everything in memory. Orders are kept as their latest status snapshot (a dict)."""

    def __init__(self) -> None:
        self.orders: dict[str, dict] = {}
        self.fills: list[OrderFilled] = []
        self.decisions: list[Decision] = []
        self.trades: list[TradeClosed] = []
        self.equity: list[EquitySnapshot] = []
        self.trading_states: list[TradingStateChanged] = []
        self.flushes = 0

    def save_order(self, order: Order) -> None:
        self.orders[order.client_order_id] = {name: getattr(order, name) for name in Order.__slots__}

    def save_fill(self, fill: OrderFilled) -> None:
        self.fills.append(fill)

    def save_decision(self, decision: Decision) -> None:
        self.decisions.append(decision)

    def save_trade(self, trade: TradeClosed) -> None:
        self.trades.append(trade)

    def save_equity(self, snapshot: EquitySnapshot) -> None:
        self.equity.append(snapshot)

    def save_trading_state(self, change: TradingStateChanged) -> None:
        self.trading_states.append(change)

    def flush(self) -> None:
        self.flushes += 1
