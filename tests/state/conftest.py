"""Fixtures for the store tests: every test runs against SQLite (a file in ``tmp_path``) and the real
PostgreSQL server.

PostgreSQL comes from the shared ``postgres_url`` fixture (tests/conftest.py): a fresh schema per
test on the real server, never skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from state import SqlStore, StoreConfig

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """URL of an empty database: a SQLite file, or a fresh PostgreSQL schema of this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    yield request.getfixturevalue("postgres_url")


@pytest.fixture
def backend(database_url: str) -> str:
    """``"sqlite"`` or ``"postgresql"``."""
    return sa.engine.make_url(database_url).get_backend_name()


@pytest.fixture
def open_store(database_url: str) -> Iterator[Callable[..., SqlStore]]:
    """Factory ``open_store(account="default", **config)`` of stores on this test's database;
    every store it opened is closed at teardown."""
    opened: list[SqlStore] = []

    def factory(account: str = "default", **config: object) -> SqlStore:
        store = SqlStore(StoreConfig(database_url=database_url, **config), account=account)
        opened.append(store)
        return store

    yield factory
    errors = []
    for store in opened:
        try:
            store.close()
        except Exception as exc:  # close the others anyway, then report
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def store(open_store: Callable[..., SqlStore]) -> SqlStore:
    """A store with a large batch size (nothing written before ``flush``)."""
    return open_store(batch_size=100_000)
