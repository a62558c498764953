"""What recovery hands the kernel after a restart: the account as the store last knew it.

``state/recovery.py`` loads a :class:`RestoredState` from the store; the kernel builder
(``backtest/kernel.py``) puts it back into the portfolio, the order book and the risk engine, so
a restarted node resumes the same account: nothing traded twice, no breaker forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.enums import TradingState
from core.orders import Order


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskSnapshot:
    """The circuit breakers' memory (persisted so HALTED, REDUCING and the drawdown survive restarts).

    Parameters
    ----------
    state, reason
        Trading state and why it is in it.
    causes
        Active REDUCING causes: cause name (``"daily_loss"``, ``"loss_streak"``, ``"stale_data"``,
        ...) -> reason text.
    peak_equity
        Equity high-water mark, USD (None before the first equity update).
    day_start_equity
        Equity the current trading day's loss is measured from, USD (None before the first day).
    day_end_ns
        Epoch ns UTC at which the current trading day ends (-1 before the first day).
    cooldown_until_ns
        Epoch ns UTC at which an active loss cool-down ends (-1 when none).
    loss_streak
        Consecutive losing trades so far.
    ts
        Epoch ns UTC of the event that produced this snapshot.
    """

    state: TradingState = TradingState.ACTIVE
    reason: str = ""
    causes: dict[str, str] = field(default_factory=dict)
    peak_equity: float | None = None
    day_start_equity: float | None = None
    day_end_ns: int = -1
    cooldown_until_ns: int = -1
    loss_streak: int = 0
    ts: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoredPosition:
    """One open position as persisted: signed shares, average entry price and last mark (USD),
    and the first entry fill's time (epoch ns UTC) of the open trade."""

    symbol: str
    quantity: float
    avg_price: float
    mark: float
    entry_ts: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoredState:
    """Everything a restarted node needs to resume one account.

    ``cash`` USD; ``positions`` non-zero only; ``open_orders`` are the orders that were not
    terminal (their outcome may still be unknown: status INITIALIZED or SUBMITTED), ``orders``
    every order known (so client_order_ids are never reused); ``learner_state`` symbol -> the
    learner's ``to_bytes()``.
    """

    account: str
    cash: float
    positions: tuple[RestoredPosition, ...] = ()
    open_orders: tuple[Order, ...] = ()
    known_client_order_ids: frozenset[str] = frozenset()
    risk: RiskSnapshot = field(default_factory=RiskSnapshot)
    learner_state: dict[str, bytes] = field(default_factory=dict)
    last_bar_ts: dict[str, int] = field(default_factory=dict)


__all__ = ["RestoredPosition", "RestoredState", "RiskSnapshot"]
