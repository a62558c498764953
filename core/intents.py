"""Order intents: what a strategy wants, before risk sizes and approves it.

A strategy returns intents; it never calls a broker. The risk engine turns each into a
:class:`core.events.SubmitOrder` or a :class:`core.events.OrderDenied`.
"""

from __future__ import annotations

from typing import NamedTuple

from core.enums import OrderType, Side


class OrderIntent(NamedTuple):
    """A wish to trade ``symbol``.

    Parameters
    ----------
    symbol, side
        What to trade and in which direction.
    quantity
        Shares (> 0). ``None`` lets the risk sizer decide (entries) or means "the whole position"
        when ``reduce_only`` is set (exits).
    order_type, limit_price, stop_price
        Prices in USD; LIMIT needs ``limit_price``, STOP needs ``stop_price``.
    stop_loss
        Protective stop price (USD) the strategy will use; the sizer risks ``risk_per_trade`` of
        equity against the distance to it. Informational for the broker.
    reduce_only
        The order may only shrink an existing position (allowed while REDUCING).
    confidence
        Model probability behind the decision, checked against the confidence-floor breaker.
    reason
        Free text carried to the order, the fill and the trade's ``exit_reason``.
    """

    symbol: str
    side: Side
    quantity: float | None = None
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    stop_loss: float | None = None
    reduce_only: bool = False
    confidence: float | None = None
    reason: str = ""


def enter(symbol: str, side: Side, reason: str, *, stop_loss: float | None = None,
          confidence: float | None = None, quantity: float | None = None) -> OrderIntent:
    """Return a market intent opening (or adding to) a position sized by the risk engine."""
    return OrderIntent(symbol, side, quantity, stop_loss=stop_loss, confidence=confidence, reason=reason)


def close(symbol: str, position: float, reason: str) -> OrderIntent:
    """Return a reduce-only market intent that flattens a position of ``position`` shares (signed)."""
    side = Side.SELL if position > 0 else Side.BUY
    return OrderIntent(symbol, side, abs(position), reduce_only=True, reason=reason)
