"""The broker conformance suite (backtest.broker_checks): the paper broker passes every check, in
every configuration the kernel uses and through a queue like the live node's; deliberately broken
brokers fail the check named for what they break."""

from __future__ import annotations

import queue
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from backtest.broker import PaperBroker
from backtest.broker_checks import (CHECKS, BrokerCheckFailed, CheckSettings, DrainingHarness, SyncHarness,
                                    check_broker, yield_checks)
from backtest.fill_model import FillConfig
from core.enums import OrderStatus
from core.events import Bar, OrderAccepted, OrderFilled
from core.orders import Order
from core.ports import Broker


@pytest.mark.parametrize("name, run", list(yield_checks(lambda: PaperBroker(FillConfig()))), ids=list(CHECKS))
def test_paper_broker_passes(name: str, run: Callable[[], str]) -> None:
    assert run() == "passed"


@pytest.mark.parametrize("config", [
    FillConfig(slippage_bps=5.0, commission_per_share=0.005, commission_minimum=1.0),
    FillConfig(participation_cap=0.03, fractional_shares=False),  # partial fills over several bars
    FillConfig(participation_cap=0.07, max_order_age="1h", slippage_volatility=0.5),
], ids=["fees", "capped-whole-shares", "capped-fractional-aged"])
def test_paper_broker_passes_with_partial_fills(config: FillConfig) -> None:
    report = check_broker(lambda: PaperBroker(config), harness=lambda b: SyncHarness(b, volume=1_000.0))
    assert set(report.values()) == {"passed"}


def test_checks_needing_a_market_are_skipped_without_one() -> None:
    report = check_broker(lambda: PaperBroker(FillConfig()), harness=lambda b: DrainingHarness(b, drain=list))
    assert report["fills_cum_quantity_monotone_and_bounded"] == "skipped"
    assert report["cancel_finished_is_noop"] == "partly"
    assert report["duplicate_client_order_id_rejected"] == "passed"


class _QueuedBroker:
    """An asynchronous adapter, shaped like the live Alpaca one: calls return nothing, events
    arrive later through a queue (here: a paper broker's answers, delivered via the queue)."""

    def __init__(self) -> None:
        self.inner = PaperBroker(FillConfig(participation_cap=0.05))
        self.updates: queue.Queue[Any] = queue.Queue()

    def submit(self, order: Order, ts: int) -> list[Any]:
        for event in self.inner.submit(order, ts):
            self.updates.put(event)
        return []

    def cancel(self, order: Order, ts: int) -> list[Any]:
        for event in self.inner.cancel(order, ts):
            self.updates.put(event)
        return []

    def market(self, symbol: str, ts: int) -> list[Any]:
        for event in self.inner.on_bar(Bar(symbol, ts, ts + 60_000_000_000, 100.0, 100.1, 99.9, 100.0, 1_000.0)):
            self.updates.put(event)
        return []

    def drain(self) -> list[Any]:
        events = []
        while not self.updates.empty():
            events.append(self.updates.get_nowait())
        return events


def test_queued_adapter_runs_the_same_checks() -> None:
    def harness(broker: Broker) -> DrainingHarness:
        assert isinstance(broker, _QueuedBroker)
        return DrainingHarness(broker, drain=broker.drain, trade=broker.market)

    report = check_broker(_QueuedBroker, harness=harness, settings=CheckSettings(id_prefix="run-7f3a"))
    assert set(report.values()) == {"passed"}


# --- deliberately broken brokers fail the check named for their defect ------------------------------
class _AcceptsDuplicates(PaperBroker):
    def submit(self, order: Order, ts: int) -> list[Any]:
        self._seen.discard(order.client_order_id)
        return super().submit(order, ts)


class _MarksOrders(PaperBroker):
    def submit(self, order: Order, ts: int) -> list[Any]:
        events = super().submit(order, ts)
        if isinstance(events[0], OrderAccepted):
            order.status = OrderStatus.ACCEPTED  # the broker must not touch the engine's record
        return events


class _ReportsPerFillQuantity(PaperBroker):
    """Reports each fill's own quantity as cum_quantity (a classic adapter bug)."""

    def on_bar(self, bar: Bar) -> Sequence[Any]:
        return [_replace(e, cum_quantity=e.quantity) if isinstance(e, OrderFilled) else e for e in super().on_bar(bar)]


class _RaisesOnUnknownCancel(PaperBroker):
    def cancel(self, order: Order, ts: int) -> list[Any]:
        if order.client_order_id not in self._orders:
            raise KeyError(order.client_order_id)
        return super().cancel(order, ts)


class _RaisesOnBadQuantity(PaperBroker):
    def submit(self, order: Order, ts: int) -> list[Any]:
        if not order.quantity > 0:
            raise ValueError("quantity must be positive")
        return super().submit(order, ts)


class _StampsWallClock(PaperBroker):
    """Stamps cancels with a stale time (e.g. an exchange timestamp from an earlier message)."""

    def cancel(self, order: Order, ts: int) -> list[Any]:
        return [_replace(e, ts_event=0, ts_init=0) for e in super().cancel(order, ts)]


class _ForgetsRejectedIds(PaperBroker):
    def submit(self, order: Order, ts: int) -> list[Any]:
        events = super().submit(order, ts)
        self._seen.add(order.client_order_id)  # rejected ids are burnt too
        return events


def _replace(event: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(event, **changes)


@pytest.mark.parametrize("broken, check", [
    (_AcceptsDuplicates, "duplicate_client_order_id_rejected"),
    (_MarksOrders, "inputs_not_mutated"),
    (_ReportsPerFillQuantity, "fills_cum_quantity_monotone_and_bounded"),
    (_RaisesOnUnknownCancel, "cancel_unknown_is_noop"),
    (_RaisesOnBadQuantity, "invalid_order_rejected_not_raised"),
    (_StampsWallClock, "events_carry_id_and_ordered_ts"),
    (_ForgetsRejectedIds, "rejected_id_may_be_reused"),
])
def test_broken_broker_fails_the_named_check(broken: type[PaperBroker], check: str) -> None:
    def make() -> PaperBroker:
        return broken(FillConfig(participation_cap=0.05))

    def harness(broker: Broker) -> SyncHarness:
        return SyncHarness(broker, volume=1_000.0)  # 50 shares a bar: orders fill in parts

    checks = dict(yield_checks(make, harness=harness))
    with pytest.raises(BrokerCheckFailed) as caught:
        checks[check]()
    assert caught.value.check == check
    assert check in str(caught.value)
    assert checks["submit_answers_accepted_or_rejected"]() == "passed"  # the defect is found by its own check


def test_check_broker_stops_at_the_first_failure() -> None:
    with pytest.raises(BrokerCheckFailed, match="duplicate_client_order_id_rejected"):
        check_broker(lambda: _AcceptsDuplicates(FillConfig()))
