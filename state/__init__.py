"""Persistence: SQLModel tables, the SQL store (SQLite or PostgreSQL) and its Alembic migrations.

Only this package imports SQLModel, SQLAlchemy and Alembic; its table classes never leave it.
:class:`SqlStore` implements :class:`core.ports.Store` and maps rows to ``core`` types or dicts.
"""

from state.config import StoreConfig, mask_url
from state.store import SqlStore, StoreError

__all__ = ["SqlStore", "StoreConfig", "StoreError", "mask_url"]
