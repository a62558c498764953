"""research.output: the bulk CSV writer writes exactly what pandas' ``to_csv`` wrote before it.

Users diff and parse these files (and the determinism tests compare their bytes), so the faster
writer must not change a single byte: float repr, empty cells for NaN/NaT/None, quoting of
commas, quotes and newlines, ISO-8601 UTC times, a frame longer than one chunk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import research.output as output
from research.output import _ISO, _write_csv


def pandas_csv(frame: pd.DataFrame, path: Path) -> bytes:
    frame = frame.copy()
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            frame[name] = frame[name].dt.strftime(_ISO)
    frame.to_csv(path, index=False)
    return path.read_bytes()


floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0.0, -0.0, 1e16, 1e-5, 0.1, 100000.0, 123456789.123]))
texts = st.one_of(st.none(), st.text(alphabet=st.sampled_from('ab,"\n\r x;-1.5'), max_size=6))
stamps = st.one_of(st.none(), st.integers(0, 2**62))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(floats, floats, st.integers(-10**12, 10**12), st.booleans(), texts, stamps),
                     min_size=0, max_size=40))
def test_random_frames_are_written_byte_for_byte_as_pandas_writes_them(rows, tmp_path: Path) -> None:
    frame = pd.DataFrame(rows, columns=["a", "b", "n", "flag", "text", "time"])
    frame["a"] = frame["a"].astype(float)
    frame["b"] = frame["b"].astype(float)
    frame["n"] = frame["n"].astype("int64")
    frame["flag"] = frame["flag"].astype(bool)
    frame["time"] = pd.to_datetime(pd.array(list(frame["time"]), dtype="Int64"), unit="ns", utc=True)
    ours = tmp_path / "ours.csv"
    _write_csv(frame, ours)
    assert ours.read_bytes() == pandas_csv(frame, tmp_path / "pandas.csv")


def test_extra_columns_and_many_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "_CSV_CHUNK_ROWS", 7)  # 100 rows: 15 chunks
    rng = np.random.default_rng(5)
    n = 100
    values = np.where(rng.random(n) < 0.5, 100_000.0, rng.normal(1e5, 10.0, n))  # runs of repeated values
    values[3] = -0.0
    values[4] = 0.0
    values[50] = np.nan
    frame = pd.DataFrame({"time": pd.to_datetime(1_577_836_800_000_000_000 + np.arange(n) * 60_123_456_789,
                                                 unit="ns", utc=True), "equity": values})
    extra = {"benchmark": rng.normal(1e5, 1.0, n)}
    ours = tmp_path / "ours.csv"
    _write_csv(frame, ours, extra)
    expected = pandas_csv(frame.assign(**extra), tmp_path / "pandas.csv")
    assert ours.read_bytes() == expected
    assert b",-0.0," in expected and b"Z,," in expected  # -0.0 and an empty NaN cell were exercised


def test_a_one_column_frame_goes_through_pandas(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": ["", "a", None]})  # the csv module quotes a lone empty field
    ours = tmp_path / "ours.csv"
    _write_csv(frame, ours)
    assert ours.read_bytes() == pandas_csv(frame, tmp_path / "pandas.csv")
