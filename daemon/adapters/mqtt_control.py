"""Operator commands over MQTT: ``{prefix}/{account}/cmd`` in, a reply per command out.

A command is ``{"id": "...", "command": "pause|resume|flatten|halt|rearm|status", "reason": "..."}``
(``reason`` optional; ``reply_to`` optional, a topic under ``{prefix}/{account}/reply/``). It maps to
a core command that goes onto the node's queue (``halt`` -> HaltTrading, ``rearm`` ->
RearmTrading, ``pause``/``resume`` -> PauseTrading/ResumeTrading, ``flatten`` -> FlattenPositions);
``status`` is answered from the node's ``status()`` snapshot without touching the engine.

The reply, on ``{prefix}/{account}/reply/{id}`` (or ``reply_to``), is
``{"id": ..., "ok": true, "result": ...}`` or ``{"id": ..., "ok": false, "error": "..."}``; a frame
without a usable id is answered on ``{prefix}/{account}/reply/invalid``.

* **Only authorized clients command**: the broker enforces it (the shipped ACL lets only the
  operator account publish to ``cmd``); what reaches this handler is trusted.
* **Exactly once per id**: the last ``command_ids_kept`` ids and their replies are kept **in
  memory**; a command id seen before is not run again, its first reply is sent again. After a
  daemon restart the memory is empty (a command redelivered then runs again: every command is
  safe to repeat, e.g. halt while HALTED changes nothing).
* **Nothing switches paper to live**: there is no such command; an unknown command is refused
  with a reply and nothing is enqueued.
* A retained command is refused: it would run again on every reconnect.
"""

from __future__ import annotations

import json
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from core.events import FlattenPositions, HaltTrading, PauseTrading, RearmTrading, ResumeTrading
from daemon.adapters.mqtt_config import MqttConfig
from daemon.adapters.mqtt_link import Inbound, Publisher

__all__ = ["COMMANDS", "MAX_REASON_LENGTH", "MqttControl"]

COMMANDS: dict[str, type] = {"halt": HaltTrading, "rearm": RearmTrading, "pause": PauseTrading,
                             "resume": ResumeTrading, "flatten": FlattenPositions}
"""Command name -> core command class (``status`` is answered directly)."""
MAX_REASON_LENGTH = 200
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")  # one topic level: no '/', '+', '#'
_MAX_FRAME = 4096
_log = structlog.get_logger("tradingd.mqtt.control")


class _Refused(ValueError):
    pass


class MqttControl:
    """Run operator commands from MQTT through the node's queue and reply to each.

    Register with ``link.subscribe(config.topics.cmd, control.on_message)``.

    Parameters
    ----------
    config : MqttConfig
    enqueue : callable
        ``await enqueue(command)`` puts a core command on the node's queue.
    status : callable
        ``status()`` returns the node's JSON-able snapshot (the ``status`` command's result).
    publisher : Publisher
        Where replies go (the :class:`~daemon.adapters.mqtt_link.MqttLink`).
    now_ns : callable, optional
        Clock for the commands' ``ts_event``/``ts_init`` (epoch ns UTC); the node passes its own.

    Attributes
    ----------
    received, executed, duplicates, refused : int
        Frames received, commands run (enqueued or answered), repeated ids answered from memory,
        and frames refused (unknown command, bad frame, retained).
    """

    def __init__(self, config: MqttConfig, enqueue: Callable[[object], Awaitable[None]],
                 status: Callable[[], dict[str, Any]], publisher: Publisher, *,
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        self.topics = config.topics
        self._enqueue = enqueue
        self._status = status
        self._publisher = publisher
        self._now_ns = now_ns
        self._keep = config.command_ids_kept
        self._replies: OrderedDict[str, bytes] = OrderedDict()
        self.received = 0
        self.executed = 0
        self.duplicates = 0
        self.refused = 0

    async def on_message(self, message: Inbound) -> None:
        """Handle one command frame; never raises for bad input."""
        self.received += 1
        command_id: str | None = None
        reply_topic = self.topics.reply("invalid")
        try:
            frame = self._frame(message.payload)
            command_id, reply_topic = self._address(frame)
            seen = self._replies.get(command_id)
            if seen is not None:
                self.duplicates += 1
                self._replies.move_to_end(command_id)
                self._publisher.publish_nowait(reply_topic, seen, urgent=True)
                _log.info("mqtt command repeated; first reply sent again", id=command_id)
                return
            if message.retained:
                raise _Refused("retained commands are refused (they would run again on every reconnect)")
            result = await self._run(frame, command_id)
        except _Refused as refused:
            self.refused += 1
            _log.warning("mqtt command refused", id=command_id, error=str(refused))
            self._publisher.publish_nowait(reply_topic, _reply(command_id, False, error=str(refused)), urgent=True)
            return
        self.executed += 1
        reply = _reply(command_id, True, result=result)
        self._remember(command_id, reply)
        self._publisher.publish_nowait(reply_topic, reply, urgent=True)

    @staticmethod
    def _frame(payload: bytes) -> dict[str, Any]:
        if len(payload) > _MAX_FRAME:
            raise _Refused(f"command frame of {len(payload)} bytes (at most {_MAX_FRAME})")
        try:
            frame = json.loads(payload)
        except (UnicodeDecodeError, ValueError):
            raise _Refused("not a JSON object") from None
        if not isinstance(frame, dict):
            raise _Refused("not a JSON object")
        return frame

    def _address(self, frame: dict[str, Any]) -> tuple[str, str]:
        command_id = frame.get("id")
        if not isinstance(command_id, str) or not _ID.match(command_id):
            raise _Refused("id must be 1-128 characters of letters, digits, '_', '.', ':', '-'")
        reply_to = frame.get("reply_to")
        if reply_to is None:
            return command_id, self.topics.reply(command_id)
        root = self.topics.reply_root + "/"
        if (not isinstance(reply_to, str) or not reply_to.startswith(root) or len(reply_to) > 256
                or any(c in reply_to for c in "+#\0")):
            raise _Refused(f"reply_to must be a topic under {root}")
        return command_id, reply_to

    async def _run(self, frame: dict[str, Any], command_id: str) -> Any:
        name = frame.get("command")
        reason = frame.get("reason", "")
        if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
            raise _Refused(f"reason must be text of at most {MAX_REASON_LENGTH} characters")
        if name == "status":
            return self._status()
        kind = COMMANDS.get(name) if isinstance(name, str) else None
        if kind is None:
            known = ", ".join([*COMMANDS, "status"])
            raise _Refused(f"unknown command {str(name)[:40]!r}; known: {known}")
        now = self._now_ns()
        command = kind(reason=reason or f"operator {name} over MQTT (id {command_id})", ts_event=now, ts_init=now)
        await self._enqueue(command)
        _log.info("mqtt command queued", id=command_id, command=name, reason=command.reason)
        return {"queued": kind.__name__}

    def _remember(self, command_id: str, reply: bytes) -> None:
        self._replies[command_id] = reply
        while len(self._replies) > self._keep:
            self._replies.popitem(last=False)

    def health(self) -> dict[str, int]:
        return {"received": self.received, "executed": self.executed, "duplicates": self.duplicates,
                "refused": self.refused}


def _reply(command_id: str | None, ok: bool, *, result: Any = None, error: str = "") -> bytes:
    body: dict[str, Any] = {"id": command_id, "ok": ok}
    if ok:
        body["result"] = result
    else:
        body["error"] = error
    return json.dumps(body, default=str, separators=(",", ":")).encode()
