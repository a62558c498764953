"""RiskEngine invariants (Hypothesis) and its wiring into core.engine.Engine."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import Clock
from core.engine import Engine
from core.enums import OrderType, Side, TradingState
from core.events import (Bar, HaltTrading, OrderDenied, RearmTrading, SubmitOrder, TradingStateChanged)
from core.intents import OrderIntent
from core.portfolio import Portfolio
from core.ports import RiskManager
from core.time import NANOS_PER_DAY, NANOS_PER_MINUTE
from risk.config import RiskConfig
from risk.engine import RiskEngine
from tests.risk import DAY0, T0, View, Working

SYMBOLS = ("XYZ", "AAA", "BBB", "CCC")
TOL = 1e-9

equities = st.floats(1_000.0, 10_000_000.0)
prices = st.floats(0.5, 5_000.0)
fractions = st.floats(0.01, 1.0)
shares = st.floats(-5_000.0, 5_000.0).map(lambda x: round(x))
configs = st.builds(
    RiskConfig,
    sizing=st.sampled_from(["fixed_fraction", "risk_per_trade"]),
    fixed_fraction=fractions,
    risk_per_trade=st.floats(0.001, 0.1),
    max_position_fraction=st.floats(0.01, 2.0),
    max_gross_exposure=st.floats(0.1, 4.0),
    max_order_notional=st.floats(1_000.0, 5_000_000.0),
    fractional_shares=st.booleans(),
    allow_short=st.booleans(),
    max_open_positions=st.integers(1, 5),
)


@st.composite
def accounts(draw: Any) -> tuple[View, float]:
    """A view with random positions in the other symbols and in XYZ, plus XYZ's pending shares."""
    equity = draw(equities)
    marks = {s: draw(prices) for s in SYMBOLS}
    positions = {s: draw(st.just(0.0) | shares) for s in SYMBOLS}
    return View(equity, positions, marks), float(draw(st.just(0.0) | shares))


@st.composite
def intents(draw: Any, reduce_only: bool | None = None) -> OrderIntent:
    """Mostly valid intents on XYZ (prices present when the order type needs them), some not."""
    side = draw(st.sampled_from([Side.BUY, Side.SELL]))
    quantity = draw(st.none() | st.floats(0.01, 10_000.0))
    order_type = draw(st.sampled_from(list(OrderType)))
    price = draw(prices) if order_type is not OrderType.MARKET or draw(st.booleans()) else None
    stop_loss = draw(st.none() | prices | st.floats(0.5, 0.999).map(lambda f: -f))  # < 0: a fraction of the mark
    return OrderIntent("XYZ", side, quantity, order_type, limit_price=price, stop_price=price,
                       stop_loss=stop_loss,
                       reduce_only=draw(st.booleans()) if reduce_only is None else reduce_only,
                       confidence=draw(st.none() | st.floats(0.0, 1.0)), reason="r")


def _place_stop(intent: OrderIntent, view: View) -> OrderIntent:
    """Turn a negative ``stop_loss`` f into a stop on the protective side at distance (1 - f) of the mark."""
    if intent.stop_loss is None or intent.stop_loss > 0:
        return intent
    mark = view.mark("XYZ")
    distance = mark * (1.0 + intent.stop_loss)
    return intent._replace(stop_loss=mark - intent.side.sign * distance)


@settings(max_examples=250, deadline=None)
@given(configs, accounts(), intents(reduce_only=False))
def test_entry_notional_never_exceeds_the_position_cap_or_the_gross_room(config, account, intent):
    view, pending = account
    intent = _place_stop(intent, view)
    risk = RiskEngine(config, Clock(T0))
    verdict = risk.evaluate(intent, "s", view, Working.net(view, "XYZ", pending), "id", T0)
    if not isinstance(verdict, SubmitOrder):
        return
    price, equity = view.mark("XYZ"), view.equity
    net = view.position("XYZ") + pending
    after = abs(net + intent.side.sign * verdict.quantity)
    assert verdict.quantity > 0.0
    assert verdict.quantity * price <= config.max_order_notional * (1 + TOL) + TOL * price
    if after > abs(net):  # the order grows the symbol's exposure
        gross_other = view.gross_exposure - abs(view.position("XYZ")) * price
        slack = equity * TOL + TOL * price
        assert after * price <= config.max_position_fraction * equity + slack
        assert gross_other + after * price <= config.max_gross_exposure * equity + slack
    if intent.quantity is None:  # a sized order never trades more than the position cap
        assert verdict.quantity * price <= config.max_position_fraction * equity + equity * TOL + TOL * price
        if net == 0.0:  # from flat the whole order is new exposure: within the gross room
            gross_other = view.gross_exposure - abs(view.position("XYZ")) * price
            assert verdict.quantity * price <= config.max_gross_exposure * equity - gross_other + equity * TOL
    if not config.allow_short and intent.side is Side.SELL:
        assert net - verdict.quantity >= -TOL
    if not config.fractional_shares and after > abs(net):
        assert verdict.quantity == int(verdict.quantity)


@settings(max_examples=100, deadline=None)
@given(configs, accounts(), intents(), st.integers(0, 2 * NANOS_PER_DAY))
def test_halted_denies_every_intent(config, account, intent, dt):
    view, pending = account
    risk = RiskEngine(config, Clock(T0), TradingState.HALTED, "restored")
    verdict = risk.evaluate(intent, "s", view, Working.net(view, "XYZ", pending), "id", T0 + dt)
    assert isinstance(verdict, OrderDenied)
    assert verdict.reason == "trading halted: restored"


@settings(max_examples=100, deadline=None)
@given(configs, accounts(), intents(reduce_only=False))
def test_reducing_denies_every_entry(config, account, intent):
    view, pending = account
    risk = RiskEngine(config, Clock(T0), TradingState.REDUCING, "restored")
    assert isinstance(risk.evaluate(intent, "s", view, Working.net(view, "XYZ", pending), "id", T0), OrderDenied)


@settings(max_examples=250, deadline=None)
@given(configs, accounts(), intents(reduce_only=True), st.sampled_from(list(TradingState)[:2]), st.booleans())
def test_reduce_only_never_increases_the_position_net_of_pending(config, account, intent, state, against):
    view, pending = account
    if against and view.position("XYZ") != 0.0:  # mostly aim at the position, sometimes not
        intent = intent._replace(side=Side.SELL if view.position("XYZ") > 0 else Side.BUY)
    risk = RiskEngine(config, Clock(T0), state)
    verdict = risk.evaluate(intent, "s", view, Working.net(view, "XYZ", pending), "id", T0)
    if not isinstance(verdict, SubmitOrder):
        return
    position = view.position("XYZ")
    net = position + pending
    after = net + intent.side.sign * verdict.quantity
    assert abs(after) <= abs(net) + TOL
    assert verdict.quantity <= abs(position) + TOL  # never more than held
    assert position * intent.side.sign < 0  # against the position
    if intent.quantity is not None:
        assert verdict.quantity <= intent.quantity + TOL


def test_risk_engine_satisfies_the_port():
    risk: RiskManager = RiskEngine(RiskConfig(), Clock())
    assert risk.state is TradingState.ACTIVE


# --- through core.engine.Engine ------------------------------------------------------------------


class _Null:
    """Broker, store and alert sink that do nothing (orders stay open, nothing fills)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: ()


class _BuyEveryBar:
    strategy_id = "buyer"

    def on_bar(self, ctx: Any, bar: Bar) -> list[OrderIntent]:
        return [OrderIntent(bar.symbol, Side.BUY, 1.0, reason="buy")]


def _run(bars: list[Bar], commands: dict[int, Any], portfolio: Portfolio) -> tuple[Engine, list[Any]]:
    clock = Clock(bars[0].ts_event)
    engine = Engine(clock=clock, portfolio=portfolio, strategy=_BuyEveryBar(),
                    risk=RiskEngine(RiskConfig(max_position_fraction=4.0, max_gross_exposure=4.0,
                                          trading_day_timezone="UTC"), clock),
                    broker=_Null(), store=_Null(), alerts=_Null())
    seen: list[Any] = []
    for kind in (OrderDenied, TradingStateChanged):
        engine.subscribe(kind, seen.append)
    for i, bar in enumerate(bars):
        if i in commands:
            engine.handle(commands[i])
        engine.handle(bar)
    return engine, seen


def _bar(i: int, close: float, start: int = T0) -> Bar:
    ts = start + i * NANOS_PER_MINUTE
    return Bar("XYZ", ts, ts + NANOS_PER_MINUTE, close, close, close, close, 1_000.0)


def test_engine_halt_and_rearm_commands_drive_the_risk_state():
    bars = [_bar(i, 100.0) for i in range(4)]
    engine, seen = _run(bars, {1: HaltTrading(reason="operator", ts_event=bars[1].ts_init, ts_init=bars[1].ts_init),
                               3: RearmTrading(reason="resume", ts_event=bars[3].ts_init, ts_init=bars[3].ts_init)},
                        Portfolio(100_000.0))
    states = [(e.previous, e.current) for e in seen if isinstance(e, TradingStateChanged)]
    assert states == [(TradingState.ACTIVE, TradingState.HALTED), (TradingState.HALTED, TradingState.ACTIVE)]
    # while HALTED the strategy still runs (indicators stay warm) but its intents are not sent to
    # risk one denial each: they are counted and audited as one aggregated decision per bar and symbol
    assert [e for e in seen if isinstance(e, OrderDenied)] == []
    assert engine.denied_while_halted == 2
    assert len(engine.book.orders) == 2  # bars 0 and 3


def test_engine_fires_the_daily_reset_timer_at_midnight():
    portfolio = Portfolio(100_000.0)
    portfolio.apply_fill("XYZ", Side.BUY, 1_000.0, 100.0, 0.0)  # 100% invested in XYZ
    start = DAY0 + NANOS_PER_DAY - 3 * NANOS_PER_MINUTE  # 23:57 UTC
    bars = [_bar(0, 100.0, start), _bar(1, 94.0, start), _bar(2, 94.0, start), _bar(3, 94.0, start)]
    _, seen = _run(bars, {}, portfolio)
    changes = [e for e in seen if isinstance(e, TradingStateChanged)]
    assert [(c.current, c.ts_init) for c in changes] == [
        (TradingState.REDUCING, bars[1].ts_init),  # 23:59: -6% on the day
        (TradingState.ACTIVE, DAY0 + NANOS_PER_DAY),  # the timer at 00:00
    ]
    assert [d.ts_init for d in seen if isinstance(d, OrderDenied)] == [bars[1].ts_init]
