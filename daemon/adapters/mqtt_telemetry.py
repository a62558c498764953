"""Telemetry out: engine events and node snapshots as JSON under ``{prefix}/{account}/``.

The live node may publish ready-made payloads (:meth:`MqttTelemetry.publish`, its ``Telemetry``
role) or let :meth:`MqttTelemetry.attach` serialize the engine's events. In the latter case each
message is one JSON object with ``"type"`` (the event's class name) and the event's fields:
enums as their values, timestamps as epoch ns UTC ints (``ts_event``, ``ts_init``, ...), money in
USD, quantities in shares; a non-finite float becomes ``null``. Publishing never blocks: it goes to
the link's bounded outbox (see :class:`daemon.adapters.mqtt_link.MqttLink`), so a slow or dead
broker costs the engine nothing; delivery is at least once (consumers de-duplicate by
``client_order_id`` / ``fill_id``).

=============  ==============================================================  ========
topic          what                                                            retained
=============  ==============================================================  ========
``decisions``  OrderDenied, core.ports.Decision (what the engine decided)      no
``orders``     SubmitOrder, OrderAccepted/Rejected/Canceled/Expired            no
``fills``      OrderFilled                                                     no
``trades``     TradeClosed                                                     no
``equity``     core.ports.EquitySnapshot                                       no
``state``      TradingStateChanged (the trading state and its reason)          yes
``regime``     RegimeChanged                                                   no
``heartbeat``  the node's health snapshot (:meth:`MqttTelemetry.heartbeat`)    yes
``status``     presence ``{"state": "online"|"offline", ...}``, the last will  yes
=============  ==============================================================  ========
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, Protocol

import structlog

from core.events import (
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    RegimeChanged,
    SubmitOrder,
    TradeClosed,
    TradingStateChanged,
)
from core.ports import Decision, EquitySnapshot
from daemon.adapters.mqtt_config import TELEMETRY_KINDS, MqttConfig
from daemon.adapters.mqtt_link import Publisher

_log = structlog.get_logger("tradingd.mqtt.telemetry")

__all__ = ["ENGINE_EVENTS", "ROUTES", "MqttTelemetry", "PresencePublisher", "to_json"]

ROUTES: dict[type, str] = {
    OrderDenied: "decisions", Decision: "decisions",
    SubmitOrder: "orders", OrderAccepted: "orders", OrderRejected: "orders", OrderCanceled: "orders",
    OrderExpired: "orders",
    OrderFilled: "fills", TradeClosed: "trades", EquitySnapshot: "equity", TradingStateChanged: "state",
    RegimeChanged: "regime",
}
"""Event class -> telemetry kind (the topic's last level)."""
ENGINE_EVENTS = (OrderDenied, OrderRejected, OrderCanceled, OrderExpired, OrderFilled, TradeClosed,
                 TradingStateChanged, RegimeChanged)
"""The routed events that ``Engine.subscribe`` publishes (what :meth:`MqttTelemetry.attach` subscribes)."""
_RETAINED = frozenset({"state", "heartbeat"})


class PresencePublisher(Publisher, Protocol):
    """The link's outbox plus its retained presence (see :meth:`daemon.adapters.mqtt_link.MqttLink.set_presence`)."""

    def set_presence(self, *, online: bytes | None = None, offline: bytes | None = None) -> None: ...


class _Subscribable(Protocol):
    def subscribe(self, event_type: type, callback: Callable[[Any], None]) -> None: ...


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return [_plain(v) for v in value]
    return value


def to_json(event: Any) -> bytes:
    """Serialize an event (dataclass or NamedTuple) or a mapping as one compact JSON object.

    Raises
    ------
    TypeError
        For anything else.

    Examples
    --------
    >>> from core.enums import TradingState
    >>> to_json(TradingStateChanged(previous=TradingState.ACTIVE, current=TradingState.HALTED,
    ...                             reason="drawdown", ts_event=1, ts_init=2))
    b'{"type":"TradingStateChanged","previous":"active","current":"halted","reason":"drawdown","ts_event":1,"ts_init":2}'
    """
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    elif isinstance(event, tuple) and hasattr(event, "_asdict"):
        fields = event._asdict()
    elif isinstance(event, Mapping):
        fields = dict(event)
    else:
        raise TypeError(f"cannot publish a {type(event).__name__}")
    body = {"type": type(event).__name__} if not isinstance(event, Mapping) else {}
    body.update({name: _plain(value) for name, value in fields.items()})
    return json.dumps(body, separators=(",", ":"), allow_nan=False, default=str).encode()


class MqttTelemetry:
    """Publish engine events and node snapshots on the telemetry topics.

    Parameters
    ----------
    config : MqttConfig
    publisher : PresencePublisher
        The link (its non-blocking outbox and retained presence).

    Attributes
    ----------
    sent : dict of str to int
        Messages handed to the outbox per kind.
    unknown : int
        :meth:`publish` calls with a kind that has no topic (logged, not sent).
    """

    def __init__(self, config: MqttConfig, publisher: PresencePublisher) -> None:
        self.topics = config.topics
        self._publisher = publisher
        self._topic = {kind: self.topics.telemetry(kind) for kind in TELEMETRY_KINDS if kind != "status"}
        self.sent: dict[str, int] = dict.fromkeys(sorted(self._topic), 0)
        self.unknown = 0

    def attach(self, engine: _Subscribable) -> None:
        """Subscribe :meth:`on_event` to every routed event the engine publishes."""
        for event_type in ENGINE_EVENTS:
            engine.subscribe(event_type, self.on_event)

    def on_event(self, event: Any) -> None:
        """Publish ``event`` on its topic (see :data:`ROUTES`); other types are ignored."""
        kind = ROUTES.get(type(event))
        if kind is not None:
            self._send(kind, to_json(event))

    def heartbeat(self, snapshot: Mapping[str, Any]) -> None:
        """Publish the node's health snapshot (retained, so a newcomer sees the last one)."""
        self._send("heartbeat", to_json(snapshot))

    def publish(self, kind: str, payload: Mapping[str, Any], *, retain: bool = False) -> None:
        """Publish a ready-made payload on ``{prefix}/{account}/{kind}`` (the live node's ``Telemetry``
        role); never blocks, never raises.

        ``kind="status"`` sets the retained presence instead: a payload with ``"state": "online"``
        is announced now and after every reconnect, one with ``"state": "offline"`` is what a clean
        stop leaves retained (the last will stays ``"connection lost"``).
        """
        try:
            body = to_json(payload)
        except (TypeError, ValueError) as exc:
            self.unknown += 1
            _log.warning("telemetry payload not serializable", kind=kind, error=str(exc))
            return
        if kind == "status":
            if payload.get("state") == "offline":
                self._publisher.set_presence(offline=body)
            else:
                self._publisher.set_presence(online=body)
            return
        if kind not in self._topic:
            self.unknown += 1
            _log.warning("telemetry kind has no topic", kind=kind, known=sorted(self._topic))
            return
        self._send(kind, body, retain=retain)

    def _send(self, kind: str, payload: bytes, *, retain: bool = False) -> None:
        self._publisher.publish_nowait(self._topic[kind], payload, retain=retain or kind in _RETAINED)
        self.sent[kind] += 1
