"""Position sizing: how many shares a new position gets, clipped to the caps and rounded.

Pure functions of numbers; no state. Money USD, quantities shares, fractions of equity
(``0.10`` = 10 %). Positions are signed (+ long, - short); ``side_sign`` is +1 for a buy and -1
for a sell.

Every function returns a finite quantity >= 0 and raises nothing for any finite inputs (prices
and equity > 0). A size that float cannot represent - a denormal price or stop distance makes
``equity / price`` overflow - is 0 shares: the order is refused ("size rounds to zero"), never
sized at infinity. The bar gate (:mod:`core.bars`) keeps marks within [1e-8, 1e9] USD, where this
only happens for absurd equity or a stop within a few ulps of the price.
"""

from __future__ import annotations

import math

from risk.config import RiskConfig

ROUNDING_TOLERANCE = 1e-9
"""Shares: 99.9999999999 is treated as 100 when rounding down (float noise, not intent)."""


def _shares(quantity: float) -> float:
    """Return ``quantity`` if it is a finite number > 0, else 0.0 (overflow, NaN, no room)."""
    return quantity if 0.0 < quantity < math.inf else 0.0


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
        Protective stop in USD, or None (falls back to the fixed fraction). Should differ from
        ``price`` (checked by :func:`risk.limits.check_stop_loss`); a stop at the price sizes 0.

    Returns
    -------
    float
        Shares (>= 0, finite), not yet clipped or rounded; 0 when the size is not representable
        (it overflows, or the stop distance is 0).

    Examples
    --------
    >>> base_quantity(RiskConfig(), 100_000.0, 50.0, None)
    200.0
    >>> base_quantity(RiskConfig(sizing="risk_per_trade"), 100_000.0, 50.0, 45.0)
    200.0
    >>> base_quantity(RiskConfig(), 100_000.0, 5e-324, None)  # overflows: not sized
    0.0
    """
    if config.sizing == "risk_per_trade" and stop_loss is not None:
        distance = abs(price - stop_loss)
        if not distance > 0.0:  # no distance, no defined size (and no ZeroDivisionError)
            return 0.0
        return _shares(config.risk_per_trade * equity / distance)
    if not price > 0.0:
        return 0.0
    return _shares(config.fixed_fraction * equity / price)


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
        ``(max shares, limit name)`` per cap, each finite and >= 0; 0 means that cap leaves no
        room (or its size overflows float, see the module notes).

    Examples
    --------
    >>> caps = quantity_caps(RiskConfig(), 100_000.0, 100.0, 1, 0.0, 95_000.0)
    >>> min(caps)
    (50.0, 'max_gross_exposure')
    """
    if not price > 0.0:
        return ((0.0, "max_position_fraction"), (0.0, "max_gross_exposure"), (0.0, "max_order_notional"))
    already = side_sign * net  # > 0 when adding to a position, < 0 when reversing one
    by_position = config.max_position_fraction * equity / price - max(already, 0.0)
    by_gross = (config.max_gross_exposure * equity - gross_other) / price - already
    by_notional = config.max_order_notional / price
    return ((_shares(by_position), "max_position_fraction"), (_shares(by_gross), "max_gross_exposure"),
            (_shares(by_notional), "max_order_notional"))


def round_quantity(quantity: float, fractional: bool) -> float:
    """Return ``quantity`` rounded DOWN to whole shares, or unchanged when ``fractional``.

    A quantity that is not a finite number > 0 (NaN, inf, negative) gives 0.0.

    Examples
    --------
    >>> round_quantity(12.7, False), round_quantity(12.7, True), round_quantity(0.4, False)
    (12.0, 12.7, 0.0)
    >>> round_quantity(float("inf"), False), round_quantity(-3.0, True)
    (0.0, 0.0)
    """
    quantity = _shares(quantity)
    if fractional or quantity == 0.0:
        return quantity
    return float(math.floor(quantity + ROUNDING_TOLERANCE))
