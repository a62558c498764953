"""The store conformance suite (state/checks.py) over every adapter: SqlStore on a SQLite file,
SqlStore on the real PostgreSQL server (never skipped) and MemoryStore."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.events import OrderFilled, TradingStateChanged
from core.orders import Order
from state.checks import (STORE_CHECKS, MemoryStoreHarness, SqlStoreHarness, StoreCheck, StoreCheckFailed,
                          StoreHarness, check_store, yield_checks)
from state.memory import MemoryStore

CHECKS = list(yield_checks())


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def make_harness(request: pytest.FixtureRequest, tmp_path) -> Callable[[], StoreHarness]:
    if request.param == "memory":
        return MemoryStoreHarness
    url = f"sqlite:///{tmp_path / 'checks.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    return lambda: SqlStoreHarness(url)


@pytest.mark.parametrize("check", CHECKS, ids=[c.name for c in CHECKS])
def test_store_check(make_harness: Callable[[], StoreHarness], check: StoreCheck) -> None:
    harness = make_harness()
    try:
        check.run(harness)
    finally:
        harness.close()


def test_every_adapter_supports_every_check() -> None:
    assert len(CHECKS) == len(STORE_CHECKS) == 8
    assert [c.name for c in yield_checks(features=())] == [
        "writes_keep_their_order", "order_upsert_keeps_latest_status", "fill_and_order_atomic", "flush_idempotent",
        "reads_back_what_was_written"]


class _FillBeforeOrderStore(MemoryStore):
    """The B16 defect in miniature: the fill is recorded, its order update only later."""

    def save_fill(self, fill: OrderFilled, order: Order) -> None:
        if fill.fill_id not in {f.fill_id for f in self.fills}:
            self.fills.append(fill)


class _LosesStateChanges(MemoryStore):
    def save_trading_state(self, change: TradingStateChanged) -> None:
        pass


@pytest.mark.parametrize(("store_class", "failing"), [
    (_FillBeforeOrderStore, "fill and order atomic"),
    (_LosesStateChanges, "trading state committed at once"),
])
def test_check_store_names_what_a_broken_adapter_breaks(store_class: type[MemoryStore], failing: str) -> None:
    def make() -> MemoryStoreHarness:
        harness = MemoryStoreHarness()
        harness.store = store_class(harness.account)
        return harness

    with pytest.raises(StoreCheckFailed, match=failing):
        check_store(make)


def test_check_store_passes_a_conforming_adapter(tmp_path) -> None:
    check_store(lambda: SqlStoreHarness(f"sqlite:///{tmp_path / 'all.db'}"))
    check_store(MemoryStoreHarness)
