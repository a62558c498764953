"""Conformance checks every Store adapter must pass (River's ``check_estimator`` pattern).

A check is a plain function of a :class:`StoreHarness`: the harness opens writers on one
database (one account, one run) and says what a fresh reader of that database sees now
(:meth:`StoreHarness.committed`, committed data only). A check raises :class:`StoreCheckFailed`
naming what broke. Run them all with :func:`check_store`, or one by one from
:func:`yield_checks` (e.g. to parametrize a test)::

    from state.checks import SqlStoreHarness, check_store
    check_store(lambda: SqlStoreHarness("sqlite:///check.db"))

Harnesses for :class:`state.store.SqlStore` and :class:`state.memory.MemoryStore` ship in
:mod:`state.check_harness`; a new adapter writes its own and declares which optional features it
has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from core.enums import OrderStatus, OrderType, Side, TimeInForce, TradingState
from core.events import OrderFilled, SubmitOrder, TradeClosed, TradingStateChanged
from core.orders import Order
from core.ports import Decision, EquitySnapshot
from core.recovery import RestoredPosition, RiskSnapshot
from core.time import NANOS_PER_DAY, NANOS_PER_MINUTE
from state.check_harness import (FEATURES, T0, US, CheckedStore, Committed, MemoryStoreHarness, SqlStoreHarness,
                                 StoreHarness, slots)
from state.recovery import load_restored


class StoreCheckFailed(AssertionError):
    """A store broke a rule of the Store port; the message names the check and what differed."""


# --- helpers -------------------------------------------------------------------------------------


def _expect(condition: bool, check: str, message: str) -> None:
    if not condition:
        raise StoreCheckFailed(f"{check}: {message}")


def _order(cid: str, *, quantity: float = 10.0, ts: int = T0, symbol: str = "AAPL", side: Side = Side.BUY,
           order_type: OrderType = OrderType.MARKET, limit_price: float | None = None,
           reduce_only: bool = False) -> Order:
    return Order(SubmitOrder(client_order_id=cid, strategy_id="check", symbol=symbol, side=side, quantity=quantity,
                             order_type=order_type, limit_price=limit_price, time_in_force=TimeInForce.DAY,
                             reduce_only=reduce_only, reason="check", ts_event=ts, ts_init=ts))


def _accept(order: Order, ts: int) -> None:
    order.transition(OrderStatus.SUBMITTED, ts)
    order.transition(OrderStatus.ACCEPTED, ts)
    order.broker_order_id = f"broker-{order.client_order_id}"


def _fill(order: Order, cum: float, price: float, ts: int, *, fill_id: str | None = None) -> OrderFilled:
    """Apply a fill to ``order`` (as the engine does before saving it) and return its event."""
    before = order.filled_quantity
    order.apply_fill(cum, price, 0.25, ts)
    return OrderFilled(client_order_id=order.client_order_id, fill_id=fill_id or f"{order.client_order_id}-{cum:g}",
                       symbol=order.symbol, side=order.side, quantity=cum - before, price=price, cum_quantity=cum,
                       commission=0.25, slippage=0.01 * (cum - before), ts_event=ts, ts_init=ts + NANOS_PER_MINUTE)


def fills_without_their_order(committed: Committed) -> list[str]:
    """Describe each committed fill whose order row is missing or says less filled than the fill.

    An empty list means the store kept the rule "a fill and its order update: both or neither".
    """
    problems = []
    for fill in committed.fills:
        order = committed.orders.get(fill.client_order_id)
        if order is None:
            problems.append(f"fill {fill.fill_id} has no order row")
        elif order["filled_quantity"] < fill.cum_quantity * (1 - 1e-12):
            problems.append(f"fill {fill.fill_id} (cum {fill.cum_quantity}) but order {fill.client_order_id} "
                            f"says {order['status'].value}, filled {order['filled_quantity']}")
    return problems


# --- the checks ----------------------------------------------------------------------------------


def check_writes_keep_their_order(harness: StoreHarness) -> None:
    """Fills, decisions, trades and equity snapshots come back in save order across automatic flushes."""
    name = "writes keep their order"
    store = harness.open(batch_size=3)
    fill_ids, reasons = [], []
    for i in range(7):
        order = _order(f"order-{i}", ts=T0 + i * US)
        store.save_order(order)
        _accept(order, T0 + i * US)
        for cum in (4.0, 10.0):
            fill = _fill(order, cum, 100.0 + i, T0 + i * US)
            store.save_fill(fill, order)
            fill_ids.append(fill.fill_id)
        store.save_decision(Decision(T0, "check", "AAPL", Side.BUY, 1.0, "submitted", f"d{i}", f"order-{i}", None, ""))
        reasons.append(f"d{i}")
        store.save_equity(EquitySnapshot(T0, 1_000.0 + i, 1_000.0, 0.0, 0))
        store.save_trade(TradeClosed(symbol="AAPL", side=Side.BUY, quantity=1.0, entry_ts=T0, exit_ts=T0,
                                     entry_price=1.0, exit_price=1.0, pnl=float(i), commission=0.0,
                                     exit_reason="x", ts_event=T0, ts_init=T0))
    store.flush()
    seen = harness.committed()
    _expect([f.fill_id for f in seen.fills] == fill_ids, name, f"fills came back as {[f.fill_id for f in seen.fills]}")
    _expect([d.reason for d in seen.decisions] == reasons, name, f"decisions came back as {seen.decisions}")
    _expect([e.cash for e in seen.equity] == [1_000.0 + i for i in range(7)], name,
            f"equity came back as {seen.equity}")
    _expect([t.pnl for t in seen.trades] == [float(i) for i in range(7)], name, f"trades came back as {seen.trades}")


def check_order_upsert_keeps_latest_status(harness: StoreHarness) -> None:
    """An order saved many times (across flushes and writers) is stored once, in its latest state."""
    name = "order upsert keeps the latest status"
    order = _order("upsert-1", quantity=10.0, order_type=OrderType.LIMIT, limit_price=101.0)
    first = harness.open(batch_size=2)
    first.save_order(order)
    _accept(order, T0 + 1 * US)
    first.save_order(order)
    first.save_fill(_fill(order, 4.0, 100.0, T0 + 2 * US), order)
    first.flush()
    seen = harness.committed().orders
    _expect(list(seen) == ["upsert-1"], name, f"expected one order row, got {list(seen)}")
    _expect(seen["upsert-1"]["status"] is OrderStatus.PARTIALLY_FILLED, name,
            f"status after the partial fill is {seen['upsert-1']['status']}")
    second = harness.open(batch_size=1_000)  # e.g. after a restart
    second.save_fill(_fill(order, 10.0, 101.0, T0 + 3 * US), order)
    second.save_order(order)
    second.flush()
    row = harness.committed().orders["upsert-1"]
    expected = slots(order)
    differing = {k: (row.get(k), v) for k, v in expected.items() if row.get(k) != v}
    _expect(not differing, name, f"stored order differs from the last saved state: {differing}")


def check_fill_and_order_atomic(harness: StoreHarness) -> None:
    """After every save, each committed fill's order row says at least that much filled."""
    name = "fill and order atomic"
    for batch_size, durable in ((1, False), (2, False), (3, False), (5, False), (1, True), (4, True)):
        store = harness.open(batch_size=batch_size, durable_orders=durable)
        for k in range(3):
            order = _order(f"atomic-{batch_size}-{durable:d}-{k}", ts=T0 + k * US)
            store.save_order(order)
            _accept(order, T0 + k * US)
            store.save_order(order)
            for cum in (3.0, 6.0, 10.0):
                store.save_fill(_fill(order, cum, 50.0, T0 + k * US), order)
                problems = fills_without_their_order(harness.committed())
                _expect(not problems, name, f"batch_size={batch_size} durable={durable}: {problems}")
                store.save_equity(EquitySnapshot(T0 + k * US, 1.0, 1.0, 0.0, 0))  # moves the flush points
        store.flush()
    problems = fills_without_their_order(harness.committed())
    _expect(not problems, name, f"after the last flush: {problems}")


def check_trading_state_committed_at_once(harness: StoreHarness) -> None:
    """A trading state change is committed before the save returns, after what was buffered before it."""
    name = "trading state committed at once"
    store = harness.open(batch_size=1_000_000)
    store.save_equity(EquitySnapshot(T0, 5.0, 5.0, 0.0, 0))
    store.save_trading_state(TradingStateChanged(previous=TradingState.ACTIVE, current=TradingState.HALTED,
                                                 reason="operator halt", ts_event=T0, ts_init=T0 + 1_000))
    seen = harness.committed()
    _expect(seen.trading_state == (TradingState.HALTED, "operator halt"), name,
            f"without a flush a reader sees {seen.trading_state}")
    _expect([e.cash for e in seen.equity] == [5.0], name, "what was buffered before the change was not written with it")
    _expect(seen.risk is not None and (seen.risk.state, seen.risk.reason) == (TradingState.HALTED, "operator halt"),
            name, f"the risk state does not follow the change: {seen.risk}")
    store.save_trading_state(TradingStateChanged(previous=TradingState.HALTED, current=TradingState.ACTIVE,
                                                 reason="rearm", ts_event=T0 + 2_000, ts_init=T0 + 2_000))
    seen = harness.committed()
    _expect(seen.trading_state == (TradingState.ACTIVE, "rearm"), name, f"after re-arm a reader sees {seen.trading_state}")


def check_risk_snapshot_round_trip(harness: StoreHarness) -> None:
    """Risk snapshots come back equal; a changed state is committed at once; a state change updates them."""
    name = "risk snapshot round trip"
    store = harness.open(batch_size=1_000_000)
    s1 = RiskSnapshot(state=TradingState.ACTIVE, peak_equity=100_000.0, day_start_equity=99_500.25,
                      day_end_ns=T0 + NANOS_PER_DAY, loss_streak=1, ts=T0)
    store.save_risk_state(s1)
    _expect(harness.committed().risk == s1, name, f"the first snapshot is not committed at once: {harness.committed().risk}")
    s2 = replace(s1, peak_equity=101_000.5, loss_streak=2, ts=T0 + 1_000)
    store.save_risk_state(s2)
    store.flush()
    _expect(harness.committed().risk == s2, name, f"after flush: {harness.committed().risk} != {s2}")
    s3 = replace(s2, state=TradingState.REDUCING, reason="2 losses in a row",
                 causes={"loss_streak": "2 losses in a row", "daily_loss": "daily loss 2.1%"},
                 cooldown_until_ns=T0 + 3 * NANOS_PER_DAY // 24, ts=T0 + 2_000)
    store.save_risk_state(s3)
    _expect(harness.committed().risk == s3, name, f"a state change is not committed at once: {harness.committed().risk}")
    s4 = replace(s3, peak_equity=101_500.0, ts=T0 + 3_000)
    store.save_risk_state(s4)
    store.save_trading_state(TradingStateChanged(previous=TradingState.REDUCING, current=TradingState.HALTED,
                                                 reason="operator halt", ts_event=T0 + 4_000, ts_init=T0 + 4_000))
    expected = replace(s4, state=TradingState.HALTED, reason="operator halt", ts=T0 + 4_000)
    _expect(harness.committed().risk == expected, name, f"after a state change: {harness.committed().risk} != {expected}")


def check_flush_idempotent(harness: StoreHarness) -> None:
    """Flushing twice, or with nothing buffered, writes nothing twice; a replayed fill is stored once."""
    name = "flush idempotent"
    store = harness.open(batch_size=1_000)
    store.flush()
    order = _order("idem-1")
    store.save_order(order)
    _accept(order, T0)
    fill = _fill(order, 10.0, 20.0, T0)
    store.save_fill(fill, order)
    store.save_decision(Decision(T0, "check", "AAPL", Side.BUY, 10.0, "submitted", "idem", "idem-1", 0.5, "x"))
    store.save_equity(EquitySnapshot(T0, 1.0, 2.0, 1.0, 1))
    store.flush()
    store.flush()
    once = harness.committed()
    store.save_fill(fill, order)  # the broker reports the same fill again
    store.flush()
    store.flush()
    twice = harness.committed()
    _expect(once == twice, name, f"a second flush or a replayed fill changed what is stored:\n{once}\n{twice}")
    _expect((len(twice.fills), len(twice.decisions), len(twice.equity)) == (1, 1, 1), name,
            f"expected one fill, decision and snapshot, got {len(twice.fills)}, {len(twice.decisions)}, "
            f"{len(twice.equity)}")


def check_reads_back_what_was_written(harness: StoreHarness) -> None:
    """Every field of orders, fills, decisions, trades and equity snapshots comes back as written."""
    name = "reads back what was written"
    store = harness.open(batch_size=4)
    entry = _order("rb-1", quantity=12.5, order_type=OrderType.LIMIT, limit_price=99.75)
    exit_ = _order("rb-2", quantity=12.5, side=Side.SELL, ts=T0 + NANOS_PER_MINUTE, reduce_only=True)
    fills = []
    for order, price in ((entry, 99.5), (exit_, 104.0)):
        store.save_order(order)
        _accept(order, order.ts_created + 1_000)
        store.save_order(order)
        for cum in (5.0, 12.5):
            fills.append(_fill(order, cum, price, order.ts_created + 2_000))
            store.save_fill(fills[-1], order)
    decision = Decision(T0, "check", "AAPL", Side.BUY, 12.5, "submitted", "cross up", "rb-1", 0.625, "low_vol_trending")
    trade = TradeClosed(symbol="AAPL", side=Side.BUY, quantity=12.5, entry_ts=T0, exit_ts=T0 + NANOS_PER_MINUTE,
                        entry_price=99.5, exit_price=104.0, pnl=55.75, commission=1.0, exit_reason="take profit",
                        ts_event=T0 + NANOS_PER_MINUTE, ts_init=T0 + 2 * NANOS_PER_MINUTE)
    snapshot = EquitySnapshot(T0 + NANOS_PER_MINUTE, 10_055.75, 10_055.75, 0.0, 0)
    store.save_decision(decision)
    store.save_trade(trade)
    store.save_equity(snapshot)
    store.flush()
    seen = harness.committed()
    for order in (entry, exit_):
        row = seen.orders.get(order.client_order_id, {})
        differing = {k: (row.get(k), v) for k, v in slots(order).items() if row.get(k) != v}
        _expect(not differing, name, f"order {order.client_order_id} differs: {differing}")
    _expect(seen.fills == fills, name, f"fills differ:\n{seen.fills}\n{fills}")
    _expect(seen.decisions == [decision], name, f"decisions differ: {seen.decisions}")
    _expect(seen.trades == [trade], name, f"trades differ: {seen.trades}")
    _expect(seen.equity == [snapshot], name, f"equity differs: {seen.equity}")


def check_recovery_round_trip(harness: StoreHarness) -> None:
    """What recovery loads is what was saved: risk state, cash, positions (fills after the snapshot
    booked on top), open orders, every client_order_id, learner state, last bar per symbol (never
    before the symbol's last order decision)."""
    name = "recovery round trip"
    _expect(load_restored(harness.source(), harness.account) is None, name, "a new account must restore to None")
    store = harness.open(batch_size=3)
    risk = RiskSnapshot(state=TradingState.REDUCING, reason="daily loss 2.0%", causes={"daily_loss": "daily loss 2.0%"},
                        peak_equity=10_400.0, day_start_equity=10_300.0, day_end_ns=T0 + NANOS_PER_DAY,
                        loss_streak=2, ts=T0)
    store.save_risk_state(risk)
    done, working, unsent = _order("rc-1", quantity=10.0), _order("rc-2", quantity=8.0, symbol="MSFT", side=Side.SELL,
                                                                   ts=T0 + 1 * US), _order("rc-3", ts=T0 + 2 * US)
    for order in (done, working, unsent):
        store.save_order(order)
    _accept(done, T0 + 10 * US)
    store.save_fill(_fill(done, 10.0, 100.0, T0 + 10 * US), done)
    _accept(working, T0 + 20 * US)
    store.save_fill(_fill(working, 3.0, 300.0, T0 + 20 * US), working)
    # 10_000 - 10 * 100 - 0.25 + 3 * 300 - 0.25
    positions = [RestoredPosition(symbol="AAPL", quantity=10.0, avg_price=100.0, mark=101.0, entry_ts=T0 + 10 * US),
                 RestoredPosition(symbol="MSFT", quantity=-3.0, avg_price=300.0, mark=299.0, entry_ts=T0 + 20 * US)]
    store.save_account(9_899.5, positions, T0 + 30 * US, last_bar_ts={"AAPL": T0, "MSFT": T0 - NANOS_PER_MINUTE})
    if "learner_state" in harness.features:
        store.save_learner_state("AAPL", b"\x00learner\xff", T0 + 30 * US)
    store.flush()
    restored = load_restored(harness.source(), harness.account)
    _expect(restored is not None, name, "nothing restored")
    assert restored is not None
    _expect(restored.risk == risk, name, f"risk {restored.risk} != {risk}")
    _expect(restored.cash == 9_899.5, name, f"cash {restored.cash}")
    _expect(restored.positions == tuple(positions), name, f"positions {restored.positions}")
    # the snapshot's last bars, raised to just before each symbol's last order decision (rc-3 at
    # T0 + 2 us, rc-2 at T0 + 1 us): a decision already sent is never made again after a restart
    _expect(restored.last_bar_ts == {"AAPL": T0 + 2 * US - 1, "MSFT": T0 + US - 1}, name,
            f"last bars {restored.last_bar_ts}")
    _expect(restored.known_client_order_ids == {"rc-1", "rc-2", "rc-3"}, name,
            f"known ids {sorted(restored.known_client_order_ids)}")
    got = {o.client_order_id: slots(o) for o in restored.open_orders}
    _expect(got == {"rc-2": slots(working), "rc-3": slots(unsent)}, name, f"open orders {got}")
    if "learner_state" in harness.features:
        _expect(restored.learner_state == {"AAPL": b"\x00learner\xff"}, name, f"learner {restored.learner_state}")

    # a fill after the last snapshot (the node died before the next one) is booked on top
    store.save_fill(_fill(working, 8.0, 290.0, T0 + 40 * US), working)
    store.flush()
    restored = load_restored(harness.source(), harness.account)
    assert restored is not None
    _expect(restored.cash == 9_899.5 + 5 * 290.0 - 0.25, name, f"cash after the late fill {restored.cash}")
    msft = [p for p in restored.positions if p.symbol == "MSFT"]
    _expect(len(msft) == 1 and msft[0].quantity == -8.0 and msft[0].mark == 290.0, name, f"MSFT after it: {msft}")
    _expect([o.client_order_id for o in restored.open_orders] == ["rc-3"], name,
            f"open orders after it {[o.client_order_id for o in restored.open_orders]}")


@dataclass(frozen=True, slots=True)
class StoreCheck:
    """A named check and the optional features it needs."""

    name: str
    run: Callable[[StoreHarness], None]
    requires: frozenset[str] = frozenset()


STORE_CHECKS: tuple[StoreCheck, ...] = (
    StoreCheck("writes_keep_their_order", check_writes_keep_their_order),
    StoreCheck("order_upsert_keeps_latest_status", check_order_upsert_keeps_latest_status),
    StoreCheck("fill_and_order_atomic", check_fill_and_order_atomic),
    StoreCheck("trading_state_committed_at_once", check_trading_state_committed_at_once, frozenset({"risk_state"})),
    StoreCheck("risk_snapshot_round_trip", check_risk_snapshot_round_trip, frozenset({"risk_state"})),
    StoreCheck("flush_idempotent", check_flush_idempotent),
    StoreCheck("reads_back_what_was_written", check_reads_back_what_was_written),
    StoreCheck("recovery_round_trip", check_recovery_round_trip, frozenset({"risk_state", "account_snapshot"})),
)
"""Every check, in the order :func:`check_store` runs them."""


def yield_checks(features: Iterable[str] = FEATURES) -> Iterator[StoreCheck]:
    """Yield the checks a store with ``features`` must pass."""
    have = frozenset(features)
    for check in STORE_CHECKS:
        if check.requires <= have:
            yield check


def check_store(make_harness: Callable[[], StoreHarness]) -> None:
    """Run every applicable check, each on a fresh harness from ``make_harness``.

    Raises
    ------
    StoreCheckFailed
        Listing every check that failed and why.
    """
    failures = []
    features = None
    for check in STORE_CHECKS:
        harness = make_harness()
        try:
            features = harness.features if features is None else features
            if check.requires <= features:
                check.run(harness)
        except StoreCheckFailed as exc:
            failures.append(str(exc))
        finally:
            harness.close()
    if failures:
        raise StoreCheckFailed(f"{len(failures)} store check(s) failed:\n" + "\n".join(failures))


__all__ = ["FEATURES", "STORE_CHECKS", "CheckedStore", "Committed", "MemoryStoreHarness", "SqlStoreHarness",
           "StoreCheck", "StoreCheckFailed", "StoreHarness", "check_store", "fills_without_their_order",
           "yield_checks"]
