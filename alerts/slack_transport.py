"""Slack credentials (from the environment only) and the two ways to post: an incoming webhook
(``WebhookClient``) or a bot token (``WebClient.chat_postMessage``).

A transport posts once and never raises: the answer, or the absence of one, comes back as a
:class:`PostResult` whose error text is already free of secrets. slack-sdk's own retries are off
(:class:`alerts.slack.SlackAlertSink` retries, so it can honour shutdown deadlines and count what it
drops) and its logger is silenced (it prints the webhook URL on retries and at DEBUG).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple, Protocol, cast
from urllib.parse import quote, urlparse

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

__all__ = ["ENV_BOT_TOKEN", "ENV_CHANNEL", "ENV_WEBHOOK_URL", "BotTransport", "PostResult", "SlackCredentials",
           "SlackTransport", "WebhookTransport", "redactor"]

ENV_WEBHOOK_URL = "TRADINGD_SLACK_WEBHOOK_URL"
ENV_BOT_TOKEN = "TRADINGD_SLACK_BOT_TOKEN"
ENV_CHANNEL = "TRADINGD_SLACK_CHANNEL"


@dataclass(frozen=True, repr=False)
class SlackCredentials:
    """Where to post: an incoming-webhook URL, or a bot token and a channel. Secret: the ``repr``
    hides them.

    Construct with :meth:`from_env`; the fields are never read from configuration files.
    """

    webhook_url: str | None = None
    bot_token: str | None = None
    channel: str | None = None

    def __repr__(self) -> str:
        kind = "webhook" if self.webhook_url else "bot"
        return f"SlackCredentials({kind}, channel={self.channel!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SlackCredentials | None:
        """Read ``TRADINGD_SLACK_WEBHOOK_URL``, or ``TRADINGD_SLACK_BOT_TOKEN`` and
        ``TRADINGD_SLACK_CHANNEL``, from ``env`` (default ``os.environ``).

        Returns
        -------
        SlackCredentials or None
            ``None`` when none of them is set (Slack is off).

        Raises
        ------
        ValueError
            For a webhook URL that is not ``http(s)://host/...`` or a token without a channel.
            The message names the variable, never its value.
        """
        env = os.environ if env is None else env
        url = env.get(ENV_WEBHOOK_URL, "").strip()
        token = env.get(ENV_BOT_TOKEN, "").strip()
        channel = env.get(ENV_CHANNEL, "").strip()
        if url:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError(f"{ENV_WEBHOOK_URL} is not an http(s) URL (value not shown: it is a secret)")
            return cls(webhook_url=url, channel=channel or None)
        if token:
            if not channel:
                raise ValueError(f"{ENV_BOT_TOKEN} is set but {ENV_CHANNEL} is not")
            return cls(bot_token=token, channel=channel)
        return None

    def secrets(self) -> tuple[str, ...]:
        """The strings that must never be logged: the URL, its path, the token (and URL-quoted forms)."""
        found: list[str] = []
        if self.webhook_url:
            found += [self.webhook_url, urlparse(self.webhook_url).path]
        if self.bot_token:
            found.append(self.bot_token)
        found += [quote(s, safe="") for s in found]
        return tuple(sorted({s for s in found if len(s) >= 6}, key=len, reverse=True))


class PostResult(NamedTuple):
    """The answer to one post: HTTP ``status`` (``None`` when no answer: connection refused,
    time-out), ``retry_after`` in seconds (429), and an error text already free of secrets."""

    status: int | None
    retry_after: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


class SlackTransport(Protocol):
    """Posts one formatted message; never raises (errors are returned in the :class:`PostResult`)."""

    def post(self, message: Mapping[str, Any]) -> PostResult: ...


def _quiet_logger() -> logging.Logger:
    # slack-sdk logs the full webhook URL on retries and at DEBUG: give its clients a logger that
    # prints nothing, whatever the root logger's level.
    logger = logging.getLogger("tradingd.alerts.slack.sdk")
    logger.setLevel(logging.CRITICAL + 10)
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date); None if absent or bad."""
    for key, value in (headers or {}).items():
        if key.lower() != "retry-after":
            continue
        raw = str(value[0] if isinstance(value, (list, tuple)) else value).strip()
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
        except (TypeError, ValueError, IndexError):
            return None
    return None


def redactor(secrets: tuple[str, ...]) -> Callable[[str], str]:
    """Return a function that replaces each of ``secrets`` in a text by ``***``.

    >>> redactor(("xoxb-123456",))("bad token xoxb-123456")
    'bad token ***'
    """
    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text
    return redact


def _error_text(exc: BaseException, redact: Callable[[str], str]) -> str:
    return redact(f"{type(exc).__name__}: {exc}")[:300]


class WebhookTransport:
    """Post to an incoming webhook with slack-sdk's ``WebhookClient`` (its own retries off: the
    sink retries, so it can honour shutdown deadlines and count what it drops).

    Parameters
    ----------
    url
        The webhook URL (a secret).
    timeout_s
        Per-request time-out, seconds.
    """

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        # urllib takes a float time-out although slack-sdk annotates it int.
        self._client = WebhookClient(url=url, timeout=cast(int, timeout_s), logger=_quiet_logger(),
                                     retry_handlers=[])
        self._redact = redactor(SlackCredentials(webhook_url=url).secrets())

    def __repr__(self) -> str:
        return "WebhookTransport(***)"

    def post(self, message: Mapping[str, Any]) -> PostResult:
        try:
            response = self._client.send_dict(dict(message))
        except Exception as exc:  # connection refused, time-out, TLS: no answer
            return PostResult(None, None, _error_text(exc, self._redact))
        error = "" if response.status_code == 200 else self._redact(str(response.body or ""))[:300]
        return PostResult(response.status_code, _retry_after(response.headers), error)


class BotTransport:
    """Post with a bot token through ``WebClient.chat_postMessage`` (retries off, as above).

    Parameters
    ----------
    token, channel
        Bot token (a secret) and channel id or name.
    timeout_s
        Per-request time-out, seconds.
    base_url
        Slack Web API root (tests point it at a local server); default slack-sdk's.
    """

    def __init__(self, token: str, channel: str, *, timeout_s: float = 5.0, base_url: str | None = None) -> None:
        root = base_url or WebClient.BASE_URL
        self._client = WebClient(token=token, base_url=root if root.endswith("/") else root + "/",
                                 timeout=cast(int, timeout_s), logger=_quiet_logger(), retry_handlers=[])
        self._channel = channel
        self._redact = redactor(SlackCredentials(bot_token=token).secrets())

    def __repr__(self) -> str:
        return f"BotTransport(***, channel={self._channel!r})"

    def post(self, message: Mapping[str, Any]) -> PostResult:
        try:
            self._client.chat_postMessage(channel=self._channel, text=message.get("text", ""),
                                          attachments=message.get("attachments"))
        except SlackApiError as exc:  # an answer that is not ok: 429, 5xx, invalid_auth, ...
            response = exc.response
            error = str(response.get("error", "") if isinstance(response.data, dict) else "") or "not ok"
            return PostResult(response.status_code, _retry_after(response.headers), self._redact(error))
        except Exception as exc:
            return PostResult(None, None, _error_text(exc, self._redact))
        return PostResult(200)
