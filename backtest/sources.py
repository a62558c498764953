"""Historical OHLCV bar files -> validated, immutable :class:`BarSeries` of numpy columns.

Formats: CSV (``.csv``), gzip CSV (``.csv.gz``) and Parquet (``.parquet``), each with the columns
``timestamp, open, high, low, close, volume`` (see ``data/README.md``). Bars are labelled by their
START; a series knows its timeframe, so each bar's release time ``ts_init`` = start + timeframe.

Every problem is reported as ``<file>:<line>: column '<name>': <reason>`` (CSV: header = line 1;
Parquet: ``<file>:row <n>``, 1-based), and all problems of a file come in one :class:`DataError`,
so a bad file is fixed in one pass rather than one error per run.

Speed and memory: a clean CSV (every number parses, every timestamp is canonical ISO-8601:
``YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm)``) streams through pyarrow's CSV reader in blocks of
about 1 MiB, its timestamps parsed by Arrow, so loading needs little more memory than the
columns it returns (1M one-minute bars of gzip CSV: about 0.5 s). Any other file goes through
pandas' typed C parser (exotic but valid timestamp spellings included) and, when a cell fails to
parse, is re-read as text to say exactly what is wrong where. Both paths return the same values
and report problems with the same messages.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from datetime import datetime
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from core.time import NANOS_PER_DAY, NANOS_PER_SECOND, format_timeframe, iso, parse_timeframe, to_nanos

__all__ = ["LAST_NS", "MAX_TIMEFRAME_NS", "BarSeries", "DataError", "timeframe_problem", "load_bars", "load_many",
           "write_bars"]

MAX_REPORTED = 20
COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
NUMBERS = COLUMNS[1:]
PRICES = ("open", "high", "low", "close")
SUFFIXES = (".csv", ".csv.gz", ".parquet")
# A time of day followed by an explicit UTC offset at the end: Z, +hh, +hhmm or +hh:mm. The time
# part is required: without it "2020-01-02" would end in "-02" and pass for an offset.
_OFFSET = r"[Tt ]\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)$"
_DATE_ONLY = re.compile(r"^\s*\d{4}-?\d{2}-?\d{2}\s*$")
MAX_TIMEFRAME_NS = 366 * 86_400 * 1_000_000_000
"""Longest bar accepted (366 days): longer "bars" are a unit mistake, and their release times
would leave the int64-ns range."""
LAST_NS = int(np.iinfo(np.int64).max)
"""The latest instant tradingd can represent: 2262-04-11T23:47:16.854775807Z (int64 ns)."""
_TOKENIZE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
# The stamps Arrow and pandas read alike (checked against pandas in tests/backtest/test_sources.py):
# others (no seconds, "+hhmm", "t", commas, whitespace) are parsed by pandas.
_CANONICAL = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$"
_BLOCK_BYTES = 1 << 20
"""Bytes of CSV text the streaming reader converts at a time."""
_HEADER_BYTES = 1 << 16

StrPath = str | PathLike[str]


class DataError(ValueError):
    """Bad bar data. The message names the file, line or row, column and reason of each problem.

    Parameters
    ----------
    problems : str or sequence of str
        One message per problem, already prefixed with ``<file>:<line>: ``.
    total : int, optional
        How many problems were found in all (the message shows at most the first 20).

    Attributes
    ----------
    problems : list of str
        The (at most 20) problems listed in the message, in file order.
    total : int
        The number of problems found, including those not listed.
    """

    def __init__(self, problems: str | Sequence[str], total: int | None = None) -> None:
        listed = [problems] if isinstance(problems, str) else list(problems)
        self.problems = listed[:MAX_REPORTED]
        self.total = len(listed) if total is None else total
        if self.total == 1 and len(self.problems) == 1:
            message = self.problems[0]
        else:
            shown = f", first {len(self.problems)} shown" if self.total > len(self.problems) else ""
            message = f"{self.total} problems{shown}:\n  " + "\n  ".join(self.problems)
        super().__init__(message)

    def __reduce__(self):  # keep problems and total across process boundaries (research fan-out)
        return (type(self), (self.problems, self.total))


@dataclass(frozen=True, eq=False)
class BarSeries:
    """The bars of one symbol at one timeframe, as read-only column arrays of equal length n.

    Attributes
    ----------
    symbol : str
        Instrument symbol, e.g. ``"SPY"``.
    timeframe_ns : int
        Bar length in ns (> 0).
    ts_event : numpy.ndarray
        int64, shape (n,): bar START, epoch ns UTC, strictly increasing for loaded files.
    open, high, low, close : numpy.ndarray
        float64, shape (n,): prices in the quote currency (USD for equities).
    volume : numpy.ndarray
        float64, shape (n,): shares (or base units).
    source : str
        Path of the file the bars came from ("" if built in memory).
    sha256 : str
        Hex sha256 of the file's bytes ("" if built in memory); identifies the data of a run.

    Raises
    ------
    ValueError
        If ``timeframe_ns`` <= 0 or the arrays are not 1-D of equal length.
    """

    symbol: str
    timeframe_ns: int
    ts_event: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    source: str = ""
    sha256: str = ""

    def __post_init__(self) -> None:
        if int(self.timeframe_ns) <= 0:
            raise ValueError(f"timeframe_ns must be > 0, got {self.timeframe_ns}")
        object.__setattr__(self, "timeframe_ns", int(self.timeframe_ns))
        n = len(self.ts_event)
        for name in ("ts_event", *NUMBERS):
            given = getattr(self, name)
            array = np.ascontiguousarray(given, dtype=np.int64 if name == "ts_event" else np.float64)
            if array.ndim != 1 or len(array) != n:
                raise ValueError(f"{name} must be 1-D with {n} values like ts_event, got shape {array.shape}")
            if array.flags.writeable:  # never freeze (or alias) an array the caller may still mutate
                array = array.copy() if array is given else array
                array.flags.writeable = False
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return len(self.ts_event)

    @property
    def ts_init(self) -> np.ndarray:
        """int64 array, shape (n,): bar END in epoch ns UTC = ``ts_event + timeframe_ns``."""
        return self.ts_event + self.timeframe_ns

    def __repr__(self) -> str:
        span = f", {iso(int(self.ts_event[0]))}..{iso(int(self.ts_event[-1]))}" if len(self) else ""
        try:
            step = format_timeframe(self.timeframe_ns)
        except ValueError:  # not a whole number of seconds
            step = f"{self.timeframe_ns}ns"
        return (f"BarSeries({self.symbol!r}, {step}, {len(self)} bars{span}, "
                f"source={self.source!r})")


# --- loading -----------------------------------------------------------------------------------


def load_bars(
    path: StrPath,
    symbol: str | None = None,
    timeframe: str | None = None,
    start: datetime | int | None = None,
    end: datetime | int | None = None,
) -> BarSeries:
    """Load and validate one bar file.

    Parameters
    ----------
    path : str or path-like
        A ``.csv``, ``.csv.gz`` or ``.parquet`` file with columns timestamp, open, high, low,
        close, volume (case-insensitive; extra columns are ignored). Timestamps are ISO-8601 text
        with an explicit offset or ``Z`` (CSV, or a Parquet string column), or a tz-aware Parquet
        timestamp column. Rows must be in strictly increasing time order.
    symbol : str, optional
        Defaults to the file name up to its first dot (``SPY.csv.gz`` -> ``"SPY"``).
    timeframe : str, optional
        Bar length such as ``"1h"`` (see :func:`core.time.parse_timeframe`). Defaults to the most
        frequent positive step between consecutive timestamps; a given timeframe may not be
        shorter than that step (bars would be released before they closed).
    start, end : datetime (tz-aware) or int epoch ns, optional
        Keep bars with ``start <= ts_event < end``; applied after the whole file is validated.

    Returns
    -------
    BarSeries
        May be empty if no bar falls in ``[start, end)``.

    Raises
    ------
    DataError
        Unsupported suffix, unreadable file, missing column, no rows, un-inferable timeframe, a
        timeframe shorter than the bars' spacing, not whole seconds or over 366 days, a bar whose
        release time (start + timeframe) is after 2262-04-11 (int64 ns), or row problems
        (bad/empty/naive or date-only timestamp, bad/empty/non-finite number, price <= 0, negative
        volume, high/low inconsistent with open/close, duplicate or backwards timestamp). Up to
        20 row problems are listed; ``.total`` counts them all.
    ValueError
        If ``timeframe`` is malformed or ``start``/``end`` is a naive datetime.
    """
    label = str(path)
    kind = _kind(label)
    step = parse_timeframe(timeframe) if timeframe is not None else None
    low, high = _bound(start), _bound(end)
    name = symbol if symbol is not None else Path(label).name.split(".", 1)[0]
    if not name:
        raise DataError(f"{label}: cannot derive a symbol from the file name; pass symbol=")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{label}: cannot read file: {exc.strerror or exc}") from exc
    if kind == "parquet":
        ts, columns, where = _read_parquet(label, data)
    else:
        ts, columns, where = _read_csv(label, data, gz=kind == "csv.gz")
    step = _timeframe_of(label, ts, step)
    _check_release_times(label, ts, step, where)
    if low is not None or high is not None:
        keep = np.ones(len(ts), dtype=bool)
        if low is not None:
            keep &= ts >= low
        if high is not None:
            keep &= ts < high
        ts, columns = ts[keep], {key: values[keep] for key, values in columns.items()}
    for array in (ts, *columns.values()):
        array.flags.writeable = False  # fresh arrays: BarSeries can keep them without a copy
    return BarSeries(name, step, ts, **columns, source=label, sha256=hashlib.sha256(data).hexdigest())


def load_many(
    paths: Iterable[StrPath],
    timeframe: str | None = None,
    start: datetime | int | None = None,
    end: datetime | int | None = None,
) -> list[BarSeries]:
    """Load several bar files (one symbol each) for one replay, in the given order.

    Parameters
    ----------
    paths : iterable of str or path-like
        Files as for :func:`load_bars`; each symbol comes from its file name.
    timeframe, start, end
        As for :func:`load_bars`, applied to every file.

    Returns
    -------
    list of BarSeries
        One per path, same order (the order breaks ties in :func:`backtest.merge.merge_bars`).

    Raises
    ------
    DataError
        As :func:`load_bars`; also when two files resolve to the same symbol, or when the files'
        timeframes differ (both files and timeframes are named).
    """
    loaded: list[BarSeries] = []
    for path in paths:
        series = load_bars(path, timeframe=timeframe, start=start, end=end)
        for other in loaded:
            if other.symbol == series.symbol:
                raise DataError(f"{other.source} and {series.source} both resolve to symbol {series.symbol!r}")
            if other.timeframe_ns != series.timeframe_ns:
                raise DataError(
                    f"mixed timeframes: {other.source} is {format_timeframe(other.timeframe_ns)} but "
                    f"{series.source} is {format_timeframe(series.timeframe_ns)}; one replay needs one timeframe"
                )
        loaded.append(series)
    return loaded


def write_bars(series: BarSeries, path: StrPath) -> None:
    """Write ``series`` in the format :func:`load_bars` reads, chosen by the suffix of ``path``.

    CSV: the header ``timestamp,open,high,low,close,volume``; timestamps ISO-8601 UTC with ``Z``
    in the coarsest exact unit (s, ms, us or ns); floats in shortest round-trip form, so reading
    back is exact. gzip output (level 6) is byte-reproducible (mtime 0). Parquet stores
    ``timestamp[ns, tz=UTC]`` and float64 columns. About 0.6 s per million rows for CSV (gzip
    adds about 1.2 s), so benchmarks can build large files quickly.

    Raises
    ------
    DataError
        If the suffix is not one of .csv, .csv.gz, .parquet.
    """
    label = str(path)
    kind = _kind(label)
    values = {name: getattr(series, name) for name in NUMBERS}
    if kind == "parquet":
        stamps = pa.array(series.ts_event, type=pa.timestamp("ns", tz="UTC"))
        pq.write_table(pa.table({"timestamp": stamps, **values}), label)
        return
    # pyarrow's CSV writer is ~10x faster than DataFrame.to_csv; it quotes its header, so we
    # write the header ourselves to keep the exact format of data/README.md.
    body = pa.table({"timestamp": _iso_z(series.ts_event), **values})
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
    with open(label, "wb") as raw:
        sink = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) if kind == "csv.gz" else raw
        with sink:
            sink.write((",".join(COLUMNS) + "\n").encode())
            pa_csv.write_csv(body, sink, options)


# --- file readers: return (ts int64 ns, {column: float64}) or raise DataError ------------------


_Where = Callable[[int], str]  # row index -> "<file>:<line>" (or "<file>:row <n>")


def _read_csv(label: str, data: bytes, gz: bool) -> tuple[np.ndarray, dict[str, np.ndarray], _Where]:
    fast = _read_clean_csv(data, gz)
    if fast is not None:
        clean_ts, clean_columns, stamp_column = fast
        clean_report = _Report(label, "line", range(2, len(clean_ts) + 2))
        _check(clean_ts, clean_columns, clean_report,
               _LazyText(lambda: _csv_frame(label, data, gz, text=True)[stamp_column]))
        return clean_ts, clean_columns, clean_report.where
    frame = _csv_frame(label, data, gz, text=False)
    names = _resolve_columns(label, frame.columns)
    stamps = frame[names["timestamp"]]
    typed = pd.api.types.is_string_dtype(stamps.dtype) and not stamps.isna().any()
    columns: dict[str, np.ndarray] = {}
    for column in NUMBERS:
        raw = frame[names[column]]
        if not typed or not pd.api.types.is_numeric_dtype(raw.dtype) or pd.api.types.is_bool_dtype(raw.dtype):
            typed = False
            break
        columns[column] = raw.to_numpy(dtype=np.float64)
        typed = bool(np.isfinite(columns[column]).all())
    if typed:  # every cell parsed; only value-level checks remain
        report = _Report(label, "line", range(2, len(frame) + 2))
    else:  # re-read everything as text to say exactly which cell is wrong and why
        frame = _csv_frame(label, data, gz, text=True)
        blank = (frame == "").all(axis=1).to_numpy()  # blank lines: ignored, line numbers kept
        report = _Report(label, "line", np.arange(2, len(frame) + 2)[~blank])
        frame = frame[~blank].reset_index(drop=True)
        stamps = frame[names["timestamp"]]
        columns = {column: _parse_numbers(frame[names[column]], column, report) for column in NUMBERS}
    if len(frame) == 0:
        raise DataError(f"{label}: empty file: a header but no rows")
    ts = _parse_timestamps(stamps, report)
    _check(ts, columns, report, stamps)
    return ts, columns, report.where


class _LazyText:
    """The text of a column, read only if a problem message needs it (``.iat[i]`` like a Series)."""

    def __init__(self, load: Callable[[], pd.Series]) -> None:
        self._load = load
        self._text: pd.Series | None = None

    @property
    def iat(self) -> Any:
        if self._text is None:
            self._text = self._load()
        return self._text.iat


def _csv_header(data: bytes, gz: bool) -> list[str] | None:
    """The header's column names, or None unless it is a plain line of distinct unquoted names."""
    try:
        head = zlib.decompressobj(wbits=31).decompress(data, _HEADER_BYTES) if gz else data[:_HEADER_BYTES]
        end = head.index(b"\n")
        line = head[:end].decode("utf-8")
    except (ValueError, zlib.error, UnicodeDecodeError):  # no newline in reach, not gzip, not UTF-8
        return None
    names = line.removesuffix("\r").split(",")
    if '"' in line or line.startswith("\ufeff") or "" in names or len(set(names)) != len(names):
        return None
    return names


def _read_clean_csv(data: bytes, gz: bool) -> tuple[np.ndarray, dict[str, np.ndarray], str] | None:
    """Read a clean CSV in blocks with pyarrow: (ts int64 ns, {column: float64}, name of the
    timestamp column), or None when anything needs the pandas path (a cell that does not parse
    as a finite number, an empty cell or line, a non-canonical timestamp, an odd header, a row
    of the wrong length, no rows): that path then reads the file and reports what is wrong.

    The values are those pandas' typed parser gives (both round floats correctly; canonical
    stamps are read alike), so which path reads a file never changes a replay.
    """
    header = _csv_header(data, gz)
    if header is None:
        return None
    try:
        names = _resolve_columns("", header)
    except DataError:
        return None
    wanted = [names[column] for column in COLUMNS]
    convert = pa_csv.ConvertOptions(
        column_types={names[column]: pa.string() if column == "timestamp" else pa.float64() for column in COLUMNS},
        include_columns=wanted)
    stamps: list[np.ndarray] = []
    numbers: dict[str, list[np.ndarray]] = {column: [] for column in NUMBERS}
    pool = pa.default_memory_pool()
    try:
        source = pa.input_stream(pa.BufferReader(data), compression="gzip" if gz else None)
        reader = pa_csv.open_csv(source, read_options=pa_csv.ReadOptions(block_size=_BLOCK_BYTES),
                                 parse_options=pa_csv.ParseOptions(ignore_empty_lines=False),
                                 convert_options=convert)
        for batch in reader:
            if any(batch.column(k).null_count for k in range(batch.num_columns)):
                return None
            text = batch.column(0)
            if not pc.all(pc.match_substring_regex(text, _CANONICAL)).as_py():
                return None
            stamps.append(pc.cast(text, pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy())
            for k, column in enumerate(NUMBERS, start=1):
                values = batch.column(k).to_numpy()
                if not np.isfinite(values).all():
                    return None
                numbers[column].append(values)
    except (pa.ArrowException, OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError):
        return None  # bad gzip, ragged rows, text in a number column, a stamp outside the ns range ...
    if not sum(len(part) for part in stamps):
        return None
    # one column at a time, each column's parts (views of Arrow's blocks) dropped once joined, so
    # the peak is one copy of the data plus one column, not two copies
    ts = np.concatenate(stamps)
    stamps.clear()
    columns = {}
    for column in NUMBERS:
        columns[column] = np.concatenate(numbers[column])
        numbers[column].clear()
    pool.release_unused()  # mimalloc keeps freed blocks for reuse otherwise; the replay would not reuse them
    return ts, columns, names["timestamp"]


def _csv_frame(label: str, data: bytes, gz: bool, text: bool) -> pd.DataFrame:
    compression: Literal["gzip"] | None = "gzip" if gz else None
    try:
        if text:
            return pd.read_csv(io.BytesIO(data), compression=compression, skip_blank_lines=False, dtype=str,
                               keep_default_na=False)
        return pd.read_csv(io.BytesIO(data), compression=compression, skip_blank_lines=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{label}: empty file: no header and no rows") from exc
    except pd.errors.ParserError as exc:
        found = _TOKENIZE.search(str(exc))
        if found:
            want, line, saw = found.groups()
            raise DataError(f"{label}:{line}: expected {want} fields like the header, saw {saw}") from exc
        raise DataError(f"{label}: cannot parse as CSV: {exc}") from exc
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:  # bad gzip stream, binary junk
        raise DataError(f"{label}: cannot read as {'gzip ' if gz else ''}CSV text: {exc}") from exc


def _read_parquet(label: str, data: bytes) -> tuple[np.ndarray, dict[str, np.ndarray], _Where]:
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{label}: cannot read as Parquet: {exc}") from exc
    names = _resolve_columns(label, table.column_names)
    if table.num_rows == 0:
        raise DataError(f"{label}: empty file: no rows")
    report = _Report(label, "row", np.arange(1, table.num_rows + 1))
    columns = {}
    for column in NUMBERS:
        raw = table.column(names[column])
        if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
            columns[column] = _parse_numbers(raw.to_pandas().fillna(""), column, report)
        elif pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type) or pa.types.is_decimal(raw.type):
            values = raw.cast(pa.float64()).to_numpy()  # nulls become NaN
            columns[column] = _parse_numbers(pd.Series(values), column, report, null=raw.is_null().to_numpy())
        else:
            raise DataError(f"{label}: column {column!r} has type {raw.type}; expected a number")
    raw = table.column(names["timestamp"])
    if pa.types.is_timestamp(raw.type):
        if raw.type.tz is None:
            raise DataError(
                f"{label}:row 1: column 'timestamp': timezone-naive {raw.type} (all {table.num_rows} rows); "
                "store tz-aware timestamps: tradingd never guesses a timezone"
            )
        try:
            ts = raw.cast(pa.timestamp("ns", tz=raw.type.tz)).cast(pa.int64()).fill_null(0).to_numpy()
        except pa.ArrowInvalid as exc:
            raise DataError(f"{label}: column 'timestamp': outside the ns range 1677..2262: {exc}") from exc
        null = raw.is_null().to_numpy(zero_copy_only=False)
        report.add(np.flatnonzero(null), "timestamp", lambda i: "empty timestamp")
        ts = np.where(null, _NAT, ts)  # NaT marker, excluded from order checks
        text = None
    elif pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
        text = raw.to_pandas().fillna("")
        ts = _parse_timestamps(text, report)
    else:
        raise DataError(f"{label}: column 'timestamp' has type {raw.type}; expected tz-aware timestamps or ISO-8601 text")
    _check(ts, columns, report, text)
    return ts, columns, report.where


# --- validation -----------------------------------------------------------------------------

_NAT = np.iinfo(np.int64).min


class _Report:
    """Collect row problems; keep the first 20 in file order, count all of them."""

    def __init__(self, label: str, unit: str, positions: np.ndarray | range) -> None:
        self.label, self.unit, self.positions = label, unit, positions  # positions[i]: line/row of row i
        self.found: list[tuple[int, int, str]] = []
        self.total = 0

    def where(self, index: int) -> str:
        position = int(self.positions[index])
        return f"{self.label}:{position}" if self.unit == "line" else f"{self.label}:row {position}"

    def add(self, rows: np.ndarray, column: str, reason: Callable[[int], str]) -> None:
        """Record a problem for each row index in ``rows`` (sorted); describe only the first 20."""
        self.total += len(rows)
        for index in rows[:MAX_REPORTED].tolist():
            message = f"{self.where(index)}: column {column!r}: {reason(index)}"
            self.found.append((index, len(self.found), message))

    def raise_if_any(self) -> None:
        if self.total:
            self.found.sort()
            raise DataError([message for _, _, message in self.found[:MAX_REPORTED]], self.total)


def _parse_numbers(text: pd.Series, column: str, report: _Report, null: np.ndarray | None = None) -> np.ndarray:
    """Return float64 values (NaN where a problem was reported) from text or already-numeric cells."""
    if null is None:
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    else:
        values = text.to_numpy(dtype=np.float64, copy=True)
    bad = ~np.isfinite(values)

    def reason(index: int) -> str:  # only called for the (at most 20) rows shown
        if null is not None:
            return "empty value" if null[index] else f"value {_num(values[index])} is not finite"
        cell = str(text.iat[index])
        if not cell.strip():
            return "empty value"
        try:
            return f"value {cell!r} is not finite" if not np.isfinite(float(cell)) else f"cannot parse {cell!r} as a number"
        except ValueError:
            return f"cannot parse {cell!r} as a number"

    report.add(np.flatnonzero(bad), column, reason)
    values[bad] = np.nan  # NaN compares False, so later checks skip cells already reported
    return values


def _parse_timestamps(text: pd.Series, report: _Report) -> np.ndarray:
    """Return int64 epoch ns UTC from ISO-8601 text with an offset; ``_NAT`` where reported bad."""
    text = text.fillna("").astype(str)
    aware = text.str.contains(_OFFSET, regex=True).to_numpy(dtype=bool)
    parsed = pd.to_datetime(text.where(aware), format="ISO8601", utc=True, errors="coerce")
    try:
        ts = parsed.dt.as_unit("ns").dt.tz_localize(None).to_numpy().view(np.int64).copy()
    except (OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise DataError(f"{report.label}: column 'timestamp': outside the ns range 1677..2262: {exc}") from exc
    bad = parsed.isna().to_numpy()
    if bad.any():
        # A naive stamp is one that parses once we stop demanding an offset.
        naive = ~aware & pd.to_datetime(text.where(~aware), format="ISO8601", errors="coerce").notna().to_numpy()

        def reason(index: int) -> str:
            cell = str(text.iat[index])
            if not cell.strip():
                return "empty timestamp"
            if _DATE_ONLY.match(cell):
                return (f"timestamp {cell!r} is a date without a time and UTC offset; write the bar start in "
                        f"full, e.g. '{cell.strip()}T00:00:00Z' (tradingd never guesses a timezone)")
            if naive[index]:
                return f"timestamp {cell!r} has no UTC offset; add 'Z' or '+hh:mm' (tradingd never guesses a timezone)"
            return f"cannot parse {cell!r} as an ISO-8601 timestamp with offset"

        report.add(np.flatnonzero(bad), "timestamp", reason)
        ts[bad] = _NAT
    return ts


def _check(ts: np.ndarray, columns: dict[str, np.ndarray], report: _Report, text: pd.Series | _LazyText | None) -> None:
    """Check values and order vectorised; raise one DataError listing every problem found."""
    o, h, l, c, v = (columns[name] for name in NUMBERS)
    for name in PRICES:
        report.add(np.flatnonzero(columns[name] <= 0), name, partial(_not_positive, columns[name]))
    report.add(np.flatnonzero(v < 0), "volume", lambda i: f"volume {_num(v[i])} is negative")
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    report.add(np.flatnonzero(h < top), "high", lambda i: f"high {_num(h[i])} is below max(open, close) {_num(top[i])}")
    report.add(np.flatnonzero(l > bottom), "low", lambda i: f"low {_num(l[i])} is above min(open, close) {_num(bottom[i])}")
    report.add(np.flatnonzero(h < l), "high", lambda i: f"high {_num(h[i])} is below low {_num(l[i])}")

    valid = np.flatnonzero(ts != _NAT)
    step = np.diff(ts[valid])
    prev, this = valid[:-1], valid[1:]

    def stamp(i: int) -> str:
        return repr(text.iat[i]) if text is not None else iso(int(ts[i]))

    def other(i: int) -> str:
        return f"{report.unit} {report.positions[i]}"

    same, back = np.flatnonzero(step == 0), np.flatnonzero(step < 0)
    previous_of = dict(zip(this[same].tolist() + this[back].tolist(), prev[same].tolist() + prev[back].tolist()))

    def duplicate(i: int) -> str:
        return f"duplicate timestamp {stamp(i)}, same as {other(previous_of[i])}"

    def backwards(i: int) -> str:
        return f"timestamp {stamp(i)} is earlier than {stamp(previous_of[i])} on {other(previous_of[i])} (out of order)"

    report.add(this[same], "timestamp", duplicate)
    report.add(this[back], "timestamp", backwards)
    report.raise_if_any()


def _not_positive(values: np.ndarray, i: int) -> str:
    return f"price {_num(values[i])} is not positive"


# --- small helpers ----------------------------------------------------------------------------


def _num(value: float) -> str:
    return repr(float(value))  # 9.5, not np.float64(9.5)


def _kind(label: str) -> str:
    lowered = label.lower()
    for suffix in (".csv.gz", ".csv", ".parquet"):
        if lowered.endswith(suffix):
            return suffix[1:]
    raise DataError(f"{label}: unsupported file type; supported suffixes: {', '.join(SUFFIXES)}")


def _resolve_columns(label: str, found: Iterable[object]) -> dict[str, str]:
    """Map each required column (lower case) to its name in the file; extras are ignored."""
    names: dict[str, str] = {}
    for name in map(str, found):
        key = name.strip().lower()
        if key in COLUMNS and key in names:
            raise DataError(f"{label}: column {key!r} appears twice ({names[key]!r} and {name!r})")
        if key in COLUMNS:
            names[key] = name
    missing = [name for name in COLUMNS if name not in names]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        raise DataError(f"{label}:1: missing column(s) {listed}; the header must hold {', '.join(COLUMNS)}")
    return names


def timeframe_problem(step_ns: int) -> str | None:
    """Return why a bar length of ``step_ns`` ns cannot be replayed, or ``None`` if it can.

    A timeframe must be a whole number of seconds, at least 1 s and at most
    :data:`MAX_TIMEFRAME_NS` (366 days).

    Examples
    --------
    >>> timeframe_problem(3_600_000_000_000) is None
    True
    >>> timeframe_problem(500_000_000)
    'bars 0.5 s long: tradingd needs whole seconds (at least 1 s)'
    """
    if step_ns <= 0 or step_ns % NANOS_PER_SECOND:
        return f"bars {step_ns / NANOS_PER_SECOND:g} s long: tradingd needs whole seconds (at least 1 s)"
    if step_ns > MAX_TIMEFRAME_NS:
        return f"bars {step_ns // NANOS_PER_DAY:,} days long: the longest timeframe is 366d"
    return None


def _timeframe_of(label: str, ts: np.ndarray, given: int | None) -> int:
    """The timeframe of a file: ``given`` (checked against the data's spacing) or inferred."""
    if given is not None and given > MAX_TIMEFRAME_NS:  # before arithmetic with it can overflow
        raise DataError(f"{label}: timeframe: {timeframe_problem(given)}")
    spacing = _infer_timeframe(label, ts) if given is None or len(ts) >= 2 else None
    if spacing is not None and given is not None and given < spacing:
        raise DataError(
            f"{label}: timeframe {format_timeframe(given)} is shorter than the spacing of its bars "
            f"({_step_text(spacing)}, the most frequent step): every bar would be released before it "
            f"closed; use {_step_text(spacing)} or leave the timeframe out to infer it")
    step = given if given is not None else spacing
    assert step is not None
    problem = timeframe_problem(step)
    if problem:
        raise DataError(f"{label}: {problem} (the most frequent step between bars)")
    return step


def _check_release_times(label: str, ts: np.ndarray, step: int, where: _Where) -> None:
    """Every bar is released at start + timeframe; that instant must fit in int64 ns."""
    if len(ts) and int(ts[-1]) > LAST_NS - step:
        first = int(np.searchsorted(ts, LAST_NS - step, side="right"))
        raise DataError(
            f"{where(first)}: column 'timestamp': the bar starting {iso(int(ts[first]))} ends "
            f"({_step_text(step)} later) after 2262-04-11T23:47:16Z, the last instant tradingd can "
            "represent (int64 ns)")


def _step_text(step_ns: int) -> str:
    try:
        return format_timeframe(step_ns)
    except ValueError:  # not a whole number of seconds
        return f"{step_ns / NANOS_PER_SECOND:g}s"


def _infer_timeframe(label: str, ts: np.ndarray) -> int:
    if len(ts) < 2:
        raise DataError(f"{label}: cannot infer the timeframe from {len(ts)} row; pass timeframe=, e.g. '1h'")
    steps = np.diff(ts)
    if (steps == steps[0]).all():  # evenly spaced (the usual case): no sort needed
        return int(steps[0])
    steps, counts = np.unique(steps, return_counts=True)
    return int(steps[np.argmax(counts)])  # most frequent step; ties go to the shorter one


def _bound(moment: datetime | int | None) -> int | None:
    if moment is None or isinstance(moment, int):
        return moment
    return to_nanos(moment)


def _iso_z(ts: np.ndarray) -> np.ndarray:
    """Format epoch ns as ISO-8601 UTC text with ``Z``, in the coarsest unit that is exact."""
    units: tuple[tuple[Literal["s", "ms", "us", "ns"], int], ...] = (("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1))
    unit = next(u for u, size in units if not (ts % size).any())
    stamps: np.ndarray[Any, np.dtype[np.datetime64]] = ts.view("datetime64[ns]")
    return np.datetime_as_string(stamps, unit=unit, timezone="UTC")
