"""PaperBroker: the simulated venue shared by replay and live paper trading.

It plays two roles (DESIGN.md "Ports without stubs"): :class:`core.ports.Broker` (``submit``
answers at once, accepted or rejected; ``cancel``) and :class:`core.ports.SimulatedVenue`
(``on_bar`` fills working orders against bars that *start* at or after the order's submission
time, so a decision taken at a bar's close can only trade from the next bar's open: no
look-ahead, also with several symbols whose bars share a timestamp). Prices and fees come from
:class:`backtest.fill_model.FillModel`.

Fill rules against a bar (``open``/``high``/``low``/``close`` USD), before slippage and the
participation cap:

========== ========================================== ==========================================
type        buy                                        sell
========== ========================================== ==========================================
MARKET      ``open``                                   ``open``
LIMIT       ``open`` if open <= limit, else            ``open`` if open >= limit, else ``limit``
            ``limit`` if low <= limit, else none       if high >= limit, else none
STOP        ``open`` if open >= stop (gap), else       ``open`` if open <= stop (gap), else
            ``stop`` if high >= stop, else none        ``stop`` if low <= stop, else none
STOP_LIMIT  none until a bar with high >= stop         none until a bar with low <= stop
            triggers it, then LIMIT from that bar      triggers it, then LIMIT from that bar
            on. On the trigger bar: open >= stop       on. On the trigger bar: open <= stop
            (gap): the LIMIT rule on the whole bar;    (gap): the LIMIT rule on the whole bar;
            else ``stop`` if limit >= stop (capped     else ``stop`` if limit <= stop (floored
            at limit); else ``limit`` if close <=      at limit); else ``limit`` if close >=
            limit; else none                           limit; else none
========== ========================================== ==========================================

Slippage is always adverse; for a LIMIT order it never makes the price worse than the limit. A
fill's ``slippage`` is its USD cost, ``quantity * |price - reference|`` with the reference price of
the table (0 for a limit touched intrabar, filled at its limit). A triggered STOP becomes a market
order: a remainder left by the participation cap fills at later bars' opens. A LIMIT remainder
stays a limit order, and so does a triggered STOP_LIMIT (also when the trigger bar filled nothing).
The cap applies per order, not per symbol; the commission minimum is charged once per order (see
:class:`backtest.fill_model.FillConfig`).

The STOP_LIMIT trigger-bar rule is conservative because a bar does not say whether its high or
its low came first. A gap through the stop triggers at the open, so the whole bar comes after the
trigger and the LIMIT rule holds as for a resting limit. A stop reached intrabar (buy) is crossed
at ``stop``: a limit at or above it is marketable there and fills at the stop (slippage capped at
the limit). A limit below the stop needs the price to fall back after the trigger, and of the
bar's prices only the close is known to come after it: the order fills at ``limit`` only when
the close is at or through the limit; a low under the limit may have come before the trigger and
fills nothing. Sells mirror this. The trigger is remembered by the broker only: after
:meth:`PaperBroker.restore` a STOP or STOP_LIMIT with nothing filled must trigger again (one that
has partly filled counts as triggered).

Time in force and expiry (``expiry`` = when the order stops working, epoch ns UTC):

============================= =================================================================
order                         expiry
============================= =================================================================
GTC                           never (waits for its symbol's next bar however long it takes)
DAY, equity (XNYS or the      the close of the exchange session it was submitted in, or the next
symbol's calendar)            session's close when submitted outside a session (early closes too)
DAY, crypto (``"24/7"``)      the next UTC midnight after submission
any, ``max_order_age`` set    also at ``submission + max_order_age``, whichever comes first
============================= =================================================================

The symbol's calendar comes from :mod:`backtest.calendar` (``FillConfig.calendars`` overrides it).
On the first bar of *any* symbol whose ``ts_event`` (start) is at or after an order's expiry, the
order does not fill: ``on_bar`` emits ``OrderExpired(ts_event=expiry, ts_init=bar.ts_init)``
before that bar's fills and drops the order. A bar that started before the expiry (the last bar
of the session) may still fill it. A DAY order whose calendar cannot place the submission time
(before 1990 or after 2100 for XNYS) is rejected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from backtest.calendar import CalendarError, calendar_for, next_close
from backtest.fill_model import EPS_SHARES, FillConfig, FillModel
from core.enums import OrderType, Side, TimeInForce
from core.events import Bar, OrderAccepted, OrderCanceled, OrderExpired, OrderFilled, OrderRejected
from core.orders import Order
from core.time import iso

_NO_FILLS: tuple[OrderFilled, ...] = ()
"""Shared empty answer of :meth:`PaperBroker.on_bar` (the hot path allocates nothing)."""

_NEVER = 2**63 - 1
"""Expiry of an order that never expires (later than any valid ns timestamp)."""

_MARKET, _LIMIT, _STOP, _STOP_LIMIT = 0, 1, 2, 3
_KINDS = {OrderType.MARKET: _MARKET, OrderType.LIMIT: _LIMIT, OrderType.STOP: _STOP,
          OrderType.STOP_LIMIT: _STOP_LIMIT}
_TRIGGERED = {_STOP: _MARKET, _STOP_LIMIT: _LIMIT}
"""How a stop order trades once its stop was reached."""

VenueEvent = OrderFilled | OrderExpired
"""What :meth:`PaperBroker.on_bar` emits."""


class _Working:
    """The broker's own copy of one working order (the engine's :class:`Order` is never mutated)."""

    __slots__ = ("client_order_id", "broker_order_id", "symbol", "side", "buy", "kind", "quantity",
                 "limit", "stop", "ts_submitted", "cum", "fills", "expires", "day")

    def __init__(self, order: Order, broker_order_id: str, kind: int, ts: int, expires: int, day: bool) -> None:
        self.client_order_id = order.client_order_id
        self.broker_order_id = broker_order_id
        self.symbol = order.symbol
        self.side = order.side
        self.buy = order.side is Side.BUY
        self.kind = kind  # how it trades now: a triggered STOP as _MARKET, a triggered STOP_LIMIT as _LIMIT
        self.quantity = float(order.quantity)
        self.limit = order.limit_price
        self.stop = order.stop_price
        self.ts_submitted = ts
        self.cum = 0.0  # shares filled so far
        self.fills = 0  # fills emitted so far (fill ids count from 1)
        self.expires = expires  # ns UTC; _NEVER for none
        self.day = day  # the expiry is the DAY session close (else max_order_age)


def _range_fraction(bar: Bar) -> float:
    """``(high - low) / close`` of ``bar`` (0 for a non-positive close or an inverted range)."""
    close = bar.close
    if close > 0.0:
        spread = bar.high - bar.low
        if spread > 0.0:
            return spread / close
    return 0.0


def _positive_finite(value: object) -> bool:
    try:
        return math.isfinite(value) and value > 0  # type: ignore[arg-type, operator]
    except TypeError:
        return False


class PaperBroker:
    """Simulated broker and venue: accepts orders at once, fills them against later bars.

    Implements :class:`core.ports.Broker` (:meth:`submit`, :meth:`cancel`) and
    :class:`core.ports.SimulatedVenue` (:meth:`on_bar`). Deterministic: the same submissions,
    cancels and bars give the same events, fill ids included (no randomness, no wall clock).
    Working orders of a symbol are matched in submission order.

    Parameters
    ----------
    fill : FillConfig or FillModel
        Slippage, commission, participation-cap, whole-share, calendar and order-age settings.
    id_prefix : str
        Prefix of broker order ids ``f"{id_prefix}-{n}"`` (n = 1, 2, ... per accepted order); fill
        ids are ``f"{broker_order_id}-{k}"`` (k = 1, 2, ... per order).

    Raises
    ------
    TypeError
        If ``fill`` is neither a :class:`FillConfig` nor a :class:`FillModel`.
    ValueError
        If ``id_prefix`` is empty.

    Notes
    -----
    :meth:`on_bar` runs for every bar of every symbol. With no working order for the bar's symbol and
    no expiry due it costs one int comparison and one dict lookup and returns a shared empty tuple;
    previous-bar ranges are tracked only when ``slippage_volatility > 0``. The earliest expiry of
    all working orders is kept, so expiries of every symbol are checked with that one comparison.
    ``idle`` (read-only) is True while no order works and no range is tracked: :meth:`on_bar`
    would do nothing, and the engine does not call it.
    """

    __slots__ = ("model", "id_prefix", "idle", "_books", "_orders", "_seen", "_ranges", "_accepted", "_next_expiry",
                 "_calendars")

    def __init__(self, fill: FillConfig | FillModel, id_prefix: str = "paper") -> None:
        if isinstance(fill, FillConfig):
            fill = FillModel(fill)
        elif not isinstance(fill, FillModel):
            raise TypeError(f"fill must be a FillConfig or FillModel, got {type(fill).__name__}")
        if not id_prefix:
            raise ValueError("id_prefix must be a non-empty string")
        self.model = fill
        self.id_prefix = id_prefix
        self._books: dict[str, list[_Working]] = {}  # symbol -> working orders, submission order; never empty
        self._orders: dict[str, _Working] = {}  # client_order_id -> working order, submission order
        self._seen: set[str] = set()  # every client_order_id ever accepted
        self._ranges: dict[str, float] | None = {} if fill.tracks_previous_bar else None
        self._accepted = 0
        # a lower bound of the working orders' expiries: exact after _expire, possibly stale-low
        # after a fill or cancel (the next _expire then finds nothing and recomputes it)
        self._next_expiry = _NEVER
        self._calendars: dict[str, str] = {}  # symbol -> calendar name, resolved once
        # True while on_bar would do nothing for any bar (no working order, no range to track):
        # the engine then skips the call (see the class docstring)
        self.idle = self._ranges is None

    # --- Broker role -------------------------------------------------------------------------
    def submit(self, order: Order, ts: int) -> list[OrderAccepted | OrderRejected]:
        """Accept ``order`` (it works from bars starting at or after ``ts``) or reject it.

        Parameters
        ----------
        order : Order
            The engine's order; read, never modified.
        ts : int
            Submission time, epoch ns UTC; also the events' ``ts_event`` and ``ts_init``, and the
            time a DAY order's session (and ``max_order_age``) counts from.

        Returns
        -------
        list
            ``[OrderAccepted(client_order_id, broker_order_id=f"{id_prefix}-{n}")]``, or
            ``[OrderRejected(client_order_id, reason)]`` when the quantity is not a positive finite
            number of shares, a LIMIT lacks ``limit_price``, a STOP lacks ``stop_price``, a
            STOP_LIMIT lacks either, a given price is not a positive finite USD amount, the order
            type is unknown, the ``client_order_id`` was accepted before (rejected ids may be reused), or a DAY order's
            calendar has no session close after ``ts``.
        """
        reason = self._invalid(order)
        expires, day = _NEVER, False
        if reason is None:
            if order.time_in_force is TimeInForce.DAY:
                try:
                    expires, day = next_close(self._calendar(order.symbol), ts), True
                except CalendarError as exc:
                    reason = f"cannot place a day order: {exc}"
            age = self.model.max_order_age_ns
            if age is not None and ts + age < expires:
                expires, day = ts + age, False
        if reason is not None:
            return [OrderRejected(client_order_id=order.client_order_id, reason=reason, ts_event=ts, ts_init=ts)]
        self._accepted += 1
        working = _Working(order, f"{self.id_prefix}-{self._accepted}", _KINDS[order.order_type], ts, expires, day)
        self._seen.add(working.client_order_id)
        self._orders[working.client_order_id] = working
        self.idle = False
        book = self._books.get(working.symbol)
        if book is None:
            self._books[working.symbol] = [working]
        else:
            book.append(working)
        if expires < self._next_expiry:
            self._next_expiry = expires
        return [OrderAccepted(client_order_id=working.client_order_id, broker_order_id=working.broker_order_id,
                              ts_event=ts, ts_init=ts)]

    def restore(self, order: Order, restart_ts: int) -> None:
        """Work ``order`` again after a restart (live paper trading), as it stood when persisted.

        The remainder (``quantity - filled_quantity``) works from the order's original submission
        time (``ts_created``; DAY expiry counts from it). Fills after a restart get ids
        ``f"{broker_order_id}-r{restart_ts}-{k}"``, so they can never collide with fill ids stored
        before the restart (the store ignores a repeated fill id). A STOP or STOP_LIMIT that has
        partly filled was triggered and works as a market or limit order; one with nothing filled
        waits for its stop again. Unlike :meth:`submit` nothing is answered: the engine already
        knows the order.
        """
        if order.client_order_id in self._orders or not order.is_open:
            return
        ts = order.ts_created
        expires, day = _NEVER, False
        if order.time_in_force is TimeInForce.DAY:
            try:
                expires, day = next_close(self._calendar(order.symbol), ts), True
            except CalendarError:
                expires = ts  # cannot place it: it expires on the next bar
        age = self.model.max_order_age_ns
        if age is not None and ts + age < expires:
            expires, day = ts + age, False
        broker_id = order.broker_order_id or f"{self.id_prefix}-restored-{order.client_order_id}"
        working = _Working(order, f"{broker_id}-r{restart_ts}", _KINDS[order.order_type], ts, expires, day)
        working.cum = float(order.filled_quantity)
        if working.cum > 0.0:  # only a triggered stop fills
            working.kind = _TRIGGERED.get(working.kind, working.kind)
        self._seen.add(working.client_order_id)
        self._orders[working.client_order_id] = working
        self.idle = False
        self._books.setdefault(working.symbol, []).append(working)
        if expires < self._next_expiry:
            self._next_expiry = expires

    def cancel(self, order: Order, ts: int) -> list[OrderCanceled]:
        """Cancel the working remainder of ``order``.

        Returns
        -------
        list
            ``[OrderCanceled(client_order_id, reason="canceled", ts_event=ts, ts_init=ts)]`` if it
            was working, else ``[]`` (unknown, already filled, expired or canceled).
        """
        working = self._orders.pop(order.client_order_id, None)
        if working is None:
            return []
        book = self._books[working.symbol]
        book.remove(working)
        if not book:
            del self._books[working.symbol]
        self._update_idle()
        return [OrderCanceled(client_order_id=working.client_order_id, reason="canceled", ts_event=ts, ts_init=ts)]

    # --- SimulatedVenue role -----------------------------------------------------------------
    def on_bar(self, bar: Bar) -> Sequence[VenueEvent]:
        """Expire what is due, then fill working orders of ``bar.symbol`` submitted at or before
        ``bar.ts_event``.

        Parameters
        ----------
        bar : Bar
            A bar that passed the engine's gate (:func:`core.bars.bar_problem`); bars arrive in
            release order.

        Returns
        -------
        Sequence of OrderFilled or OrderExpired
            First an :class:`OrderExpired` (``ts_event`` = the expiry, ``ts_init`` = the bar's) for
            every order of any symbol whose expiry is at or before ``bar.ts_event``, by expiry then
            submission; then one :class:`OrderFilled` per order of ``bar.symbol`` that traded on
            this bar, in submission order (``ts_event`` / ``ts_init`` of the bar). A shared empty
            tuple when nothing happened. Filled and expired orders stop working.
        """
        if bar.ts_event >= self._next_expiry:
            return self._expire_then_match(bar)
        book = self._books.get(bar.symbol)
        if book is None:
            ranges = self._ranges
            if ranges is not None:  # inlined _range_fraction: this runs for every bar
                close = bar.close
                spread = bar.high - bar.low
                ranges[bar.symbol] = spread / close if close > 0.0 and spread > 0.0 else 0.0
            return _NO_FILLS
        return self._match(book, bar)

    # --- queries -----------------------------------------------------------------------------
    def open_orders(self) -> list[str]:
        """Return the client_order_ids of the working orders, in submission order."""
        return list(self._orders)

    # --- internals ---------------------------------------------------------------------------
    def _update_idle(self) -> None:
        self.idle = not self._orders and self._ranges is None

    def _calendar(self, symbol: str) -> str:
        name = self._calendars.get(symbol)
        if name is None:
            name = self._calendars[symbol] = calendar_for(symbol, self.model.config.calendars)
        return name

    def _invalid(self, order: Order) -> str | None:
        if order.client_order_id in self._seen:
            return f"duplicate client_order_id {order.client_order_id!r}"
        quantity = order.quantity
        if not _positive_finite(quantity):
            return f"quantity must be a positive finite number of shares, got {quantity!r}"
        kind = _KINDS.get(order.order_type)
        if kind is None:
            return f"unsupported order type {order.order_type!r}"
        if kind == _LIMIT and order.limit_price is None:
            return "limit order requires limit_price"
        if kind == _STOP and order.stop_price is None:
            return "stop order requires stop_price"
        if kind == _STOP_LIMIT:
            missing = [name for name, price in (("stop_price", order.stop_price), ("limit_price", order.limit_price))
                       if price is None]
            if missing:
                return f"stop_limit order requires stop_price and limit_price, {' and '.join(missing)} missing"
        for name, price in (("limit_price", order.limit_price), ("stop_price", order.stop_price)):
            if price is not None and not _positive_finite(price):
                return f"{name} must be a positive finite USD price, got {price!r}"
        return None

    def _expire_then_match(self, bar: Bar) -> Sequence[VenueEvent]:
        expired = self._expire(bar.ts_event, bar.ts_init)
        book = self._books.get(bar.symbol)
        if book is None:
            if self._ranges is not None:
                self._ranges[bar.symbol] = _range_fraction(bar)
            return expired if expired else _NO_FILLS
        fills = self._match(book, bar)
        if not expired:
            return fills
        events: list[VenueEvent] = list(expired)
        events.extend(fills)
        return events

    def _expire(self, ts: int, ts_init: int) -> list[OrderExpired]:
        """Drop every working order whose expiry is at or before ``ts``; recompute the next expiry."""
        due = [w for w in self._orders.values() if w.expires <= ts]
        due.sort(key=lambda w: w.expires)  # stable: submission order among equal expiries
        orders, books = self._orders, self._books
        events = []
        for w in due:
            del orders[w.client_order_id]
            book = books[w.symbol]
            book.remove(w)
            if not book:
                del books[w.symbol]
            if w.day:
                reason = f"day order expired at {iso(w.expires)}"
            else:
                reason = (f"order not filled within max_order_age {self.model.config.max_order_age} "
                          f"(expired at {iso(w.expires)})")
            events.append(OrderExpired(client_order_id=w.client_order_id, reason=reason, ts_event=w.expires,
                                       ts_init=ts_init))
        self._next_expiry = min((w.expires for w in orders.values()), default=_NEVER)
        self._update_idle()
        return events

    def _match(self, book: list[_Working], bar: Bar) -> Sequence[OrderFilled]:
        model = self.model
        ranges = self._ranges
        symbol = bar.symbol
        prev_range = 0.0
        if ranges is not None:
            prev_range = ranges.get(symbol, 0.0)
            ranges[symbol] = _range_fraction(bar)
        ts_event = bar.ts_event
        fills: list[OrderFilled] | None = None
        done = False
        for w in book:
            if w.ts_submitted > ts_event:
                continue  # the bar started before the decision: using it would look ahead
            priced = self._price(w, bar, prev_range)
            if priced is None:
                continue
            price, reference = priced
            before = w.cum
            leaves = w.quantity - before
            quantity = model.fill_quantity(leaves, bar.volume)
            if quantity <= 0.0:
                continue
            if quantity >= leaves - EPS_SHARES:
                quantity = leaves
                w.cum = w.quantity  # exact: the engine sees the order as complete
                done = True
            else:
                w.cum += quantity
            w.fills += 1
            fill = OrderFilled(client_order_id=w.client_order_id, fill_id=f"{w.broker_order_id}-{w.fills}",
                               symbol=symbol, side=w.side, quantity=quantity, price=price, cum_quantity=w.cum,
                               commission=model.commission(quantity, price, before),
                               slippage=quantity * abs(price - reference), ts_event=ts_event,
                               ts_init=bar.ts_init)
            if fills is None:
                fills = [fill]
            else:
                fills.append(fill)
        if done:
            orders = self._orders
            kept = []
            for w in book:
                if w.cum < w.quantity:
                    kept.append(w)
                else:
                    del orders[w.client_order_id]
            if kept:
                self._books[symbol] = kept
            else:
                del self._books[symbol]
            self._update_idle()
        return fills if fills is not None else _NO_FILLS

    def _price(self, w: _Working, bar: Bar, prev_range: float) -> tuple[float, float] | None:
        """``(fill price after slippage, reference price before it)`` of ``w`` on ``bar``, or None
        if the bar does not reach the order (rules: the module docstring's table)."""
        kind = w.kind
        if kind == _MARKET:
            return self.model.slipped_price(w.side, bar.open, prev_range), bar.open
        if kind == _LIMIT:
            return self._limit_price(w, bar, prev_range)
        if kind == _STOP:
            return self._stop_price(w, bar, prev_range)
        return self._stop_limit_price(w, bar, prev_range)

    def _limit_price(self, w: _Working, bar: Bar, prev_range: float) -> tuple[float, float] | None:
        limit = w.limit
        assert limit is not None  # checked by submit
        if w.buy:
            if bar.open <= limit:
                return self.model.slipped_price(w.side, bar.open, prev_range, limit), bar.open
            if bar.low <= limit:
                return limit, limit  # touched intrabar: filled at the limit, no better, no worse
            return None
        if bar.open >= limit:
            return self.model.slipped_price(w.side, bar.open, prev_range, limit), bar.open
        if bar.high >= limit:
            return limit, limit
        return None

    def _stop_price(self, w: _Working, bar: Bar, prev_range: float) -> tuple[float, float] | None:
        stop = w.stop
        assert stop is not None  # checked by submit
        if w.buy:
            if bar.open >= stop:
                reference = bar.open  # gapped through the stop
            elif bar.high >= stop:
                reference = stop
            else:
                return None
        elif bar.open <= stop:
            reference = bar.open
        elif bar.low <= stop:
            reference = stop
        else:
            return None
        w.kind = _MARKET  # triggered: a remainder trades at later opens
        return self.model.slipped_price(w.side, reference, prev_range), reference

    def _stop_limit_price(self, w: _Working, bar: Bar, prev_range: float) -> tuple[float, float] | None:
        stop, limit = w.stop, w.limit
        assert stop is not None and limit is not None  # checked by submit
        if w.buy:
            if bar.high < stop:
                return None
            w.kind = _LIMIT  # triggered: a limit order from this bar on
            if bar.open >= stop:
                return self._limit_price(w, bar, prev_range)  # triggered at the open: all the bar is after it
            if limit >= stop:  # marketable where the stop was crossed
                return self.model.slipped_price(w.side, stop, prev_range, limit), stop
            if bar.close <= limit:  # the close is the one price known to follow the trigger
                return limit, limit
            return None
        if bar.low > stop:
            return None
        w.kind = _LIMIT
        if bar.open <= stop:
            return self._limit_price(w, bar, prev_range)
        if limit <= stop:
            return self.model.slipped_price(w.side, stop, prev_range, limit), stop
        if bar.close >= limit:
            return limit, limit
        return None


__all__ = ["PaperBroker", "VenueEvent"]
