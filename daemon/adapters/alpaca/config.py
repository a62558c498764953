"""``[alpaca]``: where the Alpaca adapters connect and how they behave, and the API keys.

The keys are never part of the configuration: they come from the environment
(``ALPACA_API_KEY_ID`` / ``ALPACA_API_SECRET_KEY``) or from systemd credentials
(``LoadCredential=alpaca_api_key_id:...`` -> ``$CREDENTIALS_DIRECTORY/alpaca_api_key_id``), so they
cannot end up in ``config.toml``, a config dump, the database or a log line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["KEY_ID_ENV", "SECRET_KEY_ENV", "AlpacaConfig", "AlpacaCredentials", "CredentialsError"]

KEY_ID_ENV = "ALPACA_API_KEY_ID"
SECRET_KEY_ENV = "ALPACA_API_SECRET_KEY"
_CREDENTIAL_FILES = {KEY_ID_ENV: "alpaca_api_key_id", SECRET_KEY_ENV: "alpaca_api_secret_key"}

PAPER_TRADING_URL = "https://paper-api.alpaca.markets"
LIVE_TRADING_URL = "https://api.alpaca.markets"


class CredentialsError(RuntimeError):
    """The Alpaca keys are missing (the message names where they are looked for, never a value)."""


@dataclass(frozen=True, slots=True)
class AlpacaCredentials:
    """An API key pair. ``repr`` and ``str`` never show the secret (nor the key id beyond 4 chars)."""

    key_id: str = field(repr=False)
    secret_key: str = field(repr=False)

    def __repr__(self) -> str:
        return f"AlpacaCredentials(key_id='{self.key_id[:4]}…', secret_key='***')"

    __str__ = __repr__

    @property
    def secrets(self) -> tuple[str, str]:
        """Both values (for redaction filters)."""
        return (self.key_id, self.secret_key)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> AlpacaCredentials:
        """Read the keys from the environment, else from ``$CREDENTIALS_DIRECTORY`` (systemd).

        Raises
        ------
        CredentialsError
            If either key is missing or empty in both places.
        """
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        creds_dir = env.get("CREDENTIALS_DIRECTORY")
        for var, filename in _CREDENTIAL_FILES.items():
            value = env.get(var, "").strip()
            if not value and creds_dir:
                path = Path(creds_dir) / filename
                if path.is_file():
                    value = path.read_text(encoding="utf-8").strip()
            if not value:
                where = f"${var}" + (f" or {Path(creds_dir) / filename}" if creds_dir else
                                     f" (or systemd credential {filename})")
                raise CredentialsError(f"Alpaca API key missing: set {where}")
            values[var] = value
        return cls(values[KEY_ID_ENV], values[SECRET_KEY_ENV])


class AlpacaConfig(BaseModel):
    """Alpaca connection settings (``[alpaca]`` in config.toml). URLs default to Alpaca's own hosts
    (paper or live by ``[live] mode``); tests point them at a local server.

    Parameters
    ----------
    trading_url, data_url
        REST base URLs without ``/v2`` (None: Alpaca's paper/live trading host, data.alpaca.markets).
    trading_stream_url, data_stream_url
        Full websocket URLs (None: Alpaca's ``.../stream`` and ``wss://stream.data.alpaca.markets/v2/{feed}``).
    data_feed
        ``"iex"`` (free) or ``"sip"`` (paid subscription) for US equities.
    asset_class
        ``"us_equity"`` (StockDataStream) or ``"crypto"`` (CryptoDataStream, symbols like ``BTC/USD``).
    symbols
        Symbols the market-data feed subscribes to (bars of 1 minute).
    connect_timeout, read_timeout
        Seconds for every REST call (alpaca-py sets none: a stalled server would block forever).
    requests_per_minute
        Budget shared by every REST caller; Alpaca allows 200/min, the default keeps a margin.
    reconcile_interval
        Seconds between scheduled reconciliations (besides startup and every stream reconnect).
    on_mismatch
        ``"halt"`` (fail closed: an unexplained difference with the broker moves trading to HALTED)
        or ``"alert"`` (critical alert only).
    cash_tolerance
        USD of cash difference with the broker reported as explained noise.
    live_account_number
        Required when ``[live] mode = "live"``: the Alpaca account number you confirm trading with
        real money; startup refuses when the broker reports another.
    backfill_max_minutes
        After a reconnect (or at startup), at most this many missed minutes are fetched from the
        historical API before live bars resume.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    trading_url: str | None = None
    data_url: str | None = None
    trading_stream_url: str | None = None
    data_stream_url: str | None = None
    data_feed: Literal["iex", "sip"] = "iex"
    asset_class: Literal["us_equity", "crypto"] = "us_equity"
    symbols: list[str] = Field(default_factory=list)
    connect_timeout: float = Field(3.05, gt=0.0, le=60.0, allow_inf_nan=False)
    read_timeout: float = Field(10.0, gt=0.0, le=300.0, allow_inf_nan=False)
    requests_per_minute: int = Field(190, ge=1, le=200)
    reconcile_interval: float = Field(300.0, ge=5.0, allow_inf_nan=False)
    on_mismatch: Literal["halt", "alert"] = "halt"
    cash_tolerance: float = Field(1.0, ge=0.0, allow_inf_nan=False)
    live_account_number: str | None = None
    backfill_max_minutes: int = Field(60, ge=0, le=10_000)

    def trading_base_url(self, paper: bool) -> str:
        """REST base URL of the trading API (no ``/v2``)."""
        return self.trading_url or (PAPER_TRADING_URL if paper else LIVE_TRADING_URL)
