"""Quality checks of one symbol's downloaded bars: counts, duplicates, OHLC violations and gaps.

Pure numpy over the columns (no I/O): ``tradingd data fetch`` runs it on what the API returned,
before duplicates are dropped, so the report says what the source delivered.

Gaps are counted against the calendar the symbol trades on (:func:`backtest.calendar.calendar_for`):

* an exchange calendar (``"XNYS"`` for US equities): every regular-session bucket of every session
  in the checked window is expected (minutes 09:30..15:59 New York for 1-minute bars, early closes
  included; for hour bars the clock hours that overlap the session, 09:00..15:00). Bars outside the
  session (pre/post-market) are counted apart, never as gaps. Checked for timeframes that divide an
  hour (1, 5, 15, 30 min, 1 h); others are reported as not checked.
* ``"24/7"`` (crypto): every bucket between the window's ends is expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backtest.calendar import ALWAYS_OPEN, exchange_calendar
from core.time import NANOS_PER_DAY, NANOS_PER_HOUR, iso

__all__ = ["GapReport", "QualityReport", "check_bars", "session_minutes"]

MAX_LISTED = 10
"""Example timestamps and largest gaps listed per symbol (the counts are always complete)."""


@dataclass(frozen=True, slots=True)
class GapReport:
    """Missing bars of one symbol against its calendar.

    Attributes
    ----------
    calendar : str
        ``"XNYS"``-like exchange-calendars name, or ``"24/7"``.
    checked : bool
        False when the timeframe does not divide an hour (exchange calendars) or a day (24/7).
    expected, present, missing : int
        Buckets the calendar expects in the window, how many of them have a bar, how many not.
    sessions : int
        Sessions in the window (exchange calendars; 0 for 24/7).
    missing_by_day : dict of str to int
        Session date (``YYYY-MM-DD``, exchange time) -> missing buckets, only days with some missing.
    days_without_bars : list of str
        Sessions with no bar at all (they are also in ``missing_by_day``).
    outside_session : int
        Bars that start outside every regular session (pre/post-market; 0 for 24/7).
    largest : list of dict
        Up to 10 longest runs of missing buckets: ``{"from": iso, "to": iso, "missing": n}``
        (``to`` is the start of the last missing bucket).
    """

    calendar: str
    checked: bool
    expected: int = 0
    present: int = 0
    missing: int = 0
    sessions: int = 0
    missing_by_day: dict[str, int] = field(default_factory=dict)
    days_without_bars: list[str] = field(default_factory=list)
    outside_session: int = 0
    largest: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {"calendar": self.calendar, "checked": self.checked, "expected": self.expected,
                "present": self.present, "missing": self.missing, "sessions": self.sessions,
                "missing_by_day": dict(self.missing_by_day), "days_without_bars": list(self.days_without_bars),
                "outside_session": self.outside_session, "largest": [dict(g) for g in self.largest]}


@dataclass(frozen=True, slots=True)
class QualityReport:
    """What the bars of one symbol look like.

    Attributes
    ----------
    symbol : str
    bars : int
        Rows received, duplicates included.
    first, last : str or None
        ISO-8601 UTC start of the earliest and the latest bar (None without bars).
    duplicates : int
        Rows whose start repeats an earlier row's (the second and later copies).
    ohlc_violations : int
        Rows breaking at least one of the three rules below (a row may break several).
    low_above_open_close, high_below_open_close, non_positive_price : int
        Rows with ``low > min(open, close)``, with ``high < max(open, close)``, with any price <= 0.
    violation_examples : list of str
        ISO starts of the first (up to 10) rows with any OHLC violation.
    gaps : GapReport or None
        None for timeframes the gap check does not cover (daily and longer bars).
    """

    symbol: str
    bars: int
    first: str | None
    last: str | None
    duplicates: int
    ohlc_violations: int
    low_above_open_close: int
    high_below_open_close: int
    non_positive_price: int
    violation_examples: list[str]
    gaps: GapReport | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (``quality.json`` holds one per symbol)."""
        return {"symbol": self.symbol, "bars": self.bars, "first": self.first, "last": self.last,
                "duplicates": self.duplicates,
                "ohlc_violations": {"rows": self.ohlc_violations, "low_above_open_close": self.low_above_open_close,
                                    "high_below_open_close": self.high_below_open_close,
                                    "non_positive_price": self.non_positive_price,
                                    "examples": list(self.violation_examples)},
                "gaps": self.gaps.to_dict() if self.gaps is not None else None}


def check_bars(symbol: str, ts: np.ndarray, open: np.ndarray, high: np.ndarray, low: np.ndarray,
               close: np.ndarray, *, timeframe_ns: int, calendar: str | None,
               start_ns: int | None = None, end_ns: int | None = None) -> QualityReport:
    """Check one symbol's bars as received.

    Parameters
    ----------
    symbol : str
        Named in the report.
    ts : numpy.ndarray
        int64, shape (n,): bar starts, epoch ns UTC, in any order, duplicates allowed.
    open, high, low, close : numpy.ndarray
        float64, shape (n,): prices, USD.
    timeframe_ns : int
        Bar length in ns (> 0).
    calendar : str or None
        ``"24/7"``, an exchange-calendars name (``"XNYS"``), or None to skip the gap check.
    start_ns, end_ns : int, optional
        The window the bars were requested for, ``[start_ns, end_ns)`` epoch ns UTC: buckets
        missing at its edges count as gaps. Default: the first and just after the last bar.

    Returns
    -------
    QualityReport

    Raises
    ------
    ValueError
        If the arrays differ in length, ``timeframe_ns`` <= 0, or ``start_ns >= end_ns``.
    backtest.calendar.CalendarError
        If ``calendar`` is not a calendar exchange-calendars knows.

    Examples
    --------
    Five 1-minute crypto bars with the 00:02 bar missing and 00:03 twice:

    >>> m = 60_000_000_000
    >>> ts = np.array([0, 1, 3, 3, 4]) * m
    >>> p = np.full(5, 10.0)
    >>> r = check_bars("BTC/USD", ts, p, p, p, p, timeframe_ns=m, calendar="24/7")
    >>> r.bars, r.duplicates, r.gaps.missing, r.gaps.largest
    (5, 1, 1, [{'from': '1970-01-01T00:02:00Z', 'to': '1970-01-01T00:02:00Z', 'missing': 1}])
    """
    ts = np.asarray(ts, dtype=np.int64)
    prices = [np.asarray(a, dtype=np.float64) for a in (open, high, low, close)]
    if any(len(a) != len(ts) for a in prices):
        raise ValueError(f"{symbol}: ts, open, high, low and close must have equal lengths")
    if timeframe_ns <= 0:
        raise ValueError(f"{symbol}: timeframe_ns must be > 0, got {timeframe_ns}")
    if start_ns is not None and end_ns is not None and start_ns >= end_ns:
        raise ValueError(f"{symbol}: start {iso(start_ns)} is not before end {iso(end_ns)}")
    o, h, lo, c = prices
    low_bad = lo > np.minimum(o, c)
    high_bad = h < np.maximum(o, c)
    non_positive = (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)
    any_bad = low_bad | high_bad | non_positive
    unique = np.unique(ts)
    examples = [iso(int(t)) for t in ts[any_bad][:MAX_LISTED]]
    gaps: GapReport | None = None
    windowed = start_ns is not None and end_ns is not None
    if calendar is not None and (len(ts) or windowed) and timeframe_ns < NANOS_PER_DAY:
        first = int(unique[0]) if start_ns is None else start_ns
        last = int(unique[-1]) + timeframe_ns if end_ns is None else end_ns
        if calendar == ALWAYS_OPEN:
            gaps = _gaps_24_7(unique, timeframe_ns, first, last)
        else:
            gaps = _gaps_sessions(unique, timeframe_ns, calendar, first, last)
    return QualityReport(
        symbol=symbol, bars=len(ts), first=iso(int(unique[0])) if len(ts) else None,
        last=iso(int(unique[-1])) if len(ts) else None, duplicates=len(ts) - len(unique),
        ohlc_violations=int(any_bad.sum()), low_above_open_close=int(low_bad.sum()), high_below_open_close=int(high_bad.sum()),
        non_positive_price=int(non_positive.sum()), violation_examples=examples, gaps=gaps)


def session_minutes(calendar: str, start_ns: int, end_ns: int) -> int:
    """Minutes of ``[start_ns, end_ns)`` (epoch ns UTC) that lie in a regular session of ``calendar``.

    ``"24/7"`` counts every minute. Builds the exchange calendar on first use (about 1-2 s, once
    per process); call it off the event loop.

    Raises
    ------
    backtest.calendar.CalendarError
        If ``calendar`` is unknown.

    Examples
    --------
    >>> from core.time import NANOS_PER_MINUTE as m
    >>> session_minutes("24/7", 0, 90 * m)
    90
    """
    minute = 60_000_000_000
    if end_ns <= start_ns:
        return 0
    if calendar == ALWAYS_OPEN:
        return (end_ns - start_ns) // minute
    opens, closes, _ = _sessions(calendar)
    lo = int(np.searchsorted(closes, start_ns, side="right"))
    hi = int(np.searchsorted(opens, end_ns, side="left"))
    overlap = np.minimum(closes[lo:hi], end_ns) - np.maximum(opens[lo:hi], start_ns)
    return int(np.clip(overlap, 0, None).sum() // minute)


def _sessions(calendar: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Session opens and closes (int64 ns UTC, ascending) and labels (``YYYY-MM-DD``) of ``calendar``."""
    known = _SESSIONS.get(calendar)
    if known is None:
        cal = exchange_calendar(calendar)
        opens = cal.opens.dt.tz_convert(None).to_numpy().astype("datetime64[ns]").astype(np.int64)
        closes = cal.closes.dt.tz_convert(None).to_numpy().astype("datetime64[ns]").astype(np.int64)
        labels = np.asarray(cal.opens.index.strftime("%Y-%m-%d"))
        known = _SESSIONS[calendar] = (opens, closes, labels)
    return known


_SESSIONS: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _runs(missing: np.ndarray, step: int) -> list[dict[str, Any]]:
    """The longest runs of consecutive missing buckets (sorted starts), longest first."""
    if not len(missing):
        return []
    breaks = np.flatnonzero(np.diff(missing) != step) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [len(missing)]))
    lengths = ends - starts
    order = np.argsort(-lengths, kind="stable")[:MAX_LISTED]
    return [{"from": iso(int(missing[starts[i]])), "to": iso(int(missing[ends[i] - 1])), "missing": int(lengths[i])}
            for i in order]


def _gaps_24_7(unique: np.ndarray, step: int, first: int, last: int) -> GapReport:
    if NANOS_PER_DAY % step:
        return GapReport(ALWAYS_OPEN, checked=False)
    begin = -(-first // step) * step  # first bucket start at or after the window start
    expected = np.arange(begin, last, step, dtype=np.int64)
    have = np.isin(expected, unique)
    missing = expected[~have]
    return GapReport(ALWAYS_OPEN, checked=True, expected=len(expected), present=int(have.sum()),
                     missing=len(missing), largest=_runs(missing, step))


def _gaps_sessions(unique: np.ndarray, step: int, calendar: str, first: int, last: int) -> GapReport:
    if NANOS_PER_HOUR % step:
        return GapReport(calendar, checked=False)
    opens, closes, labels = _sessions(calendar)
    keep = (closes > first) & (opens < last)  # sessions overlapping the window
    opens, closes, labels = opens[keep], closes[keep], labels[keep]
    by_day: dict[str, int] = {}
    empty: list[str] = []
    all_missing: list[np.ndarray] = []
    expected_total = present_total = 0
    in_session = np.zeros(len(unique), dtype=bool)
    for session_open, session_close, label in zip(opens, closes, labels):
        buckets = np.arange(session_open // step * step, session_close, step, dtype=np.int64)
        buckets = buckets[(buckets >= first) & (buckets < last)]
        lo, hi = np.searchsorted(unique, [session_open // step * step, session_close])
        in_session[lo:hi] = True
        if not len(buckets):
            continue
        have = np.isin(buckets, unique[lo:hi])
        missing = buckets[~have]
        expected_total += len(buckets)
        present_total += int(have.sum())
        if len(missing):
            by_day[str(label)] = len(missing)
            all_missing.append(missing)
            if len(missing) == len(buckets):
                empty.append(str(label))
    window = (unique >= first) & (unique < last)
    gaps = np.concatenate(all_missing) if all_missing else np.empty(0, dtype=np.int64)
    return GapReport(calendar, checked=True, expected=expected_total, present=present_total,
                     missing=expected_total - present_total, sessions=len(opens), missing_by_day=by_day,
                     days_without_bars=empty, outside_session=int((window & ~in_session).sum()),
                     largest=_runs(gaps, step))
