"""The Alembic migrations create exactly the tables of ``state.tables`` and drop them again."""

from __future__ import annotations

import io

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from state.migrations import VERSION_TABLE, alembic_config
from state.tables import METADATA


def _differences(conn: sa.Connection) -> list:
    context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
    return compare_metadata(context, METADATA)


def test_single_head() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_heads() == ["0005_reconciliation"]


def test_upgrade_head_matches_metadata_and_downgrade_drops_everything(database_url: str) -> None:
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(connection=conn), "head")
        with engine.connect() as conn:
            assert _differences(conn) == []
            tables = set(sa.inspect(conn).get_table_names())
            assert tables == set(METADATA.tables) | {"tradingd_schema_version"}
            assert MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision() == "0005_reconciliation"

        with engine.begin() as conn:
            command.downgrade(alembic_config(connection=conn), "base")
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            assert set(inspector.get_table_names()) <= {"tradingd_schema_version"}
            assert MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision() is None
            if conn.dialect.name == "postgresql":  # no index or sequence left behind either
                leftovers = conn.execute(sa.text(
                    "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
                    "AND relname NOT LIKE 'tradingd_schema_version%'")).scalars().all()
                assert leftovers == []

        with engine.begin() as conn:  # and back up again
            command.upgrade(alembic_config(connection=conn), "head")
        with engine.connect() as conn:
            assert _differences(conn) == []
    finally:
        engine.dispose()


def test_offline_sql_renders() -> None:
    buffer = io.StringIO()
    config = alembic_config(url="postgresql+psycopg://u@h/db")
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    sql = buffer.getvalue()
    assert "CREATE TABLE orders" in sql and "BIGSERIAL" in sql


def test_0002_keeps_existing_rows_and_carries_a_halt_into_the_risk_state(database_url: str) -> None:
    from core.enums import TradingState
    from state import SqlStore, StoreConfig, load_restored

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:  # a database written before 0002
            command.upgrade(alembic_config(connection=conn), "0001_initial")
            conn.execute(sa.text("INSERT INTO runs (id, kind, strategy_id, params, config_hash, data_hash, started_at, "
                                 "status) VALUES ('old', 'live', 'sma', '{}', 'c', 'd', '2024-01-02 15:00:00+00', "
                                 "'running')"))
            conn.execute(sa.text("INSERT INTO fills (run_id, client_order_id, fill_id, symbol, side, quantity, price, "
                                 "cum_quantity, commission, ts_event, ts_init) VALUES ('old', 'o1', 'f1', 'AAPL', "
                                 "'buy', 1, 100, 1, 0, '2024-01-02 15:00:00+00', '2024-01-02 15:00:00+00')"))
            conn.execute(sa.text("INSERT INTO trading_state (account, state, reason, updated_at) "
                                 "VALUES ('default', 'halted', 'drawdown 12%', '2024-01-02 16:00:00+00')"))
        with SqlStore(StoreConfig(database_url=database_url)) as store:  # opening upgrades to head
            assert store.run("old") is not None and store.run("old")["account"] == "default"  # type: ignore[index]
            assert [(f["fill_id"], f["slippage"]) for f in store.fills("old")] == [("f1", 0.0)]
            restored = load_restored(store, "default", starting_cash=1_000.0)
        assert restored is not None
        assert (restored.risk.state, restored.risk.reason) == (TradingState.HALTED, "drawdown 12%")

        with engine.begin() as conn:  # downgrading must not cascade-delete the runs' rows
            command.downgrade(alembic_config(connection=conn), "0001_initial")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM fills")).scalar() == 1
            assert conn.execute(sa.text("SELECT id FROM runs")).scalars().all() == ["old"]
    finally:
        engine.dispose()


def test_0003_keeps_runs_and_their_rows_and_never_takes_an_old_running_run_for_stale(database_url: str) -> None:
    from state import SqlStore, StoreConfig

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:  # a database written before 0003, with a run still running
            command.upgrade(alembic_config(connection=conn), "0002_recovery")
            conn.execute(sa.text("INSERT INTO runs (id, account, kind, strategy_id, params, config_hash, data_hash, "
                                 "started_at, status) VALUES ('old', 'old', 'replay', 'sma', '{}', 'c', 'd', "
                                 "'2024-01-02 15:00:00+00', 'running')"))
            conn.execute(sa.text("INSERT INTO fills (run_id, client_order_id, fill_id, symbol, side, quantity, price, "
                                 "cum_quantity, commission, slippage, ts_event, ts_init) VALUES ('old', 'o1', 'f1', "
                                 "'AAPL', 'buy', 1, 100, 1, 0, 0, '2024-01-02 15:00:00+00', '2024-01-02 15:00:00+00')"))
        with SqlStore(StoreConfig(database_url=database_url)) as store:  # opening upgrades to head
            run = store.run("old")
            assert run is not None and run["status"] == "running" and store.stale_runs == []
            assert (run["pid"], run["hostname"], run["note"]) == (None, None, None)
            assert [f["fill_id"] for f in store.fills("old")] == ["f1"]
        with engine.begin() as conn:  # downgrading must not cascade-delete the runs' rows
            command.downgrade(alembic_config(connection=conn), "0002_recovery")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM fills")).scalar() == 1
            assert "pid" not in {c["name"] for c in sa.inspect(conn).get_columns("runs")}
    finally:
        engine.dispose()
