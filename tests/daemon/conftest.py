"""Fixtures for the daemon (config + CLI) tests.

Nothing here touches the repository's own ``tradingd.db`` or ``runs/``: every replay gets
``--db sqlite:///<tmp>/...`` (or a fresh PostgreSQL schema) and ``--out <tmp>/...``. Replays use a
small slice of the bundled hourly data (SPY and AAPL, 2019) so the whole folder runs in seconds.

PostgreSQL is never skipped: like ``tests/state/conftest.py`` (whose URL and ``search_path`` trick
are reused), an unreachable server fails the test with a message saying so.
"""

from __future__ import annotations

import gzip
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result
from typer.testing import CliRunner

from daemon.cli import app
from state import mask_url
from tests.state.conftest import POSTGRES_URL, _with_search_path

REPO = Path(__file__).resolve().parents[2]
REPO_CONFIG = REPO / "config.toml"
DATA = REPO / "data" / "us_equity_1hour_adjusted"
SPY = DATA / "SPY.csv.gz"
AAPL = DATA / "AAPL.csv.gz"
SLICE = ("--start", "2019-01-01T00:00:00Z", "--end", "2020-01-01T00:00:00Z")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``cli(*args, **env)`` runs ``tradingd *args`` in-process and returns the click Result
    (``exit_code``, ``stdout``, ``stderr``). A wide terminal keeps help and tables unwrapped."""
    runner = CliRunner()

    def invoke(*args: object, **env: str) -> Result:
        return runner.invoke(app, [str(a) for a in args], prog_name="tradingd",
                             env={"COLUMNS": "200", "TERMINAL_WIDTH": "200", **env})

    return invoke


def spy_rows(year: str = "2019", n: int = 200) -> tuple[str, list[str]]:
    """Header and the first ``n`` raw CSV lines of SPY in ``year`` (real data, for corrupting)."""
    lines = gzip.open(SPY, "rt").read().splitlines()
    return lines[0], [line for line in lines[1:] if line.startswith(f"{year}-")][:n]


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


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
        pytest.fail(f"PostgreSQL at {mask_url(POSTGRES_URL)} is unreachable ({problem}). The CLI tests "
                    "need a real server (they fail rather than skip): start it or set TRADINGD_TEST_POSTGRES_URL.",
                    pytrace=False)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: sa.Engine) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL schema of this test (dropped afterwards)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    schema = f"test_daemon_{worker}_{uuid.uuid4().hex[:12]}"
    with postgres_admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _with_search_path(POSTGRES_URL, schema)
    finally:
        with postgres_admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
