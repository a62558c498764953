"""``[live]``: how ``tradingd run`` feeds and paces the live node."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.time import parse_timeframe


class LiveConfig(BaseModel):
    """Configuration of the live node (``[live]`` in config.toml; options of ``tradingd run``).

    Parameters
    ----------
    account
        Name of the account whose state the node resumes and trades (one state per account).
    mode
        ``"paper"`` (no real money: the paper broker, or Alpaca's paper account) or ``"live"`` (real
        money: needs ``broker = "alpaca"`` and ``[alpaca] live_account_number``). Fixed for the life
        of a state database: no runtime command can switch modes, and a database used in one mode
        is refused in the other.
    broker
        ``"paper"``: tradingd's fill model on the bars; ``"alpaca"``: orders go to Alpaca.
    feed
        ``"file"``: the ``[data]`` files paced in simulated real time; ``"mqtt"``: bars from MQTT;
        ``"alpaca"``: Alpaca's market-data stream (``[alpaca] symbols``), backfilled after reconnects.
    speed
        File feed: bar-seconds per wall second (600 = ten bar-minutes a second); 0 = as fast as
        possible.
    clock
        ``"auto"``: paced file time for the file feed, wall time otherwise; ``"bars"``: the clock
        follows the bars' release times (historical bars published over MQTT).
    queue_size
        Bound of the event queue (producers wait when it is full; nothing is dropped).
    tick
        Wall seconds between clock ticks (timers fire without bars).
    stale_periods
        Bar periods of open market without a bar before a symbol is stale (REDUCING); 0 = off.
    timeframe
        The strategy's bar length when it is longer than the feed's (MQTT feeds deliver 1-minute
        bars): the live node builds it with the aggregator replay uses. None = the feed's bars.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str = Field("paper-default", min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    mode: Literal["paper", "live"] = "paper"
    broker: Literal["paper", "alpaca"] = "paper"
    feed: Literal["file", "mqtt", "alpaca"] = "file"
    speed: float = Field(600.0, ge=0.0, allow_inf_nan=False)
    clock: Literal["auto", "bars", "wall"] = "auto"
    queue_size: int = Field(10_000, ge=1)
    tick: float = Field(1.0, gt=0.0, le=60.0, allow_inf_nan=False)
    stale_periods: int = Field(5, ge=0)
    timeframe: str | None = None

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str | None) -> str | None:
        if value is not None:
            parse_timeframe(value)
        return value


__all__ = ["LiveConfig"]
