"""Enumerations shared by every layer."""

from __future__ import annotations

from enum import Enum


class Side(str, Enum):
    """Order side. ``sign`` is +1 for BUY and -1 for SELL."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(str, Enum):
    """Order type understood by every broker."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"  # a stop that, once triggered, works as a limit at limit_price


class TimeInForce(str, Enum):
    DAY = "day"
    GTC = "gtc"


class OrderStatus(str, Enum):
    """Order lifecycle; transitions are enforced by :mod:`core.orders`."""

    INITIALIZED = "initialized"  # intent approved by risk and persisted, not yet sent
    SUBMITTED = "submitted"  # handed to the broker, answer unknown
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"  # by the broker
    EXPIRED = "expired"


TERMINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


class TradingState(str, Enum):
    """Risk state: ACTIVE trades normally, REDUCING only lets orders that shrink a position through,
    HALTED denies every order until an explicit re-arm command."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class Regime(str, Enum):
    """Market regime = trend x volatility (see :mod:`learning.regime`)."""

    UNKNOWN = "unknown"  # warm-up
    HIGH_VOL_TRENDING = "high_vol_trending"
    LOW_VOL_TRENDING = "low_vol_trending"
    HIGH_VOL_MEAN_REVERTING = "high_vol_mean_reverting"
    LOW_VOL_SIDEWAYS = "low_vol_sideways"
