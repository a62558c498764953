"""backtest.sources: the streaming pyarrow path for clean CSV files reads what pandas reads.

Clean files (the usual case) stream through pyarrow in blocks; anything else goes through the
pandas parser as before. Which path read a file must never change a value, a timeframe or a
message, so a replay gives the same result whichever reader ran.
"""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backtest.sources as sources
from backtest.sources import DataError, load_bars

HEADER = "timestamp,open,high,low,close,volume"


def pandas_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_read_clean_csv", lambda data, gz: None)


def same_series(a, b) -> bool:
    return (a.symbol == b.symbol and a.timeframe_ns == b.timeframe_ns and a.sha256 == b.sha256
            and all(getattr(a, c).tobytes() == getattr(b, c).tobytes()
                    for c in ("ts_event", "open", "high", "low", "close", "volume")))


stamps = st.tuples(
    st.datetimes(min_value=datetime(1678, 1, 1), max_value=datetime(2261, 12, 31)),
    st.integers(0, 999_999_999),  # ns fraction
    st.sampled_from([0, 1, 3, 6, 9]),  # digits written
    st.one_of(st.just("Z"), st.integers(-14 * 60, 14 * 60).map(lambda m: f"{'+' if m >= 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}")),
    st.sampled_from(["T", " "]),
)


def text_of(stamp: tuple[datetime, int, int, str, str]) -> str:
    moment, fraction, digits, offset, sep = stamp
    body = moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    if digits:
        body += "." + f"{fraction:09d}"[:digits]
    return body + offset


@settings(max_examples=60, deadline=None)
@given(values=st.lists(stamps, min_size=1, max_size=50, unique_by=lambda s: s[0]))
def test_canonical_timestamps_are_read_as_pandas_reads_them(values) -> None:
    texts = [text_of(v) for v in values]
    ns = pd.to_datetime(pd.Series(texts), format="ISO8601", utc=True).dt.as_unit("ns")
    # the file must be in time order; the values themselves are arbitrary canonical stamps
    order = np.argsort(ns.dt.tz_localize(None).to_numpy().view(np.int64), kind="stable")
    rows = [texts[i] for i in order]
    expected = np.sort(ns.dt.tz_localize(None).to_numpy().view(np.int64))
    if len(rows) > 1 and (np.diff(expected) <= 0).any():
        return  # two texts for the same instant: a duplicate, not what this test is about
    data = (HEADER + "\n" + "".join(f"{t},1,1,1,1,1\n" for t in rows)).encode()
    read = sources._read_clean_csv(data, gz=False)
    assert read is not None  # canonical: the streaming path read it
    assert read[0].tolist() == expected.tolist()


def write_gz(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt") as sink:
        sink.write("\n".join(lines) + "\n")
    return path


def minute_lines(n: int, start: datetime = datetime(2020, 1, 1, 14, 30, tzinfo=timezone.utc), *,
                 offset: str = "-05:00") -> list[str]:
    rng = np.random.default_rng(n)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    lines = [HEADER]
    for i, c in enumerate(close.tolist()):
        local = start + timedelta(minutes=i) - timedelta(hours=5)
        lines.append(f"{local:%Y-%m-%dT%H:%M:%S}{offset},{c:.4f},{c * 1.001:.4f},{c * 0.999:.4f},{c:.4f},{i % 977}")
    return lines


def test_a_clean_file_of_many_blocks_reads_the_same_through_both_paths(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_BLOCK_BYTES", 4096)  # ~60 blocks
    path = write_gz(tmp_path / "SPY.csv.gz", minute_lines(4000))
    fast = load_bars(path)
    pandas_only(monkeypatch)
    assert same_series(fast, load_bars(path))


@pytest.mark.parametrize("lines, why", [
    (["Timestamp,Open,High,Low,Close,Volume,extra", "2020-01-02T09:30-05:00,1,1,1,1,1,x",
      "2020-01-02T09:31-05:00,1,1,1,1,1,y"], "no seconds"),
    ([HEADER, "2020-01-02T09:30:00+0000,1,1,1,1,1", "2020-01-02T09:31:00+0000,1,1,1,1,1"], "offset without colon"),
    ([HEADER, "2020-01-02T09:30:00Z, 1.5,2,1,1.5,1", "2020-01-02T09:31:00Z,1.5,2,1,1.5,1"], "a space before a number"),
    ([HEADER, '"2020-01-02T09:30:00Z","1.5",2,1,1.5,1', "2020-01-02T09:31:00Z,1.5,2,1,1.5,1"], "quoted cells"),
    ([f"\ufeff{HEADER}", "2020-01-02T09:30:00Z,1,1,1,1,1", "2020-01-02T09:31:00Z,1,1,1,1,1"], "byte order mark"),
    ([HEADER, "2020-01-02T09:30:00Z,1,1,1,1,1", "", "2020-01-02T09:31:00Z,1,1,1,1,1"], "a blank line"),
])
def test_valid_files_the_streaming_path_leaves_to_pandas_read_as_before(tmp_path: Path, lines: list[str], why: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "X.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    got = load_bars(path)
    pandas_only(monkeypatch)
    assert same_series(got, load_bars(path)), why


@pytest.mark.parametrize("edit", [
    lambda lines: lines[:3] + [lines[2]] + lines[3:],  # duplicate timestamp
    lambda lines: lines[:2] + [lines[3], lines[2]] + lines[4:],  # out of order
    lambda lines: [lines[0], lines[1].replace(",", ",-", 1)] + lines[2:],  # a negative price
    lambda lines: lines[:4] + [""] + lines[4:6] + [lines[5]] + lines[6:],  # a blank line, then a duplicate
    lambda lines: lines[:4] + [lines[4].replace("-05:00", "")] + lines[5:],  # a naive timestamp
    lambda lines: lines[:4] + [lines[4] + ",7"] + lines[5:],  # a field too many
])
def test_bad_files_are_reported_with_the_same_message_by_either_path(tmp_path: Path, edit,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_gz(tmp_path / "SPY.csv.gz", edit(minute_lines(30)))
    with pytest.raises(DataError) as fast:
        load_bars(path)
    pandas_only(monkeypatch)
    with pytest.raises(DataError) as slow:
        load_bars(path)
    assert str(fast.value) == str(slow.value)
    assert "SPY.csv.gz:" in str(fast.value)
