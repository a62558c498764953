"""Configuration of the store, and the handling of its URL: validation (only what the store can
open), masking of the password wherever a URL is shown, the password from the environment, and
SQLite paths relative to a folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import URL, make_url

SUPPORTED_DRIVERS = {"sqlite": ("", "pysqlite"), "postgresql": ("", "psycopg")}
"""Backends the store opens and their accepted drivers ('' = the backend's bare name)."""

_CREDENTIALS = re.compile(r"(?P<head>:(?!//)).*@")  # from a ':' (not '://') to the last '@'


def mask_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***`` (safe to log or put in errors).

    Works on malformed URLs too: everything from a ``:`` (other than ``://``) to the last ``@``
    is masked then, so an error about a bad URL never leaks a secret (passwords with ``@`` or
    ``/`` must be percent-encoded in a valid URL).

    Examples
    --------
    >>> mask_url("postgresql+psycopg://trader:s3cret@db:5432/tradingd")
    'postgresql+psycopg://trader:***@db:5432/tradingd'
    >>> mask_url("sqlite:///tradingd.db")
    'sqlite:///tradingd.db'
    """
    if url.count("@") <= 1:
        try:
            parsed = make_url(url)
            return url if parsed.password is None else parsed.render_as_string(hide_password=True)
        except Exception:  # not parseable: mask by pattern
            pass
    return _CREDENTIALS.sub(r"\g<head>***@", url)


def url_problem(url: str) -> str | None:
    """Return why the store cannot open ``url`` (the text never contains the password), or None.

    Examples
    --------
    >>> url_problem("postgresql+psycopg://trader:s3cret@db/tradingd") is None
    True
    >>> url_problem("mysql://trader:s3cret@db/tradingd")
    "unsupported database 'mysql': the store opens sqlite:///path.db and postgresql+psycopg://user@host/db"
    """
    try:
        parsed = make_url(url)
    except Exception:
        return "not a database URL: expected sqlite:///path.db or postgresql+psycopg://user@host:5432/db"
    backend, _, driver = parsed.drivername.partition("+")
    supported = "the store opens sqlite:///path.db and postgresql+psycopg://user@host/db"
    if backend not in SUPPORTED_DRIVERS:
        return f"unsupported database {backend!r}: {supported}"
    if driver not in SUPPORTED_DRIVERS[backend]:
        return f"unsupported driver {parsed.drivername!r}: {supported}"
    if backend == "postgresql" and not parsed.database:
        return "no database name: expected postgresql+psycopg://user@host:5432/dbname"
    return None


def sqlite_file(url: str) -> str | None:
    """Return the file of an SQLite ``url`` as written (maybe relative), or None for other
    backends, in-memory databases and ``file:`` URIs."""
    try:
        parsed = make_url(url)
    except Exception:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.query.get("uri") or parsed.database.startswith("file:"):
        return None
    return parsed.database


def resolve_sqlite(url: str, base: Path) -> str:
    """Return ``url`` with a relative SQLite path made absolute against the folder ``base``; any
    other URL unchanged.

    Examples
    --------
    >>> resolve_sqlite("sqlite:///state/tradingd.db", Path("/srv/trading"))
    'sqlite:////srv/trading/state/tradingd.db'
    >>> resolve_sqlite("sqlite:////var/lib/tradingd.db", Path("/srv"))
    'sqlite:////var/lib/tradingd.db'
    """
    database = sqlite_file(url)
    if database is None or Path(database).is_absolute():
        return url
    resolved = make_url(url).set(database=str((base / database).resolve()))
    return resolved.render_as_string(hide_password=False)


def with_password(url: str, password: str) -> str:
    """Return ``url`` with its password set to ``password`` (percent-encoded as needed).

    SQLite URLs have no password and are returned unchanged.

    Examples
    --------
    >>> mask_url(with_password("postgresql+psycopg://trader@db/tradingd", "p@ss/word"))
    'postgresql+psycopg://trader:***@db/tradingd'
    >>> with_password("postgresql+psycopg://trader@db/tradingd", "p@ss").split("@")[0]
    'postgresql+psycopg://trader:p%40ss'
    """
    parsed: URL = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


class StoreConfig(BaseModel):
    """Where and how :class:`state.store.SqlStore` persists.

    Parameters
    ----------
    database_url
        SQLAlchemy URL: ``sqlite:///path/to/file.db`` (a relative path is relative to the working
        directory here; ``daemon.config`` resolves one from ``config.toml`` against the file's
        folder) or ``postgresql+psycopg://user:password@host:5432/dbname`` (a bare
        ``postgresql://`` is read as psycopg 3); :func:`url_problem` says why another URL cannot
        be opened (``daemon.config`` refuses those before anything runs). Keep passwords out of ``config.toml``: the CLI reads
        ``TRADINGD_DATABASE_URL`` / ``TRADINGD_DATABASE_PASSWORD``. ``repr`` masks the password.
    batch_size
        Rows buffered (orders, fills, decisions, trades, equity snapshots together) before the
        store flushes them in one transaction; >= 1. Large for replay, where nothing needs to be
        durable before the end of the run.
    durable_orders
        When true every ``save_order`` commits at once (together with whatever is buffered), so
        the intent is on disk before the broker is called: set it for live trading.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str = "sqlite:///tradingd.db"
    batch_size: int = Field(default=5000, ge=1)
    durable_orders: bool = False

    @field_validator("database_url")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("database_url must not be empty")
        return value.strip()

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (mask_url(value) if name == "database_url" else value)
