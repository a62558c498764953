"""The operator's side of control: send one command to a running daemon and wait for its reply.

For ``tradingd status|halt|rearm|flatten|pause|resume`` against a running daemon: the reply topic is
subscribed before the command is published, so a fast daemon cannot answer into the void. No reply
within the timeout means no daemon is listening (the caller falls back to the state database).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from daemon.adapters.mqtt_config import MqttConfig

__all__ = ["send_command"]


async def send_command(config: MqttConfig, command: str, *, reason: str = "", timeout_s: float = 5.0,
                       command_id: str | None = None) -> dict[str, Any]:
    """Publish ``command`` on the daemon's command topic and return its reply.

    Parameters
    ----------
    config : MqttConfig
        The broker, the daemon's ``prefix``/``account``, and an **operator** account
        (``username``, password in ``password_env``): only it may publish commands.
    command : str
        ``pause``, ``resume``, ``flatten``, ``halt``, ``rearm`` or ``status``.
    reason : str
        Recorded with the trading-state change.
    timeout_s : float
        Seconds to wait for the connection and for the reply.
    command_id : str, optional
        Defaults to a random id; sending the same id again gets the first reply and runs nothing.

    Returns
    -------
    dict
        ``{"id", "ok": True, "result"}`` or ``{"id", "ok": False, "error"}``.

    Raises
    ------
    TimeoutError
        If no reply arrives within ``timeout_s`` (no daemon is running for this account).
    aiomqtt.MqttError
        If the broker cannot be reached or refuses the credentials.
    """
    import asyncio

    import aiomqtt

    command_id = command_id or uuid.uuid4().hex
    topics = config.topics
    reply_topic = topics.reply(command_id)
    body = {"id": command_id, "command": command, **({"reason": reason} if reason else {})}
    async with aiomqtt.Client(config.host, config.port, username=config.username, password=config.password(),
                              timeout=timeout_s) as client:
        await client.subscribe(reply_topic, qos=1)
        await client.publish(topics.cmd, json.dumps(body), qos=1)
        async with asyncio.timeout(timeout_s):
            async for message in client.messages:
                if message.topic.value == reply_topic and isinstance(message.payload, (bytes, bytearray)):
                    reply: dict[str, Any] = json.loads(message.payload)
                    return reply
    raise TimeoutError(f"no reply to {command!r} on {reply_topic}")  # pragma: no cover - the timeout raises first
