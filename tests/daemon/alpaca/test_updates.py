"""The trade_updates stream feed (real alpaca-py TradingStream, in-loop) against the fake server:
duplicated, reordered and early updates are booked once by the real Engine; a dropped stream is
noticed and reconciled."""

from __future__ import annotations

import asyncio

import pytest

from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.events import OrderFilled
from tests.daemon.alpaca.test_broker import FakeAlpaca, Node, run, until


def _fills(node: Node, coid: str) -> list[OrderFilled]:
    return [e for e in node.of(coid) if isinstance(e, OrderFilled)]


def _vwap(executions: list[dict], coid: str) -> float:
    mine = [x for x in executions if x["client_order_id"] == coid]
    return sum(x["qty"] * x["price"] for x in mine) / sum(x["qty"] for x in mine)


def test_duplicated_updates_of_partial_fills_book_each_fill_once():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            fake.faults.duplicate_updates = True
            fake.faults.partial_fills = 3
            async with Node(fake, stream=True) as node:
                order = node.submit(quantity=9)
                await node.settle()
                fills = _fills(node, order.client_order_id)
                assert [(f.quantity, f.cum_quantity) for f in fills] == [(3.0, 3.0), (3.0, 6.0), (3.0, 9.0)]
                assert len({f.fill_id for f in fills}) == 3 and len(node.store.fills) == 3
                assert order.status is OrderStatus.FILLED and order.filled_quantity == 9.0
                assert node.kernel.portfolio.position("SPY") == 9.0 == fake.positions()["SPY"]
                assert order.avg_fill_price == pytest.approx(_vwap(fake.executions(), order.client_order_id))
                assert node.broker.stats["updates"] == 8  # new + 3 fills, each twice

    run(scenario())


def test_reordered_updates_fill_before_new_change_nothing_booked():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            fake.faults.reorder_updates = True
            fake.faults.partial_fills = 3
            async with Node(fake, stream=True) as node:
                order = node.submit(quantity=6, side=Side.SELL)
                await node.settle()
                # the last cumulative report came first: one fill of all 6 at their VWAP, nothing after
                assert node.kinds(order.client_order_id) == ["OrderAccepted", "OrderFilled"]
                (fill,) = _fills(node, order.client_order_id)
                assert (fill.quantity, fill.cum_quantity, fill.side) == (6.0, 6.0, Side.SELL)
                assert fill.price == pytest.approx(_vwap(fake.executions(), order.client_order_id))
                assert node.kernel.portfolio.position("SPY") == -6.0 == fake.positions()["SPY"]

    run(scenario())


def test_updates_that_arrive_before_the_rest_reply_still_answer_accepted_first():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            fake.faults.events_before_reply = True
            async with Node(fake, stream=True) as node:
                order = node.submit(quantity=2)
                await node.settle()
                assert node.kinds(order.client_order_id) == ["OrderAccepted", "OrderFilled"]
                assert order.status is OrderStatus.FILLED and len(node.store.fills) == 1

    run(scenario())


def test_updates_of_an_order_placed_outside_tradingd_give_no_event_and_one_warning():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake, stream=True) as node:
                outside = fake.external_order("SPY", "buy", 5)
                await until(lambda: node.broker.stats["updates"] >= 2, what="the external order's updates")
                await node.settle()
                assert node.of(outside["client_order_id"]) == []
                warnings = [a for a in node.alerts.alerts if "did not place" in a[1]]
                assert len(warnings) == 1 and outside["client_order_id"] in warnings[0][2]
                assert node.kernel.portfolio.position("SPY") == 0.0  # reconciliation's business

    run(scenario())


def test_a_dropped_stream_reconnects_and_on_reconnect_recovers_the_missed_cancel():
    calls: list[int] = []

    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            holder: dict[str, Node] = {}

            async def reconcile() -> None:  # what reconciliation does for our open orders
                node = holder["node"]
                calls.append(node.feed.connects if node.feed else -1)
                for order in node.engine.book.open_orders():
                    snapshot = await asyncio.to_thread(node.client.get_order_by_client_id, order.client_order_id)
                    async with node.broker.emission:
                        for event in node.broker.on_order_snapshot(snapshot):
                            await node.enqueue(event)

            async with Node(fake, stream=True, on_reconnect=reconcile) as node:
                holder["node"] = node
                feed = node.feed
                assert feed is not None and feed.connects == 1
                order = node.submit(quantity=2, order_type=OrderType.LIMIT, limit=50.0)
                await node.settle()
                assert order.status is OrderStatus.ACCEPTED
                fake.faults.drop_trading_stream(refuse_for=1.0)
                await until(lambda: not feed.connected, what="the drop to be noticed")
                fake.cancel_outside(order.client_order_id)  # its "canceled" goes to nobody
                await until(lambda: feed.connected and feed.connects == 2, timeout=15, what="the reconnect")
                await until(lambda: order.status is OrderStatus.CANCELED, what="reconciliation to apply the cancel")
                await node.settle()
                assert calls == [2] and feed.reconciles == 1
                assert node.kinds(order.client_order_id) == ["OrderAccepted", "OrderCanceled"]
                # the new connection delivers updates again
                again = node.submit(quantity=1)
                await node.settle()
                assert again.status is OrderStatus.FILLED
                assert feed.last_update_wall is not None

    run(scenario())


def test_a_rejection_after_acceptance_and_a_day_expiry_end_the_orders():
    async def scenario() -> None:
        with FakeAlpaca(symbols=("SPY",)) as fake:
            async with Node(fake, stream=True) as node:
                fake.faults.reject_after_accept(1)
                refused = node.submit(quantity=1)
                await node.settle()  # (concurrent submits reach the fake in any order)
                day = node.submit(quantity=2, order_type=OrderType.LIMIT, limit=50.0, tif=TimeInForce.DAY)
                await node.settle()
                fake.expire_day_orders()
                await node.settle()
                assert node.kinds(refused.client_order_id) == ["OrderAccepted", "OrderRejected"]
                assert refused.status is OrderStatus.REJECTED
                assert node.kinds(day.client_order_id) == ["OrderAccepted", "OrderExpired"]
                assert day.status is OrderStatus.EXPIRED and not list(node.engine.book.open_orders())

    run(scenario())
