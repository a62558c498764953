"""Pure mapping between tradingd orders and alpaca-py's order models (no I/O).

* :func:`order_request` turns a :class:`core.orders.Order` into the alpaca-py request that
  ``TradingClient.submit_order`` sends, always with our ``client_order_id`` (Alpaca enforces its
  uniqueness, which is what makes a lookup-then-resubmit safe).
* :class:`FillTracker` turns Alpaca's order snapshots (REST replies, lookups, trade_updates,
  reconciliation) into core events. Alpaca reports *cumulative* ``filled_qty`` and
  ``filled_avg_price``; the tracker remembers the last cumulative pair per order and emits a fill
  only for the new increment, each acceptance and terminal event only once. Duplicated,
  reordered or stale snapshots therefore change nothing.

Arithmetic on Alpaca's decimal strings is done in :class:`decimal.Decimal`, so the price of an
increment, ``(cum * avg - last_cum * last_avg) / (cum - last_cum)``, is exact (the VWAP identity:
the total cost of the order so far minus the cost already booked, over the new shares).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.events import OrderAccepted, OrderCanceled, OrderExpired, OrderFilled, OrderRejected
from core.orders import Order

__all__ = ["FillTracker", "OrderEvent", "MAX_CLIENT_ORDER_ID", "order_request", "to_ns"]

OrderEvent = OrderAccepted | OrderFilled | OrderCanceled | OrderExpired | OrderRejected
"""What the tracker emits."""

MAX_CLIENT_ORDER_ID = 128
"""Alpaca's limit on ``client_order_id`` length (characters)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ZERO = Decimal(0)
_EPS = Decimal("1e-12")  # shares: below this a cumulative change is float noise, not a fill
_UNSET = -1  # no timestamp seen yet


def to_ns(moment: datetime) -> int:
    """Epoch ns UTC of ``moment`` (a naive datetime is taken as UTC), exact to the microsecond.

    Examples
    --------
    >>> to_ns(datetime(2024, 1, 2, 14, 30, tzinfo=timezone.utc))
    1704205800000000000
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1_000


def _positive_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def order_request(order: Order, *, crypto: bool = False) -> Any:
    """The alpaca-py request that submits ``order`` (read, never modified).

    Parameters
    ----------
    order : Order
        Quantity in shares (units for crypto), prices USD. MARKET, LIMIT (``limit_price``), STOP
        (``stop_price``) and STOP_LIMIT (both); time in force DAY or GTC.
    crypto : bool
        The account trades crypto: Alpaca accepts only GTC (and IOC) there, and no plain STOP.

    Returns
    -------
    MarketOrderRequest, LimitOrderRequest, StopOrderRequest or StopLimitOrderRequest
        With ``client_order_id=order.client_order_id``, ``qty``, ``side`` and ``time_in_force``.

    Raises
    ------
    ValueError
        When the order cannot be expressed (the message names the ``client_order_id`` and why):
        empty or too long id, empty symbol, quantity not a positive finite number, a missing or
        non-positive price its type needs, DAY or STOP for crypto, an unknown type or time in force.

    Examples
    --------
    >>> from core.events import SubmitOrder
    >>> o = Order(SubmitOrder(client_order_id="c1", strategy_id="s", symbol="SPY", side=Side.BUY,
    ...                       quantity=3.0, order_type=OrderType.LIMIT, limit_price=101.25,
    ...                       ts_event=0, ts_init=0))
    >>> r = order_request(o)
    >>> (type(r).__name__, r.qty, r.limit_price, r.time_in_force.value, r.client_order_id)
    ('LimitOrderRequest', 3.0, 101.25, 'gtc', 'c1')
    """
    from alpaca.trading.enums import OrderSide
    from alpaca.trading.enums import TimeInForce as AlpacaTif
    from alpaca.trading.requests import (LimitOrderRequest, MarketOrderRequest, StopLimitOrderRequest,
                                         StopOrderRequest)

    coid = order.client_order_id
    if not isinstance(coid, str) or not coid:
        raise ValueError(f"order {coid!r}: client_order_id must be a non-empty string")
    if len(coid) > MAX_CLIENT_ORDER_ID:
        raise ValueError(f"order {coid!r}: client_order_id has {len(coid)} characters; Alpaca allows at most "
                         f"{MAX_CLIENT_ORDER_ID}")

    def refuse(why: str) -> ValueError:
        return ValueError(f"order {coid!r}: {why}")

    if not isinstance(order.symbol, str) or not order.symbol:
        raise refuse("symbol must be a non-empty string")
    if not _positive_finite(order.quantity):
        raise refuse(f"quantity {order.quantity!r} is not a positive finite number of shares")
    if order.time_in_force is TimeInForce.GTC:
        tif = AlpacaTif.GTC
    elif order.time_in_force is TimeInForce.DAY:
        if crypto:
            raise refuse("Alpaca crypto orders take time_in_force GTC only, not DAY")
        tif = AlpacaTif.DAY
    else:
        raise refuse(f"time_in_force {order.time_in_force!r} is not DAY or GTC")
    side = OrderSide.BUY if order.side is Side.BUY else OrderSide.SELL
    if order.side not in (Side.BUY, Side.SELL):
        raise refuse(f"side {order.side!r} is not buy or sell")
    common: dict[str, Any] = {"symbol": order.symbol, "qty": float(order.quantity), "side": side,
                              "time_in_force": tif, "client_order_id": coid}
    kind = order.order_type

    def price(name: str) -> float:
        value = getattr(order, name)
        if not _positive_finite(value):
            raise refuse(f"a {kind.value} order needs {name} as a positive finite USD price, got {value!r}")
        return float(value)

    try:
        if kind is OrderType.MARKET:
            return MarketOrderRequest(**common)
        if kind is OrderType.LIMIT:
            return LimitOrderRequest(**common, limit_price=price("limit_price"))
        if kind is OrderType.STOP:
            if crypto:
                raise refuse("Alpaca crypto has no plain stop orders (use stop_limit)")
            return StopOrderRequest(**common, stop_price=price("stop_price"))
        if kind is OrderType.STOP_LIMIT:
            return StopLimitOrderRequest(**common, stop_price=price("stop_price"), limit_price=price("limit_price"))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError: say which order
        if str(exc).startswith(f"order {coid!r}"):
            raise
        raise refuse(f"alpaca-py refused the request: {' '.join(str(exc).split())[:300]}") from exc
    raise refuse(f"order type {kind!r} is not supported")


def _decimal(value: Any) -> Decimal | None:
    """Alpaca's number (a decimal string, sometimes a JSON number) as a Decimal; None if absent."""
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _cum_text(cum: float) -> str:
    """``f"{cum:g}"`` when that names ``cum`` exactly, else its shortest exact repr (``:g`` keeps
    6 digits: two fractional cumulative quantities must never share a fill id)."""
    text = f"{cum:g}"
    return text if float(text) == cum else repr(cum)


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


@dataclass(slots=True)
class _Track:
    """What has been emitted for one client_order_id."""

    symbol: str = ""
    side: Side | None = None
    tif: str = ""
    cum: Decimal = _ZERO  # shares filled so far, as last booked
    cost: Decimal = _ZERO  # USD: cum * avg as last booked
    accepted: bool = False
    terminal: str = ""  # "canceled" | "expired" | "rejected" once emitted
    broker_order_id: str = ""
    status: str = ""  # Alpaca's last status seen
    last_event: int = _UNSET  # ns: events of one order never go back in time
    last_init: int = _UNSET


_TERMINAL_LOCAL = {OrderStatus.CANCELED: "canceled", OrderStatus.EXPIRED: "expired",
                   OrderStatus.REJECTED: "rejected"}


class FillTracker:
    """Per ``client_order_id``: the last cumulative fill booked and which events were emitted.

    Not thread-safe: use it from one thread (the event loop's).

    Examples
    --------
    A partial fill of 3 at 10 then a cumulative 5 at an average of 10.4: the second fill is the
    increment, 2 shares at (5 * 10.4 - 3 * 10) / 2 = 11.

    >>> t = FillTracker()
    >>> t.increment("c1", cum=5, avg=10.4, last_cum=3, last_avg=10)
    (2.0, 11.0)
    """

    def __init__(self) -> None:
        self._tracks: dict[str, _Track] = {}

    # --- state ---------------------------------------------------------------------------------
    def seed(self, order: Order) -> None:
        """Start from a local order (a restored one after a restart, or one about to be submitted):
        its filled quantity and average price count as booked, its status says whether the
        acceptance or a terminal event was already seen."""
        track = _Track(symbol=order.symbol, side=order.side, tif=order.time_in_force.value)
        filled = _decimal(order.filled_quantity) or _ZERO
        if filled > 0:
            track.cum = filled
            track.cost = filled * (_decimal(order.avg_fill_price) or _ZERO)
        track.broker_order_id = order.broker_order_id or ""
        track.accepted = order.status not in (OrderStatus.INITIALIZED, OrderStatus.SUBMITTED,
                                              OrderStatus.REJECTED) or bool(track.broker_order_id)
        track.terminal = _TERMINAL_LOCAL.get(order.status, "")
        if order.status is OrderStatus.FILLED:
            track.status = "filled"
        before = self._tracks.get(order.client_order_id)
        if before is not None:  # a reused (rejected) id: its events still never go back in time
            track.last_event, track.last_init = before.last_event, before.last_init
        self._tracks[order.client_order_id] = track

    def stamp(self, client_order_id: str, ts_event: int, ts_init: int) -> tuple[int, int]:
        """``(ts_event, ts_init)`` for an event of ``client_order_id`` made outside the tracker (a
        local rejection), raised to the order's latest so its events never go back in time."""
        track = self._tracks.get(client_order_id)
        if track is None:
            return ts_event, ts_init
        track.last_event = max(ts_event, track.last_event)
        track.last_init = max(ts_init, track.last_init)
        return track.last_event, track.last_init

    def known(self, client_order_id: str) -> bool:
        """True once the id was seeded or seen in a snapshot."""
        return client_order_id in self._tracks

    def broker_order_id(self, client_order_id: str) -> str:
        """Alpaca's order id (UUID text) of ``client_order_id``; "" while unknown."""
        track = self._tracks.get(client_order_id)
        return track.broker_order_id if track is not None else ""

    def is_done(self, client_order_id: str) -> bool:
        """True when the order can change no more except by a late fill: a terminal event was
        emitted or Alpaca reported it filled."""
        track = self._tracks.get(client_order_id)
        return track is not None and (bool(track.terminal) or track.status in ("filled", "replaced"))

    @staticmethod
    def increment(client_order_id: str, *, cum: float, avg: float, last_cum: float,
                  last_avg: float) -> tuple[float, float]:
        """The new shares and their price when the cumulative fill moves from ``last_cum`` shares
        at ``last_avg`` USD to ``cum`` at ``avg``: ``(cum - last_cum, (cum*avg - last_cum*last_avg)
        / (cum - last_cum))``, computed in decimal.

        Raises
        ------
        ValueError
            If ``cum`` is not above ``last_cum`` (no new shares for ``client_order_id``).
        """
        c, a, lc, la = (Decimal(str(x)) for x in (cum, avg, last_cum, last_avg))
        if c - lc <= _EPS:
            raise ValueError(f"order {client_order_id!r}: cumulative {cum} is not above {last_cum}")
        return float(c - lc), float((c * a - lc * la) / (c - lc))

    # --- snapshots -----------------------------------------------------------------------------
    def from_snapshot(self, o: Any, *, ts_init: int) -> list[OrderEvent]:
        """Events an Alpaca order snapshot adds to what was emitted before, in order: acceptance,
        the new fill increment, then the terminal event; each only once.

        Parameters
        ----------
        o : alpaca.trading.models.Order
            A REST reply, a lookup, a trade update's order or a reconciliation row.
        ts_init : int
            When tradingd received it, epoch ns UTC.

        Returns
        -------
        list
            ``OrderAccepted(broker_order_id=str(o.id))`` for any status but ``rejected`` (the order
            exists at Alpaca, even while ``accepted``/``pending_new``); ``OrderFilled`` for the new
            cumulative increment only (``fill_id=f"alpaca-{o.id}-{cum:g}"``, commission 0); then
            ``OrderCanceled`` (canceled; replaced, naming the new order), ``OrderExpired`` (expired;
            done_for_day of a DAY order) or ``OrderRejected`` (rejected). A snapshot whose
            cumulative quantity is below what was booked is stale and emits nothing.
        """
        return self._events(o, _decimal(o.filled_qty), _decimal(o.filled_avg_price), None, ts_init)

    def from_trade_update(self, u: Any, *, ts_init: int) -> list[OrderEvent]:
        """Events of a ``trade_updates`` message: those of its order snapshot (which carries the
        cumulative ``filled_qty``/``filled_avg_price``). A fill or partial_fill whose order lacks
        ``filled_qty`` is booked as the last cumulative quantity plus ``u.qty`` at ``u.price``.

        Parameters
        ----------
        u : alpaca.trading.models.TradeUpdate
            The stream message.
        ts_init : int
            When tradingd received it, epoch ns UTC.
        """
        o = u.order
        cum = _decimal(o.filled_qty)
        event = _enum_value(u.event)
        if cum is None and event in ("fill", "partial_fill"):
            qty, price = _decimal(u.qty), _decimal(u.price)
            if qty is not None and price is not None and qty > 0:
                track = self._tracks.get(o.client_order_id)
                last = track.cum if track is not None else _ZERO
                return self._events(o, last + qty, None, price, ts_init)
        return self._events(o, cum, _decimal(o.filled_avg_price), None, ts_init)

    def _events(self, o: Any, cum: Decimal | None, avg: Decimal | None, increment_price: Decimal | None,
                ts_init: int) -> list[OrderEvent]:
        coid = str(o.client_order_id)
        track = self._tracks.get(coid)
        if track is None:
            track = self._tracks[coid] = _Track()
        cum = cum if cum is not None else _ZERO
        if cum < track.cum - _EPS:
            return []  # an older snapshot than one already booked: duplicated or reordered
        status = _enum_value(o.status)
        broker_id = str(o.id)
        symbol = self._symbol(track, o)
        side = self._side(track, o)
        tif = track.tif or _enum_value(getattr(o, "time_in_force", ""))
        init = max(ts_init, track.last_init)
        events: list[OrderEvent] = []

        def stamp(moment: datetime | None) -> int:
            ts = to_ns(moment) if moment is not None else (track.last_event if track.last_event != _UNSET else init)
            return max(ts, track.last_event)

        if status != "rejected" or cum > 0:
            if not track.accepted:
                ts = stamp(o.submitted_at or o.created_at)
                events.append(OrderAccepted(client_order_id=coid, broker_order_id=broker_id, ts_event=ts, ts_init=init))
                track.accepted = True
                track.last_event = ts
        track.broker_order_id = broker_id
        if cum - track.cum > _EPS:
            shares = cum - track.cum
            if increment_price is not None:
                cost = track.cost + shares * increment_price
            elif avg is not None and avg > 0:
                cost = cum * avg
            else:
                cost = None  # a fill without a price cannot be booked: wait for a snapshot with one
            price = (cost - track.cost) / shares if cost is not None else _ZERO
            if cost is not None and not price > 0 and avg is not None and avg > 0:
                price = avg  # rounding of Alpaca's average made the increment's price absurd
            if cost is not None and price > 0:
                ts = stamp(o.filled_at if status == "filled" and o.filled_at else o.updated_at)
                cum_f = float(cum)
                events.append(OrderFilled(client_order_id=coid, fill_id=f"alpaca-{broker_id}-{_cum_text(cum_f)}",
                                          symbol=symbol, side=side if side is not None else Side.BUY,
                                          quantity=float(shares), price=float(price), cum_quantity=cum_f,
                                          commission=0.0, ts_event=ts, ts_init=init))
                track.cum, track.cost, track.last_event = cum, cost, ts
        terminal = self._terminal(o, status, tif, coid, stamp, init)
        if terminal is not None and not track.terminal:
            events.append(terminal)
            track.terminal = status if status in ("canceled", "expired", "rejected") else (
                "expired" if status == "done_for_day" else "canceled")
            track.last_event = terminal.ts_event
        if status:
            track.status = status
        if events:
            track.last_init = init
        return events

    @staticmethod
    def _terminal(o: Any, status: str, tif: str, coid: str, stamp: Any,
                  init: int) -> OrderCanceled | OrderExpired | OrderRejected | None:
        if status == "canceled":
            return OrderCanceled(client_order_id=coid, reason="canceled at Alpaca",
                                 ts_event=stamp(o.canceled_at or o.updated_at), ts_init=init)
        if status == "replaced":
            return OrderCanceled(client_order_id=coid, reason=f"replaced outside tradingd by {o.replaced_by}",
                                 ts_event=stamp(o.replaced_at or o.updated_at), ts_init=init)
        if status == "expired" or (status == "done_for_day" and tif == "day"):
            # done_for_day of a GTC order is not final: Alpaca works it again the next session
            return OrderExpired(client_order_id=coid, reason=f"{status} at Alpaca",
                                ts_event=stamp(o.expired_at or o.updated_at), ts_init=init)
        if status == "rejected":
            return OrderRejected(client_order_id=coid, reason="rejected by Alpaca after submission",
                                 ts_event=stamp(o.failed_at or o.updated_at), ts_init=init)
        return None

    @staticmethod
    def _symbol(track: _Track, o: Any) -> str:
        reported = o.symbol or ""
        if track.symbol and (not reported or reported.replace("/", "") == track.symbol.replace("/", "")):
            return track.symbol  # "BTCUSD" and "BTC/USD" name the same crypto pair
        if not track.symbol:
            track.symbol = reported
        return reported

    @staticmethod
    def _side(track: _Track, o: Any) -> Side | None:
        reported = _enum_value(o.side)
        side = Side.BUY if reported == "buy" else Side.SELL if reported == "sell" else track.side
        if track.side is None:
            track.side = side
        return side
