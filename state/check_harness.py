"""Harnesses of the store conformance checks (:mod:`state.checks`): one database under test,
writers on it, and what a fresh reader of it sees.

:class:`SqlStoreHarness` and :class:`MemoryStoreHarness` ship here; a new Store adapter writes
its own (a few lines: ``open``, ``committed``, ``source``, ``close``) and declares which optional
:data:`FEATURES` it has.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.enums import TradingState
from core.events import OrderFilled, TradeClosed
from core.orders import Order
from core.ports import Decision, EquitySnapshot, Store
from core.recovery import RestoredPosition, RiskSnapshot
from core.time import NANOS_PER_SECOND
from state.config import StoreConfig
from state.memory import MemoryStore
from state.recovery import RecoverySource
from state.store import SqlStore

T0 = 1_700_000_000 * NANOS_PER_SECOND + 123_456_000
"""Epoch ns the checks write at (microsecond-aligned: the SQL store keeps microseconds)."""

US = 1_000
"""One microsecond in ns (the checks offset their timestamps by whole microseconds)."""

FEATURES = frozenset({"risk_state", "account_snapshot", "learner_state"})
"""Optional features a harness may declare; checks needing one are skipped without it."""


class CheckedStore(Store, Protocol):
    """The Store port plus the account-state writes recovery needs."""

    def save_account(self, cash: float, positions: Iterable[RestoredPosition], ts: int, *,
                     last_bar_ts: Mapping[str, int] | None = None) -> None: ...
    def save_learner_state(self, symbol: str, state: bytes, ts: int | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class Committed:
    """What a fresh reader of the harness's database sees (one account, one run).

    ``orders`` maps client_order_id -> the order's latest stored slots (status,
    filled_quantity, ...); lists are in the order the store returns them.
    """

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    fills: list[OrderFilled] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    trades: list[TradeClosed] = field(default_factory=list)
    equity: list[EquitySnapshot] = field(default_factory=list)
    trading_state: tuple[TradingState, str] | None = None
    risk: RiskSnapshot | None = None


class StoreHarness(Protocol):
    """One database under test: writers on it, and what is committed in it."""

    account: str
    features: frozenset[str]

    def open(self, *, batch_size: int = 1_000_000, durable_orders: bool = False) -> CheckedStore:
        """A new writer of the harness's account and run (stores without batching ignore the options)."""
        ...

    def committed(self) -> Committed:
        """What a fresh reader sees now: committed data only."""
        ...

    def source(self) -> RecoverySource:
        """A reader recovery can load the account from."""
        ...

    def close(self) -> None:
        """Close every writer and reader."""
        ...


def slots(order: Order) -> dict[str, Any]:
    return {name: getattr(order, name) for name in Order.__slots__}


class SqlStoreHarness:
    """Harness of :class:`state.store.SqlStore` on ``database_url`` (an existing database is fine:
    each harness writes a fresh account and run of its own)."""

    features = FEATURES

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        tag = uuid.uuid4().hex[:12]
        self.account, self.run_id = f"check-{tag}", f"check-run-{tag}"
        self._stores: list[SqlStore] = []
        self._reader: SqlStore | None = None
        self._started = False

    def open(self, *, batch_size: int = 1_000_000, durable_orders: bool = False) -> SqlStore:
        store = SqlStore(StoreConfig(database_url=self.database_url, batch_size=batch_size,
                                     durable_orders=durable_orders), account=self.account)
        self._stores.append(store)
        if self._started:
            store.set_run(self.run_id)
        else:
            store.start_run(self.run_id, "live", "check", {}, "config", "data", T0)
            self._started = True
        return store

    def source(self) -> SqlStore:
        if self._reader is None:
            self._reader = SqlStore(StoreConfig(database_url=self.database_url), account=self.account)
            self._stores.append(self._reader)
        return self._reader

    def committed(self) -> Committed:
        reader = self.source()
        if not self._started:
            return Committed(trading_state=reader.load_trading_state(), risk=reader.load_risk_state())
        return Committed(orders={o.client_order_id: slots(o) for o in reader.account_orders()},
                         fills=reader.account_fills(), decisions=reader.decisions(self.run_id),
                         trades=reader.trades(self.run_id), equity=reader.equity(self.run_id),
                         trading_state=reader.load_trading_state(), risk=reader.load_risk_state())

    def close(self) -> None:
        stores, self._stores, self._reader = self._stores, [], None
        for store in stores:
            store.close()


class MemoryStoreHarness:
    """Harness of :class:`state.memory.MemoryStore`: every writer is the same in-memory store."""

    features = FEATURES

    def __init__(self) -> None:
        self.account = "check"
        self.store = MemoryStore(self.account)

    def open(self, *, batch_size: int = 1_000_000, durable_orders: bool = False) -> MemoryStore:
        return self.store

    def source(self) -> MemoryStore:
        return self.store

    def committed(self) -> Committed:
        s = self.store
        last = s.trading_states[-1] if s.trading_states else None
        return Committed(orders={cid: dict(slots) for cid, slots in s.orders.items()}, fills=list(s.fills),
                         decisions=list(s.decisions), trades=list(s.trades), equity=list(s.equity),
                         trading_state=None if last is None else (last.current, last.reason), risk=s.risk_state)

    def close(self) -> None:
        pass


__all__ = ["FEATURES", "T0", "US", "CheckedStore", "Committed", "MemoryStoreHarness", "SqlStoreHarness",
           "StoreHarness", "slots"]
