"""MemoryStore: the Store port kept in lists (research loops that run thousands of replays, tests).

Nothing is buffered: every save is "committed" when it returns, so the write-ordering and
atomicity rules of the port hold trivially. It offers the reads recovery needs
(:class:`state.recovery.RecoverySource`), so a restart can be rehearsed without a database.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from core.events import OrderFilled, SubmitOrder, TradeClosed, TradingStateChanged
from core.orders import Order
from core.ports import Decision, EquitySnapshot
from core.recovery import RestoredPosition, RiskSnapshot
from state.reconcile import ReconcileReport, binding_conflict, check_binding
from state.recovery import AccountRecord


class MemoryStore:
    """Store everything of one account in memory.

    ``orders`` maps client_order_id -> the latest saved state (a dict of the order's slots);
    ``fills``, ``decisions``, ``trades``, ``equity`` and ``trading_states`` are lists in save
    order; ``risk_state``, ``account_snapshot`` and ``learner_states`` hold the latest saves.
    A fill whose ``fill_id`` was saved before is ignored, as the SQL store does.

    Parameters
    ----------
    account
        The account the saves belong to (reads of another account find nothing).
    """

    def __init__(self, account: str = "default") -> None:
        self.account = account
        self.orders: dict[str, dict[str, Any]] = {}
        self.fills: list[OrderFilled] = []
        self.decisions: list[Decision] = []
        self.trades: list[TradeClosed] = []
        self.equity: list[EquitySnapshot] = []
        self.trading_states: list[TradingStateChanged] = []
        self.risk_state: RiskSnapshot | None = None
        self.account_snapshot: AccountRecord | None = None
        self.learner_states: dict[str, bytes] = {}
        self.flushes = 0
        self.reconciliations: list[dict[str, Any]] = []
        self.broker_accounts: dict[str, dict[str, Any]] = {}
        self._fill_ids: set[str] = set()

    # --- the Store port ----------------------------------------------------------------------
    def save_order(self, order: Order) -> None:
        """Record the current state of ``order``."""
        self.orders[order.client_order_id] = {name: getattr(order, name) for name in Order.__slots__}

    def save_fill(self, fill: OrderFilled, order: Order) -> None:
        """Record ``fill`` and the state of ``order`` it left (a repeated ``fill_id`` only updates the order)."""
        if fill.fill_id not in self._fill_ids:
            self._fill_ids.add(fill.fill_id)
            self.fills.append(fill)
        self.save_order(order)

    def save_decision(self, decision: Decision) -> None:
        """Record one decision."""
        self.decisions.append(decision)

    def save_trade(self, trade: TradeClosed) -> None:
        """Record one closed round trip."""
        self.trades.append(trade)

    def save_equity(self, snapshot: EquitySnapshot) -> None:
        """Record one equity snapshot."""
        self.equity.append(snapshot)

    def save_trading_state(self, change: TradingStateChanged) -> None:
        """Record a trading state change; the risk state takes its state and reason."""
        self.trading_states.append(change)
        base = self.risk_state if self.risk_state is not None else RiskSnapshot()
        self.risk_state = replace(base, state=change.current, reason=change.reason, ts=change.ts_init)

    def save_risk_state(self, snapshot: RiskSnapshot) -> None:
        """Record the breakers' memory (the latest replaces the previous)."""
        self.risk_state = snapshot

    def save_account(self, cash: float, positions: Iterable[RestoredPosition], ts: int, *,
                     last_bar_ts: Mapping[str, int] | None = None) -> None:
        """Record the account snapshot (cash USD, open positions), including the fills saved so far."""
        self.account_snapshot = AccountRecord(
            cash=cash, positions=tuple(sorted((p for p in positions if p.quantity != 0.0), key=lambda p: p.symbol)),
            fill_watermark=len(self.fills), last_bar_ts=dict(last_bar_ts or {}), ts=ts)

    def save_learner_state(self, symbol: str, state: bytes, ts: int | None = None) -> None:
        """Record the learner payload of ``symbol`` (the latest replaces the previous)."""
        self.learner_states[symbol] = bytes(state)

    def flush(self) -> None:
        """Count the call (nothing is buffered)."""
        self.flushes += 1

    # --- reconciliation and broker binding ------------------------------------------------------
    def save_reconciliation(self, report: ReconcileReport, reason: str, *, account: str | None = None) -> None:
        """Record one reconciliation result (as :meth:`last_reconciliation` returns it)."""
        differences = [d.as_dict() for d in report.differences]
        self.reconciliations.append({
            "account": account or self.account, "ts": int(report.taken_ns), "reason": reason, "ok": report.ok,
            "account_number": report.account_number, "differences": differences, "counts": report.counts(),
            "external_positions": [d["symbol"] for d in differences if d["kind"] == "external_position"]})

    def last_reconciliation(self, account: str | None = None) -> dict[str, Any] | None:
        """The account's latest reconciliation (latest ``ts``, then save order), or ``None``."""
        name = account or self.account
        mine = [r for r in self.reconciliations if r["account"] == name]
        return dict(max(reversed(mine), key=lambda r: r["ts"])) if mine else None

    def bind_broker_account(self, account: str, broker: str, mode: str, number: str | None, *,
                            ts: int | None = None) -> dict[str, Any]:
        """Bind ``account`` to a broker account, as :meth:`state.store.SqlStore.bind_broker_account`.

        Raises
        ------
        ValueError
            If a value is not allowed.
        state.db.StoreError
            If this store holds a binding of the other mode or another broker account.
        """
        from state.db import StoreError

        number = number or ""
        check_binding(account, broker, mode, number)
        problem = binding_conflict(self.broker_accounts.values(), account, broker, mode, number, "memory store")
        if problem is not None:
            raise StoreError(problem)
        binding = self.broker_accounts.setdefault(account, {
            "account": account, "broker": broker, "mode": mode, "broker_account_number": number,
            "first_seen": time.time_ns() if ts is None else int(ts)})
        return dict(binding)

    def broker_account(self, account: str | None = None) -> dict[str, Any] | None:
        """The broker binding of the account, or ``None``."""
        binding = self.broker_accounts.get(account or self.account)
        return dict(binding) if binding is not None else None

    # --- reads (state.recovery.RecoverySource) ------------------------------------------------
    def _mine(self, account: str | None) -> bool:
        return account is None or account == self.account

    def load_risk_state(self, account: str | None = None) -> RiskSnapshot | None:
        """The latest risk state of the account, or ``None``."""
        return self.risk_state if self._mine(account) else None

    def load_account(self, account: str | None = None) -> AccountRecord | None:
        """The latest account snapshot (fill watermark: the number of fills it includes), or ``None``."""
        return self.account_snapshot if self._mine(account) else None

    def account_orders(self, account: str | None = None) -> list[Order]:
        """Every order saved, rebuilt as :class:`core.orders.Order` in its latest state, by creation time."""
        if not self._mine(account):
            return []
        orders = [self._order(slots) for slots in self.orders.values()]
        orders.sort(key=lambda o: (o.ts_created, o.client_order_id))
        return orders

    def account_fills(self, account: str | None = None, *, after: int | None = None) -> list[OrderFilled]:
        """The fills in save order; with ``after`` (a watermark) only those saved after it."""
        if not self._mine(account):
            return []
        return list(self.fills[after or 0:])

    def load_learner_states(self, account: str | None = None) -> dict[str, bytes]:
        """The saved learner payloads by symbol."""
        return dict(self.learner_states) if self._mine(account) else {}

    @staticmethod
    def _order(slots: Mapping[str, Any]) -> Order:
        order = Order(SubmitOrder(
            client_order_id=slots["client_order_id"], strategy_id=slots["strategy_id"], symbol=slots["symbol"],
            side=slots["side"], quantity=slots["quantity"], order_type=slots["order_type"],
            limit_price=slots["limit_price"], stop_price=slots["stop_price"], time_in_force=slots["time_in_force"],
            reduce_only=slots["reduce_only"], reason=slots["reason"], ts_event=slots["ts_created"],
            ts_init=slots["ts_created"]))
        for name in ("status", "filled_quantity", "avg_fill_price", "commission", "broker_order_id", "ts_last"):
            setattr(order, name, slots[name])
        return order


__all__ = ["MemoryStore"]
