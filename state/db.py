"""The database connection of the store: SQLAlchemy engines for SQLite and PostgreSQL, JSON
serialization of JSON columns, and :class:`StoreError` (messages never show a password).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

_PG_CONNECT_TIMEOUT_S = 10


class StoreError(RuntimeError):
    """The store cannot be opened, or a read or write failed; the message names the database URL
    (password masked) and the cause."""


def store_error(what: str, exc: BaseException, *, url: str, masked_url: str, password: str) -> StoreError:
    """Return a :class:`StoreError` for ``exc`` that names ``masked_url`` and never ``password``.

    Parameters
    ----------
    what
        What failed, e.g. ``"flush failed"``.
    exc
        The cause (a driver error's first three lines are kept).
    url, masked_url, password
        The real URL, its masked form and the password, scrubbed from the driver's text.

    Examples
    --------
    >>> str(store_error("read failed", ValueError("bad pw s3cret"), url="u", masked_url="m", password="s3cret"))
    'read failed: m: ValueError: bad pw ***'
    """
    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    text = " ".join(line.strip() for line in cause[:3]) or type(exc).__name__
    text = text.replace(url, masked_url)
    if len(password) >= 3:  # shorter ones would garble the text; they are no secret anyway
        text = text.replace(password, "***").replace(quote(password, safe=""), "***")
    return StoreError(f"{what}: {masked_url}: {type(exc).__name__}: {text}")


# --- JSON columns ------------------------------------------------------------------------------


def _value(item: Any) -> Any:
    return item.value if isinstance(item, Enum) else item


def _json_safe(obj: Any) -> Any:
    """Copy ``obj`` with non-finite floats as ``None`` (JSON has no NaN; PostgreSQL rejects it)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(_value(k)): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Enum):
        return _json_safe(obj.value)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _json_safe(obj.item())
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, PurePath):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps_json(obj: Any) -> str:
    """Serialize run parameters or metrics for a JSON column.

    Non-finite floats become ``null``; enums their value; numpy scalars Python numbers;
    datetimes ISO text; paths text.

    Raises
    ------
    TypeError
        For any other object JSON cannot represent.

    Examples
    --------
    >>> dumps_json({"sharpe": float("nan"), "n": 3})
    '{"sharpe": null, "n": 3}'
    """
    return json.dumps(_json_safe(obj), default=_json_default, allow_nan=False)


# --- engines -----------------------------------------------------------------------------------


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_on_begin): pysqlite's own transaction
    # handling skips DDL, which would make migrations non-atomic.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def create_engine(url: URL) -> Engine:
    """Return an engine for ``url``: SQLite (WAL, foreign keys on) or PostgreSQL (psycopg 3).

    A bare ``postgresql://`` means psycopg 3; an in-memory SQLite database is one shared
    connection (each connection would otherwise see its own empty database).

    Raises
    ------
    sqlalchemy.exc.ArgumentError
        If the backend is neither SQLite nor PostgreSQL.
    """
    backend = url.get_backend_name()
    if backend == "sqlite":
        options: dict[str, Any] = {}
        if url.database in (None, "", ":memory:"):
            options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        engine = sa.create_engine(url, json_serializer=dumps_json, **options)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if backend == "postgresql":
        if "+" not in url.drivername:  # a bare postgresql:// means psycopg 3, whatever SQLAlchemy's default
            url = url.set(drivername="postgresql+psycopg")
        connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": _PG_CONNECT_TIMEOUT_S}
        return sa.create_engine(url, json_serializer=dumps_json, pool_pre_ping=True, connect_args=connect_args)
    raise ArgumentError(f"unsupported database {backend!r}: use sqlite or postgresql+psycopg")


__all__ = ["StoreError", "create_engine", "dumps_json", "store_error"]
