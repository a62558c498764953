"""Alembic environment of the store, configured in code (no ``alembic.ini`` needed).

``env.py`` uses the connection handed over in ``Config.attributes["connection"]`` when there is
one (that is how :class:`state.store.SqlStore` migrates on open, inside its own transaction), and
otherwise builds an engine from the ``sqlalchemy.url`` main option, e.g. for the command line::

    python -c "from state.migrations import alembic_config; from alembic import command; \\
               command.upgrade(alembic_config(url='sqlite:///tradingd.db'), 'head')"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.config import Config

SCRIPT_LOCATION = str(Path(__file__).resolve().parent)
"""Directory holding ``env.py``, ``script.py.mako`` and ``versions/``."""
VERSION_TABLE = "tradingd_schema_version"
"""Where the store's Alembic revision is kept. Not Alembic's default ``alembic_version``: Optuna
keeps its own schema revision there, and the studies of ``tradingd optimize`` live in the same
database (each would take the other's revision for its own)."""
LEGACY_VERSION_TABLE = "alembic_version"
"""Where databases made before 0005 keep the store's revision (moved on the next open)."""


def adopt_legacy_version(connection: Any) -> bool:
    """Move the store's revision out of ``alembic_version`` into :data:`VERSION_TABLE` (databases
    made before 0005); return True if it moved. A revision there that is not one of the store's
    (Optuna's) is left alone."""
    import sqlalchemy as sa

    inspector = sa.inspect(connection)
    tables = set(inspector.get_table_names())
    if LEGACY_VERSION_TABLE not in tables or VERSION_TABLE in tables:
        return False
    ours = {p.stem for p in (Path(SCRIPT_LOCATION) / "versions").glob("0*.py")}
    rows = connection.execute(sa.text(f"SELECT version_num FROM {LEGACY_VERSION_TABLE}")).scalars().all()
    mine = [r for r in rows if r in ours]
    if not mine:
        return False
    connection.execute(sa.text(f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
                               f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"))
    for revision in mine:
        connection.execute(sa.text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:r)"), {"r": revision})
        connection.execute(sa.text(f"DELETE FROM {LEGACY_VERSION_TABLE} WHERE version_num = :r"), {"r": revision})
    if len(mine) == len(rows):
        connection.execute(sa.text(f"DROP TABLE {LEGACY_VERSION_TABLE}"))
    return True


def alembic_config(*, connection: Any = None, url: str | None = None) -> Config:
    """Return an Alembic :class:`~alembic.config.Config` for the store's migrations.

    Parameters
    ----------
    connection
        An open :class:`sqlalchemy.engine.Connection` the migrations run on (inside the caller's
        transaction); takes precedence over ``url``.
    url
        Database URL used when no connection is given (``env.py`` then creates its own engine).

    Returns
    -------
    alembic.config.Config
        A configuration pointing at :data:`SCRIPT_LOCATION`; no file is read.
    """
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


__all__ = ["LEGACY_VERSION_TABLE", "SCRIPT_LOCATION", "VERSION_TABLE", "adopt_legacy_version", "alembic_config"]
