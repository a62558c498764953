"""The MQTT connection's settings (:class:`MqttConfig`) and the topic names built from them (:class:`Topics`).

The password is never part of the configuration: ``password_env`` names the environment variable
that holds it, so it cannot end up in ``config.toml``, a dump or a log line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.time import NANOS_PER_SECOND, parse_timeframe

__all__ = ["TELEMETRY_KINDS", "MqttConfig", "MqttConfigError", "Topics"]

TELEMETRY_KINDS = ("decisions", "orders", "fills", "trades", "equity", "state", "regime", "heartbeat", "status")
"""Telemetry topics under ``{prefix}/{account}/`` (the broker's ACL lists each for the daemon)."""
_LEVELS = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")  # no wildcards, no empty levels
_LEVEL = re.compile(r"^[A-Za-z0-9_.-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MqttConfigError(ValueError):
    """The MQTT settings cannot be used (e.g. a username without its password in the environment)."""


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names of one daemon account (see the table in :mod:`daemon.adapters.mqtt`).

    Examples
    --------
    >>> t = Topics("tradingd", "paper")
    >>> t.bar("SPY"), t.cmd, t.reply("42"), t.telemetry("fills")
    ('tradingd/bars/SPY', 'tradingd/paper/cmd', 'tradingd/paper/reply/42', 'tradingd/paper/fills')
    """

    prefix: str
    account: str

    @property
    def bars(self) -> str:
        """Subscription filter of every symbol's bars."""
        return f"{self.prefix}/bars/+"

    def bar(self, symbol: str) -> str:
        return f"{self.prefix}/bars/{symbol}"

    @property
    def cmd(self) -> str:
        return f"{self.prefix}/{self.account}/cmd"

    @property
    def reply_root(self) -> str:
        """Replies go to ``reply_root + "/" + id`` or a ``reply_to`` topic under it."""
        return f"{self.prefix}/{self.account}/reply"

    def reply(self, command_id: str) -> str:
        return f"{self.reply_root}/{command_id}"

    def telemetry(self, kind: str) -> str:
        if kind not in TELEMETRY_KINDS:
            raise ValueError(f"unknown telemetry kind {kind!r}; known: {', '.join(TELEMETRY_KINDS)}")
        return f"{self.prefix}/{self.account}/{kind}"

    @property
    def status(self) -> str:
        """Retained ``online`` while connected; the last will (and a clean stop) set ``offline``."""
        return f"{self.prefix}/{self.account}/status"


class MqttConfig(BaseModel):
    """Settings of the daemon's one MQTT connection (bars in, telemetry out, control).

    Attributes
    ----------
    host, port : str, int
        The broker.
    username : str or None
        Account on the broker; None connects anonymously (refused by the shipped broker config).
    password_env : str
        Name of the environment variable holding the password (never the password itself).
    prefix : str
        First topic level(s), e.g. ``"tradingd"``.
    account : str
        The daemon's account (one topic level), e.g. ``"paper"``; ``"bars"`` is reserved.
    client_id : str or None
        Fixed MQTT client identifier (the broker keeps the persistent session under it);
        defaults to ``tradingd-<account>``. Two daemons must never share one.
    qos : int
        QoS of subscriptions and telemetry (1: at least once).
    keepalive_s : int
        Seconds between keep-alive pings; the broker fires the last will after 1.5x this of silence.
    timeout_s : float
        Seconds to wait for a connect, subscribe or publish acknowledgement.
    reconnect_min_s, reconnect_max_s : float
        First and largest delay between reconnect attempts (doubling in between).
    reconnect_jitter : float
        Fraction (0..1) of each delay drawn at random, so many clients do not reconnect in step.
    outbox_size : int
        Telemetry messages held while disconnected or slow; beyond it the oldest are dropped (counted).
    bar_timeframe : str
        The only timeframe accepted on the bar topics (live sources deliver ``"1min"``).
    max_clock_skew_s : float
        A bar whose end lies more than this after our wall clock is refused (``future``).
    command_ids_kept : int
        How many command ids (and their replies) are remembered for de-duplication (in memory).
    log_every_s : float
        At most one log line per rejection reason per this many seconds (the counters count all).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password_env: str = "TRADINGD_MQTT_PASSWORD"
    prefix: str = "tradingd"
    account: str = "paper"
    client_id: str | None = None
    qos: Literal[0, 1, 2] = 1
    keepalive_s: int = Field(30, ge=5, le=3600)
    timeout_s: float = Field(10.0, gt=0, le=300)
    reconnect_min_s: float = Field(0.5, gt=0, le=3600)
    reconnect_max_s: float = Field(30.0, gt=0, le=3600)
    reconnect_jitter: float = Field(0.5, ge=0, le=1)
    outbox_size: int = Field(10_000, ge=1, le=10_000_000)
    bar_timeframe: str = "1min"
    max_clock_skew_s: float = Field(5.0, ge=0)
    command_ids_kept: int = Field(1024, ge=1, le=1_000_000)
    log_every_s: float = Field(10.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _no_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError("a password is never configured here: put it in the environment variable named by "
                             "password_env (default TRADINGD_MQTT_PASSWORD)")
        return data

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _LEVELS.match(value):
            raise ValueError("topic levels of letters, digits, '_', '.', '-' separated by '/', no wildcards")
        return value

    @field_validator("account")
    @classmethod
    def _account(cls, value: str) -> str:
        if not _LEVEL.match(value):
            raise ValueError("one topic level of letters, digits, '_', '.', '-'")
        if value == "bars":
            raise ValueError("'bars' is reserved for the bar topics")
        return value

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError("an environment variable name such as TRADINGD_MQTT_PASSWORD")
        return value

    @field_validator("bar_timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        parse_timeframe(value)
        return value

    @model_validator(mode="after")
    def _backoff(self) -> MqttConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError(f"reconnect_max_s {self.reconnect_max_s} is below reconnect_min_s {self.reconnect_min_s}")
        return self

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix, self.account)

    @property
    def identifier(self) -> str:
        """The MQTT client identifier (``client_id`` or ``tradingd-<account>``)."""
        return self.client_id or f"tradingd-{self.account}"

    @property
    def timeframe_ns(self) -> int:
        return parse_timeframe(self.bar_timeframe)

    @property
    def max_clock_skew_ns(self) -> int:
        return int(self.max_clock_skew_s * NANOS_PER_SECOND)

    def password(self) -> str | None:
        """Return the password from the environment (None without a username).

        Raises
        ------
        MqttConfigError
            If ``username`` is set and the variable named by ``password_env`` is unset.
        """
        if self.username is None:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise MqttConfigError(f"MQTT user {self.username!r} needs its password in the environment variable "
                                  f"{self.password_env}")
        return value
