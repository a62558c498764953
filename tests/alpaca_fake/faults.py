"""Fault injection for the fake Alpaca server (``fake.faults``).

Counted faults (:meth:`Faults.rate_limit`, :meth:`Faults.server_error`, :meth:`Faults.stall`,
:meth:`Faults.execute_then_504`, :meth:`Faults.reject_orders`, :meth:`Faults.reject_after_accept`) queue
up in call order; each REST request takes the **first** queued fault that matches it (path prefix and
method, when given) and decrements it. Websocket upgrades never take a REST fault; the streams have
:meth:`Faults.drop_trading_stream` / :meth:`Faults.drop_data_stream` instead. The flags
(``duplicate_updates``, ``reorder_updates``, ``partial_fills``, ``events_before_reply``, ``hold_fills``)
act on trade updates and fills while set. Every method is thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ORDERS_PATH = "/v2/orders"


@dataclass
class Fault:
    """One queued fault: ``kind`` applies to the next ``remaining`` matching requests."""

    kind: str  # rate_limit | server_error | stall | execute_then_504 | reject_orders | reject_after_accept
    remaining: int
    path: str | None = None
    method: str | None = None
    exact: bool = False  # path must equal, not prefix (the order-submission faults)
    status: int = 0
    html: bool = False
    seconds: float = 0.0
    execute: bool = True
    retry_after: int = 1
    message: str = ""
    skip: int = 0  # matching requests still to let through before the fault applies

    def matches(self, method: str, path: str) -> bool:
        """True when this fault applies to a request ``method`` ``path``."""
        if self.method is not None and self.method != method.upper():
            return False
        if self.path is None:
            return True
        return path == self.path if self.exact else path.startswith(self.path)


def _count(n: int) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"fault count n must be an int >= 1, got {n!r}")
    return n


def _method(method: str | None) -> str | None:
    if method is None:
        return None
    if not isinstance(method, str) or not method.isalpha():
        raise ValueError(f"method must be an HTTP method such as 'POST', got {method!r}")
    return method.upper()


def _skip(skip: int) -> int:
    if not isinstance(skip, int) or isinstance(skip, bool) or skip < 0:
        raise ValueError(f"skip must be an int >= 0 (matching requests to let through first), got {skip!r}")
    return skip


def _path(path: str | None) -> str | None:
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise ValueError(f"path must be a path prefix starting with '/', such as '/v2/orders', got {path!r}")
    return path


class Faults:
    """Faults and delivery flags of one :class:`~tests.alpaca_fake.FakeAlpaca` (see the module docstring).

    Attributes
    ----------
    duplicate_updates : bool
        Send every trade update twice.
    reorder_updates : bool
        Hold each order's trade updates until the order is final, then send them in reverse order
        (``fill`` before ``new``). Setting it back to False sends what is held, still reversed.
    partial_fills : int
        0 = off; N > 1 splits every fill into N executions (``partial_fill`` events, the last ``fill``).
        Whole quantities split into whole shares (at most ``qty`` parts), fractional ones into N equal parts.
    events_before_reply : bool
        Deliver the trade updates caused by a REST request before its HTTP reply (real Alpaca may).
    hold_fills : bool
        Orders are accepted (``new``) but nothing fills until this is False again and ``advance()`` runs;
        held market orders then fill at the next bar's open.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = []
        self._refuse_until = {"trading": 0.0, "data": 0.0}
        self._drop_hook: Callable[[str], None] | None = None
        self._flush_hook: Callable[[], None] | None = None
        self.duplicate_updates = False
        self._reorder_updates = False
        self.partial_fills = 0
        self.events_before_reply = False
        self.hold_fills = False

    # ----------------------------------------------------------------------------------- counted faults

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._queue.append(fault)

    def rate_limit(self, n: int = 1, path: str | None = None, method: str | None = None,
                   retry_after: int = 1, *, skip: int = 0) -> None:
        """Answer the next ``n`` matching requests with 429 ``{"code":42910000,"message":"rate limit
        exceeded"}`` and a ``Retry-After: retry_after`` header (seconds). ``skip`` lets that many
        matching requests through first (fail the 2nd page of a download: ``skip=1``)."""
        if not isinstance(retry_after, int) or retry_after < 0:
            raise ValueError(f"retry_after must be an int >= 0 (seconds), got {retry_after!r}")
        self._add(Fault("rate_limit", _count(n), _path(path), _method(method), retry_after=retry_after,
                        skip=_skip(skip)))

    def server_error(self, n: int = 1, status: int = 500, html: bool = False, path: str | None = None,
                     method: str | None = None, *, skip: int = 0) -> None:
        """Answer the next ``n`` matching requests with ``status`` (5xx): a JSON body, or with
        ``html=True`` a proxy's HTML error page (``e.code`` then raises in alpaca-py). ``skip`` lets that
        many matching requests through first."""
        if not isinstance(status, int) or not 500 <= status <= 599:
            raise ValueError(f"status must be a 5xx HTTP status, got {status!r}")
        self._add(Fault("server_error", _count(n), _path(path), _method(method), status=status, html=bool(html),
                        skip=_skip(skip)))

    def stall(self, n: int = 1, seconds: float = 5.0, path: str | None = None, method: str | None = None,
              execute: bool = True, *, skip: int = 0) -> None:
        """Sleep ``seconds`` before answering the next ``n`` matching requests.

        With ``execute=True`` the request takes effect first (an order stalled past the client's timeout
        exists); with ``execute=False`` it takes effect only after the sleep (late: a client that gave up
        may find it later). The reply is the normal one, sent after the sleep. ``skip`` lets that many
        matching requests through first.
        """
        if not isinstance(seconds, (int, float)) or seconds < 0:
            raise ValueError(f"seconds must be a number >= 0, got {seconds!r}")
        self._add(Fault("stall", _count(n), _path(path), _method(method), seconds=float(seconds),
                        execute=bool(execute), skip=_skip(skip)))

    def execute_then_504(self, n: int = 1) -> None:
        """The next ``n`` ``POST /v2/orders`` create the order (it may fill) and then answer 504
        ``{"code":50410000,"message":"gateway timeout"}`` (alpaca-py retries 504: the retry of an
        order with a client_order_id then gets 422 ``client_order_id must be unique``)."""
        self._add(Fault("execute_then_504", _count(n), ORDERS_PATH, "POST", exact=True, status=504))

    def reject_orders(self, n: int = 1, status: int = 403, message: str = "insufficient buying power") -> None:
        """The next ``n`` ``POST /v2/orders`` create nothing and answer ``status`` with
        ``{"code": <status>10000, "message": message}`` (403 buying power adds ``buying_power`` and
        ``cost_basis``, as Alpaca does)."""
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"status must be a 4xx/5xx HTTP status, got {status!r}")
        self._add(Fault("reject_orders", _count(n), ORDERS_PATH, "POST", exact=True, status=status,
                        message=str(message)))

    def reject_after_accept(self, n: int = 1) -> None:
        """The next ``n`` ``POST /v2/orders`` are accepted (200, status ``accepted``) and then rejected
        by the venue: the stream sends ``rejected`` instead of ``new``."""
        self._add(Fault("reject_after_accept", _count(n), ORDERS_PATH, "POST", exact=True))

    def clear(self) -> None:
        """Drop every queued counted fault and end any refusal window (flags are left alone)."""
        with self._lock:
            self._queue.clear()
            self._refuse_until = {"trading": 0.0, "data": 0.0}

    def pending(self) -> int:
        """Requests still to be hit by queued counted faults."""
        with self._lock:
            return sum(f.remaining for f in self._queue)

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one use of the first queued fault matching the request (server use); a matching
        fault still skipping lets the request pass it (and counts it)."""
        with self._lock:
            for fault in self._queue:
                if fault.matches(method, path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._queue.remove(fault)
                    return fault
        return None

    # ----------------------------------------------------------------------------------- streams

    def drop_trading_stream(self, refuse_for: float = 0.0) -> None:
        """Close every ``/stream`` socket now and close new ones at once for ``refuse_for`` seconds."""
        self._drop("trading", refuse_for)

    def drop_data_stream(self, refuse_for: float = 0.0) -> None:
        """Close every market-data socket (stocks and crypto) now and close new ones at once for
        ``refuse_for`` seconds."""
        self._drop("data", refuse_for)

    def _drop(self, kind: str, refuse_for: float) -> None:
        if not isinstance(refuse_for, (int, float)) or refuse_for < 0:
            raise ValueError(f"refuse_for must be a number of seconds >= 0, got {refuse_for!r}")
        with self._lock:
            self._refuse_until[kind] = time.monotonic() + float(refuse_for)
            hook = self._drop_hook
        if hook is not None:
            hook(kind)

    def refusing(self, kind: str) -> bool:
        """True while new ``kind`` (``trading`` / ``data``) stream connections are refused."""
        with self._lock:
            return time.monotonic() < self._refuse_until[kind]

    # ----------------------------------------------------------------------------------- flags

    @property
    def reorder_updates(self) -> bool:
        """See the class docstring."""
        return self._reorder_updates

    @reorder_updates.setter
    def reorder_updates(self, value: bool) -> None:
        self._reorder_updates = bool(value)
        hook = self._flush_hook
        if not value and hook is not None:
            hook()

    def _bind(self, drop: Callable[[str], None], flush: Callable[[], None]) -> None:
        self._drop_hook, self._flush_hook = drop, flush

    def __repr__(self) -> str:
        flags: dict[str, Any] = {k: getattr(self, k) for k in ("duplicate_updates", "reorder_updates",
                                                              "partial_fills", "events_before_reply", "hold_fills")}
        return f"Faults(pending={self.pending()}, {', '.join(f'{k}={v!r}' for k, v in flags.items())})"
