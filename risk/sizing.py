"""Position sizing: how many shares a new position gets, clipped to the caps and rounded.

Pure functions of numbers; no state. Money USD, quantities shares, fractions of equity
(``0.10`` = 10 %). Positions are signed (+ long, - short); ``side_sign`` is +1 for a buy and -1
for a sell.
"""

from __future__ import annotations

import math

from risk.config import RiskConfig

ROUNDING_TOLERANCE = 1e-9
"""Shares: 99.9999999999 is treated as 100 when rounding down (float noise, not intent)."""


def base_quantity(config: RiskConfig, equity: float, price: float, stop_loss: float | None) -> float:
    """Return the unclipped size of a new position in shares.

    ``fixed_fraction * equity / price``; with ``sizing="risk_per_trade"`` and a stop,
    ``risk_per_trade * equity / abs(price - stop_loss)`` (the loss at the stop is that fraction of
    equity).

    Parameters
    ----------
    config
        Sizing settings.
    equity, price
        Account equity and the symbol's mark, USD (> 0).
    stop_loss
        Protective stop in USD, or None (falls back to the fixed fraction). Must differ from
        ``price`` (checked by :func:`risk.limits.check_stop_loss`).

    Returns
    -------
    float
        Shares (> 0), not yet clipped or rounded.

    Examples
    --------
    >>> base_quantity(RiskConfig(), 100_000.0, 50.0, None)
    200.0
    >>> base_quantity(RiskConfig(sizing="risk_per_trade"), 100_000.0, 50.0, 45.0)
    200.0
    """
    if config.sizing == "risk_per_trade" and stop_loss is not None:
        return config.risk_per_trade * equity / abs(price - stop_loss)
    return config.fixed_fraction * equity / price


def quantity_caps(config: RiskConfig, equity: float, price: float, side_sign: int, net: float,
                  gross_other: float) -> tuple[tuple[float, str], ...]:
    """Return the largest order (shares) each cap allows, with the cap's name.

    The caps bound the symbol's absolute position after the order, ``abs(net + side_sign * q)``,
    to ``max_position_fraction * equity`` and to the gross-exposure room
    ``max_gross_exposure * equity - gross_other``; and the order itself to
    ``max_order_notional`` and to ``max_position_fraction * equity``. An order against an
    opposite position first closes it, so its gross cap is the room plus what it closes.

    Parameters
    ----------
    config
        Limits.
    equity, price
        USD (> 0).
    side_sign
        +1 buy, -1 sell.
    net
        Signed shares held plus pending in the symbol.
    gross_other
        USD gross notional of everything except this symbol (>= 0).

    Returns
    -------
    tuple of (float, str)
        ``(max shares, limit name)`` per cap; a value <= 0 means that cap leaves no room.

    Examples
    --------
    >>> caps = quantity_caps(RiskConfig(), 100_000.0, 100.0, 1, 0.0, 95_000.0)
    >>> min(caps)
    (50.0, 'max_gross_exposure')
    """
    already = side_sign * net  # > 0 when adding to a position, < 0 when reversing one
    by_position = config.max_position_fraction * equity / price - max(already, 0.0)
    by_gross = (config.max_gross_exposure * equity - gross_other) / price - already
    by_notional = config.max_order_notional / price
    return ((by_position, "max_position_fraction"), (by_gross, "max_gross_exposure"),
            (by_notional, "max_order_notional"))


def round_quantity(quantity: float, fractional: bool) -> float:
    """Return ``quantity`` rounded DOWN to whole shares, or unchanged when ``fractional``.

    Examples
    --------
    >>> round_quantity(12.7, False), round_quantity(12.7, True), round_quantity(0.4, False)
    (12.0, 12.7, 0.0)
    """
    if fractional:
        return quantity
    return float(math.floor(quantity + ROUNDING_TOLERANCE))
