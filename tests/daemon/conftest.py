"""Fixtures for the daemon (config + CLI) tests.

Nothing here touches the repository's own ``tradingd.db`` or ``runs/``: every replay gets
``--db sqlite:///<tmp>/...`` (or a fresh PostgreSQL schema) and ``--out <tmp>/...``. Replays use a
small slice of the bundled hourly data (SPY and AAPL, 2019) so the whole folder runs in seconds.

PostgreSQL comes from the shared ``postgres_url`` fixture (tests/conftest.py), never skipped.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from click.testing import Result
from typer.testing import CliRunner
from typer.testing import Result as CliResult

from daemon.cli import app

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


def invoke(*args: object, **env: str) -> CliResult:
    """Run ``tradingd *args`` in-process, as :func:`cli` does, where a fixture of wider scope than a
    test needs it."""
    return CliRunner().invoke(app, [str(a) for a in args], prog_name="tradingd",
                              env={"COLUMNS": "200", "TERMINAL_WIDTH": "200", **env})


class Replayed(NamedTuple):
    """A finished replay: its output folder, its run id and the state database holding it."""

    folder: Path
    run_id: str
    db: str


def replay_into(out: Path, db: str, *args: object) -> Replayed:
    """``tradingd replay *args --out out --db db --no-progress``, which must succeed."""
    result = invoke("replay", *args, "--out", out, "--db", db, "--no-progress")
    assert result.exit_code == 0, result.output
    return Replayed(out, json.loads((out / "metrics.json").read_text())["run"]["run_id"], db)
