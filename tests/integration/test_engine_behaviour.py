"""Engine behaviour a user notices: strategy crashes are contained, bad bars are dropped with an
alert, the drawdown breaker halts and flattens, and a halt persists through the store."""

from __future__ import annotations

import math

import pytest

from backtest.fill_model import FillConfig
from tests.support import paper_kernel
from core.enums import TradingState
from core.events import Bar, RearmTrading
from core.time import NANOS_PER_HOUR
from learning.pipeline import SignalConfig
from risk.config import RiskConfig
from alerts.sinks import MemoryAlertSink
from state.memory import MemoryStore
from strategies.base import Strategy
from strategies.registry import build_strategy

T0 = 1_600_000_000 * 1_000_000_000


def bar(i, close, symbol="XYZ", open_=None):
    ts = T0 + i * NANOS_PER_HOUR
    o = close if open_ is None else open_
    return Bar(symbol, ts, ts + NANOS_PER_HOUR, o, max(o, close), min(o, close), close, 1e6)


def engine_for(strategy, risk=None):
    kernel, store, alerts, curve = paper_kernel(strategy, risk=risk, start_ns=T0)
    return kernel.engine, store, alerts, curve


class Crashes(Strategy):
    name = "crashes"

    def on_bar(self, ctx, bar):
        if bar.close > 105:
            raise ZeroDivisionError("boom")
        return ()


class BuyOnce(Strategy):
    name = "buy_once"

    def on_bar(self, ctx, bar):
        from core.enums import Side
        from core.intents import enter
        if ctx.position(bar.symbol) == 0 and ctx.pending(bar.symbol) == 0 and not getattr(self, "done", False):
            self.done = True
            return (enter(bar.symbol, Side.BUY, "test"),)
        return ()


def test_strategy_exception_disables_it_alerts_and_keeps_running():
    engine, store, alerts, curve = engine_for(Crashes())
    for i, close in enumerate([100, 101, 106, 107, 108]):
        engine.handle(bar(i, close))
    assert engine.strategy_enabled is False
    assert any(a[1] == "strategy crashes disabled" and "ZeroDivisionError: boom" in a[2] for a in alerts.alerts)
    assert len(curve.ts) == 5  # the engine kept marking and recording after the crash


@pytest.mark.parametrize("bad", [
    bar(1, 100.0)._replace(close=math.nan, low=math.nan),
    bar(1, 100.0)._replace(close=math.nan),
    bar(1, 100.0)._replace(volume=math.nan),
    bar(1, 100.0)._replace(open=120.0),  # open above the high
    bar(1, 100.0)._replace(low=-1.0),
    bar(1, 100.0)._replace(volume=-5.0),
    bar(0, 100.0),  # duplicate of the first bar
])
def test_bad_bars_are_dropped_with_an_alert_and_never_booked(bad):
    engine, store, alerts, curve = engine_for(build_strategy("sma_cross", {"fast": 2, "slow": 3}))
    engine.handle(bar(0, 100.0))
    engine.handle(bad)
    engine.handle(bar(2, 101.0))
    assert engine.dropped_bars == 1
    assert [a[1] for a in alerts.alerts] == ["bar dropped"]
    assert len(curve.ts) == 2
    assert engine.portfolio.mark("XYZ") == 101.0


def test_out_of_order_bar_is_dropped():
    engine, _, alerts, _ = engine_for(build_strategy("sma_cross"))
    engine.handle(bar(5, 100.0))
    engine.handle(bar(3, 100.0))
    assert "out-of-order" in alerts.alerts[0][2]


def test_drawdown_breaker_halts_flattens_and_only_rearm_resumes():
    risk = RiskConfig(max_drawdown=0.05, fixed_fraction=1.0, max_position_fraction=1.0)
    engine, store, alerts, _ = engine_for(BuyOnce(), risk)
    engine.handle(bar(0, 100.0))
    engine.handle(bar(1, 100.0, open_=100.0))  # entry fills at this open
    assert engine.portfolio.position("XYZ") > 0
    engine.handle(bar(2, 90.0))  # -10% on a fully invested book: breaker trips
    assert engine.risk.state is TradingState.HALTED
    assert [c.current for c in store.trading_states] == [TradingState.HALTED]
    assert any(a[0] == "critical" for a in alerts.alerts)
    engine.handle(bar(3, 89.0, open_=89.5))  # the flatten order fills at this open
    assert engine.portfolio.position("XYZ") == 0
    flatten = [f for f in store.fills if "-halt" in f.client_order_id]
    assert len(flatten) == 1 and flatten[0].price == 89.5
    engine.handle(bar(4, 95.0))
    assert engine.risk.state is TradingState.HALTED  # recovering prices do not re-arm
    engine.handle(RearmTrading(reason="operator checked", ts_event=bar(4, 95.0).ts_init, ts_init=bar(4, 95.0).ts_init))
    assert engine.risk.state is TradingState.ACTIVE
