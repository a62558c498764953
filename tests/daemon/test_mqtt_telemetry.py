"""Telemetry over a real Mosquitto: JSON on the documented topics, retained state and status, last will."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.enums import Side, TradingState
from core.events import OrderDenied, OrderFilled, TradingStateChanged
from daemon.adapters.mqtt_link import LOST, OFFLINE, ONLINE, MqttLink
from daemon.adapters.mqtt_telemetry import MqttTelemetry
from tests.mqtt_broker import (
    DAEMON,
    PASSWORD_ENV,
    Collector,
    MosquittoBroker,
    daemon_config,
    mosquitto,  # noqa: F401  (fixture)
    running,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
BASE = "tt/paper"


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, DAEMON[1])


def fill(n: int) -> OrderFilled:
    return OrderFilled(client_order_id=f"o{n}", fill_id=f"f{n}", symbol="SPY", side=Side.BUY, quantity=10.0,
                       price=300.0 + n, cum_quantity=10.0, commission=0.1, ts_event=n, ts_init=n + 1)


def test_events_arrive_as_json_and_state_is_retained(mosquitto: MosquittoBroker) -> None:
    async def scenario() -> None:
        link = MqttLink(daemon_config(mosquitto))
        telemetry = MqttTelemetry(link.config, link)
        async with Collector(mosquitto, f"{BASE}/#") as live, running(link):
            telemetry.on_event(OrderDenied(client_order_id="c1", strategy_id="s", symbol="SPY", side=Side.BUY,
                                           quantity=5.0, reason="max_open_positions", ts_event=1, ts_init=2))
            telemetry.on_event(fill(1))
            telemetry.on_event(TradingStateChanged(previous=TradingState.ACTIVE, current=TradingState.REDUCING,
                                                   reason="daily loss", ts_event=3, ts_init=4))
            telemetry.heartbeat({"uptime_s": 12.5, "queue_depth": 0})
            await live.wait_for(f"{BASE}/heartbeat")
            async with Collector(mosquitto, f"{BASE}/#") as newcomer:  # subscribes after the fact
                await newcomer.wait_for(f"{BASE}/state")
                await newcomer.wait_for(f"{BASE}/status")
        assert json.loads(live.on(f"{BASE}/decisions")[0])["reason"] == "max_open_positions"
        assert json.loads(live.on(f"{BASE}/fills")[0]) == {
            "type": "OrderFilled", "client_order_id": "o1", "fill_id": "f1", "symbol": "SPY", "side": "buy",
            "quantity": 10.0, "price": 301.0, "cum_quantity": 10.0, "commission": 0.1, "slippage": 0.0,
            "ts_event": 1, "ts_init": 2}
        retained = {topic: payload for topic, payload, retain in newcomer.messages if retain}
        assert set(retained) == {f"{BASE}/state", f"{BASE}/heartbeat", f"{BASE}/status"}
        assert json.loads(retained[f"{BASE}/state"])["current"] == "reducing"
        assert json.loads(retained[f"{BASE}/status"]) == {"state": "online"}
        assert json.loads(live.on(f"{BASE}/status")[-1]) == {"state": "offline", "reason": "stopped"}

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_outbox_holds_the_newest_while_disconnected_and_flushes_in_order(mosquitto: MosquittoBroker) -> None:
    async def scenario() -> None:
        link = MqttLink(daemon_config(mosquitto, outbox_size=5))
        telemetry = MqttTelemetry(link.config, link)
        for n in range(8):  # not connected yet: nothing blocks, the three oldest are dropped
            telemetry.on_event(fill(n))
        assert link.dropped == 3 and link.outbox_depth == 5
        async with Collector(mosquitto, f"{BASE}/fills") as live, running(link):
            fills = await live.wait_for(f"{BASE}/fills", 5)
        assert [json.loads(p)["fill_id"] for p in fills] == ["f3", "f4", "f5", "f6", "f7"]
        assert link.stats()["dropped"] == 3 and link.published == 5

    asyncio.run(asyncio.wait_for(scenario(), 30))


DAEMON_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from daemon.adapters.mqtt_config import MqttConfig
    from daemon.adapters.mqtt_link import LOST, OFFLINE, ONLINE, MqttLink

    async def main():
        link = MqttLink(MqttConfig.model_validate_json(sys.argv[1]))
        task = asyncio.create_task(link.run())
        await link.connected.wait()
        print("connected", flush=True)
        await task

    asyncio.run(main())
""")


def test_last_will_says_offline_when_the_daemon_dies_without_disconnecting(mosquitto: MosquittoBroker) -> None:
    config = daemon_config(mosquitto)

    async def scenario() -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", DAEMON_SCRIPT, config.model_dump_json(), cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE)
        try:
            assert process.stdout is not None
            while (await asyncio.wait_for(process.stdout.readline(), 20)).strip() != b"connected":
                pass  # log lines come first (structlog prints to stdout)
            async with Collector(mosquitto, f"{BASE}/status") as watcher:
                await watcher.wait_for(f"{BASE}/status")
                assert watcher.messages == [(f"{BASE}/status", ONLINE, True)]
                os.kill(process.pid, signal.SIGKILL)  # no DISCONNECT packet: the broker fires the will
                await watcher.wait_for(f"{BASE}/status", 2)
            assert json.loads(watcher.on(f"{BASE}/status")[-1]) == {"state": "offline", "reason": "connection lost"}
            async with Collector(mosquitto, f"{BASE}/status") as later:  # and it stays: retained
                assert (await later.wait_for(f"{BASE}/status")) == [LOST]
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_cancelled_link_still_says_offline(mosquitto: MosquittoBroker) -> None:
    async def scenario() -> None:
        link = MqttLink(daemon_config(mosquitto))
        async with Collector(mosquitto, f"{BASE}/status") as watcher:
            task = asyncio.create_task(link.run())
            await asyncio.wait_for(link.connected.wait(), 10)
            await watcher.wait_for(f"{BASE}/status")
            task.cancel()  # a TaskGroup tearing down: aiomqtt disconnects cleanly, so no will
            await asyncio.gather(task, return_exceptions=True)
            await wait_until(lambda: watcher.on(f"{BASE}/status")[-1] == OFFLINE, what="offline")

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_node_presence_is_announced_on_every_connect_and_its_stop_reason_kept(tmp_path: Path) -> None:
    broker = MosquittoBroker(tmp_path / "volatile", persistence=False)  # a restart forgets retained messages
    broker.start()

    async def scenario() -> None:
        link = MqttLink(daemon_config(broker))
        telemetry = MqttTelemetry(link.config, link)
        telemetry.publish("status", {"state": "online", "mode": "paper", "account": "paper"}, retain=True)
        async with running(link):
            await asyncio.to_thread(broker.restart)
            await wait_until(lambda: link.connects == 2, what="the reconnect")
            async with Collector(broker, f"{BASE}/status") as watcher:
                again = json.loads((await watcher.wait_for(f"{BASE}/status"))[0])
                telemetry.publish("heartbeat", {"uptime_s": 1.0})
                telemetry.publish("nonsense", {"x": 1})  # no such topic: counted, never raised
                telemetry.publish("status", {"state": "offline", "reason": "received SIGTERM"}, retain=True)
                link.stop()
                await watcher.wait_for(f"{BASE}/status", 2)
        assert again == {"state": "online", "mode": "paper", "account": "paper"}
        assert json.loads(watcher.on(f"{BASE}/status")[-1]) == {"state": "offline", "reason": "received SIGTERM"}
        assert telemetry.unknown == 1 and telemetry.sent["heartbeat"] == 1

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        broker.stop()


def test_stop_sends_everything_queued_before_saying_offline(mosquitto: MosquittoBroker) -> None:
    async def scenario() -> None:
        async with Collector(mosquitto, f"{BASE}/#") as live:
            for burst in (1, 1, 1, 1, 1, 50):  # one message right before stop is the tight case
                link = MqttLink(daemon_config(mosquitto))
                telemetry = MqttTelemetry(link.config, link)
                async with running(link):
                    for n in range(burst):
                        telemetry.on_event(fill(n))
                assert link.published == burst and link.outbox_depth == 0
            await live.wait_for(f"{BASE}/status", 12)
        topics = [topic for topic, _, _ in live.messages]
        assert topics.count(f"{BASE}/fills") == 55 and topics[-1] == f"{BASE}/status"

    asyncio.run(asyncio.wait_for(scenario(), 30))
