"""Run bookkeeping in the store: concurrent first openers migrate one at a time, runs whose process
died are found and marked ``interrupted``, and runs are looked up by prefix, listed and deleted with
every row they own."""

from __future__ import annotations

import multiprocessing
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.enums import TradingState
from core.ports import EquitySnapshot
from core.time import NANOS_PER_DAY
from state import SqlStore, StoreConfig, StoreError
from state.queries import UnknownRunError
from state.store import process_alive, process_start
from tests.state.test_store import T0, make_fill, make_order, make_trade, state_change

OpenStore = Callable[..., SqlStore]
_FORK = multiprocessing.get_context("fork")  # the children need no fresh interpreter (~0.5 s of imports each)
OPENERS = 10


def _set(url: str, run_id: str, **values: Any) -> None:
    """Change a run row behind the store's back (what another host or an older version wrote)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE runs SET {', '.join(f'{k} = :{k}' for k in values)} WHERE id = :id"),
                         {**values, "id": run_id})
    finally:
        engine.dispose()


# --- migrating under a lock ------------------------------------------------------------------


def _open_when_released(url: str, barrier: Any, results: Any) -> None:
    barrier.wait()  # every child opens at the same moment
    try:
        SqlStore(StoreConfig(database_url=url)).close()
        results.put("ok")
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def test_ten_processes_opening_a_fresh_sqlite_file_at_once_all_succeed(tmp_path: Path) -> None:
    # Without the migration lock 9 of 10 failed with "database is locked" here.
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    barrier, results = _FORK.Barrier(OPENERS), _FORK.Queue()
    children = [_FORK.Process(target=_open_when_released, args=(url, barrier, results)) for _ in range(OPENERS)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    outcomes = [results.get(timeout=5) for _ in children]
    assert outcomes == ["ok"] * OPENERS
    with SqlStore(StoreConfig(database_url=url)) as store:
        assert store.find_runs() == []


# --- stale runs --------------------------------------------------------------------------------


def _start_and_die(url: str, run_id: str) -> None:
    store = SqlStore(StoreConfig(database_url=url), account=run_id)
    store.start_run(run_id, "replay", "sma", {}, "c", "d", T0)
    os._exit(0)  # like kill -9: no finish_run, no close


def test_a_run_whose_process_died_is_marked_interrupted_when_the_store_is_next_opened(database_url: str) -> None:
    child = _FORK.Process(target=_start_and_die, args=(database_url, "orphan"))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    with SqlStore(StoreConfig(database_url=database_url)) as store:
        assert [run_id for run_id, _ in store.stale_runs] == ["orphan"]
        run = store.run("orphan")
        assert run is not None and run["status"] == "interrupted"
        assert run["pid"] == child.pid and f"process {child.pid} on {socket.gethostname()}" in run["note"]
        assert "killed or crashed" in run["note"]
    with SqlStore(StoreConfig(database_url=database_url)) as again:  # marked once
        assert again.stale_runs == []


def test_runs_of_live_processes_other_hosts_and_older_versions_stay_running(open_store: OpenStore,
                                                                            database_url: str) -> None:
    writer = open_store()
    for run_id in ("mine", "elsewhere", "old"):
        writer.start_run(run_id, "live", "sma", {}, "c", "d", T0)
    _set(database_url, "elsewhere", hostname="another-host", pid=2**22 + 12345)  # no such pid here
    _set(database_url, "old", hostname=None, pid=None, process_start=None)  # written before 0003
    reader = open_store()
    assert reader.stale_runs == []
    assert {r["id"]: r["status"] for r in reader.find_runs()} == {"mine": "running", "elsewhere": "running",
                                                                  "old": "running"}


def test_a_run_whose_pid_now_belongs_to_another_process_is_stale(open_store: OpenStore, database_url: str) -> None:
    writer = open_store()
    writer.start_run("reused", "replay", "sma", {}, "c", "d", T0)
    # this process has the recorded pid, but it is not the process that started the run
    _set(database_url, "reused", process_start="another-boot:1")
    assert [run_id for run_id, _ in open_store().stale_runs] == ["reused"]


def test_process_identity_tells_this_process_from_a_gone_one() -> None:
    me = process_start(os.getpid())
    assert me is not None and me == process_start(os.getpid())
    assert process_alive(os.getpid(), me) and process_alive(os.getpid(), None)
    assert not process_alive(os.getpid(), "another-boot:1")
    child = _FORK.Process(target=os._exit, args=(0,))
    child.start()
    child.join()
    assert child.pid is not None and not process_alive(child.pid, None) and process_start(child.pid) is None


# --- finding runs --------------------------------------------------------------------------------


def _runs(store: SqlStore, *specs: tuple[str, str, int]) -> None:
    """Start runs (id, final status, start offset in days); every status but running is finished."""
    for run_id, status, day in specs:
        store.start_run(run_id, "replay", "sma", {"fast": 10}, "c", "d", T0 + day * NANOS_PER_DAY)
        if status != "running":
            store.finish_run(run_id, T0 + day * NANOS_PER_DAY + 1_000, status, {"bars": day}, note=f"{status} note")


def test_runs_are_found_by_unique_prefix(store: SqlStore) -> None:
    _runs(store, ("sma_cross-20261201-aaaa", "finished", 0), ("sma_cross-20261202-bbbb", "finished", 1),
          ("smaXcross-1", "finished", 2), ("sma", "finished", 3))
    assert store.resolve_run("sma_cross-20261201-aaaa") == "sma_cross-20261201-aaaa"
    assert store.resolve_run("sma_cross-20261202") == "sma_cross-20261202-bbbb"
    assert store.resolve_run("smaX") == "smaXcross-1"
    assert store.resolve_run("sma") == "sma"  # an exact id wins over the runs it prefixes
    with pytest.raises(UnknownRunError, match="ambiguous: sma_cross-20261202-bbbb, sma_cross-20261201-aaaa"):
        store.resolve_run("sma_")  # "_" is a literal here, not SQL's any-character
    with pytest.raises(UnknownRunError, match="no run 'rsi'"):
        store.resolve_run("rsi")


def test_find_runs_lists_newest_first_and_filters(store: SqlStore) -> None:
    _runs(store, ("a", "finished", 0), ("b", "failed", 1), ("c", "interrupted", 2), ("d", "running", 3))
    assert [r["id"] for r in store.find_runs()] == ["d", "c", "b", "a"]
    assert [r["id"] for r in store.find_runs(limit=2)] == ["d", "c"]
    assert [r["id"] for r in store.find_runs(statuses=["failed", "interrupted"])] == ["c", "b"]
    assert [r["id"] for r in store.find_runs(started_before_ns=T0 + 2 * NANOS_PER_DAY)] == ["b", "a"]
    assert store.find_runs(kinds=["live"]) == []
    assert store.run("c")["note"] == "interrupted note"  # type: ignore[index]


# --- deleting runs ---------------------------------------------------------------------------------


def _fill_run(open_store: OpenStore, run_id: str, account: str | None = None) -> SqlStore:
    """A run with a row in every run table, and state for its account."""
    store = open_store(account=account or run_id, batch_size=100_000)
    store.start_run(run_id, "replay", "sma", {}, "c", "d", T0)
    order = make_order(f"{run_id}-o")
    store.save_order(order)
    order.apply_fill(5.0, 101.25, 0.5, T0)
    store.save_fill(make_fill(f"{run_id}-f", 5.0, client_order_id=order.client_order_id), order)
    store.save_trade(make_trade())
    store.save_equity(EquitySnapshot(T0, 1.0, 1.0, 0.0, 0))
    store.save_trading_state(state_change(TradingState.ACTIVE, TradingState.HALTED, "drawdown", T0))
    store.save_learner_state("AAPL", b"model")
    store.save_account(100.0, [], T0)
    store.save_positions(run_id, {}, T0)
    store.finish_run(run_id, T0, "finished", {})
    return store


def test_deleting_a_run_removes_every_row_it_owns_and_nothing_else(open_store: OpenStore) -> None:
    _fill_run(open_store, "gone")
    kept = _fill_run(open_store, "kept")
    live = open_store(account="default")
    live.save_trading_state(state_change(TradingState.ACTIVE, TradingState.HALTED, "operator halt", T0))
    expected = {"runs": 1, "orders": 1, "fills": 1, "trades": 1, "decisions": 0, "equity_snapshots": 1,
                "positions": 0, "journal": 0, "account_state": 5}  # trading state + its history, risk, account, learner
    assert kept.count_run_rows(["gone"]) == expected
    assert kept.delete_runs(["gone"]) == expected
    assert kept.run("gone") is None and kept.orders("gone") == [] and kept.fills("gone") == []
    assert kept.trades("gone") == [] and kept.equity("gone") == []
    assert kept.load_risk_state("gone") is None and kept.load_learner_states("gone") == {}
    assert kept.count_run_rows(["gone"])["account_state"] == 0
    # the other run and a live account's halt are untouched
    assert len(kept.orders("kept")) == 1 and len(kept.fills("kept")) == 1 and kept.load_account("kept") is not None
    assert live.load_trading_state() == (TradingState.HALTED, "operator halt")


def test_a_run_on_a_shared_account_leaves_the_account_state(open_store: OpenStore) -> None:
    store = _fill_run(open_store, "live-1", account="default")
    assert store.delete_runs(["live-1"])["account_state"] == 0
    assert store.load_trading_state() == (TradingState.HALTED, "drawdown")


def test_deleting_refuses_running_and_unknown_runs_and_deletes_nothing(store: SqlStore) -> None:
    _runs(store, ("done", "finished", 0), ("busy", "running", 1))
    with pytest.raises(StoreError, match="'busy' is running"):
        store.delete_runs(["done", "busy"])
    with pytest.raises(StoreError, match="unknown run 'nope'"):
        store.delete_runs(["done", "nope"])
    assert {r["id"] for r in store.find_runs()} == {"done", "busy"}
    assert store.delete_runs([]) == {}


def test_vacuum_only_applies_to_sqlite(store: SqlStore, backend: str) -> None:
    assert store.vacuum() is (backend == "sqlite")
    assert (store.sqlite_path is not None) is (backend == "sqlite")
