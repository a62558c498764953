"""Benchmark hook: MQTT ingest throughput, bars per second from a producer into the node's queue at QoS 1.

For ``benchmarks/``; needs a running broker (e.g. ``tests.mqtt_broker.MosquittoBroker``). It measures
the whole inbound path (broker -> aiomqtt -> frame validation -> ``core.events.Bar`` -> queue),
not the engine.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from core.events import Bar
from core.time import NANOS_PER_MINUTE
from daemon.adapters.mqtt_bars import MqttBarFeed
from daemon.adapters.mqtt_config import MqttConfig
from daemon.adapters.mqtt_link import MqttLink
from daemon.adapters.mqtt_producer import bar_frame

__all__ = ["IngestResult", "ingest_throughput"]

_FIRST_START = 1_577_923_200_000_000_000  # 2020-01-02T00:00:00Z


@dataclass(frozen=True, slots=True)
class IngestResult:
    """``bars`` received into the queue in ``seconds`` (first publish to last bar queued);
    ``publish_seconds`` is how long the producer took to have them all acknowledged."""

    bars: int
    seconds: float
    bars_per_s: float
    rejected: int
    publish_seconds: float


async def ingest_throughput(config: MqttConfig, *, producer_user: str | None, producer_password: str | None,
                            n_bars: int = 10_000, symbols: Sequence[str] = ("AAPL", "BAC", "IBM", "SPY"),
                            window: int = 200, timeout_s: float = 120.0) -> IngestResult:
    """Measure how fast ``n_bars`` queued QoS-1 bars drain from the broker into an ``asyncio.Queue``.

    The daemon side first connects once to create its persistent session and leaves; the bars are
    then published (the broker queues them for the absent session, as during an outage), and the
    clock runs from the reconnect to the last bar in the queue. So the figure is the ingest path
    alone (broker -> aiomqtt -> frame validation -> ``Bar`` -> queue), not the producer's speed,
    which ``publish_seconds`` reports separately. The broker's ``max_queued_messages`` must be at
    least ``n_bars`` (``tests.mqtt_broker`` sets 100,000).

    Parameters
    ----------
    config : MqttConfig
        The daemon side (``bar_timeframe`` must be ``"1min"``); a fresh client id is used so no
        earlier session's backlog is counted.
    producer_user, producer_password : str or None
        A bar-producer account on the broker.
    n_bars : int
        Bars to send, spread over ``symbols``.
    window : int
        QoS-1 publishes in flight at once on the producer side.
    timeout_s : float
        Give up after this many seconds.

    Returns
    -------
    IngestResult

    Raises
    ------
    TimeoutError
        If the bars did not all arrive within ``timeout_s``.
    """
    import aiomqtt

    daemon = config.model_copy(update={"client_id": f"bench-{uuid.uuid4().hex[:12]}"})
    frames = []
    price = 100.0
    for i in range(n_bars):
        symbol = symbols[i % len(symbols)]
        price *= 1.0001 if i % 3 else 0.9999
        start = _FIRST_START + (i // len(symbols)) * NANOS_PER_MINUTE
        frames.append((daemon.topics.bar(symbol), bar_frame(symbol, "1min", start, price, price * 1.001,
                                                           price * 0.999, price, 1000.0)))
    queue: asyncio.Queue[Bar] = asyncio.Queue()

    async def session() -> tuple[MqttLink, MqttBarFeed, asyncio.Task[None]]:
        link = MqttLink(daemon)
        feed = MqttBarFeed(daemon, queue.put, symbols=symbols)
        link.subscribe(daemon.topics.bars, feed.on_message)
        return link, feed, asyncio.create_task(link.run())

    link, feed, runner = await session()  # creates the persistent session and its subscription
    await asyncio.wait_for(link.connected.wait(), timeout_s)
    link.stop()
    await asyncio.wait_for(runner, timeout_s)
    async with aiomqtt.Client(config.host, config.port, username=producer_user, password=producer_password,
                              timeout=timeout_s, max_inflight_messages=window) as producer:
        producer.pending_calls_threshold = window + 1  # aiomqtt warns above 10 pending publishes
        began = time.perf_counter()
        for at in range(0, n_bars, window):
            await asyncio.gather(*(producer.publish(topic, frame, qos=1) for topic, frame in frames[at:at + window]))
        published = time.perf_counter() - began
    began = time.perf_counter()
    link, feed, runner = await session()
    received = 0
    try:
        async with asyncio.timeout(timeout_s):
            while received < n_bars:
                await queue.get()
                received += 1
        seconds = time.perf_counter() - began
    finally:
        link.stop()
        await asyncio.wait_for(runner, timeout_s)
    return IngestResult(received, seconds, received / seconds, sum(feed.rejected.values()), published)
