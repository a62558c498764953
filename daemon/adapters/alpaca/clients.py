"""alpaca-py REST clients made safe to use from a daemon, and one request budget for all of them.

alpaca-py sets no REST timeout (a stalled server blocks a thread forever) and retries 429/504
itself with a blocking ``time.sleep(3)`` — including ``POST /v2/orders``, whose blind retry after
a 504 turns into 422 "client_order_id must be unique". :func:`trading_client` and
:func:`data_client` therefore patch an explicit ``(connect, read)`` timeout into the session and
switch the SDK's retries off: callers decide (:func:`classify`), a submit of unknown outcome is
looked up by ``client_order_id``, never resent blindly.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from daemon.adapters.alpaca.config import AlpacaConfig, AlpacaCredentials

__all__ = ["CallOutcome", "ClassifiedError", "RequestBudget", "classify", "crypto_data_client", "data_client",
           "metered", "retry_after", "trading_client"]


class RequestBudget:
    """A token bucket shared by every REST caller of one account (Alpaca allows 200 requests/min).

    Thread-safe: REST calls run in worker threads and :meth:`acquire` blocks the calling thread
    until a token is free. ``per_minute`` tokens refill evenly over a minute; the bucket holds at
    most ``burst`` (default: a tenth of a minute's worth, at least 1).
    """

    def __init__(self, per_minute: int, *, burst: int | None = None) -> None:
        if per_minute < 1:
            raise ValueError(f"requests per minute must be >= 1, got {per_minute}")
        self.per_minute = per_minute
        self.capacity = float(burst if burst is not None else max(1, per_minute // 10))
        self._tokens = self.capacity
        self._rate = per_minute / 60.0  # tokens per second
        self._stamp = time.monotonic()
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total seconds callers waited (status / benchmark)
        self.granted = 0

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def acquire(self, timeout: float | None = None) -> bool:
        """Take one token, waiting for it; False when ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                now = time.monotonic()
                self._refill(now)
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    self.granted += 1
                    return True
                wait = (1.0 - self._tokens) / self._rate
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return False
            time.sleep(wait)
            self.waited_s += wait

    def penalize(self, seconds: float) -> None:
        """The server said 429: take every token for ``seconds`` (its Retry-After), for all callers."""
        with self._lock:
            self._refill(time.monotonic())
            self._tokens = min(self._tokens, 0.0) - seconds * self._rate


class CallOutcome(str, Enum):
    """What a failed REST call means for the caller."""

    REJECTED = "rejected"  # the server refused the request for good (4xx): nothing happened
    DUPLICATE = "duplicate"  # 422 client_order_id must be unique: the order exists, look it up
    NOT_FOUND = "not_found"  # 404
    RATE_LIMITED = "rate_limited"  # 429: nothing happened, retry later
    UNKNOWN = "unknown"  # timeout, connection error, 5xx: it may or may not have happened


@dataclass(frozen=True, slots=True)
class ClassifiedError:
    """A REST failure: its :class:`CallOutcome`, HTTP status (None without a response) and a short,
    safe description (no HTML body, never a header). ``retry_after`` is the seconds of a 429's
    ``Retry-After`` header (None when absent or not a number)."""

    outcome: CallOutcome
    status: int | None
    text: str
    retry_after: float | None = None


_TAGS = re.compile(r"<[^>]+>")


def _body_text(body: str) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return " ".join(_TAGS.sub(" ", body).split())[:200]  # an HTML 502 page -> its words
    if isinstance(parsed, dict):
        message = parsed.get("message", "")
        code = parsed.get("code")
        return f"{message} (code {code})" if code is not None else str(message)
    return str(parsed)[:200]


def _retry_after(exc: Any) -> float | None:
    """Seconds of the response's ``Retry-After`` header (the delta-seconds form only)."""
    try:
        value = float(exc.response.headers.get("Retry-After"))
    except (AttributeError, TypeError, ValueError):
        return None
    return value if 0.0 <= value < 3600.0 else None


def classify(exc: BaseException) -> ClassifiedError:
    """Map an exception raised by an alpaca-py REST call to what it means.

    ``APIError`` carries the status; ``requests`` timeouts and connection errors (and anything
    unexpected) are UNKNOWN: the request may have reached the server.

    Examples
    --------
    >>> classify(TimeoutError("read timed out")).outcome.value
    'unknown'
    """
    from alpaca.common.exceptions import APIError

    if isinstance(exc, APIError):
        status = exc.status_code
        text = _body_text(str(exc))
        if status == 422 and "client_order_id must be unique" in str(exc):
            return ClassifiedError(CallOutcome.DUPLICATE, status, text)
        if status == 404:
            return ClassifiedError(CallOutcome.NOT_FOUND, status, text)
        if status == 429:
            return ClassifiedError(CallOutcome.RATE_LIMITED, status, text, _retry_after(exc))
        if status is not None and 400 <= status < 500:
            return ClassifiedError(CallOutcome.REJECTED, status, text)
        return ClassifiedError(CallOutcome.UNKNOWN, status, f"HTTP {status}: {text}")
    return ClassifiedError(CallOutcome.UNKNOWN, None, f"{type(exc).__name__}: {exc}"[:300])


def _harden(client: Any, cfg: AlpacaConfig) -> Any:
    client._session.request = functools.partial(client._session.request,
                                                timeout=(cfg.connect_timeout, cfg.read_timeout))
    client._retry = 0  # one attempt: `while retry >= 0` in RESTClient._request
    client._retry_codes = []
    return client


def trading_client(creds: AlpacaCredentials, cfg: AlpacaConfig, *, paper: bool) -> Any:
    """A ``TradingClient`` with explicit timeouts and no SDK retries (see the module docstring)."""
    from alpaca.trading.client import TradingClient

    return _harden(TradingClient(creds.key_id, creds.secret_key, paper=paper,
                                 url_override=cfg.trading_url), cfg)


def data_client(creds: AlpacaCredentials, cfg: AlpacaConfig, *, raw_data: bool = False) -> Any:
    """A ``StockHistoricalDataClient``, hardened like :func:`trading_client`.

    ``raw_data=True``: responses stay parsed JSON (``{symbol: [{"t", "o", ...}]}``) instead of
    pydantic models, several times faster for long downloads.
    """
    from alpaca.data.historical.stock import StockHistoricalDataClient

    return _harden(StockHistoricalDataClient(creds.key_id, creds.secret_key, raw_data=raw_data,
                                             url_override=cfg.data_url), cfg)


def crypto_data_client(creds: AlpacaCredentials, cfg: AlpacaConfig, *, raw_data: bool = False) -> Any:
    """A ``CryptoHistoricalDataClient``, hardened like :func:`trading_client` (``raw_data`` as
    :func:`data_client`)."""
    from alpaca.data.historical.crypto import CryptoHistoricalDataClient

    return _harden(CryptoHistoricalDataClient(creds.key_id, creds.secret_key, raw_data=raw_data,
                                              url_override=cfg.data_url), cfg)


def metered(client: Any, budget: RequestBudget) -> Any:
    """Make every HTTP request of an alpaca-py REST ``client`` take a token of ``budget`` first.

    Per request, not per SDK call: one ``get_stock_bars`` may page through many requests.
    Idempotent (a client is metered once, by the first budget). Returns ``client``.
    """
    if getattr(client, "_tradingd_budget", None) is None:
        send = client._session.request

        def request(*args: Any, **kwargs: Any) -> Any:
            budget.acquire()
            return send(*args, **kwargs)

        client._session.request = request
        client._tradingd_budget = budget
    return client


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked to wait (``Retry-After`` of a 429 ``APIError``), else None.

    Examples
    --------
    >>> retry_after(ValueError("no response")) is None
    True
    """
    response = getattr(exc, "response", None) if type(exc).__name__ == "APIError" else None
    value = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: not worth parsing, callers fall back to their own wait
        return None
