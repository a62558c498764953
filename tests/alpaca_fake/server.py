"""The fake Alpaca server: one aiohttp app (trading REST, market-data REST, the trade_updates stream and
the msgpack market-data streams) on 127.0.0.1, run by :class:`FakeAlpaca` in a background thread.

Paths (``P`` = the port): ``http://127.0.0.1:P/v2/...`` trading and stock data REST,
``/v1beta3/crypto/us/...`` crypto data REST, ``ws://127.0.0.1:P/stream`` trade updates (JSON),
``/v2/iex``, ``/v2/sip`` and ``/v1beta3/crypto/us`` market data (msgpack). Wire details follow
``/work/shared/ALPACA_MQTT_NOTES.md``; the rules of the market and the venue are in
:mod:`tests.alpaca_fake.market`, the faults in :mod:`tests.alpaca_fake.faults`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import copy
import json
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import date, datetime, timedelta
from typing import Any

import msgpack  # type: ignore[import-untyped]
from aiohttp import WSMsgType, web

from tests.alpaca_fake.faults import Fault, Faults
from tests.alpaca_fake.market import Market, Venue, parse_timeframe
from tests.alpaca_fake.protocol import (
    UTC,
    ApiError,
    Bar,
    OrderRecord,
    account_json,
    asset_id,
    calendar_json,
    clock_json,
    decode_token,
    dumps,
    encode_token,
    error,
    invalid,
    iso_seconds,
    num,
    pack,
    parse_time,
)

log = logging.getLogger(__name__)

DATA_CHANNELS = ("trades", "quotes", "orderbooks", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
STOCK_FEEDS = ("iex", "sip", "delayed_sip", "otc", "boats", "overnight")
WS_PATHS = {"/stream": "trading", "/v2/iex": "stocks", "/v2/sip": "stocks", "/v1beta3/crypto/us": "crypto"}
_REJECT = web.RequestKey("fake_alpaca_reject", str)
_deferred: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("fake_alpaca_deferred", default=None)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=dumps(body), status=status, content_type="application/json", headers=headers)


def _html_error(status: int) -> web.Response:
    reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
              504: "Gateway Time-out"}.get(status, "Server Error")
    page = (f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}"
            "</h1></center>\r\n</body>\r\n</html>\r\n")
    return web.Response(text=page, status=status, content_type="text/html")


class _Client:
    """One websocket connection with an ordered outbox drained by its writer task."""

    def __init__(self, ws: web.WebSocketResponse, kind: str) -> None:
        self.ws = ws
        self.kind = kind  # trading | stocks | crypto
        self.authed = False
        self.listening = False
        self.closed = False
        self.subs: dict[str, set[str]] = {ch: set() for ch in DATA_CHANNELS}
        self.outbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.writer = asyncio.get_running_loop().create_task(self._write())

    def send(self, frame: bytes | str) -> None:
        if not self.closed:
            self.outbox.put_nowait(("frame", frame))

    def close(self, code: int = 1001) -> None:
        if not self.closed:
            self.closed = True
            self.outbox.put_nowait(("close", code))

    async def _write(self) -> None:
        while True:
            what, item = await self.outbox.get()
            try:
                if what == "frame":
                    await (self.ws.send_bytes(item) if isinstance(item, bytes) else self.ws.send_str(item))
                elif what == "mark":
                    item.set_result(None)
                else:
                    await self.ws.close(code=item)
                    return
            except Exception as exc:  # the peer went away mid-send
                log.debug("fake alpaca: %s socket write failed: %s", self.kind, exc)
                self.closed = True
                if what == "mark" and not item.done():
                    item.set_result(None)


class FakeAlpaca:
    """A wire-faithful local Alpaca (paper) for tests, driven from the test thread.

    Parameters
    ----------
    symbols, crypto_symbols : tuple of str
        Equity symbols and crypto pairs (``BTC/USD``) with bars, orders and positions.
    key_id, secret_key : str
        The only credentials accepted (REST headers and stream auth).
    start : str or datetime
        UTC start of the first bar :meth:`advance` publishes; ``history_minutes`` minute bars before it
        are published from the outset.
    price : float
        First open of every symbol's deterministic random walk, USD.
    seed : int
        Seed of the walk (bars depend on (seed, symbol) only).
    cash : float
        Opening cash, USD.
    account_number : str
        Reported in ``GET /v2/account``.
    bar_interval : float or None
        When set, a background task calls ``advance(1)`` every ``bar_interval`` wall seconds.
    history_minutes : int
        Minute bars published before ``start`` (>= 1).
    fill_mode : {"immediate", "next_bar"}
        Market orders fill at submission at the last close (real paper does), or at the next bar's open.
    page_limit : int
        Largest page of ``GET .../bars`` whatever the client's ``limit`` (tiny values exercise paging).

    Raises
    ------
    ValueError
        For a parameter out of range (the message names it).

    Notes
    -----
    Every public method is thread-safe. Order and fill timestamps are wall-clock UTC (strictly
    increasing); bar times and the clock endpoint use the simulated market time. Events of the
    trade_updates stream reach only sockets connected and listening at that moment.
    """

    def __init__(self, *, symbols: Iterable[str] = ("SPY",), crypto_symbols: Iterable[str] = ("BTC/USD",),
                 key_id: str = "PKFAKEKEY0000000", secret_key: str = "fake-secret-0000",
                 start: str | datetime = "2024-01-02T14:30:00Z", price: float = 100.0, seed: int = 0,
                 cash: float = 100_000.0, account_number: str = "PA0FAKE00001", bar_interval: float | None = None,
                 history_minutes: int = 600, fill_mode: str = "immediate", page_limit: int = 10_000) -> None:
        equities, cryptos = tuple(symbols), tuple(crypto_symbols)
        listed = equities + cryptos
        if not listed or not all(isinstance(s, str) and s and s == s.strip() for s in listed):
            raise ValueError(f"symbols/crypto_symbols must be non-empty strings (at least one), got {listed!r}")
        if len(set(listed)) != len(listed):
            raise ValueError(f"symbols/crypto_symbols must not repeat a symbol, got {listed!r}")
        if any("/" not in s for s in cryptos):
            raise ValueError(f"crypto_symbols must be pairs such as 'BTC/USD', got {cryptos!r}")
        for name, value in (("key_id", key_id), ("secret_key", secret_key), ("account_number", account_number)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        start_ts = start if isinstance(start, datetime) else parse_time(str(start), "start")
        if start_ts.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        start_ts = start_ts.astimezone(UTC).replace(second=0, microsecond=0)
        if not price > 0:
            raise ValueError(f"price must be > 0 USD, got {price!r}")
        if not cash >= 0:
            raise ValueError(f"cash must be >= 0 USD, got {cash!r}")
        if fill_mode not in ("immediate", "next_bar"):
            raise ValueError(f"fill_mode must be 'immediate' or 'next_bar', got {fill_mode!r}")
        if bar_interval is not None and not bar_interval > 0:
            raise ValueError(f"bar_interval must be None or > 0 seconds, got {bar_interval!r}")
        if not isinstance(history_minutes, int) or history_minutes < 1:
            raise ValueError(f"history_minutes must be an int >= 1, got {history_minutes!r}")
        if not isinstance(page_limit, int) or page_limit < 1:
            raise ValueError(f"page_limit must be an int >= 1, got {page_limit!r}")
        self.key_id, self.secret_key, self.account_number = key_id, secret_key, account_number
        self.bar_interval = bar_interval
        self.page_limit = page_limit
        self.faults = Faults()
        self._lock = threading.RLock()
        self._market = Market(equities, cryptos, start=start_ts, price=float(price), seed=seed,
                              history_minutes=history_minutes)
        self._venue = Venue(self._market, cash=cash, fill_mode=fill_mode, faults=self.faults, emit=self._on_event,
                            clock=lambda: datetime.now(UTC))
        self._held: dict[str, list[dict[str, Any]]] = {}
        self._events: list[dict[str, Any]] = []
        self._log: list[dict[str, Any]] = []
        self._submit_attempts = 0
        self._clients: set[_Client] = set()
        self._stalling: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._port: int | None = None
        self.faults._bind(self._drop_streams, self._flush_held)

    # ================================================================================ lifecycle

    def start(self) -> FakeAlpaca:
        """Start serving on a free loopback port (returns ``self``).

        Raises
        ------
        RuntimeError
            When already started, or the server did not come up within 10 s.
        """
        if self._thread is not None:
            raise RuntimeError("FakeAlpaca is already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=self._run_loop, args=(loop,), name="fake-alpaca", daemon=True)
        self._thread.start()
        self._port = asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Close every socket and stop the server (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=15)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._loop = self._thread = None
            self._port = None

    def __enter__(self) -> FakeAlpaca:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:  # tasks still pending (a socket's writer) end here, not at garbage collection
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _serve(self) -> int:
        app = web.Application(middlewares=[self._middleware], client_max_size=1 << 20)
        routes = _Routes(self)
        routes.install(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = int(self._runner.addresses[0][1])
        if self.bar_interval is not None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick(self.bar_interval))
        return port

    async def _tick(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.advance(1)

    async def _shutdown(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self._stalling):
            task.cancel()
        clients = list(self._clients)
        for c in clients:
            c.close(1001)
        if clients:
            await asyncio.wait([c.writer for c in clients], timeout=3)
        if self._runner is not None:
            await self._runner.cleanup()

    # ================================================================================ addresses

    def _require_port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeAlpaca is not started: use start() or a with block")
        return self._port

    @property
    def rest_url(self) -> str:
        """Base URL of trading AND data REST, without ``/v2`` (``http://127.0.0.1:P``)."""
        return f"http://127.0.0.1:{self._require_port()}"

    @property
    def trading_ws_url(self) -> str:
        """Full URL of the trade_updates stream (``ws://127.0.0.1:P/stream``)."""
        return f"ws://127.0.0.1:{self._require_port()}/stream"

    @property
    def data_ws_url(self) -> str:
        """Full URL of the IEX stock data stream (``/v2/sip`` is served too)."""
        return f"ws://127.0.0.1:{self._require_port()}/v2/iex"

    @property
    def crypto_ws_url(self) -> str:
        """Full URL of the crypto data stream (``ws://127.0.0.1:P/v1beta3/crypto/us``)."""
        return f"ws://127.0.0.1:{self._require_port()}/v1beta3/crypto/us"

    # ================================================================================ market

    def advance(self, n: int = 1) -> list[dict[str, Any]]:
        """Publish the next ``n`` minute bars of every symbol, stream them to data subscribers and match
        working orders against each.

        Returns
        -------
        list of dict
            The published bars, minute by minute in symbol order: ``{"T": "b", "S", "o", "h", "l", "c",
            "v", "t", "n", "vw"}`` with ``t`` an aware UTC datetime (the bar's start).

        Raises
        ------
        ValueError
            When ``n`` is not an int >= 1.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"advance(n): n must be an int >= 1, got {n!r}")
        out: list[dict[str, Any]] = []
        with self._lock:
            for _ in range(n):
                bars = self._market.publish()
                self._call_in_loop(self._broadcast_bars, bars)
                self._venue.on_bars({b.symbol: b for b in bars})
                out.extend(b.plain() for b in bars)
        return out

    @property
    def now_ts(self) -> datetime:
        """Start time of the last published bar (UTC)."""
        with self._lock:
            return self._market.now_ts

    def last_price(self, symbol: str) -> float:
        """Close of the last published bar of ``symbol``, USD.

        Raises
        ------
        KeyError
            For a symbol the fake does not list.
        """
        with self._lock:
            return self._market.last_bar(self._symbol(symbol, "last_price")).c

    def published_bars(self, symbol: str) -> list[dict[str, Any]]:
        """Every published minute bar of ``symbol``, oldest first (same shape as :meth:`advance`)."""
        with self._lock:
            s = self._symbol(symbol, "published_bars")
            return [self._market.bar(s, i).plain() for i in range(self._market.published)]

    def _symbol(self, symbol: str, where: str) -> str:
        resolved = self._market.resolve(symbol)
        if resolved is None:
            raise KeyError(f"{where}: unknown symbol {symbol!r}; the fake lists {list(self._market.symbols)}")
        return resolved

    # ================================================================================ inspection

    def orders(self) -> list[dict[str, Any]]:
        """Every order ever created, in creation order, as Alpaca's order JSON."""
        with self._lock:
            return [o.to_json() for o in self._venue.orders.values()]

    @property
    def submit_attempts(self) -> int:
        """``POST /v2/orders`` requests received, faulted and rejected ones included."""
        with self._lock:
            return self._submit_attempts

    def executions(self) -> list[dict[str, Any]]:
        """Every fill: ``{order_id, client_order_id, symbol, side, qty, price, cum_qty, ts, execution_id}``
        (qty/cum_qty in shares and price in USD as floats, ts RFC 3339 UTC)."""
        with self._lock:
            return [dict(e) for e in self._venue.executions]

    def positions(self) -> dict[str, float]:
        """Signed quantity per symbol (non-zero only; negative = short)."""
        with self._lock:
            return {s: q for s, (q, _avg) in sorted(self._venue.positions.items())}

    @property
    def cash(self) -> float:
        """Cash, USD."""
        with self._lock:
            return self._venue.cash

    def requests(self) -> list[tuple[str, str, int]]:
        """Log of (method, path, status) of every request, websocket upgrades (101) included."""
        with self._lock:
            return [(r["method"], r["path"], r["status"]) for r in self._log]

    def request_log(self) -> list[dict[str, Any]]:
        """Like :meth:`requests` with the query: ``{"method", "path", "query": {name: value}, "status"}``."""
        with self._lock:
            return [dict(r, query=dict(r["query"])) for r in self._log]

    def events_sent(self) -> list[dict[str, Any]]:
        """``data`` of every trade_updates frame emitted, in sending order (duplicates included), whether
        or not a client was listening at that moment."""
        with self._lock:
            return copy.deepcopy(self._events)

    # ================================================================================ outside actions

    def external_order(self, symbol: str, side: str, qty: float) -> dict[str, Any]:
        """An order placed outside tradingd (web UI, another program): created and filled at once at the
        last close, with a random client_order_id; trade updates are emitted as for any order.

        Returns
        -------
        dict
            The filled order's JSON.

        Raises
        ------
        ValueError
            For an unknown symbol, a side other than buy/sell or qty <= 0.
        """
        with self._lock:
            body = {"symbol": symbol, "side": side, "qty": qty, "type": "market",
                    "time_in_force": "gtc" if self._market.resolve(symbol) in self._market.cryptos else "day",
                    "client_order_id": str(uuid.uuid4())}
            try:
                reply = self._venue.submit(body, external=True)
            except ApiError as exc:
                raise ValueError(f"external_order({symbol!r}, {side!r}, {qty!r}): {exc.body['message']}") from None
            return self._venue.orders[reply["id"]].to_json()

    def cancel_outside(self, client_order_id: str) -> None:
        """Cancel a working order as if from Alpaca's web UI (emits ``canceled``).

        Raises
        ------
        KeyError
            When no order has this client_order_id.
        ValueError
            When the order is no longer working.
        """
        with self._lock:
            o = self._venue.by_client_id.get(client_order_id)
            if o is None:
                raise KeyError(f"cancel_outside: no order with client_order_id {client_order_id!r}")
            if not o.is_open:
                raise ValueError(f"cancel_outside: order {client_order_id!r} is already {o.status}")
            self._venue.cancel(o)

    def set_position(self, symbol: str, qty: float, avg_price: float) -> None:
        """Force the position of ``symbol`` to ``qty`` shares (signed; 0 removes it) at ``avg_price`` USD,
        leaving cash alone (a mismatch with what tradingd believes).

        Raises
        ------
        KeyError
            For an unknown symbol.
        ValueError
            For avg_price <= 0 with a non-zero qty.
        """
        with self._lock:
            s = self._symbol(symbol, "set_position")
            if qty != 0 and not avg_price > 0:
                raise ValueError(f"set_position({symbol!r}): avg_price must be > 0 USD, got {avg_price!r}")
            self._venue.set_position(s, float(qty), float(avg_price))

    def expire_day_orders(self) -> None:
        """Every working DAY order becomes ``expired`` (as at the close)."""
        with self._lock:
            self._venue.expire_day_orders()

    # ================================================================================ trade updates

    def _on_event(self, order: OrderRecord, payload: dict[str, Any]) -> None:
        """Venue callback (under the lock): apply the ordering faults, then send."""
        if self.faults.reorder_updates:
            self._held.setdefault(order.id, []).append(payload)
            if not order.is_open:
                self._release(list(reversed(self._held.pop(order.id))))
            return
        self._flush_held()
        self._release([payload])

    def _flush_held(self) -> None:
        with self._lock:
            held, self._held = self._held, {}
            for payloads in held.values():
                self._release(list(reversed(payloads)))

    def _release(self, payloads: list[dict[str, Any]]) -> None:
        deferred = _deferred.get()
        for p in payloads:
            frame = json.dumps({"stream": "trade_updates", "data": p}, separators=(",", ":"))
            for _ in range(2 if self.faults.duplicate_updates else 1):
                self._events.append(p)
                if deferred is not None:
                    deferred.append(frame)
                else:
                    self._call_in_loop(self._broadcast_trade, [frame])

    def _call_in_loop(self, fn: Callable[..., object], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _broadcast_trade(self, frames: list[str]) -> list[_Client]:
        targets = [c for c in self._clients if c.kind == "trading" and c.listening and not c.closed]
        for c in targets:
            for frame in frames:
                c.send(frame.encode())  # paper sends JSON in binary frames
        return targets

    async def _deliver(self, frames: list[str], wait: bool) -> None:
        """Send trade-update frames from a request context; with ``wait``, until written to every socket."""
        if not frames:
            return
        targets = self._broadcast_trade(list(frames))
        frames.clear()
        if wait and targets:
            loop = asyncio.get_running_loop()
            marks = []
            for c in targets:
                mark = loop.create_future()
                c.outbox.put_nowait(("mark", mark))
                marks.append(mark)
            await asyncio.wait(marks, timeout=5)

    def _broadcast_bars(self, bars: list[Bar]) -> None:
        for c in list(self._clients):
            if c.kind == "trading" or not c.authed or c.closed:
                continue
            wanted = c.subs["bars"]
            crypto = c.kind == "crypto"
            chosen = [b.stream() for b in bars if (b.symbol in self._market.cryptos) == crypto
                      and (b.symbol in wanted or "*" in wanted)]
            if chosen:
                c.send(pack(chosen))

    def _drop_streams(self, kind: str) -> None:
        """Close every socket of ``kind``; returns once no further frame can reach them (the close
        handshake completes in the background, so a client blocked in this thread cannot deadlock it)."""
        kinds = ("trading",) if kind == "trading" else ("stocks", "crypto")
        loop = self._loop
        if loop is None:
            return

        async def close_all() -> None:
            for c in list(self._clients):
                if c.kind in kinds:
                    c.close(1012)

        future = asyncio.run_coroutine_threadsafe(close_all(), loop)
        if threading.current_thread() is not self._thread:
            future.result(timeout=5)

    def stream_connections(self) -> list[dict[str, Any]]:
        """Open websocket connections: ``{"kind": "trading"|"stocks"|"crypto", "authenticated": bool,
        "listening": bool (trade_updates), "bars": sorted subscribed bar symbols}`` (poll it to wait
        until a client is ready: events reach only connected, listening clients)."""
        loop = self._loop
        if loop is None:
            return []

        async def snapshot() -> list[dict[str, Any]]:
            return [{"kind": c.kind, "authenticated": c.authed, "listening": c.listening,
                     "bars": sorted(c.subs["bars"])} for c in self._clients if not c.closed]

        if threading.current_thread() is self._thread:
            raise RuntimeError("stream_connections() cannot be called from the fake's own loop")
        return asyncio.run_coroutine_threadsafe(snapshot(), loop).result(timeout=5)

    # ================================================================================ REST plumbing

    def _record(self, request: web.BaseRequest, status: int) -> None:
        with self._lock:
            self._log.append({"method": request.method, "path": request.path, "query": dict(request.query),
                              "status": status})

    def authorized(self, request: web.BaseRequest) -> bool:
        """True when the request carries this fake's keys (APCA headers or HTTP Basic)."""
        key, secret = request.headers.get("APCA-API-KEY-ID"), request.headers.get("APCA-API-SECRET-KEY")
        auth = request.headers.get("Authorization", "")
        if key is None and secret is None and auth.startswith("Basic "):
            try:
                key, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
        return key == self.key_id and secret == self.secret_key

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in WS_PATHS and request.method == "GET":
            return await handler(request)
        if request.method == "POST" and request.path == "/v2/orders":
            with self._lock:
                self._submit_attempts += 1
        fault = self.faults.take(request.method, request.path)
        deferred: list[str] = []
        token = _deferred.set(deferred)
        try:
            response = await self._answer(request, handler, fault, deferred)
        finally:
            _deferred.reset(token)
        self._record(request, response.status)
        if deferred and self.faults.events_before_reply:
            await self._deliver(deferred, wait=True)
            return response
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionError:  # the client gave up (timeout); aiohttp logs the access and moves on
            pass
        await self._deliver(deferred, wait=False)
        return response

    async def _answer(self, request: web.Request, handler: Handler, fault: Fault | None,
                      deferred: list[str]) -> web.StreamResponse:
        if fault is None:
            return await self._call(request, handler)
        if fault.kind == "rate_limit":
            return _json({"code": 42910000, "message": "rate limit exceeded"}, 429,
                         {"Retry-After": str(fault.retry_after)})
        if fault.kind == "server_error":
            if fault.html:
                return _html_error(fault.status)
            return _json({"code": fault.status * 100000 + 10000, "message": "internal server error"}, fault.status)
        if fault.kind == "reject_orders":
            body: dict[str, Any] = {"code": fault.status * 100000 + 10000, "message": fault.message}
            if fault.status == 403 and "buying power" in fault.message:
                with self._lock:
                    body.update(buying_power=num(self._venue.buying_power()), cost_basis="0")
            return _json(body, fault.status)
        if fault.kind == "reject_after_accept":
            request[_REJECT] = "rejected by the venue (fault)"
            return await self._call(request, handler)
        if fault.kind == "execute_then_504":
            await self._call(request, handler)
            await self._deliver(deferred, wait=self.faults.events_before_reply)
            return _json({"code": 50410000, "message": "gateway timeout"}, 504)
        # stall
        if fault.execute:
            response = await self._call(request, handler)
            await self._deliver(deferred, wait=False)  # the effect, stream events included, happens now
            await self._sleep(fault.seconds)
            return response
        await request.read()  # the body is in; the client may hang up while we sleep
        await self._sleep(fault.seconds)
        return await self._call(request, handler)

    async def _sleep(self, seconds: float) -> None:
        """A stall that stop() can cut short."""
        task = asyncio.current_task()
        assert task is not None
        self._stalling.add(task)
        try:
            await asyncio.sleep(seconds)
        finally:
            self._stalling.discard(task)

    async def _call(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        public = request.path.startswith("/v1beta3/crypto/") and "APCA-API-KEY-ID" not in request.headers \
            and "Authorization" not in request.headers  # crypto data needs no keys
        if not public and not self.authorized(request):
            return _json({"code": 40110000, "message": "request is not authorized"}, 401)
        try:
            return await handler(request)
        except ApiError as exc:
            return _json(exc.body, exc.status)
        except web.HTTPNotFound:
            return _json({"code": 40410000, "message": "endpoint not found"}, 404)
        except web.HTTPMethodNotAllowed:
            return _json({"code": 40510000, "message": "method not allowed"}, 405)
        except Exception as exc:  # a bug in the fake: answer like a 500 and keep serving
            log.exception("fake alpaca: %s %s failed", request.method, request.path)
            return _json({"code": 50010000, "message": f"internal error in the fake: {type(exc).__name__}"}, 500)

    # ================================================================================ websockets

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        kind = WS_PATHS[request.path]
        ws = web.WebSocketResponse(timeout=2.0, autoping=True, max_msg_size=1 << 22)
        await ws.prepare(request)
        self._record(request, 101)
        if self.faults.refusing("trading" if kind == "trading" else "data"):
            await ws.close(code=1013, message=b"refused (fault)")
            return ws
        client = _Client(ws, kind)
        self._clients.add(client)
        if kind != "trading":
            client.send(pack([{"T": "success", "msg": "connected"}]))
        try:
            async for msg in ws:
                if client.closed:
                    break
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                if kind == "trading":
                    self._on_trading_message(client, msg.data)
                else:
                    self._on_data_message(client, msg.data)
        finally:
            self._clients.discard(client)
            client.closed = True
            if not client.writer.done():  # also a writer whose failed send left it waiting on the outbox
                client.writer.cancel()
        return ws

    def _on_trading_message(self, client: _Client, data: str | bytes) -> None:
        try:
            msg = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            msg = None
        action = msg.get("action") if isinstance(msg, dict) else None
        if action in ("authenticate", "auth"):
            assert isinstance(msg, dict)
            inner: dict[str, Any] = msg["data"] if isinstance(msg.get("data"), dict) else {}
            key = inner.get("key_id", msg.get("key"))
            secret = inner.get("secret_key", msg.get("secret"))
            client.authed = key == self.key_id and secret == self.secret_key
            reply: dict[str, Any] = {"action": "authenticate", "status": "authorized"}
            if not client.authed:
                reply = {"action": "authenticate", "status": "unauthorized",
                         "message": "access key verification failed"}
            client.send(dumps({"stream": "authorization", "data": reply}).encode())
        elif action == "listen":
            assert isinstance(msg, dict)
            if not client.authed:
                client.send(dumps({"stream": "authorization", "data": {
                    "action": "listen", "status": "unauthorized", "message": "access key verification failed"}}
                ).encode())
                return
            streams = (msg.get("data") or {}).get("streams") or []
            client.listening = "trade_updates" in streams
            client.send(dumps({"stream": "listening",
                               "data": {"streams": ["trade_updates"] if client.listening else []}}).encode())
        else:
            client.send(dumps({"stream": "listening", "data": {"error": "invalid syntax"}}).encode())

    def _on_data_message(self, client: _Client, data: str | bytes) -> None:
        try:
            msg = msgpack.unpackb(data) if isinstance(data, bytes) else json.loads(data)
        except (ValueError, msgpack.UnpackException):
            msg = None
        action = msg.get("action") if isinstance(msg, dict) else None
        if action == "auth":
            assert isinstance(msg, dict)
            if client.authed:
                client.send(pack([{"T": "error", "code": 403, "msg": "already authenticated"}]))
            elif msg.get("key") == self.key_id and msg.get("secret") == self.secret_key:
                client.authed = True
                client.send(pack([{"T": "success", "msg": "authenticated"}]))
            else:
                client.send(pack([{"T": "error", "code": 402, "msg": "auth failed"}]))
        elif action in ("subscribe", "unsubscribe"):
            assert isinstance(msg, dict)
            if not client.authed:
                client.send(pack([{"T": "error", "code": 401, "msg": "not authenticated"}]))
                return
            for channel in DATA_CHANNELS:
                symbols = msg.get(channel)
                if isinstance(symbols, list):
                    names = {str(s) for s in symbols}
                    if action == "subscribe":
                        client.subs[channel] |= names
                    else:
                        client.subs[channel] -= names
            ack: dict[str, Any] = {"T": "subscription"}
            ack.update({ch: sorted(client.subs[ch]) for ch in DATA_CHANNELS})
            ack["corrections"] = sorted(client.subs["trades"])
            ack["cancelErrors"] = sorted(client.subs["trades"])
            client.send(pack([ack]))
        else:
            client.send(pack([{"T": "error", "code": 400, "msg": "invalid syntax"}]))


# ==================================================================================== REST routes


def _query_int(request: web.Request, name: str, default: int, low: int, high: int, status: int = 422) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise error(status, 40010001, f"invalid {name}: {raw!r} is not an integer") from None
    if not low <= value <= high:
        raise error(status, 40010001, f"invalid {name}: {value} is not within {low}-{high}")
    return value


def _query_time(request: web.Request, name: str, status: int = 422) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return parse_time(raw, name)
    except ValueError as exc:
        raise error(status, 40010001, str(exc)) from None


def _query_choice(request: web.Request, name: str, choices: tuple[str, ...], default: str,
                  status: int = 422) -> str:
    value = request.query.get(name) or default
    if value not in choices:
        raise error(status, 40010001, f"invalid {name}: {value!r} (expected one of {', '.join(choices)})")
    return value


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise error(400, 40010000, "request body format is invalid") from None


class _Routes:
    """The REST handlers of one :class:`FakeAlpaca` (they take its lock around every state access)."""

    def __init__(self, fake: FakeAlpaca) -> None:
        self.fake = fake
        self.lock = fake._lock
        self.venue = fake._venue
        self.market = fake._market

    def install(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/v2/account", self.account)
        r.add_get("/v2/clock", self.clock)
        r.add_get("/v2/calendar", self.calendar)
        r.add_get("/v2/assets", self.assets)
        r.add_get("/v2/assets/{symbol:.+}", self.asset)
        r.add_post("/v2/orders", self.submit)
        r.add_get("/v2/orders", self.list_orders)
        r.add_delete("/v2/orders", self.cancel_all)
        r.add_get("/v2/orders:by_client_order_id", self.order_by_client_id)
        r.add_get("/v2/orders/{order_id}", self.get_order)
        r.add_delete("/v2/orders/{order_id}", self.cancel_order)
        r.add_patch("/v2/orders/{order_id}", self.replace_order)
        r.add_get("/v2/positions", self.list_positions)
        r.add_delete("/v2/positions", self.close_all)
        r.add_get("/v2/positions/{symbol:.+}", self.get_position)
        r.add_delete("/v2/positions/{symbol:.+}", self.close_position)
        r.add_get("/v2/account/activities", self.activities)
        r.add_get("/v2/account/activities/{activity_type}", self.activities)
        r.add_get("/v2/stocks/bars", self.stock_bars)
        r.add_get("/v2/stocks/bars/latest", self.stock_latest)
        r.add_get("/v1beta3/crypto/us/bars", self.crypto_bars)
        r.add_get("/v1beta3/crypto/us/latest/bars", self.crypto_latest)
        for path in WS_PATHS:
            r.add_get(path, self.fake._ws)

    # ---------------------------------------------------------------------------------- account

    async def account(self, request: web.Request) -> web.Response:
        with self.lock:
            long_value, short_value = self.venue.market_values()
            return _json(account_json(
                self.fake.account_number, cash=self.venue.cash, long_value=long_value, short_value=short_value,
                buying_power=self.venue.buying_power(), last_equity=self.venue.opening_cash,
                created_at=self.venue.created_at))

    async def clock(self, request: web.Request) -> web.Response:
        with self.lock:
            return _json(clock_json(self.market.market_time))

    async def calendar(self, request: web.Request) -> web.Response:
        with self.lock:
            today = self.market.market_time.date()
        days: list[date] = []
        for name, default in (("start", today), ("end", today + timedelta(days=30))):
            raw = request.query.get(name)
            try:
                days.append(date.fromisoformat(raw[:10]) if raw else default)
            except ValueError:
                raise invalid(f"invalid {name}: {raw!r} is not a YYYY-MM-DD date") from None
        if (days[1] - days[0]).days > 3660:
            raise invalid("calendar range is limited to 10 years by the fake")
        return _json(calendar_json(days[0], days[1]))

    def _asset(self, symbol: str) -> dict[str, Any]:
        crypto = symbol in self.market.cryptos
        return {"id": asset_id(symbol), "class": "crypto" if crypto else "us_equity",
                "exchange": "CRYPTO" if crypto else "NASDAQ", "symbol": symbol, "name": symbol, "status": "active",
                "tradable": True, "marginable": not crypto, "shortable": not crypto, "easy_to_borrow": not crypto,
                "fractionable": True, "maintenance_margin_requirement": 30, "attributes": []}

    async def assets(self, request: web.Request) -> web.Response:
        return _json([self._asset(s) for s in self.market.symbols])

    async def asset(self, request: web.Request) -> web.Response:
        symbol = self.market.resolve(request.match_info["symbol"])
        if symbol is None:
            raise error(404, 40410000, "asset not found")
        return _json(self._asset(symbol))

    # ---------------------------------------------------------------------------------- orders

    async def submit(self, request: web.Request) -> web.Response:
        body = await _body(request)
        with self.lock:
            return _json(self.venue.submit(body, reject=request.get(_REJECT)))

    async def list_orders(self, request: web.Request) -> web.Response:
        status = _query_choice(request, "status", ("open", "closed", "all"), "open")
        limit = _query_int(request, "limit", 50, 1, 500)
        after, until = _query_time(request, "after"), _query_time(request, "until")
        direction = _query_choice(request, "direction", ("asc", "desc"), "desc")
        side = request.query.get("side")
        symbols = {s for s in (request.query.get("symbols") or "").split(",") if s}
        with self.lock:
            chosen: list[OrderRecord] = []
            for o in self.venue.orders.values():
                if (status == "open" and not o.is_open) or (status == "closed" and o.is_open):
                    continue
                if (after and o.created_at <= after) or (until and o.created_at >= until):
                    continue
                if (side and o.side != side) or (symbols and o.symbol not in symbols):
                    continue
                chosen.append(o)
            if direction == "desc":
                chosen.reverse()
            return _json([o.to_json() for o in chosen[:limit]])

    def _order(self, request: web.Request) -> OrderRecord:
        order_id = request.match_info["order_id"]
        try:
            uuid.UUID(order_id)
        except ValueError:
            raise invalid(f"invalid order_id {order_id!r}: not a UUID") from None
        return self.venue.find(order_id)

    async def get_order(self, request: web.Request) -> web.Response:
        with self.lock:
            return _json(self._order(request).to_json())

    async def order_by_client_id(self, request: web.Request) -> web.Response:
        client_order_id = request.query.get("client_order_id")
        if not client_order_id:
            raise invalid("client_order_id is missing")
        with self.lock:
            return _json(self.venue.find_client(client_order_id).to_json())

    async def cancel_order(self, request: web.Request) -> web.Response:
        with self.lock:
            self.venue.cancel(self._order(request))
        return web.Response(status=204)

    async def cancel_all(self, request: web.Request) -> web.Response:
        with self.lock:
            out = []
            for o in self.venue.open_orders():
                self.venue.cancel(o)
                out.append({"id": o.id, "status": 200, "body": o.to_json()})
        return _json(out, 207)

    async def replace_order(self, request: web.Request) -> web.Response:
        body = await _body(request)
        with self.lock:
            return _json(self.venue.replace(self._order(request), body))

    # ---------------------------------------------------------------------------------- positions

    async def list_positions(self, request: web.Request) -> web.Response:
        with self.lock:
            return _json(self.venue.position_rows())

    def _position_symbol(self, request: web.Request) -> str:
        symbol = self.market.resolve(request.match_info["symbol"])
        if symbol is None or symbol not in self.venue.positions:
            raise error(404, 40410000, "position does not exist")
        return symbol

    async def get_position(self, request: web.Request) -> web.Response:
        with self.lock:
            return _json(self.venue.position_row(self._position_symbol(request)))

    def _close(self, symbol: str, qty: float | None = None) -> dict[str, Any]:
        position = self.venue.position_qty(symbol)
        size = abs(position) if qty is None else qty
        return self.venue.submit({
            "symbol": symbol, "qty": size, "side": "sell" if position > 0 else "buy", "type": "market",
            "time_in_force": "gtc" if symbol in self.market.cryptos else "day"})

    async def close_position(self, request: web.Request) -> web.Response:
        with self.lock:
            symbol = self._position_symbol(request)
            position = abs(self.venue.position_qty(symbol))
            qty: float | None = None
            for name in ("qty", "percentage"):
                raw = request.query.get(name)
                if raw:
                    try:
                        value = float(raw)
                    except ValueError:
                        raise invalid(f"invalid {name}: {raw!r} is not a number") from None
                    if not 0 < value <= (100 if name == "percentage" else position):
                        raise invalid(f"invalid {name}: {raw!r} is out of range for a position of {num(position)}")
                    qty = value if name == "qty" else round(position * value / 100, 9)
            return _json(self._close(symbol, qty))

    async def close_all(self, request: web.Request) -> web.Response:
        with self.lock:
            if request.query.get("cancel_orders", "").lower() == "true":
                for o in self.venue.open_orders():
                    self.venue.cancel(o)
            out = []
            for symbol in sorted(self.venue.positions):
                try:
                    out.append({"symbol": symbol, "status": 200, "body": self._close(symbol)})
                except ApiError as exc:
                    out.append({"symbol": symbol, "status": exc.status, "body": exc.body})
        return _json(out, 207)

    # ---------------------------------------------------------------------------------- activities

    async def activities(self, request: web.Request) -> web.Response:
        kind = request.match_info.get("activity_type")
        kinds = {kind.upper()} if kind else {k.strip().upper() for k in
                                             (request.query.get("activity_types") or "FILL").split(",")}
        after, until = _query_time(request, "after"), _query_time(request, "until")
        day = request.query.get("date")
        direction = _query_choice(request, "direction", ("asc", "desc"), "desc")
        page_size = _query_int(request, "page_size", 100, 1, 100)
        token = request.query.get("page_token")
        with self.lock:
            rows = [a for a in self.venue.activities if "FILL" in kinds]
        rows = [a for a in rows
                if (after is None or parse_time(a["transaction_time"], "t") > after)
                and (until is None or parse_time(a["transaction_time"], "t") < until)
                and (not day or a["transaction_time"].startswith(day))]
        if direction == "desc":
            rows.reverse()
        if token:
            ids = [a["id"] for a in rows]
            if token not in ids:
                raise invalid(f"invalid page_token {token!r}: no such activity in this query")
            rows = rows[ids.index(token) + 1:]
        return _json([dict(a) for a in rows[:page_size]])

    # ---------------------------------------------------------------------------------- market data

    async def stock_bars(self, request: web.Request) -> web.Response:
        _query_choice(request, "feed", STOCK_FEEDS, "sip", status=400)
        return self._bars(request, self.market.equities)

    async def crypto_bars(self, request: web.Request) -> web.Response:
        return self._bars(request, self.market.cryptos)

    def _bars(self, request: web.Request, listed: tuple[str, ...]) -> web.Response:
        raw = request.query.get("symbols")
        if not raw:
            raise error(400, 40010001, "symbols is required")
        timeframe = request.query.get("timeframe") or ""
        try:
            parse_timeframe(timeframe)
        except ValueError as exc:
            raise error(400, 40010001, str(exc)) from None
        start, end = _query_time(request, "start", 400), _query_time(request, "end", 400)
        limit = _query_int(request, "limit", 1000, 1, 10_000, status=400)
        sort = _query_choice(request, "sort", ("asc", "desc"), "asc", status=400)
        _query_choice(request, "adjustment", ("raw", "split", "dividend", "spin-off", "all"), "raw", status=400)
        wanted = sorted({s for s in (self.market.resolve(x) for x in raw.split(",") if x) if s in listed})
        entries: list[Bar] = []
        with self.lock:
            for symbol in wanted:
                bars = self.market.history(symbol, timeframe, start, end)
                entries.extend(reversed(bars) if sort == "desc" else bars)
        first = 0
        token = request.query.get("page_token")
        if token:
            try:
                symbol, stamp = decode_token(token, 2)
            except ValueError as exc:
                raise error(400, 40010001, str(exc)) from None
            keys = [(b.symbol, iso_seconds(b.t)) for b in entries]
            if (symbol, stamp) not in keys:
                raise error(400, 40010001, f"invalid page_token {token!r}: not from this query")
            first = keys.index((symbol, stamp))
        page = entries[first:first + min(limit, self.fake.page_limit)]
        rest = entries[first + len(page):]
        out: dict[str, list[dict[str, Any]]] = {}
        for b in page:
            out.setdefault(b.symbol, []).append(b.rest())
        next_token = encode_token([rest[0].symbol, iso_seconds(rest[0].t)]) if rest else None
        return _json({"bars": out, "next_page_token": next_token})

    async def stock_latest(self, request: web.Request) -> web.Response:
        return self._latest(request, self.market.equities)

    async def crypto_latest(self, request: web.Request) -> web.Response:
        return self._latest(request, self.market.cryptos)

    def _latest(self, request: web.Request, listed: tuple[str, ...]) -> web.Response:
        raw = request.query.get("symbols")
        if not raw:
            raise error(400, 40010001, "symbols is required")
        with self.lock:
            out = {s: self.market.last_bar(s).rest() for s in (self.market.resolve(x) for x in raw.split(","))
                   if s in listed}
        return _json({"bars": out})
