"""Immutable events (past tense) and commands (imperative) that flow through ``Engine.handle``.

All are ``NamedTuple``s: immutable, hashable and about 3x cheaper to build than frozen dataclasses,
which matters on the per-bar path. Timestamps are epoch nanoseconds, UTC:

* ``ts_event``: when the thing happened at the source (for a bar: its **start**).
* ``ts_init``: when tradingd received or created it (for a replayed bar: its **end**, the moment it
  becomes known; see DESIGN.md "The one path").

Money is USD, quantities are shares (or units), always positive; the side carries the sign.
"""

from __future__ import annotations

from typing import NamedTuple

from core.enums import OrderType, Regime, Side, TimeInForce, TradingState


class Bar(NamedTuple):
    """One OHLCV bar of ``symbol``, covering ``[ts_event, ts_event + timeframe)``.

    Known (and released to the engine) at ``ts_init`` = bar end. Prices USD, volume shares.
    """

    symbol: str
    ts_event: int
    ts_init: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class TimerFired(NamedTuple):
    """A clock timer named ``name`` became due at ``ts_event`` (see :class:`core.clock.Clock`)."""

    name: str
    ts_event: int
    ts_init: int


# --- commands --------------------------------------------------------------------------------


class SubmitOrder(NamedTuple):
    """Command: send an order. Produced by the risk engine from an approved intent.

    ``quantity`` in shares (> 0). ``limit_price``/``stop_price`` USD, required for LIMIT/STOP.
    ``client_order_id`` is deterministic: (strategy, symbol, bar time, sequence).
    """

    client_order_id: str
    strategy_id: str
    symbol: str
    side: Side
    quantity: float
    order_type: OrderType
    limit_price: float | None
    stop_price: float | None
    time_in_force: TimeInForce
    reason: str
    ts_init: int


class CancelOrder(NamedTuple):
    client_order_id: str
    ts_init: int


class HaltTrading(NamedTuple):
    """Command: move to HALTED (operator or breaker)."""

    reason: str
    ts_init: int


class RearmTrading(NamedTuple):
    """Command: the only way out of HALTED (an explicit operator action)."""

    reason: str
    ts_init: int


# --- order events ----------------------------------------------------------------------------


class OrderDenied(NamedTuple):
    """Our risk engine refused an intent; nothing reached the broker."""

    strategy_id: str
    symbol: str
    side: Side
    quantity: float
    reason: str
    ts_init: int


class OrderAccepted(NamedTuple):
    client_order_id: str
    broker_order_id: str
    ts_event: int
    ts_init: int


class OrderRejected(NamedTuple):
    """The broker refused the order (distinct from :class:`OrderDenied`, which is ours)."""

    client_order_id: str
    reason: str
    ts_event: int
    ts_init: int


class OrderCanceled(NamedTuple):
    client_order_id: str
    reason: str
    ts_event: int
    ts_init: int


class OrderFilled(NamedTuple):
    """A (partial) fill. ``cum_quantity`` is the order's total filled so far, which makes
    applying fills idempotent: a duplicate or replayed report with a cum_quantity not above what
    was applied already changes nothing.

    ``price`` is this fill's average price in USD including slippage; ``commission`` USD (>= 0).
    """

    client_order_id: str
    fill_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    cum_quantity: float
    commission: float
    ts_event: int
    ts_init: int


# --- state events ----------------------------------------------------------------------------


class RegimeChanged(NamedTuple):
    symbol: str
    previous: Regime
    current: Regime
    ts_event: int
    ts_init: int


class TradingStateChanged(NamedTuple):
    previous: TradingState
    current: TradingState
    reason: str
    ts_init: int


class TradeClosed(NamedTuple):
    """A round trip (flat -> position -> flat) finished. P&L USD, net of commissions."""

    symbol: str
    side: Side  # side of the entry: BUY for a long trade
    quantity: float  # largest absolute position held during the trade
    entry_ts: int
    exit_ts: int
    entry_price: float  # volume-weighted over entry fills
    exit_price: float  # volume-weighted over exit fills
    pnl: float
    commission: float
    exit_reason: str
    ts_init: int
