"""The bundled sample in data/ is intact (sha256, rows, span per MANIFEST.csv) and loads cleanly."""

from __future__ import annotations

import csv
import gzip
import hashlib
from datetime import datetime
from pathlib import Path

import pytest

from backtest.sources import load_bars
from core.time import NANOS_PER_HOUR, to_nanos

DATA = Path(__file__).resolve().parent.parent / "data"
with open(DATA / "MANIFEST.csv", newline="") as _file:
    MANIFEST = list(csv.DictReader(_file))


def test_manifest_lists_exactly_the_bundled_files() -> None:
    listed = sorted(row["path"] for row in MANIFEST)
    present = sorted(path.relative_to(DATA).as_posix() for path in DATA.rglob("*.csv.gz"))
    assert listed == present
    assert len(listed) == 7  # 5 hourly equities, hourly bitcoin, daily IEF


@pytest.mark.parametrize("row", MANIFEST, ids=[row["symbol"] for row in MANIFEST])
def test_bundled_file_matches_manifest(row: dict[str, str]) -> None:
    path = DATA / row["path"]
    raw = path.read_bytes()
    assert len(raw) == int(row["bytes"])
    assert hashlib.sha256(raw).hexdigest() == row["sha256"]
    lines = gzip.decompress(raw).decode().splitlines()
    assert lines[0] == "timestamp,open,high,low,close,volume"
    assert len(lines) - 1 == int(row["rows"])


@pytest.mark.parametrize("row", MANIFEST, ids=[row["symbol"] for row in MANIFEST])
def test_bundled_file_loads(row: dict[str, str]) -> None:
    series = load_bars(DATA / row["path"])
    assert series.symbol == row["symbol"]
    assert len(series) == int(row["rows"])
    assert series.timeframe_ns == (24 * NANOS_PER_HOUR if "daily" in row["dataset"] else NANOS_PER_HOUR)
    assert series.sha256 == row["sha256"]
    assert int(series.ts_event[0]) == to_nanos(datetime.fromisoformat(row["first_bar_start"]))
    assert int(series.ts_event[-1]) == to_nanos(datetime.fromisoformat(row["last_bar_start"]))
