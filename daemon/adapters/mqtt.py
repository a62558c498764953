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
``{prefix}/{account}/status``      out  ``online`` / ``offline`` (plain text; the last will)     yes
=================================  ===  =======================================================  ========

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

from daemon.adapters.mqtt_bars import REASONS, FrameRejected, MqttBarFeed, parse_bar_frame
from daemon.adapters.mqtt_config import MqttConfig, MqttConfigError, Topics
from daemon.adapters.mqtt_control import COMMANDS, MqttControl
from daemon.adapters.mqtt_link import OFFLINE, ONLINE, Inbound, MqttLink
from daemon.adapters.mqtt_telemetry import MqttTelemetry, to_json

__all__ = ["COMMANDS", "OFFLINE", "ONLINE", "REASONS", "FrameRejected", "Inbound", "MqttBarFeed", "MqttConfig",
           "MqttConfigError", "MqttControl", "MqttLink", "MqttTelemetry", "Topics", "parse_bar_frame", "to_json"]
