"""Persistence: SQLModel tables, the SQL store (SQLite or PostgreSQL), its Alembic migrations,
recovery of an account's state and the store conformance checks.

Only this package imports SQLModel, SQLAlchemy and Alembic; its table classes never leave it.
:class:`SqlStore` implements :class:`core.ports.Store` and maps rows to ``core`` types or dicts;
:func:`load_restored` turns what a store holds into a :class:`core.recovery.RestoredState`.
"""

from state.config import StoreConfig, mask_url
from state.db import StoreError
from state.memory import MemoryStore
from state.recovery import RecoveryError, load_restored
from state.store import SqlStore

__all__ = ["MemoryStore", "RecoveryError", "SqlStore", "StoreConfig", "StoreError", "load_restored", "mask_url"]
