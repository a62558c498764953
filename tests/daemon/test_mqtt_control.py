"""Operator commands over a real Mosquitto: only the operator account can command, ids run once."""

from __future__ import annotations

import asyncio
import json

import aiomqtt
import pytest

from core.events import HaltTrading, PauseTrading
from daemon.adapters.mqtt_control import MqttControl
from daemon.adapters.mqtt_link import MqttLink
from daemon.adapters.mqtt_request import send_command
from tests.mqtt_broker import (
    DAEMON,
    OPERATOR,
    PASSWORD_ENV,
    PRODUCER,
    Collector,
    MosquittoBroker,
    client,
    daemon_config,
    mosquitto,  # noqa: F401  (fixture)
    running,
    wait_until,
)

CMD = "tt/paper/cmd"
REPLY = "tt/paper/reply"


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, DAEMON[1])


def daemon_side(broker: MosquittoBroker) -> tuple[MqttLink, MqttControl, list[object]]:
    config = daemon_config(broker)
    queued: list[object] = []

    async def enqueue(command: object) -> None:
        queued.append(command)

    link = MqttLink(config)
    control = MqttControl(config, enqueue, lambda: {"mode": "paper", "trading_state": "active"}, link)
    link.subscribe(config.topics.cmd, control.on_message)
    return link, control, queued


def command(command_id: str, name: str, **extra: object) -> bytes:
    return json.dumps({"id": command_id, "command": name, **extra}).encode()


def test_unauthenticated_clients_are_refused_by_the_broker(mosquitto: MosquittoBroker) -> None:
    async def scenario() -> None:
        for account in (None, ("operator", "wrong password"), ("nobody", "x")):
            with pytest.raises(aiomqtt.MqttError, match="[Nn]ot authori[sz]ed|135|5"):
                async with client(mosquitto, account):
                    pass

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_daemon_with_a_wrong_password_reports_it_and_stops_cleanly(mosquitto: MosquittoBroker,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "not the password")

    async def scenario() -> None:
        link, control, queued = daemon_side(mosquitto)
        task = asyncio.create_task(link.run())
        await wait_until(lambda: link.auth_failures >= 2, what="refused connection attempts")
        assert not link.connected.is_set()
        link.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_only_the_operator_account_can_command(mosquitto: MosquittoBroker) -> None:
    async def scenario() -> None:
        link, control, queued = daemon_side(mosquitto)
        async with Collector(mosquitto, f"{REPLY}/#") as replies, running(link):
            for account in (PRODUCER, DAEMON):  # authenticated, but not allowed to publish commands
                async with client(mosquitto, account) as intruder:
                    await intruder.publish(CMD, command(f"from-{account[0]}", "halt"), qos=1)  # dropped by the ACL
            async with client(mosquitto, OPERATOR) as operator:
                await operator.publish(CMD, command("op-1", "pause", reason="lunch"), qos=1)
            await replies.wait_for(f"{REPLY}/op-1")
            await asyncio.sleep(0.1)
        assert control.received == 1  # the daemon never saw the intruders' frames
        assert [type(c) for c in queued] == [PauseTrading] and queued[0].reason == "lunch"  # type: ignore[attr-defined]
        assert [t for t, _, _ in replies.messages] == [f"{REPLY}/op-1"]

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_replayed_command_id_runs_once_and_gets_the_first_reply(mosquitto: MosquittoBroker) -> None:
    async def scenario() -> None:
        link, control, queued = daemon_side(mosquitto)
        async with Collector(mosquitto, f"{REPLY}/#") as replies, running(link):
            async with client(mosquitto, OPERATOR) as operator:
                await operator.publish(CMD, command("h-1", "halt", reason="manual"), qos=1)
                await replies.wait_for(f"{REPLY}/h-1")
                await operator.publish(CMD, command("h-1", "halt", reason="manual"), qos=1)
                await operator.publish(CMD, command("h-1", "rearm"), qos=1)  # same id, other command: not run
                answers = await replies.wait_for(f"{REPLY}/h-1", 3)
        assert [type(c) for c in queued] == [HaltTrading]
        assert len(set(answers)) == 1 and json.loads(answers[0]) == {"id": "h-1", "ok": True,
                                                                     "result": {"queued": "HaltTrading"}}
        assert control.duplicates == 2

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_unknown_commands_are_refused_with_a_reply_and_status_answers(mosquitto: MosquittoBroker) -> None:
    async def scenario() -> None:
        link, control, queued = daemon_side(mosquitto)
        async with Collector(mosquitto, f"{REPLY}/#") as replies, running(link):
            async with client(mosquitto, OPERATOR) as operator:
                await operator.publish(CMD, command("go", "live"), qos=1)  # there is no way to go live
                await operator.publish(CMD, command("mode", "switch", mode="live"), qos=1)
                await operator.publish(CMD, b"halt", qos=1)
                await operator.publish(CMD, command("st", "status"), qos=1)
                await operator.publish(CMD, command("mine", "status", reply_to=f"{REPLY}/cli-7/1"), qos=1)
                await replies.wait_for(f"{REPLY}/cli-7/1")
        replied = {t: json.loads(p) for t, p, _ in replies.messages}
        assert replied[f"{REPLY}/go"]["ok"] is False and "unknown command 'live'" in replied[f"{REPLY}/go"]["error"]
        assert replied[f"{REPLY}/mode"]["ok"] is False
        assert replied[f"{REPLY}/invalid"] == {"id": None, "ok": False, "error": "not a JSON object"}
        assert replied[f"{REPLY}/st"] == {"id": "st", "ok": True, "result": {"mode": "paper", "trading_state": "active"}}
        assert replied[f"{REPLY}/cli-7/1"]["ok"] is True
        assert queued == [] and control.refused == 3

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_retained_command_does_not_run_on_connect(mosquitto: MosquittoBroker) -> None:
    async def scenario() -> None:
        async with client(mosquitto, OPERATOR) as operator:
            await operator.publish(CMD, command("old", "flatten"), qos=1, retain=True)
        link, control, queued = daemon_side(mosquitto)
        async with Collector(mosquitto, f"{REPLY}/#") as replies, running(link):
            answer = json.loads((await replies.wait_for(f"{REPLY}/old"))[0])
            async with client(mosquitto, OPERATOR) as operator:
                await operator.publish(CMD, b"", qos=1, retain=True)  # clear it
        assert answer["ok"] is False and "retained" in answer["error"]
        assert queued == []

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_operator_request_gets_the_reply_or_times_out_without_a_daemon(mosquitto: MosquittoBroker,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TT_OPERATOR_PW", OPERATOR[1])
    operator = daemon_config(mosquitto, username=OPERATOR[0], password_env="TT_OPERATOR_PW", client_id=None)

    async def scenario() -> None:
        with pytest.raises(TimeoutError):  # nobody listening: the CLI falls back to the state database
            await send_command(operator, "status", timeout_s=0.5)
        link, control, queued = daemon_side(mosquitto)
        async with running(link):
            status = await send_command(operator, "status")
            halted = await send_command(operator, "halt", reason="maintenance", command_id="m-1")
            again = await send_command(operator, "halt", reason="maintenance", command_id="m-1")
        assert status["ok"] and status["result"]["mode"] == "paper"
        assert halted == again == {"id": "m-1", "ok": True, "result": {"queued": "HaltTrading"}}
        assert [type(c) for c in queued] == [HaltTrading]

    asyncio.run(asyncio.wait_for(scenario(), 30))
