"""Behaviour of ``SqlStore`` on SQLite and PostgreSQL (see conftest: every test runs on both)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import asdict, replace

import pytest
import sqlalchemy as sa

from core.enums import OrderStatus, OrderType, Side, TimeInForce, TradingState
from core.events import OrderFilled, SubmitOrder, TradeClosed, TradingStateChanged
from core.orders import Order
from core.portfolio import Portfolio
from core.ports import Decision, EquitySnapshot
from core.recovery import RiskSnapshot
from core.time import NANOS_PER_MINUTE, NANOS_PER_SECOND
from state import SqlStore, StoreConfig, StoreError

T0 = 1_700_000_000 * NANOS_PER_SECOND + 123_456_000  # microsecond-aligned: the stored precision
OpenStore = Callable[..., SqlStore]


def make_order(client_order_id: str = "sma-AAPL-1-1", *, ts: int = T0, quantity: float = 10.0,
               order_type: OrderType = OrderType.MARKET, limit_price: float | None = None) -> Order:
    return Order(SubmitOrder(client_order_id=client_order_id, strategy_id="sma", symbol="AAPL", side=Side.BUY,
                             quantity=quantity, order_type=order_type, limit_price=limit_price,
                             time_in_force=TimeInForce.DAY, reason="cross up", ts_event=ts, ts_init=ts))


def make_fill(fill_id: str, cum: float, *, client_order_id: str = "sma-AAPL-1-1", ts: int = T0) -> OrderFilled:
    return OrderFilled(client_order_id=client_order_id, fill_id=fill_id, symbol="AAPL", side=Side.BUY, quantity=5.0,
                       price=101.25, cum_quantity=cum, commission=0.5, slippage=0.125, ts_event=ts, ts_init=ts + 1000)


def make_trade(symbol: str = "AAPL", side: Side = Side.BUY, quantity: float = 10.0, entry_ts: int = T0,
          exit_ts: int = T0, entry_price: float = 100.0, exit_price: float = 101.0, pnl: float = 9.0,
          commission: float = 1.0, exit_reason: str = "x", ts_init: int | None = None) -> TradeClosed:
    return TradeClosed(symbol=symbol, side=side, quantity=quantity, entry_ts=entry_ts, exit_ts=exit_ts,
                       entry_price=entry_price, exit_price=exit_price, pnl=pnl, commission=commission,
                       exit_reason=exit_reason, ts_event=exit_ts, ts_init=exit_ts if ts_init is None else ts_init)


def state_change(previous: TradingState, current: TradingState, reason: str, ts: int) -> TradingStateChanged:
    return TradingStateChanged(previous=previous, current=current, reason=reason, ts_event=ts, ts_init=ts)


def start(store: SqlStore, run_id: str = "run-1", kind: str = "replay") -> None:
    store.start_run(run_id, kind, "sma", {"fast": 10, "slow": 30}, "cfg-hash", "data-hash", T0)


# --- runs ------------------------------------------------------------------------------------


def test_run_lifecycle(store: SqlStore) -> None:
    start(store)
    run = store.run("run-1")
    assert run == {"id": "run-1", "kind": "replay", "strategy_id": "sma", "params": {"fast": 10, "slow": 30},
                   "config_hash": "cfg-hash", "data_hash": "data-hash", "started_ns": T0, "finished_ns": None,
                   "status": "running", "metrics": None, "account": "default", "pid": os.getpid(),
                   "hostname": socket.gethostname(), "note": None}
    store.finish_run("run-1", T0 + NANOS_PER_MINUTE, "completed",
                     {"sharpe": 1.5, "sortino": float("inf"), "trades": 3, "by_side": {Side.BUY: 2}})
    run = store.run("run-1")
    assert run is not None
    assert run["finished_ns"] == T0 + NANOS_PER_MINUTE and run["status"] == "completed" and run["note"] is None
    assert run["metrics"] == {"sharpe": 1.5, "sortino": None, "trades": 3, "by_side": {"buy": 2}}
    assert store.run("missing") is None


def test_run_errors(store: SqlStore) -> None:
    with pytest.raises(StoreError, match="no current run"):
        store.save_equity(EquitySnapshot(T0, 1.0, 1.0, 0.0, 0))
    with pytest.raises(ValueError, match="kind"):
        store.start_run("r", "paper", "sma", {}, "c", "d", T0)
    start(store)
    with pytest.raises(StoreError, match="already exists"):
        start(store)
    with pytest.raises(StoreError, match="unknown run"):
        store.set_run("missing")
    with pytest.raises(StoreError, match="unknown run"):
        store.finish_run("missing", T0, "completed", {})
    assert store.run_id == "run-1"


# --- round trips -----------------------------------------------------------------------------


def test_order_status_upserts_keep_one_row_with_the_latest_state(store: SqlStore) -> None:
    start(store)
    order = make_order(order_type=OrderType.LIMIT, limit_price=100.5)
    store.save_order(order)
    order.transition(OrderStatus.SUBMITTED, T0 + 1000)
    store.save_order(order)
    store.flush()
    assert [o["status"] for o in store.orders("run-1")] == [OrderStatus.SUBMITTED]

    order.transition(OrderStatus.ACCEPTED, T0 + 2000)
    order.broker_order_id = "broker-42"
    store.save_order(order)
    order.apply_fill(5.0, 100.0, 0.5, T0 + 3000)
    store.save_order(order)
    store.flush()
    order.apply_fill(10.0, 101.0, 0.5, T0 + 4000)
    store.save_order(order)
    store.flush()

    assert store.orders("run-1") == [{
        "run_id": "run-1", "client_order_id": "sma-AAPL-1-1", "strategy_id": "sma", "symbol": "AAPL",
        "side": Side.BUY, "quantity": 10.0, "order_type": OrderType.LIMIT, "limit_price": 100.5,
        "stop_price": None, "time_in_force": TimeInForce.DAY, "reduce_only": False, "reason": "cross up",
        "status": OrderStatus.FILLED,
        "filled_quantity": 10.0, "avg_fill_price": 100.5, "commission": 1.0, "broker_order_id": "broker-42",
        "ts_created": T0, "ts_last": T0 + 4000}]


def test_orders_are_scoped_by_run(store: SqlStore) -> None:
    start(store, "run-1")
    store.save_order(make_order())
    start(store, "run-2")
    store.save_order(make_order(quantity=3.0))
    store.flush()
    assert [o["quantity"] for o in store.orders("run-1")] == [10.0]
    assert [o["quantity"] for o in store.orders("run-2")] == [3.0]
    store.set_run("run-1")
    assert store.run_id == "run-1"


def test_fills_round_trip_and_duplicates_are_ignored(store: SqlStore) -> None:
    start(store)
    order = make_order()
    store.save_order(order)
    fills = [make_fill("f1", 5.0), make_fill("f2", 10.0, ts=T0 + NANOS_PER_SECOND)]
    for fill in fills:
        order.apply_fill(fill.cum_quantity, fill.price, fill.commission, fill.ts_init)
        store.save_fill(fill, order)
    store.flush()
    store.save_fill(fills[0], order)  # a replayed report
    store.flush()
    assert store.fills("run-1") == [{"run_id": "run-1", **asdict(fill)} for fill in fills]
    assert store.account_fills() == fills


def test_trades_decisions_and_equity_round_trip(store: SqlStore) -> None:
    start(store)
    trades = [make_trade("AAPL", Side.BUY, 10.0, T0, T0 + 5 * NANOS_PER_MINUTE, 100.0, 104.0, 39.0, 1.0, "exit"),
              make_trade("MSFT", Side.SELL, 3.0, T0, T0 + 2 * NANOS_PER_MINUTE, 300.0, 310.0, -30.5, 0.5, "stop")]
    decisions = [Decision(T0 + NANOS_PER_MINUTE, "sma", "AAPL", Side.BUY, 10.0, "submitted", "cross up", "sma-AAPL-1-1", 0.7, "low_vol_trending"),
                 Decision(T0, "sma", "MSFT", Side.SELL, 0.0, "denied", "max positions", "", None, "")]
    snapshots = [EquitySnapshot(T0 + i * NANOS_PER_MINUTE, 1000.0 - i, 1000.0 + i * 0.25, 50.0 * i, i % 3)
                 for i in range(5)]
    for trade in trades:
        store.save_trade(trade)
    for decision in decisions:
        store.save_decision(decision)
    for snapshot in reversed(snapshots):
        store.save_equity(snapshot)
    store.flush()
    assert store.trades("run-1") == sorted(trades, key=lambda t: t.exit_ts)
    assert store.decisions("run-1") == sorted(decisions, key=lambda d: d.ts)
    assert store.equity("run-1") == snapshots
    assert isinstance(store.trades("run-1")[0].side, Side)


def test_positions_are_upserted_per_symbol(store: SqlStore) -> None:
    start(store)
    portfolio = Portfolio(10_000.0)
    portfolio.apply_fill("AAPL", Side.BUY, 10.0, 100.0, 1.0)
    portfolio.apply_fill("MSFT", Side.SELL, 2.0, 300.0, 0.5)
    store.save_positions("run-1", portfolio.positions(), T0)
    portfolio.apply_fill("AAPL", Side.SELL, 10.0, 110.0, 1.0)
    store.save_positions("run-1", {"AAPL": portfolio.positions()["AAPL"]}, T0 + NANOS_PER_MINUTE)
    assert store.positions("run-1") == [
        {"symbol": "AAPL", "quantity": 0.0, "avg_price": 0.0, "realized_pnl": 100.0, "commission": 2.0,
         "ts": T0 + NANOS_PER_MINUTE},
        {"symbol": "MSFT", "quantity": -2.0, "avg_price": 300.0, "realized_pnl": 0.0, "commission": 0.5, "ts": T0}]
    with pytest.raises(StoreError):
        store.save_positions("missing-run", portfolio.positions(), T0)


# --- batching and durability -----------------------------------------------------------------


def test_nothing_is_written_before_flush(open_store: OpenStore) -> None:
    writer, reader = open_store(batch_size=1000), open_store()
    start(writer)
    order = make_order()
    writer.save_order(order)
    order.apply_fill(5.0, 101.25, 0.5, T0)
    writer.save_fill(make_fill("f1", 5.0), order)
    writer.save_decision(Decision(T0, "sma", "AAPL", Side.BUY, 10.0, "submitted", "", "sma-AAPL-1-1", None, ""))
    writer.save_trade(make_trade())
    writer.save_equity(EquitySnapshot(T0, 1.0, 1.0, 0.0, 0))
    assert writer.buffered == 5
    for read in (reader.orders, reader.fills, reader.decisions, reader.trades, reader.equity):
        assert read("run-1") == []
    writer.flush()
    assert writer.buffered == 0
    for read in (reader.orders, reader.fills, reader.decisions, reader.trades, reader.equity):
        assert len(read("run-1")) == 1


def test_flush_happens_automatically_at_batch_size(store: SqlStore, open_store: OpenStore) -> None:
    batched = open_store(batch_size=5)
    start(batched)
    for i in range(7):
        batched.save_equity(EquitySnapshot(T0 + i, 1.0, 1.0, 0.0, 0))
    assert len(batched.equity("run-1")) == 5 and batched.buffered == 2
    # repeated saves of one order count once towards the batch
    order = make_order()
    for status in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED):
        batched.save_order(order)
        order.transition(status, T0)
    assert batched.buffered == 3 and batched.orders("run-1") == []
    batched.close()
    assert len(store.equity("run-1")) == 7 and len(store.orders("run-1")) == 1


def test_durable_orders_are_written_immediately(open_store: OpenStore) -> None:
    durable, buffered, reader = open_store(durable_orders=True), open_store(), open_store()
    start(durable, "live-1", kind="live")
    durable.save_equity(EquitySnapshot(T0, 1.0, 1.0, 0.0, 0))
    durable.save_order(make_order())
    assert [o["status"] for o in reader.orders("live-1")] == [OrderStatus.INITIALIZED]
    assert len(reader.equity("live-1")) == 1  # what was buffered before the order went with it
    start(buffered, "replay-1")
    buffered.save_order(make_order())
    assert reader.orders("replay-1") == []


def test_trading_state_is_written_immediately_and_survives_reopening(open_store: OpenStore) -> None:
    store = open_store()
    assert store.load_trading_state() is None
    store.save_trading_state(state_change(TradingState.ACTIVE, TradingState.REDUCING, "drawdown 5%", T0))
    store.save_trading_state(state_change(TradingState.REDUCING, TradingState.HALTED, "daily loss", T0 + 1000))
    assert open_store().load_trading_state() == (TradingState.HALTED, "daily loss")  # before any flush or close
    store.close()
    reopened = open_store()
    assert reopened.load_trading_state() == (TradingState.HALTED, "daily loss")
    assert [(h["previous"], h["state"], h["ts"]) for h in reopened.trading_state_history()] == [
        (TradingState.ACTIVE, TradingState.REDUCING, T0), (TradingState.REDUCING, TradingState.HALTED, T0 + 1000)]
    assert open_store(account="other").load_trading_state() is None


def test_failed_flush_raises_store_error_and_keeps_the_buffer(database_url: str, store: SqlStore) -> None:
    start(store)
    store.save_equity(EquitySnapshot(T0, 1.0, 1.0, 0.0, 0))
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:  # the run vanishes under the store: its rows violate the foreign key
        conn.execute(sa.text("DELETE FROM runs"))
    engine.dispose()
    with pytest.raises(StoreError, match="flush failed"):
        store.flush()
    assert store.buffered == 1
    with pytest.raises(StoreError):
        store.close()  # the final flush fails too, but the store is closed all the same
    with pytest.raises(StoreError, match="closed"):
        store.flush()


def test_closed_store_refuses_work(open_store: OpenStore) -> None:
    store = open_store()
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.load_trading_state()


def test_context_manager_flushes_on_exit(database_url: str, open_store: OpenStore) -> None:
    with SqlStore(StoreConfig(database_url=database_url)) as store:
        start(store)
        store.save_equity(EquitySnapshot(T0, 1.0, 1.0, 0.0, 0))
    assert len(open_store().equity("run-1")) == 1


# --- opening -----------------------------------------------------------------------------------


def test_opening_twice_runs_the_migrations_once(open_store: OpenStore, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="alembic"):
        first = open_store()
        start(first)
        first.close()
        second = open_store()
    upgrades = [r.getMessage() for r in caplog.records if "Running upgrade" in r.getMessage()]
    assert len(upgrades) == 5  # 0001 to 0005, once each: the second open found the schema current
    assert "-> 0001_initial" in upgrades[0] and "0001_initial -> 0002_recovery" in upgrades[1]
    assert "0002_recovery -> 0003_run_process" in upgrades[2]
    assert second.run("run-1") is not None


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://trader:s3cretpw@127.0.0.1:1/tradingd",
    "nosuchdb://trader:s3cretpw@somewhere/db",
    "not a url at all :s3cretpw@",
])
def test_bad_url_raises_store_error_with_masked_password(url: str) -> None:
    with pytest.raises(StoreError) as info:
        SqlStore(StoreConfig(database_url=url))
    message = str(info.value)
    assert "s3cretpw" not in message
    assert "cannot open store" in message


def test_unreachable_database_names_url_and_cause() -> None:
    with pytest.raises(StoreError) as info:
        SqlStore(StoreConfig(database_url="postgresql+psycopg://trader:s3cretpw@127.0.0.1:1/tradingd"))
    message = str(info.value)
    assert "postgresql+psycopg://trader:***@127.0.0.1:1/tradingd" in message
    assert "OperationalError" in message


def test_sqlite_file_in_missing_directory_is_created_like_an_output_folder(tmp_path) -> None:
    path = tmp_path / "missing" / "deeper" / "x.db"
    with SqlStore(StoreConfig(database_url=f"sqlite:///{path}")) as store:
        store.start_run("r1", "replay", "s", {}, "c", "d", 1)
    assert path.is_file()
    (tmp_path / "file").write_text("")  # a parent that is a file cannot hold it: a clear error
    with pytest.raises(StoreError, match="cannot open store: sqlite:///"):
        SqlStore(StoreConfig(database_url=f"sqlite:///{tmp_path / 'file' / 'x.db'}"))


def test_config_is_frozen_and_strict() -> None:
    config = StoreConfig(database_url="postgresql+psycopg://u:pw@h/db")
    assert "pw@" not in repr(config)
    with pytest.raises(ValueError):
        StoreConfig(batch_size=0)
    with pytest.raises(ValueError):
        StoreConfig(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        config.batch_size = 3  # type: ignore[misc]


# --- B16 and the account state --------------------------------------------------------------


def test_a_fill_is_flushed_with_its_order_update(open_store: OpenStore) -> None:
    writer, reader = open_store(batch_size=2), open_store()
    start(writer)
    order = make_order()
    writer.save_order(order)
    order.transition(OrderStatus.ACCEPTED, T0)
    writer.save_order(order)  # one buffered row: the same order twice
    order.apply_fill(5.0, 101.25, 0.5, T0)
    writer.save_fill(make_fill("f1", 5.0), order)  # reaches the batch size: flushes
    assert [f["fill_id"] for f in reader.fills("run-1")] == ["f1"]
    assert [(o["status"], o["filled_quantity"]) for o in reader.orders("run-1")] == [
        (OrderStatus.PARTIALLY_FILLED, 5.0)]


def test_durable_orders_commit_a_fill_with_its_order_at_once(open_store: OpenStore) -> None:
    writer, reader = open_store(durable_orders=True), open_store()
    start(writer, "live-1", kind="live")
    order = make_order()
    writer.save_order(order)
    order.apply_fill(10.0, 101.25, 0.5, T0)
    writer.save_fill(make_fill("f1", 10.0), order)
    assert [o["status"] for o in reader.orders("live-1")] == [OrderStatus.FILLED]
    assert len(reader.fills("live-1")) == 1


def test_runs_belong_to_the_store_account(open_store: OpenStore) -> None:
    start(open_store(account="acct-7"), "run-7")
    run = open_store().run("run-7")
    assert run is not None and run["account"] == "acct-7"


def test_risk_snapshots_are_buffered_until_the_state_changes(open_store: OpenStore) -> None:
    writer, reader = open_store(batch_size=1000), open_store()
    first = RiskSnapshot(state=TradingState.ACTIVE, peak_equity=100.0, ts=T0)
    writer.save_risk_state(first)  # the first one of a store: committed at once
    assert reader.load_risk_state() == first
    writer.save_risk_state(replace(first, peak_equity=101.0, ts=T0 + 1000))
    latest = replace(first, peak_equity=102.0, ts=T0 + 2000)
    writer.save_risk_state(latest)
    assert reader.load_risk_state() == first and writer.buffered == 1  # same state: only buffered, once
    writer.flush()
    assert reader.load_risk_state() == latest
    reducing = replace(latest, state=TradingState.REDUCING, reason="daily loss", causes={"daily_loss": "daily loss"},
                       day_start_equity=100.0, day_end_ns=T0 + NANOS_PER_MINUTE, ts=T0 + 3000)
    writer.save_risk_state(reducing)
    assert reader.load_risk_state() == reducing  # a state change: committed at once
    assert open_store(account="other").load_risk_state() is None


def test_learner_state_round_trip(open_store: OpenStore) -> None:
    writer = open_store()
    writer.save_learner_state("AAPL", bytes(range(256)) * 40, T0)
    writer.save_learner_state("MSFT", b"")
    assert writer.buffered == 2
    writer.flush()
    writer.save_learner_state("AAPL", b"v2")
    writer.flush()
    assert open_store().load_learner_states() == {"AAPL": b"v2", "MSFT": b""}
    with pytest.raises(TypeError, match="bytes"):
        writer.save_learner_state("AAPL", "not bytes")  # type: ignore[arg-type]
