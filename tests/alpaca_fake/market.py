"""The fake's market and venue: synthetic minute bars, history aggregation, matching, account state.

:class:`Market` is a deterministic per-symbol 1-minute random walk with a publication cursor: bars
before the cursor are public (history, last price), :meth:`Market.publish` releases the next minute of
every symbol. :class:`Venue` holds orders, positions, cash, executions and FILL activities and matches
working orders against each newly published bar. It emits trade-update payloads through a callback;
delivery (ordering faults, websockets) is the server's business. Neither class locks: the server
serialises calls with its own lock.

Matching rules (prices USD, quantities in shares or crypto units)

============  =====================================================  ==================================
order         fills when (on a bar published after submission)        at
============  =====================================================  ==================================
market        ``fill_mode="immediate"``: at submission                last published close
market        ``fill_mode="next_bar"`` (or released by hold_fills)    the bar's open
buy limit     low <= limit                                            min(open, limit)
sell limit    high >= limit                                           max(open, limit)
buy stop      high >= stop                                            max(open, stop)
sell stop     low <= stop                                             min(open, stop)
stop_limit    triggered as a stop; on the trigger bar it fills only   the stop's price, if within the
              if the stop's fill price is within the limit; later     limit; later as a limit
              bars work it as a limit
ioc           evaluated once (at submission for market / marketable   as above; the rest is canceled
              limits in immediate mode, else on the next bar)
============  =====================================================  ==================================

Short selling of equities is allowed (a sell beyond the position opens a short); crypto cannot be
shorted (403 ``insufficient qty available``). Buys need buying power = cash minus what working buys
reserve. Commission is zero.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from tests.alpaca_fake.faults import Faults
from tests.alpaca_fake.protocol import (
    NEW_YORK,
    UTC,
    Bar,
    OrderRecord,
    error,
    invalid,
    iso,
    num,
    position_json,
)

MINUTE = timedelta(minutes=1)
_TIMEFRAME = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D)$")


def parse_timeframe(text: str) -> tuple[int, str]:
    """Split an Alpaca timeframe (``1Min``, ``15Min``, ``1Hour``, ``1Day``) into (amount, unit).

    Raises
    ------
    ValueError
        For any other timeframe (weeks and months are not served by the fake).

    Examples
    --------
    >>> parse_timeframe("15Min"), parse_timeframe("1Day")
    ((15, 'Min'), (1, 'Day'))
    """
    m = _TIMEFRAME.match(text or "")
    if m is None:
        raise ValueError(f"invalid timeframe {text!r}: expected NMin (1-59), NHour (1-23) or 1Day")
    amount, unit = int(m.group(1)), {"T": "Min", "H": "Hour", "D": "Day"}.get(m.group(2), m.group(2))
    limits = {"Min": 59, "Hour": 23, "Day": 1}
    if not 1 <= amount <= limits[unit]:
        raise ValueError(f"invalid timeframe {text!r}: {unit} amount must be 1-{limits[unit]}")
    return amount, unit


def bucket_start(t: datetime, amount: int, unit: str) -> datetime:
    """Start of the ``amount``/``unit`` bar holding minute ``t``: UTC-aligned minutes and hours; days
    start at midnight New York (Alpaca's daily bar stamp).

    Examples
    --------
    >>> t = datetime(2024, 1, 2, 14, 47, tzinfo=UTC)
    >>> bucket_start(t, 15, "Min").isoformat(), bucket_start(t, 1, "Day").isoformat()
    ('2024-01-02T14:45:00+00:00', '2024-01-02T05:00:00+00:00')
    """
    if unit == "Day":
        day = t.astimezone(NEW_YORK).date()
        return datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).astimezone(UTC)
    step = amount * (60 if unit == "Min" else 3600)
    epoch = int(t.timestamp())
    return datetime.fromtimestamp(epoch - epoch % step, UTC)


def aggregate(symbol: str, t: datetime, minutes: list[Bar]) -> Bar:
    """One bar from consecutive minute bars: first open, max high, min low, last close, summed volume and
    trade count, volume-weighted ``vw``."""
    volume = sum(b.v for b in minutes)
    vw = sum(b.vw * b.v for b in minutes) / volume if volume else minutes[-1].c
    return Bar(symbol, t, minutes[0].o, max(b.h for b in minutes), min(b.l for b in minutes), minutes[-1].c,
               round(volume, 6), sum(b.n for b in minutes), round(vw, 4))


class Market:
    """Deterministic minute bars of every symbol and the publication cursor.

    Parameters
    ----------
    symbols, crypto_symbols : iterable of str
        Equity and crypto symbols (crypto as ``BTC/USD``).
    start : datetime
        UTC start of the first bar :meth:`publish` releases; ``history_minutes`` bars before it are
        public from the outset.
    price : float
        Opening price of every symbol's first bar, USD.
    seed : int
        Seed of the walk; the bars of a symbol depend only on (seed, symbol).
    history_minutes : int
        Bars published before ``start`` (>= 1).
    """

    def __init__(self, symbols: Iterable[str], crypto_symbols: Iterable[str], *, start: datetime, price: float,
                 seed: int, history_minutes: int) -> None:
        self.equities = tuple(symbols)
        self.cryptos = tuple(crypto_symbols)
        self.symbols = self.equities + self.cryptos
        self.origin = start - history_minutes * MINUTE
        self.published = history_minutes
        self._price = price
        self._rng = {s: random.Random(f"tradingd-fake:{seed}:{s}") for s in self.symbols}
        self._series: dict[str, list[Bar]] = {s: [] for s in self.symbols}

    def asset_class(self, symbol: str) -> str:
        """``crypto`` or ``us_equity``."""
        return "crypto" if symbol in self.cryptos else "us_equity"

    def resolve(self, symbol: str) -> str | None:
        """The listed symbol ``symbol`` names (``BTCUSD`` names ``BTC/USD``), or ``None``."""
        if symbol in self.symbols:
            return symbol
        return next((s for s in self.cryptos if s.replace("/", "") == symbol), None)

    def time_of(self, index: int) -> datetime:
        """Start time of minute ``index`` (0 = the first history bar)."""
        return self.origin + index * MINUTE

    @property
    def now_ts(self) -> datetime:
        """Start time of the last published bar (UTC)."""
        return self.time_of(self.published - 1)

    @property
    def market_time(self) -> datetime:
        """The fake's "now" for the clock: the end of the last published bar."""
        return self.time_of(self.published)

    def bar(self, symbol: str, index: int) -> Bar:
        """Minute bar ``index`` of ``symbol`` (generated on first use, then cached)."""
        series = self._series[symbol]
        while len(series) <= index:
            series.append(self._next_bar(symbol, series[-1].c if series else self._price, len(series)))
        return series[index]

    def _next_bar(self, symbol: str, open_: float, index: int) -> Bar:
        rng = self._rng[symbol]
        close = max(0.01, round(open_ * math.exp(rng.gauss(0.0, 0.001)), 2))
        high = round(max(open_, close) * (1 + abs(rng.gauss(0.0, 0.0005))), 2)
        low = max(0.01, round(min(open_, close) * (1 - abs(rng.gauss(0.0, 0.0005))), 2))
        high, low = max(high, open_, close), min(low, open_, close)
        volume: float = int(rng.lognormvariate(7.0, 0.5)) + 1
        if symbol in self.cryptos:
            volume = round(volume / 1000.0, 6)
        vw = round(min(high, max(low, (high + low + close) / 3)), 4)
        trades = max(1, int(rng.lognormvariate(3.0, 0.5)))
        return Bar(symbol, self.time_of(index), open_, high, low, close, volume, trades, vw)

    def publish(self) -> list[Bar]:
        """Release the next minute bar of every symbol; returns them in symbol order."""
        bars = [self.bar(s, self.published) for s in self.symbols]
        self.published += 1
        return bars

    def last_bar(self, symbol: str) -> Bar:
        """The last published bar of ``symbol``."""
        return self.bar(symbol, self.published - 1)

    def lastday_close(self, symbol: str) -> float:
        """Close of the last bar before the current New York day (the first open when there is none)."""
        midnight = bucket_start(self.now_ts, 1, "Day")
        index = min(self.published - 1, int((midnight - self.origin) / MINUTE) - 1)
        return self.bar(symbol, 0).o if index < 0 else self.bar(symbol, index).c

    def history(self, symbol: str, timeframe: str, start: datetime | None, end: datetime | None) -> list[Bar]:
        """Published bars of ``symbol`` at ``timeframe`` with start <= t <= end, oldest first.

        Raises
        ------
        ValueError
            For a timeframe :func:`parse_timeframe` rejects.
        """
        amount, unit = parse_timeframe(timeframe)
        minute_bars = (amount, unit) == (1, "Min")
        # A bar stamped at or after ``start`` holds only minutes at or after it; a bar stamped at or before
        # ``end`` may hold later minutes, so aggregated queries read up to the cursor and filter at the end.
        first = 0 if start is None else max(0, math.ceil((start - self.origin) / MINUTE))
        last = self.published - 1
        if end is not None and minute_bars:
            last = min(last, math.floor((end - self.origin) / MINUTE))
        minutes = [self.bar(symbol, i) for i in range(first, last + 1)]
        if minute_bars:
            bars = minutes
        else:
            groups: dict[datetime, list[Bar]] = {}
            for b in minutes:
                groups.setdefault(bucket_start(b.t, amount, unit), []).append(b)
            bars = [aggregate(symbol, t, group) for t, group in groups.items()]
        return [b for b in bars if (start is None or b.t >= start) and (end is None or b.t <= end)]


Emit = Callable[[OrderRecord, dict[str, Any]], None]


def _split(qty: float, parts: int) -> list[float]:
    """Quantities of the partial fills of ``qty``: whole shares when ``qty`` is whole, else equal parts.

    Examples
    --------
    >>> _split(10, 3), _split(2, 3), _split(0.5, 2), _split(5, 0)
    ([4.0, 3.0, 3.0], [1.0, 1.0], [0.25, 0.25], [5])
    """
    if parts <= 1:
        return [qty]
    if float(qty).is_integer():
        n = max(1, min(parts, int(qty)))
        base, extra = divmod(int(qty), n)
        return [float(base + (1 if i < extra else 0)) for i in range(n)]
    each = round(qty / parts, 9)
    return [each] * (parts - 1) + [round(qty - each * (parts - 1), 9)]


def _number(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise invalid(f"{key} must be a number, got {value!r}") from None
    if not math.isfinite(out) or out <= 0:
        raise invalid(f"{key} must be > 0, got {value!r}")
    return out


class Venue:
    """Orders, matching and the account of the fake (see the module docstring for the rules).

    Parameters
    ----------
    market : Market
        Prices and bars.
    cash : float
        Opening cash, USD.
    fill_mode : {"immediate", "next_bar"}
        When market orders fill.
    faults : Faults
        Read for ``hold_fills`` and ``partial_fills``.
    emit : callable
        ``emit(order, payload)`` is called for every trade update (payload = the ``data`` of a
        ``trade_updates`` frame).
    clock : callable
        Wall clock for order and fill timestamps (UTC datetimes); the venue makes them strictly increasing.
    """

    def __init__(self, market: Market, *, cash: float, fill_mode: str, faults: Faults, emit: Emit,
                 clock: Callable[[], datetime]) -> None:
        self.market = market
        self.cash = float(cash)
        self.opening_cash = float(cash)
        self.fill_mode = fill_mode
        self.faults = faults
        self._emit = emit
        self._clock = clock
        self._last_ts = datetime.min.replace(tzinfo=UTC)
        self.created_at = clock()
        self.orders: dict[str, OrderRecord] = {}
        self.by_client_id: dict[str, OrderRecord] = {}
        self.positions: dict[str, list[float]] = {}  # symbol -> [signed qty, avg entry price]
        self.executions: list[dict[str, Any]] = []
        self.activities: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------------------ helpers

    def stamp(self) -> datetime:
        """A wall-clock UTC timestamp strictly after every earlier one (so time order is creation order)."""
        now = self._clock()
        self._last_ts = now if now > self._last_ts else self._last_ts + timedelta(microseconds=1)
        return self._last_ts

    def position_qty(self, symbol: str) -> float:
        """Signed position of ``symbol`` (0.0 when flat)."""
        return self.positions.get(symbol, [0.0, 0.0])[0]

    def open_orders(self) -> list[OrderRecord]:
        """Working orders in creation order."""
        return [o for o in self.orders.values() if o.is_open]

    def held_for_sells(self, symbol: str) -> float:
        """Quantity that working sell orders of ``symbol`` would take."""
        return sum(o.remaining or 0.0 for o in self.open_orders() if o.symbol == symbol and o.side == "sell")

    def buying_power(self) -> float:
        """Cash minus what working buy orders reserve (at their limit/stop, else the last price), USD."""
        reserved = 0.0
        for o in self.open_orders():
            if o.side == "buy":
                reserved += o.notional if o.qty is None and o.notional else (o.remaining or 0.0) * self._reference(o)
        return max(0.0, self.cash - reserved)

    def _reference(self, o: OrderRecord) -> float:
        return o.limit_price or o.stop_price or self.market.last_bar(o.symbol).c

    def position_rows(self) -> list[dict[str, Any]]:
        """Every non-zero position as Alpaca's JSON, in symbol order."""
        return [self.position_row(s) for s in sorted(self.positions)]

    def position_row(self, symbol: str) -> dict[str, Any]:
        """Alpaca's JSON of the position in ``symbol`` (which must exist)."""
        qty, avg = self.positions[symbol]
        held = self.held_for_sells(symbol) if qty > 0 else sum(
            o.remaining or 0.0 for o in self.open_orders() if o.symbol == symbol and o.side == "buy")
        return position_json(symbol, self.market.asset_class(symbol), qty, avg, self.market.last_bar(symbol).c,
                             self.market.lastday_close(symbol), min(abs(qty), held))

    def market_values(self) -> tuple[float, float]:
        """(long market value, short market value <= 0), USD, at the last published closes."""
        long_value = short_value = 0.0
        for symbol, (qty, _avg) in self.positions.items():
            value = qty * self.market.last_bar(symbol).c
            if qty > 0:
                long_value += value
            else:
                short_value += value
        return long_value, short_value

    # ------------------------------------------------------------------------------------------ orders

    def submit(self, body: Any, *, external: bool = False, reject: str | None = None) -> dict[str, Any]:
        """Validate and place an order from a ``POST /v2/orders`` body; returns the REST reply (status
        ``accepted``), then emits ``new`` (or ``rejected`` when ``reject`` is given) and any fill.

        Raises
        ------
        ApiError
            400 for a body that is not a JSON object, 422 for a bad field or a duplicate
            ``client_order_id``, 403 for insufficient buying power or crypto qty.
        """
        order = self._validate(body, external=external)
        self._check_funds(order)
        self.orders[order.id] = order
        self.by_client_id[order.client_order_id] = order
        reply = order.to_json()
        if reject is not None:
            self._finish(order, "rejected", "failed_at")
            return reply
        order.status = "new"
        order.updated_at = self.stamp()
        self._event(order, "new")
        if external:
            self._fill(order, self.market.last_bar(order.symbol).c)
        elif not self.faults.hold_fills and self.fill_mode == "immediate":
            self._match_now(order)
        return reply

    def _validate(self, body: Any, *, external: bool) -> OrderRecord:
        if not isinstance(body, dict):
            raise error(400, 40010000, "request body format is invalid")
        raw_symbol = body.get("symbol")
        if not raw_symbol:
            raise invalid("symbol is required")
        symbol = self.market.resolve(str(raw_symbol))
        if symbol is None:
            raise invalid(f'asset "{raw_symbol}" not found')
        side = body.get("side")
        if side not in ("buy", "sell"):
            raise invalid(f"side must be buy or sell, got {side!r}")
        kind = body.get("type", body.get("order_type"))
        if kind not in ("market", "limit", "stop", "stop_limit"):
            raise invalid(f"type must be market, limit, stop or stop_limit (the fake serves no other), got {kind!r}")
        tif = body.get("time_in_force")
        if tif not in ("day", "gtc", "ioc"):
            raise invalid(f"time_in_force must be day, gtc or ioc (the fake serves no other), got {tif!r}")
        if symbol in self.market.cryptos and tif == "day":
            raise invalid("invalid crypto time_in_force: crypto orders take gtc or ioc")
        if body.get("order_class") not in (None, "", "simple"):
            raise invalid(f"order_class {body.get('order_class')!r} is not served by the fake")
        qty, notional = _number(body, "qty"), _number(body, "notional")
        if (qty is None) == (notional is None):
            raise invalid("exactly one of qty or notional is required")
        if notional is not None and kind != "market":
            raise invalid("notional is only allowed for market orders")
        limit_price, stop_price = _number(body, "limit_price"), _number(body, "stop_price")
        if kind in ("limit", "stop_limit") and limit_price is None:
            raise invalid(f"limit_price is required for {kind} orders")
        if kind in ("stop", "stop_limit") and stop_price is None:
            raise invalid(f"stop_price is required for {kind} orders")
        if kind in ("market", "stop") and limit_price is not None:
            raise invalid(f"limit_price must not be given for {kind} orders")
        if kind in ("market", "limit") and stop_price is not None:
            raise invalid(f"stop_price must not be given for {kind} orders")
        client_order_id = body.get("client_order_id") or str(uuid.uuid4())
        if not isinstance(client_order_id, str) or len(client_order_id) > 128:
            raise invalid("client_order_id must be a string of at most 128 characters")
        if client_order_id in self.by_client_id:
            raise invalid("client_order_id must be unique")
        position = self.position_qty(symbol)
        if side == "buy":
            intent = "buy_to_close" if position < 0 else "buy_to_open"
        else:
            intent = "sell_to_close" if position > 0 else "sell_to_open"
        return OrderRecord(
            id=str(uuid.uuid4()), client_order_id=client_order_id, symbol=symbol,
            asset_class=self.market.asset_class(symbol), side=side, type=kind, time_in_force=tif, qty=qty,
            notional=notional, limit_price=limit_price, stop_price=stop_price,
            extended_hours=bool(body.get("extended_hours", False)), position_intent=intent,
            created_at=self.stamp(), external=external)

    def _check_funds(self, o: OrderRecord) -> None:
        position = self.position_qty(o.symbol)
        if o.side == "sell" and o.asset_class == "crypto":
            held = self.held_for_sells(o.symbol)
            available = max(0.0, position - held)
            if (o.qty or 0.0) > available + 1e-12:
                raise error(403, 40310000,
                            f"insufficient qty available for order (requested: {num(o.qty)}, available: "
                            f"{num(available)})", available=num(available), existing_qty=num(position),
                            held_for_orders=num(held), related_orders=[], symbol=o.symbol)
        if o.side == "buy":
            if o.qty is None:
                cost = o.notional or 0.0
            else:
                cost = max(0.0, o.qty - max(0.0, -position)) * self._reference(o)  # covering needs no cash
            power = self.buying_power()
            if cost > power + 1e-9:
                raise error(403, 40310000, "insufficient buying power", buying_power=num(power),
                            cost_basis=num(cost))

    def _match_now(self, o: OrderRecord) -> None:
        """Immediate mode at submission: market orders fill at the last close; IOC limits fill there when
        marketable and are canceled otherwise."""
        last = self.market.last_bar(o.symbol).c
        if o.type == "market":
            self._fill(o, last)
        elif o.type == "limit" and o.time_in_force == "ioc":
            assert o.limit_price is not None
            if (o.side == "buy" and o.limit_price >= last) or (o.side == "sell" and o.limit_price <= last):
                self._fill(o, last)
            else:
                self._finish(o, "canceled", "canceled_at")

    def on_bars(self, bars: dict[str, Bar]) -> None:
        """Match every working order against the bar of its symbol just published."""
        if self.faults.hold_fills:
            return
        for o in self.open_orders():
            bar = bars.get(o.symbol)
            if bar is not None:
                price = self._price_on(o, bar)
                if price is not None:
                    self._fill(o, price)
                elif o.time_in_force == "ioc":
                    self._finish(o, "canceled", "canceled_at")

    @staticmethod
    def _limit_price_on(side: str, limit: float, bar: Bar) -> float | None:
        if side == "buy":
            return min(bar.o, limit) if bar.l <= limit else None
        return max(bar.o, limit) if bar.h >= limit else None

    def _price_on(self, o: OrderRecord, bar: Bar) -> float | None:
        if o.type == "market":
            return bar.o
        if o.type == "limit":
            assert o.limit_price is not None
            return self._limit_price_on(o.side, o.limit_price, bar)
        assert o.stop_price is not None
        if o.triggered:  # a stop_limit triggered on an earlier bar works as a limit
            assert o.limit_price is not None
            return self._limit_price_on(o.side, o.limit_price, bar)
        if o.side == "buy" and bar.h >= o.stop_price:
            price = max(bar.o, o.stop_price)
        elif o.side == "sell" and bar.l <= o.stop_price:
            price = min(bar.o, o.stop_price)
        else:
            return None
        o.triggered = True
        if o.type == "stop":
            return price
        assert o.limit_price is not None
        within = price <= o.limit_price if o.side == "buy" else price >= o.limit_price
        return price if within else None

    def _fill(self, o: OrderRecord, price: float) -> None:
        if o.qty is None:  # a notional order: its size is known at the fill
            o.qty = round((o.notional or 0.0) / price, 9)
        ordered = o.qty
        total = max(0.0, ordered - o.filled_qty)
        parts = _split(total, int(self.faults.partial_fills or 0))
        for i, qty in enumerate(parts):
            ts = self.stamp()
            self._book(o.symbol, o.side, qty, price)
            o.filled_qty = round(o.filled_qty + qty, 9)
            o.filled_value += qty * price
            o.updated_at = ts
            last = i == len(parts) - 1
            o.status = "filled" if last else "partially_filled"
            if last:
                o.filled_at = ts
            execution_id = str(uuid.uuid4())
            position = self.position_qty(o.symbol)
            leaves = max(0.0, ordered - o.filled_qty)
            self.executions.append({
                "order_id": o.id, "client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side,
                "qty": qty, "price": price, "cum_qty": o.filled_qty, "ts": iso(ts), "execution_id": execution_id})
            self.activities.append({
                "id": f"{ts:%Y%m%d%H%M%S}{ts.microsecond // 1000:03d}::{uuid.uuid4()}", "activity_type": "FILL",
                "transaction_time": iso(ts), "type": "fill" if last else "partial_fill", "price": num(price),
                "qty": num(qty), "side": o.side, "symbol": o.symbol, "leaves_qty": num(leaves), "order_id": o.id,
                "cum_qty": num(o.filled_qty), "order_status": o.status})
            self._event(o, "fill" if last else "partial_fill", ts, execution_id=execution_id, price=num(price),
                        qty=num(qty), position_qty=num(position))

    def _book(self, symbol: str, side: str, qty: float, price: float) -> None:
        signed = qty if side == "buy" else -qty
        old, avg = self.positions.get(symbol, [0.0, 0.0])
        new = round(old + signed, 9)
        if old == 0 or (old > 0) == (signed > 0):
            avg = (abs(old) * avg + qty * price) / abs(new)
        elif abs(signed) > abs(old):  # crossed through zero: the remainder opened at this price
            avg = price
        self.cash -= signed * price
        if new == 0:
            self.positions.pop(symbol, None)
        else:
            self.positions[symbol] = [new, avg]

    def _finish(self, o: OrderRecord, status: str, stamp_field: str) -> None:
        ts = self.stamp()
        o.status = status
        o.updated_at = ts
        setattr(o, stamp_field, ts)
        self._event(o, status, ts)

    def _event(self, o: OrderRecord, event: str, ts: datetime | None = None, **extra: Any) -> None:
        self._emit(o, {"event": event, "timestamp": iso(ts or o.updated_at or o.created_at),
                       "order": o.to_json(), **extra})

    def find(self, order_id: str) -> OrderRecord:
        """The order with id ``order_id``.

        Raises
        ------
        ApiError
            404 ``order not found``.
        """
        o = self.orders.get(order_id)
        if o is None:
            raise error(404, 40410000, "order not found")
        return o

    def find_client(self, client_order_id: str) -> OrderRecord:
        """The order with ``client_order_id`` (404 ``order not found`` otherwise)."""
        o = self.by_client_id.get(client_order_id)
        if o is None:
            raise error(404, 40410000, "order not found")
        return o

    def cancel(self, o: OrderRecord) -> None:
        """Cancel a working order (emits ``canceled``).

        Raises
        ------
        ApiError
            422 ``order is already in "<status>" state`` for a final order.
        """
        if not o.is_open:
            raise error(422, 42210000, f'order is already in "{o.status}" state')
        self._finish(o, "canceled", "canceled_at")

    def expire_day_orders(self) -> None:
        """Every working DAY order becomes ``expired`` (emits ``expired``)."""
        for o in self.open_orders():
            if o.time_in_force == "day":
                self._finish(o, "expired", "expired_at")

    def replace(self, o: OrderRecord, body: Any) -> dict[str, Any]:
        """``PATCH /v2/orders/{id}``: a new order with the changed fields replaces working order ``o``
        (emits ``replaced`` for ``o``, then ``new`` for the replacement); returns the new order's JSON."""
        if not o.is_open:
            raise error(422, 42210000, f'order is already in "{o.status}" state')
        if not isinstance(body, dict):
            raise error(400, 40010000, "request body format is invalid")
        merged = {"symbol": o.symbol, "side": o.side, "type": o.type,
                  "time_in_force": body.get("time_in_force") or o.time_in_force,
                  "qty": body.get("qty") or o.remaining, "limit_price": body.get("limit_price") or o.limit_price,
                  "stop_price": body.get("stop_price") or o.stop_price,
                  "client_order_id": body.get("client_order_id")}
        new = self._validate(merged, external=o.external)
        new.replaces = o.id
        o.replaced_by, o.replaced_at = new.id, self.stamp()
        self.orders[new.id] = new
        self.by_client_id[new.client_order_id] = new
        self._finish(o, "replaced", "replaced_at")
        reply = new.to_json()
        new.status, new.updated_at = "new", self.stamp()
        self._event(new, "new")
        return reply

    def set_position(self, symbol: str, qty: float, avg_price: float) -> None:
        """Force the position of ``symbol`` (0 removes it); cash is left alone."""
        if qty == 0:
            self.positions.pop(symbol, None)
        else:
            self.positions[symbol] = [float(qty), float(avg_price)]
