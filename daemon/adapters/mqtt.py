"""MQTT in and out for the live node: bars in, telemetry out, operator control — over one connection.

Parts (each its own module; this one documents the wire format and gathers the public names):

* :class:`~daemon.adapters.mqtt_link.MqttLink` — the connection: reconnect with backoff and
  jitter, resubscribe, persistent session, bounded outbox, last will.
* :class:`~daemon.adapters.mqtt_bars.MqttBarFeed` — validates bar frames into ``core.events.Bar``.
* :class:`~daemon.adapters.mqtt_control.MqttControl` — commands to core commands, replies.
* :class:`~daemon.adapters.mqtt_telemetry.MqttTelemetry` — engine events to JSON.
* :func:`~daemon.adapters.mqtt_producer.publish_bars` — the test producer (``tradingd mqtt publish-bars``).

Topics (``{prefix}`` and ``{account}`` from :class:`MqttConfig`, default ``tradingd`` / ``paper``):

=================================  ===  =======================================================  ========
topic                              dir  payload                                                  retained
=================================  ===  =======================================================  ========
``{prefix}/bars/{symbol}``         in   bar frame (below)                                        refused
``{prefix}/{account}/cmd``         in   ``{"id", "command", "reason"?, "reply_to"?}``            refused
``{prefix}/{account}/reply/{id}``  out  ``{"id", "ok", "result"}`` or ``{"id", "ok", "error"}``  no
``{prefix}/{account}/decisions``   out  OrderDenied, Decision                                    no
``{prefix}/{account}/orders``      out  SubmitOrder, OrderAccepted/Rejected/Canceled/Expired     no
``{prefix}/{account}/fills``       out  OrderFilled                                              no
``{prefix}/{account}/trades``      out  TradeClosed                                              no
``{prefix}/{account}/equity``      out  EquitySnapshot                                           no
``{prefix}/{account}/state``       out  TradingStateChanged                                      yes
``{prefix}/{account}/regime``      out  RegimeChanged                                            no
``{prefix}/{account}/heartbeat``   out  the node's health snapshot                               yes
``{prefix}/{account}/status``      out  ``{"state": "online"|"offline", "reason"?, ...}``       yes
=================================  ===  =======================================================  ========

The status topic is the daemon's presence: ``online`` (with mode and account when the node sets
them) while connected, ``{"state": "offline", "reason": "connection lost"}`` as the last will when
the connection dies uncleanly, ``offline`` with the stop reason after a clean stop.
Everything is QoS 1 (``qos`` in :class:`MqttConfig`). Telemetry payloads are the events' fields as JSON
(see :mod:`daemon.adapters.mqtt_telemetry`).

Bar frame (UTF-8 JSON object; extra keys are ignored)::

    {"symbol": "SPY", "timeframe": "1min", "start": "2020-01-02T14:30:00Z",
     "open": 324.1, "high": 324.5, "low": 323.9, "close": 324.3, "volume": 12000}

=============  ======================================================================================
field          meaning
=============  ======================================================================================
``symbol``     the symbol, equal to the topic's last level
``timeframe``  bar length, must equal the feed's ``bar_timeframe`` (``"1min"``)
``start``      bar START: ISO-8601 with an offset (``Z``, ``+00:00``; up to 9 fraction digits) or
               int epoch ns UTC. The bar becomes ``Bar(ts_event=start, ts_init=start + timeframe)``
``open`` ...   ``open``, ``high``, ``low``, ``close``: JSON numbers, USD, finite, > 0, low <= open,
               close <= high
``volume``     JSON number >= 0, shares
=============  ======================================================================================

Command ``command`` is one of ``pause``, ``resume``, ``flatten``, ``halt``, ``rearm``, ``status``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Protocol

from daemon.adapters.mqtt_bars import REASONS, FrameRejected, MqttBarFeed, parse_bar_frame
from daemon.adapters.mqtt_config import MqttConfig, MqttConfigError, Topics
from daemon.adapters.mqtt_control import COMMANDS, MqttControl
from daemon.adapters.mqtt_link import LOST, OFFLINE, ONLINE, Inbound, MqttLink
from daemon.adapters.mqtt_telemetry import MqttTelemetry, to_json

__all__ = ["COMMANDS", "LOST", "OFFLINE", "ONLINE", "REASONS", "FrameRejected", "Inbound", "MqttBarFeed", "MqttConfig",
           "MqttConfigError", "MqttControl", "MqttLink", "MqttTelemetry", "Topics", "mqtt_service", "parse_bar_frame",
           "to_json"]


class _Node(Protocol):
    async def enqueue(self, event: Any) -> None: ...
    def status(self) -> dict[str, Any]: ...


def mqtt_service(link: MqttLink, *, bars: bool = True, symbols: Iterable[str] | None = None,
                 seed: Mapping[str, int] | None = None,
                 now_ns: Callable[[], int] = time.time_ns) -> Callable[[_Node], Coroutine[Any, Any, None]]:
    """Return the live node's MQTT service: ``await service(node)`` wires the bar feed (when
    ``bars``) and control to ``node.enqueue`` / ``node.status`` on ``link`` and runs the link.

    Parameters
    ----------
    link : MqttLink
        Shared with :class:`MqttTelemetry` (give the node ``MqttTelemetry(link.config, link)``).
    bars : bool
        Subscribe to the bar topics (``--feed mqtt``); control is always on.
    symbols : iterable of str, optional
        Symbols the bar feed accepts (None: any).
    seed : mapping of str to int, optional
        Last bar start (ns UTC) per symbol already booked (``engine.last_bar_ts`` after recovery).
    now_ns : callable
        The node's clock (epoch ns UTC) for command timestamps and the bar ``future`` check.

    The service keeps ``service.feed`` and ``service.control`` (for the health report) once running.
    """
    config = link.config

    async def service(node: _Node) -> None:
        if bars:
            feed = MqttBarFeed(config, node.enqueue, symbols=symbols, now_ns=now_ns)
            if seed:
                feed.seed(seed)
            link.subscribe(config.topics.bars, feed.on_message)
            service.feed = feed  # type: ignore[attr-defined]
        control = MqttControl(config, node.enqueue, node.status, link, now_ns=now_ns)
        link.subscribe(config.topics.cmd, control.on_message)
        service.control = control  # type: ignore[attr-defined]
        await link.run()

    return service
