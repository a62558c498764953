"""Fill model of the simulated broker: slippage, commission and the volume participation cap.

Pure arithmetic, no state: :class:`backtest.broker.PaperBroker` decides *whether* and *at which
reference price* an order fills against a bar, and asks :class:`FillModel` what that costs. Replay and
live paper trading share both, so fill logic exists exactly once (DESIGN.md "Layout").

Units: prices and commissions USD, quantities and volumes shares, ``_bps`` = 1/10,000 and plain
rates are fractions (0.01 = 1 %).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.enums import Side

MAX_SLIPPAGE_FRACTION = 0.5
"""Upper bound of the combined adverse slippage (fixed + volatility-scaled) as a fraction of the
price (5,000 bps), so a sell on a corrupt bar with an absurd range still gets a positive price."""

EPS_SHARES = 1e-9
"""A remainder of at most this many shares counts as filled (float noise of partial fills), so an
order never lingers with dust that :meth:`core.orders.Order.apply_fill` would ignore."""


class FillConfig(BaseModel):
    """Configuration of :class:`FillModel` (and so of :class:`backtest.broker.PaperBroker`).

    Parameters
    ----------
    slippage_bps : float
        Fixed adverse slippage in bps of the reference price, in [0, 5000]. Buys pay
        ``price * (1 + s)``, sells receive ``price * (1 - s)``.
    slippage_volatility : float
        Volatility-scaled extra adverse slippage (>= 0): ``slippage_volatility * (high - low) / close``
        of the **previous** bar of the same symbol, i.e. the last bar completed before the bar that
        fills, which was known before the fill (no look-ahead). No previous bar means no extra
        slippage. 0 turns the broker's previous-bar tracking off entirely.
    commission_per_share : float
        USD per share filled (>= 0).
    commission_minimum : float
        Minimum per-share commission per fill, USD (>= 0). Applies only when
        ``commission_per_share > 0``; every partial fill is a fill and pays it.
    commission_bps : float
        Commission in bps of the fill notional ``quantity * price`` (>= 0); added to the per-share part.
    participation_cap : float or None
        Largest fraction of a bar's volume (in (0, 1]) one order may take on that bar; the rest stays
        open and fills on later bars (partial fills). A zero-volume bar fills nothing. ``None``
        means no cap: an order fills completely on the first bar that triggers it, whatever the volume.

    Raises
    ------
    pydantic.ValidationError
        On a negative, non-finite or out-of-range value, or an unknown key.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    slippage_bps: float = Field(default=1.0, ge=0.0, le=5_000.0, allow_inf_nan=False)
    slippage_volatility: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    commission_per_share: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    commission_minimum: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    commission_bps: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    participation_cap: float | None = Field(default=None, gt=0.0, le=1.0, allow_inf_nan=False)


class FillModel:
    """Slippage, commission and fill-size arithmetic for one :class:`FillConfig`.

    Parameters
    ----------
    config : FillConfig
        The validated settings; kept as :attr:`config`.

    Examples
    --------
    >>> model = FillModel(FillConfig(slippage_bps=10.0, commission_per_share=0.005, commission_minimum=1.0))
    >>> round(model.slipped_price(Side.BUY, 100.0, 0.0), 6)
    100.1
    >>> model.commission(100.0, 50.0)
    1.0
    """

    __slots__ = ("config", "_fixed", "_vol", "_per_share", "_minimum", "_bps", "_cap")

    def __init__(self, config: FillConfig) -> None:
        self.config = config
        self._fixed = config.slippage_bps / 10_000.0
        self._vol = config.slippage_volatility
        self._per_share = config.commission_per_share
        self._minimum = config.commission_minimum
        self._bps = config.commission_bps / 10_000.0
        self._cap = config.participation_cap

    @property
    def tracks_previous_bar(self) -> bool:
        """Whether slippage depends on the previous bar's range (``slippage_volatility > 0``)."""
        return self._vol > 0.0

    def slippage_fraction(self, prev_range_fraction: float = 0.0) -> float:
        """Return the adverse slippage as a fraction of the price.

        Parameters
        ----------
        prev_range_fraction : float
            ``(high - low) / close`` of the previous bar of the symbol (0 when unknown; negative
            values count as 0).

        Returns
        -------
        float
            ``slippage_bps / 10_000 + slippage_volatility * prev_range_fraction``, capped at
            :data:`MAX_SLIPPAGE_FRACTION`.

        Examples
        --------
        >>> FillModel(FillConfig(slippage_bps=0.0, slippage_volatility=0.5)).slippage_fraction(0.02)
        0.01
        """
        fraction = self._fixed
        if prev_range_fraction > 0.0:
            fraction += self._vol * prev_range_fraction
        return fraction if fraction < MAX_SLIPPAGE_FRACTION else MAX_SLIPPAGE_FRACTION

    def slipped_price(self, side: Side, price: float, prev_range_fraction: float = 0.0,
                      limit: float | None = None) -> float:
        """Return the fill price after adverse slippage: buys pay up, sells receive less.

        Parameters
        ----------
        side : Side
            Order side.
        price : float
            Reference price in USD (the bar open, a touched limit or a triggered stop).
        prev_range_fraction : float
            ``(high - low) / close`` of the symbol's previous bar, for the volatility term.
        limit : float or None
            Limit price in USD of a LIMIT order: slippage never makes the fill worse than it
            (a buy pays at most ``limit``, a sell receives at least ``limit``).

        Returns
        -------
        float
            The fill price in USD.

        Raises
        ------
        ValueError
            If ``price`` is already worse than ``limit`` (such an order must not fill).

        Examples
        --------
        >>> model = FillModel(FillConfig(slippage_bps=10.0))
        >>> round(model.slipped_price(Side.SELL, 100.0), 6)
        99.9
        >>> model.slipped_price(Side.BUY, 100.0, limit=100.05)
        100.05
        """
        fraction = self.slippage_fraction(prev_range_fraction)
        if side is Side.BUY:
            slipped = price * (1.0 + fraction)
            if limit is not None:
                if price > limit:
                    raise ValueError(f"buy reference price {price} USD is above its limit {limit} USD")
                if slipped > limit:
                    return limit
            return slipped
        slipped = price * (1.0 - fraction)
        if limit is not None:
            if price < limit:
                raise ValueError(f"sell reference price {price} USD is below its limit {limit} USD")
            if slipped < limit:
                return limit
        return slipped

    def commission(self, quantity: float, price: float) -> float:
        """Return the commission in USD of one fill of ``quantity`` shares at ``price`` USD.

        ``max(quantity * commission_per_share, commission_minimum)`` when the per-share rate is
        positive (else 0), plus ``commission_bps`` of the notional ``quantity * price``.

        Examples
        --------
        >>> FillModel(FillConfig(commission_bps=5.0)).commission(100.0, 50.0)
        2.5
        """
        fee = 0.0
        if self._per_share > 0.0:
            fee = quantity * self._per_share
            if fee < self._minimum:
                fee = self._minimum
        if self._bps > 0.0:
            fee += quantity * price * self._bps
        return fee

    def fill_quantity(self, leaves: float, bar_volume: float) -> float:
        """Return how many of ``leaves`` shares may fill on a bar that traded ``bar_volume`` shares.

        Without a participation cap everything fills. With one, at most ``participation_cap *
        bar_volume`` (0 on a zero-volume bar). Float dust is never traded or left behind: a
        remainder of at most :data:`EPS_SHARES` fills with the rest, and an allowance below
        :data:`EPS_SHARES` fills nothing (the engine ignores fills that small as duplicates).

        Examples
        --------
        >>> FillModel(FillConfig(participation_cap=0.1)).fill_quantity(500.0, 2_000.0)
        200.0
        >>> FillModel(FillConfig(participation_cap=0.1)).fill_quantity(500.0, 0.0)
        0.0
        """
        cap = self._cap
        if cap is None or leaves <= 0.0:
            return leaves if leaves > 0.0 else 0.0
        allowed = cap * bar_volume
        if allowed >= leaves - EPS_SHARES:
            return leaves
        return allowed if allowed >= EPS_SHARES else 0.0


__all__ = ["EPS_SHARES", "MAX_SLIPPAGE_FRACTION", "FillConfig", "FillModel"]
