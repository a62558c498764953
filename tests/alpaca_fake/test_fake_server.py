"""The fake Alpaca server, exercised through the real alpaca-py 0.44 clients (REST and streams).

Every endpoint must parse into the SDK's models, and every fault must do what tests elsewhere rely on.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests

warnings.filterwarnings("ignore", category=DeprecationWarning, module="websockets.legacy")

from alpaca.common.exceptions import APIError  # noqa: E402
from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient  # noqa: E402
from alpaca.data.live import CryptoDataStream, StockDataStream  # noqa: E402
from alpaca.data.models import Bar  # noqa: E402
from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest, StockLatestBarRequest  # noqa: E402
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit  # noqa: E402
from alpaca.trading.client import TradingClient  # noqa: E402
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus  # noqa: E402
from alpaca.trading.models import TradeUpdate  # noqa: E402
from alpaca.trading.requests import (  # noqa: E402
    ClosePositionRequest,
    GetCalendarRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
)
from alpaca.trading.stream import TradingStream  # noqa: E402

from tests.alpaca_fake import FakeAlpaca, Faults  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca(symbols=("SPY", "QQQ", "IWM")) as server:
        yield server


def trading_client(fake: FakeAlpaca, read_timeout: float = 10.0) -> Any:
    """A TradingClient on the fake with a read timeout (the SDK has none) and fast retries (typed Any:
    the SDK returns ``Model | RawData`` unions)."""
    client: Any = TradingClient(fake.key_id, fake.secret_key, paper=True, url_override=fake.rest_url)
    client._session.request = functools.partial(client._session.request, timeout=(3.05, read_timeout))
    client._retry_wait = 0.05
    return client


@pytest.fixture
def client(fake: FakeAlpaca) -> Any:
    return trading_client(fake)


def market(symbol: str, qty: float, side: str = "buy", cid: str | None = None, tif: str = "day") -> MarketOrderRequest:
    return MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=tif, client_order_id=cid)


async def until(condition: Callable[[], Any], what: str, timeout: float = 8.0) -> None:
    """Wait (generously) for ``condition``; fail naming ``what`` when it never holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def listening(fake: FakeAlpaca) -> int:
    return sum(c["listening"] for c in fake.stream_connections() if c["kind"] == "trading")


def subscribed(fake: FakeAlpaca, kind: str) -> int:
    return sum(bool(c["bars"]) for c in fake.stream_connections() if c["kind"] == kind)


async def run_streams(fake: FakeAlpaca, streams: list[Any], body: Callable[[], Awaitable[None]]) -> None:
    """Run SDK streams in this loop (notes §8), run ``body``, then stop them: stop_ws() plus a server-side
    close, so the SDK's 5-second poll does not slow the test down."""
    tasks = [asyncio.create_task(s._run_forever()) for s in streams]
    try:
        await body()
    finally:
        for s in streams:
            await s.stop_ws()
        fake.faults.drop_trading_stream()
        fake.faults.drop_data_stream()
        done, pending = await asyncio.wait(tasks, timeout=8)
        for t in pending:
            t.cancel()
        for t in done:
            t.result()
        assert not pending, "a stream did not stop"


# ============================================================================== trading REST


def test_account_clock_calendar_parse(fake: FakeAlpaca, client: Any) -> None:
    account = client.get_account()
    assert account.account_number == fake.account_number
    assert float(account.cash) == 100_000.0 and float(account.equity) == 100_000.0
    clock = client.get_clock()
    assert clock.is_open  # 2024-01-02 09:31 New York, a Tuesday
    assert clock.next_close == datetime(2024, 1, 2, 21, 0, tzinfo=timezone.utc)
    days = client.get_calendar(GetCalendarRequest(start=date(2024, 1, 5), end=date(2024, 1, 9)))
    assert [d.date for d in days] == [date(2024, 1, 5), date(2024, 1, 8), date(2024, 1, 9)]  # no weekend
    assert (days[0].open.hour, days[0].open.minute, days[0].close.hour) == (9, 30, 16)


def test_order_lifecycle_positions_and_cash(fake: FakeAlpaca, client: Any) -> None:
    price = fake.last_price("SPY")
    accepted = client.submit_order(market("SPY", 3, cid="buy-1"))
    assert accepted.status == OrderStatus.ACCEPTED and accepted.client_order_id == "buy-1"
    filled = client.get_order_by_id(accepted.id)
    assert filled.status == OrderStatus.FILLED and float(filled.filled_avg_price) == price
    assert client.get_order_by_client_id("buy-1").id == accepted.id
    position = client.get_open_position("SPY")
    assert (float(position.qty), float(position.avg_entry_price), position.side.value) == (3.0, price, "long")
    assert fake.positions() == {"SPY": 3.0}
    assert fake.cash == pytest.approx(100_000.0 - 3 * price)
    notional = client.submit_order(MarketOrderRequest(symbol="QQQ", notional=250.5, side="buy",
                                                      time_in_force="day"))
    assert float(client.get_order_by_id(notional.id).filled_qty) == pytest.approx(250.5 / fake.last_price("QQQ"))
    # A sell beyond the position opens a short (shorting is allowed for equities).
    client.submit_order(market("IWM", 2, side="sell"))
    short = client.get_open_position("IWM")
    assert (float(short.qty), short.side.value) == (-2.0, "short")
    assert {p.symbol for p in client.get_all_positions()} == {"SPY", "QQQ", "IWM"}
    close = client.close_position("SPY", ClosePositionRequest(qty="1"))
    assert close.side == OrderSide.SELL and fake.positions()["SPY"] == 2.0
    client.submit_order(market("BTC/USD", 0.25, tif="gtc"))  # crypto: fractional, GTC
    assert [client.get_open_position(s).qty for s in ("BTC/USD", "BTCUSD")] == ["0.25", "0.25"]
    assert client.get_open_position("BTC/USD").asset_class.value == "crypto"
    closed = client.close_all_positions(cancel_orders=True)
    assert sorted(r.symbol for r in closed) == ["BTC/USD", "IWM", "QQQ", "SPY"] and fake.positions() == {}
    assert [e["client_order_id"] for e in fake.executions()][0] == "buy-1"


def test_resting_orders_cancel_replace_and_listing(fake: FakeAlpaca, client: Any) -> None:
    price = fake.last_price("SPY")
    limit = client.submit_order(LimitOrderRequest(symbol="SPY", qty=2, side="buy", time_in_force="gtc",
                                                  limit_price=round(price * 0.5, 2), client_order_id="L1"))
    stop = client.submit_order(StopOrderRequest(symbol="SPY", qty=1, side="buy", time_in_force="gtc",
                                                stop_price=round(price * 2, 2)))
    stop_limit = client.submit_order(StopLimitOrderRequest(symbol="QQQ", qty=1, side="sell", time_in_force="day",
                                                           stop_price=1.0, limit_price=0.5))
    client.submit_order(market("QQQ", 1, cid="done"))
    ioc = dict(symbol="SPY", qty=1, side="buy", time_in_force="ioc")
    missed = client.submit_order(LimitOrderRequest(**ioc, limit_price=round(price * 0.9, 2)))
    hit = client.submit_order(LimitOrderRequest(**ioc, limit_price=round(price * 1.1, 2)))
    assert client.get_order_by_id(missed.id).status == OrderStatus.CANCELED  # IOC: not marketable
    assert float(client.get_order_by_id(hit.id).filled_avg_price) == price  # marketable: at the last close
    open_ids = {o.id for o in client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))}
    assert open_ids == {limit.id, stop.id, stop_limit.id}
    closed = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    assert [o.client_order_id for o in closed][-1] == "done" and len(closed) == 3
    everything = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, direction="asc"))
    assert [o.id for o in everything][:3] == [limit.id, stop.id, stop_limit.id]
    assert [o.id for o in client.get_orders(GetOrdersRequest(status="all", symbols=["QQQ"], limit=1))] != []
    after = client.get_orders(GetOrdersRequest(status="all", after=everything[1].submitted_at, direction="asc"))
    assert [o.id for o in after] == [o.id for o in everything[2:]]
    replaced = client.replace_order_by_id(limit.id, ReplaceOrderRequest(qty=5, limit_price=round(price * 0.6, 2)))
    assert replaced.replaces == limit.id and float(replaced.qty) == 5
    old = client.get_order_by_id(limit.id)
    assert old.status == OrderStatus.REPLACED and old.replaced_by == replaced.id
    assert client.cancel_order_by_id(stop.id) is None
    assert client.get_order_by_id(stop.id).status == OrderStatus.CANCELED
    responses = client.cancel_orders()
    assert {r.id for r in responses} == {replaced.id, stop_limit.id} and {r.status for r in responses} == {200}
    assert client.get_orders() == []
    fake.expire_day_orders()  # nothing open any more: no effect
    assert [o["status"] for o in fake.orders()].count("expired") == 0


def test_error_bodies(fake: FakeAlpaca, client: Any) -> None:
    with pytest.raises(APIError) as e:
        client.get_order_by_id(str(uuid.uuid4()))
    assert (e.value.status_code, e.value.code, e.value.message) == (404, 40410000, "order not found")
    with pytest.raises(APIError) as e:
        client.get_order_by_client_id("nope")
    assert e.value.status_code == 404
    with pytest.raises(APIError) as e:
        client.get_open_position("SPY")
    assert (e.value.status_code, e.value.message) == (404, "position does not exist")
    order = client.submit_order(market("SPY", 1))
    with pytest.raises(APIError) as e:
        client.cancel_order_by_id(order.id)
    assert (e.value.status_code, e.value.code, e.value.message) == (422, 42210000, 'order is already in "filled" state')
    with pytest.raises(APIError) as e:
        client.submit_order(market("SPY", 5_000))  # 5,000 x ~100 USD > 100,000 USD
    assert (e.value.status_code, e.value.code, e.value.message) == (403, 40310000, "insufficient buying power")
    assert json.loads(str(e.value))["buying_power"] == f"{fake.cash:.9f}".rstrip("0").rstrip(".")
    with pytest.raises(APIError) as e:
        client.submit_order(market("BTC/USD", 1, side="sell", tif="gtc"))  # crypto cannot be shorted
    assert e.value.status_code == 403 and e.value.message.startswith("insufficient qty available for order")
    with pytest.raises(APIError) as e:
        client.submit_order(market("NOPE", 1))
    assert e.value.status_code == 422 and "NOPE" in e.value.message
    bad: Any = TradingClient(fake.key_id, "wrong-secret", url_override=fake.rest_url)
    with pytest.raises(APIError) as e:
        bad.get_account()
    assert (e.value.status_code, e.value.code, e.value.message) == (401, 40110000, "request is not authorized")
    assert "wrong-secret" not in str(e.value)


def test_validation_errors_are_422_naming_the_field(fake: FakeAlpaca) -> None:
    headers = {"APCA-API-KEY-ID": fake.key_id, "APCA-API-SECRET-KEY": fake.secret_key}
    cases = [({"symbol": "SPY", "side": "buy", "type": "limit", "time_in_force": "day", "qty": 1}, "limit_price"),
             ({"symbol": "SPY", "side": "buy", "type": "market", "time_in_force": "day"}, "qty"),
             ({"symbol": "SPY", "side": "buy", "type": "market", "time_in_force": "day", "qty": -1}, "qty"),
             ({"symbol": "SPY", "side": "up", "type": "market", "time_in_force": "day", "qty": 1}, "side"),
             ({"symbol": "SPY", "side": "buy", "type": "market", "time_in_force": "fok?", "qty": 1}, "time_in_force"),
             ({"symbol": "BTC/USD", "side": "buy", "type": "market", "time_in_force": "day", "qty": 1}, "crypto")]
    for body, word in cases:
        r = requests.post(f"{fake.rest_url}/v2/orders", json=body, headers=headers, timeout=5)
        assert r.status_code == 422 and r.json()["code"] == 40010001 and word in r.json()["message"], (body, r.text)
    assert fake.orders() == [] and fake.submit_attempts == len(cases)


def test_duplicate_client_order_id_is_422_even_for_closed_orders(fake: FakeAlpaca, client: Any) -> None:
    client.submit_order(market("SPY", 1, cid="same"))
    assert fake.orders()[0]["status"] == "filled"
    with pytest.raises(APIError) as e:
        client.submit_order(market("QQQ", 1, cid="same"))
    assert (e.value.status_code, e.value.code, e.value.message) == (422, 40010001, "client_order_id must be unique")
    assert len(fake.orders()) == 1


def test_outside_actions_show_in_rest(fake: FakeAlpaca, client: Any) -> None:
    external = fake.external_order("QQQ", "buy", 4)
    assert external["status"] == "filled" and client.get_open_position("QQQ").qty == "4"
    working = client.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side="buy", time_in_force="day",
                                                    limit_price=1.0, client_order_id="w1"))
    fake.cancel_outside("w1")
    assert client.get_order_by_id(working.id).status == OrderStatus.CANCELED
    with pytest.raises(ValueError, match="already canceled"):
        fake.cancel_outside("w1")
    with pytest.raises(KeyError, match="no order"):
        fake.cancel_outside("missing")
    fake.set_position("IWM", -7, 50.0)
    assert (client.get_open_position("IWM").qty, client.get_open_position("IWM").avg_entry_price) == ("-7", "50")
    client.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side="buy", time_in_force="day", limit_price=1.0,
                                          client_order_id="d1"))
    fake.expire_day_orders()
    assert client.get_order_by_client_id("d1").status == OrderStatus.EXPIRED


# ============================================================================== faults on REST


def test_execute_then_504_leaves_exactly_one_order(fake: FakeAlpaca, client: Any) -> None:
    fake.faults.execute_then_504(1)
    with pytest.raises(APIError) as e:  # the SDK retries the 504; the retry hits the duplicate id
        client.submit_order(market("SPY", 2, cid="once"))
    assert (e.value.status_code, e.value.code) == (422, 40010001)
    assert fake.submit_attempts == 2 and len(fake.orders()) == 1
    assert client.get_order_by_client_id("once").status == OrderStatus.FILLED
    assert [s for m, p, s in fake.requests() if p == "/v2/orders"] == [504, 422]


def test_rate_limit_then_success(fake: FakeAlpaca, client: Any) -> None:
    fake.faults.rate_limit(2, path="/v2/account", retry_after=3)
    assert client.get_account().account_number == fake.account_number
    assert [s for m, p, s in fake.requests() if p == "/v2/account"] == [429, 429, 200]
    fake.faults.rate_limit(1, path="/v2/clock", method="GET")
    r = requests.get(f"{fake.rest_url}/v2/clock", headers={"APCA-API-KEY-ID": fake.key_id,
                                                           "APCA-API-SECRET-KEY": fake.secret_key}, timeout=5)
    assert (r.status_code, r.headers["Retry-After"], r.json()) == (
        429, "1", {"code": 42910000, "message": "rate limit exceeded"})
    fake.faults.rate_limit(9, path="/v2/orders", method="DELETE")  # does not match a GET
    assert client.get_orders() == [] and fake.faults.pending() == 9


def test_server_error_html_502_body(fake: FakeAlpaca, client: Any) -> None:
    fake.faults.server_error(1, status=502, html=True, path="/v2/positions")
    with pytest.raises(APIError) as e:
        client.get_all_positions()
    assert e.value.status_code == 502 and "<h1>502 Bad Gateway</h1>" in str(e.value)
    with pytest.raises(json.JSONDecodeError):
        _ = e.value.code  # the SDK's .code parses the body as JSON
    fake.faults.server_error(1, status=503)
    with pytest.raises(APIError) as e:
        client.get_clock()  # 5xx other than 504 is not retried
    assert (e.value.status_code, e.value.code) == (503, 50310000)
    assert client.get_all_positions() == []


def test_stall_past_client_timeout(fake: FakeAlpaca) -> None:
    client = trading_client(fake, read_timeout=0.3)
    fake.faults.stall(1, seconds=1.0, path="/v2/orders", method="POST", execute=True)
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.submit_order(market("SPY", 1, cid="stalled"))
    assert client.get_order_by_client_id("stalled").status == OrderStatus.FILLED  # it exists at once
    fake.faults.stall(1, seconds=1.0, path="/v2/orders", method="POST", execute=False)
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.submit_order(market("SPY", 1, cid="late"))
    with pytest.raises(APIError):
        client.get_order_by_client_id("late")  # not yet: it takes effect after the stall
    deadline = time.monotonic() + 5
    while not any(o["client_order_id"] == "late" for o in fake.orders()):
        assert time.monotonic() < deadline, "the stalled order never took effect"
        time.sleep(0.05)
    assert fake.submit_attempts == 2


def test_reject_orders_and_reject_after_accept(fake: FakeAlpaca, client: Any) -> None:
    fake.faults.reject_orders(1, status=403, message="insufficient buying power")
    with pytest.raises(APIError) as e:
        client.submit_order(market("SPY", 1))
    assert (e.value.status_code, e.value.code, e.value.message) == (403, 40310000, "insufficient buying power")
    assert fake.orders() == [] and fake.submit_attempts == 1
    fake.faults.reject_after_accept(1)
    accepted = client.submit_order(market("SPY", 1, cid="r1"))
    assert accepted.status == OrderStatus.ACCEPTED
    assert client.get_order_by_client_id("r1").status == OrderStatus.REJECTED
    assert [e["event"] for e in fake.events_sent()] == ["rejected"] and fake.positions() == {}


def test_faults_validate_their_arguments() -> None:
    faults = Faults()
    with pytest.raises(ValueError, match="n must be an int"):
        faults.rate_limit(0)
    with pytest.raises(ValueError, match="5xx"):
        faults.server_error(1, status=404)
    with pytest.raises(ValueError, match="path must be"):
        faults.stall(1, 1.0, path="v2/orders")
    with pytest.raises(ValueError, match="refuse_for"):
        faults.drop_data_stream(refuse_for=-1)
    with pytest.raises(ValueError, match="fill_mode"):
        FakeAlpaca(fill_mode="later")


# ============================================================================== matching rules


def test_next_bar_limit_and_stop_matching() -> None:
    with FakeAlpaca(symbols=("SPY",), fill_mode="next_bar", seed=3) as fake:
        client = trading_client(fake)
        last = fake.last_price("SPY")
        client.submit_order(market("SPY", 1, cid="m"))
        buy_limit = round(last * 0.999, 2)
        client.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side="buy", time_in_force="gtc",
                                              limit_price=buy_limit, client_order_id="lim"))
        sell_stop = round(last * 0.998, 2)
        client.submit_order(StopOrderRequest(symbol="SPY", qty=1, side="sell", time_in_force="gtc",
                                             stop_price=sell_stop, client_order_id="stp"))
        assert fake.executions() == []  # next_bar: nothing fills at submission
        bars = [b for b in fake.advance(1) if b["S"] == "SPY"]
        fills = {e["client_order_id"]: e["price"] for e in fake.executions()}
        assert fills["m"] == bars[0]["o"]
        for _ in range(300):
            if {"lim", "stp"} <= set(fills):
                break
            bars += [b for b in fake.advance(1) if b["S"] == "SPY"]
            fills = {e["client_order_id"]: e["price"] for e in fake.executions()}
        by_cid = {o["client_order_id"]: o for o in fake.orders()}
        # The bar that filled each order is the first one after submission meeting its condition.
        lim_bar = next(b for b in bars if b["l"] <= buy_limit)
        stp_bar = next(b for b in bars if b["l"] <= sell_stop)
        assert fills["lim"] == min(lim_bar["o"], buy_limit)
        assert fills["stp"] == min(stp_bar["o"], sell_stop)
        assert by_cid["lim"]["status"] == by_cid["stp"]["status"] == "filled"


def test_stop_limit_triggers_then_works_as_limit() -> None:
    with FakeAlpaca(symbols=("SPY",), seed=5) as fake:
        client = trading_client(fake)
        last = fake.last_price("SPY")
        stop, limit = round(last * 1.001, 2), round(last * 1.0015, 2)
        client.submit_order(StopLimitOrderRequest(symbol="SPY", qty=1, side="buy", time_in_force="gtc",
                                                  stop_price=stop, limit_price=limit, client_order_id="sl"))
        bars: list[dict[str, Any]] = []
        while not fake.executions() and len(bars) < 600:
            bars += [b for b in fake.advance(1) if b["S"] == "SPY"]
        trigger = next(i for i, b in enumerate(bars) if b["h"] >= stop)
        price = fake.executions()[0]["price"]
        at_trigger = max(bars[trigger]["o"], stop)
        if at_trigger <= limit:
            assert price == at_trigger and len(bars) == trigger + 1
        else:  # gapped through the limit: it fills later, as a limit
            fill_bar = next(b for b in bars[trigger + 1:] if b["l"] <= limit)
            assert price == min(fill_bar["o"], limit)


def test_hold_fills_and_partial_fills(fake: FakeAlpaca, client: Any) -> None:
    fake.faults.hold_fills = True
    held = client.submit_order(market("SPY", 10, cid="held"))
    fake.advance(2)
    assert client.get_order_by_id(held.id).status == OrderStatus.NEW and fake.executions() == []
    fake.faults.hold_fills = False
    fake.faults.partial_fills = 3
    bar = next(b for b in fake.advance(1) if b["S"] == "SPY")
    assert [(e["qty"], e["cum_qty"], e["price"]) for e in fake.executions()] == [
        (4.0, 4.0, bar["o"]), (3.0, 7.0, bar["o"]), (3.0, 10.0, bar["o"])]
    assert [e["event"] for e in fake.events_sent()] == ["new", "partial_fill", "partial_fill", "fill"]
    assert [e["position_qty"] for e in fake.events_sent()[1:]] == ["4", "7", "10"]
    assert client.get_order_by_id(held.id).status == OrderStatus.FILLED


# ============================================================================== history


def test_bar_pagination_returns_every_bar_once() -> None:
    with FakeAlpaca(symbols=("SPY", "QQQ", "IWM"), history_minutes=23, page_limit=5) as fake:
        data: Any = StockHistoricalDataClient(fake.key_id, fake.secret_key, url_override=fake.rest_url)
        barset = data.get_stock_bars(StockBarsRequest(symbol_or_symbols=["SPY", "QQQ", "IWM"],
                                                      timeframe=TimeFrame.Minute))
        for symbol in ("SPY", "QQQ", "IWM"):
            got = [(b.timestamp, b.open, b.close) for b in barset[symbol]]
            want = [(b["t"], b["o"], b["c"]) for b in fake.published_bars(symbol)]
            assert got == want and len(got) == 23
        pages = [p for m, p, s in fake.requests() if p == "/v2/stocks/bars"]
        assert len(pages) == math.ceil(69 / 5)
        tokens = [r["query"].get("page_token") for r in fake.request_log() if r["path"] == "/v2/stocks/bars"]
        assert tokens[0] is None and len(set(tokens[1:])) == len(pages) - 1  # each page asked once
        fake.faults.server_error(1, status=500, path="/v2/stocks/bars", skip=1)  # the 2nd page fails
        with pytest.raises(APIError) as e:
            data.get_stock_bars(StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame.Minute))
        assert e.value.status_code == 500
        assert [s for m, p, s in fake.requests() if p == "/v2/stocks/bars"][-2:] == [200, 500]
        limited = data.get_stock_bars(StockBarsRequest(symbol_or_symbols=["SPY", "QQQ", "IWM"],
                                                       timeframe=TimeFrame.Minute, limit=5))
        assert sum(len(v) for v in limited.data.values()) == 5
        # Only published bars are served; advance() publishes the next one.
        end = fake.now_ts + timedelta(minutes=10)
        one = StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame.Minute, start=fake.now_ts, end=end)
        assert len(data.get_stock_bars(one)["SPY"]) == 1
        fake.advance(1)
        assert [b.timestamp for b in data.get_stock_bars(one)["SPY"]] == [fake.now_ts - timedelta(minutes=1),
                                                                        fake.now_ts]


def test_bar_aggregation_and_sort() -> None:
    with FakeAlpaca(symbols=("SPY",), history_minutes=2 * 1440) as fake:
        data: Any = StockHistoricalDataClient(fake.key_id, fake.secret_key, url_override=fake.rest_url)
        minutes = fake.published_bars("SPY")
        five = data.get_stock_bars(StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame(5, TimeFrameUnit.Minute),
                                                    start=minutes[0]["t"], end=minutes[9]["t"]))["SPY"]
        assert [b.timestamp for b in five] == [minutes[0]["t"], minutes[5]["t"]]
        first = minutes[:5]
        assert (five[0].open, five[0].high, five[0].low, five[0].close, five[0].volume) == (
            first[0]["o"], max(b["h"] for b in first), min(b["l"] for b in first), first[-1]["c"],
            sum(b["v"] for b in first))
        days = data.get_stock_bars(StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame.Day))["SPY"]
        assert all(b.timestamp.astimezone(timezone.utc).hour == 5 for b in days)  # midnight New York (EST)
        assert sum(b.volume for b in days) == sum(b["v"] for b in minutes)
        desc = data.get_stock_bars(StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame.Hour,
                                                    sort="desc", limit=3))["SPY"]
        assert [b.timestamp for b in desc] == sorted((b.timestamp for b in desc), reverse=True)
        latest = data.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols="SPY"))["SPY"]
        assert latest.timestamp == fake.now_ts
        with pytest.raises(APIError) as e:
            data.get_stock_bars(StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame(1, TimeFrameUnit.Week)))
        assert e.value.status_code == 400 and "timeframe" in e.value.message


def test_crypto_bars_need_no_keys(fake: FakeAlpaca) -> None:
    data: Any = CryptoHistoricalDataClient(url_override=fake.rest_url)
    bars = data.get_crypto_bars(CryptoBarsRequest(symbol_or_symbols="BTC/USD", timeframe=TimeFrame.Minute,
                                                  start=fake.now_ts - timedelta(minutes=4)))["BTC/USD"]
    assert [b.close for b in bars] == [b["c"] for b in fake.published_bars("BTC/USD")[-5:]]
    assert all(isinstance(b, Bar) and b.vwap is not None for b in bars)


def test_fill_activities_paging(fake: FakeAlpaca, client: Any) -> None:
    fake.faults.partial_fills = 2
    for i in range(3):
        client.submit_order(market("SPY", 2, cid=f"a{i}"))
    client.submit_order(market("QQQ", 1, cid="q"))  # one share: a single fill
    assert len(fake.executions()) == 7
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"page_size": 3}
    while True:
        page = client.get("/account/activities/FILL", params)
        seen += page
        if len(page) < 3:
            break
        params["page_token"] = page[-1]["id"]
    assert len(seen) == 7 and len({a["id"] for a in seen}) == 7
    assert [a["transaction_time"] for a in seen] == sorted((a["transaction_time"] for a in seen), reverse=True)
    assert [a["order_status"] for a in seen if a["symbol"] == "SPY"][:2] == ["filled", "partially_filled"]
    assert {a["type"] for a in seen} == {"fill", "partial_fill"}
    asc = client.get("/account/activities", {"activity_types": "FILL", "direction": "asc"})
    assert [a["id"] for a in asc] == [a["id"] for a in reversed(seen)]
    after = client.get("/account/activities/FILL", {"after": asc[4]["transaction_time"], "direction": "asc"})
    assert [a["id"] for a in after] == [a["id"] for a in asc[5:]]
    assert [float(a["cum_qty"]) for a in asc[:2]] == [1.0, 2.0] and asc[0]["leaves_qty"] == "1"


# ============================================================================== streams


def test_trade_updates_stream(fake: FakeAlpaca, client: Any) -> None:
    updates: list[TradeUpdate] = []

    async def on_update(u: Any) -> None:
        updates.append(u)

    stream = TradingStream(fake.key_id, fake.secret_key, paper=True, url_override=fake.trading_ws_url)
    stream.subscribe_trade_updates(on_update)

    async def body() -> None:
        await until(lambda: listening(fake) == 1, "the trading stream to listen")
        price = fake.last_price("SPY")
        order = await asyncio.to_thread(client.submit_order, market("SPY", 2, cid="s1"))
        await until(lambda: len(updates) >= 2, "new + fill")
        assert [(u.event, u.order.status) for u in updates] == [("new", OrderStatus.NEW), ("fill", OrderStatus.FILLED)]
        fill = updates[1]
        assert (fill.price, fill.qty, fill.position_qty, fill.order.id) == (price, 2.0, 2.0, order.id)
        assert isinstance(fill.execution_id, uuid.UUID)
        working = await asyncio.to_thread(client.submit_order, LimitOrderRequest(
            symbol="SPY", qty=1, side="buy", time_in_force="day", limit_price=1.0))
        await asyncio.to_thread(client.cancel_order_by_id, working.id)
        await until(lambda: len(updates) >= 4, "new + canceled")
        assert [u.event for u in updates[2:]] == ["new", "canceled"]
        fake.external_order("QQQ", "sell", 1)
        await until(lambda: len(updates) >= 6, "an outside order's events")
        assert updates[-1].order.symbol == "QQQ" and updates[-1].position_qty == -1.0

    asyncio.run(run_streams(fake, [stream], body))
    assert len(fake.events_sent()) == 6


def test_market_data_streams_receive_msgpack_bars(fake: FakeAlpaca) -> None:
    bars: list[Bar] = []

    async def on_bar(b: Any) -> None:
        bars.append(b)

    stocks = StockDataStream(fake.key_id, fake.secret_key, url_override=fake.data_ws_url)
    # 6,000 unlisted symbols make the subscribe message > 32 KiB: the SDK sends it in several fragments.
    fillers = [f"Z{i:05d}" for i in range(6_000)]
    stocks.subscribe_bars(on_bar, "SPY", "QQQ", *fillers)
    crypto = CryptoDataStream(fake.key_id, fake.secret_key, url_override=fake.crypto_ws_url)
    crypto.subscribe_bars(on_bar, "*")

    async def body() -> None:
        await until(lambda: subscribed(fake, "stocks") == 1 and subscribed(fake, "crypto") == 1, "subscriptions")
        subs = {c["kind"]: c["bars"] for c in fake.stream_connections()}
        assert len(subs["stocks"]) == 6_002 and subs["crypto"] == ["*"]
        published = fake.advance(2)
        await until(lambda: len(bars) >= 6, "two minutes of SPY, QQQ and BTC/USD bars")
        want = {(b["S"], b["t"], b["o"], b["h"], b["l"], b["c"], b["v"], b["n"], b["vw"])
                for b in published if b["S"] != "IWM"}
        got = {(b.symbol, b.timestamp, b.open, b.high, b.low, b.close, b.volume, b.trade_count, b.vwap) for b in bars}
        assert got == want

    asyncio.run(run_streams(fake, [stocks, crypto], body))
    assert [c for c in fake.stream_connections() if c["kind"] != "trading"] == []


def test_streams_reconnect_after_drop_and_lose_the_gap(fake: FakeAlpaca, client: Any) -> None:
    updates: list[TradeUpdate] = []
    bars: list[Bar] = []

    async def on_update(u: Any) -> None:
        updates.append(u)

    async def on_bar(b: Any) -> None:
        bars.append(b)

    trading = TradingStream(fake.key_id, fake.secret_key, url_override=fake.trading_ws_url)
    trading.subscribe_trade_updates(on_update)
    data = StockDataStream(fake.key_id, fake.secret_key, url_override=f"{fake.rest_url.replace('http', 'ws')}/v2/sip")
    data.subscribe_bars(on_bar, "SPY")

    async def body() -> None:
        await until(lambda: listening(fake) == 1 and subscribed(fake, "stocks") == 1, "both streams")
        fake.faults.drop_trading_stream(refuse_for=1.0)
        fake.faults.drop_data_stream(refuse_for=1.0)
        assert listening(fake) == 0 and subscribed(fake, "stocks") == 0
        await asyncio.to_thread(client.submit_order, market("SPY", 1, cid="gap"))  # nobody listens: lost
        fake.advance(1)
        await until(lambda: listening(fake) == 1 and subscribed(fake, "stocks") == 1, "both streams back")
        await asyncio.to_thread(client.submit_order, market("SPY", 1, cid="after"))
        published = fake.advance(1)
        await until(lambda: len(updates) >= 2 and len(bars) >= 1, "events after the reconnect")
        assert [u.order.client_order_id for u in updates] == ["after", "after"]
        assert [b.timestamp for b in bars] == [published[0]["t"]]

    asyncio.run(run_streams(fake, [trading, data], body))
    assert [e["order"]["client_order_id"] for e in fake.events_sent()] == ["gap", "gap", "after", "after"]
    upgrades = [p for m, p, s in fake.requests() if s == 101]
    assert upgrades.count("/stream") >= 2 and upgrades.count("/v2/sip") >= 2


def test_duplicate_and_reorder_flags_on_the_stream(fake: FakeAlpaca, client: Any) -> None:
    updates: list[TradeUpdate] = []

    async def on_update(u: Any) -> None:
        updates.append(u)

    stream = TradingStream(fake.key_id, fake.secret_key, url_override=fake.trading_ws_url)
    stream.subscribe_trade_updates(on_update)

    async def body() -> None:
        await until(lambda: listening(fake) == 1, "the trading stream")
        fake.faults.duplicate_updates = True
        await asyncio.to_thread(client.submit_order, market("SPY", 1, cid="dup"))
        await until(lambda: len(updates) >= 4, "duplicated events")
        assert [u.event for u in updates] == ["new", "new", "fill", "fill"]
        fake.faults.duplicate_updates = False
        fake.faults.reorder_updates = True
        fake.faults.partial_fills = 3
        await asyncio.to_thread(client.submit_order, market("SPY", 3, cid="rev"))
        await until(lambda: len(updates) >= 8, "reordered events")
        rev = updates[4:]
        assert [u.event for u in rev] == ["fill", "partial_fill", "partial_fill", "new"]
        assert [u.position_qty for u in rev[:3]] == [4.0, 3.0, 2.0]
        # A resting order's events are held until it is final; turning the flag off releases them.
        await asyncio.to_thread(client.submit_order, LimitOrderRequest(
            symbol="SPY", qty=1, side="buy", time_in_force="day", limit_price=1.0, client_order_id="rest"))
        await asyncio.sleep(0.2)
        assert len(updates) == 8
        fake.faults.reorder_updates = False
        await until(lambda: len(updates) >= 9, "the held event")
        assert (updates[8].event, updates[8].order.client_order_id) == ("new", "rest")

    asyncio.run(run_streams(fake, [stream], body))


class RawWebSocket:
    """A minimal blocking websocket client (RFC 6455, no extensions): its socket shows exactly what the
    server has written so far, with no reader thread or event loop in between."""

    def __init__(self, url: str) -> None:
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, message: dict[str, Any]) -> None:
        payload, mask = json.dumps(message).encode(), os.urandom(4)
        assert len(payload) < 126
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += self.sock.recv(n - len(out))
        return out

    def recv(self) -> dict[str, Any]:
        first, second = self._read(2)
        assert first & 0x0F in (0x1, 0x2), f"unexpected opcode {first & 0x0F}"
        n = second & 0x7F
        if n == 126:
            n = int.from_bytes(self._read(2), "big")
        elif n == 127:
            n = int.from_bytes(self._read(8), "big")
        return json.loads(self._read(n))

    def pending(self) -> bool:
        return bool(select.select([self.sock], [], [], 0)[0])


def test_events_before_reply_are_on_the_wire_when_the_reply_arrives(fake: FakeAlpaca, client: Any) -> None:
    ws = RawWebSocket(fake.trading_ws_url)
    ws.send({"action": "auth", "key": fake.key_id, "secret": fake.secret_key})
    assert ws.recv()["data"]["status"] == "authorized"
    ws.send({"action": "listen", "data": {"streams": ["trade_updates"]}})
    assert ws.recv() == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
    fake.faults.events_before_reply = True
    reply = client.submit_order(market("SPY", 1, cid="early"))
    assert reply.status == OrderStatus.ACCEPTED  # the reply is the acceptance snapshot, fill or not
    assert ws.pending(), "the stream events should already be on the socket"
    assert [ws.recv()["data"]["event"] for _ in range(2)] == ["new", "fill"]
    ws.sock.close()


def test_refuse_window_closes_new_connections_at_once(fake: FakeAlpaca) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    fake.faults.drop_data_stream(refuse_for=5.0)
    with connect(fake.data_ws_url) as ws, pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)  # closed before the "connected" message
    with connect(fake.trading_ws_url) as ws:  # the trading stream is not refused
        ws.send(json.dumps({"action": "auth", "key": fake.key_id, "secret": fake.secret_key}))
        assert json.loads(ws.recv(timeout=5))["data"]["status"] == "authorized"
    fake.faults.clear()
    with connect(fake.data_ws_url) as ws:
        assert ws.recv(timeout=5) == bytes.fromhex("9182a154a773756363657373a36d7367a9636f6e6e6563746564")


def test_data_stream_auth_errors(fake: FakeAlpaca) -> None:
    import msgpack  # type: ignore[import-untyped]
    from websockets.sync.client import connect

    with connect(fake.data_ws_url) as ws:
        assert msgpack.unpackb(ws.recv(timeout=5)) == [{"T": "success", "msg": "connected"}]
        ws.send(msgpack.packb({"action": "subscribe", "bars": ["SPY"]}))
        assert msgpack.unpackb(ws.recv(timeout=5))[0]["code"] == 401
        ws.send(msgpack.packb({"action": "auth", "key": fake.key_id, "secret": "wrong"}))
        assert msgpack.unpackb(ws.recv(timeout=5)) == [{"T": "error", "code": 402, "msg": "auth failed"}]


# ============================================================================== standalone


def test_main_serves_until_sigterm(tmp_path: Path) -> None:
    port_file = tmp_path / "fake.json"
    proc = subprocess.Popen([sys.executable, "-m", "tests.alpaca_fake", "--symbols", "SPY,QQQ", "--bar-interval",
                             "0.2", "--port-file", str(port_file)], cwd=REPO, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        info = json.loads(port_file.read_text())
        assert set(info) >= {"rest_url", "trading_ws_url", "data_ws_url", "crypto_ws_url"}
        assert info["data_ws_url"].endswith("/v2/iex") and info["crypto_ws_url"].endswith("/v1beta3/crypto/us")
        client: Any = TradingClient("PKFAKEKEY0000000", "fake-secret-0000", url_override=info["rest_url"])
        first = client.get_clock().timestamp
        while client.get_clock().timestamp == first:  # bars are published every 0.2 s
            assert time.monotonic() < deadline, "no bar was published"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        with proc.stderr:
            assert "fake-secret-0000" not in proc.stderr.read().decode()
