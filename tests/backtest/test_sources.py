"""backtest.sources: loading, validation messages (file, line, column, reason), round trips."""

from __future__ import annotations

import gzip
import hashlib
import pickle
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backtest.sources import BarSeries, DataError, load_bars, load_many, write_bars
from core.time import NANOS_PER_DAY, NANOS_PER_HOUR, NANOS_PER_MINUTE, to_nanos

DATA = Path(__file__).resolve().parents[2] / "data" / "us_equity_1hour_adjusted"
HEADER = "timestamp,open,high,low,close,volume"
UTC = timezone.utc


@pytest.fixture(scope="module")
def spy_lines() -> list[str]:
    """Header plus the first 50 real SPY bars (1998-01-02 .. 1998-01-13), as file lines."""
    with gzip.open(DATA / "SPY.csv.gz", "rt") as file:
        return [next(file).rstrip("\n") for _ in range(51)]


def write_lines(tmp_path: Path, lines: list[str], name: str = "SPY.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def edit(lines: list[str], line: int, **fields: str) -> list[str]:
    """Return a copy of ``lines`` with fields of the 1-based file ``line`` replaced."""
    out = list(lines)
    cells = dict(zip(HEADER.split(","), out[line - 1].split(",")))
    cells.update(fields)
    out[line - 1] = ",".join(cells.values())
    return out


def error_of(path: Path, **kwargs) -> DataError:
    with pytest.raises(DataError) as caught:
        load_bars(path, **kwargs)
    return caught.value


# --- one test per kind of malformed input ----------------------------------------------------


def test_unsupported_suffix_names_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "SPY.txt"
    path.write_text(HEADER + "\n")
    message = str(error_of(path))
    assert str(path) in message and ".csv, .csv.gz, .parquet" in message


def test_unreadable_file(tmp_path: Path) -> None:
    message = str(error_of(tmp_path / "missing.csv"))
    assert "missing.csv" in message and "cannot read" in message


def test_missing_column_is_named(tmp_path: Path, spy_lines: list[str]) -> None:
    lines = [",".join(line.split(",")[:5]) for line in spy_lines]  # drop volume
    path = write_lines(tmp_path, lines)
    message = str(error_of(path))
    assert f"{path}:1: missing column(s) 'volume'" in message


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    empty = tmp_path / "A.csv"
    empty.write_text("")
    assert "empty file" in str(error_of(empty)) and str(empty) in str(error_of(empty))
    header_only = write_lines(tmp_path, [HEADER], "B.csv")
    assert f"{header_only}: empty file" in str(error_of(header_only))


def test_unparseable_timestamp(tmp_path: Path, spy_lines: list[str]) -> None:
    path = write_lines(tmp_path, edit(spy_lines, 7, timestamp="yesterday"))
    assert str(error_of(path)) == f"{path}:7: column 'timestamp': cannot parse 'yesterday' as an ISO-8601 timestamp with offset"


def test_naive_timestamp_is_rejected_not_guessed(tmp_path: Path, spy_lines: list[str]) -> None:
    path = write_lines(tmp_path, edit(spy_lines, 4, timestamp="1998-01-02T11:00:00"))
    message = str(error_of(path))
    assert message.startswith(f"{path}:4: column 'timestamp': timestamp '1998-01-02T11:00:00' has no UTC offset")
    assert "never guesses a timezone" in message


@pytest.mark.parametrize("stamp", ["1998-01-02", "19980102"])
def test_date_only_timestamp_is_refused_not_read_as_an_offset(tmp_path: Path, spy_lines: list[str], stamp: str) -> None:
    # "1998-01-02" ends in "-02", which an offset pattern without a time part took for "UTC-2"
    path = write_lines(tmp_path, edit(spy_lines, 4, timestamp=stamp))
    assert str(error_of(path)) == (
        f"{path}:4: column 'timestamp': timestamp {stamp!r} is a date without a time and UTC offset; write the "
        f"bar start in full, e.g. '{stamp}T00:00:00Z' (tradingd never guesses a timezone)")


def test_a_file_of_dates_only_names_every_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path, [HEADER, "2020-01-02,1,1,1,1,1", "2020-01-03,1,1,1,1,1"])
    error = error_of(path)
    assert error.total == 2 and [p.split(": ")[0] for p in error.problems] == [f"{path}:2", f"{path}:3"]


def test_timeframe_shorter_than_the_bar_spacing_is_refused(tmp_path: Path, spy_lines: list[str]) -> None:
    path = write_lines(tmp_path, spy_lines)  # hourly bars
    message = str(error_of(path, timeframe="30min"))
    assert message == (f"{path}: timeframe 30min is shorter than the spacing of its bars (1h, the most frequent "
                       "step): every bar would be released before it closed; use 1h or leave the timeframe out "
                       "to infer it")
    assert load_bars(path, timeframe="1h").timeframe_ns == NANOS_PER_HOUR


def test_sub_second_bars_are_refused_with_a_reason(tmp_path: Path) -> None:
    rows = [f"2020-01-02T00:00:0{i // 2}.{5 * (i % 2)}Z,1,1,1,1,1" for i in range(4)]  # 0.5 s apart
    path = write_lines(tmp_path, [HEADER, *rows])
    assert str(error_of(path)) == (f"{path}: bars 0.5 s long: tradingd needs whole seconds (at least 1 s) "
                                   "(the most frequent step between bars)")


def test_bars_released_after_2262_are_refused_not_overflowed(tmp_path: Path) -> None:
    rows = [f"2262-04-11T2{h}:00:00Z,1,1,1,1,1" for h in range(4)]  # the last one ends after 23:47:16
    path = write_lines(tmp_path, [HEADER, *rows])
    assert str(error_of(path)) == (
        f"{path}:5: column 'timestamp': the bar starting 2262-04-11T23:00:00Z ends (1h later) after "
        "2262-04-11T23:47:16Z, the last instant tradingd can represent (int64 ns)")


def test_a_timeframe_of_a_million_days_is_refused_before_any_arithmetic(tmp_path: Path, spy_lines: list[str]) -> None:
    path = write_lines(tmp_path, spy_lines)
    assert str(error_of(path, timeframe="1000000d")) == (
        f"{path}: timeframe: bars 1,000,000 days long: the longest timeframe is 366d")


# (line, column edits, expected message after "<file>:"). SPY's real line 5 is
# 1998-01-02T12:00:00-05:00,63.696078,63.840544,63.696078,63.781444,162200
MALFORMED_CELLS = [
    (9, {"timestamp": ""}, "9: column 'timestamp': empty timestamp"),
    (3, {"open": "abc"}, "3: column 'open': cannot parse 'abc' as a number"),
    (12, {"volume": ""}, "12: column 'volume': empty value"),
    (5, {"close": "nan"}, "5: column 'close': value 'nan' is not finite"),
    (5, {"close": "NaN"}, "5: column 'close': value 'NaN' is not finite"),
    (5, {"close": "inf"}, "5: column 'close': value 'inf' is not finite"),
    (5, {"close": "-inf"}, "5: column 'close': value '-inf' is not finite"),
    (6, {"volume": "-100"}, "6: column 'volume': volume -100.0 is negative"),
    (5, {"high": "63.7"}, "5: column 'high': high 63.7 is below max(open, close) 63.781444"),
    (5, {"low": "63.75"}, "5: column 'low': low 63.75 is above min(open, close) 63.696078"),
]


@pytest.mark.parametrize("line, edits, expected", MALFORMED_CELLS)
def test_malformed_cell_is_reported_with_file_line_column_and_reason(tmp_path: Path, spy_lines: list[str],
                                                                     line: int, edits: dict, expected: str) -> None:
    path = write_lines(tmp_path, edit(spy_lines, line, **edits))
    assert str(error_of(path)) == f"{path}:{expected}"


@pytest.mark.parametrize("value", ["0", "-1.5"])
def test_price_not_positive(tmp_path: Path, value: str) -> None:
    path = write_lines(tmp_path, [HEADER, "2020-01-02T14:00:00Z,10,11,9,10,5", f"2020-01-02T15:00:00Z,10,11,{value},10,5"])
    error = error_of(path)
    assert f"{path}:3: column 'low': price {float(value)!r} is not positive" in error.problems


def test_high_below_low(tmp_path: Path) -> None:
    path = write_lines(tmp_path, [HEADER, "2020-01-02T14:00:00Z,10,9,11,10,5", "2020-01-02T15:00:00Z,10,11,9,10,5"])
    assert f"{path}:2: column 'high': high 9.0 is below low 11.0" in error_of(path).problems


def test_duplicate_timestamp_names_both_lines(tmp_path: Path, spy_lines: list[str]) -> None:
    lines = edit(spy_lines, 11, timestamp=spy_lines[9].split(",")[0])
    path = write_lines(tmp_path, lines)
    message = str(error_of(path))
    assert message == f"{path}:11: column 'timestamp': duplicate timestamp '1998-01-05T10:00:00-05:00', same as line 10"


def test_backwards_timestamp_names_both_lines(tmp_path: Path, spy_lines: list[str]) -> None:
    lines = list(spy_lines)
    lines[20], lines[21] = lines[21], lines[20]  # swap file lines 21 and 22
    path = write_lines(tmp_path, lines)
    message = str(error_of(path))
    assert message.startswith(f"{path}:22: column 'timestamp': timestamp '{spy_lines[20].split(',')[0]}' is earlier than")
    assert message.endswith("on line 21 (out of order)")


def test_same_instant_in_different_offsets_is_a_duplicate(tmp_path: Path) -> None:
    path = write_lines(tmp_path, [HEADER, "2020-01-02T14:00:00Z,10,11,9,10,5", "2020-01-02T09:00:00-05:00,10,11,9,10,5"])
    assert "same as line 2" in str(error_of(path))


def test_wrong_field_count(tmp_path: Path, spy_lines: list[str]) -> None:
    lines = list(spy_lines)
    lines[7] += ",extra"
    path = write_lines(tmp_path, lines)
    assert str(error_of(path)) == f"{path}:8: expected 6 fields like the header, saw 7"


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "SPY.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    assert str(path) in str(error_of(path))


def test_many_problems_collected_into_one_error(tmp_path: Path, spy_lines: list[str]) -> None:
    lines = list(spy_lines)
    for line in range(2, 27):  # 25 bad volumes on lines 2..26
        lines = edit(lines, line, volume="-1")
    lines = edit(lines, 30, open="oops")
    error = error_of(write_lines(tmp_path, lines))
    assert error.total == 26 and len(error.problems) == 20
    assert str(error).startswith("26 problems, first 20 shown:")
    assert error.problems[0].endswith(":2: column 'volume': volume -1.0 is negative")
    assert error.problems[-1].endswith(":21: column 'volume': volume -1.0 is negative")  # file order
    again = pickle.loads(pickle.dumps(error))
    assert again.problems == error.problems and again.total == 26 and isinstance(again, ValueError)


def test_single_row_needs_explicit_timeframe(tmp_path: Path, spy_lines: list[str]) -> None:
    path = write_lines(tmp_path, spy_lines[:2])
    assert "cannot infer the timeframe" in str(error_of(path))
    assert load_bars(path, timeframe="1h").timeframe_ns == NANOS_PER_HOUR


def test_blank_lines_are_skipped_and_line_numbers_kept(tmp_path: Path, spy_lines: list[str]) -> None:
    lines = spy_lines[:4] + [""] + spy_lines[4:10]
    assert len(load_bars(write_lines(tmp_path, lines))) == 9
    bad = edit(lines, 8, open="x")
    path = write_lines(tmp_path, bad)
    assert str(error_of(path)) == f"{path}:8: column 'open': cannot parse 'x' as a number"


def test_parquet_naive_timestamps_rejected(tmp_path: Path) -> None:
    path = tmp_path / "SPY.parquet"
    stamps = pa.array(np.array([0, NANOS_PER_HOUR], dtype="datetime64[ns]"))
    prices = [1.0, 1.0]
    pq.write_table(pa.table({"timestamp": stamps, "open": prices, "high": prices, "low": prices,
                             "close": prices, "volume": prices}), path)
    message = str(error_of(path))
    assert f"{path}:row 1: column 'timestamp': timezone-naive" in message


def test_parquet_problem_names_the_row(tmp_path: Path, spy_lines: list[str]) -> None:
    good = load_bars(write_lines(tmp_path, spy_lines))
    high = good.high.copy()
    high[6] = good.low[6] - 1  # row 7 (1-based)
    bad = BarSeries("SPY", good.timeframe_ns, good.ts_event, good.open, high, good.low, good.close, good.volume)
    path = tmp_path / "SPY.parquet"
    write_bars(bad, path)
    problems = error_of(path).problems
    assert any(p.startswith(f"{path}:row 7: column 'high': high ") for p in problems)


# --- good files -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_round_trip_is_exact(tmp_path: Path, suffix: str) -> None:
    start, end = datetime(2008, 9, 1, tzinfo=UTC), datetime(2008, 11, 1, tzinfo=UTC)
    original = load_bars(DATA / "BAC.csv.gz", start=start, end=end)
    path = tmp_path / f"BAC{suffix}"
    write_bars(original, path)
    again = load_bars(path)
    assert again.symbol == "BAC" and again.timeframe_ns == original.timeframe_ns
    for name in ("ts_event", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(again, name), getattr(original, name))
    assert again.source == str(path)
    assert again.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_written_csv_has_the_documented_format(tmp_path: Path) -> None:
    series = BarSeries("X", NANOS_PER_MINUTE, [0, NANOS_PER_MINUTE + 1_000_000], [1.5] * 2, [2.0] * 2, [1.0] * 2,
                       [1.25] * 2, [100.0, 0.0])
    path = tmp_path / "X.csv"
    write_bars(series, path)
    assert path.read_text().splitlines() == [
        HEADER,
        "1970-01-01T00:00:00.000Z,1.5,2,1,1.25,100",
        "1970-01-01T00:01:00.001Z,1.5,2,1,1.25,0",
    ]
    gz = tmp_path / "X.csv.gz"
    write_bars(series, gz)
    first = gz.read_bytes()
    write_bars(series, gz)
    assert gz.read_bytes() == first  # reproducible bytes -> stable data hashes


def test_timestamps_with_offsets_become_utc_ns(tmp_path: Path, spy_lines: list[str]) -> None:
    series = load_bars(write_lines(tmp_path, spy_lines))
    assert int(series.ts_event[0]) == to_nanos(datetime(1998, 1, 2, 14, 0, tzinfo=UTC))  # 09:00-05:00
    assert series.ts_event.dtype == np.int64 and series.close.dtype == np.float64
    assert series.close[0] == 63.715778 and series.volume[0] == 384500.0


def test_columns_case_insensitive_and_extras_ignored(tmp_path: Path) -> None:
    lines = ["Volume,Timestamp,OPEN,High,Low,Close,Note", "5,2020-01-02T14:00:00Z,10,11,9,10,a",
             "6,2020-01-02T15:00:00Z,10,12,9,11,b"]
    series = load_bars(write_lines(tmp_path, lines))
    assert series.volume.tolist() == [5.0, 6.0] and series.high.tolist() == [11.0, 12.0]


def test_symbol_from_file_name_or_argument(tmp_path: Path, spy_lines: list[str]) -> None:
    path = tmp_path / "BRK.B.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(spy_lines) + "\n").encode()))
    assert load_bars(path).symbol == "BRK"  # stem before the first dot
    assert load_bars(path, symbol="BRK.B").symbol == "BRK.B"


def test_timeframe_inferred_across_overnight_gaps(spy_lines: list[str], tmp_path: Path) -> None:
    # 50 hourly bars over 8 sessions: steps of 1h, plus overnight (18h) and weekend (66h) gaps
    series = load_bars(write_lines(tmp_path, spy_lines))
    assert series.timeframe_ns == NANOS_PER_HOUR
    np.testing.assert_array_equal(series.ts_init, series.ts_event + NANOS_PER_HOUR)
    assert load_bars(write_lines(tmp_path, spy_lines), timeframe="2h").timeframe_ns == 2 * NANOS_PER_HOUR
    with pytest.raises(ValueError, match="invalid timeframe"):
        load_bars(write_lines(tmp_path, spy_lines), timeframe="hourly")


def test_start_inclusive_end_exclusive(tmp_path: Path, spy_lines: list[str]) -> None:
    path = write_lines(tmp_path, spy_lines)
    start = datetime.fromisoformat("1998-01-05T09:00:00-05:00")  # 8th bar
    end = datetime.fromisoformat("1998-01-06T09:00:00-05:00")  # 15th bar
    series = load_bars(path, start=start, end=end)
    assert len(series) == 7
    assert int(series.ts_event[0]) == to_nanos(start)
    assert int(series.ts_event[-1]) == to_nanos(end) - 18 * NANOS_PER_HOUR  # 15:00 the day before
    assert series.timeframe_ns == NANOS_PER_HOUR  # inferred from the whole file, before filtering
    assert len(load_bars(path, start=datetime(2030, 1, 1, tzinfo=UTC))) == 0
    with pytest.raises(ValueError, match="naive"):
        load_bars(path, start=datetime(1998, 1, 5))


def test_validation_runs_before_filtering(tmp_path: Path, spy_lines: list[str]) -> None:
    path = write_lines(tmp_path, edit(spy_lines, 50, volume="-1"))
    with pytest.raises(DataError, match=":50: "):
        load_bars(path, end=datetime(1998, 1, 3, tzinfo=UTC))


def test_load_many_rejects_duplicate_symbols(tmp_path: Path, spy_lines: list[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_lines(tmp_path / "a", spy_lines, "SPY.csv")
    second = write_lines(tmp_path / "b", spy_lines, "spy.csv")
    assert [s.symbol for s in load_many([first, second])] == ["SPY", "spy"]  # symbols are case-sensitive
    third = write_lines(tmp_path / "b", spy_lines, "SPY.csv")
    with pytest.raises(DataError) as caught:
        load_many([first, third])
    assert str(first) in str(caught.value) and str(third) in str(caught.value) and "'SPY'" in str(caught.value)


def test_load_many_rejects_mixed_timeframes(tmp_path: Path, spy_lines: list[str]) -> None:
    hourly = write_lines(tmp_path, spy_lines, "SPY.csv")
    days = np.arange(5, dtype=np.int64) * NANOS_PER_DAY
    daily = tmp_path / "IBM.csv"
    write_bars(BarSeries("IBM", NANOS_PER_DAY, days, [1.0] * 5, [1.0] * 5, [1.0] * 5, [1.0] * 5, [1.0] * 5), daily)
    with pytest.raises(DataError) as caught:
        load_many([hourly, daily])
    message = str(caught.value)
    assert str(hourly) in message and "1h" in message and str(daily) in message and "1d" in message
    assert len(load_many([hourly, daily], timeframe="1d")) == 2  # an explicit timeframe applies to all


def test_bar_series_is_immutable_and_checked() -> None:
    ts = np.array([0, 1], dtype=np.int64)
    mine = np.array([1.0, 2.0])
    series = BarSeries("X", 1, ts, mine, mine, mine, mine, mine)
    mine[0] = 99.0  # the caller's array stays theirs
    assert series.open[0] == 1.0
    with pytest.raises(ValueError):
        series.open[0] = 5.0
    with pytest.raises(ValueError, match="timeframe_ns"):
        BarSeries("X", 0, ts, mine, mine, mine, mine, mine)
    with pytest.raises(ValueError, match="high"):
        BarSeries("X", 1, ts, mine, mine[:1], mine, mine, mine)
    assert len(series) == 2 and "2 bars" in repr(series)


def test_parquet_text_timestamps_and_null_values(tmp_path: Path) -> None:
    path = tmp_path / "X.parquet"
    stamps = ["2020-01-02T09:00:00-05:00", "2020-01-02T15:00:00Z", "2020-01-02T16:00:00Z"]
    pq.write_table(pa.table({"Timestamp": stamps, "open": [10.0, 10.0, 10.0], "high": [11, 11, 11],
                             "low": [9.0, 9.0, 9.0], "close": [10.0, 10.0, 10.0], "volume": [1.0, None, 2.0]}), path)
    assert str(error_of(path)) == f"{path}:row 2: column 'volume': empty value"
    pq.write_table(pa.table({"Timestamp": stamps, "open": [10.0] * 3, "high": [11] * 3, "low": [9.0] * 3,
                             "close": [10.0] * 3, "volume": [1.0] * 3}), path)
    series = load_bars(path)
    assert series.ts_event.tolist() == [to_nanos(datetime(2020, 1, 2, 14 + k, tzinfo=UTC)) for k in range(3)]
    assert series.high.dtype == np.float64 and series.timeframe_ns == NANOS_PER_HOUR
