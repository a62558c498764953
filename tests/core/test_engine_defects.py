"""The kernel defects of the foundation review (issue 5, part B), each as the behaviour a user sees.

Every test here failed on the foundation code (commit ddae826); the comment on each names how.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from core.enums import OrderStatus, OrderType, Side, TradingState
from core.events import (Bar, FlattenPositions, HaltTrading, OrderAccepted, OrderCanceled, OrderFilled,
                         OrderRejected, RearmTrading)
from core.intents import OrderIntent, close, enter
from core.time import NANOS_PER_HOUR
from risk.config import RiskConfig
from backtest.fill_model import FillConfig
from strategies.base import Strategy
from tests.support import paper_kernel

T0 = 1_600_000_000 * 1_000_000_000
H = NANOS_PER_HOUR


def bar(i: int, close_: float, symbol: str = "XYZ", open_: float | None = None, volume: float = 1e6) -> Bar:
    ts = T0 + i * H
    o = close_ if open_ is None else open_
    return Bar(symbol, ts, ts + H, o, max(o, close_), min(o, close_), close_, volume)


class Scripted(Strategy):
    """Returns the intents scripted for each bar index (per symbol) and nothing else."""

    name = "scripted"

    def __init__(self, script: dict[tuple[str, int], list[OrderIntent]] | None = None) -> None:
        super().__init__()
        self.script = script or {}
        self.seen: dict[str, int] = {}

    def on_bar(self, ctx, bar):
        i = self.seen.get(bar.symbol, 0)
        self.seen[bar.symbol] = i + 1
        return self.script.get((bar.symbol, i), [])


class ExitEveryBar(Strategy):
    """Enter once, then ask to close the whole position on every bar once it is large enough (what
    rsi_momentum did while its entry was still filling under a participation cap): the exits take
    more than one bar to fill, so they pile up unless the ones already working are counted."""

    name = "exit_every_bar"

    def on_bar(self, ctx, bar):
        position = ctx.position(bar.symbol)
        if position >= 500:
            return (close(bar.symbol, position, "exit"),)
        if not getattr(self, "entered", False):
            self.entered = True
            return (enter(bar.symbol, Side.BUY, "entry", quantity=1000.0),)
        return ()


def test_b1_a_long_only_account_never_goes_short_under_a_participation_cap():
    # foundation: the exit for the whole position was approved on every bar while the entry was
    # still partially filling; the exits filled and the position went to -1,500 shares
    risk = RiskConfig(max_position_fraction=1.0, fixed_fraction=1.0, max_order_notional=1e9)
    fill = FillConfig(slippage_bps=0, participation_cap=0.1)
    kernel, store, _, _ = paper_kernel(ExitEveryBar(), risk=risk, fill=fill, start_ns=T0)
    positions = []
    for i in range(30):
        kernel.engine.handle(bar(i, 10.0, volume=2_500.0))  # the cap fills 250 shares a bar
        position = kernel.portfolio.position("XYZ")
        positions.append(position)
        # exits working never exceed what is held: whatever fills next, the account cannot go short
        assert -kernel.book.pending_exits("XYZ") <= position + 1e-9, (i, position, kernel.book.pending_exits("XYZ"))
    assert min(positions) >= 0.0
    assert max(positions) > 0.0  # it did trade


def test_b2_sma_cross_with_shorting_reverses_on_a_cross():
    # foundation: the short entry after the close was denied "already positioned" because the
    # pending close counted as a position in the same direction
    script = {("XYZ", 0): [enter("XYZ", Side.BUY, "up", quantity=100.0)],
              ("XYZ", 2): [close("XYZ", 100.0, "down"), enter("XYZ", Side.SELL, "down")]}
    risk = RiskConfig(allow_short=True, max_position_fraction=0.5)
    kernel, store, _, _ = paper_kernel(Scripted(script), risk=risk, start_ns=T0)
    for i in range(4):
        kernel.engine.handle(bar(i, 100.0))
    outcomes = [(d.side, d.outcome) for d in store.decisions]
    assert outcomes == [(Side.BUY, "submitted"), (Side.SELL, "submitted"), (Side.SELL, "submitted")]
    assert kernel.portfolio.position("XYZ") < 0  # reversed: now short


def test_b3_entries_working_from_earlier_bars_count_against_max_open_positions():
    # foundation: only entries approved at the same timestamp were counted; limit orders working
    # from earlier bars let a third position open with max_open_positions = 2
    limit = lambda s: OrderIntent(s, Side.BUY, None, OrderType.LIMIT, limit_price=50.0, reason="dip")  # noqa: E731
    script = {("AAA", 0): [limit("AAA")], ("BBB", 1): [limit("BBB")], ("CCC", 2): [limit("CCC")]}
    kernel, store, _, _ = paper_kernel(Scripted(script), risk=RiskConfig(max_open_positions=2), start_ns=T0)
    for i in range(3):
        for symbol in ("AAA", "BBB", "CCC"):
            kernel.engine.handle(bar(i, 100.0, symbol))
    outcomes = {d.symbol: (d.outcome, d.reason) for d in store.decisions}
    assert outcomes["AAA"][0] == outcomes["BBB"][0] == "submitted"
    assert outcomes["CCC"] == ("denied", "open positions 3 > max_open_positions 2")


def test_b6_interleaved_intents_never_reuse_a_client_order_id():
    # foundation: the sequence reset whenever (symbol, bar) changed, so intents B, A, B on one
    # bar got two "...-B-<ts>-1" ids; the broker rejected the second and the first's fill raised
    script = {("XYZ", 0): [enter("BBB", Side.BUY, "b1", quantity=1.0), enter("AAA", Side.BUY, "a", quantity=1.0),
                           enter("BBB", Side.BUY, "b2", quantity=1.0)]}
    risk = RiskConfig(max_position_fraction=1.0)
    kernel, store, alerts, _ = paper_kernel(Scripted(script), risk=risk, start_ns=T0)
    for symbol in ("AAA", "BBB", "XYZ"):
        kernel.engine.handle(bar(0, 100.0, symbol))
    ids = [o.client_order_id for o in kernel.book.orders.values()]
    assert len(ids) == len(set(ids)) == 3
    assert not [o for o in kernel.book.orders.values() if o.status is OrderStatus.REJECTED]


def test_b8_the_loss_cool_down_lasts_its_full_length_from_when_the_loss_was_known():
    # foundation: the closed trade was stamped with the fill bar's START, so a 3 h cool-down
    # ended after 2 h (one bar short)
    risk = RiskConfig(max_consecutive_losses=1, loss_cooldown="3h", max_position_fraction=1.0)
    script = {("XYZ", 0): [enter("XYZ", Side.BUY, "in", quantity=10.0)], ("XYZ", 2): [close("XYZ", 10.0, "out")]}
    kernel, store, _, _ = paper_kernel(Scripted(script), risk=risk, start_ns=T0)
    kernel.engine.handle(bar(0, 100.0))
    kernel.engine.handle(bar(1, 100.0))  # entry fills at 100
    kernel.engine.handle(bar(2, 90.0))
    kernel.engine.handle(bar(3, 90.0, open_=90.0))  # exit fills at 90: a loss, known at this bar's end
    known_at = bar(3, 90.0).ts_init
    assert kernel.risk.state is TradingState.REDUCING
    assert store.trades[0].ts_init == known_at
    kernel.engine.handle(bar(5, 90.0))  # 2 h after the loss was known: still cooling down
    assert kernel.risk.state is TradingState.REDUCING
    kernel.engine.handle(bar(6, 90.0))  # 3 h after
    assert kernel.risk.state is TradingState.ACTIVE


@pytest.mark.parametrize("bad", [
    bar(1, 100.0)._replace(close=math.inf, high=math.inf),
    bar(1, 100.0)._replace(high=math.inf),
    bar(1, 100.0)._replace(low=-math.inf),
    bar(1, 100.0)._replace(close=1e305, high=1e305),
    bar(1, 100.0)._replace(volume=math.inf),
    bar(1, 100.0)._replace(ts_init=bar(1, 100.0).ts_event - 1),  # released before it started
    bar(1, 100.0)._replace(ts_init=bar(1, 100.0).ts_event + 400 * 24 * H),  # a 400-day bar
], ids=["inf close", "inf high", "-inf low", "1e305", "inf volume", "release before start", "400-day bar"])
def test_b12_infinite_overflowing_and_time_travelling_bars_are_refused_at_the_gate(bad):
    # foundation: an infinite close made equity infinite and fired HALT + flatten; with the
    # regime detector on, the same bar raised out of handle
    kernel, store, alerts, curve = paper_kernel(Scripted(), risk=RiskConfig(), start_ns=T0)
    kernel.engine.handle(bar(0, 100.0))
    kernel.engine.handle(bad)
    kernel.engine.handle(bar(2, 101.0))
    assert kernel.engine.dropped_bars == 1
    assert [a[1] for a in alerts.alerts] == ["bar dropped"]
    assert kernel.risk.state is TradingState.ACTIVE
    assert all(math.isfinite(e) for e in curve.equity)


def _accepted_order(kernel, quantity=10.0):
    """Submit one market buy through the engine and return the order (the paper broker accepted it)."""
    kernel.engine._submit(kernel.risk.evaluate(enter("XYZ", Side.BUY, "t", quantity=quantity), "scripted",
                                               kernel.portfolio, kernel.book, "t-1", kernel.clock.now))
    return kernel.book.get("t-1")


def _fill(order, cum, price=100.0, **changes):
    fill = OrderFilled(client_order_id=order.client_order_id, fill_id=f"f-{cum}", symbol=order.symbol,
                       side=order.side, quantity=cum - order.filled_quantity, price=price, cum_quantity=cum,
                       commission=0.0, ts_event=T0 + 2 * H, ts_init=T0 + 2 * H)
    return replace(fill, **changes)


def _books_balance(kernel) -> None:
    p = kernel.portfolio
    assert p.equity == pytest.approx(p.cash + sum(pos.quantity * pos.mark for pos in p.positions().values()))


@pytest.mark.parametrize("sequence", ["reject after accept", "reject after partial", "late fill after cancel",
                                      "overfill by 1e-7", "duplicate accept", "fill for unknown order"])
def test_b13_ordinary_broker_event_orders_never_raise_and_keep_the_books(sequence):
    # foundation: each raised InvalidTransition out of Engine.handle
    kernel, store, alerts, _ = paper_kernel(Scripted(), risk=RiskConfig(max_position_fraction=1.0), start_ns=T0)
    kernel.engine.handle(bar(0, 100.0))
    order = _accepted_order(kernel)
    handle = kernel.engine.handle
    ts = T0 + 2 * H
    if sequence == "reject after accept":
        handle(OrderRejected(client_order_id=order.client_order_id, reason="risk check", ts_event=ts, ts_init=ts))
        assert order.status is OrderStatus.REJECTED and kernel.book.pending("XYZ") == 0.0
    elif sequence == "reject after partial":
        handle(_fill(order, 4.0))
        handle(OrderRejected(client_order_id=order.client_order_id, reason="halted", ts_event=ts, ts_init=ts))
        assert kernel.portfolio.position("XYZ") == 4.0 and kernel.book.pending("XYZ") == 0.0
    elif sequence == "late fill after cancel":
        handle(OrderCanceled(client_order_id=order.client_order_id, reason="user", ts_event=ts, ts_init=ts))
        handle(_fill(order, 3.0))
        assert kernel.portfolio.position("XYZ") == 3.0  # the broker really traded them
        assert order.status is OrderStatus.CANCELED and kernel.book.pending("XYZ") == 0.0
    elif sequence == "overfill by 1e-7":
        handle(_fill(order, 10.0 + 1e-7))
        assert order.status is OrderStatus.FILLED and kernel.portfolio.position("XYZ") == 10.0
    elif sequence == "duplicate accept":
        handle(_fill(order, 10.0))
        handle(OrderAccepted(client_order_id=order.client_order_id, broker_order_id="x", ts_event=ts, ts_init=ts))
        assert order.status is OrderStatus.FILLED
    else:
        handle(replace(_fill(order, 1.0), client_order_id="nobody"))
        assert kernel.portfolio.position("XYZ") == 0.0
        assert any(a[1] == "fill for unknown order" for a in alerts.alerts)
    assert kernel.engine.broker_event_errors == 0
    _books_balance(kernel)


@pytest.mark.parametrize("changes", [{"price": 0.0}, {"price": -5.0}, {"price": math.inf}, {"price": math.nan},
                                     {"cum_quantity": math.nan}, {"commission": math.inf},
                                     {"side": Side.SELL}, {"symbol": "OTHER"}],
                         ids=["zero price", "negative price", "inf price", "nan price", "nan cum", "inf commission",
                              "wrong side", "wrong symbol"])
def test_b14_a_bad_fill_is_refused_before_anything_changes(changes):
    # foundation: a price <= 0 left the order FILLED but the position unbooked; a NaN cum
    # poisoned the order; an infinite price made cash -inf
    kernel, store, alerts, _ = paper_kernel(Scripted(), risk=RiskConfig(max_position_fraction=1.0), start_ns=T0)
    kernel.engine.handle(bar(0, 100.0))
    order = _accepted_order(kernel)
    cash = kernel.portfolio.cash
    kernel.engine.handle(_fill(order, 10.0, **changes))
    assert order.status is OrderStatus.ACCEPTED and order.filled_quantity == 0.0
    assert kernel.portfolio.cash == cash and kernel.portfolio.position("XYZ") == 0.0
    assert store.fills == []
    assert any(a[1].startswith("fill refused") for a in alerts.alerts)
    kernel.engine.handle(_fill(order, 10.0))  # the good report afterwards still applies
    assert kernel.portfolio.position("XYZ") == 10.0


def test_b15_halt_rearm_halt_within_one_second_flattens_with_distinct_ids():
    # foundation: ids were unique only to the second: the second flatten reused the first's id,
    # the broker rejected it and the position stayed open while HALTED
    risk = RiskConfig(max_position_fraction=1.0)
    kernel, store, _, _ = paper_kernel(Scripted({("XYZ", 0): [enter("XYZ", Side.BUY, "in", quantity=10.0)]}),
                                       risk=risk, start_ns=T0)
    handle = kernel.engine.handle
    handle(bar(0, 100.0))
    handle(bar(1, 100.0))  # filled: long 10
    ts = bar(1, 100.0).ts_init
    handle(HaltTrading(reason="one", ts_event=ts, ts_init=ts))  # flatten order working
    handle(RearmTrading(reason="ok", ts_event=ts + 1, ts_init=ts + 1))
    handle(HaltTrading(reason="two", ts_event=ts + 2, ts_init=ts + 2))  # same second: cancel + new flatten
    handle(bar(2, 100.0))
    flattens = [o for o in kernel.book.orders.values() if o.reason == "halt_flatten"]
    assert len(flattens) == 2 and len({o.client_order_id for o in flattens}) == 2
    assert [o.status for o in flattens] == [OrderStatus.CANCELED, OrderStatus.FILLED]
    assert kernel.portfolio.position("XYZ") == 0.0


def test_a6_intents_while_halted_are_audited_once_per_bar_and_symbol():
    script = {("XYZ", i): [enter("XYZ", Side.BUY, "x"), enter("XYZ", Side.BUY, "y")] for i in range(1, 4)}
    kernel, store, _, _ = paper_kernel(Scripted(script), start_ns=T0)
    kernel.engine.handle(HaltTrading(reason="operator", ts_event=T0, ts_init=T0))
    for i in range(4):
        kernel.engine.handle(bar(i, 100.0))
    halted = [d for d in store.decisions if d.outcome == "denied"]
    assert len(halted) == 3  # one per bar, not one per intent
    assert halted[0].reason == "trading halted: operator (2 intent(s) on this bar)"
    assert kernel.engine.denied_while_halted == 6


def test_flatten_command_closes_positions_without_changing_the_trading_state():
    kernel, store, _, _ = paper_kernel(Scripted({("XYZ", 0): [enter("XYZ", Side.BUY, "in", quantity=5.0)]}),
                                       risk=RiskConfig(max_position_fraction=1.0), start_ns=T0)
    kernel.engine.handle(bar(0, 100.0))
    kernel.engine.handle(bar(1, 100.0))
    ts = bar(1, 100.0).ts_init
    kernel.engine.handle(FlattenPositions(reason="operator flatten", ts_event=ts, ts_init=ts))
    kernel.engine.handle(bar(2, 100.0))
    assert kernel.portfolio.position("XYZ") == 0.0 and kernel.risk.state is TradingState.ACTIVE


def test_a4_different_event_kinds_never_compare_equal():
    # foundation: NamedTuples made HaltTrading("x", 1) == RearmTrading("x", 1) True
    assert HaltTrading(reason="x", ts_event=1, ts_init=1) != RearmTrading(reason="x", ts_event=1, ts_init=1)
    canceled = OrderCanceled(client_order_id="a", reason="r", ts_event=1, ts_init=1)
    assert canceled != OrderRejected(client_order_id="a", reason="r", ts_event=1, ts_init=1)
    with pytest.raises(TypeError):
        HaltTrading("x", 1, 1)  # type: ignore[misc]  # keyword-only


def test_pause_blocks_entries_but_not_exits_and_resume_restores_trading():
    from core.events import PauseTrading, ResumeTrading
    script = {("XYZ", 0): [enter("XYZ", Side.BUY, "in", quantity=5.0)],
              ("XYZ", 2): [enter("XYZ", Side.BUY, "more", quantity=5.0), close("XYZ", 5.0, "out")]}
    kernel, store, _, _ = paper_kernel(Scripted(script), risk=RiskConfig(max_position_fraction=1.0), start_ns=T0)
    kernel.engine.handle(bar(0, 100.0))
    kernel.engine.handle(bar(1, 100.0))
    ts = bar(1, 100.0).ts_init
    kernel.engine.handle(PauseTrading(reason="news", ts_event=ts, ts_init=ts))
    assert kernel.risk.state is TradingState.REDUCING
    kernel.engine.handle(bar(2, 100.0))
    outcomes = [(d.reason, d.outcome) for d in store.decisions[-2:]]
    assert outcomes[0][1] == "denied" and outcomes[1] == ("out", "submitted")
    kernel.engine.handle(ResumeTrading(reason="done", ts_event=ts + 1, ts_init=ts + 1))
    assert kernel.risk.state is TradingState.ACTIVE
