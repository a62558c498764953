"""PaperBroker: the simulated broker shared by replay and live paper trading.

It implements :class:`core.ports.Broker`. ``submit`` answers at once (accepted or rejected);
``on_bar`` fills working orders against bars that *start* at or after the order's submission time, so
a decision taken at a bar's close can only trade from the next bar's open (no look-ahead, also with
several symbols whose bars share a timestamp). Prices and fees come from :class:`FillModel`.

Fill rules against a bar (``open``/``high``/``low`` USD), before slippage and the participation cap:

========== ====================================== ===========================================
type        buy                                    sell
========== ====================================== ===========================================
MARKET      ``open``                               ``open``
LIMIT       ``open`` if open <= limit, else        ``open`` if open >= limit, else ``limit``
            ``limit`` if low <= limit, else none   if high >= limit, else none
STOP        ``open`` if open >= stop (gap), else   ``open`` if open <= stop (gap), else
            ``stop`` if high >= stop, else none    ``stop`` if low <= stop, else none
========== ====================================== ===========================================

Slippage is always adverse; for a LIMIT order it never makes the price worse than the limit. A
triggered STOP becomes a market order: a remainder left by the participation cap fills at later
bars' opens. A LIMIT remainder stays a limit order. The cap applies per order, not per symbol.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from backtest.fill_model import EPS_SHARES, FillConfig, FillModel
from core.enums import OrderType, Side
from core.events import Bar, OrderAccepted, OrderCanceled, OrderFilled, OrderRejected
from core.orders import Order

_NO_FILLS: tuple[OrderFilled, ...] = ()
"""Shared empty answer of :meth:`PaperBroker.on_bar` (the hot path allocates nothing)."""

_MARKET, _LIMIT, _STOP = 0, 1, 2
_KINDS = {OrderType.MARKET: _MARKET, OrderType.LIMIT: _LIMIT, OrderType.STOP: _STOP}


class _Working:
    """The broker's own copy of one working order (the engine's :class:`Order` is never mutated)."""

    __slots__ = ("client_order_id", "broker_order_id", "symbol", "side", "buy", "kind", "quantity",
                 "limit", "stop", "ts_submitted", "cum", "fills", "triggered")

    def __init__(self, order: Order, broker_order_id: str, kind: int, ts: int) -> None:
        self.client_order_id = order.client_order_id
        self.broker_order_id = broker_order_id
        self.symbol = order.symbol
        self.side = order.side
        self.buy = order.side is Side.BUY
        self.kind = kind
        self.quantity = float(order.quantity)
        self.limit = order.limit_price
        self.stop = order.stop_price
        self.ts_submitted = ts
        self.cum = 0.0  # shares filled so far
        self.fills = 0  # fills emitted so far (fill ids count from 1)
        self.triggered = False  # a STOP whose stop was reached now trades as a market order


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
    """Simulated broker: accepts orders at once, fills them against later bars.

    Deterministic: the same submissions, cancels and bars give the same events (no randomness, no
    wall clock). Working orders of a symbol are matched in submission order.

    Parameters
    ----------
    fill : FillConfig or FillModel
        Slippage, commission and participation-cap settings.
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
    :meth:`on_bar` runs for every bar of every symbol. With no working order for the bar's symbol it
    costs one dict lookup and returns a shared empty tuple; previous-bar ranges are tracked only when
    ``slippage_volatility > 0``.
    """

    __slots__ = ("model", "id_prefix", "_books", "_orders", "_seen", "_ranges", "_accepted")

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

    # --- Broker protocol ---------------------------------------------------------------------
    def submit(self, order: Order, ts: int) -> list[OrderAccepted | OrderRejected]:
        """Accept ``order`` (it works from bars starting at or after ``ts``) or reject it.

        Parameters
        ----------
        order : Order
            The engine's order; read, never modified.
        ts : int
            Submission time, epoch ns UTC; also the events' ``ts_event`` and ``ts_init``.

        Returns
        -------
        list
            ``[OrderAccepted(client_order_id, f"{id_prefix}-{n}", ts, ts)]``, or
            ``[OrderRejected(client_order_id, reason, ts, ts)]`` when the quantity is not a positive
            finite number of shares, a LIMIT lacks ``limit_price``, a STOP lacks ``stop_price``, a
            given price is not a positive finite USD amount, the order type is unknown, or the
            ``client_order_id`` was accepted before (rejected ids may be reused).
        """
        reason = self._invalid(order)
        if reason is not None:
            return [OrderRejected(order.client_order_id, reason, ts, ts)]
        self._accepted += 1
        working = _Working(order, f"{self.id_prefix}-{self._accepted}", _KINDS[order.order_type], ts)
        self._seen.add(working.client_order_id)
        self._orders[working.client_order_id] = working
        book = self._books.get(working.symbol)
        if book is None:
            self._books[working.symbol] = [working]
        else:
            book.append(working)
        return [OrderAccepted(working.client_order_id, working.broker_order_id, ts, ts)]

    def cancel(self, order: Order, ts: int) -> list[OrderCanceled]:
        """Cancel the working remainder of ``order``.

        Returns
        -------
        list
            ``[OrderCanceled(client_order_id, "canceled", ts, ts)]`` if it was working, else ``[]``
            (unknown, already filled or already canceled).
        """
        working = self._orders.pop(order.client_order_id, None)
        if working is None:
            return []
        book = self._books[working.symbol]
        book.remove(working)
        if not book:
            del self._books[working.symbol]
        return [OrderCanceled(working.client_order_id, "canceled", ts, ts)]

    def on_bar(self, bar: Bar) -> Sequence[OrderFilled]:
        """Fill working orders of ``bar.symbol`` submitted at or before ``bar.ts_event``.

        Returns
        -------
        Sequence of OrderFilled
            One fill per order that traded on this bar, in submission order (``ts_event`` /
            ``ts_init`` of the bar); a shared empty tuple when nothing filled. Filled orders stop
            working.
        """
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
        for name, price in (("limit_price", order.limit_price), ("stop_price", order.stop_price)):
            if price is not None and not _positive_finite(price):
                return f"{name} must be a positive finite USD price, got {price!r}"
        return None

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
            price = self._price(w, bar, prev_range)
            if price is None:
                continue
            leaves = w.quantity - w.cum
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
            fill = OrderFilled(w.client_order_id, f"{w.broker_order_id}-{w.fills}", symbol, w.side, quantity,
                               price, w.cum, model.commission(quantity, price), ts_event, bar.ts_init)
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
        return fills if fills is not None else _NO_FILLS

    def _price(self, w: _Working, bar: Bar, prev_range: float) -> float | None:
        """Fill price of ``w`` on ``bar`` after slippage, or None if the bar does not reach it."""
        model = self.model
        kind = w.kind
        if kind == _MARKET or w.triggered:
            return model.slipped_price(w.side, bar.open, prev_range)
        if kind == _LIMIT:
            limit = w.limit
            if w.buy:
                if bar.open <= limit:
                    return model.slipped_price(w.side, bar.open, prev_range, limit)
                if bar.low <= limit:
                    return limit  # touched intrabar: filled at the limit, no better, no worse
                return None
            if bar.open >= limit:
                return model.slipped_price(w.side, bar.open, prev_range, limit)
            if bar.high >= limit:
                return limit
            return None
        stop = w.stop
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
        w.triggered = True
        return model.slipped_price(w.side, reference, prev_range)


__all__ = ["PaperBroker"]
