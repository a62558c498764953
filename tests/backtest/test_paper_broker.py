"""PaperBroker: fill rules as scenario tables of OHLC bars, partial fills, no look-ahead, cancels,
rejections, determinism, and an end-to-end pass through core (Order, Portfolio, Engine)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.broker import PaperBroker
from backtest.fill_model import FillConfig, FillModel
from core.clock import Clock
from core.engine import Engine
from core.enums import OrderStatus, OrderType, Side, TimeInForce, TradingState
from core.events import Bar, OrderAccepted, OrderCanceled, OrderExpired, OrderFilled, OrderRejected, SubmitOrder
from core.intents import OrderIntent
from core.orders import Order
from core.portfolio import Portfolio
from core.ports import Broker, SimulatedVenue
from core.time import to_nanos

NS = 1_000_000_000
MIN = 60 * NS
T0 = 1_700_000_040 * NS  # a minute boundary
BUY, SELL = Side.BUY, Side.SELL
MKT, LMT, STP, SLM = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT
ZERO = {"slippage_bps": 0.0}
TEN = {"slippage_bps": 10.0}


def make_order(client_order_id: str = "o-1", side: Side = BUY, quantity: float = 100.0,
               order_type: OrderType = MKT, limit: float | None = None, stop: float | None = None,
               symbol: str = "AAA", ts: int = T0, tif: TimeInForce = TimeInForce.GTC) -> Order:
    return Order(SubmitOrder(client_order_id=client_order_id, strategy_id="strat", symbol=symbol, side=side,
                             quantity=quantity, order_type=order_type, limit_price=limit, stop_price=stop,
                             time_in_force=tif, reason="test", ts_event=ts, ts_init=ts))


def accepted(client_order_id: str, broker_order_id: str, ts: int) -> OrderAccepted:
    return OrderAccepted(client_order_id=client_order_id, broker_order_id=broker_order_id, ts_event=ts, ts_init=ts)


def canceled(client_order_id: str, ts: int) -> OrderCanceled:
    return OrderCanceled(client_order_id=client_order_id, reason="canceled", ts_event=ts, ts_init=ts)


def make_bar(i: int, o: float, h: float, low: float, c: float, v: float = 1_000_000.0, symbol: str = "AAA") -> Bar:
    """Bar number ``i`` of one-minute bars: starts at T0 + i minutes, known one minute later."""
    return Bar(symbol, T0 + i * MIN, T0 + (i + 1) * MIN, o, h, low, c, v)


class Scenario(NamedTuple):
    config: dict[str, Any]
    order_type: OrderType
    side: Side
    price: float | None  # limit price for LIMIT, stop price for STOP and STOP_LIMIT
    bars: list[tuple[float, float, float, float, float]]  # open, high, low, close, volume
    expected: list[tuple[int, float, float, float]]  # (bar index, quantity, price, commission) per fill
    quantity: float = 100.0
    history: int = 0  # bars fed before the order is submitted at the start of bar ``history``
    limit: float | None = None  # limit price of a STOP_LIMIT


V = 1_000_000.0
SCENARIOS = {
    # market orders fill at the first eligible bar's open
    "market buy at open, 0 bps": Scenario(ZERO, MKT, BUY, None, [(100, 102, 99, 101, V)], [(0, 100, 100.0, 0)]),
    "market sell at open, 0 bps": Scenario(ZERO, MKT, SELL, None, [(100, 102, 99, 101, V)], [(0, 100, 100.0, 0)]),
    "market buy at open, 10 bps": Scenario(TEN, MKT, BUY, None, [(100, 102, 99, 101, V)], [(0, 100, 100.1, 0)]),
    "market sell at open, 10 bps": Scenario(TEN, MKT, SELL, None, [(100, 102, 99, 101, V)], [(0, 100, 99.9, 0)]),
    "market fills at the next open, not the decision bar": Scenario(
        ZERO, MKT, BUY, None, [(90, 95, 85, 92, V), (100, 102, 99, 101, V)], [(1, 100, 100.0, 0)], history=1),
    # volatility slippage from the previous bar's range: 0.5 x (104 - 96) / 100 = 4 %
    "volatility slippage, buy": Scenario(
        {"slippage_bps": 0.0, "slippage_volatility": 0.5}, MKT, BUY, None,
        [(99, 104, 96, 100, V), (100, 101, 99, 100, V)], [(1, 100, 104.0, 0)], history=1),
    "volatility slippage, sell, plus 10 bps": Scenario(
        {"slippage_bps": 10.0, "slippage_volatility": 0.5}, MKT, SELL, None,
        [(99, 104, 96, 100, V), (100, 101, 99, 100, V)], [(1, 100, 100 * (1 - 0.041), 0)], history=1),
    "volatility slippage uses the bar before the fill bar, not the fill bar": Scenario(
        {"slippage_bps": 0.0, "slippage_volatility": 1.0}, MKT, BUY, None,
        [(100, 101, 99, 100, V), (100, 101, 99, 100, V), (100, 150, 50, 100, V)], [(2, 100, 102.0, 0)], history=2),
    "volatility slippage without a previous bar is zero": Scenario(
        {"slippage_bps": 0.0, "slippage_volatility": 0.5}, MKT, BUY, None, [(100, 110, 90, 100, V)],
        [(0, 100, 100.0, 0)]),
    # limit buy at 99 / limit sell at 101
    "limit buy not reached": Scenario(TEN, LMT, BUY, 99.0, [(100, 101, 99.5, 100.5, V)], []),
    "limit buy touched by the low fills at the limit": Scenario(TEN, LMT, BUY, 99.0, [(100, 101, 98.5, 100, V)],
                                                                [(0, 100, 99.0, 0)]),
    "limit buy, open through the limit, 0 bps": Scenario(ZERO, LMT, BUY, 99.0, [(98, 99, 97, 98.5, V)],
                                                         [(0, 100, 98.0, 0)]),
    "limit buy, open through the limit, 10 bps": Scenario(TEN, LMT, BUY, 99.0, [(98, 99, 97, 98.5, V)],
                                                          [(0, 100, 98.098, 0)]),
    "limit buy, slippage capped at the limit": Scenario(TEN, LMT, BUY, 99.0, [(98.95, 99.5, 98, 99, V)],
                                                        [(0, 100, 99.0, 0)]),
    "limit buy fills on a later bar": Scenario(ZERO, LMT, BUY, 99.0,
                                               [(100, 101, 99.5, 100.5, V), (100, 100, 98, 99, V)],
                                               [(1, 100, 99.0, 0)]),
    "limit sell not reached": Scenario(TEN, LMT, SELL, 101.0, [(100, 100.9, 99, 100, V)], []),
    "limit sell touched by the high fills at the limit": Scenario(TEN, LMT, SELL, 101.0, [(100, 101.5, 99, 100, V)],
                                                                  [(0, 100, 101.0, 0)]),
    "limit sell, open through the limit, 10 bps": Scenario(TEN, LMT, SELL, 101.0, [(102, 103, 101.5, 102, V)],
                                                           [(0, 100, 101.898, 0)]),
    "limit sell, slippage capped at the limit": Scenario(TEN, LMT, SELL, 101.0, [(101.05, 101.5, 100.5, 101, V)],
                                                         [(0, 100, 101.0, 0)]),
    # stop buy at 101 / stop sell at 99
    "stop buy not triggered": Scenario(TEN, STP, BUY, 101.0, [(100, 100.5, 99, 100, V)], []),
    "stop buy triggered intrabar, 0 bps": Scenario(ZERO, STP, BUY, 101.0, [(100, 102, 99, 101.5, V)],
                                                   [(0, 100, 101.0, 0)]),
    "stop buy triggered intrabar, 10 bps": Scenario(TEN, STP, BUY, 101.0, [(100, 102, 99, 101.5, V)],
                                                    [(0, 100, 101.101, 0)]),
    "stop buy gapped through fills at the open": Scenario(TEN, STP, BUY, 101.0, [(103, 104, 102, 103.5, V)],
                                                          [(0, 100, 103.103, 0)]),
    "stop sell not triggered": Scenario(TEN, STP, SELL, 99.0, [(100, 101, 99.5, 100, V)], []),
    "stop sell triggered intrabar": Scenario(TEN, STP, SELL, 99.0, [(100, 101, 98, 98.5, V)],
                                             [(0, 100, 98.901, 0)]),
    "stop sell gapped through fills at the open": Scenario(ZERO, STP, SELL, 99.0, [(97, 98, 96, 97, V)],
                                                           [(0, 100, 97.0, 0)]),
    # commissions
    "per-share commission, minimum binds": Scenario(
        {"slippage_bps": 0.0, "commission_per_share": 0.005, "commission_minimum": 1.0}, MKT, BUY, None,
        [(100, 101, 99, 100, V)], [(0, 100, 100.0, 1.0)]),
    "per-share commission above the minimum": Scenario(
        {"slippage_bps": 0.0, "commission_per_share": 0.005, "commission_minimum": 1.0}, MKT, BUY, None,
        [(100, 101, 99, 100, V)], [(0, 1_000, 100.0, 5.0)], quantity=1_000.0),
    "minimum without per-share rate is ignored": Scenario(
        {"slippage_bps": 0.0, "commission_minimum": 1.0}, MKT, BUY, None, [(100, 101, 99, 100, V)],
        [(0, 100, 100.0, 0.0)]),
    "bps commission on the slipped notional": Scenario(
        {"slippage_bps": 10.0, "commission_bps": 5.0}, MKT, SELL, None, [(100, 101, 99, 100, V)],
        [(0, 100, 99.9, 100 * 99.9 * 5e-4)]),
    # participation cap: 10 % of volume per bar; the rest works on later bars
    "participation cap: partial fills over several bars": Scenario(
        {"slippage_bps": 0.0, "participation_cap": 0.1}, MKT, BUY, None,
        [(100, 101, 99, 100, 1_000), (101, 102, 100, 101, 1_000), (102, 103, 101, 102, 1_000),
         (103, 104, 102, 103, 1_000)],
        [(0, 100, 100.0, 0), (1, 100, 101.0, 0), (2, 50, 102.0, 0)], quantity=250.0),
    "participation cap: zero-volume bar fills nothing": Scenario(
        {"slippage_bps": 0.0, "participation_cap": 0.1}, MKT, BUY, None,
        [(100, 101, 99, 100, 0), (101, 102, 100, 101, 5_000)], [(1, 100, 101.0, 0)]),
    "participation cap: the minimum is paid once per order, not per partial fill": Scenario(
        {"slippage_bps": 0.0, "participation_cap": 0.5, "commission_per_share": 0.005, "commission_minimum": 1.0},
        MKT, SELL, None, [(100, 101, 99, 100, 100), (100, 101, 99, 100, 100)],
        [(0, 50, 100.0, 1.0), (1, 50, 100.0, 0.0)]),
    "participation cap: per-share commission beyond the minimum on later fills": Scenario(
        {"slippage_bps": 0.0, "participation_cap": 0.5, "commission_per_share": 0.005, "commission_minimum": 1.0},
        MKT, BUY, None, [(100, 101, 99, 100, 600)] * 3, [(0, 300, 100.0, 1.5), (1, 300, 100.0, 1.5),
                                                          (2, 100, 100.0, 0.5)], quantity=700.0),
    "whole shares: the cap is floored (12.7 -> 12)": Scenario(
        {"slippage_bps": 0.0, "participation_cap": 0.1, "fractional_shares": False}, MKT, BUY, None,
        [(100, 101, 99, 100, 127)] * 3, [(0, 12, 100.0, 0), (1, 12, 100.0, 0), (2, 6, 100.0, 0)], quantity=30.0),
    "whole shares: a cap under one share fills nothing on that bar": Scenario(
        {"slippage_bps": 0.0, "participation_cap": 0.1, "fractional_shares": False}, MKT, BUY, None,
        [(100, 101, 99, 100, 9), (101, 102, 100, 101, 25)], [(1, 2, 101.0, 0)], quantity=2.0),
    "whole shares: float noise does not lose a share (0.29 x 100 = 29)": Scenario(
        {"slippage_bps": 0.0, "participation_cap": 0.29, "fractional_shares": False}, MKT, BUY, None,
        [(100, 101, 99, 100, 100)], [(0, 29, 100.0, 0)], quantity=50.0),
    "fractional shares (default): the cap is not floored": Scenario(
        {"slippage_bps": 0.0, "participation_cap": 0.1}, MKT, BUY, None,
        [(100, 101, 99, 100, 127)], [(0, 12.7, 100.0, 0)], quantity=30.0),
    "participation cap: limit remainder stays a limit": Scenario(
        {"slippage_bps": 0.0, "participation_cap": 0.1}, LMT, BUY, 99.0,
        [(98, 99, 97, 98, 500), (100, 101, 99.5, 100, 5_000), (100, 100, 98.5, 99, 5_000)],
        [(0, 50, 98.0, 0), (2, 50, 99.0, 0)]),
    "participation cap: triggered stop remainder trades at later opens": Scenario(
        {"slippage_bps": 0.0, "participation_cap": 0.1}, STP, BUY, 101.0,
        [(100, 102, 99, 101, 500), (100, 100.5, 99, 100, 500)],
        [(0, 50, 101.0, 0), (1, 50, 100.0, 0)]),
    # stop-limit buy: stop 101 (price), limit in the last field; sell: stop 99
    "stop-limit buy not triggered": Scenario(TEN, SLM, BUY, 101.0, [(100, 100.9, 98, 100, V)], [], limit=101.5),
    "stop-limit buy triggers intrabar and fills at the stop, 0 bps": Scenario(
        ZERO, SLM, BUY, 101.0, [(100, 102, 99, 101.5, V)], [(0, 100, 101.0, 0)], limit=101.5),
    "stop-limit buy triggers intrabar, 10 bps from the stop": Scenario(
        TEN, SLM, BUY, 101.0, [(100, 102, 99, 101.5, V)], [(0, 100, 101.101, 0)], limit=101.5),
    "stop-limit buy triggers intrabar, slippage capped at the limit": Scenario(
        TEN, SLM, BUY, 101.0, [(100, 102, 99, 101.5, V)], [(0, 100, 101.05, 0)], limit=101.05),
    "stop-limit buy, limit at the stop: fills at the stop, no worse": Scenario(
        TEN, SLM, BUY, 101.0, [(100, 102, 99, 101.5, V)], [(0, 100, 101.0, 0)], limit=101.0),
    "stop-limit buy triggers but the limit is never reached": Scenario(
        ZERO, SLM, BUY, 101.0, [(100, 102, 99, 101.5, V), (101.2, 102, 100.5, 101, V), (101, 103, 100.2, 102, V)],
        [], limit=100.0),  # the trigger bar's low 99 may have come before the trigger: no fill
    "stop-limit buy triggered, limit touched on a later bar": Scenario(
        TEN, SLM, BUY, 101.0, [(100, 102, 99.5, 101.5, V), (101, 101.5, 99.8, 100.5, V)], [(1, 100, 100.0, 0)],
        limit=100.0),
    "stop-limit buy triggered, a later bar opens through the limit": Scenario(
        TEN, SLM, BUY, 101.0, [(100, 102, 99.5, 101.5, V), (99.5, 100, 99, 99.8, V)], [(1, 100, 99.5995, 0)],
        limit=100.0),
    "stop-limit buy triggers intrabar, the close back under the limit fills at the limit": Scenario(
        TEN, SLM, BUY, 101.0, [(100.5, 102, 99, 99.5, V)], [(0, 100, 100.0, 0)], limit=100.0),
    "stop-limit buy gaps through the stop, open within the limit": Scenario(
        TEN, SLM, BUY, 101.0, [(102, 104, 101.5, 103, V)], [(0, 100, 102.102, 0)], limit=103.0),
    "stop-limit buy gaps through stop and limit, the limit is never reached": Scenario(
        TEN, SLM, BUY, 101.0, [(103, 104, 102.5, 103.5, V), (103, 103.5, 102.2, 103, V)], [], limit=102.0),
    "stop-limit buy gaps through stop and limit, falls back to the limit on the gap bar": Scenario(
        TEN, SLM, BUY, 101.0, [(103, 104, 101.5, 103, V)], [(0, 100, 102.0, 0)], limit=102.0),
    "stop-limit buy: the decision bar's high does not trigger it": Scenario(
        ZERO, SLM, BUY, 101.0, [(100, 102, 99, 101.5, V), (100, 100.5, 99.5, 100, V)], [], history=1, limit=101.5),
    "stop-limit sell not triggered": Scenario(TEN, SLM, SELL, 99.0, [(100, 102, 99.1, 100, V)], [], limit=98.5),
    "stop-limit sell triggers intrabar, 10 bps from the stop": Scenario(
        TEN, SLM, SELL, 99.0, [(100, 101, 98, 98.5, V)], [(0, 100, 98.901, 0)], limit=98.5),
    "stop-limit sell triggers intrabar, slippage floored at the limit": Scenario(
        TEN, SLM, SELL, 99.0, [(100, 101, 98, 98.5, V)], [(0, 100, 98.95, 0)], limit=98.95),
    "stop-limit sell triggers, limit above the stop reached on a later bar": Scenario(
        ZERO, SLM, SELL, 99.0, [(100, 100.5, 98, 99, V), (99.2, 99.8, 99, 99.5, V)], [(1, 100, 99.5, 0)],
        limit=99.5),  # the trigger bar's high 100.5 came before the trigger, and its close 99 is under the limit
    "stop-limit sell gaps through stop and limit, rests until the limit": Scenario(
        ZERO, SLM, SELL, 99.0, [(97, 97.5, 96, 97, V), (97.5, 98.5, 97, 98, V)], [(1, 100, 98.0, 0)], limit=98.0),
    "stop-limit sell gaps through the stop, open above the limit": Scenario(
        ZERO, SLM, SELL, 99.0, [(98.5, 99, 97, 98, V)], [(0, 100, 98.5, 0)], limit=98.0),
    "participation cap: triggered stop-limit remainder stays a limit": Scenario(
        {"slippage_bps": 0.0, "participation_cap": 0.1}, SLM, BUY, 101.0,
        [(100, 102, 99, 101, 500), (102, 103, 101.8, 102.5, 500), (101.4, 102, 101, 101.5, 500)],
        [(0, 50, 101.0, 0), (2, 50, 101.4, 0)], limit=101.5),  # a STOP's remainder would take bar 1's open
}


@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_fill_scenarios(scenario: Scenario) -> None:
    broker = PaperBroker(FillConfig(**scenario.config))
    bars = [make_bar(i, *row) for i, row in enumerate(scenario.bars)]
    for bar in bars[:scenario.history]:
        assert broker.on_bar(bar) == ()
    submit_ts = T0 + scenario.history * MIN
    limit = scenario.price if scenario.order_type is LMT else scenario.limit
    stop = scenario.price if scenario.order_type in (STP, SLM) else None
    order = make_order("o-1", scenario.side, scenario.quantity, scenario.order_type, limit, stop, ts=submit_ts)
    assert broker.submit(order, submit_ts) == [accepted("o-1", "paper-1", submit_ts)]

    fills: list[tuple[int, OrderFilled]] = []
    for i, bar in enumerate(bars[scenario.history:], start=scenario.history):
        events = broker.on_bar(bar)
        assert all(isinstance(event, OrderFilled) for event in events)
        fills.extend((i, event) for event in events)

    assert len(fills) == len(scenario.expected)
    cum = 0.0
    for k, ((i, fill), (bar_index, quantity, price, commission)) in enumerate(zip(fills, scenario.expected), 1):
        cum += quantity
        bar = bars[bar_index]
        assert i == bar_index
        assert fill == OrderFilled(client_order_id="o-1", fill_id=f"paper-1-{k}", symbol="AAA", side=scenario.side,
                                   quantity=pytest.approx(quantity), price=pytest.approx(price, rel=1e-12),
                                   cum_quantity=pytest.approx(cum),
                                   commission=pytest.approx(commission, rel=1e-12, abs=1e-12),
                                   slippage=fill.slippage, ts_event=bar.ts_event, ts_init=bar.ts_init)
        assert fill.cum_quantity <= scenario.quantity
    filled = sum(quantity for _, quantity, _, _ in scenario.expected)
    assert broker.open_orders() == ([] if filled == scenario.quantity else ["o-1"])


# --- slippage cost on the fill --------------------------------------------------------------------
def test_stop_limit_fill_reports_slippage_cost_from_its_reference_price() -> None:
    broker = PaperBroker(FillConfig(slippage_bps=10.0))
    broker.submit(make_order("at-stop", order_type=SLM, stop=101.0, limit=101.5), T0)
    broker.submit(make_order("at-limit", order_type=SLM, stop=101.0, limit=100.0), T0)
    broker.submit(make_order("gap", order_type=SLM, stop=99.0, limit=102.0), T0)
    fills = [f for f in broker.on_bar(make_bar(0, 100.5, 102, 99, 99.5)) if isinstance(f, OrderFilled)]
    assert [(f.client_order_id, f.price) for f in fills] == [("at-stop", pytest.approx(101.101)),
                                                             ("at-limit", 100.0), ("gap", pytest.approx(100.6005))]
    # 100 shares x (101.101 - 101); a limit filled at the close-proven touch: 0; a gap: from the open
    assert [f.slippage for f in fills] == [pytest.approx(10.1), 0.0, pytest.approx(100 * 0.1005)]


@pytest.mark.parametrize("order_type, side, price, bar, bps, expected", [
    (MKT, BUY, None, (100, 102, 99, 101), 10.0, 100 * 0.1),  # 100 shares x (100.1 - 100)
    (MKT, SELL, None, (100, 102, 99, 101), 10.0, 100 * 0.1),
    (MKT, BUY, None, (100, 102, 99, 101), 0.0, 0.0),
    (LMT, BUY, 99.0, (100, 101, 98.5, 100), 10.0, 0.0),  # touched intrabar: filled at its limit
    (LMT, BUY, 99.0, (98, 99, 97, 98.5), 10.0, 100 * 0.098),  # through the open: slipped from the open
    (LMT, BUY, 99.0, (98.95, 99.5, 98, 99), 10.0, 100 * 0.05),  # slippage capped at the limit
    (LMT, SELL, 101.0, (102, 103, 101.5, 102), 10.0, 100 * 0.102),
    (STP, BUY, 101.0, (100, 102, 99, 101.5), 10.0, 100 * 0.101),  # from the stop price
    (STP, SELL, 99.0, (97, 98, 96, 97), 10.0, 100 * 0.097),  # gapped: from the open
])
def test_fill_reports_slippage_cost_in_usd(order_type: OrderType, side: Side, price: float | None,
                                           bar: tuple[float, float, float, float], bps: float,
                                           expected: float) -> None:
    broker = PaperBroker(FillConfig(slippage_bps=bps))
    limit = price if order_type is LMT else None
    stop = price if order_type is STP else None
    broker.submit(make_order(side=side, order_type=order_type, limit=limit, stop=stop), T0)
    (fill,) = broker.on_bar(make_bar(0, *bar))
    assert fill.slippage == pytest.approx(expected, rel=1e-9, abs=1e-12)


# --- B9: the commission minimum is charged once per order ------------------------------------------
def test_commission_minimum_is_charged_once_per_order_not_per_partial_fill() -> None:
    # 10 partial fills of 100 shares at 0.005 USD/share, 1 USD minimum: max(1,000 x 0.005, 1) = 5 USD
    broker = PaperBroker(FillConfig(slippage_bps=0.0, participation_cap=0.1, commission_per_share=0.005,
                                    commission_minimum=1.0))
    broker.submit(make_order(quantity=1_000.0), T0)
    fills = [fill for i in range(12) for fill in broker.on_bar(make_bar(i, 100, 101, 99, 100, 1_000))]
    assert [fill.quantity for fill in fills] == [100.0] * 10
    assert sum(fill.commission for fill in fills) == pytest.approx(5.0, rel=1e-12)
    assert fills[0].commission == 1.0
    assert all(fill.commission >= 0.0 for fill in fills)


@settings(max_examples=100, deadline=None)
@given(quantity=st.floats(1.0, 5_000.0), cap=st.floats(0.01, 1.0),
       volumes=st.lists(st.floats(0.0, 5_000.0), min_size=1, max_size=20),
       per_share=st.floats(0.0, 0.02), minimum=st.floats(0.0, 5.0))
def test_order_commission_is_max_of_per_share_and_minimum(quantity: float, cap: float, volumes: list[float],
                                                          per_share: float, minimum: float) -> None:
    broker = PaperBroker(FillConfig(slippage_bps=0.0, participation_cap=cap, commission_per_share=per_share,
                                    commission_minimum=minimum))
    broker.submit(make_order(quantity=quantity), T0)
    paid = 0.0
    for i, volume in enumerate(volumes):
        for fill in broker.on_bar(make_bar(i, 100, 101, 99, 100, volume)):
            assert fill.commission >= 0.0
            paid += fill.commission
            expected = max(fill.cum_quantity * per_share, minimum) if per_share > 0 else 0.0
            assert paid == pytest.approx(expected, rel=1e-9, abs=1e-12)


# --- B10: whole shares only with fractional_shares = false -----------------------------------------
@settings(max_examples=150, deadline=None)
@given(quantity=st.integers(1, 20_000), cap=st.floats(0.001, 1.0),
       volumes=st.lists(st.floats(0.0, 30_000.0), min_size=1, max_size=25), side=st.sampled_from([BUY, SELL]))
def test_whole_share_orders_fill_only_whole_shares(quantity: int, cap: float, volumes: list[float],
                                                   side: Side) -> None:
    broker = PaperBroker(FillConfig(slippage_bps=2.0, participation_cap=cap, fractional_shares=False))
    broker.submit(make_order(side=side, quantity=float(quantity)), T0)
    for i, volume in enumerate(volumes):
        for fill in broker.on_bar(make_bar(i, 100.0, 101.0, 99.0, 100.0, volume)):
            assert fill.quantity.is_integer() and fill.quantity >= 1.0
            assert fill.cum_quantity.is_integer() and fill.cum_quantity <= quantity
            assert fill.quantity <= cap * volume * (1 + 1e-9)  # the floor never rounds up past the cap


def test_fractional_remainder_of_a_fractional_order_still_fills() -> None:
    # an exit of a fractional position (e.g. restored) must be able to finish under whole-share caps
    broker = PaperBroker(FillConfig(slippage_bps=0.0, participation_cap=0.1, fractional_shares=False))
    broker.submit(make_order(quantity=12.5), T0)
    fills = [fill for i, volume in enumerate((124, 7, 30)) for fill in broker.on_bar(make_bar(i, 100, 101, 99, 100,
                                                                                                  volume))]
    # 12.4 allowed -> 12 whole shares; then 0.7 allowed: under one share, but the 0.5 left fits
    assert [fill.quantity for fill in fills] == [12.0, 0.5]
    assert broker.open_orders() == []


def _real_bars(series: Sequence[Any]) -> list[Bar]:
    """The bundled SPY/AAPL hourly bars in release order (ties by symbol), as replay feeds them."""
    bars = [Bar(s.symbol, int(s.ts_event[i]), int(s.ts_event[i]) + s.timeframe_ns, float(s.open[i]),
                float(s.high[i]), float(s.low[i]), float(s.close[i]), float(s.volume[i]))
            for s in series for i in range(len(s))]
    bars.sort(key=lambda bar: (bar.ts_init, bar.symbol))
    return bars


@pytest.mark.parametrize("fractional", [False, True])
def test_no_fractional_fill_on_real_bars_with_whole_shares(two_symbols: Sequence[Any], fractional: bool) -> None:
    """Replay-like: real hourly SPY/AAPL bars (2018-2019), a 20,000-share order every 40 bars per
    symbol under a 0.01 % participation cap, so almost every fill is a capped partial fill."""
    broker = PaperBroker(FillConfig(slippage_bps=2.0, participation_cap=0.0001, commission_per_share=0.005,
                                    commission_minimum=1.0, fractional_shares=fractional))
    fills: list[OrderFilled] = []
    for n, bar in enumerate(_real_bars(two_symbols)):
        fills.extend(broker.on_bar(bar))
        if n % 80 < 2:  # one order per symbol every 40 bars of each
            side = BUY if (n // 80) % 2 == 0 else SELL
            broker.submit(make_order(f"o-{n}", side, 20_000.0, symbol=bar.symbol, ts=bar.ts_init), bar.ts_init)
    partial = [fill for fill in fills if fill.cum_quantity < 20_000.0]
    assert len(fills) > 1_000 and len(partial) > len(fills) // 2
    fractional_fills = [fill for fill in fills if not fill.quantity.is_integer()]
    if fractional:
        assert fractional_fills  # the cap really binds at fractional allowances: the test can fail
    else:
        assert fractional_fills == []


# --- partial fills: property ---------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(quantity=st.floats(0.5, 50_000.0), cap=st.floats(0.01, 1.0),
       volumes=st.lists(st.one_of(st.just(0.0), st.floats(0.0, 20_000.0)), min_size=1, max_size=30),
       side=st.sampled_from([BUY, SELL]))
def test_partial_fills_never_exceed_quantity(quantity: float, cap: float, volumes: list[float], side: Side) -> None:
    broker = PaperBroker(FillConfig(slippage_bps=5.0, participation_cap=cap))
    broker.submit(make_order(side=side, quantity=quantity), T0)
    fills: list[OrderFilled] = []
    previous_cum = 0.0
    for i, volume in enumerate(volumes):
        events = broker.on_bar(make_bar(i, 100.0, 101.0, 99.0, 100.0, volume))
        assert len(events) <= 1
        for fill in events:
            assert fill.quantity >= 1e-9
            assert fill.quantity <= cap * volume + 1e-9
            assert fill.cum_quantity > previous_cum
            assert fill.cum_quantity == pytest.approx(previous_cum + fill.quantity, rel=1e-12)
            assert fill.cum_quantity <= quantity
            previous_cum = fill.cum_quantity
            fills.append(fill)
    allowed = min(quantity, sum(cap * volume for volume in volumes))
    # allowances below EPS_SHARES (1e-9 shares) are not traded, hence the absolute tolerance
    assert sum(fill.quantity for fill in fills) == pytest.approx(allowed, rel=1e-9, abs=1e-9 * len(volumes))
    assert sum(fill.quantity for fill in fills) <= quantity * (1 + 1e-12)
    complete = bool(fills) and fills[-1].cum_quantity == quantity
    assert broker.open_orders() == ([] if complete else ["o-1"])
    assert [fill.fill_id for fill in fills] == [f"paper-1-{k}" for k in range(1, len(fills) + 1)]


def test_partial_fills_reach_order_and_portfolio_exactly() -> None:
    # cum_quantity of the final fill equals the order quantity exactly, so Order reports FILLED
    broker = PaperBroker(FillConfig(slippage_bps=0.0, participation_cap=0.3))
    order = make_order(quantity=10.0)
    order.transition(OrderStatus.SUBMITTED, T0)
    broker.submit(order, T0)
    for i in range(10):
        for fill in broker.on_bar(make_bar(i, 100, 101, 99, 100, 7.0)):
            order.apply_fill(fill.cum_quantity, fill.price, fill.commission, fill.ts_init)
    assert order.status is OrderStatus.FILLED
    assert order.filled_quantity == 10.0
    assert broker.open_orders() == []


# --- no look-ahead -------------------------------------------------------------------------------
def test_order_is_not_filled_by_a_bar_that_started_before_it() -> None:
    broker = PaperBroker(FillConfig(slippage_bps=0.0))
    decision = T0 + MIN  # close of bar 0 of every symbol
    broker.submit(make_order(symbol="BBB", ts=decision), decision)
    # BBB's bar 0 shares its timestamp with the AAA bar that triggered the decision: not usable
    assert broker.on_bar(make_bar(0, 50, 51, 49, 50, symbol="BBB")) == ()
    assert broker.open_orders() == ["o-1"]
    fills = broker.on_bar(make_bar(1, 52, 53, 51, 52, symbol="BBB"))
    assert [(f.price, f.quantity, f.ts_event) for f in fills] == [(52.0, 100.0, decision)]
    assert broker.open_orders() == []


def test_bars_of_other_symbols_do_not_fill() -> None:
    broker = PaperBroker(FillConfig(slippage_bps=0.0))
    broker.submit(make_order(symbol="AAA"), T0)
    assert broker.on_bar(make_bar(0, 10, 11, 9, 10, symbol="BBB")) == ()
    assert broker.open_orders() == ["o-1"]


def test_orders_of_a_symbol_fill_in_submission_order() -> None:
    broker = PaperBroker(FillConfig(slippage_bps=0.0))
    broker.submit(make_order("a", SELL, 10.0), T0)
    broker.submit(make_order("b", BUY, 20.0, LMT, limit=90.0), T0)  # not reached
    broker.submit(make_order("c", BUY, 30.0), T0)
    broker.submit(make_order("d", BUY, 40.0, ts=T0 + MIN), T0 + MIN)  # too late for bar 0
    fills = broker.on_bar(make_bar(0, 100, 101, 99, 100))
    assert [(f.client_order_id, f.fill_id, f.quantity) for f in fills] == [("a", "paper-1-1", 10.0),
                                                                          ("c", "paper-3-1", 30.0)]
    assert broker.open_orders() == ["b", "d"]
    fills = broker.on_bar(make_bar(1, 89, 91, 88, 90))
    assert [(f.client_order_id, f.price) for f in fills] == [("b", 89.0), ("d", 89.0)]
    assert broker.open_orders() == []


# --- hot path and determinism --------------------------------------------------------------------
def test_no_order_bar_returns_shared_empty_tuple() -> None:
    broker = PaperBroker(FillConfig())
    first = broker.on_bar(make_bar(0, 10, 11, 9, 10))
    second = broker.on_bar(make_bar(1, 10, 11, 9, 10, symbol="BBB"))
    assert first == () and first is second


def test_previous_bar_tracked_only_with_volatility_slippage() -> None:
    # the range of a bar seen while no order was working still prices the next fill
    broker = PaperBroker(FillConfig(slippage_bps=0.0, slippage_volatility=1.0))
    broker.on_bar(make_bar(0, 100, 105, 95, 100))
    broker.submit(make_order(ts=T0 + MIN), T0 + MIN)
    (fill,) = broker.on_bar(make_bar(1, 100, 101, 99, 100))
    assert fill.price == pytest.approx(110.0)
    assert broker._ranges is not None
    assert PaperBroker(FillConfig(slippage_volatility=0.0))._ranges is None


def _run(seed_bars: Sequence[Bar]) -> list[Any]:
    broker = PaperBroker(FillModel(FillConfig(slippage_bps=3.0, slippage_volatility=0.2, participation_cap=0.2,
                                              commission_per_share=0.01, commission_minimum=1.0)))
    events: list[Any] = []
    events += broker.submit(make_order("m", BUY, 300.0), T0)
    events += broker.submit(make_order("l", SELL, 200.0, LMT, limit=101.5), T0)
    events += broker.submit(make_order("s", SELL, 100.0, STP, stop=98.5), T0)
    for bar in seed_bars:
        events += broker.on_bar(bar)
    return events


def test_deterministic() -> None:
    bars = [make_bar(i, 100 + (i % 5) - 2, 102 + (i % 3), 97 + (i % 2), 100, 500 + 100 * (i % 4)) for i in range(20)]
    assert _run(bars) == _run(bars)


# --- cancel ------------------------------------------------------------------------------------
def test_cancel_pending_order() -> None:
    broker = PaperBroker(FillConfig())
    order = make_order()
    broker.submit(order, T0)
    assert broker.cancel(order, T0 + 5) == [canceled("o-1", T0 + 5)]
    assert broker.open_orders() == []
    assert broker.on_bar(make_bar(0, 100, 101, 99, 100)) == ()
    assert broker.cancel(order, T0 + 6) == []


def test_cancel_partially_filled_remainder_and_filled_order() -> None:
    broker = PaperBroker(FillConfig(participation_cap=0.1))
    partial, other = make_order("p", quantity=500.0), make_order("q", quantity=10.0)
    broker.submit(partial, T0)
    broker.submit(other, T0)
    fills = broker.on_bar(make_bar(0, 100, 101, 99, 100, 1_000))
    assert [(f.client_order_id, f.quantity) for f in fills] == [("p", 100.0), ("q", 10.0)]
    assert broker.cancel(other, T0 + MIN) == []  # already filled
    assert broker.cancel(partial, T0 + MIN) == [canceled("p", T0 + MIN)]
    assert broker.on_bar(make_bar(1, 100, 101, 99, 100, 1_000)) == ()


def test_cancel_unknown_order() -> None:
    assert PaperBroker(FillConfig()).cancel(make_order("nope"), T0) == []


# --- rejections ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, reason", [
    ({"quantity": 0.0}, "quantity must be a positive"),
    ({"quantity": -5.0}, "quantity must be a positive"),
    ({"quantity": math.nan}, "quantity must be a positive"),
    ({"quantity": math.inf}, "quantity must be a positive"),
    ({"order_type": LMT}, "limit order requires limit_price"),
    ({"order_type": STP}, "stop order requires stop_price"),
    ({"order_type": LMT, "limit": 0.0}, "limit_price must be a positive"),
    ({"order_type": LMT, "limit": -1.0}, "limit_price must be a positive"),
    ({"order_type": STP, "stop": 0.0}, "stop_price must be a positive"),
    ({"order_type": STP, "stop": math.nan}, "stop_price must be a positive"),
    ({"order_type": SLM, "limit": 101.5}, "stop_limit order requires stop_price and limit_price, stop_price missing"),
    ({"order_type": SLM, "stop": 101.0}, "stop_limit order requires stop_price and limit_price, limit_price missing"),
    ({"order_type": SLM}, "stop_price and limit_price missing"),
    ({"order_type": SLM, "stop": 101.0, "limit": math.inf}, "limit_price must be a positive"),
    ({"order_type": SLM, "stop": -1.0, "limit": 101.5}, "stop_price must be a positive"),
])
def test_rejections(kwargs: dict[str, Any], reason: str) -> None:
    broker = PaperBroker(FillConfig())
    (event,) = broker.submit(make_order(**kwargs), T0 + 7)
    assert isinstance(event, OrderRejected)
    assert event.client_order_id == "o-1" and event.ts_event == event.ts_init == T0 + 7
    assert reason in event.reason
    assert broker.open_orders() == []
    assert broker.on_bar(make_bar(0, 100, 101, 99, 100)) == ()


def test_duplicate_client_order_id_is_rejected_even_after_fill() -> None:
    broker = PaperBroker(FillConfig(), id_prefix="sim")
    assert broker.submit(make_order(), T0) == [accepted("o-1", "sim-1", T0)]
    (dup,) = broker.submit(make_order(), T0)
    assert isinstance(dup, OrderRejected) and "duplicate client_order_id" in dup.reason
    broker.on_bar(make_bar(0, 100, 101, 99, 100))
    (again,) = broker.submit(make_order(), T0 + MIN)
    assert isinstance(again, OrderRejected)
    assert broker.submit(make_order("o-2"), T0 + MIN) == [accepted("o-2", "sim-2", T0 + MIN)]


def test_rejected_id_may_be_reused() -> None:
    broker = PaperBroker(FillConfig())
    assert isinstance(broker.submit(make_order(quantity=0.0), T0)[0], OrderRejected)
    assert isinstance(broker.submit(make_order(quantity=1.0), T0)[0], OrderAccepted)


def test_submit_does_not_mutate_the_order() -> None:
    broker = PaperBroker(FillConfig())
    order = make_order()
    before = {name: getattr(order, name) for name in Order.__slots__}
    broker.submit(order, T0)
    broker.on_bar(make_bar(0, 100, 101, 99, 100))
    broker.cancel(order, T0)
    assert {name: getattr(order, name) for name in Order.__slots__} == before


def test_constructor_errors() -> None:
    with pytest.raises(TypeError):
        PaperBroker({"slippage_bps": 1.0})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PaperBroker(FillConfig(), id_prefix="")


# --- end to end through core ---------------------------------------------------------------------
@pytest.mark.parametrize("cap", [None, 0.05])
def test_fills_apply_to_order_and_portfolio(cap: float | None) -> None:
    config = FillConfig(slippage_bps=10.0, commission_per_share=0.005, commission_minimum=1.0,
                        commission_bps=1.0, participation_cap=cap)
    broker = PaperBroker(config)
    portfolio = Portfolio(100_000.0)
    order = make_order("s1-AAA-1", BUY, 300.0, tif=TimeInForce.DAY)
    order.transition(OrderStatus.SUBMITTED, T0)
    (answer,) = broker.submit(order, T0)
    assert isinstance(answer, OrderAccepted)
    order.broker_order_id = answer.broker_order_id
    order.transition(OrderStatus.ACCEPTED, answer.ts_init)

    bps = 0.0
    for i in range(5):
        for fill in broker.on_bar(make_bar(i, 100 + i, 102 + i, 99 + i, 101 + i, 2_000)):
            bps += fill.quantity * fill.price * 1e-4
            cash = portfolio.cash
            shares = order.apply_fill(fill.cum_quantity, fill.price, fill.commission, fill.ts_init)
            assert shares == pytest.approx(fill.quantity)
            portfolio.apply_fill(fill.symbol, fill.side, shares, fill.price, fill.commission)
            assert cash - portfolio.cash == pytest.approx(fill.quantity * fill.price + fill.commission, rel=1e-15)
            # the 1 USD minimum is per order: the order's per-share commission so far is max(cum x 0.005, 1)
            assert order.commission == pytest.approx(max(order.filled_quantity * 0.005, 1.0) + bps, rel=1e-12)
            # a replayed duplicate report changes nothing
            assert order.apply_fill(fill.cum_quantity, fill.price, fill.commission, fill.ts_init) == 0.0

    assert order.status is OrderStatus.FILLED
    assert portfolio.position("AAA") == 300.0
    if cap is None:
        assert order.avg_fill_price == pytest.approx(100.1)
    else:  # 100 shares per bar at bars 0, 1, 2
        assert order.avg_fill_price == pytest.approx((100 + 101 + 102) / 3 * 1.001)
    assert portfolio.cash == pytest.approx(100_000.0 - 300 * order.avg_fill_price - order.commission)


class _Risk:
    """A risk manager that approves every intent as a DAY order (core.ports.RiskManager)."""

    state = TradingState.ACTIVE
    reason = ""
    flatten_on_halt = False
    version = 0

    def evaluate(self, intent: OrderIntent, strategy_id: str, view: Any, orders: Any, client_order_id: str,
                 ts: int) -> SubmitOrder:
        return SubmitOrder(client_order_id=client_order_id, strategy_id=strategy_id, symbol=intent.symbol,
                           side=intent.side, quantity=intent.quantity or 0.0, order_type=intent.order_type,
                           limit_price=intent.limit_price, stop_price=intent.stop_price,
                           time_in_force=TimeInForce.DAY, reason=intent.reason, ts_event=ts, ts_init=ts)

    def __getattr__(self, name: str) -> Any:  # snapshot, on_equity, on_timer, halt, ...: nothing happens
        return lambda *args, **kwargs: None


class _Store:
    def __init__(self) -> None:
        self.fills: list[OrderFilled] = []

    def save_fill(self, fill: OrderFilled, order: Order | None = None) -> None:
        self.fills.append(fill)

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class _Alerts:
    def __init__(self) -> None:
        self.alerts: list[tuple[str, str]] = []

    def alert(self, severity: str, title: str, text: str, **fields: Any) -> None:
        self.alerts.append((severity, title))


class _BuyOnFirstBar:
    """Buys 100 ``target`` shares when it first sees a bar of ``trigger``."""

    strategy_id = "e2e"
    params = None
    uses_learner = False

    def __init__(self, trigger: str, target: str) -> None:
        self.trigger, self.target, self.done = trigger, target, False

    def on_bar(self, ctx: Any, bar: Bar) -> list[OrderIntent]:
        if self.done or bar.symbol != self.trigger:
            return []
        self.done = True
        return [OrderIntent(self.target, BUY, 100.0, reason="e2e")]


def test_engine_fills_at_the_next_bar_open_across_symbols() -> None:
    """Through the real Engine: a decision on AAA's bar 0 trades BBB, whose bar 0 has the same
    timestamps and comes next in the merge; it must fill at BBB's bar 1 open, not bar 0."""
    store, alerts = _Store(), _Alerts()
    broker = PaperBroker(FillConfig(slippage_bps=10.0, commission_per_share=0.01, commission_minimum=1.0))
    engine = Engine(clock=Clock(T0), portfolio=Portfolio(50_000.0), strategy=_BuyOnFirstBar("AAA", "BBB"),
                    risk=_Risk(), broker=broker, venue=broker, store=store, alerts=alerts)
    bars = [make_bar(0, 10, 11, 9, 10, symbol="AAA"), make_bar(0, 50, 51, 49, 50, symbol="BBB"),
            make_bar(1, 10, 11, 9, 10, symbol="AAA"), make_bar(1, 52, 53, 51, 52, symbol="BBB")]
    for bar in bars[:2]:
        engine.handle(bar)
    assert store.fills == [] and len(broker.open_orders()) == 1
    for bar in bars[2:]:
        engine.handle(bar)
    (fill,) = store.fills
    assert (fill.symbol, fill.quantity, fill.ts_event) == ("BBB", 100.0, bars[3].ts_event)
    assert fill.price == pytest.approx(52 * 1.001)
    assert fill.slippage == pytest.approx(100 * 52 * 0.001)
    assert engine.portfolio.cash == pytest.approx(50_000.0 - 100 * 52 * 1.001 - 1.0)
    assert broker.open_orders() == []
    assert alerts.alerts == []


class _StopLimitOnFirstBar:
    """Sends one stop-limit buy of 100 shares (stop 51, limit 51.5) at its first bar's close."""

    strategy_id = "e2e-stop-limit"
    params = None
    uses_learner = False

    def __init__(self) -> None:
        self.done = False

    def on_bar(self, ctx: Any, bar: Bar) -> list[OrderIntent]:
        if self.done:
            return []
        self.done = True
        return [OrderIntent(bar.symbol, BUY, 100.0, SLM, limit_price=51.5, stop_price=51.0, reason="breakout")]


def test_engine_stop_limit_rests_triggers_and_fills_at_its_limit() -> None:
    """Through the real Engine: a stop-limit decided at bar 0's close is not triggered by bar 0's
    own high, rests over a bar below the stop, triggers on a bar that gaps over the limit without
    filling, and fills at its limit when a later bar comes back to it."""
    store, alerts = _Store(), _Alerts()
    broker = PaperBroker(FillConfig(slippage_bps=10.0))
    engine = Engine(clock=Clock(T0), portfolio=Portfolio(50_000.0), strategy=_StopLimitOnFirstBar(), risk=_Risk(),
                    broker=broker, venue=broker, store=store, alerts=alerts)
    bars = [make_bar(0, 50, 52, 49, 50), make_bar(1, 50, 50.8, 49.5, 50.5), make_bar(2, 52, 53, 51.8, 52.5),
            make_bar(3, 52, 52.5, 51.2, 51.6)]
    for bar in bars[:3]:
        engine.handle(bar)
    assert store.fills == [] and len(broker.open_orders()) == 1
    engine.handle(bars[3])
    (fill,) = store.fills
    assert (fill.quantity, fill.price, fill.ts_event) == (100.0, 51.5, bars[3].ts_event)
    assert engine.portfolio.position("AAA") == 100.0
    assert engine.portfolio.cash == pytest.approx(50_000.0 - 100 * 51.5)
    assert broker.open_orders() == [] and alerts.alerts == []


def test_restored_stop_limit_keeps_its_trigger_only_if_it_partly_filled() -> None:
    broker = PaperBroker(FillConfig(slippage_bps=0.0))
    partly = make_order("partly", order_type=SLM, stop=101.0, limit=100.0)
    partly.filled_quantity = 40.0
    partly.status = OrderStatus.PARTIALLY_FILLED
    untouched = make_order("untouched", order_type=SLM, stop=101.0, limit=100.0)
    broker.restore(partly, T0 + 5 * MIN)
    broker.restore(untouched, T0 + 5 * MIN)
    # a bar under the stop: only the triggered one works, as a limit at 100
    fills = [f for f in broker.on_bar(make_bar(6, 99.5, 100.2, 99, 100)) if isinstance(f, OrderFilled)]
    assert [(f.client_order_id, f.quantity, f.price, f.cum_quantity) for f in fills] == [("partly", 60.0, 99.5,
                                                                                          100.0)]
    assert broker.open_orders() == ["untouched"]


_GRID = st.sampled_from([97.0, 98.0, 99.0, 99.5, 100.0, 100.5, 101.0, 102.0, 103.0])


@st.composite
def _ohlc(draw: st.DrawFn) -> tuple[float, float, float, float]:
    prices = sorted(draw(st.lists(_GRID, min_size=4, max_size=4)))
    low, high = prices[0], prices[3]
    o, c = draw(st.permutations([prices[1], prices[2]]))
    return o, high, low, c


@settings(max_examples=300, deadline=None)
@given(side=st.sampled_from([BUY, SELL]), stop=_GRID, limit=_GRID, bars=st.lists(_ohlc(), min_size=1, max_size=6))
def test_check_book_and_paper_broker_fill_stop_limits_alike(side: Side, stop: float, limit: float,
                                                            bars: list[tuple[float, float, float, float]]) -> None:
    """The strategy conformance book (strategies.check_context) and the venue agree on the bar and
    price (no slippage) of a stop-limit's first fill, so strategies are checked against the same
    rule they are backtested with."""
    from strategies.check_context import CheckContext

    broker = PaperBroker(FillConfig(slippage_bps=0.0))
    broker.submit(make_order(side=side, order_type=SLM, stop=stop, limit=limit), T0)
    book = CheckContext(learner=False)
    book.submit([OrderIntent("AAA", side, 100.0, SLM, limit_price=limit, stop_price=stop)])
    venue_first: tuple[int, float] | None = None
    book_first: tuple[int, float] | None = None
    for i, row in enumerate(bars):
        bar = make_bar(i, *row)
        fills = [f for f in broker.on_bar(bar) if isinstance(f, OrderFilled)]
        if fills and venue_first is None:
            venue_first = (i, fills[0].price)
        held = book.position("AAA")
        book.begin_bar(bar)
        if book.position("AAA") != held and book_first is None:
            book_first = (i, book.avg_price("AAA"))
    assert venue_first == book_first


# --- B7: time in force DAY, order age --------------------------------------------------------------
HOUR = 60 * MIN
DAY_NS = 24 * HOUR
DAY = TimeInForce.DAY


def utc(month: int, day: int, hour: int, minute: int = 0, year: int = 2023) -> int:
    return to_nanos(datetime(year, month, day, hour, minute, tzinfo=timezone.utc))


def hour_bar(start: int, low: float = 99.5, symbol: str = "AAA", volume: float = V) -> Bar:
    """An hourly bar starting at ``start`` (ns UTC) around 100 USD whose low is ``low``."""
    return Bar(symbol, start, start + HOUR, 100.0, 100.5, low, 100.0, volume)


def day_limit(client_order_id: str = "d-1", symbol: str = "AAA", ts: int = 0, tif: TimeInForce = DAY) -> Order:
    return make_order(client_order_id, BUY, 10.0, LMT, limit=99.0, symbol=symbol, ts=ts, tif=tif)


def expired(client_order_id: str, reason: str, ts_event: int, ts_init: int) -> OrderExpired:
    return OrderExpired(client_order_id=client_order_id, reason=reason, ts_event=ts_event, ts_init=ts_init)


def test_day_limit_order_does_not_fill_on_a_later_day() -> None:
    """Issue 5 B7: a DAY limit order not reached on its day used to fill two days later."""
    broker = PaperBroker(FillConfig(slippage_bps=0.0))
    submitted = utc(11, 21, 15)  # Tuesday 10:00 New York, in session; the close is 16:00 = 21:00 UTC
    broker.submit(day_limit(ts=submitted), submitted)
    for hour in range(15, 21):  # the rest of the session never reaches 99
        assert broker.on_bar(hour_bar(utc(11, 21, hour))) == ()
    thursday_bar = hour_bar(utc(11, 23, 15), low=98.0)  # reaches the limit two days later
    assert broker.on_bar(thursday_bar) == [expired("d-1", "day order expired at 2023-11-21T21:00:00Z",
                                                   utc(11, 21, 21), thursday_bar.ts_init)]
    assert broker.open_orders() == []
    assert broker.on_bar(hour_bar(utc(11, 24, 15), low=98.0)) == ()


@pytest.mark.parametrize("start, fills", [(utc(11, 21, 20), True), (utc(11, 21, 20, 59), True),
                                          (utc(11, 21, 21), False)])
def test_day_order_may_fill_on_a_bar_that_started_before_the_close(start: int, fills: bool) -> None:
    broker = PaperBroker(FillConfig(slippage_bps=0.0))
    broker.submit(day_limit(ts=utc(11, 21, 15)), utc(11, 21, 15))
    events = broker.on_bar(hour_bar(start, low=98.0))
    assert [type(event) for event in events] == [OrderFilled if fills else OrderExpired]


@pytest.mark.parametrize("submitted, close", [
    (utc(11, 21, 15), "2023-11-21T21:00:00Z"),  # in session: that session's close
    (utc(11, 21, 12), "2023-11-21T21:00:00Z"),  # before the open: the session about to start
    (utc(11, 21, 21), "2023-11-22T21:00:00Z"),  # exactly at the close: the next session
    (utc(11, 21, 23), "2023-11-22T21:00:00Z"),  # overnight
    (utc(11, 23, 15), "2023-11-24T18:00:00Z"),  # Thanksgiving: next session, Black Friday's early close
    (utc(11, 25, 15), "2023-11-27T21:00:00Z"),  # Saturday: Monday's close
    (utc(7, 3, 15), "2023-07-03T17:00:00Z"),  # early close before Independence Day
    (utc(3, 10, 15), "2023-03-10T21:00:00Z"),  # EST: 16:00 New York = 21:00 UTC
    (utc(3, 13, 15), "2023-03-13T20:00:00Z"),  # EDT after the switch: 16:00 New York = 20:00 UTC
])
def test_day_order_expires_at_the_xnys_session_close(submitted: int, close: str) -> None:
    broker = PaperBroker(FillConfig(slippage_bps=0.0))
    broker.submit(day_limit(ts=submitted), submitted)
    expiry = to_nanos(datetime.fromisoformat(close))
    assert broker.on_bar(hour_bar(expiry - HOUR)) == ()  # the last hour before the close: still working
    assert broker.open_orders() == ["d-1"]
    bar = hour_bar(expiry, low=98.0)
    assert broker.on_bar(bar) == [expired("d-1", f"day order expired at {close}", expiry, bar.ts_init)]


@pytest.mark.parametrize("symbol, calendars, submitted, expiry", [
    ("BTCUSD", {}, utc(11, 25, 10), utc(11, 26, 0)),  # crypto: the next UTC midnight, weekends too
    ("COINBASE_BTCUSD", {}, utc(11, 21, 23, 59), utc(11, 22, 0)),
    ("BINANCE_BTCUSDT", {}, utc(11, 22, 0), utc(11, 23, 0)),  # at midnight: the next one
    ("ETH/USD", {}, utc(11, 21, 15), utc(11, 22, 0)),
    ("SPY", {"SPY": "24/7"}, utc(11, 21, 15), utc(11, 22, 0)),  # the override map wins
    ("NEWCOINUSD", {"NEWCOINUSD": "24/7"}, utc(11, 25, 10), utc(11, 26, 0)),
    ("BTCUSD", {"BTCUSD": "XNYS"}, utc(11, 21, 15), utc(11, 21, 21)),
    ("VOD", {"VOD": "XLON"}, utc(11, 21, 10), utc(11, 21, 16, 30)),
])
def test_day_order_expiry_by_calendar(symbol: str, calendars: dict[str, str], submitted: int,
                                      expiry: int) -> None:
    broker = PaperBroker(FillConfig(slippage_bps=0.0, calendars=calendars))
    broker.submit(day_limit(symbol=symbol, ts=submitted), submitted)
    assert broker.on_bar(hour_bar(expiry - 1, symbol=symbol)) == ()
    (event,) = broker.on_bar(hour_bar(expiry, symbol=symbol, low=98.0))
    assert isinstance(event, OrderExpired) and event.ts_event == expiry


def test_day_order_expires_on_a_bar_of_another_symbol() -> None:
    """BBB has no further bar; its DAY order still expires when AAA's first bar at or after the
    close arrives, and that bar's own fills come after the expiry."""
    broker = PaperBroker(FillConfig(slippage_bps=0.0))
    submitted = utc(11, 21, 15)
    broker.submit(day_limit("b-day", symbol="BBB", ts=submitted), submitted)
    assert broker.on_bar(hour_bar(utc(11, 21, 20), symbol="AAA")) == ()  # before BBB's close
    broker.submit(make_order("a-gtc", symbol="AAA", ts=utc(11, 22, 13)), utc(11, 22, 13))
    bar = hour_bar(utc(11, 22, 14), symbol="AAA")
    events = broker.on_bar(bar)
    assert [(type(event), event.client_order_id, event.ts_event) for event in events] == [
        (OrderExpired, "b-day", utc(11, 21, 21)), (OrderFilled, "a-gtc", bar.ts_event)]
    assert broker.open_orders() == []


def test_expiries_come_in_expiry_then_submission_order() -> None:
    broker = PaperBroker(FillConfig(slippage_bps=0.0, calendars={"BTCUSD": "24/7"}))
    broker.submit(day_limit("late", symbol="AAA", ts=utc(11, 21, 15)), utc(11, 21, 15))  # 21:00 UTC
    broker.submit(day_limit("first", symbol="BTCUSD", ts=utc(11, 20, 15)), utc(11, 20, 15))  # midnight
    broker.submit(day_limit("second", symbol="BBB", ts=utc(11, 21, 16)), utc(11, 21, 16))  # 21:00 UTC
    events = broker.on_bar(hour_bar(utc(11, 22, 14), symbol="CCC"))
    assert [event.client_order_id for event in events] == ["first", "late", "second"]
    assert broker.on_bar(hour_bar(utc(11, 22, 15), symbol="CCC")) is _EMPTY  # back on the hot path


_EMPTY = PaperBroker(FillConfig()).on_bar(make_bar(0, 10, 11, 9, 10))


def test_canceled_or_filled_day_orders_never_expire() -> None:
    broker = PaperBroker(FillConfig(slippage_bps=0.0))
    canceled_order = day_limit("c", ts=utc(11, 21, 15))
    broker.submit(canceled_order, utc(11, 21, 15))
    broker.submit(make_order("f", symbol="BBB", ts=utc(11, 21, 15), tif=DAY), utc(11, 21, 15))
    assert broker.cancel(canceled_order, utc(11, 21, 16)) == [canceled("c", utc(11, 21, 16))]
    assert [event.client_order_id for event in broker.on_bar(hour_bar(utc(11, 21, 16), symbol="BBB"))] == ["f"]
    assert broker.on_bar(hour_bar(utc(11, 22, 15))) == ()


def test_gtc_order_waits_for_its_symbols_next_bar_by_default() -> None:
    broker = PaperBroker(FillConfig(slippage_bps=0.0))
    broker.submit(day_limit(ts=utc(1, 3, 15), tif=TimeInForce.GTC), utc(1, 3, 15))
    for day in range(4, 28):
        assert broker.on_bar(hour_bar(utc(1, day, 15), symbol="BBB")) == ()
    (fill,) = broker.on_bar(hour_bar(utc(3, 1, 15), low=98.0))  # two months later
    assert isinstance(fill, OrderFilled) and fill.price == 99.0


@pytest.mark.parametrize("tif", [TimeInForce.GTC, DAY])
def test_max_order_age_expires_a_working_order(tif: TimeInForce) -> None:
    broker = PaperBroker(FillConfig(slippage_bps=0.0, max_order_age="2h"))
    submitted = utc(11, 21, 15)
    broker.submit(day_limit(ts=submitted, tif=tif), submitted)
    assert broker.on_bar(hour_bar(submitted + HOUR)) == ()
    bar = hour_bar(submitted + 2 * HOUR, symbol="BBB")  # any symbol's bar passes the age
    assert broker.on_bar(bar) == [expired("d-1", "order not filled within max_order_age 2h (expired at "
                                          "2023-11-21T17:00:00Z)", submitted + 2 * HOUR, bar.ts_init)]


def test_day_close_before_max_order_age_wins() -> None:
    broker = PaperBroker(FillConfig(slippage_bps=0.0, max_order_age="5d"))
    broker.submit(day_limit(ts=utc(11, 21, 15)), utc(11, 21, 15))
    (event,) = broker.on_bar(hour_bar(utc(11, 22, 15)))
    assert isinstance(event, OrderExpired) and event.reason == "day order expired at 2023-11-21T21:00:00Z"


def test_day_order_outside_the_calendar_is_rejected() -> None:
    broker = PaperBroker(FillConfig())
    submitted = utc(1, 2, 15, year=1985)  # before the range kept for XNYS
    (event,) = broker.submit(day_limit(ts=submitted), submitted)
    assert isinstance(event, OrderRejected) and "cannot place a day order" in event.reason
    assert broker.open_orders() == []
    (event,) = broker.submit(day_limit(ts=submitted, tif=TimeInForce.GTC), submitted)
    assert isinstance(event, OrderAccepted)  # a rejected id may be reused; GTC needs no calendar


# --- ports ------------------------------------------------------------------------------------------
def test_paper_broker_plays_both_roles() -> None:
    broker = PaperBroker(FillConfig())
    as_broker: Broker = broker
    as_venue: SimulatedVenue = broker
    assert callable(as_broker.submit) and callable(as_broker.cancel) and callable(as_venue.on_bar)
