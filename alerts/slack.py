"""Slack delivery of alerts, off the hot path (the ``SlackAlertSink`` adapter of :class:`core.ports.AlertSink`).

``SlackAlertSink.alert`` only appends to a bounded in-memory buffer; one background thread formats
and posts the messages with slack-sdk (an incoming webhook, or a bot token and
``chat.postMessage``). A dead or slow Slack therefore never blocks the engine:

* **Retries.** 429 waits the ``Retry-After`` the server asked for; 5xx, time-outs and connection
  errors back off exponentially with jitter. Other answers (403 invalid token, 404 no such
  webhook, 400 bad payload) are permanent: the message is not retried. Delivery is at least once
  (a slow Slack may post a message whose answer timed out, and then post it again).
* **Bounded buffer.** When it is full new messages are dropped (a ``critical`` one evicts the
  oldest less severe one instead). Every message that is not delivered (buffer full, retries
  exhausted, refused, shutdown) is counted by title, and the count is posted as one notice after
  the next successful post ("42 alerts not delivered to Slack": 30× bar dropped, ...).
* **Secrets.** The webhook URL or bot token come from the environment only
  (:meth:`SlackCredentials.from_env`) and never appear in a log line, a ``repr`` or an exception
  text (see :mod:`alerts.slack_transport`).

Layout is :func:`alerts.slack_format.format_message`, posting :mod:`alerts.slack_transport`.
De-duplication, rate limits and digests are the router's job (:mod:`alerts.router`); this module
delivers what it is given.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import structlog

from alerts.sinks import SEVERITIES
from alerts.slack_format import format_message, severity_rank
from alerts.slack_transport import (BotTransport, PostResult, SlackCredentials, SlackTransport, WebhookTransport,
                                    redactor)

__all__ = ["BotTransport", "PostResult", "SlackAlertSink", "SlackConfig", "SlackCredentials", "SlackStats",
           "SlackTransport", "WebhookTransport", "format_message"]

_rank = severity_rank


@dataclass(frozen=True)
class SlackConfig:
    """Delivery settings of :class:`SlackAlertSink`.

    Parameters
    ----------
    buffer_size
        Messages held while Slack is slow or down; beyond it they are dropped and counted.
    timeout_s
        Per-request time-out, seconds.
    max_attempts
        Posts of one message before it counts as undeliverable (the first included).
    backoff_base_s, backoff_max_s
        Exponential back-off between retries of 5xx / connection errors: ``base * 2**(n-1)``
        capped at ``max``, times a random factor in [0.5, 1] (jitter), seconds.
    max_retry_after_s
        Longest ``Retry-After`` honoured, seconds (a longer one is cut to it).

    Raises
    ------
    ValueError
        For a non-positive size, time-out, attempt count or back-off, or ``max < base``.
    """

    buffer_size: int = 200
    timeout_s: float = 5.0
    max_attempts: int = 8
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    max_retry_after_s: float = 300.0

    def __post_init__(self) -> None:
        if self.buffer_size < 1 or self.max_attempts < 1:
            raise ValueError("buffer_size and max_attempts must be >= 1")
        if not all(math.isfinite(v) and v > 0 for v in (self.timeout_s, self.backoff_base_s, self.backoff_max_s,
                                                        self.max_retry_after_s)):
            raise ValueError("timeout_s, backoff_base_s, backoff_max_s and max_retry_after_s must be > 0")
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s must be >= backoff_base_s")


class SlackStats(NamedTuple):
    """Counters since start: messages ``sent``, ``retries`` made, ``dropped`` (buffer full or
    shutdown), ``undeliverable`` (retries exhausted or refused), and ``queued`` now."""

    sent: int
    retries: int
    dropped: int
    undeliverable: int
    queued: int


class _Item(NamedTuple):
    severity: str
    title: str
    text: str
    fields: dict[str, Any]
    counts: Counter[str] | None = None  # set on an undelivered-notice: the titles it reports


class SlackAlertSink:
    """Deliver alerts to Slack from a background thread; :meth:`alert` never blocks or raises.

    Parameters
    ----------
    transport
        Where to post (:class:`WebhookTransport`, :class:`BotTransport`, or any
        :class:`SlackTransport`).
    config
        Buffer, time-out and retry settings.
    secrets
        Strings to redact from anything this sink logs (the transports redact their own).
    logger
        A structlog logger; default ``tradingd.alerts.slack``.
    """

    def __init__(self, transport: SlackTransport, config: SlackConfig | None = None, *,
                 secrets: tuple[str, ...] = (), logger: Any | None = None) -> None:
        self.config = config or SlackConfig()
        self._transport = transport
        self._redact = redactor(secrets)
        self._log = logger or structlog.get_logger("tradingd.alerts.slack")
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._deadline: float | None = None
        self._missed: Counter[str] = Counter()  # titles not delivered since the last notice
        self._missed_rank = 0
        self._down = False
        self._sent = self._retries = self._dropped = self._undeliverable = 0
        self._thread = threading.Thread(target=self._run, name="slack-alerts", daemon=True)
        self._thread.start()

    @classmethod
    def from_env(cls, config: SlackConfig | None = None, env: Mapping[str, str] | None = None, *,
                 api_base_url: str | None = None) -> SlackAlertSink | None:
        """Build the sink from the environment (see :meth:`SlackCredentials.from_env`).

        Returns
        -------
        SlackAlertSink or None
            ``None`` when no Slack credentials are set.

        Raises
        ------
        ValueError
            For incomplete or malformed credentials (the text never contains them).
        """
        credentials = SlackCredentials.from_env(env)
        if credentials is None:
            return None
        config = config or SlackConfig()
        transport: SlackTransport
        if credentials.webhook_url:
            transport = WebhookTransport(credentials.webhook_url, timeout_s=config.timeout_s)
        else:
            transport = BotTransport(cast(str, credentials.bot_token), cast(str, credentials.channel),
                                     timeout_s=config.timeout_s, base_url=api_base_url)
        return cls(transport, config, secrets=credentials.secrets())

    def __repr__(self) -> str:
        return f"SlackAlertSink({self._transport!r}, queued={len(self._queue)})"

    # --- hot path: enqueue only ---------------------------------------------------------------
    def alert(self, severity: str, title: str, text: str, **fields: Any) -> None:
        """Queue one alert for Slack and return at once (drop and count it if the buffer is full)."""
        try:
            item = _Item(severity, title, text, fields)
            with self._cond:
                if self._closing:
                    self._miss(item, dropped=True)
                    return
                if len(self._queue) >= self.config.buffer_size and not self._evict_for(item):
                    self._miss(item, dropped=True)
                    return
                self._queue.append(item)
                self._cond.notify()
        except Exception:  # an alert must never take the engine down
            pass

    def _evict_for(self, item: _Item) -> bool:
        # A critical alert (a halt) is worth more than the oldest warning in the buffer.
        if _rank(item.severity) < _rank("critical"):
            return False
        for queued in self._queue:
            if _rank(queued.severity) < _rank("critical"):
                self._queue.remove(queued)
                self._miss(queued, dropped=True)
                return True
        return False

    def _miss(self, item: _Item, *, dropped: bool) -> None:
        if item.counts is not None:
            # A lost notice is not an alert of its own: keep what it was reporting for the next one.
            self._missed.update(item.counts)
        else:
            self._missed[item.title] += 1
            if dropped:
                self._dropped += 1
            else:
                self._undeliverable += 1
        self._missed_rank = max(self._missed_rank, _rank(item.severity))

    def stats(self) -> SlackStats:
        """Return the delivery counters (thread-safe)."""
        with self._cond:
            return SlackStats(self._sent, self._retries, self._dropped, self._undeliverable, len(self._queue))

    # --- shutdown --------------------------------------------------------------------------------
    def close(self, timeout: float = 5.0) -> bool:
        """Stop taking alerts, deliver what is buffered within ``timeout`` seconds, stop the thread.

        Returns
        -------
        bool
            True if every buffered alert was delivered in time; False if some were not (they are
            counted, and logged as a number, without their text).
        """
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + max(0.0, timeout)
            missed_before = self._dropped + self._undeliverable
            self._cond.notify_all()
        # A request in flight at the deadline is not waited for: the thread is a daemon and
        # finishes it (or times out) on its own.
        self._thread.join(max(0.0, timeout) + 0.1)
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
            for item in left:
                self._miss(item, dropped=True)
            lost = self._dropped + self._undeliverable - missed_before
        if lost or self._thread.is_alive():
            self._log.warning("slack alerts not delivered at shutdown", count=lost, in_flight=self._thread.is_alive())
            return False
        return True

    # --- worker thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            try:
                self._deliver(item)
            except Exception as exc:  # the worker must outlive any bug in formatting or transport
                with self._cond:
                    self._miss(item, dropped=False)
                self._log.error("slack delivery failed", error=self._redact(f"{type(exc).__name__}: {exc}")[:300])

    def _next(self) -> _Item | None:
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            if self._deadline is not None and time.monotonic() >= self._deadline:
                return None
            return self._queue.popleft()

    def _wait(self, delay: float) -> bool:
        """Sleep ``delay`` s unless shutdown's deadline comes first; return False in that case."""
        end = time.monotonic() + delay
        with self._cond:
            while True:
                now = time.monotonic()
                if self._deadline is not None and end > self._deadline:
                    return False  # the retry would come after the deadline: give up now
                if now >= end:
                    return True
                self._cond.wait(end - now)

    def _deliver(self, item: _Item) -> None:
        message = format_message(item.severity, item.title, item.text, item.fields)
        for attempt in range(1, self.config.max_attempts + 1):
            result = self._transport.post(message)
            if result.ok:
                self._delivered()
                return
            if not result.retryable:
                with self._cond:
                    self._miss(item, dropped=False)
                self._log.error("slack refused alert", status=result.status, error=self._redact(result.error),
                                title=item.title)
                return
            if not self._down:
                self._down = True
                self._log.warning("slack unreachable", status=result.status, error=self._redact(result.error))
            if attempt == self.config.max_attempts:
                break
            if result.status == 429 and result.retry_after is not None:
                delay = min(result.retry_after, self.config.max_retry_after_s)
            else:
                delay = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)
            with self._cond:
                self._retries += 1
            if not self._wait(delay):
                break
        with self._cond:
            self._miss(item, dropped=False)

    def _delivered(self) -> None:
        with self._cond:
            self._sent += 1
            missed, self._missed = self._missed, Counter()
            rank, self._missed_rank = self._missed_rank, 0
            if missed:
                # Front of the queue: the next post says what the outage cost.
                self._queue.appendleft(_undelivered_notice(missed, rank))
        if self._down:
            self._down = False
            self._log.info("slack reachable again", undelivered=sum(missed.values()))


def _undelivered_notice(missed: Counter[str], rank: int, top: int = 10) -> _Item:
    total = sum(missed.values())
    kinds = [f"{count}× {title}" for title, count in missed.most_common(top)]
    if len(missed) > top:
        kinds.append(f"… and {len(missed) - top} more kinds")
    severity = SEVERITIES[max(rank, _rank("warning"))]
    return _Item(severity, f"{total} alert{'s' if total != 1 else ''} not delivered to Slack",
                 "While Slack was unreachable or the buffer was full: " + ", ".join(kinds),
                 {"undelivered": total}, missed)
