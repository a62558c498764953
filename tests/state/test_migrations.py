"""The Alembic migrations create exactly the tables of ``state.tables`` and drop them again."""

from __future__ import annotations

import io

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from state.migrations import alembic_config
from state.tables import METADATA


def _differences(conn: sa.Connection) -> list:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return compare_metadata(context, METADATA)


def test_single_head() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_heads() == ["0001_initial"]


def test_upgrade_head_matches_metadata_and_downgrade_drops_everything(database_url: str) -> None:
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(connection=conn), "head")
        with engine.connect() as conn:
            assert _differences(conn) == []
            tables = set(sa.inspect(conn).get_table_names())
            assert tables == set(METADATA.tables) | {"alembic_version"}
            assert MigrationContext.configure(conn).get_current_revision() == "0001_initial"

        with engine.begin() as conn:
            command.downgrade(alembic_config(connection=conn), "base")
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            assert set(inspector.get_table_names()) <= {"alembic_version"}
            assert MigrationContext.configure(conn).get_current_revision() is None
            if conn.dialect.name == "postgresql":  # no index or sequence left behind either
                leftovers = conn.execute(sa.text(
                    "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
                    "AND relname NOT LIKE 'alembic_version%'")).scalars().all()
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
