"""Time helpers. Every timestamp inside tradingd is an ``int`` of nanoseconds since the Unix epoch, UTC.

Integers keep the hot path cheap (no datetime objects per bar) and make ordering exact.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

NANOS_PER_SECOND = 1_000_000_000
NANOS_PER_MINUTE = 60 * NANOS_PER_SECOND
NANOS_PER_HOUR = 60 * NANOS_PER_MINUTE
NANOS_PER_DAY = 24 * NANOS_PER_HOUR

_UNITS = {"s": NANOS_PER_SECOND, "min": NANOS_PER_MINUTE, "m": NANOS_PER_MINUTE, "h": NANOS_PER_HOUR, "d": NANOS_PER_DAY}
_TIMEFRAME = re.compile(r"^\s*(\d+)\s*(s|min|m|h|d)\s*$", re.IGNORECASE)


def parse_timeframe(text: str) -> int:
    """Return the length of a bar timeframe such as ``"1min"``, ``"5m"``, ``"1h"`` or ``"1d"`` in ns.

    Raises
    ------
    ValueError
        If the text is not ``<positive integer><unit>`` with unit one of s, m/min, h, d.

    Examples
    --------
    >>> parse_timeframe("1h") == NANOS_PER_HOUR
    True
    """
    match = _TIMEFRAME.match(text)
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"invalid timeframe {text!r}: expected e.g. '1min', '5m', '1h', '1d'")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def format_timeframe(nanos: int) -> str:
    """Return the shortest text form of a timeframe in ns (inverse of :func:`parse_timeframe`).

    >>> format_timeframe(NANOS_PER_HOUR)
    '1h'
    """
    for unit, size in (("d", NANOS_PER_DAY), ("h", NANOS_PER_HOUR), ("min", NANOS_PER_MINUTE), ("s", NANOS_PER_SECOND)):
        if nanos % size == 0:
            return f"{nanos // size}{unit}"
    raise ValueError(f"timeframe of {nanos} ns is not a whole number of seconds")


def to_datetime(nanos: int) -> datetime:
    """Return the UTC ``datetime`` for epoch nanoseconds (microsecond precision).

    >>> to_datetime(0).isoformat()
    '1970-01-01T00:00:00+00:00'
    """
    return datetime.fromtimestamp(nanos // 1000 / 1_000_000, tz=timezone.utc)


def to_nanos(moment: datetime) -> int:
    """Return epoch nanoseconds for a timezone-aware ``datetime``.

    Raises
    ------
    ValueError
        If ``moment`` is naive (no timezone): tradingd never guesses a timezone.
    """
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: a timezone is required")
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * NANOS_PER_SECOND + delta.microseconds * 1000


def iso(nanos: int) -> str:
    """Return an ISO-8601 UTC string (``...Z``) for epoch nanoseconds; used in CSV and JSON output.

    >>> iso(NANOS_PER_DAY)
    '1970-01-02T00:00:00Z'
    """
    return to_datetime(nanos).isoformat().replace("+00:00", "Z")
