"""Immutable events (past tense) and commands (imperative) that flow through ``Engine.handle``.

``Bar`` is a ``NamedTuple``: it is built once per bar on the hot path, where a NamedTuple is about
3x cheaper than a frozen dataclass. Every other event and command is a frozen, slotted,
keyword-only dataclass, so two different kinds never compare equal (``HaltTrading(...) !=
RearmTrading(...)`` even with the same fields) and a field cannot be passed in the wrong position.

Timestamps are epoch nanoseconds, UTC, on every event and command:

* ``ts_event``: when the thing happened at the source (for a bar: its **start**; for a command:
  when it was issued).
* ``ts_init``: when tradingd received or created it (for a replayed bar: its **end**, the moment it
  becomes known; see DESIGN.md "The one path").

Money is USD, quantities are shares (or units), always positive; the side carries the sign.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerFired:
    """A clock timer named ``name`` became due at ``ts_event`` (see :class:`core.clock.Clock`);
    ``ts_init`` is when the clock noticed (>= ``ts_event``)."""

    name: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockTick:
    """The live node's clock reached ``ts_init`` with no other event: the engine advances its
    clock and fires due timers (breaker cool-downs, day ends) even when no bar arrives. Journaled
    like every inbound event, so a replay of the journal fires them at the same moments."""

    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DataStale:
    """No bar of ``symbol`` for too long while its market is open (the staleness watchdog):
    trading moves to REDUCING (cause ``"stale:<symbol>"``) until :class:`DataResumed`."""

    symbol: str
    reason: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DataResumed:
    """Bars of ``symbol`` arrive again: its stale-data cause is cleared."""

    symbol: str
    ts_event: int
    ts_init: int


# --- commands --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitOrder:
    """Command: send an order. Produced by the risk engine from an approved intent.

    ``quantity`` in shares (> 0). ``limit_price``/``stop_price`` USD, required for LIMIT/STOP.
    ``client_order_id`` is deterministic (see :func:`core.order_book.client_order_id`).
    ``reduce_only`` marks an exit: it may only shrink the position.
    """

    client_order_id: str
    strategy_id: str
    symbol: str
    side: Side
    quantity: float
    order_type: OrderType
    limit_price: float | None = None
    stop_price: float | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    reason: str = ""
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelOrder:
    """Command: cancel the working remainder of an order."""

    client_order_id: str
    reason: str = "canceled"
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HaltTrading:
    """Command: move to HALTED (operator or breaker); cancels open orders and, with
    ``flatten_on_halt``, closes every position."""

    reason: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RearmTrading:
    """Command: the only way out of HALTED (an explicit operator action)."""

    reason: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseTrading:
    """Command: stop opening positions (REDUCING with the cause ``"paused"``: exits still go
    through) until :class:`ResumeTrading`."""

    reason: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeTrading:
    """Command: end a :class:`PauseTrading` (other REDUCING causes and HALTED are unaffected)."""

    reason: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FlattenPositions:
    """Command: close every open position with market orders (trading state unchanged)."""

    reason: str
    ts_event: int
    ts_init: int


# --- order events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderDenied:
    """Our risk engine refused an intent; nothing reached the broker.

    ``client_order_id`` is the id the order would have had, so the audit trail links the denial to
    the decision. ``quantity`` shares (the sized or requested amount; 0 when unknown).
    """

    client_order_id: str
    strategy_id: str
    symbol: str
    side: Side
    quantity: float
    reason: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderAccepted:
    """The broker (or simulated venue) accepted the order and is working it."""

    client_order_id: str
    broker_order_id: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRejected:
    """The broker refused the order (distinct from :class:`OrderDenied`, which is ours)."""

    client_order_id: str
    reason: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCanceled:
    """The working remainder of the order was canceled (what filled before stays filled)."""

    client_order_id: str
    reason: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderExpired:
    """The order's time in force ran out (a DAY order at the session close)."""

    client_order_id: str
    reason: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderFilled:
    """A (partial) fill. ``cum_quantity`` is the order's total filled so far, which makes
    applying fills idempotent: a duplicate or replayed report with a cum_quantity not above what
    was applied already changes nothing.

    ``price`` is this fill's price in USD including slippage; ``commission`` USD (>= 0);
    ``slippage`` USD (>= 0) is what the adverse price move cost on this fill, ``quantity *
    |price - reference price|`` (0 when the broker does not report it).
    """

    client_order_id: str
    fill_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    cum_quantity: float
    commission: float
    slippage: float = 0.0
    ts_event: int
    ts_init: int


# --- state events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RegimeChanged:
    """The regime detector moved ``symbol`` from ``previous`` to ``current``."""

    symbol: str
    previous: Regime
    current: Regime
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingStateChanged:
    """The trading state moved (breaker trip, timer, operator command). ``reason`` says why."""

    previous: TradingState
    current: TradingState
    reason: str
    ts_event: int
    ts_init: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeClosed:
    """A round trip (flat -> position -> flat) finished. P&L USD, net of commissions.

    ``entry_ts``/``exit_ts`` are the first entry fill's and the closing fill's ``ts_event`` (the
    bar start they traded on); ``ts_init`` is when the engine learned of the closing fill (the
    end of that bar in replay), which is what time-based breakers count from.
    """

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
    ts_event: int
    ts_init: int
