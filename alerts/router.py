"""Alert routing: every alert to the log, the ones worth a human's attention to Slack, at a pace a
human can read (the :class:`core.ports.AlertSink` the engine and the daemon are given).

* **Severity.** ``debug`` and ``info`` go to the log only; ``warning``, ``error`` and ``critical``
  also go to Slack. The reserved field ``notify=True`` sends an info alert (daemon start, daily
  summary) to Slack too; ``notify=False`` keeps any alert out of it.
* **De-dup.** The same title and text again within ``dedup_window_s`` is counted, not resent.
  The count rides on the next message of that kind after the window ("+12 identical in the last
  300 s"), or, if none comes, on a summary sent when the window closes.
* **Rate limit and digest.** At most ``rate_limit`` messages per ``rate_window_s``. Beyond it the
  router is in flood mode: alerts are tallied into one digest per window ("37 alerts in the last
  60 s: 30× bar dropped, ...") until a window passes with none. ``critical`` alerts (a halt)
  always go out on their own, de-duplicated but never held back.

Time comes from an injectable monotonic ``clock`` (seconds). Windows close when an alert arrives
or when :meth:`AlertRouter.tick` is called: the live node calls it every few seconds, so a digest
or a repeat count goes out even when the flood stops dead. Thread-safe; ``alert`` never blocks on
I/O and never raises.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from alerts.sinks import SEVERITIES, LogAlertSink
from alerts.slack_format import severity_rank
from core.ports import AlertSink
from core.time import iso

__all__ = ["AlertRouter", "RouterConfig", "RouterStats"]


@dataclass(frozen=True)
class RouterConfig:
    """Routing policy of :class:`AlertRouter`.

    Parameters
    ----------
    slack_severity
        Lowest severity sent to Slack without ``notify=True``.
    bypass_severity
        Alerts at or above it are never rate-limited (still de-duplicated).
    dedup_window_s
        Seconds during which the same title and text is counted rather than resent.
    rate_limit, rate_window_s
        At most ``rate_limit`` Slack messages per ``rate_window_s`` seconds before digests.
    digest_kinds
        Titles listed in a digest (the rest summed as "... and N more kinds").
    max_tracked
        Distinct alerts remembered for de-dup (the oldest are forgotten first).

    Raises
    ------
    ValueError
        For an unknown severity, a non-positive window or limit.
    """

    slack_severity: str = "warning"
    bypass_severity: str = "critical"
    dedup_window_s: float = 300.0
    rate_limit: int = 20
    rate_window_s: float = 60.0
    digest_kinds: int = 10
    max_tracked: int = 10_000

    def __post_init__(self) -> None:
        for name in ("slack_severity", "bypass_severity"):
            if getattr(self, name) not in SEVERITIES:
                raise ValueError(f"{name} must be one of {', '.join(SEVERITIES)}")
        if not (math.isfinite(self.dedup_window_s) and self.dedup_window_s >= 0):
            raise ValueError("dedup_window_s must be >= 0")
        if not (math.isfinite(self.rate_window_s) and self.rate_window_s > 0):
            raise ValueError("rate_window_s must be > 0")
        if self.rate_limit < 1 or self.digest_kinds < 1 or self.max_tracked < 1:
            raise ValueError("rate_limit, digest_kinds and max_tracked must be >= 1")


class RouterStats(NamedTuple):
    """Counters since start: alerts ``received``; Slack messages ``sent`` (digests and repeat
    summaries included); alerts ``deduplicated`` (counted, not resent) and ``digested`` (folded
    into a digest)."""

    received: int
    sent: int
    deduplicated: int
    digested: int


@dataclass
class _Seen:
    sent_at: float
    severity: str
    title: str
    text: str
    fields: dict[str, Any]
    repeats: int = 0


@dataclass
class _Digest:
    started: float
    count: int = 0
    rank: int = 0
    titles: Counter[str] = field(default_factory=Counter)
    last: tuple[str, str, str, dict[str, Any]] | None = None


def _note(repeats: int, seconds: float) -> str:
    return f"(+{repeats} identical in the last {seconds:.0f} s)"


class AlertRouter:
    """Route alerts to the log and, by severity, de-dup and rate limit, to Slack.

    Parameters
    ----------
    slack
        The Slack sink (a :class:`alerts.slack.SlackAlertSink`: its ``alert`` only enqueues), or
        None when Slack is not configured (everything is then logged only).
    log
        Where every alert is logged; default a :class:`alerts.sinks.LogAlertSink`.
    config
        The routing policy.
    clock
        Monotonic seconds for the windows; default ``time.monotonic`` (tests pass a fake; a
        replay may pass the simulated clock in seconds).
    event_time
        Epoch ns UTC of the event being handled; when given, each Slack message carries it as
        the ``time_field`` field (ISO-8601).
    time_field
        ``"live_time"`` or ``"replay_time"``.
    """

    def __init__(self, slack: AlertSink | None, log: AlertSink | None = None, config: RouterConfig | None = None, *,
                 clock: Callable[[], float] = time.monotonic, event_time: Callable[[], int] | None = None,
                 time_field: str = "live_time") -> None:
        self.config = config or RouterConfig()
        self._slack = slack
        self._log = log if log is not None else LogAlertSink()
        self._clock = clock
        self._event_time = event_time
        self._time_field = time_field
        self._slack_rank = severity_rank(self.config.slack_severity)
        self._bypass_rank = severity_rank(self.config.bypass_severity)
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, str], _Seen] = OrderedDict()  # oldest first
        self._sent_at: deque[float] = deque()  # send times within the rate window
        self._digest: _Digest | None = None  # not None = flood mode
        self._received = self._sent = self._deduplicated = self._digested = 0

    # --- the AlertSink port -------------------------------------------------------------------
    def alert(self, severity: str, title: str, text: str, **fields: Any) -> None:
        """Log the alert, and send it to Slack if the policy says so. Never blocks or raises.

        Parameters
        ----------
        severity
            ``debug`` | ``info`` | ``warning`` | ``error`` | ``critical`` (unknown ones count as
            warning).
        title, text
            One-line title and body; together they identify repeats.
        **fields
            Facts shown with the alert (``account``, ``symbol``, ``client_order_id`` ...); the
            reserved ``notify`` (bool) overrides the severity rule for Slack and is not shown.
        """
        try:
            notify = fields.pop("notify", None)
            self._log.alert(severity, title, text, **fields)
            if self._slack is None:
                return
            rank = severity_rank(severity)
            if not (notify if notify is not None else rank >= self._slack_rank):
                return
            if self._event_time is not None and self._time_field not in fields:
                fields[self._time_field] = iso(self._event_time())
            with self._lock:
                self._received += 1
                now = self._clock()
                # The same alert again after its window: its count rides on this message, so take
                # it out before closing windows would send it as a summary of its own.
                previous = self._take_expired((title, text), now)
                self._close_windows(now)
                self._route(now, severity, rank, title, text, fields, previous)
        except Exception:  # an alert must never take the engine down
            pass

    def tick(self) -> None:
        """Close the windows that are due: send digests and repeat counts nothing else would
        trigger. Call it every few seconds (a scheduler job); cheap when nothing is due."""
        try:
            with self._lock:
                self._close_windows(self._clock())
        except Exception:
            pass

    def stats(self) -> RouterStats:
        """Return the routing counters."""
        with self._lock:
            return RouterStats(self._received, self._sent, self._deduplicated, self._digested)

    def close(self, timeout: float = 5.0) -> bool:
        """Send every pending repeat count and digest now, then close the Slack sink (if it has
        ``close``) within ``timeout`` seconds; return what the sink's ``close`` returns (True
        without a sink)."""
        with self._lock:
            now = self._clock()
            while self._seen:
                _, seen = self._seen.popitem(last=False)
                if seen.repeats:
                    self._send(now, seen.severity, seen.title, f"{seen.text}\n{_note(seen.repeats, now - seen.sent_at)}",
                               seen.fields)
            if self._digest is not None and self._digest.count:
                self._send_digest(now, self._digest)
            self._digest = None
        closer = getattr(self._slack, "close", None)
        return bool(closer(timeout)) if callable(closer) else True

    # --- policy ---------------------------------------------------------------------------------
    def _take_expired(self, key: tuple[str, str], now: float) -> _Seen | None:
        seen = self._seen.get(key)
        if seen is None or now - seen.sent_at < self.config.dedup_window_s:
            return None
        del self._seen[key]
        return seen

    def _route(self, now: float, severity: str, rank: int, title: str, text: str, fields: dict[str, Any],
               previous: _Seen | None) -> None:
        key = (title, text)
        seen = self._seen.get(key)
        if seen is not None:  # within its window
            seen.repeats += 1
            self._deduplicated += 1
            return
        carried = previous.repeats if previous is not None else 0
        if previous is not None and carried:
            text = f"{text}\n{_note(carried, now - previous.sent_at)}"
        if self.config.dedup_window_s > 0:
            self._seen[key] = _Seen(now, severity, title, key[1], fields)
            if len(self._seen) > self.config.max_tracked:
                self._expire(self._seen.popitem(last=False)[1], now)
        self._emit(now, severity, rank, title, text, fields, weight=1 + carried)

    def _close_windows(self, now: float) -> None:
        window = self.config.dedup_window_s
        while self._seen:
            seen = next(iter(self._seen.values()))
            if now - seen.sent_at < window:
                break
            self._seen.popitem(last=False)
            self._expire(seen, now)
        digest = self._digest
        if digest is not None and now - digest.started >= self.config.rate_window_s:
            if digest.count:
                self._send_digest(now, digest)
                self._digest = _Digest(started=now)  # still flooding until a window passes empty
            else:
                self._digest = None

    def _expire(self, seen: _Seen, now: float) -> None:
        if seen.repeats:  # repeats no later message will carry: say so now
            self._emit(now, seen.severity, severity_rank(seen.severity), seen.title,
                       f"{seen.text}\n{_note(seen.repeats, now - seen.sent_at)}", seen.fields, weight=seen.repeats)

    def _emit(self, now: float, severity: str, rank: int, title: str, text: str, fields: dict[str, Any], *,
              weight: int) -> None:
        sent_at = self._sent_at
        while sent_at and now - sent_at[0] >= self.config.rate_window_s:
            sent_at.popleft()
        if rank >= self._bypass_rank or (self._digest is None and len(sent_at) < self.config.rate_limit):
            self._send(now, severity, title, text, fields)
            return
        if self._digest is None:
            self._digest = _Digest(started=now)
        digest = self._digest
        digest.count += weight
        digest.rank = max(digest.rank, rank)
        digest.titles[title] += weight
        digest.last = (severity, title, text, fields)
        self._digested += weight

    def _send_digest(self, now: float, digest: _Digest) -> None:
        if len(digest.titles) == 1 and digest.count == 1 and digest.last is not None:
            self._send(now, *digest.last)  # a digest of one is the alert itself
            return
        kinds = [f"{count}× {title}" for title, count in digest.titles.most_common(self.config.digest_kinds)]
        if len(digest.titles) > self.config.digest_kinds:
            kinds.append(f"… and {len(digest.titles) - self.config.digest_kinds} more kinds")
        fields: dict[str, Any] = {"alerts": digest.count}
        if self._event_time is not None:
            fields[self._time_field] = iso(self._event_time())
        self._send(now, SEVERITIES[digest.rank], f"{digest.count} alerts in the last {now - digest.started:.0f} s",
                   "Rate limited; by kind: " + ", ".join(kinds), fields)

    def _send(self, now: float, severity: str, title: str, text: str, fields: dict[str, Any]) -> None:
        self._sent_at.append(now)
        self._sent += 1
        if self._slack is not None:
            try:
                self._slack.alert(severity, title, text, **fields)
            except Exception:
                pass
