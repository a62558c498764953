"""Reconciliation: compare what tradingd believes with what the broker reports, and explain it.

Pure: no I/O, no broker SDK. The broker adapter (``daemon/adapters/alpaca/reconcile.py``) turns
REST answers into a :class:`BrokerSnapshot`; the node's (or the store's) state becomes a
:class:`LocalSnapshot`; :func:`reconcile` says what differs, what of it is explained, and which
of our orders need the broker's state applied (events missed while the order-update stream was
down or the daemon was stopped).

Kinds of :class:`Difference` (``explained`` in brackets):

* ``missed_fill`` [yes]: the broker filled more of our order than we booked.
* ``missed_cancel`` / ``missed_expiry`` / ``missed_rejection`` [yes]: our working order ended
  at the broker (canceled, also from outside tradingd; expired, or a DAY order done for the day;
  rejected).
* ``unknown_outcome_found`` [yes]: an order whose submit outcome was unknown (INITIALIZED or
  SUBMITTED) is known to the broker.
* ``never_reached`` [yes]: an INITIALIZED or SUBMITTED order the broker does not know
  (resubmitting it is the broker adapter's job).
* ``external_order`` [yes]: a working or filled order we did not create; [no] when its
  client_order_id has the form of ours (``<strategy>-<symbol>-<ns>-<seq>`` of a strategy of this
  account) but the state has no such order: another tradingd writes to this broker account, or
  the state database was lost.
* ``external_position`` [yes]: a position in a symbol we never traded.
* ``position_mismatch`` [no]: after our missed fills are accounted (expected = local + signed
  increments), the broker's position differs beyond the tolerance.
* ``cash_difference``: [yes] within the tolerance, when our missed fills explain it, or when
  every position matches (cash also moves for dividends, fees, interest and transfers); [no]
  only beyond the tolerance while a position mismatches too.
* ``order_mismatch`` [no]: an order both sides know disagrees in a way no missed event
  explains (the broker filled less than we booked, works an order we booked as ended, reports
  another symbol or side, lost an order it had accepted, or it was replaced outside tradingd:
  that one is also in ``to_apply``, so it is booked as canceled).
* ``account_mismatch`` [no]: the broker reports another account number than the one this state
  is bound to.

Every difference found makes ``ok`` False unless explained; the caller halts trading then (fail
closed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.enums import OrderStatus, Side, TimeInForce
from core.orders import Order
from core.recovery import RestoredState

MISSED_FILL = "missed_fill"
MISSED_CANCEL = "missed_cancel"
MISSED_EXPIRY = "missed_expiry"
MISSED_REJECTION = "missed_rejection"
UNKNOWN_OUTCOME_FOUND = "unknown_outcome_found"
NEVER_REACHED = "never_reached"
EXTERNAL_ORDER = "external_order"
EXTERNAL_POSITION = "external_position"
POSITION_MISMATCH = "position_mismatch"
CASH_DIFFERENCE = "cash_difference"
ORDER_MISMATCH = "order_mismatch"
ACCOUNT_MISMATCH = "account_mismatch"
KINDS = (MISSED_FILL, MISSED_CANCEL, MISSED_EXPIRY, MISSED_REJECTION, UNKNOWN_OUTCOME_FOUND, NEVER_REACHED,
         EXTERNAL_ORDER, EXTERNAL_POSITION, POSITION_MISMATCH, CASH_DIFFERENCE, ORDER_MISMATCH, ACCOUNT_MISMATCH)
"""Every kind of :class:`Difference`, in report order."""

BROKER_TERMINAL = frozenset({"filled", "canceled", "expired", "rejected", "replaced"})
"""Alpaca order statuses after which an order never trades again; every other status works."""
_ENDED = {"canceled": (MISSED_CANCEL, "canceled"), "expired": (MISSED_EXPIRY, "expired"),
          "rejected": (MISSED_REJECTION, "rejected")}
_UNKNOWN_OUTCOME = frozenset({OrderStatus.INITIALIZED, OrderStatus.SUBMITTED})
_CENT = 0.005  # USD: cash differences below half a cent are float noise, not reported at all


def _finite(value: float, what: str) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerOrder:
    """One order as the broker reports it.

    Parameters
    ----------
    client_order_id, broker_order_id
        Our id (or whoever created it) and the broker's.
    symbol, side
        Instrument and side.
    quantity, filled_quantity
        Ordered and cumulatively filled shares (>= 0; 0 quantity for a notional order).
    avg_fill_price
        Volume-weighted price of what filled, USD (0 when nothing filled).
    status
        The broker's own status word (Alpaca: ``new``, ``partially_filled``, ``filled``,
        ``canceled``, ...).
    created_ns, updated_ns
        Epoch ns UTC.

    Raises
    ------
    ValueError
        If a number is not finite or a quantity is negative (the message names the order).
    """

    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    quantity: float
    filled_quantity: float
    avg_fill_price: float
    status: str
    created_ns: int
    updated_ns: int

    def __post_init__(self) -> None:
        for name in ("quantity", "filled_quantity", "avg_fill_price"):
            value = getattr(self, name)
            _finite(value, f"broker order {self.client_order_id!r} {name}")
            if value < 0:
                raise ValueError(f"broker order {self.client_order_id!r} {name} must be >= 0, got {value!r}")

    @property
    def is_open(self) -> bool:
        """Whether the broker may still fill it."""
        return self.status not in BROKER_TERMINAL


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerPosition:
    """One position at the broker: signed shares (negative = short) and average entry price, USD.

    Raises
    ------
    ValueError
        If a number is not finite.
    """

    symbol: str
    quantity: float
    avg_price: float

    def __post_init__(self) -> None:
        _finite(self.quantity, f"broker position {self.symbol!r} quantity")
        _finite(self.avg_price, f"broker position {self.symbol!r} avg_price")


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerFill:
    """One execution from the broker's account activities (Alpaca ``FILL``).

    ``quantity`` shares of this execution at ``price`` USD; ``cum_quantity`` the order's total
    filled after it; ``ts`` epoch ns UTC of the transaction.

    Raises
    ------
    ValueError
        If a number is not finite or not positive (quantity, price).
    """

    activity_id: str
    broker_order_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    cum_quantity: float
    ts: int

    def __post_init__(self) -> None:
        for name in ("quantity", "price", "cum_quantity"):
            _finite(getattr(self, name), f"broker fill {self.activity_id!r} {name}")
        if self.quantity <= 0 or self.price <= 0:
            raise ValueError(f"broker fill {self.activity_id!r} needs quantity and price > 0, "
                             f"got {self.quantity!r} at {self.price!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerSnapshot:
    """What the broker reported at ``taken_ns`` (epoch ns UTC): orders of the window asked for,
    every open position, fills of the window, cash and equity (USD) and the account number.

    Raises
    ------
    ValueError
        If cash or equity is not finite.
    """

    orders: tuple[BrokerOrder, ...] = ()
    positions: tuple[BrokerPosition, ...] = ()
    fills: tuple[BrokerFill, ...] = ()
    cash: float = 0.0
    equity: float = 0.0
    account_number: str = ""
    taken_ns: int = 0

    def __post_init__(self) -> None:
        _finite(self.cash, "broker cash")
        _finite(self.equity, "broker equity")


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalSnapshot:
    """What tradingd believes.

    Parameters
    ----------
    orders
        Orders by client_order_id: at least every open one (a running engine's book), or every
        order of the account (the store's ``account_orders``).
    positions
        Signed shares per symbol.
    cash
        USD.
    external
        Symbols tagged external by an earlier reconciliation.
    known
        client_order_ids of the account's other orders (ended, not in ``orders``: e.g.
        ``RestoredState.known_client_order_ids``); the broker's copies are not external.
    broker_account_number
        The broker account this state is bound to (None: not bound, not checked).

    Raises
    ------
    ValueError
        If cash or a position is not finite.
    """

    orders: Mapping[str, Order] = field(default_factory=dict)
    positions: Mapping[str, float] = field(default_factory=dict)
    cash: float = 0.0
    external: frozenset[str] = frozenset()
    known: frozenset[str] = frozenset()
    broker_account_number: str | None = None

    def __post_init__(self) -> None:
        _finite(self.cash, "local cash")
        for symbol, quantity in self.positions.items():
            _finite(quantity, f"local position {symbol!r}")

    @classmethod
    def from_restored(cls, restored: RestoredState | None, orders: Iterable[Order], *,
                      external: Iterable[str] = (), broker_account_number: str | None = None,
                      cash: float = 0.0) -> LocalSnapshot:
        """Build the snapshot of a stored account (``state.recovery.load_restored``) and its
        orders (``store.account_orders``); ``cash`` is used when nothing was restored."""
        by_id = {o.client_order_id: o for o in orders}
        known = frozenset(restored.known_client_order_ids) - set(by_id) if restored is not None else frozenset()
        return cls(orders=by_id,
                   positions={p.symbol: p.quantity for p in restored.positions} if restored is not None else {},
                   cash=restored.cash if restored is not None else cash, external=frozenset(external),
                   known=known, broker_account_number=broker_account_number)


@dataclass(frozen=True, slots=True, kw_only=True)
class Difference:
    """One thing that differs between tradingd and the broker.

    ``local``/``broker`` are what each side says (shares for positions, USD for cash, a status
    text for orders; None when that side has nothing); ``explained`` False means nothing known
    accounts for it and trading must stop; ``detail`` says what happened in words.
    """

    kind: str
    symbol: str | None
    client_order_id: str | None
    local: float | str | None
    broker: float | str | None
    explained: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """The difference as a JSON-able dict (keys as the fields)."""
        return {"kind": self.kind, "symbol": self.symbol, "client_order_id": self.client_order_id,
                "local": self.local, "broker": self.broker, "explained": self.explained, "detail": self.detail}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileReport:
    """The result of :func:`reconcile`.

    Parameters
    ----------
    differences
        Everything that differs, in :data:`KINDS` order, then by symbol and client_order_id.
    to_apply
        client_order_ids of OUR orders whose broker state must be applied (missed fills,
        cancels, expiries, rejections, unknown outcomes found), in broker creation order.
    never_reached
        Our INITIALIZED/SUBMITTED orders the broker does not know.
    external_orders
        client_order_ids of working or filled orders we did not create.
    external_positions
        Symbols the broker holds that we never traded.
    taken_ns, account_number
        Of the broker snapshot.
    """

    differences: tuple[Difference, ...] = ()
    to_apply: tuple[str, ...] = ()
    never_reached: tuple[str, ...] = ()
    external_orders: tuple[str, ...] = ()
    external_positions: tuple[str, ...] = ()
    taken_ns: int = 0
    account_number: str = ""

    @property
    def ok(self) -> bool:
        """No unexplained difference."""
        return all(d.explained for d in self.differences)

    @property
    def unexplained(self) -> tuple[Difference, ...]:
        """The differences nothing explains."""
        return tuple(d for d in self.differences if not d.explained)

    def counts(self) -> dict[str, int]:
        """Differences per kind (kinds with none left out; ``never_reached``, ``external_order``
        and ``external_position`` count the id lists), plus ``differences`` (all),
        ``unexplained`` and ``to_apply``.

        Examples
        --------
        >>> ReconcileReport().counts()
        {'differences': 0, 'unexplained': 0, 'to_apply': 0}
        """
        counts = {"differences": len(self.differences), "unexplained": len(self.unexplained),
                  "to_apply": len(self.to_apply)}
        for d in self.differences:
            counts[d.kind] = counts.get(d.kind, 0) + 1
        return counts

    def halt_reason(self) -> str:
        """``"reconciliation: <kind> <symbol or order>, ..."`` of the unexplained differences.

        Examples
        --------
        >>> d = Difference(kind="position_mismatch", symbol="SPY", client_order_id=None, local=5.0, broker=7.0,
        ...                explained=False, detail="")
        >>> ReconcileReport(differences=(d,)).halt_reason()
        'reconciliation: position_mismatch SPY'
        """
        items = [f"{d.kind} {d.symbol or d.client_order_id or ''}".strip() for d in self.unexplained]
        shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
        return f"reconciliation: {shown or 'no unexplained difference'}"

    def verdict(self) -> str:
        """One line for people: OK or MISMATCH, with the numbers."""
        n = len(self.differences)
        if self.ok:
            return ("OK: no difference with the broker" if n == 0 else
                    f"OK: {n} difference{'s' if n != 1 else ''} with the broker, all explained")
        bad = len(self.unexplained)
        return f"MISMATCH: {bad} unexplained difference{'s' if bad != 1 else ''} of {n} ({self.halt_reason()})"

    def summary(self) -> dict[str, Any]:
        """The report as a JSON-able dict: ok, verdict, taken_ns, account_number, counts, the id
        lists and every difference (:meth:`Difference.as_dict`)."""
        return {"ok": self.ok, "verdict": self.verdict(), "taken_ns": self.taken_ns,
                "account_number": self.account_number, "counts": self.counts(), "to_apply": list(self.to_apply),
                "never_reached": list(self.never_reached), "external_orders": list(self.external_orders),
                "external_positions": list(self.external_positions),
                "differences": [d.as_dict() for d in self.differences]}


def _ours_pattern(orders: Iterable[Order]) -> re.Pattern[str] | None:
    """The form of the client_order_ids this account's strategies make (core.order_book rule)."""
    strategies = sorted({o.strategy_id for o in orders if o.strategy_id})
    if not strategies:
        return None
    alternatives = "|".join(re.escape(s) for s in strategies)
    return re.compile(rf"^(?:{alternatives})-.+-\d+-[a-z]*\d+$")


def _order_text(status: str, filled: float, quantity: float) -> str:
    return f"{status} {filled:g}/{quantity:g}"


class _Pass:
    """The running state of one :func:`reconcile` call."""

    def __init__(self, local: LocalSnapshot, broker: BrokerSnapshot, qty_tolerance: float) -> None:
        self.local, self.broker, self.tol = local, broker, qty_tolerance
        self.diffs: list[Difference] = []
        self.to_apply: list[tuple[int, str]] = []
        self.increments: dict[str, float] = {}  # symbol -> signed shares our missed fills add
        self.cash_delta = 0.0  # USD our missed fills move the cash by
        self.seen: set[str] = set()
        self.external_orders: list[str] = []
        self.external_traded: set[str] = set()  # symbols orders not ours filled in
        self.never: list[str] = []

    def add(self, kind: str, symbol: str | None, cid: str | None, local: float | str | None,
            broker: float | str | None, explained: bool, detail: str) -> None:
        self.diffs.append(Difference(kind=kind, symbol=symbol, client_order_id=cid, local=local, broker=broker,
                                     explained=explained, detail=detail))

    # --- orders ------------------------------------------------------------------------------
    def orders(self) -> None:
        local = self.local
        ours = _ours_pattern(local.orders.values())
        for b in self.broker.orders:
            if b.client_order_id in self.seen:
                continue  # reported twice (paging overlap): compared once
            self.seen.add(b.client_order_id)
            order = local.orders.get(b.client_order_id)
            if order is not None:
                self.our_order(order, b)
            elif b.client_order_id in local.known:
                if b.is_open and b.status != "pending_cancel":
                    self.add(ORDER_MISMATCH, b.symbol, b.client_order_id, "ended",
                             _order_text(b.status, b.filled_quantity, b.quantity), False,
                             f"tradingd booked the order as ended but the broker still works it ({b.status})")
            else:
                self.external(b, ours)
        for cid, order in local.orders.items():
            if cid in self.seen or not order.is_open:
                continue
            text = _order_text(order.status.value, order.filled_quantity, order.quantity)
            if order.status in _UNKNOWN_OUTCOME:
                self.never.append(cid)
                self.add(NEVER_REACHED, order.symbol, cid, text, None, True,
                         "the broker does not know the order: it never reached the broker")
            else:
                self.add(ORDER_MISMATCH, order.symbol, cid, text, None, False,
                         f"tradingd works the order ({order.status.value}, broker id "
                         f"{order.broker_order_id or 'none'}) but the broker does not know it")
        ids = {o.broker_order_id for o in self.broker.orders} | {
            o.broker_order_id for o in local.orders.values() if o.broker_order_id}
        for f in self.broker.fills:  # executions of orders outside the window: not ours either
            if f.broker_order_id not in ids:
                self.external_traded.add(f.symbol)

    def external(self, b: BrokerOrder, ours: re.Pattern[str] | None) -> None:
        if b.filled_quantity > self.tol:
            self.external_traded.add(b.symbol)
        if not b.is_open and b.filled_quantity <= self.tol:
            return  # ended without trading: it changed nothing
        looks_ours = ours is not None and ours.match(b.client_order_id) is not None
        self.external_orders.append(b.client_order_id)
        what = f"{b.side.value} {b.quantity:g} {b.symbol}"
        self.add(EXTERNAL_ORDER, b.symbol, b.client_order_id, None,
                 _order_text(b.status, b.filled_quantity, b.quantity), not looks_ours,
                 f"{what} has the client_order_id form of this account's strategies but the state has no such "
                 "order: another tradingd trades this broker account, or the state database was lost"
                 if looks_ours else f"{what} was not placed by tradingd (status {b.status})")

    def our_order(self, order: Order, b: BrokerOrder) -> None:
        cid, sym, tol = order.client_order_id, order.symbol, self.tol
        lt = _order_text(order.status.value, order.filled_quantity, order.quantity)
        bt = _order_text(b.status, b.filled_quantity, b.quantity)
        if b.symbol != sym or b.side is not order.side:
            self.add(ORDER_MISMATCH, sym, cid, lt, bt, False,
                     f"the broker reports {b.side.value} {b.symbol}, tradingd booked {order.side.value} {sym}")
            return
        if order.broker_order_id and order.broker_order_id != b.broker_order_id:
            self.add(ORDER_MISMATCH, sym, cid, lt, bt, False,
                     f"broker order id {b.broker_order_id!r} differs from the one booked ({order.broker_order_id!r})")
            return
        apply = False
        if order.status in _UNKNOWN_OUTCOME:
            apply = True
            self.add(UNKNOWN_OUTCOME_FOUND, sym, cid, lt, bt, True,
                     f"the submit's outcome was unknown; the broker has the order ({b.status})")
        increment = b.filled_quantity - order.filled_quantity
        if increment < -tol:
            self.add(ORDER_MISMATCH, sym, cid, lt, bt, False,
                     f"tradingd booked {order.filled_quantity:g} shares filled, the broker only {b.filled_quantity:g}")
            return
        if increment > tol:
            apply = True
            paid = b.avg_fill_price * b.filled_quantity - order.avg_fill_price * order.filled_quantity
            price = paid / increment if paid > 0 else b.avg_fill_price  # this increment's own average
            self.increments[sym] = self.increments.get(sym, 0.0) + order.side.sign * increment
            self.cash_delta -= order.side.sign * increment * price
            self.add(MISSED_FILL, sym, cid, lt, bt, True,
                     f"{increment:g} shares {order.side.value} at {price:.4f} USD filled while tradingd did not "
                     "hear of it")
        status = b.status
        if status == "done_for_day" and order.time_in_force is TimeInForce.DAY:
            status = "expired"  # a DAY order done for the day never trades again
        if order.is_open and status in _ENDED:
            kind, word = _ENDED[status]
            apply = True
            self.add(kind, sym, cid, lt, bt, True,
                     f"the broker {word} the order ({b.filled_quantity:g} of {b.quantity:g} filled); tradingd did "
                     "not hear of it")
        elif order.is_open and status == "replaced":
            apply = True  # booked as canceled; its replacement is an external order
            self.add(ORDER_MISMATCH, sym, cid, lt, bt, False,
                     "the order was replaced outside tradingd: its replacement is not tradingd's")
        elif not order.is_open and b.is_open and b.status != "pending_cancel":
            self.add(ORDER_MISMATCH, sym, cid, lt, bt, False,
                     f"tradingd booked the order {order.status.value} but the broker still works it ({b.status})")
        if apply:
            self.to_apply.append((b.created_ns, cid))

    # --- positions and cash ------------------------------------------------------------------
    def positions(self) -> tuple[list[str], bool]:
        """Compare positions; return the external symbols and whether a position mismatches."""
        local, tol = self.local, self.tol
        booked = {s: q for s, q in local.positions.items() if q != 0.0}
        traded = {o.symbol for o in local.orders.values()} | set(booked)
        held = {p.symbol: p.quantity for p in self.broker.positions}
        external: list[str] = []
        mismatch = False
        for sym in sorted(set(held) | set(booked) | set(self.increments)):
            mine = booked.get(sym, 0.0)
            expected = mine + self.increments.get(sym, 0.0)
            theirs = held.get(sym, 0.0)
            if abs(theirs - expected) <= tol:
                continue
            if sym not in traded and abs(expected) <= tol:
                external.append(sym)
                known = " (tagged external before)" if sym in local.external else ""
                self.add(EXTERNAL_POSITION, sym, None, expected, theirs, True,
                         f"{theirs:g} shares held outside tradingd{known}; tradingd never traded this symbol")
                continue
            mismatch = True
            detail = f"expected {expected:g} shares (booked {mine:g}"
            if sym in self.increments:
                detail += f" + {self.increments[sym]:g} from missed fills"
            detail += f"), the broker holds {theirs:g}"
            if sym in self.external_traded:
                detail += "; orders not placed by tradingd traded this symbol too"
            self.add(POSITION_MISMATCH, sym, None, expected, theirs, False, detail)
        return external, mismatch

    def cash(self, tolerance: float, position_mismatch: bool) -> None:
        local, broker = self.local, self.broker
        raw = broker.cash - local.cash
        if abs(raw) <= _CENT:
            return
        left = broker.cash - (local.cash + self.cash_delta)
        if abs(left) <= tolerance:
            explained = True
            why = ("explained by the missed fills" if abs(raw) > tolerance
                   else f"within the tolerance of {tolerance:g} USD")
        elif not position_mismatch:
            explained = True
            why = (f"{left:+,.2f} USD not explained by fills; positions match, so it is cash moving for dividends, "
                   "fees, interest, transfers or trades outside tradingd")
        else:
            explained = False
            why = (f"{left:+,.2f} USD not explained by fills, beyond the tolerance of {tolerance:g} USD, while "
                   "positions mismatch")
        self.add(CASH_DIFFERENCE, None, None, local.cash, broker.cash, explained,
                 f"broker cash {raw:+,.2f} USD vs tradingd: {why}")


def reconcile(local: LocalSnapshot, broker: BrokerSnapshot, *, qty_tolerance: float = 1e-6,
              cash_tolerance: float = 1.0) -> ReconcileReport:
    """Compare ``local`` with ``broker`` and explain every difference (see the module docstring).

    Parameters
    ----------
    local, broker
        The two sides. The broker's orders are those of a time window: local terminal orders
        outside it are not compared; local open orders the broker does not report are unknown
        to the broker.
    qty_tolerance
        Shares: quantity differences up to this are equal (float noise).
    cash_tolerance
        USD of cash difference that is noise.

    Returns
    -------
    ReconcileReport
        ``ok`` is False when any difference is unexplained.

    Raises
    ------
    ValueError
        If a tolerance is negative or not finite.

    Examples
    --------
    >>> snap = BrokerSnapshot(positions=(BrokerPosition(symbol="TSLA", quantity=3.0, avg_price=200.0),),
    ...                       cash=1_000.0)
    >>> report = reconcile(LocalSnapshot(cash=1_000.0), snap)
    >>> report.ok, [d.kind for d in report.differences], report.external_positions
    (True, ['external_position'], ('TSLA',))
    """
    for name, value in (("qty_tolerance", qty_tolerance), ("cash_tolerance", cash_tolerance)):
        _finite(value, name)
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    run = _Pass(local, broker, qty_tolerance)
    if local.broker_account_number is not None and broker.account_number != local.broker_account_number:
        run.add(ACCOUNT_MISMATCH, None, None, local.broker_account_number, broker.account_number, False,
                f"this state is bound to broker account {local.broker_account_number!r} but the broker reports "
                f"account {broker.account_number!r}: wrong keys or wrong state database")
    run.orders()
    external_positions, position_mismatch = run.positions()
    run.cash(cash_tolerance, position_mismatch)
    rank = {k: i for i, k in enumerate(KINDS)}
    diffs = sorted(run.diffs, key=lambda d: (rank[d.kind], d.symbol or "", d.client_order_id or ""))
    return ReconcileReport(differences=tuple(diffs), to_apply=tuple(c for _, c in sorted(run.to_apply)),
                           never_reached=tuple(sorted(run.never)), external_orders=tuple(run.external_orders),
                           external_positions=tuple(external_positions), taken_ns=broker.taken_ns,
                           account_number=broker.account_number)


BROKERS = ("alpaca", "paper")
"""Brokers an account can be bound to (``"paper"``: the simulated paper broker)."""
MODES = ("paper", "live")
"""Paper money or live money."""


def check_binding(account: str, broker: str, mode: str, number: str) -> None:
    """Validate one broker binding's values.

    Raises
    ------
    ValueError
        If ``broker`` is not in :data:`BROKERS`, ``mode`` not in :data:`MODES`, the simulated
        paper broker is asked for live money, or an Alpaca binding has no account number.

    Examples
    --------
    >>> check_binding("main", "paper", "live", "")
    Traceback (most recent call last):
    ...
    ValueError: account 'main': the simulated paper broker cannot trade live money
    """
    if not account:
        raise ValueError("broker binding: the account name is empty")
    if broker not in BROKERS:
        raise ValueError(f"account {account!r}: broker must be one of {BROKERS}, got {broker!r}")
    if mode not in MODES:
        raise ValueError(f"account {account!r}: mode must be one of {MODES}, got {mode!r}")
    if broker == "paper" and mode == "live":
        raise ValueError(f"account {account!r}: the simulated paper broker cannot trade live money")
    if broker == "alpaca" and not number:
        raise ValueError(f"account {account!r}: an Alpaca binding needs the broker's account number")


def binding_conflict(bindings: Iterable[Mapping[str, Any]], account: str, broker: str, mode: str, number: str,
                     where: str) -> str | None:
    """Say why ``account`` cannot be bound to (``broker``, ``mode``, ``number``) in a database
    (``where``) that already holds ``bindings`` (dicts with account, broker, mode,
    broker_account_number), or None when it can (also when the same binding exists).

    Refused: any account bound to the other mode (paper and live never share a state
    database); this account bound to another broker or broker account; another account bound to
    another Alpaca account (one database trades one broker account) or to the same one (two
    accounts would trade each other's positions).

    Examples
    --------
    >>> live = {"account": "main", "broker": "alpaca", "mode": "live", "broker_account_number": "A1"}
    >>> binding_conflict([live], "test", "alpaca", "paper", "PA9", "sqlite:///t.db")  # doctest: +ELLIPSIS
    "paper and live never share a state database: sqlite:///t.db holds account 'main' bound to live ...
    """
    wanted = f"{mode} ({broker} account {number or '-'})"
    for b in bindings:
        held = f"{b['mode']} ({b['broker']} account {b['broker_account_number'] or '-'})"
        if b["mode"] != mode:
            return (f"paper and live never share a state database: {where} holds account {b['account']!r} bound to "
                    f"{held}; refusing to bind account {account!r} to {wanted}")
        if b["account"] == account:
            if b["broker"] != broker or b["broker_account_number"] != number:
                return (f"account {account!r} is bound to {held} in {where}; refusing to bind it to {wanted}: paper "
                        "and live never share a state database, nor do two broker accounts")
        elif broker == "alpaca" and b["broker"] == "alpaca":
            if b["broker_account_number"] != number:
                return (f"{where} trades {held} for account {b['account']!r}; refusing {wanted} for account "
                        f"{account!r}: one state database trades one broker account")
            return (f"{held} is already traded by account {b['account']!r} in {where}; refusing to bind account "
                    f"{account!r} to it too: two accounts would trade each other's positions")
    return None


__all__ = ["BROKERS", "BROKER_TERMINAL", "KINDS", "MODES", "binding_conflict", "check_binding", "BrokerFill", "BrokerOrder", "BrokerPosition", "BrokerSnapshot", "Difference",
           "LocalSnapshot", "ReconcileReport", "reconcile"]
