"""SqlStore(durable_state=False): a replay's trading-state changes ride in the batch.

A breaker-heavy replay trips hundreds of times; each trip used to cost two commits. With
``durable_state=False`` (what the replay job opens) the changes are buffered like every other row
and the flush leaves exactly the rows the immediate writes would have left. Runs on SQLite and
PostgreSQL (tests/state/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.enums import TradingState
from core.events import TradingStateChanged
from core.recovery import RiskSnapshot
from core.time import NANOS_PER_SECOND
from state import SqlStore, StoreConfig

T0 = 1_700_000_000 * NANOS_PER_SECOND
_ACCOUNTS = count()  # a fresh pair of accounts per example (the database is the test's)


def change(previous: TradingState, current: TradingState, reason: str, ts: int) -> TradingStateChanged:
    return TradingStateChanged(previous=previous, current=current, reason=reason, ts_event=ts, ts_init=ts)


@pytest.fixture
def stores(database_url: str) -> Iterator[tuple[SqlStore, SqlStore, SqlStore]]:
    """(immediate writer, batched writer, reader of either account) on one database."""
    config = StoreConfig(database_url=database_url, batch_size=100_000)
    opened = [SqlStore(config, account="immediate"), SqlStore(config, account="batched", durable_state=False),
              SqlStore(config, account="immediate")]
    yield opened[0], opened[1], opened[2]
    for store in opened:
        store.close()


def state_of(store: SqlStore, account: str) -> tuple[Any, Any, list[tuple[Any, ...]]]:
    reader = SqlStore(store.config, account=account)
    try:
        history = [(h["previous"], h["state"], h["reason"], h["ts"]) for h in reader.trading_state_history()]
        return reader.load_trading_state(), reader.load_risk_state(), history
    finally:
        reader.close()


def test_state_changes_wait_for_the_flush_and_then_match_the_immediate_writes(
        stores: tuple[SqlStore, SqlStore, SqlStore]) -> None:
    immediate, batched, _ = stores
    for store in (immediate, batched):
        store.save_risk_state(RiskSnapshot(state=TradingState.ACTIVE, peak_equity=100.0, ts=T0))
        store.save_trading_state(change(TradingState.ACTIVE, TradingState.REDUCING, "5 losses", T0 + 1))
        store.save_risk_state(RiskSnapshot(state=TradingState.REDUCING, reason="5 losses", peak_equity=100.0,
                                           loss_streak=0, ts=T0 + 1))
        store.save_trading_state(change(TradingState.REDUCING, TradingState.HALTED, "drawdown", T0 + 2))
    assert state_of(batched, "batched") == (None, None, [])  # nothing committed yet
    assert batched.buffered > 0
    batched.flush()
    assert state_of(batched, "batched") == state_of(immediate, "immediate")
    assert state_of(batched, "batched")[0] == (TradingState.HALTED, "drawdown")


states = st.sampled_from(list(TradingState))
operations = st.lists(st.one_of(
    st.tuples(st.just("change"), states, st.text("abc", max_size=3)),
    st.tuples(st.just("snapshot"), states, st.text("abc", max_size=3)),
    st.tuples(st.just("flush"), states, st.just("")),
), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_any_sequence_of_changes_and_snapshots_leaves_the_same_rows(database_url: str, ops) -> None:
    """Whatever mix of state changes, risk snapshots and flushes, the final rows are those of the
    immediate writes (a change after a buffered snapshot patches it; a snapshot after a change
    replaces its columns)."""
    config = StoreConfig(database_url=database_url, batch_size=100_000)
    token = str(next(_ACCOUNTS))
    immediate = SqlStore(config, account=f"i{token}")
    batched = SqlStore(config, account=f"b{token}", durable_state=False)
    previous = TradingState.ACTIVE
    for k, (kind, state, reason) in enumerate(ops):
        for store in (immediate, batched):
            if kind == "change":
                store.save_trading_state(change(previous, state, reason, T0 + k))
            elif kind == "snapshot":
                store.save_risk_state(RiskSnapshot(state=state, reason=reason, peak_equity=100.0 + k,
                                                   loss_streak=k, ts=T0 + k))
            else:
                store.flush()
        previous = state if kind == "change" else previous
    immediate.close()
    batched.close()
    assert state_of(batched, f"b{token}") == state_of(immediate, f"i{token}")
