"""Recovery: load what a restarted node needs to resume an account (:func:`load_restored`).

The store persists three kinds of account state, each written so a crash (kill -9) at any
moment leaves something consistent:

* the risk state (:class:`core.recovery.RiskSnapshot`), with every state change committed at once;
* orders and fills, each fill in one transaction with the order row it updated;
* an account snapshot (cash, open positions, last bar per symbol) with a *fill watermark*: the
  snapshot includes exactly the account's fills up to the watermark. The fills after it (those
  that reached the store after the last snapshot) are booked on top here, with the same
  accounting as the engine (:class:`core.portfolio.Portfolio`), so cash and positions always
  agree with the orders and fills the store holds.

Any store offering the reads of :class:`RecoverySource` can be recovered from (``SqlStore`` and
``MemoryStore`` both do).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.enums import TERMINAL_STATUSES, Side
from core.events import OrderFilled
from core.orders import Order
from core.portfolio import Portfolio
from core.recovery import RestoredPosition, RestoredState, RiskSnapshot


class RecoveryError(RuntimeError):
    """The persisted state of an account cannot be turned into a :class:`RestoredState`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountRecord:
    """The last account snapshot a store holds.

    Parameters
    ----------
    cash
        USD.
    positions
        Open positions (non-zero quantity) as of the snapshot.
    fill_watermark
        Store-specific position in the account's fill sequence the snapshot includes (fills after
        it are not in ``cash``/``positions``); ``None`` when the snapshot includes no fill.
    last_bar_ts
        Symbol -> epoch ns UTC (start) of the last bar the engine accepted.
    ts
        Epoch ns UTC of the snapshot.
    """

    cash: float
    positions: tuple[RestoredPosition, ...] = ()
    fill_watermark: int | None = None
    last_bar_ts: dict[str, int] = field(default_factory=dict)
    ts: int = 0


class RecoverySource(Protocol):
    """The reads :func:`load_restored` needs (implemented by ``SqlStore`` and ``MemoryStore``)."""

    def load_risk_state(self, account: str | None = None) -> RiskSnapshot | None: ...
    def load_account(self, account: str | None = None) -> AccountRecord | None: ...
    def account_orders(self, account: str | None = None) -> list[Order]: ...
    def account_fills(self, account: str | None = None, *, after: int | None = None) -> list[OrderFilled]: ...
    def load_learner_states(self, account: str | None = None) -> dict[str, bytes]: ...


def roll_forward(cash: float, positions: Sequence[RestoredPosition],
                 fills: Sequence[OrderFilled]) -> tuple[float, tuple[RestoredPosition, ...]]:
    """Book ``fills`` (in order) on top of ``cash`` (USD) and ``positions``.

    A fill's price becomes its symbol's mark; a position opened or flipped by a fill takes that
    fill's ``ts_event`` as its entry time. Positions that end flat are dropped.

    Returns
    -------
    tuple
        The new cash (USD) and open positions (ordered by symbol).

    Raises
    ------
    RecoveryError
        If a fill cannot be booked (non-positive quantity or price, negative commission).

    Examples
    --------
    >>> fill = OrderFilled(client_order_id="c", fill_id="f", symbol="AAPL", side=Side.BUY, quantity=10.0,
    ...                    price=100.0, cum_quantity=10.0, commission=1.0, ts_event=5, ts_init=6)
    >>> roll_forward(2_000.0, (), [fill])
    (999.0, (RestoredPosition(symbol='AAPL', quantity=10.0, avg_price=100.0, mark=100.0, entry_ts=5),))
    """
    if not fills:
        return cash, tuple(sorted((p for p in positions if p.quantity != 0.0), key=lambda p: p.symbol))
    portfolio = Portfolio(1.0)  # the cash is set below; the portfolio only books the fills
    entry: dict[str, int | None] = {}
    for pos in positions:
        if pos.quantity == 0.0:
            continue
        portfolio.update_mark(pos.symbol, pos.mark)
        try:
            portfolio.apply_fill(pos.symbol, Side.BUY if pos.quantity > 0 else Side.SELL, abs(pos.quantity),
                                 pos.avg_price, 0.0)
        except ValueError as exc:
            raise RecoveryError(f"cannot restore stored position {pos}: {exc}") from exc
        portfolio.positions()[pos.symbol].avg_price = pos.avg_price  # exactly as saved, not q * p / q
        entry[pos.symbol] = pos.entry_ts
    portfolio.cash = cash
    for fill in fills:
        before = portfolio.position(fill.symbol)
        portfolio.update_mark(fill.symbol, fill.price)
        try:
            portfolio.apply_fill(fill.symbol, fill.side, fill.quantity, fill.price, fill.commission)
        except ValueError as exc:
            raise RecoveryError(f"cannot book stored fill {fill.fill_id} of {fill.client_order_id}: {exc}") from exc
        after = portfolio.position(fill.symbol)
        if before == 0.0 or (after != 0.0 and (after > 0) != (before > 0)):
            entry[fill.symbol] = fill.ts_event
    restored = tuple(
        RestoredPosition(symbol=symbol, quantity=pos.quantity, avg_price=pos.avg_price, mark=pos.mark,
                         entry_ts=entry.get(symbol))
        for symbol, pos in sorted(portfolio.positions().items()) if pos.quantity != 0.0)
    return portfolio.cash, restored


def load_restored(store: RecoverySource, account: str, *, starting_cash: float | None = None) -> RestoredState | None:
    """Load everything a restarted node needs to resume ``account``.

    Parameters
    ----------
    store
        A store with the reads of :class:`RecoverySource` (``SqlStore``, ``MemoryStore``).
    account
        The account to resume.
    starting_cash
        USD the account started with, used only when the store has orders, fills or a risk
        state of the account but no account snapshot yet (the account's fills are then booked on
        top of it).

    Returns
    -------
    RestoredState or None
        ``None`` when the store has nothing at all about the account (a new account). Otherwise
        the risk state (``RiskSnapshot()`` — ACTIVE — when none was saved), cash and open
        positions (snapshot plus the fills after its watermark), the orders that are not terminal
        (their outcome may still be unknown: INITIALIZED or SUBMITTED), every client_order_id
        the account ever used, the learner state per symbol and the last bar time per symbol.
        The last bar time of a symbol is at least its last order's decision time minus 1 ns: the
        account snapshot is written after the bar, the order before the broker call, so a crash
        between the two must not let the restarted node decide on that bar again (a second order
        for a decision already sent). Bars are contiguous, so the next bar, which starts at the
        decision time, is still accepted.

    Raises
    ------
    RecoveryError
        If the account has state but no snapshot and ``starting_cash`` is None, or a stored fill
        cannot be booked.
    state.store.StoreError
        If a read fails.
    """
    risk = store.load_risk_state(account)
    snapshot = store.load_account(account)
    orders = store.account_orders(account)
    learner = store.load_learner_states(account)
    if risk is None and snapshot is None and not orders and not learner:
        return None
    if snapshot is None:
        if starting_cash is None:
            raise RecoveryError(f"account {account!r} has persisted state but no account snapshot: "
                                "pass starting_cash to book its fills on")
        snapshot = AccountRecord(cash=starting_cash)
    fills = store.account_fills(account, after=snapshot.fill_watermark)
    cash, positions = roll_forward(snapshot.cash, snapshot.positions, fills)
    return RestoredState(
        account=account, cash=cash, positions=positions,
        open_orders=tuple(o for o in orders if o.status not in TERMINAL_STATUSES),
        known_client_order_ids=frozenset(o.client_order_id for o in orders),
        risk=risk if risk is not None else RiskSnapshot(), learner_state=dict(learner),
        last_bar_ts=_decided_through(snapshot.last_bar_ts, orders))


def _decided_through(last_bar_ts: dict[str, int], orders: list[Order]) -> dict[str, int]:
    """Last bar start per symbol, raised to just before each symbol's last order decision (ns)."""
    merged = dict(last_bar_ts)
    for order in orders:
        decided = order.ts_created - 1
        if decided > merged.get(order.symbol, -1):
            merged[order.symbol] = decided
    return merged


__all__ = ["AccountRecord", "RecoveryError", "RecoverySource", "load_restored", "roll_forward"]
