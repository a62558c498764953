"""The Alpaca market-data feed against the local fake Alpaca server, through the real alpaca-py
streams and historical clients: live bars, reconnect backfill, restart backfill, crypto, and a
stream that gives up."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator

import msgpack  # type: ignore[import-untyped]
import pytest
from aiohttp import WSMsgType, web

from alerts.sinks import MemoryAlertSink
from core.events import Bar
from core.time import NANOS_PER_MINUTE, to_nanos
from daemon.adapters.alpaca.clients import RequestBudget, crypto_data_client, data_client
from daemon.adapters.alpaca.config import AlpacaConfig, AlpacaCredentials
from daemon.adapters.alpaca.feed import AlpacaMarketDataFeed, FeedStopped
from daemon.adapters.alpaca.history import fetch_bars
from tests.alpaca_fake import FakeAlpaca

M = NANOS_PER_MINUTE
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _now(fake: FakeAlpaca) -> int:
    """The fake's clock: the end of its last published minute, epoch ns UTC."""
    return to_nanos(fake.now_ts) + M


def _feed(fake: FakeAlpaca, symbols: tuple[str, ...] = ("SPY", "QQQ"), *, crypto: bool = False,
          last_bar_ts: dict[str, int] | None = None, max_minutes: int = 60,
          alerts: MemoryAlertSink | None = None) -> AlpacaMarketDataFeed:
    cfg = AlpacaConfig(data_url=fake.rest_url, data_stream_url=fake.crypto_ws_url if crypto else fake.data_ws_url,
                       symbols=list(symbols), asset_class="crypto" if crypto else "us_equity",
                       backfill_max_minutes=max_minutes)
    creds = AlpacaCredentials(fake.key_id, fake.secret_key)
    history = (crypto_data_client if crypto else data_client)(creds, cfg)
    return AlpacaMarketDataFeed(creds, cfg, history=history, budget=RequestBudget(190, burst=50),
                                alerts=alerts if alerts is not None else MemoryAlertSink(),
                                now=lambda: _now(fake), last_bar_ts=last_bar_ts)


async def _until(condition: Callable[[], bool], what: str, timeout: float = 15.0,
                 step: Callable[[], object] | None = None, every: float = 0.05) -> None:
    """Wait (calling ``step`` between checks) until ``condition()``; fail naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if step is not None:
            step()
        await asyncio.sleep(every)


def _run(feed: AlpacaMarketDataFeed, body: Callable[[list[Bar]], Awaitable[None]]) -> list[Bar]:
    """Run ``feed`` in a loop while ``body(received)`` drives the fake; stop it; return what it enqueued."""
    received: list[Bar] = []

    async def enqueue(bar: Bar) -> None:
        received.append(bar)

    async def main() -> None:
        task = asyncio.create_task(feed.run(enqueue))
        try:
            await body(received)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(main())
    return received


async def _subscribed(fake: FakeAlpaca, feed: AlpacaMarketDataFeed, received: list[Bar]) -> None:
    """Publish minutes until the first live bar arrives: from then on the subscription is in effect."""
    await _until(lambda: feed.connects >= 1, "the first connect")
    await _until(lambda: bool(received), "the first live bar", step=fake.advance, every=0.2)
    await _until(lambda: received[-1].ts_event == to_nanos(fake.now_ts) and len({b.symbol for b in received
                                                                                  if b.ts_event == received[-1].ts_event}) == len(feed.symbols),
                 "the bars of the last published minute")


def _assert_contiguous(bars: list[Bar], symbols: tuple[str, ...], last_start: int) -> None:
    for symbol in symbols:
        starts = [b.ts_event for b in bars if b.symbol == symbol]
        assert starts, symbol
        assert starts == list(range(starts[0], last_start + M, M)), f"{symbol}: a hole or a duplicate"


def test_live_bars_arrive_as_bars_stamped_at_their_start_and_released_a_minute_later():
    with FakeAlpaca(symbols=("SPY", "QQQ")) as fake:
        feed = _feed(fake)

        async def body(received: list[Bar]) -> None:
            await _subscribed(fake, feed, received)
            before = len(received)
            fake.advance(3)
            await _until(lambda: len(received) >= before + 6, "three more minutes of both symbols")
            await asyncio.sleep(0.2)  # nothing else may arrive

        received = _run(feed, body)
        now = to_nanos(fake.now_ts)
        client = data_client(AlpacaCredentials(fake.key_id, fake.secret_key), AlpacaConfig(data_url=fake.rest_url))
        history = fetch_bars(client, ["SPY", "QQQ"], now - 2 * M, now + M)
    last = received[-6:]
    assert sorted((b.ts_event, b.symbol) for b in last) == [
        (now - 2 * M + i // 2 * M, s) for i, s in enumerate(["QQQ", "SPY"] * 3)]
    assert all(b.ts_init == b.ts_event + M for b in received)
    for bar in last:  # the live bar is the bar the history API serves for that minute
        columns = history[bar.symbol]
        i = list(columns.ts).index(bar.ts_event)
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
            columns.open[i], columns.high[i], columns.low[i], columns.close[i], columns.volume[i])
    assert feed.stats["live_bars"] == len(received) and feed.stats["reconnects"] == 0


def test_after_a_dropped_stream_the_missed_minutes_are_backfilled_in_order_before_new_live_bars():
    with FakeAlpaca(symbols=("SPY", "QQQ")) as fake:
        alerts = MemoryAlertSink()
        feed = _feed(fake, alerts=alerts)
        marks: dict[str, int] = {}

        async def body(received: list[Bar]) -> None:
            await _subscribed(fake, feed, received)
            marks["first"] = received[0].ts_event
            fake.faults.drop_data_stream(refuse_for=1.5)
            fake.advance()  # published while nobody listens
            # the market goes on while the feed is away; stop once it is back with live bars again
            await _until(lambda: feed.stats["reconnects"] >= 1 and feed.stats["backfilled_bars"] >= 2
                         and feed.stats["live_bars"] >= marks.setdefault("live", feed.stats["live_bars"]) + 4,
                         "a reconnect, a backfill and live bars after it", step=fake.advance, every=0.25)
            marks["last"] = to_nanos(fake.now_ts)
            await _until(lambda: received[-1].ts_event == marks["last"] and sum(
                b.ts_event == marks["last"] for b in received) == 2, "the last published minute")

        received = _run(feed, body)
    assert feed.stats["reconnects"] >= 1
    _assert_contiguous(received, ("SPY", "QQQ"), marks["last"])
    starts = [b.ts_event for b in received]
    assert starts == sorted(starts)  # no backfilled bar after a newer live one
    assert len(set((b.symbol, b.ts_event) for b in received)) == len(received)
    assert not [a for a in alerts.alerts if a[0] in ("error", "critical")]


def test_a_restart_with_the_last_booked_bars_backfills_from_there_in_time_order_ties_by_symbol():
    with FakeAlpaca(symbols=("SPY", "QQQ")) as fake:
        now = to_nanos(fake.now_ts)
        feed = _feed(fake, last_bar_ts={"SPY": now - 10 * M, "QQQ": now - 5 * M})

        async def body(received: list[Bar]) -> None:
            await _until(lambda: len(received) >= 15, "the startup backfill")
            fake.advance()
            await _until(lambda: len(received) >= 17, "the next live minute")

        received = _run(feed, body)
    backfill = [(b.ts_event, b.symbol) for b in received[:15]]
    expected = sorted([(now - i * M, "SPY") for i in range(9, -1, -1)] + [(now - i * M, "QQQ") for i in range(4, -1, -1)])
    assert backfill == expected
    assert sorted((b.ts_event, b.symbol) for b in received[15:]) == [(now + M, "QQQ"), (now + M, "SPY")]
    assert (feed.stats["backfilled_bars"], feed.stats["live_bars"], feed.stats["connects"]) == (15, 2, 1)


def test_a_gap_longer_than_backfill_max_minutes_is_cut_to_its_newest_minutes_and_its_session_part_alerted():
    alerts = MemoryAlertSink()
    with FakeAlpaca(symbols=("SPY",), start="2024-01-02T16:00:00Z") as fake:  # 11:00 New York
        now = to_nanos(fake.now_ts)
        feed = _feed(fake, ("SPY",), last_bar_ts={"SPY": now - 100 * M}, max_minutes=30, alerts=alerts)

        async def body(received: list[Bar]) -> None:
            await _until(lambda: len(received) >= 30, "the capped backfill")
            await asyncio.sleep(0.2)

        received = _run(feed, body)
    assert [b.ts_event for b in received] == list(range(now - 29 * M, now + M, M))
    # 70 minutes were not fetched, 14:20..15:29 UTC; the session opened at 14:30 UTC: 60 of them count
    gap = [a for a in alerts.alerts if a[1] == "market-data gap not backfilled"]
    assert len(gap) == 1 and "SPY" in gap[0][2] and "60 min of XNYS sessions" in gap[0][2]
    assert feed.stats["minutes_not_backfilled"] == 60


def test_a_cut_window_while_the_market_was_closed_is_not_alerted():
    alerts = MemoryAlertSink()
    with FakeAlpaca(symbols=("SPY",)) as fake:  # the fake's default clock: 09:29 New York
        now = to_nanos(fake.now_ts)
        feed = _feed(fake, ("SPY",), last_bar_ts={"SPY": now - 100 * M}, max_minutes=30, alerts=alerts)

        async def body(received: list[Bar]) -> None:
            await _until(lambda: len(received) >= 30, "the capped backfill")

        _run(feed, body)
    assert not [a for a in alerts.alerts if a[1] == "market-data gap not backfilled"]
    assert feed.stats["minutes_not_backfilled"] == 0


def test_a_failed_backfill_is_alerted_and_the_feed_goes_on_live():
    alerts = MemoryAlertSink()
    with FakeAlpaca(symbols=("SPY",)) as fake:
        now = to_nanos(fake.now_ts)
        fake.faults.server_error(1, status=500, path="/v2/stocks/bars")
        feed = _feed(fake, ("SPY",), last_bar_ts={"SPY": now - 5 * M}, alerts=alerts)

        async def body(received: list[Bar]) -> None:
            await _until(lambda: feed.stats["backfill_failures"] == 1, "the failed backfill")
            await _until(lambda: bool(received), "a live bar", step=fake.advance, every=0.2)

        received = _run(feed, body)
    failed = [a for a in alerts.alerts if a[1] == "market-data backfill failed"]
    assert len(failed) == 1 and "HTTP 500" in failed[0][2] and "SPY" in failed[0][2]
    assert fake.secret_key not in failed[0][2]
    assert received[0].ts_event > now  # live, after the unfilled gap


def test_crypto_bars_stream_and_backfill_through_the_crypto_clients():
    with FakeAlpaca(symbols=("SPY",), crypto_symbols=("BTC/USD",)) as fake:
        now = to_nanos(fake.now_ts)
        feed = _feed(fake, ("BTC/USD",), crypto=True, last_bar_ts={"BTC/USD": now - 3 * M})

        async def body(received: list[Bar]) -> None:
            await _until(lambda: len(received) >= 3, "the crypto backfill")
            fake.advance()
            await _until(lambda: len(received) >= 4, "a live crypto bar")

        received = _run(feed, body)
    assert [(b.symbol, b.ts_event) for b in received] == [("BTC/USD", now + i * M) for i in (-2, -1, 0, 1)]
    assert feed.stats["backfilled_bars"] == 3 and feed.stats["live_bars"] == 1


# --- a stream that refuses the subscription (409), as Alpaca does for SIP on a free plan --------


@contextlib.contextmanager
def _refusing_stream() -> Iterator[str]:
    """A websocket server on loopback that speaks the data stream's handshake and answers the auth
    with ``409 insufficient subscription`` (the fake does not model plans)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, object] = {}

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "connected"}]))
        async for msg in ws:
            if msg.type == WSMsgType.BINARY and msgpack.unpackb(msg.data).get("action") == "auth":
                await ws.send_bytes(msgpack.packb([{"T": "error", "code": 409, "msg": "insufficient subscription"}]))
        return ws

    async def start() -> None:
        app = web.Application()
        app.router.add_get("/v2/sip", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield f"ws://127.0.0.1:{state['port']}/v2/sip"
    finally:
        asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(5)  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_a_stream_that_gives_up_on_insufficient_subscription_is_a_critical_alert_and_an_error():
    alerts = MemoryAlertSink()
    with _refusing_stream() as url:
        cfg = AlpacaConfig(data_stream_url=url, data_feed="sip", symbols=["SPY"], data_url="http://127.0.0.1:9")
        feed = AlpacaMarketDataFeed(AlpacaCredentials("PKTEST", "secret-test"), cfg, history=None,
                                    budget=RequestBudget(10), alerts=alerts, now=lambda: 0)

        async def enqueue(bar: Bar) -> None:
            raise AssertionError("no bar expected")

        with pytest.raises(FeedStopped, match="ended"):
            asyncio.run(asyncio.wait_for(feed.run(enqueue), 10))
    critical = [a for a in alerts.alerts if a[0] == "critical"]
    assert len(critical) == 1 and "SPY" in critical[0][2] and "secret-test" not in critical[0][2]
