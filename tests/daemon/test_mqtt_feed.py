"""Bars over a real Mosquitto (auth + ACL): round trip, bad frames, broker restarts, no lost QoS-1 bar."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from backtest.data import load_data
from core.events import Bar, PauseTrading
from daemon.adapters.mqtt import mqtt_service
from daemon.adapters.mqtt_bars import MqttBarFeed
from daemon.adapters.mqtt_link import MqttLink
from daemon.adapters.mqtt_producer import merged, publish_bars
from daemon.adapters.mqtt_request import send_command
from tests.mqtt_broker import (
    DAEMON,
    OPERATOR,
    PASSWORD_ENV,
    PRODUCER,
    MosquittoBroker,
    client,
    daemon_config,
    mosquitto,  # noqa: F401  (fixture)
    running,
    wait_until,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "us_equity_1hour_adjusted"
HOUR = 3_600_000_000_000


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, DAEMON[1])


def january(symbols: tuple[str, ...] = ("AAPL", "SPY"), days: int = 31):
    return load_data([DATA / f"{s}.csv.gz" for s in symbols], start=datetime(2019, 1, 1, tzinfo=timezone.utc),
                     end=datetime(2019, 1, 1 + days - 1, 23, tzinfo=timezone.utc))


def daemon_side(broker: MosquittoBroker, symbols: set[str], **config: object):
    cfg = daemon_config(broker, bar_timeframe="1h", **config)
    got: list[Bar] = []

    async def enqueue(bar: Bar) -> None:
        got.append(bar)

    link = MqttLink(cfg)
    feed = MqttBarFeed(cfg, enqueue, symbols=symbols)
    link.subscribe(cfg.topics.bars, feed.on_message)
    return link, feed, got


def test_bars_round_trip_into_the_queue(mosquitto: MosquittoBroker) -> None:
    series = january(days=5)
    expected = [(symbol, start) for start, symbol, _ in merged(series)]

    async def scenario() -> None:
        link, feed, got = daemon_side(mosquitto, {"AAPL", "SPY"})
        async with running(link):
            report = await publish_bars(series, port=mosquitto.port, username=PRODUCER[0], password=PRODUCER[1],
                                        prefix="tt")
            await wait_until(lambda: len(got) == len(expected), what="every bar")
        assert report.published == len(expected) and report.reconnects == 0
        assert [(b.symbol, b.ts_event) for b in got] == expected
        spy = next(s for s in series if s.symbol == "SPY")
        first = next(b for b in got if b.symbol == "SPY")
        assert first == Bar("SPY", int(spy.ts_event[0]), int(spy.ts_event[0]) + HOUR, float(spy.open[0]),
                            float(spy.high[0]), float(spy.low[0]), float(spy.close[0]), float(spy.volume[0]))
        assert feed.accepted == len(expected) and not any(feed.rejected.values())

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_every_kind_of_bad_frame_is_rejected_and_counted(mosquitto: MosquittoBroker) -> None:
    good = {"symbol": "SPY", "timeframe": "1h", "start": "2019-01-02T14:30:00Z", "open": 245.0, "high": 246.0,
            "low": 244.0, "close": 245.5, "volume": 1000}
    bad: dict[str, list[Any]] = {
        "malformed_json": [b"{nope", b"\xff"], "not_an_object": [b'"a bar"'], "missing_field": [{"open": 1}],
        "wrong_type": [{**good, "close": "245.5"}], "not_finite": [{**good, "high": float("nan")}],
        "non_positive_price": [{**good, "low": -1}], "ohlc_inconsistent": [{**good, "high": 200}],
        "bad_volume": [{**good, "volume": -5}], "bad_timeframe": [{**good, "timeframe": "1min"}],
        "bad_start": [{**good, "start": "2019-01-02 14:30"}], "symbol_mismatch": [{**good, "symbol": "AAPL"}],
        "future": [{**good, "start": "2199-01-01T00:00:00Z"}], "too_large": [b" " * 5000],
        "price_out_of_range": [{**good, "open": 5e9, "high": 5e9}],
    }

    async def scenario() -> None:
        link, feed, got = daemon_side(mosquitto, {"SPY"})
        async with running(link), client(mosquitto, PRODUCER) as producer:
            for frames in bad.values():
                for body in frames:
                    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                    await producer.publish("tt/bars/SPY", payload, qos=1)
            await producer.publish("tt/bars/IBM", json.dumps({**good, "symbol": "IBM"}), qos=1)
            await producer.publish("tt/bars/SPY", json.dumps(good), qos=1)
            await producer.publish("tt/bars/SPY", json.dumps(good), qos=1)  # duplicate
            await producer.publish("tt/bars/SPY", json.dumps({**good, "start": "2019-01-02T13:30:00Z"}), qos=1)
            sent = sum(map(len, bad.values())) + 4
            await wait_until(lambda: sum(feed.rejected.values()) + feed.accepted == sent, what="every frame")
            assert link.handler_errors == 0 and link.connected.is_set()  # the loop survived them all
        expected = {reason: len(frames) for reason, frames in bad.items()}
        expected.update(unknown_symbol=1, duplicate=1, out_of_order=1)
        assert {k: v for k, v in feed.rejected.items() if v} == expected
        assert [b.ts_event for b in got] == [1546439400000000000]

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_broker_restart_mid_session_loses_no_qos1_bar(mosquitto: MosquittoBroker) -> None:
    series = january()
    expected = [(symbol, start) for start, symbol, _ in merged(series)]
    assert len(expected) > 250

    async def scenario() -> None:
        # the daemon retries after 1 s, the producer after ~50 ms: bars published in between can
        # only reach the daemon through its persistent session at the (restarted) broker
        link, feed, got = daemon_side(mosquitto, {"AAPL", "SPY"}, reconnect_min_s=1.0, reconnect_max_s=1.0,
                                      reconnect_jitter=0.0)
        while_away: list[int] = []

        async def restart_midway(count: int, symbol: str) -> None:
            if not link.connected.is_set():
                while_away.append(count)
            if count == 100:  # the daemon is still receiving: some bars are in flight in the broker
                await asyncio.to_thread(mosquitto.restart)

        async with running(link):
            report = await publish_bars(series, port=mosquitto.port, username=PRODUCER[0], password=PRODUCER[1],
                                        prefix="tt", reconnect_min_s=0.05, on_published=restart_midway)
            await wait_until(lambda: feed.accepted == len(expected), 30, "every bar after the restart")
            await asyncio.sleep(0.2)  # a late redelivery would show up as an extra bar or a rejection
        assert len(while_away) > 50  # the scenario happened: many bars were queued for the absent daemon
        assert report.published == len(expected) and report.reconnects >= 1
        assert link.connects == 2 and link.disconnects == 1 and link.session_lost == 0
        assert [(b.symbol, b.ts_event) for b in got] == expected  # all of them, once each, in order
        assert {k for k, v in feed.rejected.items() if v} <= {"duplicate"}  # resends refused, nothing else

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_link_resubscribes_after_a_broker_that_lost_its_session(tmp_path: Path) -> None:
    broker = MosquittoBroker(tmp_path / "volatile", persistence=False)
    broker.start()
    bars = january(("SPY",), days=3)
    frames = [(start, frame) for start, _, frame in merged(bars)]

    async def scenario() -> None:
        link, feed, got = daemon_side(broker, {"SPY"})
        async with running(link):
            async with client(broker, PRODUCER) as producer:
                await producer.publish("tt/bars/SPY", frames[0][1], qos=1)
            await wait_until(lambda: len(got) == 1, what="the first bar")
            await asyncio.to_thread(broker.restart)  # sessions and subscriptions are gone
            await wait_until(lambda: link.connects == 2, what="the reconnect")
            async with client(broker, PRODUCER) as producer:
                await producer.publish("tt/bars/SPY", frames[1][1], qos=1)
            await wait_until(lambda: len(got) == 2, what="a bar after the resubscription")
        assert [b.ts_event for b in got] == [frames[0][0], frames[1][0]]
        assert link.session_lost == 1  # reported: bars published during the outage would be gone

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        broker.stop()


def test_retained_bar_is_not_taken_for_a_live_one(mosquitto: MosquittoBroker) -> None:
    bars = january(("SPY",), days=3)
    frames = [frame for _, _, frame in merged(bars)]

    async def scenario() -> None:
        async with client(mosquitto, PRODUCER) as producer:
            await producer.publish("tt/bars/SPY", frames[0], qos=1, retain=True)
        link, feed, got = daemon_side(mosquitto, {"SPY"})
        async with running(link):
            await wait_until(lambda: feed.rejected["retained"] == 1, what="the retained copy")
            async with client(mosquitto, PRODUCER) as producer:
                await producer.publish("tt/bars/SPY", frames[1], qos=1)
                await producer.publish("tt/bars/SPY", b"", qos=1, retain=True)  # clear it
            await wait_until(lambda: len(got) == 1, what="the live bar")

    asyncio.run(asyncio.wait_for(scenario(), 60))


class Node:
    """The two things the MQTT service needs of the live node."""

    def __init__(self) -> None:
        self.events: list[object] = []

    async def enqueue(self, event: object) -> None:
        self.events.append(event)

    def status(self) -> dict[str, object]:
        return {"events": len(self.events)}


def test_node_service_feeds_bars_and_commands_through_one_connection(mosquitto: MosquittoBroker,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TT_OPERATOR_PW", OPERATOR[1])
    series = january(("SPY",), days=3)
    first, second = [(start, frame) for start, _, frame in merged(series)][:2]

    async def scenario() -> None:
        link = MqttLink(daemon_config(mosquitto, bar_timeframe="1h"))
        node = Node()
        service = mqtt_service(link, symbols={"SPY"}, seed={"SPY": first[0]})
        task = asyncio.create_task(service(node))
        try:
            await asyncio.wait_for(link.connected.wait(), 10)
            async with client(mosquitto, PRODUCER) as producer:
                await producer.publish("tt/bars/SPY", first[1], qos=1)  # booked before the restart: refused
                await producer.publish("tt/bars/SPY", second[1], qos=1)
            operator = daemon_config(mosquitto, username=OPERATOR[0], password_env="TT_OPERATOR_PW")
            reply = await send_command(operator, "pause", reason="lunch")
        finally:
            link.stop()
            await asyncio.wait_for(task, 10)
        assert [type(e) for e in node.events] == [Bar, PauseTrading]
        assert node.events[0].ts_event == second[0]  # type: ignore[attr-defined]
        assert reply["ok"] and service.feed.rejected["duplicate"] == 1  # type: ignore[attr-defined]

    asyncio.run(asyncio.wait_for(scenario(), 30))
