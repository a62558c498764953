"""Trading calendars of the simulated venue: which calendar a symbol trades on, and when a DAY
order submitted at a given time expires.

======================== =============================== ==========================================
symbol                   calendar                        a DAY order submitted at ``ts`` expires
======================== =============================== ==========================================
in the override map      the mapped name                 as for that calendar (rows below)
crypto (rule below)      ``"24/7"``                      at the next UTC midnight after ``ts``
anything else            ``"XNYS"`` (NYSE)               at the close of the session ``ts`` falls
                                                         in, or the next session's close when
                                                         ``ts`` is outside a session
an exchange-calendars    that calendar                   at the first session close after ``ts``
name (e.g. ``"XLON"``)   (early closes included)
======================== =============================== ==========================================

"After" is strict: an order submitted exactly at a close belongs to the next session, as a broker
queues a DAY order sent after the bell for the next day.

Crypto rule (small and explicit, so it never guesses about an equity ticker): a symbol is crypto
when it has a crypto venue prefix (``COINBASE_BTCUSD``, ``BINANCE_BTCUSDT``; see
:data:`CRYPTO_VENUES`), or when, after dropping ``/`` and ``-``, it is a known crypto base
(:data:`CRYPTO_BASES`) followed by a quote in :data:`CRYPTO_QUOTES` (``BTCUSD``, ``ETH/USDT``,
``SOL-EUR``). Anything else (e.g. a new coin) needs an entry in the override map
(``FillConfig.calendars``).

exchange-calendars is imported lazily, only when an equity DAY order needs a session close (it
takes ~0.4 s to import, and ``tradingd --help`` must stay fast); each calendar is built once per
process and kept as an array of session closes (ns UTC).
"""

from __future__ import annotations

import warnings
from typing import Any
from bisect import bisect_right
from collections.abc import Mapping

from core.time import NANOS_PER_DAY, iso

ALWAYS_OPEN = "24/7"
"""Calendar name of a market that never closes: a DAY order lives until the next UTC midnight."""
DEFAULT_CALENDAR = "XNYS"
"""exchange-calendars name used for every symbol that is neither crypto nor in the override map."""

CRYPTO_VENUES = frozenset({"BINANCE", "BINANCEUS", "BITFINEX", "BITSTAMP", "BYBIT", "COINBASE", "CRYPTO",
                           "GDAX", "GEMINI", "KRAKEN", "KUCOIN", "OKX"})
"""Venue prefixes (before the first ``_``) that mark a crypto symbol, e.g. ``COINBASE_BTCUSD``."""
CRYPTO_QUOTES = ("USDT", "USDC", "BUSD", "USD", "EUR")
"""Quote currencies of crypto pairs; longest first so ``BTCUSDT`` is BTC/USDT, not BTCUSD/T."""
CRYPTO_BASES = frozenset({
    "AAVE", "ADA", "ALGO", "ARB", "ATOM", "AVAX", "BAT", "BCH", "BNB", "BTC", "CRV", "DAI", "DOGE", "DOT",
    "ETC", "ETH", "FIL", "GRT", "LINK", "LTC", "MATIC", "MKR", "NEAR", "OP", "PEPE", "SHIB", "SOL", "SUSHI",
    "TRX", "UNI", "USDC", "USDT", "XLM", "XRP", "XTZ", "YFI",
})
"""Crypto base assets recognised in a bare pair such as ``BTCUSD``."""

_RANGE = ("1990-01-01", "2100-12-31")  # sessions built per calendar; ~0.1 s for XNYS
_closes: dict[str, tuple[int, list[int]]] = {}  # calendar name -> (first open, session closes), ns UTC


class CalendarError(ValueError):
    """A calendar name is unknown, or a time lies outside what the calendar covers."""


def is_crypto(symbol: str) -> bool:
    """Return whether ``symbol`` trades around the clock by the crypto rule of this module.

    Examples
    --------
    >>> [is_crypto(s) for s in ("COINBASE_BTCUSD", "BINANCE_BTCUSDT", "ETH/USD", "SOL-EUR", "btcusd")]
    [True, True, True, True, True]
    >>> [is_crypto(s) for s in ("SPY", "AAPL", "USD", "XUSD", "LINK")]
    [False, False, False, False, False]
    """
    upper = symbol.upper()
    venue, sep, _ = upper.partition("_")
    if sep and venue in CRYPTO_VENUES:
        return True
    pair = upper.replace("/", "").replace("-", "")
    for quote in CRYPTO_QUOTES:
        if pair.endswith(quote) and pair[:-len(quote)] in CRYPTO_BASES:
            return True
    return False


def calendar_for(symbol: str, overrides: Mapping[str, str] | None = None) -> str:
    """Return the calendar name ``symbol`` trades on: the override, ``"24/7"`` for crypto, else XNYS.

    Parameters
    ----------
    symbol : str
        Instrument symbol.
    overrides : mapping of str to str, optional
        Symbol -> calendar name (an exchange-calendars name or alias, or ``"24/7"``); wins over the rule.

    Examples
    --------
    >>> calendar_for("SPY"), calendar_for("BTCUSD"), calendar_for("SPY", {"SPY": "XLON"})
    ('XNYS', '24/7', 'XLON')
    """
    if overrides:
        name = overrides.get(symbol)
        if name is not None:
            return name
    return ALWAYS_OPEN if is_crypto(symbol) else DEFAULT_CALENDAR


def check_calendar_name(name: str) -> str:
    """Return ``name`` if it is ``"24/7"`` or a calendar exchange-calendars knows.

    Raises
    ------
    CalendarError
        If exchange-calendars has no calendar (or alias) of that name.
    """
    if name == ALWAYS_OPEN:
        return name
    import exchange_calendars as xcals  # lazy: see the module docstring

    if name not in xcals.get_calendar_names(include_aliases=True):
        raise CalendarError(f"unknown trading calendar {name!r} (an exchange-calendars name such as 'XNYS', "
                            f"or '24/7')")
    return name


def next_close(calendar: str, ts: int) -> int:
    """Return the first session close of ``calendar`` strictly after ``ts``, epoch ns UTC.

    That is when a DAY order submitted at ``ts`` expires: inside a session, that session's close;
    between sessions (overnight, weekend, holiday), the next session's close.

    Parameters
    ----------
    calendar : str
        ``"24/7"`` (closes at every UTC midnight) or an exchange-calendars name.
    ts : int
        Epoch ns UTC.

    Raises
    ------
    CalendarError
        If the calendar is unknown or has no session close after ``ts`` within its range.

    Examples
    --------
    >>> from core.time import iso
    >>> iso(next_close("24/7", 1_700_000_000 * 10**9))
    '2023-11-15T00:00:00Z'
    """
    if calendar == ALWAYS_OPEN:
        return (ts // NANOS_PER_DAY + 1) * NANOS_PER_DAY
    known = _closes.get(calendar)
    if known is None:
        known = _closes[calendar] = _load_closes(calendar)
    first_open, closes = known
    i = bisect_right(closes, ts)
    if i == len(closes) or ts < first_open:
        raise CalendarError(f"calendar {calendar!r} has no session close known after {iso(ts)} "
                            f"(it covers {iso(first_open)} to {iso(closes[-1])})")
    return closes[i]


def exchange_calendar(calendar: str) -> Any:
    """The ``exchange_calendars`` calendar named ``calendar`` over this project's range (built once
    per process and name; imported lazily).

    Raises
    ------
    CalendarError
        If exchange-calendars does not know the name.
    """
    known = _calendars.get(calendar)
    if known is not None:
        return known
    import exchange_calendars as xcals  # lazy: see the module docstring

    check_calendar_name(calendar)
    with warnings.catch_warnings():
        # exchange-calendars 4.x reads tz-aware Series.values, which pandas >= 3.1 deprecates; not ours to fix
        warnings.filterwarnings("ignore", message=".*values returning")
        try:
            cal = xcals.get_calendar(calendar, start=_RANGE[0], end=_RANGE[1])
        except ValueError:  # a calendar whose recorded history starts later: its default range
            cal = xcals.get_calendar(calendar)
        cal.schedule  # computed once here, under the warning filter
    _calendars[calendar] = cal
    return cal


_calendars: dict[str, Any] = {}


def _load_closes(calendar: str) -> tuple[int, list[int]]:
    cal = exchange_calendar(calendar)
    closes = cal.closes.dt.tz_convert(None).to_numpy().astype("int64")
    first_open = cal.opens.dt.tz_convert(None).to_numpy().astype("int64")[0]
    return int(first_open), [int(v) for v in closes]


__all__ = ["ALWAYS_OPEN", "CRYPTO_BASES", "CRYPTO_QUOTES", "CRYPTO_VENUES", "DEFAULT_CALENDAR", "CalendarError",
           "calendar_for", "check_calendar_name", "exchange_calendar", "is_crypto", "next_close"]
