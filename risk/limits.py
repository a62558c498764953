"""Pre-trade limits: each check returns ``None`` when the order passes, else the denial reason.

Reasons name the limit, the value and the cap, e.g. ``"gross exposure 1.04 > max_gross_exposure
1.0"``. Money USD, quantities shares, fractions of equity. Also holds the order-rate limiter
(sliding 60 s window on event time, never the wall clock).
"""

from __future__ import annotations

from collections import deque

from core.enums import OrderType, Side
from core.intents import OrderIntent
from core.time import NANOS_PER_MINUTE
from risk.config import RiskConfig

CAP_TOLERANCE = 1e-9
"""Relative slack on caps so an order sized exactly at a cap is not denied for float noise."""


def fmt(value: float) -> str:
    """Return ``value`` rounded to 4 decimals for a reason text.

    >>> fmt(1.0400000001), fmt(1.0), fmt(250000.0)
    ('1.04', '1.0', '250000.0')
    """
    return repr(round(float(value), 4))


def check_quantity(quantity: float | None) -> str | None:
    """Deny a given quantity that is not a positive finite number of shares.

    >>> check_quantity(-5.0)
    'invalid quantity -5.0: must be > 0 shares'
    """
    if quantity is None or 0.0 < quantity < float("inf"):
        return None
    return f"invalid quantity {quantity!r}: must be > 0 shares"


def check_order_prices(intent: OrderIntent) -> str | None:
    """Deny an order that lacks the price its type needs (USD, > 0).

    LIMIT needs ``limit_price``, STOP needs ``stop_price``, STOP_LIMIT needs both (it triggers at
    ``stop_price`` and then works as a limit at ``limit_price``).

    >>> check_order_prices(OrderIntent("XYZ", Side.BUY, order_type=OrderType.STOP_LIMIT, stop_price=101.0))
    'stop_limit order needs limit_price > 0, got None'
    >>> check_order_prices(OrderIntent("XYZ", Side.BUY, order_type=OrderType.STOP_LIMIT, stop_price=101.0,
    ...                                limit_price=101.5)) is None
    True
    """
    order_type = intent.order_type
    if order_type is OrderType.MARKET:
        return None
    if order_type is OrderType.LIMIT and not (intent.limit_price or 0.0) > 0.0:
        return f"limit order needs limit_price > 0, got {intent.limit_price!r}"
    if order_type is OrderType.STOP and not (intent.stop_price or 0.0) > 0.0:
        return f"stop order needs stop_price > 0, got {intent.stop_price!r}"
    if order_type is OrderType.STOP_LIMIT:
        if not (intent.stop_price or 0.0) > 0.0:
            return f"stop_limit order needs stop_price > 0, got {intent.stop_price!r}"
        if not (intent.limit_price or 0.0) > 0.0:
            return f"stop_limit order needs limit_price > 0, got {intent.limit_price!r}"
    return None


def check_confidence(confidence: float | None, floor: float) -> str | None:
    """Deny an intent whose model confidence is known and below ``floor``.

    >>> check_confidence(0.4, 0.55)
    'confidence 0.4 < min_confidence 0.55'
    >>> check_confidence(None, 0.55) is None
    True
    """
    if confidence is not None and confidence < floor:
        return f"confidence {fmt(confidence)} < min_confidence {floor}"
    return None


def check_stop_loss(side: Side, price: float, stop_loss: float | None) -> str | None:
    """Deny a stop on the wrong side of the price (a buy's stop must be below it, a sell's above).

    >>> check_stop_loss(Side.BUY, 100.0, 101.0)
    'stop_loss 101.0 is not below price 100.0 for a buy'
    """
    if stop_loss is None or (price - stop_loss) * side.sign > 0.0:
        return None
    where = "below" if side is Side.BUY else "above"
    return f"stop_loss {fmt(stop_loss)} is not {where} price {fmt(price)} for a {side.value}"


def check_open_positions(open_positions: int, maximum: int) -> str | None:
    """Deny opening a new symbol when ``open_positions`` (other symbols) already fill the limit.

    >>> check_open_positions(10, 10)
    'open positions 11 > max_open_positions 10'
    """
    if open_positions >= maximum:
        return f"open positions {open_positions + 1} > max_open_positions {maximum}"
    return None


def check_order_size(config: RiskConfig, quantity: float, price: float, equity: float, side_sign: int,
                     net: float, gross_other: float) -> str | None:
    """Deny an order of a given ``quantity`` that breaks a cap (used for strategy-sized orders).

    Checks ``max_order_notional`` (USD) and, when the order grows the symbol's absolute position,
    ``max_position_fraction`` and ``max_gross_exposure`` on the position after the order.

    Parameters
    ----------
    config
        Limits.
    quantity
        Shares (> 0).
    price, equity
        USD (> 0).
    side_sign
        +1 buy, -1 sell.
    net
        Signed shares held plus pending in the symbol.
    gross_other
        USD gross notional of every other symbol.

    Examples
    --------
    >>> check_order_size(RiskConfig(), 110.0, 100.0, 100_000.0, 1, 0.0, 0.0)
    'position fraction 0.11 > max_position_fraction 0.1'
    """
    notional = quantity * price
    if notional > config.max_order_notional * (1.0 + CAP_TOLERANCE):
        return f"order notional {fmt(notional)} > max_order_notional {config.max_order_notional}"
    after = abs(net + side_sign * quantity)
    if after <= abs(net):
        return None  # shrinks (or keeps) the symbol's exposure: caps cannot be made worse
    fraction = after * price / equity
    if fraction > config.max_position_fraction * (1.0 + CAP_TOLERANCE):
        return f"position fraction {fmt(fraction)} > max_position_fraction {config.max_position_fraction}"
    gross = (gross_other + after * price) / equity
    if gross > config.max_gross_exposure * (1.0 + CAP_TOLERANCE):
        return f"gross exposure {fmt(gross)} > max_gross_exposure {config.max_gross_exposure}"
    return None


class OrderRateLimiter:
    """Cap on orders per sliding 60 s window of event time (ns).

    Parameters
    ----------
    max_per_minute
        Orders allowed in any window ``(ts - 60 s, ts]`` (>= 1).
    """

    __slots__ = ("max_per_minute", "_times")

    def __init__(self, max_per_minute: int) -> None:
        self.max_per_minute = max_per_minute
        self._times: deque[int] = deque()

    def check(self, ts: int) -> str | None:
        """Return the denial reason if one more order at ``ts`` would exceed the cap."""
        times = self._times
        horizon = ts - NANOS_PER_MINUTE
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) >= self.max_per_minute:
            return f"order rate {len(times) + 1} in 60s > max_orders_per_minute {self.max_per_minute}"
        return None

    def record(self, ts: int) -> None:
        """Count an order sent at ``ts``."""
        self._times.append(ts)
