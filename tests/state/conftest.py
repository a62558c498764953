"""Fixtures for the store tests: every test runs against SQLite (a file in ``tmp_path``) and the real
PostgreSQL server.

PostgreSQL is never skipped: when it cannot be reached the PostgreSQL tests fail with a message
saying so (CI must fail, not silently pass). Its URL comes from ``TRADINGD_TEST_POSTGRES_URL``
(default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``). Each test gets a fresh schema
of its own, selected through ``search_path`` in the URL, so tests are isolated and safe under
pytest-xdist; the schema is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from state import SqlStore, StoreConfig, mask_url

POSTGRES_URL = os.environ.get("TRADINGD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    """Engine on the test PostgreSQL server; fails (never skips) when the server is unreachable."""
    engine = sa.create_engine(POSTGRES_URL, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5})
    problem = ""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # pragma: no cover - only when the server is missing
        problem = f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}"
    if problem:  # pragma: no cover
        engine.dispose()
        pytest.fail(f"PostgreSQL at {mask_url(POSTGRES_URL)} is unreachable ({problem}). The state tests "
                    "need a real server (they fail rather than skip): start it or set TRADINGD_TEST_POSTGRES_URL.",
                    pytrace=False)
    yield engine
    engine.dispose()


def _with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """URL of an empty database: a SQLite file, or a fresh PostgreSQL schema of this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    admin: sa.Engine = request.getfixturevalue("postgres_admin")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    schema = f"test_{worker}_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _with_search_path(POSTGRES_URL, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


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
