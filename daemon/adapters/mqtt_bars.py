"""Bars from MQTT: validate each frame at the boundary, turn it into a :class:`core.events.Bar`, enqueue it.

A frame on ``{prefix}/bars/{symbol}`` is a JSON object (schema in :mod:`daemon.adapters.mqtt`).
Every frame that cannot be booked is refused with one of these reasons, counted by reason and
logged (at most one line per reason every ``log_every_s``), and the loop goes on:

=====================  ==========================================================================
reason                 the frame ...
=====================  ==========================================================================
``too_large``          is longer than :data:`MAX_FRAME_BYTES`
``malformed_json``     is not UTF-8 JSON
``not_an_object``      is JSON but not an object
``missing_field``      lacks one of symbol, timeframe, start, open, high, low, close, volume
``wrong_type``         has a field of the wrong JSON type (a price as text, a start as a float ...)
``not_finite``         has a NaN or infinite price or volume
``non_positive_price`` has a price <= 0
``price_out_of_range`` has a price outside [``core.bars.MIN_PRICE``, ``core.bars.MAX_PRICE``] USD
``ohlc_inconsistent``  breaks low <= open, close <= high
``bad_volume``         has a volume < 0 or above ``core.bars.MAX_VOLUME``
``bad_timeframe``      names another timeframe than the feed's (``bar_timeframe``)
``bad_start``          has a start that is not ISO-8601 with an offset / epoch ns in 1970..2200
``bad_symbol``         has an empty symbol or one longer than :data:`MAX_SYMBOL_LENGTH`
``symbol_mismatch``    names another symbol than its topic
``unknown_symbol``     is for a symbol the daemon does not trade
``future``             ends more than ``max_clock_skew_s`` after our clock
``out_of_order``       starts before the last accepted bar of its symbol
``duplicate``          starts at the same time as the last accepted bar of its symbol
``retained``           was replayed from the broker's retained store (a stale copy, not a live bar)
``gate``               fails :func:`core.bars.bar_problem` for any other reason
=====================  ==========================================================================
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import structlog

from core.bars import MAX_PRICE, MAX_TS, MAX_VOLUME, MIN_PRICE, bar_problem
from core.events import Bar
from core.time import NANOS_PER_SECOND, parse_timeframe, to_nanos
from daemon.adapters.mqtt_config import MqttConfig
from daemon.adapters.mqtt_link import Inbound

__all__ = ["MAX_FRAME_BYTES", "MAX_SYMBOL_LENGTH", "REASONS", "FrameRejected", "LogLimiter", "MqttBarFeed", "parse_bar_frame",
           "parse_start"]

MAX_SYMBOL_LENGTH = 32
"""Characters; real tickers are far shorter. A symbol is one topic level, so it cannot hold ``/``
(a pair such as BTC/USD needs a topic-safe name such as ``BTCUSD``, both on the topic and in the frame)."""
MAX_FRAME_BYTES = 4096
"""A bar frame is about 150 bytes; anything far larger is not a bar (and is not parsed)."""
REASONS = ("too_large", "malformed_json", "not_an_object", "missing_field", "wrong_type", "not_finite",
           "non_positive_price", "price_out_of_range", "ohlc_inconsistent", "bad_volume", "bad_timeframe",
           "bad_start", "bad_symbol", "symbol_mismatch", "unknown_symbol", "future", "out_of_order", "duplicate", "retained",
           "gate")
"""Every rejection reason (the keys of :attr:`MqttBarFeed.rejected`)."""
_FIELDS = ("symbol", "timeframe", "start", "open", "high", "low", "close", "volume")
_PRICES = ("open", "high", "low", "close")
_FRACTION = re.compile(r"[.,](\d+)")
_log = structlog.get_logger("tradingd.mqtt.bars")


class FrameRejected(ValueError):
    """A bar frame was refused: ``reason`` is one of :data:`REASONS`, ``detail`` says what exactly."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_start(value: object) -> int:
    """Return a bar start in epoch ns UTC from ISO-8601 text with an offset or an int of epoch ns.

    Fractions of a second keep up to 9 digits (ns).

    Raises
    ------
    FrameRejected
        ``wrong_type`` for anything but a string or an int; ``bad_start`` for text without an
        offset, unparsable text, or a time outside 1970..2200.

    Examples
    --------
    >>> parse_start("2020-01-02T14:30:00Z")
    1577975400000000000
    >>> parse_start("2020-01-02T09:30:00.000000001-05:00")
    1577975400000000001
    >>> parse_start(1577975400000000000)
    1577975400000000000
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise FrameRejected("wrong_type", f"start must be ISO-8601 text or int epoch ns, got {type(value).__name__}")
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise FrameRejected("bad_start", f"start {value[:40]!r} is not ISO-8601") from None
        if moment.tzinfo is None:
            raise FrameRejected("bad_start", f"start {value[:40]!r} has no UTC offset (add Z or +00:00)")
        nanos = to_nanos(moment.replace(microsecond=0))
        fraction = _FRACTION.search(value)
        if fraction:  # datetime keeps microseconds only
            nanos += int(fraction.group(1)[:9].ljust(9, "0"))
    else:
        nanos = value
    if not 0 <= nanos < MAX_TS:
        raise FrameRejected("bad_start", f"start {value!r} is outside 1970..2200")
    return nanos


def _number(frame: Mapping[str, Any], name: str) -> float:
    value = frame[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FrameRejected("wrong_type", f"{name} must be a number, got {type(value).__name__}")
    number = float(value) if isinstance(value, float) or abs(value) < 2**1023 else math.inf
    if not math.isfinite(number):
        raise FrameRejected("not_finite", f"{name} is {number!r}")
    return number


def parse_bar_frame(payload: bytes, topic_symbol: str, timeframe_ns: int) -> Bar:
    """Validate one frame from ``{prefix}/bars/{topic_symbol}`` and return its bar.

    Parameters
    ----------
    payload : bytes
        The message body (UTF-8 JSON object).
    topic_symbol : str
        The symbol named by the topic; the frame's ``symbol`` must equal it.
    timeframe_ns : int
        The feed's bar length; the frame's ``timeframe`` must name it. ``ts_init`` = start + this.

    Returns
    -------
    core.events.Bar
        Prices USD, volume shares; passes :func:`core.bars.bar_problem`.

    Raises
    ------
    FrameRejected
        With the first failing check's reason (see the module's table; ordering, duplicates,
        unknown symbols, the clock and retained copies are the feed's checks, not this function's).

    Examples
    --------
    >>> frame = b'{"symbol":"SPY","timeframe":"1min","start":"2020-01-02T14:30:00Z",' \\
    ...         b'"open":324.1,"high":324.5,"low":323.9,"close":324.3,"volume":12000}'
    >>> parse_bar_frame(frame, "SPY", 60_000_000_000).close
    324.3
    >>> parse_bar_frame(frame.replace(b'324.5', b'NaN'), "SPY", 60_000_000_000)
    Traceback (most recent call last):
    ...
    daemon.adapters.mqtt_bars.FrameRejected: not_finite: high is nan
    """
    if len(payload) > MAX_FRAME_BYTES:
        raise FrameRejected("too_large", f"{len(payload)} bytes (at most {MAX_FRAME_BYTES})")
    try:
        frame = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameRejected("malformed_json", str(exc)[:120]) from None
    if not isinstance(frame, dict):
        raise FrameRejected("not_an_object", f"got a JSON {type(frame).__name__}")
    missing = [name for name in _FIELDS if name not in frame]
    if missing:
        raise FrameRejected("missing_field", f"missing {', '.join(missing)}")
    symbol, timeframe = frame["symbol"], frame["timeframe"]
    if not isinstance(symbol, str) or not isinstance(timeframe, str):
        raise FrameRejected("wrong_type", "symbol and timeframe must be strings")
    if not symbol or len(symbol) > MAX_SYMBOL_LENGTH:
        raise FrameRejected("bad_symbol", f"symbol {symbol[:40]!r} is empty or longer than {MAX_SYMBOL_LENGTH}")
    start = parse_start(frame["start"])
    o, h, lo, c = (_number(frame, name) for name in _PRICES)
    volume = _number(frame, "volume")
    for name, price in zip(_PRICES, (o, h, lo, c)):
        if price <= 0.0:
            raise FrameRejected("non_positive_price", f"{name} is {price!r}")
        if not MIN_PRICE <= price <= MAX_PRICE:
            raise FrameRejected("price_out_of_range", f"{name} {price!r} is outside [{MIN_PRICE}, {MAX_PRICE}] USD")
    if not (lo <= o <= h and lo <= c <= h):
        raise FrameRejected("ohlc_inconsistent", f"open {o!r}, high {h!r}, low {lo!r}, close {c!r}")
    if not 0.0 <= volume <= MAX_VOLUME:
        raise FrameRejected("bad_volume", f"volume {volume!r} is not in [0, {MAX_VOLUME}]")
    try:
        frame_timeframe = parse_timeframe(timeframe)
    except ValueError:
        frame_timeframe = -1
    if frame_timeframe != timeframe_ns:
        raise FrameRejected("bad_timeframe", f"timeframe {timeframe[:20]!r}; this feed takes {timeframe_ns // NANOS_PER_SECOND} s bars")
    if symbol != topic_symbol:
        raise FrameRejected("symbol_mismatch", f"symbol {symbol[:20]!r} on the topic of {topic_symbol!r}")
    bar = Bar(symbol, start, start + timeframe_ns, o, h, lo, c, volume)
    problem = bar_problem(bar)
    if problem is not None:
        raise FrameRejected("gate", problem)
    return bar


class LogLimiter:
    """At most one log line per key every ``every_s`` seconds.

    Examples
    --------
    >>> now = [0.0]
    >>> limit = LogLimiter(10.0, clock=lambda: now[0])
    >>> limit.allow("x"), limit.allow("x"), limit.allow("x")
    (0, None, None)
    >>> now[0] = 10.0; limit.allow("x")
    2
    """

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """Return None to stay silent, else how many lines of ``key`` were suppressed since the last."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._suppressed.pop(key, 0)


class MqttBarFeed:
    """Turn bar frames into :class:`core.events.Bar` and ``await enqueue(bar)`` them.

    Register with ``link.subscribe(config.topics.bars, feed.on_message)``.

    Parameters
    ----------
    config : MqttConfig
        ``bar_timeframe``, ``max_clock_skew_s``, ``log_every_s`` and the topic prefix are used.
    enqueue : callable
        ``await enqueue(bar)``; awaiting a full queue holds the feed back (nothing is dropped).
    symbols : iterable of str, optional
        Symbols to accept; others are refused as ``unknown_symbol`` (the persistent session may
        still hold subscriptions of an earlier run). None accepts every symbol.
    now_ns : callable, optional
        The wall clock in epoch ns UTC (for the ``future`` check).

    Attributes
    ----------
    accepted : int
        Bars enqueued.
    rejected : dict of str to int
        Refused frames by reason (every reason of :data:`REASONS` present, 0 when none).
    last_start : dict of str to int
        Start (ns UTC) of the last accepted bar per symbol.
    last_received : dict of str to int
        Our clock (ns UTC) when that bar arrived.
    """

    def __init__(self, config: MqttConfig, enqueue: Callable[[Bar], Awaitable[None]], *,
                 symbols: Iterable[str] | None = None, now_ns: Callable[[], int] = time.time_ns) -> None:
        self.config = config
        self._enqueue = enqueue
        self._symbols = frozenset(symbols) if symbols is not None else None
        self._now_ns = now_ns
        self._timeframe_ns = config.timeframe_ns
        self._skew_ns = config.max_clock_skew_ns
        self._topic_head = f"{config.prefix}/bars/"
        self._limiter = LogLimiter(config.log_every_s)
        self.accepted = 0
        self.rejected: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.last_start: dict[str, int] = {}
        self.last_received: dict[str, int] = {}

    def seed(self, last_start: Mapping[str, int]) -> None:
        """Start the order check from what the engine already booked (after a restart), so bars the
        broker redelivers from before the restart are refused as duplicates or out of order."""
        for symbol, start in last_start.items():
            self.last_start[symbol] = max(start, self.last_start.get(symbol, start))

    async def on_message(self, message: Inbound) -> None:
        """Validate and enqueue one frame; never raises for bad data."""
        topic_symbol = message.topic[len(self._topic_head):]
        try:
            if message.retained:
                raise FrameRejected("retained", "a retained copy replayed by the broker on subscribe, not a live bar")
            bar = parse_bar_frame(message.payload, topic_symbol, self._timeframe_ns)
            self._check(bar)
        except FrameRejected as rejected:
            self._reject(rejected, topic_symbol)
            return
        self.last_start[bar.symbol] = bar.ts_event
        self.last_received[bar.symbol] = self._now_ns()
        self.accepted += 1
        await self._enqueue(bar)

    def _check(self, bar: Bar) -> None:
        if self._symbols is not None and bar.symbol not in self._symbols:
            raise FrameRejected("unknown_symbol", f"{bar.symbol!r} is not traded here")
        now = self._now_ns()
        if bar.ts_init > now + self._skew_ns:
            raise FrameRejected("future", f"bar ends {(bar.ts_init - now) / NANOS_PER_SECOND:.1f} s after our clock")
        last = self.last_start.get(bar.symbol)
        if last is not None and bar.ts_event <= last:
            reason = "duplicate" if bar.ts_event == last else "out_of_order"
            raise FrameRejected(reason, f"start {bar.ts_event} ns is not after the last accepted {last} ns")

    def _reject(self, rejected: FrameRejected, topic_symbol: str) -> None:
        self.rejected[rejected.reason] += 1
        suppressed = self._limiter.allow(rejected.reason)
        if suppressed is not None:
            _log.warning("mqtt bar frame rejected", reason=rejected.reason, detail=rejected.detail,
                         symbol=topic_symbol[:40], total=self.rejected[rejected.reason], suppressed=suppressed)

    def health(self) -> dict[str, Any]:
        """JSON-able counters: accepted, rejected by reason (only non-zero), last bar per symbol."""
        return {"accepted": self.accepted, "rejected": {k: v for k, v in self.rejected.items() if v},
                "last_start": dict(self.last_start), "last_received": dict(self.last_received)}
