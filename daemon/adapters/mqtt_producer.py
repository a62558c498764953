"""Publish bar files to ``{prefix}/bars/{symbol}`` as the feed's JSON frames (``tradingd mqtt publish-bars``).

Bars of all files are merged by start time (ties by symbol) and sent at QoS 1, one at a time: the
next bar leaves only once the broker acknowledged the previous one (PUBACK). When the connection
breaks the producer reconnects with backoff and sends the unacknowledged bar again, so no bar is
lost across a broker restart; a bar may then arrive twice, which the feed refuses as a
``duplicate``. A broker that refuses our credentials ends the run (retrying cannot help).
"""

from __future__ import annotations

import asyncio
import heapq
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from core.time import NANOS_PER_SECOND, format_timeframe, iso
from daemon.adapters.mqtt_link import Backoff

if TYPE_CHECKING:
    from backtest.sources import BarSeries

__all__ = ["ProducerError", "PublishReport", "bar_frame", "merged", "publish_bars"]

_AUTH_CODES = frozenset({4, 5, 134, 135})  # bad username or password / not authorized (v3 and v5 codes)
_log = structlog.get_logger("tradingd.mqtt.producer")


class ProducerError(RuntimeError):
    """The broker refused the producer's credentials (retrying cannot help)."""


@dataclass(frozen=True, slots=True)
class PublishReport:
    """What a :func:`publish_bars` run did: bars acknowledged by the broker, bars sent again after
    a broken connection, reconnects, and wall seconds."""

    published: int
    resent: int
    reconnects: int
    seconds: float


def bar_frame(symbol: str, timeframe: str, start_ns: int, open_: float, high: float, low: float, close: float,
              volume: float) -> bytes:
    """Return the JSON frame of one bar (the schema in :mod:`daemon.adapters.mqtt`).

    ``start`` is ISO-8601 UTC when it is a whole number of microseconds, else epoch ns.

    Examples
    --------
    >>> bar_frame("SPY", "1min", 1577975400000000000, 324.1, 324.5, 323.9, 324.3, 12000.0)
    b'{"symbol":"SPY","timeframe":"1min","start":"2020-01-02T14:30:00Z","open":324.1,"high":324.5,"low":323.9,"close":324.3,"volume":12000.0}'
    """
    start: str | int = iso(start_ns) if start_ns % 1000 == 0 else start_ns
    return json.dumps({"symbol": symbol, "timeframe": timeframe, "start": start, "open": open_, "high": high,
                       "low": low, "close": close, "volume": volume}, separators=(",", ":")).encode()


def merged(series: Sequence[BarSeries]) -> Iterator[tuple[int, str, bytes]]:
    """Yield ``(start ns, symbol, frame)`` of every bar of ``series`` by start time, ties by symbol."""
    def one(s: BarSeries) -> Iterator[tuple[int, str, bytes]]:
        timeframe = format_timeframe(s.timeframe_ns)
        for i in range(len(s)):
            start = int(s.ts_event[i])
            yield start, s.symbol, bar_frame(s.symbol, timeframe, start, float(s.open[i]), float(s.high[i]),
                                             float(s.low[i]), float(s.close[i]), float(s.volume[i]))

    return heapq.merge(*(one(s) for s in series), key=lambda item: (item[0], item[1]))


async def publish_bars(series: Sequence[BarSeries], *, host: str = "127.0.0.1", port: int = 1883,
                       username: str | None = None, password: str | None = None, prefix: str = "tradingd",
                       speed: float = 0.0, client_id: str | None = None, timeout_s: float = 5.0,
                       reconnect_min_s: float = 0.2, reconnect_max_s: float = 5.0,
                       on_published: Callable[[int, str], Awaitable[None] | None] | None = None) -> PublishReport:
    """Publish every bar of ``series`` at QoS 1, paced, reconnecting until all are acknowledged.

    Parameters
    ----------
    series : sequence of backtest.sources.BarSeries
        One per symbol (``backtest.data.load_data``).
    host, port, username, password, client_id
        The broker and our account on it.
    prefix : str
        Topic prefix; bars go to ``{prefix}/bars/{symbol}``.
    speed : float
        Bar-seconds per wall second (3600: an hourly bar every second); 0 sends as fast as the
        broker acknowledges. After an outage the schedule catches up without pausing.
    timeout_s : float
        Seconds to wait for a connection or an acknowledgement before treating it as lost.
    reconnect_min_s, reconnect_max_s : float
        Backoff between reconnect attempts.
    on_published : callable, optional
        Called (and awaited if it returns an awaitable) as ``on_published(count, symbol)`` after each
        acknowledged bar.

    Returns
    -------
    PublishReport

    Raises
    ------
    ProducerError
        If the broker refuses the credentials.
    ValueError
        If ``speed`` < 0.
    """
    import aiomqtt
    from aiomqtt.exceptions import MqttConnectError

    if speed < 0:
        raise ValueError(f"speed must be >= 0, got {speed}")
    bars = merged(series)
    pending = next(bars, None)
    first_ns = pending[0] if pending else 0
    backoff = Backoff(reconnect_min_s, reconnect_max_s, 0.3)
    began = time.monotonic()
    published = resent = reconnects = 0
    retrying = False
    while pending is not None:
        client = aiomqtt.Client(host, port, username=username, password=password, identifier=client_id,
                                timeout=timeout_s, keepalive=max(5, int(timeout_s * 2)))
        try:
            async with client:
                backoff.reset()
                while pending is not None:
                    start_ns, symbol, frame = pending
                    if speed > 0:
                        due = began + (start_ns - first_ns) / NANOS_PER_SECOND / speed
                        wait = due - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                    await client.publish(f"{prefix}/bars/{symbol}", frame, qos=1)
                    published += 1
                    resent += retrying
                    retrying = False
                    if on_published is not None:
                        result = on_published(published, symbol)
                        if result is not None:
                            await result
                    pending = next(bars, None)
        except MqttConnectError as exc:
            code = getattr(exc.rc, "value", exc.rc)
            if code in _AUTH_CODES:
                raise ProducerError(f"the broker at {host}:{port} refused user {username!r}: {exc}") from None
            delay = backoff.next()
            _log.warning("mqtt producer cannot connect", error=str(exc), retry_in_s=round(delay, 3))
            await asyncio.sleep(delay)
        except aiomqtt.MqttError as exc:
            reconnects += 1
            retrying = True
            delay = backoff.next()
            _log.warning("mqtt producer connection lost; resending the unacknowledged bar", error=str(exc),
                         published=published, retry_in_s=round(delay, 3))
            await asyncio.sleep(delay)
    return PublishReport(published, resent, reconnects, time.monotonic() - began)
