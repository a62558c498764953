"""Recovery (state/recovery.py): what a restarted node loads is what the store saved, on SQLite and
PostgreSQL (see conftest: every store test runs on both)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from core.enums import OrderStatus, OrderType, Side, TimeInForce, TradingState
from core.events import OrderFilled, SubmitOrder, TradingStateChanged
from core.orders import Order
from core.portfolio import Portfolio
from core.recovery import RestoredPosition, RestoredState, RiskSnapshot
from core.time import NANOS_PER_DAY, NANOS_PER_HOUR, NANOS_PER_MINUTE
from state import MemoryStore, RecoveryError, SqlStore, load_restored
from state.recovery import roll_forward

T0 = 1_700_000_000_000_000_000
OpenStore = Callable[..., SqlStore]


def make_order(cid: str, *, symbol: str = "AAPL", side: Side = Side.BUY, quantity: float = 10.0, ts: int = T0,
               reduce_only: bool = False) -> Order:
    return Order(SubmitOrder(client_order_id=cid, strategy_id="rsi", symbol=symbol, side=side, quantity=quantity,
                             order_type=OrderType.LIMIT, limit_price=123.5, time_in_force=TimeInForce.DAY,
                             reduce_only=reduce_only, reason="entry", ts_event=ts, ts_init=ts))


def fill(order: Order, cum: float, price: float, ts: int, commission: float = 1.0) -> OrderFilled:
    """Apply the fill to ``order`` (as the engine does) and return its event."""
    before = order.filled_quantity
    order.apply_fill(cum, price, commission, ts)
    return OrderFilled(client_order_id=order.client_order_id, fill_id=f"{order.client_order_id}-{cum:g}",
                       symbol=order.symbol, side=order.side, quantity=cum - before, price=price, cum_quantity=cum,
                       commission=commission, ts_event=ts, ts_init=ts + NANOS_PER_MINUTE)


def slots(order: Order) -> dict:
    return {name: getattr(order, name) for name in Order.__slots__}


def accepted(order: Order, ts: int) -> Order:
    order.transition(OrderStatus.SUBMITTED, ts)
    order.transition(OrderStatus.ACCEPTED, ts)
    order.broker_order_id = f"b-{order.client_order_id}"
    return order


RISK = RiskSnapshot(state=TradingState.REDUCING, reason="3 losses in a row",
                    causes={"loss_streak": "3 losses in a row", "daily_loss": "daily loss 2.5%"},
                    peak_equity=104_250.5, day_start_equity=101_000.25, day_end_ns=T0 + 5 * NANOS_PER_HOUR,
                    cooldown_until_ns=T0 + 3 * NANOS_PER_HOUR, loss_streak=3, ts=T0 + NANOS_PER_MINUTE)


def save_account_state(store: SqlStore | MemoryStore) -> dict[str, Order]:
    """A day of an account: a filled entry, a working partial exit, an intent whose submit outcome
    is unknown, a canceled order; then snapshots and learner state."""
    if isinstance(store, SqlStore):
        store.start_run("live-1", "live", "rsi", {}, "c", "d", T0)
    filled = accepted(make_order("rsi-AAPL-1"), T0)
    store.save_order(filled)
    store.save_fill(fill(filled, 10.0, 100.0, T0 + NANOS_PER_MINUTE), filled)
    exit_ = accepted(make_order("rsi-AAPL-2", side=Side.SELL, quantity=10.0, ts=T0 + NANOS_PER_HOUR,
                                reduce_only=True), T0 + NANOS_PER_HOUR)
    store.save_order(exit_)
    store.save_fill(fill(exit_, 4.0, 110.0, T0 + NANOS_PER_HOUR), exit_)
    unknown = make_order("rsi-MSFT-1", symbol="MSFT", ts=T0 + 2 * NANOS_PER_HOUR)
    unknown.transition(OrderStatus.SUBMITTED, T0 + 2 * NANOS_PER_HOUR)  # the node died waiting for the answer
    store.save_order(unknown)
    canceled = accepted(make_order("rsi-MSFT-0", symbol="MSFT", ts=T0), T0)
    canceled.transition(OrderStatus.CANCELED, T0 + NANOS_PER_MINUTE)
    store.save_order(canceled)
    store.save_risk_state(RISK)
    # 100_000 - (10 * 100 + 1) + (4 * 110 - 1)
    store.save_account(99_438.0, [RestoredPosition(symbol="AAPL", quantity=6.0, avg_price=100.0, mark=111.0,
                                                   entry_ts=T0 + NANOS_PER_MINUTE)],
                       T0 + 2 * NANOS_PER_HOUR, last_bar_ts={"AAPL": T0 + NANOS_PER_HOUR, "MSFT": T0})
    store.save_learner_state("AAPL", b"aapl-model", T0)
    store.save_learner_state("MSFT", b"old")
    store.save_learner_state("MSFT", b"msft-model")  # the latest wins
    store.flush()
    return {o.client_order_id: o for o in (filled, exit_, unknown, canceled)}


def assert_restored(restored: RestoredState | None, orders: dict[str, Order], account: str = "default") -> None:
    assert restored is not None
    assert restored.account == account
    assert restored.risk == RISK
    assert restored.cash == 99_438.0
    assert restored.positions == (RestoredPosition(symbol="AAPL", quantity=6.0, avg_price=100.0, mark=111.0,
                                                   entry_ts=T0 + NANOS_PER_MINUTE),)
    assert [slots(o) for o in restored.open_orders] == [slots(orders["rsi-AAPL-2"]), slots(orders["rsi-MSFT-1"])]
    assert restored.known_client_order_ids == set(orders)
    assert restored.learner_state == {"AAPL": b"aapl-model", "MSFT": b"msft-model"}
    # MSFT's snapshot says T0, but an order was decided at T0 + 2 h (persisted, outcome unknown):
    # the bars up to that decision are never decided on again
    assert restored.last_bar_ts == {"AAPL": T0 + NANOS_PER_HOUR, "MSFT": T0 + 2 * NANOS_PER_HOUR - 1}


def test_saved_state_loads_back_equal(open_store: OpenStore) -> None:
    orders = save_account_state(open_store(batch_size=3))
    assert_restored(load_restored(open_store(), "default"), orders)
    restored = load_restored(open_store(), "default")
    assert restored is not None and restored.open_orders[1].status is OrderStatus.SUBMITTED  # outcome unknown


def test_memory_store_restores_the_same() -> None:
    store = MemoryStore()
    orders = save_account_state(store)
    assert_restored(load_restored(store, "default"), orders)
    assert load_restored(store, "other") is None


def test_new_account_restores_to_none(open_store: OpenStore) -> None:
    store = open_store()
    save_account_state(store)
    assert load_restored(store, "someone-else") is None


def test_fills_after_the_last_snapshot_are_booked_on_top(open_store: OpenStore) -> None:
    store = open_store(batch_size=2)
    orders = save_account_state(store)
    exit_ = orders["rsi-AAPL-2"]
    store.save_fill(fill(exit_, 10.0, 112.0, T0 + 3 * NANOS_PER_HOUR), exit_)  # no snapshot after this one
    entry = accepted(make_order("rsi-MSFT-2", symbol="MSFT", side=Side.SELL, quantity=5.0, ts=T0 + 3 * NANOS_PER_HOUR),
                     T0 + 3 * NANOS_PER_HOUR)
    store.save_order(entry)
    store.save_fill(fill(entry, 5.0, 300.0, T0 + 4 * NANOS_PER_HOUR), entry)
    store.flush()

    restored = load_restored(open_store(), "default")
    assert restored is not None
    assert restored.cash == 99_438.0 + (6 * 112.0 - 1.0) + (5 * 300.0 - 1.0)
    assert restored.positions == (RestoredPosition(symbol="MSFT", quantity=-5.0, avg_price=300.0, mark=300.0,
                                                   entry_ts=T0 + 4 * NANOS_PER_HOUR),)
    assert [o.client_order_id for o in restored.open_orders] == ["rsi-MSFT-1"]


def test_an_order_resumed_by_a_later_run_appears_once_in_its_latest_state(open_store: OpenStore) -> None:
    first = open_store()
    first.start_run("live-1", "live", "rsi", {}, "c", "d", T0)
    order = accepted(make_order("rsi-AAPL-1"), T0)
    first.save_order(order)
    first.close()
    second = open_store()  # the restarted node starts a new run and finishes the order there
    second.start_run("live-2", "live", "rsi", {}, "c", "d", T0 + NANOS_PER_DAY)
    second.save_fill(fill(order, 10.0, 100.0, T0 + NANOS_PER_DAY), order)
    second.save_account(100_000.0 - 1_001.0, [RestoredPosition(symbol="AAPL", quantity=10.0, avg_price=100.0,
                                                               mark=100.0, entry_ts=T0 + NANOS_PER_DAY)],
                        T0 + NANOS_PER_DAY)
    second.flush()
    restored = load_restored(open_store(), "default")
    assert restored is not None
    assert restored.open_orders == () and restored.known_client_order_ids == {"rsi-AAPL-1"}
    assert [(o.status, o.filled_quantity) for o in open_store().account_orders()] == [(OrderStatus.FILLED, 10.0)]
    assert restored.cash == 98_999.0


def test_an_operator_halt_without_a_daemon_is_what_recovery_sees(open_store: OpenStore) -> None:
    daemon = open_store()
    daemon.save_risk_state(RISK)
    daemon.save_account(50_000.0, [], T0)
    daemon.close()
    cli = open_store()  # `tradingd halt` while no daemon runs writes the state change directly
    cli.save_trading_state(TradingStateChanged(previous=TradingState.REDUCING, current=TradingState.HALTED,
                                               reason="operator", ts_event=T0 + NANOS_PER_DAY,
                                               ts_init=T0 + NANOS_PER_DAY))
    restored = load_restored(open_store(), "default")
    assert restored is not None
    assert restored.risk == replace(RISK, state=TradingState.HALTED, reason="operator", ts=T0 + NANOS_PER_DAY)


def test_a_halt_alone_restores_halted_with_the_starting_cash(open_store: OpenStore) -> None:
    open_store().save_trading_state(TradingStateChanged(previous=TradingState.ACTIVE, current=TradingState.HALTED,
                                                        reason="operator", ts_event=T0, ts_init=T0))
    with pytest.raises(RecoveryError, match="starting_cash"):
        load_restored(open_store(), "default")
    restored = load_restored(open_store(), "default", starting_cash=25_000.0)
    assert restored is not None
    assert (restored.risk.state, restored.risk.reason, restored.cash) == (TradingState.HALTED, "operator", 25_000.0)
    assert restored.risk.peak_equity is None and restored.risk.causes == {}


def test_accounts_do_not_see_each_other(open_store: OpenStore) -> None:
    save_account_state(open_store(account="a"))
    other = open_store(account="b")
    other.start_run("b-1", "live", "rsi", {}, "c", "d", T0)
    order = accepted(make_order("rsi-AAPL-1"), T0)  # the same id in another account
    other.save_order(order)
    other.save_fill(fill(order, 10.0, 90.0, T0), order)
    other.save_account(1_000.0 - 901.0, [RestoredPosition(symbol="AAPL", quantity=10.0, avg_price=90.0, mark=90.0)],
                       T0)
    other.flush()
    reader = open_store()
    assert_restored(load_restored(reader, "a"), {o.client_order_id: o for o in reader.account_orders("a")}, "a")
    b = load_restored(reader, "b")
    assert b is not None and b.cash == 99.0 and b.known_client_order_ids == {"rsi-AAPL-1"} and b.learner_state == {}


def test_a_snapshot_replaces_the_previous_positions(open_store: OpenStore) -> None:
    store = open_store()
    store.save_account(1.0, [RestoredPosition(symbol="AAPL", quantity=1.0, avg_price=1.0, mark=1.0),
                             RestoredPosition(symbol="MSFT", quantity=-2.0, avg_price=2.0, mark=2.0)], T0)
    store.flush()
    store.save_account(2.0, [RestoredPosition(symbol="MSFT", quantity=-1.0, avg_price=2.0, mark=2.5),
                             RestoredPosition(symbol="SPY", quantity=0.0, avg_price=0.0, mark=400.0)], T0 + 1_000)
    store.flush()
    account = open_store().load_account()
    assert account is not None
    assert account.cash == 2.0 and account.ts == T0 + 1_000
    assert account.positions == (RestoredPosition(symbol="MSFT", quantity=-1.0, avg_price=2.0, mark=2.5),)


# --- roll_forward (pure) ---------------------------------------------------------------------


def _event(symbol: str, side: Side, quantity: float, price: float, ts: int, commission: float = 0.5) -> OrderFilled:
    return OrderFilled(client_order_id="c", fill_id=f"f{ts}", symbol=symbol, side=side, quantity=quantity,
                       price=price, cum_quantity=quantity, commission=commission, ts_event=ts, ts_init=ts)


def test_roll_forward_books_like_the_portfolio() -> None:
    start = (RestoredPosition(symbol="AAPL", quantity=10.0, avg_price=0.1, mark=0.3, entry_ts=1),
             RestoredPosition(symbol="MSFT", quantity=-4.0, avg_price=300.0, mark=301.0, entry_ts=2))
    fills = [_event("AAPL", Side.BUY, 5.0, 0.7, 10), _event("MSFT", Side.BUY, 6.0, 290.0, 11),
             _event("SPY", Side.SELL, 3.0, 400.0, 12), _event("SPY", Side.BUY, 3.0, 390.0, 13)]
    cash, positions = roll_forward(1_000.0, start, fills)

    portfolio = Portfolio(1_000.0)
    for pos in start:  # the same account built by booking its history
        portfolio.apply_fill(pos.symbol, Side.BUY if pos.quantity > 0 else Side.SELL, abs(pos.quantity),
                             pos.avg_price, 0.0)
    portfolio.cash = 1_000.0
    for f in fills:
        portfolio.apply_fill(f.symbol, f.side, f.quantity, f.price, f.commission)
    assert cash == pytest.approx(portfolio.cash, rel=1e-15)
    assert [p.avg_price for p in positions] == pytest.approx([portfolio.avg_price("AAPL"), 290.0])
    assert [replace(p, avg_price=0.0) for p in positions] == [
        RestoredPosition(symbol="AAPL", quantity=15.0, avg_price=0.0, mark=0.7, entry_ts=1),  # grown: entry time stays
        RestoredPosition(symbol="MSFT", quantity=2.0, avg_price=0.0, mark=290.0, entry_ts=11)]  # flipped; SPY closed


def test_roll_forward_without_fills_keeps_the_snapshot_exactly() -> None:
    start = (RestoredPosition(symbol="B", quantity=3.0, avg_price=0.1, mark=0.2),
             RestoredPosition(symbol="A", quantity=0.0, avg_price=0.0, mark=1.0))
    assert roll_forward(7.0, start, []) == (7.0, (start[0],))


def test_roll_forward_refuses_an_unbookable_fill() -> None:
    with pytest.raises(RecoveryError, match="cannot book"):
        roll_forward(1.0, (), [_event("AAPL", Side.BUY, 1.0, 0.0, 1)])


def test_fills_around_a_snapshot_in_one_flush_are_booked_once(open_store: OpenStore) -> None:
    store = open_store(batch_size=1_000)
    store.start_run("live-1", "live", "rsi", {}, "c", "d", T0)
    order = accepted(make_order("rsi-AAPL-1", quantity=10.0), T0)
    store.save_order(order)
    store.save_fill(fill(order, 4.0, 100.0, T0), order)  # in the snapshot
    store.save_account(100_000.0 - 401.0, [RestoredPosition(symbol="AAPL", quantity=4.0, avg_price=100.0,
                                                            mark=100.0, entry_ts=T0)], T0)
    store.save_fill(fill(order, 10.0, 100.0, T0 + NANOS_PER_MINUTE), order)  # after it, same flush
    store.flush()
    restored = load_restored(open_store(), "default")
    assert restored is not None
    assert restored.cash == 100_000.0 - 401.0 - 601.0
    assert [(p.symbol, p.quantity) for p in restored.positions] == [("AAPL", 10.0)]
