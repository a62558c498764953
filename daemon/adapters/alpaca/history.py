"""Historical bars from Alpaca's data API: one fetch for the live feed's backfill, and resumable
downloads into bar files ``tradingd replay`` reads (``tradingd data fetch``).

A download is split into chunks (one symbol, one calendar period: a month by default). Each
chunk is fetched (the SDK follows ``next_page_token``), written atomically to
``OUT/.chunks/<file symbol>/<id>.parquet`` and then recorded in ``OUT/.fetch-state.json``. A
fetch that is interrupted (Ctrl-C, kill, an HTTP error) keeps every finished chunk; running the
same command again fetches only the missing ones. When every chunk is there, each symbol's
chunks are merged in time order, duplicate starts dropped (the first copy kept), and written
atomically as ``OUT/<file symbol>.csv`` in the format of ``backtest.sources.write_bars``, next
to ``OUT/quality.json`` (:mod:`backtest.data_quality`, computed on the rows as received).

A file's symbol is its name up to the first dot (``backtest.sources.load_bars``), so symbols are
named for files by :func:`file_symbol`: ``BTC/USD`` -> ``BTCUSD``, ``BRK.B`` -> ``BRK-B``.

Every bar is labelled by its start (epoch ns UTC); the API's ``end`` is treated as exclusive here
(bars starting at or after it are dropped client-side, whatever the server includes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np

from core.time import NANOS_PER_DAY, NANOS_PER_HOUR, NANOS_PER_MINUTE, iso, to_datetime, to_nanos
from daemon.adapters.alpaca.clients import CallOutcome, classify, retry_after

__all__ = ["CHUNK_DIR", "MANIFEST", "QUALITY_FILE", "AlpacaTimeFrame", "BarColumns", "Chunk", "ChunkDone",
           "FetchError", "FetchRequest", "FetchResult", "fetch_bars", "fetch_history", "file_symbol", "parse_moment",
           "parse_timeframe", "plan_chunks"]

MANIFEST = ".fetch-state.json"
"""Finished chunks of every fetch into a folder (JSON, rewritten atomically after each chunk)."""
CHUNK_DIR = ".chunks"
"""Where chunk files (Parquet) and temporary files live; ``tradingd replay`` does not look inside."""
QUALITY_FILE = "quality.json"

AssetClass = Literal["us_equity", "crypto"]
Period = Literal["month", "week", "day"]
EXCHANGE_TZ = {"us_equity": "America/New_York", "crypto": "UTC"}
"""Time zone of chunk boundaries and of date-only ``--start``/``--end`` per asset class."""

_TIMEFRAME = re.compile(r"^\s*(\d+)\s*(min|m|t|hour|h|day|d)\s*$", re.IGNORECASE)
Unit = Literal["Min", "Hour", "Day"]
_UNITS: dict[str, Unit] = {"min": "Min", "m": "Min", "t": "Min", "hour": "Hour", "h": "Hour", "day": "Day", "d": "Day"}
_MAX_AMOUNT: dict[Unit, int] = {"Min": 59, "Hour": 23, "Day": 1}
_UNIT_NS: dict[Unit, int] = {"Min": NANOS_PER_MINUTE, "Hour": NANOS_PER_HOUR, "Day": NANOS_PER_DAY}


class FetchError(RuntimeError):
    """A download failed or cannot start; the message says what and where (never a key)."""


@dataclass(frozen=True, slots=True)
class AlpacaTimeFrame:
    """A bar length the data API serves: ``amount`` of ``unit`` (``"Min"``, ``"Hour"``, ``"Day"``).

    Attributes
    ----------
    ns : int
        Bar length in ns (a ``1Day`` bar is one session; its nominal length is 24 h).
    """

    amount: int
    unit: Unit

    @property
    def text(self) -> str:
        """Alpaca's spelling, e.g. ``"15Min"``."""
        return f"{self.amount}{self.unit}"

    @property
    def ns(self) -> int:
        return self.amount * _UNIT_NS[self.unit]

    def sdk(self) -> Any:
        """The alpaca-py ``TimeFrame``."""
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

        return TimeFrame(self.amount, {"Min": TimeFrameUnit.Minute, "Hour": TimeFrameUnit.Hour,
                                       "Day": TimeFrameUnit.Day}[self.unit])


MINUTE = AlpacaTimeFrame(1, "Min")


def parse_timeframe(text: str) -> AlpacaTimeFrame:
    """Parse ``1Min``, ``5Min``, ``1Hour``, ``1Day`` (Alpaca) or ``1min``, ``5m``, ``1h``, ``1d`` (tradingd).

    Raises
    ------
    FetchError
        For anything else, and for amounts the API refuses (minutes 1-59, hours 1-23, 1 day).

    Examples
    --------
    >>> parse_timeframe("1Min").text, parse_timeframe("1h").text, parse_timeframe("15m").ns // 10**9
    ('1Min', '1Hour', 900)
    """
    match = _TIMEFRAME.match(text)
    if not match:
        raise FetchError(f"--timeframe {text!r}: unknown timeframe; use e.g. 1Min, 5Min, 15Min, 1Hour or 1Day")
    amount, unit = int(match.group(1)), _UNITS[match.group(2).lower()]
    if not 1 <= amount <= _MAX_AMOUNT[unit]:
        raise FetchError(f"--timeframe {text!r}: Alpaca serves 1-59 Min, 1-23 Hour or 1 Day bars")
    return AlpacaTimeFrame(amount, unit)


def parse_moment(text: str, tz: str, option: str) -> int:
    """Epoch ns UTC of ``--start``/``--end`` text: a date (its midnight in ``tz``) or ISO-8601 with an offset.

    Raises
    ------
    FetchError
        For unparsable text or a date-time without a UTC offset.

    Examples
    --------
    >>> iso(parse_moment("2024-01-02", "America/New_York", "--start"))
    '2024-01-02T05:00:00Z'
    >>> iso(parse_moment("2024-01-02T14:30:00Z", "UTC", "--start"))
    '2024-01-02T14:30:00Z'
    """
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return to_nanos(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz)))
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise FetchError(f"{option} {text!r}: not a date (2024-01-31) or ISO-8601 time (2024-01-31T14:30:00Z)") from None
    if moment.tzinfo is None:
        raise FetchError(f"{option} {text!r}: a time needs a UTC offset, e.g. 2024-01-31T14:30:00Z")
    return to_nanos(moment)


def file_symbol(symbol: str) -> str:
    """The name a symbol's bar file gets (``load_bars`` reads the symbol up to the file's first dot).

    Examples
    --------
    >>> file_symbol("BTC/USD"), file_symbol("BRK.B"), file_symbol("SPY")
    ('BTCUSD', 'BRK-B', 'SPY')
    """
    return symbol.replace("/", "").replace(".", "-")


class Chunk(NamedTuple):
    """One request unit of a download: ``symbol``'s bars starting in ``[start_ns, end_ns)`` (epoch ns UTC)."""

    symbol: str
    start_ns: int
    end_ns: int


def plan_chunks(symbols: Sequence[str], start_ns: int, end_ns: int, *, period: Period = "month",
                tz: str = "America/New_York") -> list[Chunk]:
    """Split ``[start_ns, end_ns)`` into calendar periods (midnight in ``tz``), for each symbol in turn.

    Raises
    ------
    FetchError
        If ``start_ns >= end_ns`` or ``period`` is unknown.

    Examples
    --------
    >>> start, end = parse_moment("2024-01-15", "UTC", ""), parse_moment("2024-03-01", "UTC", "")
    >>> [(c.symbol, iso(c.start_ns)[:10], iso(c.end_ns)[:10]) for c in plan_chunks(["SPY"], start, end, tz="UTC")]
    [('SPY', '2024-01-15', '2024-02-01'), ('SPY', '2024-02-01', '2024-03-01')]
    """
    if start_ns >= end_ns:
        raise FetchError(f"--start {iso(start_ns)} is not before --end {iso(end_ns)}")
    zone = ZoneInfo(tz)
    local = to_datetime(start_ns).astimezone(zone)
    day = local.date()
    if period == "month":
        def step(d: date) -> date:
            return date(d.year + d.month // 12, d.month % 12 + 1, 1)
        boundary = step(day)
    elif period == "week":
        def step(d: date) -> date:
            return d + timedelta(days=7)
        boundary = day + timedelta(days=7 - day.weekday())  # next Monday
    elif period == "day":
        def step(d: date) -> date:
            return d + timedelta(days=1)
        boundary = step(day)
    else:
        raise FetchError(f"--chunk {period!r}: use month, week or day")
    edges = [start_ns]
    while True:
        edge = to_nanos(datetime(boundary.year, boundary.month, boundary.day, tzinfo=zone))
        if edge >= end_ns:
            break
        edges.append(edge)
        boundary = step(boundary)
    edges.append(end_ns)
    return [Chunk(symbol, a, b) for symbol in symbols for a, b in zip(edges, edges[1:])]


class BarColumns(NamedTuple):
    """Bars of one symbol as columns of equal length n, in the order received.

    ``ts`` int64 (n,) bar starts epoch ns UTC; ``open..close`` float64 (n,) USD; ``volume``
    float64 (n,) shares (or coins).
    """

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @classmethod
    def empty(cls) -> BarColumns:
        return cls(np.empty(0, np.int64), *(np.empty(0, np.float64) for _ in range(5)))

    @property
    def rows(self) -> int:
        """n, the number of bars."""
        return len(self.ts)

    def take(self, index: np.ndarray) -> BarColumns:
        """Rows at ``index`` (indices or a boolean mask)."""
        return BarColumns(*(a[index] for a in self))


def _columns(rows: Sequence[Any]) -> BarColumns:
    """Raw JSON bars (``{"t": "...Z", "o", ...}``) or alpaca-py ``Bar`` models -> columns."""
    if not rows:
        return BarColumns.empty()
    if isinstance(rows[0], Mapping):
        import pandas as pd

        stamps = pd.to_datetime([r["t"] for r in rows], utc=True, format="ISO8601")
        ts = np.asarray(stamps.as_unit("ns").asi8, dtype=np.int64)
        keys = ("o", "h", "l", "c", "v")
        values = [np.fromiter((r[k] for r in rows), dtype=np.float64, count=len(rows)) for k in keys]
    else:
        ts = np.fromiter((to_nanos(b.timestamp) for b in rows), dtype=np.int64, count=len(rows))
        names = ("open", "high", "low", "close", "volume")
        values = [np.fromiter((getattr(b, k) for b in rows), dtype=np.float64, count=len(rows)) for k in names]
    return BarColumns(ts, *values)


def fetch_bars(client: Any, symbols: Sequence[str], start_ns: int, end_ns: int, *,
               timeframe: AlpacaTimeFrame = MINUTE, asset_class: AssetClass = "us_equity",
               feed: str = "iex", adjustment: str | None = None) -> dict[str, BarColumns]:
    """Fetch the bars of ``symbols`` starting in ``[start_ns, end_ns)`` with one SDK call (all pages).

    Blocking (run it in a worker thread from a loop).

    Parameters
    ----------
    client
        alpaca-py ``StockHistoricalDataClient`` (us_equity) or ``CryptoHistoricalDataClient``,
        raw or not (see :func:`daemon.adapters.alpaca.clients.data_client`).
    symbols : sequence of str
        Alpaca symbols (``SPY``, ``BTC/USD``).
    start_ns, end_ns : int
        Epoch ns UTC; ``end_ns`` exclusive.
    timeframe : AlpacaTimeFrame
        Bar length (default 1 minute).
    asset_class : {"us_equity", "crypto"}
    feed : {"iex", "sip"}
        US equities only.
    adjustment : {"raw", "split", "dividend", "all"}, optional
        US equities only (None: the API's default, raw).

    Returns
    -------
    dict of str to BarColumns
        Every requested symbol (empty columns when the API had none), rows as received.

    Raises
    ------
    Exception
        Whatever the SDK raises (``APIError``, ``requests`` timeouts); map with
        :func:`daemon.adapters.alpaca.clients.classify`.
    """
    start, end = to_datetime(start_ns), to_datetime(end_ns)
    if asset_class == "crypto":
        from alpaca.data.requests import CryptoBarsRequest

        response = client.get_crypto_bars(CryptoBarsRequest(symbol_or_symbols=list(symbols),
                                                            timeframe=timeframe.sdk(), start=start, end=end))
    else:
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import StockBarsRequest

        response = client.get_stock_bars(StockBarsRequest(
            symbol_or_symbols=list(symbols), timeframe=timeframe.sdk(), start=start, end=end,
            feed=DataFeed(feed), adjustment=Adjustment(adjustment) if adjustment else None))
    data = response.data if hasattr(response, "data") else response
    out: dict[str, BarColumns] = {}
    for symbol in symbols:
        columns = _columns(data.get(symbol) or [])
        inside = (columns.ts >= start_ns) & (columns.ts < end_ns)
        out[symbol] = columns if inside.all() else columns.take(inside)
    return out


# --- resumable downloads -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """What ``tradingd data fetch`` downloads.

    Attributes
    ----------
    symbols : tuple of str
        Alpaca symbols, distinct, whose :func:`file_symbol` names differ.
    timeframe : AlpacaTimeFrame
    start_ns, end_ns : int
        Bar starts in ``[start_ns, end_ns)``, epoch ns UTC.
    asset_class : {"us_equity", "crypto"}
    feed : {"iex", "sip"}
        US equities (ignored for crypto).
    adjustment : {"raw", "split", "dividend", "all"}
        US equities (ignored for crypto).
    period : {"month", "week", "day"}
        Chunk size: one request unit per symbol and period.
    """

    symbols: tuple[str, ...]
    timeframe: AlpacaTimeFrame
    start_ns: int
    end_ns: int
    asset_class: AssetClass = "us_equity"
    feed: str = "iex"
    adjustment: str = "raw"
    period: Period = "month"

    def __post_init__(self) -> None:
        if not self.symbols:
            raise FetchError("no symbol given")
        seen: dict[str, str] = {}
        for symbol in self.symbols:
            if not symbol or not re.fullmatch(r"[A-Za-z0-9./-]{1,32}", symbol):
                raise FetchError(f"symbol {symbol[:40]!r}: expected letters, digits, '.', '/' or '-' (e.g. SPY, BTC/USD)")
            name = file_symbol(symbol)
            if name in seen:
                raise FetchError(f"symbols {seen[name]!r} and {symbol!r} would both be written to {name}.csv")
            seen[name] = symbol
        if self.start_ns >= self.end_ns:
            raise FetchError(f"--start {iso(self.start_ns)} is not before --end {iso(self.end_ns)}")

    @property
    def tz(self) -> str:
        return EXCHANGE_TZ[self.asset_class]

    def key(self, chunk: Chunk) -> str:
        """Identity of a chunk's content in the manifest (same key = same request = reusable)."""
        source = "crypto" if self.asset_class == "crypto" else f"{self.feed}-{self.adjustment}"
        return f"{chunk.symbol}|{self.timeframe.text}|{source}|{iso(chunk.start_ns)}|{iso(chunk.end_ns)}"

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary (written into ``quality.json``)."""
        return {"symbols": list(self.symbols), "timeframe": self.timeframe.text, "start": iso(self.start_ns),
                "end": iso(self.end_ns), "asset_class": self.asset_class,
                "feed": None if self.asset_class == "crypto" else self.feed,
                "adjustment": None if self.asset_class == "crypto" else self.adjustment, "chunk": self.period}


class ChunkDone(NamedTuple):
    """Progress of a download: ``chunk`` is finished (``reused`` from an earlier run, else fetched
    now with ``bars`` rows); ``done`` of ``total`` chunks are finished."""

    chunk: Chunk
    bars: int
    reused: bool
    done: int
    total: int


@dataclass(slots=True)
class FetchResult:
    """What a finished download wrote.

    Attributes
    ----------
    files : dict of str to Path
        Alpaca symbol -> its bar file (symbols without any bar get none).
    reports : list of backtest.data_quality.QualityReport
        One per symbol, in request order (as received: before duplicates were dropped).
    quality_file : Path
    chunks_total, chunks_fetched, chunks_reused : int
    bars_written : int
        Rows in the files (duplicates dropped).
    """

    files: dict[str, Path]
    reports: list[Any]
    quality_file: Path
    chunks_total: int
    chunks_fetched: int
    chunks_reused: int
    bars_written: int = 0
    empty: list[str] = field(default_factory=list)


def _atomic_write(folder: Path, path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write(tmp)`` (``tmp`` in ``folder/.chunks/.tmp``, same suffix as ``path``) and
    move the result into place in one step: a kill leaves the old file or the new one, never half."""
    tmp_dir = folder / CHUNK_DIR / ".tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{os.getpid()}-{path.name}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_json(folder: Path, path: Path, payload: Any) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text)

    _atomic_write(folder, path, write)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Manifest:
    """``OUT/.fetch-state.json``: chunk key -> {file, bars, sha256}."""

    def __init__(self, out: Path) -> None:
        self.folder = out
        self.path = out / MANIFEST
        self.chunks: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text())
                chunks = loaded["chunks"]
                if not isinstance(chunks, dict):
                    raise TypeError("chunks is not an object")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise FetchError(f"{self.path}: unreadable fetch state ({type(exc).__name__}: {exc}); "
                                 "delete it to fetch everything again") from None
            self.chunks = chunks

    def done(self, out: Path, key: str) -> dict[str, Any] | None:
        entry = self.chunks.get(key)
        if entry is None:
            return None
        path = out / entry["file"]
        if not path.is_file() or _sha256(path) != entry.get("sha256"):
            return None  # removed or altered since: fetch again
        return entry

    def record(self, key: str, entry: dict[str, Any]) -> None:
        self.chunks[key] = entry
        _write_json(self.folder, self.path, {"version": 1, "chunks": self.chunks})


def _write_parquet(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path)


def _fetch_with_retries(fetch: Callable[[], dict[str, BarColumns]], what: str, *, retries: int, retry_wait_s: float,
                        sleep: Callable[[float], None]) -> dict[str, BarColumns]:
    attempt = 0
    while True:
        try:
            return fetch()
        except Exception as exc:
            classified = classify(exc)
            retryable = classified.outcome in (CallOutcome.RATE_LIMITED, CallOutcome.UNKNOWN)
            if not retryable or attempt >= retries:
                tried = f" (after {attempt + 1} attempts)" if attempt else ""
                raise FetchError(f"{what}: {classified.text}{tried}") from None
            wait = retry_after(exc) if classified.outcome is CallOutcome.RATE_LIMITED else None
            sleep(wait if wait is not None else retry_wait_s * 2 ** attempt)
            attempt += 1


def fetch_history(client: Any, request: FetchRequest, out: str | os.PathLike[str], *,
                  on_chunk: Callable[[ChunkDone], None] | None = None, retries: int = 3,
                  retry_wait_s: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> FetchResult:
    """Download ``request`` into the folder ``out``, resuming from its fetch state.

    Parameters
    ----------
    client
        The historical data client for ``request.asset_class`` (ideally ``raw_data=True`` and
        metered by the account's request budget; see :mod:`daemon.adapters.alpaca.clients`).
    request : FetchRequest
    out : path
        Folder (created if missing). Holds ``<file symbol>.csv`` per symbol, ``quality.json``,
        ``.fetch-state.json`` and ``.chunks/``.
    on_chunk : callable, optional
        Called with a :class:`ChunkDone` after each chunk (reused ones first).
    retries, retry_wait_s
        A 429, 5xx, timeout or connection error is retried up to ``retries`` times, waiting
        ``Retry-After`` (429) or ``retry_wait_s * 2**attempt`` seconds; a 4xx is not retried.
    sleep
        How to wait (tests pass a no-op).

    Returns
    -------
    FetchResult

    Raises
    ------
    FetchError
        ``out`` is a file; the fetch state is unreadable; a request failed for good (its
        status and the server's message, never a key); no symbol had any bar. Chunks finished
        before the error are kept; no final file is written or changed.
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise FetchError(f"--out {folder} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    manifest = _Manifest(folder)
    chunks = plan_chunks(request.symbols, request.start_ns, request.end_ns, period=request.period, tz=request.tz)
    total = len(chunks)
    pending: list[Chunk] = []
    entries: dict[Chunk, dict[str, Any]] = {}
    for chunk in chunks:
        entry = manifest.done(folder, request.key(chunk))
        if entry is None:
            pending.append(chunk)
        else:
            entries[chunk] = entry
    done = 0
    for chunk, entry in entries.items():
        done += 1
        if on_chunk is not None:
            on_chunk(ChunkDone(chunk, int(entry["bars"]), True, done, total))
    import pyarrow as pa

    for chunk in pending:
        what = f"{chunk.symbol} {iso(chunk.start_ns)}..{iso(chunk.end_ns)}"
        fetch = partial(fetch_bars, client, [chunk.symbol], chunk.start_ns, chunk.end_ns,
                        timeframe=request.timeframe, asset_class=request.asset_class, feed=request.feed,
                        adjustment=None if request.asset_class == "crypto" else request.adjustment)
        columns = _fetch_with_retries(fetch, what, retries=retries, retry_wait_s=retry_wait_s,
                                      sleep=sleep)[chunk.symbol]
        key = request.key(chunk)
        relative = Path(CHUNK_DIR) / file_symbol(chunk.symbol) / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.parquet"
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        table = pa.table(dict(zip(BarColumns._fields, columns)))
        _atomic_write(folder, target, partial(_write_parquet, table))
        entry = {"file": relative.as_posix(), "bars": columns.rows, "sha256": _sha256(target)}
        manifest.record(key, entry)
        entries[chunk] = entry
        done += 1
        if on_chunk is not None:
            on_chunk(ChunkDone(chunk, columns.rows, False, done, total))
    return _assemble(request, folder, chunks, entries, fetched=len(pending))


def _read_chunk(path: Path) -> BarColumns:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return BarColumns(*(table.column(name).to_numpy() for name in BarColumns._fields))


def _assemble(request: FetchRequest, folder: Path, chunks: Iterable[Chunk], entries: Mapping[Chunk, dict[str, Any]],
              *, fetched: int) -> FetchResult:
    from backtest.calendar import ALWAYS_OPEN, calendar_for
    from backtest.data_quality import check_bars
    from backtest.sources import BarSeries, write_bars

    by_symbol: dict[str, list[BarColumns]] = {symbol: [] for symbol in request.symbols}
    for chunk in chunks:
        by_symbol[chunk.symbol].append(_read_chunk(folder / entries[chunk]["file"]))
    daily = request.timeframe.unit == "Day"
    staged: list[tuple[str, Path, BarSeries]] = []
    reports = []
    empty: list[str] = []
    for symbol, parts in by_symbol.items():
        merged = BarColumns(*(np.concatenate(column) for column in zip(*parts)))
        merged = merged.take(np.argsort(merged.ts, kind="stable"))
        calendar = None if daily else (ALWAYS_OPEN if request.asset_class == "crypto" else calendar_for(symbol))
        reports.append(check_bars(symbol, merged.ts, merged.open, merged.high, merged.low, merged.close,
                             timeframe_ns=request.timeframe.ns, calendar=calendar,
                             start_ns=request.start_ns, end_ns=request.end_ns))
        if not merged.rows:
            empty.append(symbol)
            continue
        _, first = np.unique(merged.ts, return_index=True)  # first copy of each start, in time order
        kept = merged.take(first)
        name = file_symbol(symbol)
        staged.append((symbol, folder / f"{name}.csv",
                       BarSeries(name, request.timeframe.ns, kept.ts, kept.open, kept.high, kept.low, kept.close,
                                 kept.volume)))
    if not staged:
        raise FetchError(f"no bars for {', '.join(request.symbols)} between {iso(request.start_ns)} and "
                         f"{iso(request.end_ns)} (check the symbols, the dates and the feed)")
    quality = folder / QUALITY_FILE
    _write_json(folder, quality, {"request": request.describe(), "symbols": [r.to_dict() for r in reports]})
    files: dict[str, Path] = {}
    for symbol, path, series in staged:
        _atomic_write(folder, path, partial(write_bars, series))
        files[symbol] = path
    total = len(entries)
    return FetchResult(files=files, reports=reports, quality_file=quality, chunks_total=total,
                       chunks_fetched=fetched, chunks_reused=total - fetched,
                       bars_written=sum(len(series) for _, _, series in staged), empty=empty)
