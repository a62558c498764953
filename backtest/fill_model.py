"""Fill model of the simulated broker: slippage, commission and the volume participation cap.

Pure arithmetic, no state: :class:`backtest.broker.PaperBroker` decides *whether* and *at which
reference price* an order fills against a bar (MARKET, LIMIT, STOP and STOP_LIMIT: the fill-rule table
in :mod:`backtest.broker`), and asks :class:`FillModel` what that costs. Replay and live paper trading
share both, so fill logic exists exactly once (DESIGN.md "Layout").

Units: prices and commissions USD, quantities and volumes shares, ``_bps`` = 1/10,000 and plain
rates are fractions (0.01 = 1 %).
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backtest.calendar import CalendarError, check_calendar_name
from core.enums import Side
from core.time import parse_timeframe

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
        Minimum per-share commission per **order**, USD (>= 0), as brokers charge it. Applies only
        when ``commission_per_share > 0``: after each fill the order's cumulative per-share
        commission is ``max(cum_shares * commission_per_share, commission_minimum)``, so the first
        fill pays the minimum and later partial fills pay only what the per-share rate adds beyond it
        (10 fills of 100 shares at 0.005 USD/share, minimum 1 USD: 5 USD in all, not 10 USD).
    commission_bps : float
        Commission in bps of the fill notional ``quantity * price`` (>= 0); added to the per-share part.
    participation_cap : float or None
        Largest fraction of a bar's volume (in (0, 1]) one order may take on that bar; the rest stays
        open and fills on later bars (partial fills). A zero-volume bar fills nothing. ``None``
        means no cap: an order fills completely on the first bar that triggers it, whatever the volume.
    fractional_shares : bool
        False: the participation cap is floored to whole shares (a cap of 12.7 shares fills 12, a
        cap under one share fills nothing on that bar), so a whole-share order only ever fills whole
        shares. The last remainder of an order always fills as it is. Pass the risk config's value.
    calendars : dict of str to str
        Symbol -> trading calendar for DAY orders: an exchange-calendars name (``"XNYS"``, ``"XLON"``)
        or ``"24/7"`` (expires at the next UTC midnight). Symbols not listed use the rule of
        :mod:`backtest.calendar` (crypto: 24/7, everything else: XNYS).
    max_order_age : str or None
        How long any working order (GTC or DAY) may wait, e.g. ``"5d"`` or ``"12h"`` (see
        :func:`core.time.parse_timeframe`); after that it expires even if its symbol never had
        another bar. ``None`` (default): a GTC order waits forever for its symbol's next bar.

    Raises
    ------
    pydantic.ValidationError
        On a negative, non-finite or out-of-range value, an unknown key, a calendar name
        exchange-calendars does not know, or a ``max_order_age`` that is not ``<n><unit>``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    slippage_bps: float = Field(default=1.0, ge=0.0, le=5_000.0, allow_inf_nan=False)
    slippage_volatility: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    commission_per_share: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    commission_minimum: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    commission_bps: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    participation_cap: float | None = Field(default=None, gt=0.0, le=1.0, allow_inf_nan=False)
    fractional_shares: bool = True
    calendars: dict[str, str] = Field(default_factory=dict)
    max_order_age: str | None = None

    def __hash__(self) -> int:  # the calendars dict would make pydantic's frozen hash raise
        return hash(self.model_dump_json())

    @field_validator("calendars")
    @classmethod
    def _known_calendars(cls, value: dict[str, str]) -> dict[str, str]:
        for symbol, name in value.items():
            try:
                check_calendar_name(name)
            except CalendarError as exc:
                raise ValueError(f"calendars[{symbol!r}]: {exc}") from None
        return value

    @field_validator("max_order_age")
    @classmethod
    def _age(cls, value: str | None) -> str | None:
        if value is not None:
            parse_timeframe(value)
        return value


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

    __slots__ = ("config", "max_order_age_ns", "_fixed", "_vol", "_per_share", "_minimum", "_bps", "_cap", "_whole")

    def __init__(self, config: FillConfig) -> None:
        self.config = config
        self.max_order_age_ns: int | None = (None if config.max_order_age is None
                                             else parse_timeframe(config.max_order_age))
        """How long a working order may wait, ns (None: forever)."""
        self._fixed = config.slippage_bps / 10_000.0
        self._vol = config.slippage_volatility
        self._per_share = config.commission_per_share
        self._minimum = config.commission_minimum
        self._bps = config.commission_bps / 10_000.0
        self._cap = config.participation_cap
        self._whole = not config.fractional_shares

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
            Reference price in USD (the bar open, a touched limit or a triggered stop's stop price).
        prev_range_fraction : float
            ``(high - low) / close`` of the symbol's previous bar, for the volatility term.
        limit : float or None
            Limit price in USD of a LIMIT order or a triggered STOP_LIMIT: slippage never makes
            the fill worse than it (a buy pays at most ``limit``, a sell receives at least ``limit``).

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

    def commission(self, quantity: float, price: float, filled_before: float = 0.0) -> float:
        """Return the commission in USD of one fill of ``quantity`` shares at ``price`` USD.

        The per-share part is charged per order: after this fill the order has paid
        ``max((filled_before + quantity) * commission_per_share, commission_minimum)`` in all (0
        without a per-share rate), and this fill pays the increase. Plus ``commission_bps`` of this
        fill's notional ``quantity * price``.

        Parameters
        ----------
        quantity : float
            Shares of this fill (> 0).
        price : float
            Fill price, USD.
        filled_before : float
            Shares of the same order filled before this fill (0 for its first fill).

        Returns
        -------
        float
            Commission of this fill, USD (>= 0).

        Examples
        --------
        >>> model = FillModel(FillConfig(commission_per_share=0.005, commission_minimum=1.0))
        >>> [model.commission(100.0, 50.0, before) for before in (0.0, 100.0, 200.0)]
        [1.0, 0.0, 0.5]
        >>> FillModel(FillConfig(commission_bps=5.0)).commission(100.0, 50.0)
        2.5
        """
        fee = 0.0
        per_share = self._per_share
        if per_share > 0.0:
            minimum = self._minimum
            fee = (filled_before + quantity) * per_share
            if fee < minimum:
                fee = minimum
            if filled_before > 0.0:
                paid = filled_before * per_share
                fee -= paid if paid > minimum else minimum
        if self._bps > 0.0:
            fee += quantity * price * self._bps
        return fee

    def fill_quantity(self, leaves: float, bar_volume: float) -> float:
        """Return how many of ``leaves`` shares may fill on a bar that traded ``bar_volume`` shares.

        Without a participation cap everything fills. With one, at most ``participation_cap *
        bar_volume`` (0 on a zero-volume bar), floored to whole shares when ``fractional_shares``
        is False. The whole remainder fills once the cap allows it. Float dust is never traded or
        left behind: a remainder of at most :data:`EPS_SHARES` fills with the rest, and an
        allowance below :data:`EPS_SHARES` fills nothing (the engine ignores fills that small as
        duplicates).

        Examples
        --------
        >>> FillModel(FillConfig(participation_cap=0.1)).fill_quantity(500.0, 2_000.0)
        200.0
        >>> FillModel(FillConfig(participation_cap=0.1)).fill_quantity(500.0, 0.0)
        0.0
        >>> FillModel(FillConfig(participation_cap=0.1, fractional_shares=False)).fill_quantity(500.0, 127.0)
        12.0
        """
        cap = self._cap
        if cap is None or leaves <= 0.0:
            return leaves if leaves > 0.0 else 0.0
        allowed = cap * bar_volume
        if allowed >= leaves - EPS_SHARES:
            return leaves
        if self._whole:
            # the relative nudge absorbs float noise: 0.29 * 100 is 28.999999999999996, i.e. 29 shares
            whole = float(math.floor(allowed * (1.0 + 1e-12)))
            if whole >= leaves - EPS_SHARES:
                return leaves
            return whole if whole >= 1.0 else 0.0
        return allowed if allowed >= EPS_SHARES else 0.0


__all__ = ["EPS_SHARES", "MAX_SLIPPAGE_FRACTION", "FillConfig", "FillModel"]
