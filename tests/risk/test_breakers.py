"""Breaker scenarios: drawdown halt, daily loss, loss streak cool-down, restart, re-arm."""

from __future__ import annotations

import pytest

from core.clock import Clock
from core.enums import Side, TradingState
from core.events import OrderDenied, SubmitOrder, TradeClosed, TradingStateChanged
from core.intents import OrderIntent
from core.time import NANOS_PER_DAY, NANOS_PER_HOUR, NANOS_PER_MINUTE
from tests.risk import NO_ORDERS, Working, DAY0, T0, View, make_engine

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
MIDNIGHT = DAY0 + NANOS_PER_DAY  # the UTC midnight after T0
VIEW = View(100_000.0, {"XYZ": 50.0}, {"XYZ": 100.0, "AAA": 100.0})
ENTRY = OrderIntent("AAA", Side.BUY, reason="entry")
EXIT = OrderIntent("XYZ", Side.SELL, reduce_only=True, reason="exit")


def trade(pnl: float, ts: int) -> TradeClosed:
    return TradeClosed(symbol="XYZ", side=Side.BUY, quantity=10.0, entry_ts=ts - NANOS_PER_HOUR, exit_ts=ts,
                       entry_price=100.0, exit_price=100.0 + pnl / 10.0, pnl=pnl, commission=0.0, exit_reason="x",
                       ts_event=ts, ts_init=ts)


def fire(risk, clock: Clock, ts: int) -> list[TradingStateChanged]:
    """Advance the clock to ``ts`` and hand the fired timers to the risk engine, as the Engine does."""
    changes = [risk.on_timer(t.name, t.ts_init) for t in clock.advance_to(ts)]
    return [c for c in changes if c is not None]


# (id, max_drawdown, equity path USD, index of the first update that halts or None)
DRAWDOWNS = [
    ("exactly 20% halts", 0.20, [100_000.0, 90_000.0, 80_000.0], 2),
    ("just above the floor does not", 0.20, [100_000.0, 80_000.01], None),
    ("measured from the new peak", 0.20, [100_000.0, 125_000.0, 100_000.0], 2),
    ("exactly 10% halts", 0.10, [100_000.0, 90_000.0], 1),
    ("exactly 7% of an odd peak", 0.07, [123_456.78, 123_456.78 * 0.93], 1),
    ("gains never halt", 0.05, [100_000.0, 101_000.0, 102_000.0], None),
]


@pytest.mark.parametrize(("max_drawdown", "path", "halt_at"), [c[1:] for c in DRAWDOWNS],
                         ids=[c[0] for c in DRAWDOWNS])
def test_drawdown_halts_at_the_threshold(max_drawdown, path, halt_at):
    risk, _ = make_engine(max_drawdown=max_drawdown, daily_loss_limit=1.0)
    changes = [risk.on_equity(equity, T0 + i * NANOS_PER_MINUTE) for i, equity in enumerate(path)]
    expected_index = [i for i, c in enumerate(changes) if c is not None]
    assert expected_index == ([] if halt_at is None else [halt_at])
    if halt_at is not None:
        change = changes[halt_at]
        assert (change.previous, change.current, change.ts_init) == (ACTIVE, HALTED, T0 + halt_at * NANOS_PER_MINUTE)
        assert f"max_drawdown {max_drawdown * 100:.2f}%" in change.reason
        assert f"drawdown {max_drawdown * 100:.2f}%" in change.reason
        assert risk.state is HALTED and risk.reason == change.reason


def test_drawdown_reason_text():
    risk, _ = make_engine(daily_loss_limit=1.0)
    risk.on_equity(100_000.0, T0)
    change = risk.on_equity(75_000.0, T0 + 1)
    assert change.reason == "drawdown 25.00% >= max_drawdown 20.00% (equity 75000.00 USD, peak 100000.00 USD)"


def test_halted_denies_entries_and_exits_and_ignores_further_updates():
    risk, clock = make_engine(daily_loss_limit=1.0)
    risk.on_equity(100_000.0, T0)
    risk.on_equity(70_000.0, T0 + 1)
    for intent in (ENTRY, EXIT):
        verdict = risk.evaluate(intent, "s", VIEW, NO_ORDERS, "id", T0 + 2)
        assert isinstance(verdict, OrderDenied)
        assert verdict.reason.startswith("trading halted: drawdown 30.00%")
    assert risk.on_equity(50_000.0, T0 + 3) is None
    assert risk.halt("operator", T0 + 4) is None
    assert fire(risk, clock, MIDNIGHT + NANOS_PER_DAY * 3) == []
    assert risk.state is HALTED


def test_daily_loss_reduces_until_utc_midnight():
    risk, clock = make_engine()
    assert risk.on_equity(100_000.0, T0) is None  # first bar of the day: the anchor
    assert risk.on_equity(96_000.0, T0 + NANOS_PER_HOUR) is None  # -4%
    change = risk.on_equity(95_000.0, T0 + 2 * NANOS_PER_HOUR)  # -5% exactly
    assert (change.previous, change.current) == (ACTIVE, REDUCING)
    assert change.reason == ("daily loss 5.00% >= daily_loss_limit 5.00% "
                             "(equity 95000.00 USD, day start 100000.00 USD)")
    assert clock.next_timer() == MIDNIGHT
    # REDUCING: exits pass, entries do not
    assert isinstance(risk.evaluate(EXIT, "s", VIEW, NO_ORDERS, "a", T0 + 3 * NANOS_PER_HOUR), SubmitOrder)
    denied = risk.evaluate(ENTRY, "s", VIEW, NO_ORDERS, "b", T0 + 3 * NANOS_PER_HOUR)
    assert isinstance(denied, OrderDenied)
    assert denied.reason == (f"trading reducing ({change.reason}): only reduce_only orders are allowed")
    # further losses the same day change nothing; just before midnight nothing fires
    assert risk.on_equity(94_000.0, T0 + 4 * NANOS_PER_HOUR) is None
    assert fire(risk, clock, MIDNIGHT - 1) == []
    assert risk.state is REDUCING
    # the Clock fires the reset at midnight
    [back] = fire(risk, clock, MIDNIGHT)
    assert (back.previous, back.current, back.ts_init) == (REDUCING, ACTIVE, MIDNIGHT)
    assert risk.state is ACTIVE
    # the new day is anchored on the last equity before its first bar (94k, yesterday's last)
    assert risk.on_equity(94_000.0, MIDNIGHT + NANOS_PER_HOUR) is None
    assert risk.on_equity(90_000.0, MIDNIGHT + 2 * NANOS_PER_HOUR) is None  # -4.3% vs 94k
    assert isinstance(risk.evaluate(ENTRY, "s", VIEW, NO_ORDERS, "c", MIDNIGHT + 2 * NANOS_PER_HOUR), SubmitOrder)


def test_daily_loss_is_measured_from_the_day_start_not_the_peak():
    risk, _ = make_engine()
    risk.on_equity(100_000.0, T0 - NANOS_PER_DAY)  # yesterday
    risk.on_equity(96_000.0, T0 - NANOS_PER_DAY + NANOS_PER_HOUR)  # yesterday's last equity: the anchor
    assert risk.on_equity(96_000.0, T0) is None
    assert risk.on_equity(92_000.0, T0 + 1) is None  # -4.2% today, -8% from the peak
    assert risk.on_equity(91_200.0, T0 + 2).current is REDUCING  # -5% today


def test_an_overnight_gap_counts_in_the_new_day():
    """B4: the anchor is the equity before the day's first bar, so a gap down at the open trips."""
    risk, _ = make_engine()
    risk.on_equity(100_000.0, T0 - NANOS_PER_DAY)  # yesterday's close
    change = risk.on_equity(94_000.0, T0)  # the first bar of today opens 6% lower
    assert change is not None and change.current is REDUCING
    assert "day start 100000.00 USD" in change.reason


def test_a_trading_day_ends_at_new_york_midnight_for_us_equities():
    risk, clock = make_engine(trading_day_timezone="America/New_York")
    risk.on_equity(100_000.0, T0)  # 2024-01-01 15:00Z = 10:00 New York
    risk.on_equity(94_000.0, T0 + NANOS_PER_HOUR)
    ny_midnight = DAY0 + NANOS_PER_DAY + 5 * NANOS_PER_HOUR  # 2024-01-02T00:00-05:00
    assert clock.next_timer() == ny_midnight
    # 23:30 New York (04:30Z the next UTC day) is still the same trading day: no new anchor
    assert risk.on_equity(93_000.0, ny_midnight - 30 * NANOS_PER_MINUTE) is None
    assert risk.state is REDUCING
    [back] = fire(risk, clock, ny_midnight)
    assert back.current is ACTIVE


# (id, trade pnls, index of the trade that starts the cool-down or None)
STREAKS = [
    ("five losses in a row", [-1, -1, -1, -1, -1], 4),
    ("a winner resets the count", [-1, -1, -1, -1, 5, -1, -1, -1, -1], None),
    ("break-even leaves the count", [-1, -1, 0, -1, -1, -1], 5),
    ("winners only", [3, 4, 5, 6, 7], None),
]


@pytest.mark.parametrize(("pnls", "trip_at"), [c[1:] for c in STREAKS], ids=[c[0] for c in STREAKS])
def test_consecutive_losses(pnls, trip_at):
    risk, _ = make_engine()
    changes = [risk.on_trade_closed(trade(float(p), T0 + i)) for i, p in enumerate(pnls)]
    assert [i for i, c in enumerate(changes) if c is not None] == ([] if trip_at is None else [trip_at])


def test_loss_streak_cools_down_on_the_clock():
    risk, clock = make_engine(max_consecutive_losses=3, loss_cooldown="6h")
    for i in range(2):
        assert risk.on_trade_closed(trade(-10.0, T0 + i)) is None
    change = risk.on_trade_closed(trade(-10.0, T0 + 2))
    assert (change.previous, change.current) == (ACTIVE, REDUCING)
    assert change.reason == "3 consecutive losing trades >= max_consecutive_losses 3 (cool-down 6h)"
    assert clock.next_timer() == T0 + 2 + 6 * NANOS_PER_HOUR
    assert isinstance(risk.evaluate(ENTRY, "s", VIEW, NO_ORDERS, "a", T0 + 3), OrderDenied)
    assert isinstance(risk.evaluate(EXIT, "s", VIEW, NO_ORDERS, "b", T0 + 3), SubmitOrder)
    assert fire(risk, clock, T0 + 6 * NANOS_PER_HOUR) == []
    [back] = fire(risk, clock, T0 + 2 + 6 * NANOS_PER_HOUR)
    assert back.current is ACTIVE and back.reason == "loss cool-down of 6h ended"
    # the count started over: two more losses do not trip it
    assert risk.on_trade_closed(trade(-1.0, T0 + 7 * NANOS_PER_HOUR)) is None
    assert risk.on_trade_closed(trade(-1.0, T0 + 8 * NANOS_PER_HOUR)) is None


def test_reducing_lasts_while_any_cause_is_active():
    risk, clock = make_engine(max_consecutive_losses=1, loss_cooldown="2d")
    risk.on_equity(100_000.0, T0)
    assert risk.on_equity(94_000.0, T0 + 1).current is REDUCING  # daily loss, until midnight
    assert risk.on_trade_closed(trade(-6_000.0, T0 + 2)) is None  # streak too, for 2 days
    assert "daily loss" in risk.reason and "consecutive losing" in risk.reason
    assert fire(risk, clock, MIDNIGHT) == []  # daily cause over, the cool-down is not
    assert risk.state is REDUCING and "daily loss" not in risk.reason
    [back] = fire(risk, clock, T0 + 2 + 2 * NANOS_PER_DAY)
    assert back.current is ACTIVE


def test_halted_persists_across_a_restart_until_rearm():
    risk, clock = make_engine()
    risk.on_equity(100_000.0, T0)
    halted = risk.on_equity(79_000.0, T0 + 1)
    assert halted.current is HALTED
    # 'restart': a new engine restored from the store's last TradingStateChanged
    restored, clock = make_engine(HALTED, halted.reason, Clock(MIDNIGHT + NANOS_PER_HOUR))
    assert restored.state is HALTED and restored.reason == halted.reason
    t = MIDNIGHT + NANOS_PER_HOUR
    assert restored.on_equity(79_000.0, t) is None
    assert restored.on_equity(150_000.0, t + 1) is None
    assert restored.on_trade_closed(trade(50.0, t + 2)) is None
    for name in ("risk.daily_reset", "risk.cooldown"):
        assert restored.on_timer(name, t + 3) is None
    assert fire(restored, clock, t + 5 * NANOS_PER_DAY) == []
    assert restored.halt("again", t + 4) is None
    assert isinstance(restored.evaluate(EXIT, "s", VIEW, NO_ORDERS, "id", t + 5), OrderDenied)
    assert restored.state is HALTED
    # only rearm leaves it
    change = restored.rearm("operator checked the account", t + 6)
    assert (change.previous, change.current, change.reason) == (HALTED, ACTIVE, "operator checked the account")
    assert restored.rearm("twice", t + 7) is None


def test_rearm_resets_the_high_water_mark_to_the_last_equity():
    risk, _ = make_engine(daily_loss_limit=1.0)
    risk.on_equity(100_000.0, T0)
    assert risk.on_equity(80_000.0, T0 + 1).current is HALTED
    assert risk.rearm("ok", T0 + 2).current is ACTIVE
    assert risk.peak_equity == 80_000.0
    assert risk.on_equity(80_000.0, T0 + 3) is None  # would re-halt at once against the old peak
    assert risk.on_equity(64_001.0, T0 + 4) is None
    assert risk.on_equity(64_000.0, T0 + 5).current is HALTED  # 20% below the new peak


def test_operator_halt_and_rearm_from_active():
    risk, clock = make_engine()
    risk.on_equity(100_000.0, T0)
    change = risk.halt("manual stop", T0 + 1)
    assert (change.previous, change.current, change.reason) == (ACTIVE, HALTED, "manual stop")
    assert risk.rearm("go", T0 + 2).current is ACTIVE
    assert risk.rearm("go", T0 + 3) is None
    assert risk.on_equity(100_000.0, T0 + 4) is None


def test_timers_never_leave_halted_even_with_a_reducing_cause_ending():
    risk, clock = make_engine()
    risk.on_equity(100_000.0, T0)
    assert risk.on_equity(94_000.0, T0 + 1).current is REDUCING
    assert risk.halt("operator", T0 + 2).current is HALTED
    assert fire(risk, clock, MIDNIGHT) == []
    assert risk.state is HALTED


def test_rearm_from_reducing_clears_the_causes_and_their_timers():
    risk, clock = make_engine()
    risk.on_equity(100_000.0, T0)
    risk.on_equity(94_000.0, T0 + 1)
    assert risk.rearm("override", T0 + 2).current is ACTIVE
    assert clock.next_timer() is None
    assert risk.on_equity(93_000.0, T0 + 3) is None  # day re-anchored at 94k: -1%


def test_restored_reducing_lasts_until_the_next_utc_midnight():
    risk, clock = make_engine(REDUCING, "daily loss (restored)")
    assert risk.state is REDUCING
    assert isinstance(risk.evaluate(ENTRY, "s", VIEW, NO_ORDERS, "a", T0), OrderDenied)
    assert risk.on_equity(100_000.0, T0) is None
    assert clock.next_timer() == MIDNIGHT
    [back] = fire(risk, clock, MIDNIGHT)
    assert back.current is ACTIVE


def test_other_timers_are_ignored():
    risk, _ = make_engine()
    assert risk.on_timer("strategy.eod_flatten", T0) is None


def test_quiet_bars_change_nothing_and_set_no_timer():
    risk, clock = make_engine()
    risk.on_equity(100_000.0, T0)  # peak and day anchor
    changes = {risk.on_equity(100_000.0 - (i % 7) * 500.0, T0 + i * NANOS_PER_MINUTE) for i in range(500)}
    assert changes == {None}
    assert clock.next_timer() is None and risk.state is ACTIVE and risk.peak_equity == 100_000.0
