"""Validated, frozen configuration of the risk engine (sizing, limits, circuit breakers).

Money is USD; rates and fractions are plain fractions (``0.10`` = 10 %); durations are timeframe
strings (``"1d"``, ``"12h"``) parsed with :func:`core.time.parse_timeframe`.
"""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.enums import TimeInForce
from core.time import parse_timeframe


class RiskConfig(BaseModel):
    """Configuration of :class:`risk.engine.RiskEngine`.

    Parameters
    ----------
    sizing
        ``"fixed_fraction"`` sizes a new position at ``fixed_fraction`` of equity;
        ``"risk_per_trade"`` sizes it so that hitting the intent's ``stop_loss`` loses
        ``risk_per_trade`` of equity (intents without a stop fall back to ``fixed_fraction``).
    fixed_fraction
        Fraction of equity per new position, in (0, 1]. Default 0.10.
    risk_per_trade
        Fraction of equity lost if the stop is hit, in (0, 1]. Default 0.01.
    max_position_fraction
        Cap of one symbol's absolute notional / equity, in (0, 4]. Default 0.10.
    fractional_shares
        Keep fractional quantities; when False (default) quantities are rounded DOWN to whole
        shares and an order that rounds to 0 is denied.
    max_open_positions
        Most symbols held at once (>= 1). Default 10.
    max_gross_exposure
        Cap of the gross notional (all positions, this order included) / equity, in (0, 4].
        Default 1.0 (no leverage).
    max_order_notional
        Cap of one order's notional in USD (> 0). Default 1,000,000.
    allow_short
        Allow sells that open or grow a short position. Default False.
    max_drawdown
        Drawdown from the equity high-water mark that HALTS trading, in (0, 1]. Default 0.20.
    daily_loss_limit
        Loss versus the equity at the start of the trading day (the last equity before the day's
        first bar, so an overnight gap counts) that moves trading to REDUCING until the day ends,
        in (0, 1]. Default 0.05.
    trading_day_timezone
        IANA time zone whose local midnight ends a trading day, for the daily loss limit. Default
        ``"America/New_York"``: for US equities a day is then the exchange session date (the
        session 09:30-16:00 New York never spans midnight). Use ``"UTC"`` for crypto (24/7
        markets), so a day is the UTC calendar day.
    max_consecutive_losses
        Losing trades in a row that move trading to REDUCING for ``loss_cooldown`` (>= 1).
        Default 5.
    loss_cooldown
        Timeframe string (``"<n><s|m|min|h|d>"``) of that cool-down. Default ``"1d"``.
    max_orders_per_minute
        Orders allowed in any sliding 60 s window (>= 1); more are denied. Default 60.
    min_confidence
        Model confidence floor in [0, 1]: an intent whose ``confidence`` is not None and below it
        is denied. Default 0.0 (off).
    time_in_force
        Time in force of every submitted order (``"gtc"`` or ``"day"``). Default ``"gtc"``.
    flatten_on_halt
        When trading moves to HALTED, the engine cancels open orders and closes every position
        with market orders (which bypass the risk checks). Default True.

    Raises
    ------
    pydantic.ValidationError
        On an unknown key or a value out of range; the message names the key, the value given
        and what is allowed.

    Examples
    --------
    >>> RiskConfig(max_drawdown=0.1).loss_cooldown_ns == 86_400_000_000_000
    True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # sizing
    sizing: Literal["fixed_fraction", "risk_per_trade"] = "fixed_fraction"
    fixed_fraction: float = Field(0.10, gt=0.0, le=1.0, allow_inf_nan=False)
    risk_per_trade: float = Field(0.01, gt=0.0, le=1.0, allow_inf_nan=False)
    max_position_fraction: float = Field(0.10, gt=0.0, le=4.0, allow_inf_nan=False)
    fractional_shares: bool = False
    # limits
    max_open_positions: int = Field(10, ge=1)
    max_gross_exposure: float = Field(1.0, gt=0.0, le=4.0, allow_inf_nan=False)
    max_order_notional: float = Field(1_000_000.0, gt=0.0, allow_inf_nan=False)
    allow_short: bool = False
    # breakers
    max_drawdown: float = Field(0.20, gt=0.0, le=1.0, allow_inf_nan=False)
    daily_loss_limit: float = Field(0.05, gt=0.0, le=1.0, allow_inf_nan=False)
    trading_day_timezone: str = "America/New_York"
    max_consecutive_losses: int = Field(5, ge=1)
    loss_cooldown: str = "1d"
    max_orders_per_minute: int = Field(60, ge=1)
    min_confidence: float = Field(0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    time_in_force: TimeInForce = TimeInForce.GTC
    flatten_on_halt: bool = Field(True, description="close every position with market orders when HALTED")

    @field_validator("loss_cooldown")
    @classmethod
    def _check_cooldown(cls, value: str) -> str:
        parse_timeframe(value)  # raises ValueError naming the value and the accepted form
        return value

    @field_validator("trading_day_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'America/New_York' or 'UTC'")
        return value

    @property
    def loss_cooldown_ns(self) -> int:
        """Length of the consecutive-loss cool-down in ns."""
        return parse_timeframe(self.loss_cooldown)
