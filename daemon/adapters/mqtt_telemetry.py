"""Telemetry out: engine events and node snapshots as JSON under ``{prefix}/{account}/``.

Each message is one JSON object with ``"type"`` (the event's class name) and the event's fields:
enums as their values, timestamps as epoch ns UTC ints (``ts_event``, ``ts_init``, ...), money in
USD, quantities in shares; a non-finite float becomes ``null``. Publishing never blocks: it goes to
the link's bounded outbox (see :class:`daemon.adapters.mqtt_link.MqttLink`), so a slow or dead
broker costs the engine nothing; delivery is at least once (consumers de-duplicate by
``client_order_id`` / ``fill_id``).

==============  ==========================================================  ========
topic           what                                                        retained
==============  ==========================================================  ========
``decisions``   OrderDenied, core.ports.Decision (what the engine decided)  no
``orders``      SubmitOrder, OrderAccepted/Rejected/Canceled/Expired        no
``fills``       OrderFilled                                                 no
``trades``      TradeClosed                                                 no
``equity``      core.ports.EquitySnapshot                                   no
``state``       TradingStateChanged (the trading state and its reason)      yes
``regime``      RegimeChanged                                               no
``heartbeat``   the node's health snapshot (:meth:`MqttTelemetry.heartbeat`) yes
``status``      ``online`` / ``offline`` (last will), plain text             yes
==============  ==========================================================  ========
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, Protocol

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
from daemon.adapters.mqtt_config import MqttConfig
from daemon.adapters.mqtt_link import Publisher

__all__ = ["ENGINE_EVENTS", "ROUTES", "MqttTelemetry", "to_json"]

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
    publisher : Publisher
        The link's non-blocking outbox.

    Attributes
    ----------
    sent : dict of str to int
        Messages handed to the outbox per kind.
    """

    def __init__(self, config: MqttConfig, publisher: Publisher) -> None:
        self.topics = config.topics
        self._publisher = publisher
        self._topic = {kind: self.topics.telemetry(kind) for kind in set(ROUTES.values()) | {"heartbeat"}}
        self.sent: dict[str, int] = dict.fromkeys(sorted(self._topic), 0)

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

    def _send(self, kind: str, payload: bytes) -> None:
        self._publisher.publish_nowait(self._topic[kind], payload, retain=kind in _RETAINED)
        self.sent[kind] += 1
