"""The broker conformance suite (backtest.broker_checks) over AlpacaBroker against the fake server.

The checks are synchronous; the broker lives on an event loop. A loop thread plays the live node:
the broker and its trade_updates feed run there, the checks call ``submit``/``cancel`` from the
test thread (the broker hands those calls to its loop) and a :class:`DrainingHarness` collects
what arrived on the queue once the broker's calls are done and the stream has been quiet.
The market trades through ``fake.advance`` (market orders fill at once at the last close).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Sequence
from typing import Any

import pytest

from alerts.sinks import MemoryAlertSink
from backtest.broker_checks import CHECKS, CheckSettings, DrainingHarness, yield_checks
from daemon.adapters.alpaca.clients import RequestBudget, trading_client
from daemon.adapters.alpaca.config import AlpacaConfig, AlpacaCredentials
from tests.daemon.alpaca.test_broker import AlpacaBroker, AlpacaTradeUpdates, FakeAlpaca

_QUIET_S = 0.2  # the stream is considered done with an action after this long without an update


class LoopNode:
    """An event loop in a thread with the broker and its stream feed bound to a collecting queue."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="alpaca-node", daemon=True)
        self.thread.start()
        cfg = AlpacaConfig(trading_url=fake.rest_url, trading_stream_url=fake.trading_ws_url, read_timeout=1.0)
        creds = AlpacaCredentials(fake.key_id, fake.secret_key)
        self.alerts = MemoryAlertSink()
        self.broker = AlpacaBroker(trading_client(creds, cfg, paper=True), budget=RequestBudget(6000, burst=100),
                                   alerts=self.alerts, now=time.time_ns, lookup_attempts=3, lookup_backoff=0.05,
                                   cancel_check_delay=0.5)
        self.feed = AlpacaTradeUpdates(creds, cfg, self.broker, paper=True)
        self.received: list[Any] = []
        self._taken = 0
        self._last_arrival = time.monotonic()
        self.call(self._start())

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        self.broker.bind(self._enqueue)
        self.feed_task = asyncio.create_task(self.feed.run(self._enqueue))
        deadline = time.monotonic() + 8
        while not self.feed.connected:
            if time.monotonic() > deadline:
                raise AssertionError("the trade_updates stream did not connect")
            await asyncio.sleep(0.02)

    async def _enqueue(self, event: Any) -> None:
        self.received.append(event)
        self._last_arrival = time.monotonic()

    async def _drain(self) -> list[Any]:
        await self.broker.drain(15)
        while time.monotonic() - self._last_arrival < _QUIET_S or self.broker.stats["in_flight"]:
            await asyncio.sleep(0.05)
            await self.broker.drain(15)
        new, self._taken = self.received[self._taken:], len(self.received)
        return new

    def drain(self) -> Sequence[Any]:
        return self.call(self._drain())

    def trade(self, symbol: str, ts: int) -> Sequence[Any]:
        self.fake.advance(1)
        return []

    def close(self) -> None:
        async def stop() -> None:
            self.feed_task.cancel()
            await asyncio.wait([self.feed_task], timeout=8)
            await self.broker.drain(5)

        try:
            self.call(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.mark.parametrize("name", list(CHECKS))
def test_alpaca_broker_passes_the_broker_conformance_check(name):
    with FakeAlpaca(symbols=("SPY",)) as fake:
        nodes: list[LoopNode] = []

        def make_broker() -> Any:
            node = LoopNode(fake)
            nodes.append(node)
            return node.broker

        def harness(broker: Any) -> DrainingHarness:
            node = next(n for n in nodes if n.broker is broker)
            return DrainingHarness(broker, node.drain, node.trade)

        settings = CheckSettings(symbol="SPY", price=fake.last_price("SPY"), quantity=10.0,
                                 id_prefix=f"conf-{time.time_ns()}", max_trade_steps=5)
        try:
            (run,) = [r for n, r in yield_checks(make_broker, harness=harness, settings=settings) if n == name]
            outcome = run()
        finally:
            for node in nodes:
                node.close()
        assert outcome == "passed", f"{name}: {outcome}"
        for node in nodes:
            serious = [a for a in node.alerts.alerts if a[0] in ("error", "critical")]
            assert not serious, serious
            secrets = (fake.secret_key, fake.key_id)
            assert not [a for a in node.alerts.alerts if any(s in str(a) for s in secrets)]
