"""AlpacaBroker against the local fake Alpaca server, with the real alpaca-py client and a real Engine.

Every submit has three outcomes (accepted, rejected, unknown until looked up); these tests drive
each through the fake's faults and check what a user would see: one order at the broker, the
engine's books, the alerts (never a key, never an HTML page).
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from alerts.sinks import MemoryAlertSink
from backtest.kernel import build_kernel
from backtest.spec import RunSpec
from core.clock import Clock
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.events import CancelOrder, OrderRejected, SubmitOrder
from core.orders import Order
from daemon.adapters.alpaca.clients import RequestBudget, trading_client
from daemon.adapters.alpaca.config import AlpacaConfig, AlpacaCredentials
from state.memory import MemoryStore
from tests.alpaca_fake import FakeAlpaca

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # websockets.legacy, imported by alpaca-py's streams
    from daemon.adapters.alpaca.broker import AlpacaBroker
    from daemon.adapters.alpaca.updates import AlpacaTradeUpdates



async def until(predicate: Callable[[], bool], timeout: float = 8.0, what: str = "condition") -> None:
    """Wait for ``predicate()`` (polling); fail the test naming ``what`` when it never holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Node:
    """Plays the live node for one test: a real Engine behind an event queue that a pump task
    feeds it from, the AlpacaBroker bound to that queue and, optionally, the trade_updates feed.

    Parameters
    ----------
    fake : FakeAlpaca
        The running fake server.
    stream : bool
        Run the AlpacaTradeUpdates feed (events while it is off are lost, as at Alpaca).
    on_reconnect : callable, optional
        Passed to the feed.
    broker_kw
        Overrides of the broker's (fast) test settings.
    """

    def __init__(self, fake: Any, *, stream: bool = False,
                 on_reconnect: Callable[[], Awaitable[None]] | None = None, **broker_kw: Any) -> None:
        self.fake = fake
        self.cfg = AlpacaConfig(trading_url=fake.rest_url, trading_stream_url=fake.trading_ws_url, read_timeout=1.0)
        self.creds = AlpacaCredentials(fake.key_id, fake.secret_key)
        self.client = trading_client(self.creds, self.cfg, paper=True)
        self.alerts = MemoryAlertSink()
        self.budget = RequestBudget(6000, burst=100)
        settings: dict[str, Any] = {"lookup_attempts": 3, "lookup_backoff": 0.05, "cancel_check_delay": 0.3}
        settings.update(broker_kw)
        self.broker = AlpacaBroker(self.client, budget=self.budget, alerts=self.alerts, now=time.time_ns, **settings)
        self.store = MemoryStore()
        self.kernel = build_kernel(RunSpec(), clock=Clock(time.time_ns()), broker=self.broker, store=self.store,
                                   alerts=self.alerts)
        self.engine = self.kernel.engine
        self.events: list[Any] = []  # every event the broker side delivered, in queue order
        self.stream = stream
        self.on_reconnect = on_reconnect
        self.feed: AlpacaTradeUpdates | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._seq = 0

    async def __aenter__(self) -> Node:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.broker.bind(self.enqueue)
        self._tasks.append(asyncio.create_task(self._pump()))
        if self.stream:
            self.feed = AlpacaTradeUpdates(self.creds, self.cfg, self.broker, paper=True, on_reconnect=self.on_reconnect)
            self.feed_task = asyncio.create_task(self.feed.run(self.enqueue))
            feed = self.feed
            await until(lambda: feed.connected, what="the trade_updates stream to connect")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.broker.drain(5)
        if self.feed is not None:
            self.feed_task.cancel()
            await asyncio.wait([self.feed_task], timeout=8)
            assert self.feed_task.done(), "the stream feed did not stop after cancellation"
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.assert_no_secrets()

    async def enqueue(self, event: Any) -> None:
        self.events.append(event)
        await self.queue.put(event)

    async def _pump(self) -> None:
        while True:
            event = await self.queue.get()
            self.engine.handle(event)
            self.queue.task_done()

    # --- actions ---------------------------------------------------------------------------------
    def submit(self, coid: str | None = None, *, quantity: float = 10.0, side: Side = Side.BUY,
               order_type: OrderType = OrderType.MARKET, limit: float | None = None,
               tif: TimeInForce = TimeInForce.GTC, symbol: str = "SPY") -> Order:
        """Submit through the engine's own path (persist the order, then ``broker.submit``)."""
        if coid is None:
            self._seq += 1
            coid = f"t-{self._seq}-{time.time_ns()}"
        now = time.time_ns()
        self.engine.clock.now = max(self.engine.clock.now, now)
        self.engine._submit(SubmitOrder(client_order_id=coid, strategy_id="test", symbol=symbol, side=side,
                                        quantity=quantity, order_type=order_type, limit_price=limit,
                                        time_in_force=tif, ts_event=now, ts_init=now))
        order = self.engine.book.get(coid)
        assert order is not None
        return order

    def cancel(self, order: Order) -> None:
        now = time.time_ns()
        self.engine.handle(CancelOrder(client_order_id=order.client_order_id, ts_event=now, ts_init=now))

    async def settle(self, quiet: float = 0.25) -> None:
        """Wait for the broker's calls, then until no event arrived for ``quiet`` seconds and the
        engine handled everything."""
        await self.broker.drain(15)
        seen = -1
        while seen != len(self.events):
            seen = len(self.events)
            await asyncio.sleep(quiet)
            await self.broker.drain(15)
        await self.queue.join()

    # --- reading ---------------------------------------------------------------------------------
    def of(self, coid: str) -> list[Any]:
        return [e for e in self.events if getattr(e, "client_order_id", None) == coid]

    def kinds(self, coid: str) -> list[str]:
        return [type(e).__name__ for e in self.of(coid)]

    def orders_at_fake(self, coid: str) -> list[dict[str, Any]]:
        return [o for o in self.fake.orders() if o["client_order_id"] == coid]

    def alert_texts(self) -> list[str]:
        return [f"{title} {text} {fields}" for _sev, title, text, fields in self.alerts.alerts]

    def assert_no_secrets(self) -> None:
        texts = self.alert_texts() + [str(e) for e in self.events]
        for secret in (self.fake.secret_key, self.fake.key_id):
            leaked = [t for t in texts if secret in t]
            assert not leaked, f"a key appears in alerts or events: {leaked[:1]}"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def _position(node: Node, symbol: str = "SPY") -> float:
    return node.kernel.portfolio.position(symbol)


# --- outcomes of a submit ------------------------------------------------------------------------
def test_happy_path_a_market_order_is_accepted_then_filled_once():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake, stream=True) as node:
                order = node.submit(quantity=10)
                await node.settle()
                assert node.kinds(order.client_order_id) == ["OrderAccepted", "OrderFilled"]
                accepted, fill = node.of(order.client_order_id)
                (at_fake,) = node.orders_at_fake(order.client_order_id)
                assert accepted.broker_order_id == at_fake["id"]
                execution = fake.executions()[0]
                assert (fill.quantity, fill.cum_quantity, fill.price) == (10.0, 10.0, pytest.approx(execution["price"]))
                assert order.status is OrderStatus.FILLED and order.broker_order_id == at_fake["id"]
                assert _position(node) == 10.0 == fake.positions()["SPY"]
                assert len(node.store.fills) == 1
                assert node.broker.stats["accepted"] == 1 and node.broker.stats["lookups"] == 0

    run(scenario())


def test_an_order_created_before_a_504_is_adopted_by_lookup_not_sent_twice():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake, stream=False) as node:
                fake.faults.execute_then_504(1)
                order = node.submit(quantity=5)
                await node.settle()
                assert len(node.orders_at_fake(order.client_order_id)) == 1
                assert fake.submit_attempts == 1
                # the lookup found it already filled: accepted and the fill, from the snapshot
                assert node.kinds(order.client_order_id) == ["OrderAccepted", "OrderFilled"]
                assert order.status is OrderStatus.FILLED and _position(node) == 5.0
                stats = node.broker.stats
                assert stats["lookups"] >= 1 and stats["resubmits"] == 0 and not node.broker.unresolved
                assert any("504" in text for text in node.alert_texts())

    run(scenario())


def test_422_client_order_id_not_unique_adopts_the_existing_order():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            fake.faults.hold_fills = True
            async with Node(fake) as first:  # e.g. the session before a restart that lost its state
                placed = first.submit("dup-1", order_type=OrderType.LIMIT, limit=50.0)
                await first.settle()
                assert placed.status is OrderStatus.ACCEPTED
            async with Node(fake) as second:  # knows nothing of it: Alpaca answers 422 not unique
                again = second.submit("dup-1", order_type=OrderType.LIMIT, limit=50.0)
                await second.settle()
                assert second.kinds("dup-1") == ["OrderAccepted"]
                assert again.status is OrderStatus.ACCEPTED
                assert again.broker_order_id == placed.broker_order_id
                assert len(second.orders_at_fake("dup-1")) == 1 and fake.submit_attempts == 2

    run(scenario())


def test_a_submit_stalled_past_the_timeout_that_executed_is_adopted_via_lookup():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake, stream=True) as node:
                fake.faults.stall(1, 2.0, path="/v2/orders", method="POST", execute=True)
                order = node.submit(quantity=3)
                await node.settle()
                assert len(node.orders_at_fake(order.client_order_id)) == 1
                assert node.kinds(order.client_order_id) == ["OrderAccepted", "OrderFilled"]
                assert node.broker.stats["resubmits"] == 0 and node.broker.stats["lookups"] >= 1
                assert _position(node) == 3.0
                await until(lambda: len([r for r in fake.requests() if r[0] == "POST"]) == 1
                            and fake.faults.pending() == 0, what="the stalled request to finish")

    run(scenario())


def test_a_submit_stalled_without_effect_is_looked_up_then_resent_once_with_the_same_id():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake, stream=True) as node:
                fake.faults.stall(1, 2.0, path="/v2/orders", method="POST", execute=False)
                order = node.submit(quantity=4)
                await node.settle()
                assert node.broker.stats["resubmits"] == 1
                assert node.kinds(order.client_order_id) == ["OrderAccepted", "OrderFilled"]
                # the stalled request arrives late with the same client_order_id: Alpaca refuses it
                await until(lambda: fake.submit_attempts == 2 and
                            len([r for r in fake.requests() if r[0] == "POST"]) == 2, timeout=6,
                            what="the late request to be answered")
                assert len(node.orders_at_fake(order.client_order_id)) == 1
                await node.settle()
                assert _position(node) == 4.0 == fake.positions()["SPY"]
                assert len(node.store.fills) == 1

    run(scenario())


def test_a_429_storm_places_the_order_once_and_honours_retry_after():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake) as node:
                fake.faults.rate_limit(3, path="/v2/orders", method="POST", retry_after=1)
                order = node.submit(quantity=2, order_type=OrderType.LIMIT, limit=50.0)
                await node.settle()
                assert fake.submit_attempts == 4
                assert len(node.orders_at_fake(order.client_order_id)) == 1
                assert node.kinds(order.client_order_id) == ["OrderAccepted"]
                assert node.broker.stats["rate_limited"] == 3 and node.broker.stats["lookups"] == 0
                assert node.budget.waited_s >= 2.5  # three 1 s Retry-After penalties, for every caller

    run(scenario())


def test_an_html_502_is_resolved_by_lookup_and_the_alert_carries_no_html_and_no_key():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake, stream=True) as node:
                fake.faults.server_error(1, status=502, html=True, path="/v2/orders", method="POST")
                order = node.submit(quantity=6)
                await node.settle()
                assert len(node.orders_at_fake(order.client_order_id)) == 1
                assert order.status is OrderStatus.FILLED and _position(node) == 6.0
                unknown = [text for sev, title, text, _ in node.alerts.alerts if "outcome unknown" in title]
                assert unknown and "502" in unknown[0]
                for text in node.alert_texts():
                    assert "<" not in text and "html" not in text.lower()
        # (keys: checked for every test by Node.__aexit__)

    run(scenario())


def test_a_403_is_an_order_rejected_naming_the_status():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake, stream=True) as node:
                fake.faults.reject_orders(1, status=403, message="insufficient buying power")
                order = node.submit(quantity=1)
                await node.settle()
                (rejected,) = node.of(order.client_order_id)
                assert isinstance(rejected, OrderRejected)
                assert "403" in rejected.reason and "insufficient buying power" in rejected.reason
                assert order.status is OrderStatus.REJECTED and not node.orders_at_fake(order.client_order_id)
                assert node.broker.stats["lookups"] == 0

    run(scenario())


def test_an_order_alpaca_cannot_express_is_rejected_without_a_request():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake) as node:
                order = node.submit("no-price", order_type=OrderType.LIMIT, limit=None)
                await node.settle()
                (rejected,) = node.of("no-price")
                assert isinstance(rejected, OrderRejected) and "limit_price" in rejected.reason
                assert order.status is OrderStatus.REJECTED and fake.submit_attempts == 0

    run(scenario())


def test_a_second_submit_of_a_working_id_is_refused_and_sends_nothing():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake) as node:
                first = node.submit("twice", order_type=OrderType.LIMIT, limit=50.0)
                await node.settle()
                node.broker.submit(first, time.time_ns())  # what a buggy caller could do
                await node.settle()
                assert node.kinds("twice") == ["OrderAccepted", "OrderRejected"]
                assert "duplicate" in node.of("twice")[1].reason
                assert fake.submit_attempts == 1 and len(node.orders_at_fake("twice")) == 1

    run(scenario())


def test_an_outcome_that_cannot_be_looked_up_stays_unresolved_until_reconciliation_finds_it():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake) as node:
                fake.faults.execute_then_504(1)
                fake.faults.server_error(3, status=503, path="/v2/orders:by_client_order_id", method="GET")
                order = node.submit(quantity=7)
                await node.settle()
                assert node.broker.unresolved == {order.client_order_id}
                assert node.of(order.client_order_id) == []  # never rejected locally: it may exist
                assert order.status is OrderStatus.SUBMITTED
                assert [title for sev, title, _, _ in node.alerts.alerts if sev == "error"] == ["order outcome unknown"]
                assert node.broker.stats["resubmits"] == 0 and fake.submit_attempts == 1
                await node.broker.resolve_unknown()  # reconciliation, once Alpaca answers again
                await node.settle()
                assert not node.broker.unresolved
                assert node.kinds(order.client_order_id) == ["OrderAccepted", "OrderFilled"]
                assert order.status is OrderStatus.FILLED and len(node.orders_at_fake(order.client_order_id)) == 1

    run(scenario())


def test_a_submit_that_never_reached_alpaca_is_rejected_at_reconciliation_not_sent_late():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake, max_resubmits=0) as node:
                fake.faults.server_error(1, status=500, path="/v2/orders", method="POST")
                order = node.submit(quantity=1)
                await node.settle()
                assert order.status is OrderStatus.SUBMITTED and node.broker.unresolved == {order.client_order_id}
                await node.broker.resolve_unknown()
                await node.settle()
                (rejected,) = node.of(order.client_order_id)
                assert isinstance(rejected, OrderRejected) and "never reached Alpaca" in rejected.reason
                assert fake.submit_attempts == 1 and not fake.orders()

    run(scenario())


def test_restored_orders_of_unknown_outcome_are_found_after_a_restart():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake) as before:
                fake.faults.execute_then_504(1)
                fake.faults.server_error(3, status=503, path="/v2/orders:by_client_order_id", method="GET")
                lost = before.submit("lost-1", quantity=2)
                await before.settle()
                assert lost.status is OrderStatus.SUBMITTED
            async with Node(fake) as after:  # a new process: the engine restored the order as SUBMITTED
                restored = Order(SubmitOrder(client_order_id="lost-1", strategy_id="test", symbol="SPY",
                                             side=Side.BUY, quantity=2.0, order_type=OrderType.MARKET,
                                             ts_event=1, ts_init=1))
                restored.transition(OrderStatus.SUBMITTED, 2)
                after.engine.book.add(restored)
                after.broker.seed([restored])
                assert after.broker.unresolved == {"lost-1"}
                await after.broker.resolve_unknown()
                await after.settle()
                assert after.kinds("lost-1") == ["OrderAccepted", "OrderFilled"]
                assert restored.status is OrderStatus.FILLED and fake.submit_attempts == 1

    run(scenario())


# --- cancels -------------------------------------------------------------------------------------
def test_an_order_that_fills_before_the_cancel_lands_is_booked_and_not_canceled():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            fake.faults.hold_fills = True
            async with Node(fake) as node:  # no stream: the broker hears of the fill only by lookup
                order = node.submit(quantity=8)
                await node.settle()
                assert order.status is OrderStatus.ACCEPTED
                fake.faults.hold_fills = False
                fake.advance(1)  # it fills at the broker ...
                node.cancel(order)  # ... while tradingd asks to cancel it: 422 already filled
                await node.settle()
                kinds = node.kinds(order.client_order_id)
                assert kinds == ["OrderAccepted", "OrderFilled"]
                assert order.status is OrderStatus.FILLED and _position(node) == 8.0 == fake.positions()["SPY"]
                assert any(r[0] == "DELETE" and r[2] == 422 for r in fake.requests())

    run(scenario())


def test_a_lost_canceled_event_is_recovered_by_the_follow_up_lookup():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake) as node:  # no stream: the canceled event never arrives
                order = node.submit(quantity=3, order_type=OrderType.LIMIT, limit=50.0)
                await node.settle()
                node.cancel(order)
                await node.settle()
                assert node.kinds(order.client_order_id) == ["OrderAccepted", "OrderCanceled"]
                assert order.status is OrderStatus.CANCELED
                (at_fake,) = node.orders_at_fake(order.client_order_id)
                assert at_fake["status"] == "canceled"

    run(scenario())


def test_cancel_with_the_stream_gives_one_cancel_and_no_follow_up_lookup():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake, stream=True, cancel_check_delay=5.0) as node:
                order = node.submit(quantity=3, order_type=OrderType.LIMIT, limit=50.0)
                await node.settle()
                node.cancel(order)
                await node.settle()
                assert node.kinds(order.client_order_id) == ["OrderAccepted", "OrderCanceled"]
                assert not [r for r in fake.requests() if r[0] == "GET" and r[1].startswith("/v2/orders/")]
                node.cancel(order)  # already canceled: no request, no event
                await node.settle()
                assert len([r for r in fake.requests() if r[0] == "DELETE"]) == 1
                assert node.kinds(order.client_order_id) == ["OrderAccepted", "OrderCanceled"]

    run(scenario())


def test_cancel_of_an_order_alpaca_never_saw_gives_no_event():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake) as node:
                ghost = Order(SubmitOrder(client_order_id="ghost", strategy_id="test", symbol="SPY", side=Side.BUY,
                                          quantity=1.0, order_type=OrderType.MARKET, ts_event=1, ts_init=1))
                node.broker.cancel(ghost, time.time_ns())
                await node.settle()
                assert node.events == [] and not [a for a in node.alerts.alerts if a[0] in ("error", "critical")]

    run(scenario())


def test_a_market_fill_in_flight_at_shutdown_is_booked_by_the_drain():
    """SIGTERM stops the trade_updates stream first: a market order accepted just before and
    filled just after must still be booked before the process exits, not at the next start."""
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",), fill_mode="next_bar") as fake:
            async with Node(fake, stream=False) as node:
                order = node.submit(quantity=7)
                await until(lambda: node.kinds(order.client_order_id) == ["OrderAccepted"], what="the acceptance")
                fake.advance(1)  # the fill happens at Alpaca; no stream tells us
                before = node.broker.stats["lookups"]
                await node.broker.drain(5, settle=0.05)
                await node.queue.join()
                assert node.kinds(order.client_order_id) == ["OrderAccepted", "OrderFilled"]
                assert order.status is OrderStatus.FILLED and _position(node) == 7.0 == fake.positions()["SPY"]
                assert node.broker.stats["lookups"] == before + 1
                await node.broker.drain(5, settle=0.05)  # done orders are not looked up again
                assert node.broker.stats["lookups"] == before + 1

    run(scenario())


def test_broker_refuses_bad_settings_and_use_before_bind():
    with pytest.raises(ValueError, match="lookup_attempts"):
        AlpacaBroker(object(), budget=RequestBudget(60), alerts=MemoryAlertSink(), now=time.time_ns, lookup_attempts=0)
    broker = AlpacaBroker(object(), budget=RequestBudget(60), alerts=MemoryAlertSink(), now=time.time_ns)
    order = Order(SubmitOrder(client_order_id="x", strategy_id="s", symbol="SPY", side=Side.BUY, quantity=1.0,
                              order_type=OrderType.MARKET, ts_event=1, ts_init=1))
    with pytest.raises(RuntimeError, match="bind"):
        broker.submit(order, 1)
