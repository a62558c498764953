"""Fixtures shared by every test folder: real-data slices and a real PostgreSQL schema per test.

PostgreSQL is never skipped: when it cannot be reached, tests that need it fail with a message
saying so (CI must fail, not silently pass). Its URL comes from ``TRADINGD_TEST_POSTGRES_URL``
(default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``). Each test gets a fresh schema of
its own, selected through ``search_path`` in the URL, so tests are isolated and safe under
pytest-xdist; the schema is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from state import mask_url
from tests.support import load_two_symbols

POSTGRES_URL = os.environ.get("TRADINGD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def two_symbols():
    """SPY and AAPL hourly bars, 2018-2019 (real data from the bundled sample)."""
    return load_two_symbols()


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
        pytest.fail(f"PostgreSQL at {mask_url(POSTGRES_URL)} is unreachable ({problem}). These tests need a "
                    "real server (they fail rather than skip): start it or set TRADINGD_TEST_POSTGRES_URL.",
                    pytrace=False)
    yield engine
    engine.dispose()


def with_search_path(url: str, schema: str) -> str:
    """``url`` with ``search_path`` set to ``schema`` for every connection."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def postgres_url(postgres_admin: sa.Engine) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL schema of this test (dropped afterwards)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    schema = f"test_{worker}_{uuid.uuid4().hex[:12]}"
    with postgres_admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield with_search_path(POSTGRES_URL, schema)
    finally:
        with postgres_admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
