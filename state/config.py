"""Configuration of the store."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import make_url

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


class StoreConfig(BaseModel):
    """Where and how :class:`state.store.SqlStore` persists.

    Parameters
    ----------
    database_url
        SQLAlchemy URL: ``sqlite:///path/to/file.db`` (relative to the working directory) or
        ``postgresql+psycopg://user:password@host:5432/dbname`` (a bare ``postgresql://`` is read
        as psycopg 3). Keep passwords out of ``config.toml``: build the URL from the environment.
        ``repr`` masks the password.
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
