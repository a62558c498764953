"""The daemon's one MQTT connection (:class:`MqttLink`), shared by the bar feed, control and telemetry.

* **Reconnect.** :meth:`MqttLink.run` connects, (re)subscribes every registered filter, announces
  ``online`` (retained) and dispatches messages; when the connection drops it waits a backoff
  delay (doubling from ``reconnect_min_s`` to ``reconnect_max_s``, with jitter) and starts over.
  It never returns on a network error, only on :meth:`MqttLink.stop` or cancellation.
* **No lost bars across an outage.** The session is persistent (``clean_session=False`` under a
  fixed client identifier): while we are away the broker queues the QoS-1 messages of our
  subscriptions and delivers them when we come back. One aiomqtt client is reused across
  reconnects, so messages already received but not yet handled stay in its queue.
* **Never blocking the engine.** Outbound messages go to a bounded outbox
  (:meth:`MqttLink.publish_nowait` returns at once); a flusher task sends them while connected.
  When the outbox is full the oldest message is dropped and counted. Replies to commands use a
  small separate outbox that is sent first.
* **Handlers** are awaited one message at a time, in arrival order, so a handler that awaits a full
  engine queue holds the feed back (backpressure) instead of dropping. A handler that raises is
  logged and counted; the loop goes on.
* **Presence.** The status topic holds (retained) ``{"state": "online", ...}`` while connected,
  re-announced on every connect; the broker publishes the last will ``{"state": "offline",
  "reason": "connection lost"}`` when the connection dies without a clean disconnect (kill -9,
  network loss), and :meth:`MqttLink.stop` publishes ``{"state": "offline", ...}`` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from daemon.adapters.mqtt_config import MqttConfig

if TYPE_CHECKING:
    import aiomqtt

__all__ = ["LOST", "OFFLINE", "ONLINE", "Backoff", "Handler", "Inbound", "MqttLink", "Publisher"]

ONLINE = b'{"state":"online"}'
"""Retained on the status topic on every connect (until :meth:`MqttLink.set_presence` sets a richer one)."""
OFFLINE = b'{"state":"offline","reason":"stopped"}'
"""Retained on the status topic by a clean :meth:`MqttLink.stop` (unless set otherwise)."""
LOST = b'{"state":"offline","reason":"connection lost"}'
"""The last will: the broker retains it when our connection dies without a clean disconnect."""
_AUTH_CODES = frozenset({4, 5, 134, 135})  # bad username or password / not authorized (MQTT 3 and 5 codes)
_URGENT_SIZE = 1024  # replies to commands: few, small, sent before telemetry
_log = structlog.get_logger("tradingd.mqtt")


@dataclass(frozen=True, slots=True)
class Inbound:
    """One received message: ``retained`` is True when the broker replayed it from its retained
    store (on subscribe) rather than forwarding a live publish."""

    topic: str
    payload: bytes
    retained: bool


Handler = Callable[[Inbound], Awaitable[None]]


class Publisher(Protocol):
    """What control and telemetry need of the link: a publish that never blocks."""

    def publish_nowait(self, topic: str, payload: bytes, *, retain: bool = False, urgent: bool = False) -> bool: ...


class Backoff:
    """Reconnect delays: ``min_s`` doubling up to ``max_s``, each shortened by a random fraction of
    up to ``jitter`` (so clients restarted together spread out).

    Examples
    --------
    >>> b = Backoff(0.5, 4.0, 0.0)
    >>> [b.next() for _ in range(5)]
    [0.5, 1.0, 2.0, 4.0, 4.0]
    >>> b.reset(); b.next()
    0.5
    """

    def __init__(self, min_s: float, max_s: float, jitter: float, rng: random.Random | None = None) -> None:
        self.min_s, self.max_s, self.jitter = min_s, max_s, jitter
        self._rng = rng or random.Random()
        self._attempt = 0

    def next(self) -> float:
        """Seconds to wait before the next attempt."""
        base = min(self.max_s, self.min_s * 2.0 ** min(self._attempt, 60))
        self._attempt += 1
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self._attempt = 0


@dataclass(frozen=True, slots=True)
class _Out:
    topic: str
    payload: bytes
    retain: bool


class MqttLink:
    """One MQTT connection with reconnect, subscriptions, a bounded outbox and a last will.

    Construct it anywhere; the aiomqtt client itself is made inside :meth:`run` (aiomqtt needs
    the running loop).

    Parameters
    ----------
    config : MqttConfig
    rng : random.Random, optional
        Source of the reconnect jitter (tests pass a seeded one).

    Attributes
    ----------
    connected : asyncio.Event
        Set while connected and subscribed.
    connects, disconnects, connect_failures, auth_failures : int
        Sessions established, sessions lost, failed connection attempts, and of those the ones
        the broker refused for our credentials.
    session_lost : int
        Reconnects where the broker no longer had our session (its queued bars are gone).
    published, dropped, handler_errors : int
        Outbox messages acknowledged, dropped because the outbox was full, and handler exceptions.

    Stop it with :meth:`stop` (sends the outbox, then the offline status); cancelling also
    publishes the offline status but drops what is still in the outbox.
    """

    def __init__(self, config: MqttConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.topics = config.topics
        self.connected = asyncio.Event()
        self._handlers: list[tuple[str, Handler]] = []
        self._outbox: deque[_Out] = deque()
        self._urgent: deque[_Out] = deque()
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._backoff = Backoff(config.reconnect_min_s, config.reconnect_max_s, config.reconnect_jitter, rng)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._online, self._offline = ONLINE, OFFLINE
        self._sending = False
        self.connects = 0
        self.disconnects = 0
        self.connect_failures = 0
        self.session_lost = 0
        self.published = 0
        self.dropped = 0
        self.handler_errors = 0
        self.auth_failures = 0
        self.last_error = ""

    # --- wiring ----------------------------------------------------------------------------
    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Deliver messages matching ``topic_filter`` to ``handler`` (subscribed on every connect).

        The first registered filter that matches a topic gets the message.
        """
        self._handlers.append((topic_filter, handler))

    # --- outbound --------------------------------------------------------------------------
    def publish_nowait(self, topic: str, payload: bytes, *, retain: bool = False, urgent: bool = False) -> bool:
        """Queue a message for sending and return at once.

        Returns
        -------
        bool
            False when the outbox was full and its oldest message was dropped to make room
            (counted in ``dropped``).
        """
        box, size = (self._urgent, _URGENT_SIZE) if urgent else (self._outbox, self.config.outbox_size)
        kept = True
        if len(box) >= size:
            box.popleft()
            self.dropped += 1
            kept = False
        box.append(_Out(topic, payload, retain))
        self._wakeup.set()
        return kept

    def publish_threadsafe(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """:meth:`publish_nowait` from another thread (only once :meth:`run` has started)."""
        if self._loop is None:
            raise RuntimeError("MqttLink.run has not started")
        self._loop.call_soon_threadsafe(lambda: self.publish_nowait(topic, payload, retain=retain))

    def set_presence(self, *, online: bytes | None = None, offline: bytes | None = None) -> None:
        """Replace the retained status payloads: ``online`` is published now (when connected) and on
        every reconnect; ``offline`` by :meth:`stop`. Both must be JSON with ``"state"``."""
        if offline is not None:
            self._offline = offline
        if online is not None:
            self._online = online
            if self.connected.is_set():
                self.publish_nowait(self.topics.status, online, retain=True, urgent=True)

    @property
    def outbox_depth(self) -> int:
        return len(self._outbox) + len(self._urgent)

    def stats(self) -> dict[str, Any]:
        """JSON-able counters for the health report."""
        return {"connected": self.connected.is_set(), "connects": self.connects, "disconnects": self.disconnects,
                "connect_failures": self.connect_failures, "auth_failures": self.auth_failures,
                "session_lost": self.session_lost, "published": self.published, "outbox": self.outbox_depth,
                "dropped": self.dropped, "handler_errors": self.handler_errors, "last_error": self.last_error}

    # --- running ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask :meth:`run` to send what is queued (bounded by ``timeout_s``), publish ``offline``,
        disconnect cleanly and return."""
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        """Connect, subscribe, dispatch and reconnect until :meth:`stop` (or cancellation).

        Raises
        ------
        daemon.adapters.mqtt_config.MqttConfigError
            If the password is missing from the environment (before any connection attempt).
        """
        import aiomqtt

        self._loop = asyncio.get_running_loop()
        client = self._client(aiomqtt)
        while not self._stopping.is_set():
            try:
                async with client:
                    await self._session(client)
                    return
            except aiomqtt.MqttError as exc:
                if self.connected.is_set():
                    self.disconnects += 1
                else:
                    self.connect_failures += 1
                self.connected.clear()
                self.last_error = str(exc)
                if self._stopping.is_set():
                    return
                delay = self._backoff.next()
                if getattr(getattr(exc, "rc", None), "value", getattr(exc, "rc", None)) in _AUTH_CODES:
                    # kept retrying (an auth backend may be restarting), but an operator must act
                    self.auth_failures += 1
                    _log.error("mqtt broker refused our credentials", user=self.config.username,
                               password_env=self.config.password_env, error=str(exc), retry_in_s=round(delay, 3))
                else:
                    _log.warning("mqtt connection lost", error=str(exc), retry_in_s=round(delay, 3))
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                except asyncio.TimeoutError:
                    pass
            finally:
                self.connected.clear()

    def _client(self, aiomqtt: Any) -> aiomqtt.Client:
        config = self.config
        client = aiomqtt.Client(
            config.host, config.port, username=config.username, password=config.password(),
            identifier=config.identifier, clean_session=False, keepalive=config.keepalive_s,
            timeout=config.timeout_s, will=aiomqtt.Will(self.topics.status, LOST, qos=1, retain=True))
        # aiomqtt hides CONNACK's session-present flag; a broker that lost our session (restarted
        # without persistence) has also lost the bars it queued for us, which an operator must know.
        paho = getattr(client, "_client", None)
        original = getattr(paho, "on_connect", None)
        if paho is not None and original is not None:
            def on_connect(mqttc: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
                if not getattr(reason, "is_failure", False) and self.connects and not getattr(
                        flags, "session_present", True):
                    self.session_lost += 1
                    _log.warning("mqtt broker lost our session: bars queued while we were away are gone",
                                 client_id=config.identifier)
                original(mqttc, userdata, flags, reason, properties)

            paho.on_connect = on_connect
        return client

    async def _session(self, client: aiomqtt.Client) -> None:
        for topic_filter, _ in self._handlers:
            await client.subscribe(topic_filter, qos=self.config.qos)
        await client.publish(self.topics.status, self._online, qos=1, retain=True)
        self.connects += 1
        self._backoff.reset()
        self.connected.set()
        _log.info("mqtt connected", host=self.config.host, port=self.config.port, client_id=self.config.identifier,
                  subscriptions=[f for f, _ in self._handlers])
        flusher = asyncio.create_task(self._flush(client), name="mqtt-flush")
        stop = asyncio.create_task(self._stopping.wait(), name="mqtt-stop")
        dispatch = asyncio.create_task(self._dispatch(client), name="mqtt-dispatch")
        try:
            done, _ = await asyncio.wait((dispatch, stop, flusher), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop:
                    task.result()  # raises the MqttError that ended it
        except asyncio.CancelledError:
            # cancelled rather than stopped: aiomqtt's exit disconnects cleanly, so the broker would
            # not fire the last will and "online" would stay retained; say "offline" ourselves
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.publish(self.topics.status, self._offline, qos=1, retain=True), 1.0)
            raise
        finally:
            for task in (dispatch, stop):
                task.cancel()
            await asyncio.gather(dispatch, stop, return_exceptions=True)
            if self._stopping.is_set() and not flusher.done():
                await self._drain(client, flusher)
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
        await client.publish(self.topics.status, self._offline, qos=1, retain=True)

    async def _drain(self, client: aiomqtt.Client, flusher: asyncio.Task[None]) -> None:
        deadline = time.monotonic() + self.config.timeout_s
        # polled: the flusher is the only sender and signals nothing; shutdown happens once
        while (self.outbox_depth or self._sending) and time.monotonic() < deadline and not flusher.done():
            await asyncio.sleep(0.01)

    async def _dispatch(self, client: aiomqtt.Client) -> None:
        handlers = self._handlers
        async for message in client.messages:
            payload = message.payload
            data = bytes(payload) if isinstance(payload, (bytes, bytearray)) else str(payload or "").encode()
            topic = message.topic
            for topic_filter, handler in handlers:
                if topic.matches(topic_filter):
                    try:
                        await handler(Inbound(topic.value, data, bool(message.retain)))
                    except Exception as exc:  # a bug in one handler must not end the connection
                        self.handler_errors += 1
                        _log.exception("mqtt handler failed", topic=topic.value, error=str(exc))
                    break

    def _next(self) -> tuple[deque[_Out], _Out] | None:
        for box in (self._urgent, self._outbox):
            if box:
                return box, box.popleft()
        return None

    async def _flush(self, client: aiomqtt.Client) -> None:
        import aiomqtt

        qos = self.config.qos
        while True:
            taken = self._next()
            if taken is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            box, item = taken
            self._sending = True
            try:
                await client.publish(item.topic, item.payload, qos=qos, retain=item.retain)
            except BaseException as exc:
                # back to the front: sent again after the reconnect (at least once; consumers
                # de-duplicate by client_order_id / fill_id)
                box.appendleft(item)
                if isinstance(exc, aiomqtt.MqttError):
                    self.last_error = str(exc)
                    await asyncio.sleep(self.config.reconnect_min_s)
                    continue
                raise
            finally:
                self._sending = False
            self.published += 1
