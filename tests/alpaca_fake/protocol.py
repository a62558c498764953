"""Wire shapes of the fake Alpaca server: timestamps, number strings, error bodies, models, msgpack.

Everything here is pure (no I/O, no state). The shapes follow what alpaca-py 0.44 parses, as documented
in ``/work/shared/ALPACA_MQTT_NOTES.md`` §2-§6: money and quantities of the trading API are JSON
**strings**, errors are compact JSON ``{"code":…,"message":…}`` with sorted keys, stream timestamps are
msgpack Timestamp extensions (type -1).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import msgpack  # type: ignore[import-untyped]

NEW_YORK = ZoneInfo("America/New_York")
UTC = timezone.utc
_ASSET_NAMESPACE = uuid.UUID("5f1b3c4e-2d7a-4c1e-9b8f-6a0d2e4c8b10")

#: Order statuses in which an order can still fill or be canceled (``GET /v2/orders?status=open``).
OPEN_STATUSES = frozenset({"new", "accepted", "partially_filled", "pending_new", "held", "accepted_for_bidding",
                           "pending_cancel", "pending_replace", "calculated"})


class ApiError(Exception):
    """An HTTP error answer of the fake: ``status`` and the JSON ``body`` Alpaca would send.

    Parameters
    ----------
    status : int
        HTTP status code.
    body : dict
        JSON body; normally ``{"code": int, "message": str}`` plus endpoint-specific keys.
    """

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body.get('message', '')}")
        self.status = status
        self.body = body


def error(status: int, code: int, message: str, **extra: Any) -> ApiError:
    """Build an :class:`ApiError` with Alpaca's ``{"code","message"}`` body (plus ``extra`` keys).

    Examples
    --------
    >>> e = error(404, 40410000, "order not found")
    >>> (e.status, dumps(e.body))
    (404, '{"code":40410000,"message":"order not found"}')
    """
    return ApiError(status, {"code": code, "message": message, **extra})


def invalid(message: str) -> ApiError:
    """A 422 validation error (code 40010001), the answer to a bad field of a trading request."""
    return error(422, 40010001, message)


def dumps(body: Any) -> str:
    """Compact JSON with sorted keys, as Alpaca's Go servers write it.

    Examples
    --------
    >>> dumps({"message": "x", "code": 1})
    '{"code":1,"message":"x"}'
    """
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def num(value: float | None) -> str | None:
    """Format a number as Alpaca's decimal string (no exponent, no trailing zeros); ``None`` stays ``None``.

    Examples
    --------
    >>> [num(2.0), num(327.77), num(-0.0), num(1e-7), num(None)]
    ['2', '327.77', '0', '0.0000001', None]
    """
    if value is None:
        return None
    text = f"{float(value):.9f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def iso(ts: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z`` (``2024-01-02T14:30:00.000000Z``).

    Examples
    --------
    >>> iso(datetime(2024, 1, 2, 14, 30, tzinfo=UTC))
    '2024-01-02T14:30:00.000000Z'
    """
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_seconds(ts: datetime) -> str:
    """RFC 3339 UTC to the second (``2024-01-02T14:30:00Z``), the form of bar timestamps."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, name: str) -> datetime:
    """Parse an RFC 3339 timestamp or a ``YYYY-MM-DD`` date (midnight UTC) from query parameter ``name``.

    Raises
    ------
    ValueError
        When ``text`` is not such a timestamp; the message names the parameter.

    Examples
    --------
    >>> parse_time("2024-01-02T09:30:00-05:00", "start")
    datetime.datetime(2024, 1, 2, 14, 30, tzinfo=datetime.timezone.utc)
    >>> parse_time("2024-01-02", "end").isoformat()
    '2024-01-02T00:00:00+00:00'
    """
    raw = text.strip().replace(" ", "+")  # a literal '+' in a query string arrives as a space
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"invalid {name}: {text!r} is not an RFC 3339 timestamp or YYYY-MM-DD date") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def asset_id(symbol: str) -> str:
    """Stable asset UUID of ``symbol`` (the same on every run, like Alpaca's)."""
    return str(uuid.uuid5(_ASSET_NAMESPACE, symbol))


def account_id(account_number: str) -> str:
    """Stable account UUID derived from the account number."""
    return str(uuid.uuid5(_ASSET_NAMESPACE, "account:" + account_number))


def is_uuid(text: str) -> bool:
    """True when ``text`` is a UUID in any of Python's accepted spellings."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def msgpack_ts(ts: datetime) -> msgpack.Timestamp:
    """The msgpack Timestamp extension (type -1) alpaca-py expects in stream ``t`` fields."""
    ts = ts.astimezone(UTC)
    return msgpack.Timestamp(int(ts.replace(microsecond=0).timestamp()), ts.microsecond * 1000)


def pack(messages: list[dict[str, Any]]) -> bytes:
    """One data-stream frame: an msgpack **array** of message maps.

    Examples
    --------
    >>> pack([{"T": "success", "msg": "connected"}]).hex()
    '9182a154a773756363657373a36d7367a9636f6e6e6563746564'
    """
    return msgpack.packb(messages)


def encode_token(parts: list[str]) -> str:
    """Opaque base64 page token holding ``parts`` joined by ``|`` (clients only echo it back)."""
    return base64.b64encode("|".join(parts).encode()).decode()


def decode_token(token: str, n_parts: int) -> list[str]:
    """Inverse of :func:`encode_token`.

    Raises
    ------
    ValueError
        When ``token`` was not produced by :func:`encode_token` with ``n_parts`` parts.

    Examples
    --------
    >>> decode_token(encode_token(["SPY", "2024-01-02T14:30:00Z"]), 2)
    ['SPY', '2024-01-02T14:30:00Z']
    """
    try:
        parts = base64.b64decode(token.encode(), validate=True).decode().split("|")
    except (binascii.Error, UnicodeDecodeError):
        parts = []
    if len(parts) != n_parts:
        raise ValueError(f"invalid page_token {token!r}")
    return parts


# ----------------------------------------------------------------------------------------------- calendar


def session_of(day: date) -> tuple[datetime, datetime] | None:
    """Regular session (open, close) in UTC of ``day``: weekdays 09:30-16:00 New York, no holidays."""
    if day.weekday() >= 5:
        return None
    open_ny = datetime(day.year, day.month, day.day, 9, 30, tzinfo=NEW_YORK)
    close_ny = datetime(day.year, day.month, day.day, 16, 0, tzinfo=NEW_YORK)
    return open_ny.astimezone(UTC), close_ny.astimezone(UTC)


def clock_json(now: datetime) -> dict[str, Any]:
    """``GET /v2/clock`` body at market time ``now`` (timestamps with New York offset)."""
    day = now.astimezone(NEW_YORK).date()
    session = session_of(day)
    is_open = session is not None and session[0] <= now < session[1]
    next_open = next_close = None
    for k in range(0, 10):
        s = session_of(day + timedelta(days=k))
        if s is None:
            continue
        if next_open is None and s[0] > now:
            next_open = s[0]
        if next_close is None and s[1] > now:
            next_close = s[1]
        if next_open and next_close:
            break
    assert next_open is not None and next_close is not None  # a weekday falls within any 10 days
    return {"timestamp": now.astimezone(NEW_YORK).isoformat(), "is_open": is_open,
            "next_open": next_open.astimezone(NEW_YORK).isoformat(),
            "next_close": next_close.astimezone(NEW_YORK).isoformat()}


def calendar_json(start: date, end: date) -> list[dict[str, str]]:
    """``GET /v2/calendar`` body: one entry per weekday in [start, end], times as ``HH:MM``."""
    out: list[dict[str, str]] = []
    day = start
    while day <= end:
        if session_of(day) is not None:
            settle = day + timedelta(days=1)
            while settle.weekday() >= 5:
                settle += timedelta(days=1)
            out.append({"date": day.isoformat(), "open": "09:30", "close": "16:00", "session_open": "0400",
                        "session_close": "2000", "settlement_date": settle.isoformat()})
        day += timedelta(days=1)
    return out


# ----------------------------------------------------------------------------------------------- models

class Bar(NamedTuple):
    """One OHLCV bar of ``symbol`` starting at ``t`` (UTC); prices in USD, ``v`` in shares (units for crypto)."""

    symbol: str
    t: datetime
    o: float
    h: float
    l: float  # noqa: E741  (Alpaca's field name)
    c: float
    v: float
    n: int
    vw: float

    def rest(self) -> dict[str, Any]:
        """Historical-bars JSON (``n`` and ``vw`` present: alpaca-py requires them)."""
        return {"t": iso_seconds(self.t), "o": self.o, "h": self.h, "l": self.l, "c": self.c, "v": self.v,
                "n": self.n, "vw": self.vw}

    def stream(self) -> dict[str, Any]:
        """Data-stream message (``T`` = ``"b"``, ``t`` as msgpack Timestamp)."""
        return {"T": "b", "S": self.symbol, "o": self.o, "h": self.h, "l": self.l, "c": self.c, "v": self.v,
                "t": msgpack_ts(self.t), "n": self.n, "vw": self.vw}

    def plain(self) -> dict[str, Any]:
        """The stream message with ``t`` as an aware UTC datetime (what :meth:`FakeAlpaca.advance` returns)."""
        return {"T": "b", "S": self.symbol, "o": self.o, "h": self.h, "l": self.l, "c": self.c, "v": self.v,
                "t": self.t, "n": self.n, "vw": self.vw}


def _opt_iso(ts: datetime | None) -> str | None:
    return None if ts is None else iso(ts)


@dataclass
class OrderRecord:
    """The fake venue's state of one order; :meth:`to_json` gives Alpaca's order object.

    Quantities in shares (units for crypto), prices in USD; ``qty`` is ``None`` for a notional order
    until it fills.
    """

    id: str
    client_order_id: str
    symbol: str
    asset_class: str
    side: str
    type: str
    time_in_force: str
    qty: float | None
    notional: float | None
    limit_price: float | None
    stop_price: float | None
    extended_hours: bool
    position_intent: str
    created_at: datetime
    status: str = "accepted"
    filled_qty: float = 0.0
    filled_value: float = 0.0  # sum of qty * price over the fills, for the average price
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    triggered: bool = False  # a stop / stop_limit whose stop price was reached
    external: bool = False  # placed "outside tradingd" (web UI, another program)
    legs: list[Any] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        """True while the order can still fill or be canceled."""
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> float | None:
        """Shares still to fill; ``None`` for an unfilled notional order (size known at the fill)."""
        return None if self.qty is None else max(0.0, self.qty - self.filled_qty)

    def to_json(self) -> dict[str, Any]:
        """Alpaca's order JSON (numbers as strings, every key the SDK reads present)."""
        avg = self.filled_value / self.filled_qty if self.filled_qty > 0 else None
        return {
            "id": self.id, "client_order_id": self.client_order_id,
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at or self.created_at),
            "submitted_at": iso(self.created_at), "filled_at": _opt_iso(self.filled_at),
            "expired_at": _opt_iso(self.expired_at), "canceled_at": _opt_iso(self.canceled_at),
            "failed_at": _opt_iso(self.failed_at), "replaced_at": _opt_iso(self.replaced_at),
            "replaced_by": self.replaced_by, "replaces": self.replaces,
            "asset_id": asset_id(self.symbol), "symbol": self.symbol, "asset_class": self.asset_class,
            "notional": num(self.notional), "qty": num(self.qty), "filled_qty": num(self.filled_qty),
            "filled_avg_price": num(avg), "order_class": "", "order_type": self.type, "type": self.type,
            "side": self.side, "position_intent": self.position_intent, "time_in_force": self.time_in_force,
            "limit_price": num(self.limit_price), "stop_price": num(self.stop_price), "status": self.status,
            "extended_hours": self.extended_hours, "legs": None, "trail_percent": None, "trail_price": None,
            "hwm": None, "expires_at": None, "subtag": None, "source": "access_key" if not self.external else None,
        }


def position_json(symbol: str, asset_class: str, qty: float, avg_price: float, price: float,
                  lastday_price: float, held: float) -> dict[str, Any]:
    """Alpaca's position JSON: signed ``qty`` (negative = short), every number a string.

    Parameters
    ----------
    symbol, asset_class : str
        Symbol and ``us_equity`` / ``crypto``.
    qty : float
        Signed position, shares or units.
    avg_price, price, lastday_price : float
        Average entry price, last price and previous close, USD.
    held : float
        Quantity held by working orders that would reduce the position.
    """
    market_value = qty * price
    cost_basis = qty * avg_price
    pl = market_value - cost_basis
    intraday = qty * (price - lastday_price)
    return {
        "asset_id": asset_id(symbol), "symbol": symbol,
        "exchange": "CRYPTO" if asset_class == "crypto" else "NASDAQ", "asset_class": asset_class,
        "asset_marginable": asset_class != "crypto", "qty": num(qty), "avg_entry_price": num(avg_price),
        "side": "long" if qty > 0 else "short", "market_value": num(market_value), "cost_basis": num(cost_basis),
        "unrealized_pl": num(pl), "unrealized_plpc": num(pl / abs(cost_basis) if cost_basis else 0.0),
        "unrealized_intraday_pl": num(intraday),
        "unrealized_intraday_plpc": num(intraday / abs(qty * lastday_price) if lastday_price else 0.0),
        "current_price": num(price), "lastday_price": num(lastday_price),
        "change_today": num(price / lastday_price - 1.0 if lastday_price else 0.0),
        "qty_available": num(qty - held if qty > 0 else qty + held),
    }


def account_json(account_number: str, *, cash: float, long_value: float, short_value: float,
                 buying_power: float, last_equity: float, created_at: datetime) -> dict[str, Any]:
    """Alpaca's account JSON (money as strings, USD; ``short_value`` is negative or zero)."""
    equity = cash + long_value + short_value
    return {
        "id": account_id(account_number), "account_number": account_number, "status": "ACTIVE",
        "crypto_status": "ACTIVE", "currency": "USD", "buying_power": num(buying_power),
        "regt_buying_power": num(buying_power), "daytrading_buying_power": num(buying_power),
        "effective_buying_power": num(buying_power), "non_marginable_buying_power": num(buying_power),
        "options_buying_power": num(buying_power), "bod_dtbp": "0", "cash": num(cash), "accrued_fees": "0",
        "pending_transfer_in": "0", "pending_transfer_out": "0", "portfolio_value": num(equity),
        "pattern_day_trader": False, "trading_blocked": False, "transfers_blocked": False,
        "account_blocked": False, "created_at": iso(created_at), "trade_suspended_by_user": False,
        "multiplier": "1", "shorting_enabled": True, "equity": num(equity), "last_equity": num(last_equity),
        "long_market_value": num(long_value), "short_market_value": num(short_value), "position_market_value":
        num(long_value - short_value), "initial_margin": "0", "maintenance_margin": "0",
        "last_maintenance_margin": "0", "sma": "0", "daytrade_count": 0, "options_approved_level": 0,
        "options_trading_level": 0, "crypto_tier": 1,
    }
