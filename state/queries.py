"""The store's reads (:class:`SqlQueries`, mixed into :class:`state.store.SqlStore`).

Reads see only what was committed (a store's own buffered rows included only after its next
flush). Run-scoped reads take a ``run_id``; account-scoped reads take an ``account`` and default
to the store's own. An account's orders and fills are those of its runs (``runs.account``).
All reads raise :class:`state.db.StoreError` when the database read fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from core.enums import TradingState
from core.events import OrderFilled, TradeClosed
from core.orders import Order
from core.ports import Decision, EquitySnapshot
from core.recovery import RiskSnapshot
from core.time import to_datetime
from state.db import StoreError
from state.recovery import AccountRecord
from state.rows import (decision_from_row, equity_from_row, fill_from_row, ns, order_dict, order_from_row,
                        position_from_row, risk_from_row, trade_from_row)
from state.tables import METADATA

RUNS = METADATA.tables["runs"]
ORDERS = METADATA.tables["orders"]
FILLS = METADATA.tables["fills"]
TRADES = METADATA.tables["trades"]
DECISIONS = METADATA.tables["decisions"]
EQUITY = METADATA.tables["equity_snapshots"]
POSITIONS = METADATA.tables["positions"]
TRADING_STATE = METADATA.tables["trading_state"]
TRADING_STATE_HISTORY = METADATA.tables["trading_state_history"]
RISK_STATE = METADATA.tables["risk_state"]
ACCOUNTS = METADATA.tables["accounts"]
ACCOUNT_POSITIONS = METADATA.tables["account_positions"]
LEARNER_STATE = METADATA.tables["learner_state"]

JOURNAL = METADATA.tables["journal"]
RECONCILIATIONS = METADATA.tables["reconciliations"]
BROKER_ACCOUNTS = METADATA.tables["broker_accounts"]
RUN_TABLES = (ORDERS, FILLS, TRADES, DECISIONS, EQUITY, POSITIONS, JOURNAL)
"""Tables whose rows belong to one run (``run_id``)."""
ACCOUNT_TABLES = (TRADING_STATE, TRADING_STATE_HISTORY, RISK_STATE, ACCOUNTS, ACCOUNT_POSITIONS, LEARNER_STATE)
"""Tables whose rows belong to one account (``account``)."""


class UnknownRunError(StoreError):
    """No run, or more than one, matches the id or id prefix asked for."""


def _run_dict(r: Any) -> dict[str, Any]:
    return {"id": r["id"], "kind": r["kind"], "strategy_id": r["strategy_id"], "params": r["params"],
            "config_hash": r["config_hash"], "data_hash": r["data_hash"], "started_ns": ns(r["started_at"]),
            "finished_ns": ns(r["finished_at"]), "status": r["status"], "metrics": r["metrics"],
            "account": r["account"], "pid": r["pid"], "hostname": r["hostname"], "note": r["note"]}


def binding_dict(r: Any) -> dict[str, Any]:
    return {"account": r["account"], "broker": r["broker"], "mode": r["mode"],
            "broker_account_number": r["broker_account_number"], "first_seen": int(r["first_seen"])}


class SqlQueries:
    """Read methods of the SQL store; the host class provides ``account`` and ``_read``."""

    account: str

    def _read(self, query: Any) -> list[Any]:  # pragma: no cover - provided by SqlStore
        raise NotImplementedError

    def _account_runs(self, account: str | None) -> Any:
        return sa.select(RUNS.c.id).where(RUNS.c.account == (account or self.account))

    # --- account state -----------------------------------------------------------------------
    def load_trading_state(self) -> tuple[TradingState, str] | None:
        """Return the store account's last persisted (state, reason), or ``None`` if it never had one."""
        rows = self._read(sa.select(TRADING_STATE.c.state, TRADING_STATE.c.reason)
                          .where(TRADING_STATE.c.account == self.account))
        return (TradingState(rows[0]["state"]), rows[0]["reason"]) if rows else None

    def trading_state_history(self) -> list[dict[str, Any]]:
        """Return the store account's state changes, oldest first: previous, state, reason, ts (ns)."""
        t = TRADING_STATE_HISTORY
        rows = self._read(sa.select(t).where(t.c.account == self.account).order_by(t.c.ts, t.c.id))
        return [{"previous": TradingState(r["previous"]), "state": TradingState(r["state"]), "reason": r["reason"],
                 "ts": ns(r["ts"])} for r in rows]

    def load_risk_state(self, account: str | None = None) -> RiskSnapshot | None:
        """Return the account's last committed risk snapshot, or ``None`` if it never had one.

        Its ``state`` and ``reason`` are those of the latest trading state change when that came
        after the snapshot (e.g. ``tradingd halt`` while no daemon ran).
        """
        rows = self._read(sa.select(RISK_STATE).where(RISK_STATE.c.account == (account or self.account)))
        return risk_from_row(rows[0]) if rows else None

    def load_account(self, account: str | None = None) -> AccountRecord | None:
        """Return the account's last committed snapshot (cash USD, open positions, fill watermark:
        a ``fills.id``), or ``None`` if it never had one."""
        name = account or self.account
        rows = self._read(sa.select(ACCOUNTS).where(ACCOUNTS.c.account == name))
        if not rows:
            return None
        positions = self._read(sa.select(ACCOUNT_POSITIONS).where(ACCOUNT_POSITIONS.c.account == name)
                               .order_by(ACCOUNT_POSITIONS.c.symbol))
        r = rows[0]
        return AccountRecord(cash=r["cash"], positions=tuple(position_from_row(p) for p in positions),
                             fill_watermark=r["last_fill_id"],
                             last_bar_ts={str(k): int(v) for k, v in (r["last_bar_ts"] or {}).items()},
                             ts=ns(r["ts"]) or 0)

    def account_orders(self, account: str | None = None) -> list[Order]:
        """Return every order of the account's runs, rebuilt as :class:`core.orders.Order` in its
        latest state (an order saved by several runs, e.g. resumed after a restart, appears once,
        as the latest run saved it), ordered by creation time.

        "Latest" is the row written last (the highest row id: the runs of an account follow one
        another, and a run writes an order only after it loaded it), not the order's own
        ``updated_at``: that is the node's clock, which a session following bar time can start
        behind the previous session's last event."""
        rows = self._read(sa.select(ORDERS).where(ORDERS.c.run_id.in_(self._account_runs(account)))
                          .order_by(ORDERS.c.id))
        latest = {r["client_order_id"]: r for r in rows}
        orders = [order_from_row(r) for r in latest.values()]
        orders.sort(key=lambda o: (o.ts_created, o.client_order_id))
        return orders

    def account_fills(self, account: str | None = None, *, after: int | None = None) -> list[OrderFilled]:
        """Return the fills of the account's runs in the order they were written; with ``after``
        (a fill watermark, see :meth:`load_account`) only those written after it."""
        query = sa.select(FILLS).where(FILLS.c.run_id.in_(self._account_runs(account)))
        if after is not None:
            query = query.where(FILLS.c.id > after)
        return [fill_from_row(r) for r in self._read(query.order_by(FILLS.c.id))]

    def load_learner_states(self, account: str | None = None) -> dict[str, bytes]:
        """Return the account's saved learner states: symbol -> ``to_bytes()`` payload."""
        t = LEARNER_STATE
        rows = self._read(sa.select(t.c.symbol, t.c.state).where(t.c.account == (account or self.account))
                          .order_by(t.c.symbol))
        return {r["symbol"]: bytes(r["state"]) for r in rows}

    # --- reconciliation and broker binding -----------------------------------------------------
    def last_reconciliation(self, account: str | None = None) -> dict[str, Any] | None:
        """Return the account's latest saved reconciliation, or ``None`` if it never had one.

        Keys: account, ts (epoch ns of the broker snapshot), reason, ok, account_number (the
        broker's), differences (list of dicts as ``Difference.as_dict``), counts, and
        external_positions (symbols of its ``external_position`` differences).
        """
        t = RECONCILIATIONS
        rows = self._read(sa.select(t).where(t.c.account == (account or self.account))
                          .order_by(t.c.ts.desc(), t.c.id.desc()).limit(1))
        if not rows:
            return None
        r = rows[0]
        differences = list(r["differences"] or [])
        return {"account": r["account"], "ts": int(r["ts"]), "reason": r["reason"], "ok": bool(r["ok"]),
                "account_number": r["account_number"], "differences": differences, "counts": dict(r["counts"] or {}),
                "external_positions": [d["symbol"] for d in differences if d.get("kind") == "external_position"]}

    def broker_account(self, account: str | None = None) -> dict[str, Any] | None:
        """Return the broker binding of the account (account, broker, mode, broker_account_number,
        first_seen ns), or ``None`` when it is not bound."""
        t = BROKER_ACCOUNTS
        rows = self._read(sa.select(t).where(t.c.account == (account or self.account)))
        return binding_dict(rows[0]) if rows else None

    # --- runs ----------------------------------------------------------------------------------
    def run(self, run_id: str) -> dict[str, Any] | None:
        """Return run ``run_id`` as a dict, or ``None``: id, kind, strategy_id, params, config_hash,
        data_hash, started_ns/finished_ns (epoch ns UTC), status, metrics, account, pid, hostname
        (of the process that wrote it) and note (how it ended)."""
        rows = self._read(sa.select(RUNS).where(RUNS.c.id == run_id))
        return _run_dict(rows[0]) if rows else None

    def find_runs(self, *, statuses: Sequence[str] | None = None, kinds: Sequence[str] | None = None,
                  started_before_ns: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Return runs of every account, newest first (by start, then id), as :meth:`run` does.

        Parameters
        ----------
        statuses, kinds
            Only runs with one of these statuses / kinds (``None``: any).
        started_before_ns
            Only runs started before this time, epoch ns UTC.
        limit
            At most this many (the newest).
        """
        query = sa.select(RUNS).order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc())
        if statuses is not None:
            query = query.where(RUNS.c.status.in_(list(statuses)))
        if kinds is not None:
            query = query.where(RUNS.c.kind.in_(list(kinds)))
        if started_before_ns is not None:
            query = query.where(RUNS.c.started_at < to_datetime(started_before_ns))
        if limit is not None:
            query = query.limit(limit)
        return [_run_dict(r) for r in self._read(query)]

    def resolve_run(self, prefix: str) -> str:
        """Return the id of the one run whose id is ``prefix`` or starts with it.

        Raises
        ------
        UnknownRunError
            If no run matches, or several do (the message lists up to five of them).
        """
        if self._read(sa.select(RUNS.c.id).where(RUNS.c.id == prefix)):
            return prefix
        rows = self._read(sa.select(RUNS.c.id).where(RUNS.c.id.startswith(prefix, autoescape=True))
                          .order_by(RUNS.c.started_at.desc()).limit(6))
        if not rows:
            raise UnknownRunError(f"no run {prefix!r}: see `tradingd runs list`")
        if len(rows) > 1:
            shown = ", ".join(r["id"] for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise UnknownRunError(f"run id prefix {prefix!r} is ambiguous: {shown}")
        return str(rows[0]["id"])

    def run_state_changes(self, run_id: str) -> list[dict[str, Any]]:
        """Return the trading-state changes of run ``run_id``, oldest first: previous, state (as
        :class:`core.enums.TradingState`), reason, ts (epoch ns UTC; replay time for a replay).

        A replay has an account of its own (named after the run): all of its changes. A run on a
        shared account (live) gets the account's changes between its start and its end.

        Raises
        ------
        UnknownRunError
            If there is no such run.
        """
        run = self.run(run_id)
        if run is None:
            raise UnknownRunError(f"no run {run_id!r}")
        t = TRADING_STATE_HISTORY
        query = sa.select(t).where(t.c.account == run["account"]).order_by(t.c.ts, t.c.id)
        if run["account"] != run_id:
            query = query.where(t.c.ts >= to_datetime(run["started_ns"]))
            if run["finished_ns"] is not None:
                query = query.where(t.c.ts <= to_datetime(run["finished_ns"]))
        return [{"previous": TradingState(r["previous"]), "state": TradingState(r["state"]), "reason": r["reason"],
                 "ts": ns(r["ts"])} for r in self._read(query)]

    def orders(self, run_id: str) -> list[dict[str, Any]]:
        """Return the orders of ``run_id`` in creation order, keyed like :class:`core.orders.Order`
        plus ``run_id`` (``ts_created``/``ts_last`` epoch ns; enums as ``core.enums`` members)."""
        rows = self._read(sa.select(ORDERS).where(ORDERS.c.run_id == run_id).order_by(ORDERS.c.created_at, ORDERS.c.id))
        return [order_dict(r) for r in rows]

    def fills(self, run_id: str) -> list[dict[str, Any]]:
        """Return the fills of ``run_id`` in the order they were saved, keyed like
        :class:`core.events.OrderFilled` plus ``run_id`` (``ts_event``/``ts_init`` epoch ns)."""
        rows = self._read(sa.select(FILLS).where(FILLS.c.run_id == run_id).order_by(FILLS.c.id))
        return [{"run_id": r["run_id"], "client_order_id": r["client_order_id"], "fill_id": r["fill_id"],
                 "symbol": r["symbol"], "side": fill.side, "quantity": r["quantity"], "price": r["price"],
                 "cum_quantity": r["cum_quantity"], "commission": r["commission"], "slippage": r["slippage"],
                 "ts_event": fill.ts_event, "ts_init": fill.ts_init}
                for r, fill in ((r, fill_from_row(r)) for r in rows)]

    def trades(self, run_id: str) -> list[TradeClosed]:
        """Return the closed trades of ``run_id`` ordered by exit time, then save order."""
        rows = self._read(sa.select(TRADES).where(TRADES.c.run_id == run_id).order_by(TRADES.c.exit_ts, TRADES.c.id))
        return [trade_from_row(r) for r in rows]

    def journal(self, run_id: str) -> list[dict[str, Any]]:
        """Return the journal entries of ``run_id`` in ``seq`` order: seq, kind, ts_init (ns),
        payload (JSON object) and hash."""
        t = JOURNAL
        rows = self._read(sa.select(t.c.seq, t.c.kind, t.c.ts_init, t.c.payload, t.c.hash)
                          .where(t.c.run_id == run_id).order_by(t.c.seq))
        return [dict(r) for r in rows]

    def decisions(self, run_id: str) -> list[Decision]:
        """Return the decisions of ``run_id`` ordered by time, then save order."""
        t = DECISIONS
        rows = self._read(sa.select(t).where(t.c.run_id == run_id).order_by(t.c.ts, t.c.id))
        return [decision_from_row(r) for r in rows]

    def equity(self, run_id: str) -> list[EquitySnapshot]:
        """Return the equity snapshots of ``run_id`` ordered by time, then save order."""
        rows = self._read(sa.select(EQUITY).where(EQUITY.c.run_id == run_id).order_by(EQUITY.c.ts, EQUITY.c.id))
        return [equity_from_row(r) for r in rows]

    def positions(self, run_id: str) -> list[dict[str, Any]]:
        """Return the saved holdings of ``run_id`` by symbol: symbol, quantity (signed shares),
        avg_price, realized_pnl, commission (USD) and ts (epoch ns of the save)."""
        rows = self._read(sa.select(POSITIONS).where(POSITIONS.c.run_id == run_id).order_by(POSITIONS.c.symbol))
        return [{"symbol": r["symbol"], "quantity": r["quantity"], "avg_price": r["avg_price"],
                 "realized_pnl": r["realized_pnl"], "commission": r["commission"], "ts": ns(r["updated_at"])}
                for r in rows]


__all__ = ["ACCOUNT_TABLES", "RUN_TABLES", "SqlQueries", "UnknownRunError"]
