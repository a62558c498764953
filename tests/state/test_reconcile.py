"""Reconciliation (state/reconcile.py) on hand-built snapshots, and the store's reconciliation rows and
broker bindings on SQLite, PostgreSQL and the memory store, plus migration 0005."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command

from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.events import SubmitOrder
from core.orders import Order
from core.recovery import RestoredPosition, RestoredState
from state import MemoryStore, SqlStore, StoreConfig, StoreError
from state.migrations import alembic_config
from state.reconcile import (BrokerFill, BrokerOrder, BrokerPosition, BrokerSnapshot, LocalSnapshot, ReconcileReport,
                             binding_conflict, check_binding, reconcile)

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def order(cid: str, *, symbol: str = "SPY", side: Side = Side.BUY, quantity: float = 10.0, strategy: str = "sma",
          status: OrderStatus = OrderStatus.ACCEPTED, filled: float = 0.0, price: float = 100.0,
          tif: TimeInForce = TimeInForce.GTC, ts: int = T0, broker_id: str | None = None) -> Order:
    o = Order(SubmitOrder(client_order_id=cid, strategy_id=strategy, symbol=symbol, side=side, quantity=quantity,
                          order_type=OrderType.MARKET, time_in_force=tif, ts_event=ts, ts_init=ts))
    if status is not OrderStatus.INITIALIZED:
        o.transition(OrderStatus.SUBMITTED, ts)
    if status not in (OrderStatus.INITIALIZED, OrderStatus.SUBMITTED):
        o.transition(OrderStatus.ACCEPTED, ts)
        o.broker_order_id = broker_id or f"b-{cid}"
    if filled:
        o.apply_fill(filled, price, 0.0, ts)
    if status in (OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED):
        o.transition(status, ts)
    assert o.status is status, f"helper: {cid} ended {o.status.value}, not {status.value}"
    return o


def border(cid: str, *, symbol: str = "SPY", side: Side = Side.BUY, quantity: float = 10.0, filled: float = 0.0,
           price: float = 0.0, status: str = "new", ts: int = T0, broker_id: str | None = None) -> BrokerOrder:
    return BrokerOrder(client_order_id=cid, broker_order_id=broker_id or f"b-{cid}", symbol=symbol, side=side,
                       quantity=quantity, filled_quantity=filled, avg_fill_price=price, status=status, created_ns=ts,
                       updated_ns=ts)


def local(*orders: Order, positions: dict[str, float] | None = None, cash: float = 10_000.0,
          **kw: object) -> LocalSnapshot:
    return LocalSnapshot(orders={o.client_order_id: o for o in orders}, positions=positions or {}, cash=cash,
                         **kw)  # type: ignore[arg-type]


def broker(*orders: BrokerOrder, positions: dict[str, float] | None = None, cash: float = 10_000.0,
           fills: tuple[BrokerFill, ...] = (), number: str = "PA1") -> BrokerSnapshot:
    return BrokerSnapshot(orders=orders, positions=tuple(BrokerPosition(symbol=s, quantity=q, avg_price=100.0)
                                                         for s, q in (positions or {}).items()),
                          fills=fills, cash=cash, equity=cash, account_number=number, taken_ns=T0 + 60 * S)


def kinds(report: ReconcileReport) -> list[tuple[str, bool]]:
    return [(d.kind, d.explained) for d in report.differences]


# --- agreement and missed events ---------------------------------------------------------------------


def test_both_sides_agree_no_difference() -> None:
    done = order("sma-SPY-1-1", status=OrderStatus.FILLED, filled=10.0)
    report = reconcile(local(done, positions={"SPY": 10.0}, cash=9_000.0),
                       broker(border(done.client_order_id, filled=10.0, price=100.0, status="filled"),
                              positions={"SPY": 10.0}, cash=9_000.0))
    assert report.differences == () and report.ok and report.to_apply == ()
    assert report.verdict() == "OK: no difference with the broker"


def test_fill_while_down_is_a_missed_fill_that_explains_position_and_cash() -> None:
    working = order("sma-SPY-1-1")
    report = reconcile(local(working, cash=10_000.0),
                       broker(border("sma-SPY-1-1", filled=10.0, price=100.0, status="filled"),
                              positions={"SPY": 10.0}, cash=9_000.0))
    assert kinds(report) == [("missed_fill", True), ("cash_difference", True)]
    assert report.ok and report.to_apply == ("sma-SPY-1-1",)
    assert "explained by the missed fills" in report.differences[1].detail
    assert "10 shares buy at 100.0000 USD" in report.differences[0].detail


def test_partial_missed_fill_counts_only_the_increment_at_its_own_price() -> None:
    partly = order("sma-SPY-1-1", filled=4.0, price=100.0, status=OrderStatus.PARTIALLY_FILLED)
    # broker: 10 filled at an average of 101 -> the 6 new shares cost (1010 - 400) / 6 each
    report = reconcile(local(partly, positions={"SPY": 4.0}, cash=9_600.0),
                       broker(border("sma-SPY-1-1", filled=10.0, price=101.0, status="filled"),
                              positions={"SPY": 10.0}, cash=9_600.0 - 610.0))
    assert kinds(report) == [("missed_fill", True), ("cash_difference", True)]
    assert "6 shares buy at 101.6667 USD" in report.differences[0].detail


def test_a_short_sale_missed_while_down_accounts_negative_shares() -> None:
    sell = order("sma-SPY-1-1", side=Side.SELL, quantity=5.0)
    report = reconcile(local(sell, positions={"SPY": 5.0}, cash=1_000.0),
                       broker(border("sma-SPY-1-1", side=Side.SELL, quantity=5.0, filled=5.0, price=200.0,
                                     status="filled"), positions={}, cash=2_000.0))
    assert report.ok and [k for k, _ in kinds(report)] == ["missed_fill", "cash_difference"]


@pytest.mark.parametrize(("status", "kind"), [("canceled", "missed_cancel"), ("expired", "missed_expiry"),
                                              ("rejected", "missed_rejection")])
def test_an_order_ended_at_the_broker_is_a_missed_end_to_apply(status: str, kind: str) -> None:
    working = order("sma-SPY-1-1")
    report = reconcile(local(working), broker(border("sma-SPY-1-1", status=status)))
    assert kinds(report) == [(kind, True)] and report.to_apply == ("sma-SPY-1-1",) and report.ok


def test_canceled_outside_after_a_partial_fill_reports_both_the_fill_and_the_cancel() -> None:
    working = order("sma-SPY-1-1", filled=3.0, status=OrderStatus.PARTIALLY_FILLED)
    report = reconcile(local(working, positions={"SPY": 3.0}, cash=9_700.0),
                       broker(border("sma-SPY-1-1", filled=5.0, price=100.0, status="canceled"),
                              positions={"SPY": 5.0}, cash=9_500.0))
    assert [k for k, _ in kinds(report)] == ["missed_fill", "missed_cancel", "cash_difference"] and report.ok
    assert report.to_apply == ("sma-SPY-1-1",)  # once, however many kinds


def test_done_for_day_ends_a_day_order_but_not_a_gtc_one() -> None:
    day = order("sma-SPY-1-1", tif=TimeInForce.DAY)
    gtc = order("sma-QQQ-1-1", symbol="QQQ")
    report = reconcile(local(day, gtc), broker(border("sma-SPY-1-1", status="done_for_day"),
                                               border("sma-QQQ-1-1", symbol="QQQ", status="done_for_day")))
    assert [(d.kind, d.client_order_id) for d in report.differences] == [("missed_expiry", "sma-SPY-1-1")]


def test_unknown_outcome_found_at_the_broker_is_applied() -> None:
    unsure = order("sma-SPY-1-1", status=OrderStatus.SUBMITTED)
    report = reconcile(local(unsure), broker(border("sma-SPY-1-1", status="accepted")))
    assert kinds(report) == [("unknown_outcome_found", True)] and report.to_apply == ("sma-SPY-1-1",)
    filled = reconcile(local(unsure), broker(border("sma-SPY-1-1", filled=10.0, price=100.0, status="filled"),
                                             positions={"SPY": 10.0}, cash=9_000.0))
    assert [k for k, _ in kinds(filled)] == ["missed_fill", "unknown_outcome_found", "cash_difference"]
    assert filled.ok


def test_an_unsent_order_the_broker_does_not_know_never_reached_it() -> None:
    unsent = order("sma-SPY-1-1", status=OrderStatus.INITIALIZED)
    unsure = order("sma-SPY-1-2", status=OrderStatus.SUBMITTED)
    report = reconcile(local(unsent, unsure), broker())
    assert kinds(report) == [("never_reached", True), ("never_reached", True)]
    assert report.never_reached == ("sma-SPY-1-1", "sma-SPY-1-2") and report.to_apply == () and report.ok


def test_an_accepted_order_the_broker_lost_is_unexplained() -> None:
    working = order("sma-SPY-1-1")
    report = reconcile(local(working), broker())
    assert kinds(report) == [("order_mismatch", False)] and not report.ok
    assert "the broker does not know it" in report.differences[0].detail


def test_to_apply_follows_the_broker_creation_order_and_duplicates_are_compared_once() -> None:
    a, b = order("sma-SPY-1-1"), order("sma-SPY-1-2")
    report = reconcile(local(a, b), broker(border("sma-SPY-1-2", status="canceled", ts=T0 + 1),
                                           border("sma-SPY-1-1", status="canceled", ts=T0 + 2),
                                           border("sma-SPY-1-2", status="canceled", ts=T0 + 1)))
    assert report.to_apply == ("sma-SPY-1-2", "sma-SPY-1-1") and len(report.differences) == 2


# --- orders that disagree -----------------------------------------------------------------------------


def test_broker_filled_less_than_booked_is_unexplained() -> None:
    booked = order("sma-SPY-1-1", filled=10.0, status=OrderStatus.FILLED)
    report = reconcile(local(booked, positions={"SPY": 10.0}, cash=9_000.0),
                       broker(border("sma-SPY-1-1", filled=6.0, price=100.0, status="partially_filled"),
                              positions={"SPY": 10.0}, cash=9_000.0))
    assert kinds(report) == [("order_mismatch", False)] and report.to_apply == ()


def test_broker_still_working_an_order_booked_as_ended_is_unexplained_unless_cancel_pending() -> None:
    ended = order("sma-SPY-1-1", status=OrderStatus.CANCELED)
    assert kinds(reconcile(local(ended), broker(border("sma-SPY-1-1", status="new")))) == [("order_mismatch", False)]
    assert reconcile(local(ended), broker(border("sma-SPY-1-1", status="pending_cancel"))).differences == ()


def test_other_symbol_side_or_broker_id_for_our_id_is_unexplained() -> None:
    ours = order("sma-SPY-1-1", broker_id="b-1")
    for other in (border("sma-SPY-1-1", symbol="QQQ", broker_id="b-1"),
                  border("sma-SPY-1-1", side=Side.SELL, broker_id="b-1"),
                  border("sma-SPY-1-1", broker_id="b-2")):
        report = reconcile(local(ours), broker(other))
        assert kinds(report) == [("order_mismatch", False)], other


def test_replaced_outside_is_unexplained_but_booked_as_ended() -> None:
    report = reconcile(local(order("sma-SPY-1-1")), broker(border("sma-SPY-1-1", status="replaced")))
    assert kinds(report) == [("order_mismatch", False)] and report.to_apply == ("sma-SPY-1-1",)


def test_known_ended_orders_not_loaded_are_neither_external_nor_compared() -> None:
    snap = local(known=frozenset({"sma-SPY-0-1"}))
    assert reconcile(snap, broker(border("sma-SPY-0-1", filled=10.0, price=1.0, status="filled"),
                                  positions={}, cash=10_000.0)).differences == ()
    still = reconcile(snap, broker(border("sma-SPY-0-1", status="new")))
    assert kinds(still) == [("order_mismatch", False)]


# --- external orders and positions ----------------------------------------------------------------------


def test_orders_we_did_not_create_are_external_and_explained() -> None:
    report = reconcile(local(order("sma-SPY-1-1", status=OrderStatus.CANCELED)),
                       broker(border("sma-SPY-1-1", status="canceled"),
                              border("manual-1", symbol="TSLA", status="new"),
                              border("manual-2", symbol="TSLA", status="canceled")))  # ended unfilled: noise
    assert kinds(report) == [("external_order", True)] and report.external_orders == ("manual-1",) and report.ok


def test_an_unknown_order_with_our_id_form_is_unexplained() -> None:
    report = reconcile(local(order("sma-SPY-1-1", status=OrderStatus.CANCELED)),
                       broker(border("sma-SPY-1-1", status="canceled"),
                              border("sma-QQQ-1700000000000000000-2", symbol="QQQ", status="new")))
    assert kinds(report) == [("external_order", False)]
    assert "another tradingd" in report.differences[0].detail


def test_a_position_in_a_symbol_we_never_traded_is_external_and_explained() -> None:
    report = reconcile(local(order("sma-SPY-1-1", status=OrderStatus.CANCELED)),
                       broker(border("sma-SPY-1-1", status="canceled"), positions={"TSLA": 7.0}))
    assert kinds(report) == [("external_position", True)] and report.external_positions == ("TSLA",)
    assert report.ok and report.summary()["counts"]["external_position"] == 1
    again = reconcile(local(external=frozenset({"TSLA"})), broker(positions={"TSLA": 9.0}))
    assert "tagged external before" in again.differences[0].detail and again.ok


def test_position_size_mismatch_is_unexplained_and_names_what_was_expected() -> None:
    done = order("sma-SPY-1-1", filled=10.0, status=OrderStatus.FILLED)
    report = reconcile(local(done, positions={"SPY": 10.0}, cash=9_000.0),
                       broker(border("sma-SPY-1-1", filled=10.0, price=100.0, status="filled"),
                              positions={"SPY": 7.0}, cash=9_000.0))
    assert kinds(report) == [("position_mismatch", False)] and not report.ok
    d = report.differences[0]
    assert (d.local, d.broker) == (10.0, 7.0) and "expected 10 shares (booked 10), the broker holds 7" in d.detail
    assert report.halt_reason() == "reconciliation: position_mismatch SPY"
    assert report.verdict().startswith("MISMATCH: 1 unexplained difference of 1")


def test_a_symbol_we_traded_is_never_external_even_when_flat() -> None:
    old = order("sma-SPY-1-1", status=OrderStatus.FILLED, filled=10.0)
    report = reconcile(local(old), broker(positions={"SPY": 3.0}))  # the order is outside the window
    assert kinds(report) == [("position_mismatch", False)]


def test_missed_fills_are_counted_before_positions_are_compared() -> None:
    working = order("sma-SPY-1-1")
    short = reconcile(local(working), broker(border("sma-SPY-1-1", filled=4.0, price=100.0,
                                                    status="partially_filled"), positions={"SPY": 3.0},
                                             cash=9_600.0))
    assert [k for k, ok in kinds(short) if not ok] == ["position_mismatch"]
    assert "expected 4 shares (booked 0 + 4 from missed fills), the broker holds 3" in short.unexplained[0].detail


def test_external_trading_in_our_symbol_is_unexplained_and_says_so() -> None:
    mine = order("sma-SPY-1-1", filled=10.0, status=OrderStatus.FILLED)
    report = reconcile(local(mine, positions={"SPY": 10.0}, cash=9_000.0),
                       broker(border("sma-SPY-1-1", filled=10.0, price=100.0, status="filled"),
                              border("manual-1", filled=5.0, price=100.0, status="filled"),
                              positions={"SPY": 15.0}, cash=8_500.0))
    assert [k for k, ok in kinds(report) if not ok] == ["position_mismatch", "cash_difference"]
    assert "orders not placed by tradingd traded this symbol too" in report.unexplained[0].detail


def test_fills_of_orders_outside_the_window_mark_their_symbol_as_traded_outside() -> None:
    mine = order("sma-SPY-1-1", filled=10.0, status=OrderStatus.FILLED)
    fill = BrokerFill(activity_id="a1", broker_order_id="somebody", symbol="SPY", side=Side.BUY, quantity=1.0,
                      price=100.0, cum_quantity=1.0, ts=T0)
    report = reconcile(local(mine, positions={"SPY": 10.0}, cash=9_000.0),
                       broker(positions={"SPY": 11.0}, cash=9_000.0, fills=(fill,)))
    assert "not placed by tradingd" in report.unexplained[0].detail


# --- cash --------------------------------------------------------------------------------------------------


def test_cash_within_tolerance_or_below_a_cent() -> None:
    near = reconcile(local(cash=1_000.0), broker(cash=1_000.6), cash_tolerance=1.0)
    assert kinds(near) == [("cash_difference", True)] and "within the tolerance of 1 USD" in near.differences[0].detail
    assert reconcile(local(cash=1_000.0), broker(cash=1_000.004)).differences == ()


def test_cash_beyond_tolerance_with_matching_positions_is_explained_as_other_cash_moves() -> None:
    report = reconcile(local(cash=1_000.0), broker(cash=1_012.5))
    assert kinds(report) == [("cash_difference", True)]
    assert "dividends, fees, interest, transfers" in report.differences[0].detail


def test_cash_beyond_tolerance_with_a_position_mismatch_is_unexplained() -> None:
    report = reconcile(local(order("sma-SPY-1-1", status=OrderStatus.FILLED, quantity=2.0, filled=2.0),
                             positions={"SPY": 2.0},
                             cash=1_000.0), broker(positions={"SPY": 1.0}, cash=1_100.0))
    assert kinds(report) == [("position_mismatch", False), ("cash_difference", False)]


def test_account_number_other_than_the_bound_one_is_unexplained() -> None:
    report = reconcile(local(broker_account_number="PA1"), broker(number="LIVE9"))
    assert kinds(report) == [("account_mismatch", False)] and "'PA1'" in report.differences[0].detail
    assert reconcile(local(broker_account_number="PA1"), broker(number="PA1")).differences == ()


# --- the report and inputs ---------------------------------------------------------------------------------


def test_summary_is_json_and_counts_kinds() -> None:
    report = reconcile(local(order("sma-SPY-1-1"), order("sma-SPY-1-2", status=OrderStatus.SUBMITTED)),
                       broker(border("sma-SPY-1-1", status="canceled"), positions={"TSLA": 1.0}))
    summary = json.loads(json.dumps(report.summary()))
    assert summary["ok"] is True and summary["to_apply"] == ["sma-SPY-1-1"]
    assert summary["never_reached"] == ["sma-SPY-1-2"] and summary["external_positions"] == ["TSLA"]
    assert summary["counts"] == {"differences": 3, "unexplained": 0, "to_apply": 1, "missed_cancel": 1,
                                 "never_reached": 1, "external_position": 1}
    assert {d["kind"] for d in summary["differences"]} == {"missed_cancel", "never_reached", "external_position"}


def test_from_restored_takes_positions_cash_and_the_ids_not_loaded() -> None:
    working = order("sma-SPY-1-2")
    restored = RestoredState(account="a", cash=5_000.0, positions=(RestoredPosition(
        symbol="SPY", quantity=3.0, avg_price=1.0, mark=1.0),), open_orders=(working,),
        known_client_order_ids=frozenset({"sma-SPY-1-1", "sma-SPY-1-2"}))
    snap = LocalSnapshot.from_restored(restored, [working], external=["TSLA"])
    assert (snap.cash, dict(snap.positions), snap.known, snap.external) == (
        5_000.0, {"SPY": 3.0}, frozenset({"sma-SPY-1-1"}), frozenset({"TSLA"}))
    assert LocalSnapshot.from_restored(None, [], cash=7.0).cash == 7.0


def test_bad_input_is_refused_with_what_and_where() -> None:
    with pytest.raises(ValueError, match="broker order 'x' filled_quantity must be >= 0"):
        border("x", filled=-1.0)
    with pytest.raises(ValueError, match="broker cash must be a finite number"):
        BrokerSnapshot(cash=float("nan"))
    with pytest.raises(ValueError, match="local position 'SPY'"):
        LocalSnapshot(positions={"SPY": float("inf")})
    with pytest.raises(ValueError, match="cash_tolerance must be >= 0"):
        reconcile(local(), broker(), cash_tolerance=-1.0)
    with pytest.raises(ValueError, match="broker fill 'f' needs quantity and price > 0"):
        BrokerFill(activity_id="f", broker_order_id="b", symbol="SPY", side=Side.BUY, quantity=1.0, price=0.0,
                   cum_quantity=1.0, ts=T0)


def test_binding_rules() -> None:
    paper = {"account": "a", "broker": "alpaca", "mode": "paper", "broker_account_number": "PA1"}
    assert binding_conflict([paper], "a", "alpaca", "paper", "PA1", "db") is None
    live = binding_conflict([paper], "b", "alpaca", "live", "L1", "db")
    assert live is not None and live.startswith("paper and live never share a state database")
    assert "'a' bound to paper (alpaca account PA1)" in live and "'b' to live (alpaca account L1)" in live
    assert "another broker" not in (binding_conflict([paper], "a", "alpaca", "paper", "PA2", "db") or "")
    assert "one state database trades one broker account" in (
        binding_conflict([paper], "b", "alpaca", "paper", "PA2", "db") or "")
    assert "two accounts would trade" in (binding_conflict([paper], "b", "alpaca", "paper", "PA1", "db") or "")
    sim = {"account": "s", "broker": "paper", "mode": "paper", "broker_account_number": ""}
    assert binding_conflict([sim], "a", "alpaca", "paper", "PA1", "db") is None  # simulated accounts coexist
    with pytest.raises(ValueError, match="needs the broker's account number"):
        check_binding("a", "alpaca", "paper", "")
    with pytest.raises(ValueError, match="mode must be one of"):
        check_binding("a", "alpaca", "real", "X")


# --- the store ---------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def any_store(request: pytest.FixtureRequest, tmp_path) -> Iterator[SqlStore | MemoryStore]:
    if request.param == "memory":
        yield MemoryStore("acct")
        return
    url = f"sqlite:///{tmp_path / 'rec.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    store = SqlStore(StoreConfig(database_url=url), account="acct")
    try:
        yield store
    finally:
        store.close()


def _report(ok: bool, ts: int) -> ReconcileReport:
    snap = local(order("sma-SPY-1-1", status=OrderStatus.FILLED, quantity=1.0, filled=1.0), positions={"SPY": 1.0})
    return reconcile(snap, broker(positions={"SPY": 1.0 if ok else 2.0, "TSLA": 5.0}) if ok else
                     BrokerSnapshot(positions=(BrokerPosition(symbol="SPY", quantity=2.0, avg_price=1.0),),
                                    cash=10_000.0, account_number="PA1", taken_ns=ts))


def test_last_reconciliation_is_the_newest_saved_one(any_store: SqlStore | MemoryStore) -> None:
    assert any_store.last_reconciliation() is None
    good = _report(True, 0)
    any_store.save_reconciliation(good, "startup")
    bad = _report(False, T0 + 120 * S)
    any_store.save_reconciliation(bad, "cli")
    last = any_store.last_reconciliation("acct")
    assert last is not None
    assert (last["ts"], last["reason"], last["ok"], last["account_number"]) == (T0 + 120 * S, "cli", False, "PA1")
    assert last["differences"] == [d.as_dict() for d in bad.differences]
    assert last["counts"]["position_mismatch"] == 1 and last["counts"]["unexplained"] == 1
    any_store.save_reconciliation(good, "scheduled", account="other")
    assert any_store.last_reconciliation("other")["external_positions"] == ["TSLA"]  # type: ignore[index]
    assert any_store.last_reconciliation("nobody") is None


def test_bind_broker_account_refuses_paper_and_live_mixing(any_store: SqlStore | MemoryStore) -> None:
    first = any_store.bind_broker_account("acct", "alpaca", "paper", "PA1", ts=T0)
    assert first == {"account": "acct", "broker": "alpaca", "mode": "paper", "broker_account_number": "PA1",
                     "first_seen": T0}
    assert any_store.bind_broker_account("acct", "alpaca", "paper", "PA1") == first  # idempotent
    with pytest.raises(StoreError, match="paper and live never share a state database") as live:
        any_store.bind_broker_account("acct-live", "alpaca", "live", "LIVE9")
    assert "'acct' bound to paper (alpaca account PA1)" in str(live.value)
    assert "'acct-live' to live (alpaca account LIVE9)" in str(live.value)
    with pytest.raises(StoreError, match="refusing to bind it to paper \\(alpaca account PA2\\)"):
        any_store.bind_broker_account("acct", "alpaca", "paper", "PA2")
    with pytest.raises(StoreError, match="one state database trades one broker account"):
        any_store.bind_broker_account("acct2", "alpaca", "paper", "PA2")
    assert any_store.broker_account("acct-live") is None and any_store.broker_account("acct2") is None  # rolled back
    assert any_store.broker_account() == first
    with pytest.raises(ValueError, match="simulated paper broker cannot trade live money"):
        any_store.bind_broker_account("sim", "paper", "live", "")
    sim = any_store.bind_broker_account("sim", "paper", "paper", None)  # the simulated broker has no number
    assert (sim["broker"], sim["broker_account_number"]) == ("paper", "")


def test_a_refused_binding_keeps_the_buffered_rows(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    with SqlStore(StoreConfig(database_url=url, batch_size=1000), account="acct") as store:
        store.bind_broker_account("acct", "alpaca", "live", "LIVE9")
        store.start_run("r1", "live", "sma", {}, "c", "d", T0)
        store.save_order(order("sma-SPY-1-1"))
        with pytest.raises(StoreError, match="paper and live"):
            store.bind_broker_account("paper", "alpaca", "paper", "PA1")
        assert store.buffered == 1
    with SqlStore(StoreConfig(database_url=url), account="acct") as again:  # survives reopening
        assert [o.client_order_id for o in again.account_orders()] == ["sma-SPY-1-1"]
        assert again.broker_account()["mode"] == "live"  # type: ignore[index]
        with pytest.raises(StoreError, match="paper and live never share a state database"):
            again.bind_broker_account("paper", "alpaca", "paper", "PA1")


def test_migration_0005_keeps_rows_and_downgrades_cleanly(database_url: str) -> None:
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(connection=conn), "0004_journal")
            conn.execute(sa.text("INSERT INTO runs (id, account, kind, strategy_id, params, config_hash, data_hash, "
                                 "started_at, status) VALUES ('old', 'acct', 'live', 'sma', '{}', 'c', 'd', "
                                 "'2024-01-02 15:00:00+00', 'finished')"))
        with SqlStore(StoreConfig(database_url=database_url), account="acct") as store:  # upgrades to head
            assert store.run("old") is not None and store.last_reconciliation() is None
            store.save_reconciliation(_report(True, 0), "startup")
            store.bind_broker_account("acct", "alpaca", "paper", "PA1")
        with engine.begin() as conn:
            command.downgrade(alembic_config(connection=conn), "0004_journal")
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            assert "reconciliations" not in tables and "broker_accounts" not in tables
            assert conn.execute(sa.text("SELECT id FROM runs")).scalars().all() == ["old"]
    finally:
        engine.dispose()
