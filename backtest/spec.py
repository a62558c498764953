"""The run specification: everything that decides a run's result, and nothing else.

Replay, the live node and every research loop build their kernel from a :class:`RunSpec`, so
research never needs the CLI's ``AppConfig``. :meth:`RunSpec.spec_hash` is the identity of a
setup: two runs with the same spec hash and data hash produce the same trades.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backtest.fill_model import FillConfig
from core.time import parse_timeframe
from learning.pipeline import SignalConfig
from risk.config import RiskConfig


class ReplayConfig(BaseModel):
    """Settings of one run that are not a component's own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    starting_cash: float = Field(100_000.0, gt=0, allow_inf_nan=False, description="USD")
    snapshot_interval: str = Field("1d", description="equity snapshot cadence in the store, e.g. '1d', '1h'")
    progress_every: int = Field(16_384, ge=1, description="bars between progress callbacks")

    @field_validator("snapshot_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        parse_timeframe(value)
        return value


class RunSpec(BaseModel):
    """What to run: a strategy with its parameters under risk, fill, signal and replay settings.

    Parameters
    ----------
    strategy
        Strategy name or ``package.module:Class`` (see ``tradingd strategies``).
    params
        The strategy's parameters (validated when the kernel builds the strategy).
    risk, fill, signals, replay
        The components' own configurations.

    Examples
    --------
    >>> spec = RunSpec(strategy="sma_cross", params={"fast": 10, "slow": 30})
    >>> spec.spec_hash() == RunSpec(strategy="sma_cross", params={"slow": 30, "fast": 10}).spec_hash()
    True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str = "sma_cross"
    params: dict[str, Any] = Field(default_factory=dict)
    risk: RiskConfig = RiskConfig()
    fill: FillConfig = FillConfig()
    signals: SignalConfig = SignalConfig()
    replay: ReplayConfig = ReplayConfig()

    def spec_hash(self) -> str:
        """sha256 of the canonical JSON of the spec, minus what cannot change the result
        (``replay.progress_every``, ``replay.snapshot_interval``)."""
        payload = self.model_dump(mode="json")
        payload["replay"] = {"starting_cash": payload["replay"]["starting_cash"]}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


__all__ = ["ReplayConfig", "RunSpec"]
