"""Each conformance check catches the defect it names: a deliberately broken strategy per check
fails exactly that check (and passes every check before it)."""

from __future__ import annotations

import math
import random

import pytest
from pydantic import BaseModel, ConfigDict

from core.enums import OrderType, Side
from core.intents import OrderIntent, close, enter
from core.context import StrategyContext
from strategies.base import NO_INTENTS, Strategy, exit_quantity
from strategies.check_context import CheckContext
from strategies.checks import CHECKS, StrategyCheckFailed, check_strategy
from strategies.view import StrategyView


class Cycle(Strategy):
    """A sound strategy: buy every 10th bar of a symbol when flat, sell on every 5th while held."""

    ENTRY_EVERY = 10

    def __init__(self, params=None, strategy_id=None):
        super().__init__(params, strategy_id)
        self.seen: dict[str, int] = {}

    def on_bar(self, ctx, bar):
        s = bar.symbol
        n = self.seen[s] = self.seen.get(s, 0) + 1
        if ctx.position(s) > 0 and n % 5 == 0 and exit_quantity(ctx, s) > 0:
            return [close(s, exit_quantity(ctx, s), "cycle")]
        if ctx.position(s) == 0 and ctx.pending(s) == 0 and n % self.ENTRY_EVERY == 0:
            return [self.entry(s)]
        return NO_INTENTS

    def entry(self, symbol):
        return enter(symbol, Side.BUY, "cycle")


class UndeclaredLearner(Cycle):
    """Reads the prediction without declaring uses_learner."""

    def on_bar(self, ctx, bar):
        ctx.prediction(bar.symbol)
        return super().on_bar(ctx, bar)


class _Loose(BaseModel):
    model_config = ConfigDict(frozen=False)
    size: int = 1


class LooseParams(Cycle):
    Params = _Loose  # type: ignore[assignment]


class NeedsHistory(Cycle):
    """Indexes three bars back from the start."""

    def __init__(self, params=None, strategy_id=None):
        super().__init__(params, strategy_id)
        self.closes: list[float] = []

    def on_bar(self, ctx, bar):
        self.closes.append(bar.close)
        if self.closes[-3] > bar.close:  # IndexError on the first two bars
            pass
        return super().on_bar(ctx, bar)


class Idle(Cycle):
    def on_bar(self, ctx, bar):
        super().on_bar(ctx, bar)
        return NO_INTENTS


class NanQuantity(Cycle):
    def entry(self, symbol):
        return enter(symbol, Side.BUY, "nan", quantity=math.nan)


class LimitWithoutPrice(Cycle):
    def entry(self, symbol):
        return OrderIntent(symbol, Side.BUY, 10.0, OrderType.LIMIT, reason="no price")


class Generator(Cycle):
    def on_bar(self, ctx, bar):
        yield from super().on_bar(ctx, bar)


class OtherSymbol(Cycle):
    def entry(self, symbol):
        return enter("QQQ", Side.BUY, "wrong symbol")


class OverExit(Cycle):
    """Closes position + pending, which counts entry shares not yet filled."""

    def on_bar(self, ctx, bar):
        s = bar.symbol
        n = self.seen[s] = self.seen.get(s, 0) + 1
        held = ctx.position(s) + ctx.pending(s)
        if ctx.position(s) > 0 and held > 0 and n % 2 == 0:
            return [close(s, held, "over")]
        if held == 0 and n % 10 == 0:
            return [self.entry(s)]
        return NO_INTENTS


class Noisy(Cycle):
    def entry(self, symbol):
        return enter(symbol, Side.BUY, "noise", quantity=float(random.randint(1, 1_000_000)))


class TouchesTheBook(Cycle):
    def on_bar(self, ctx, bar):
        intents = super().on_bar(ctx, bar)
        if intents and isinstance(ctx, CheckContext):
            ctx._positions[bar.symbol] = ctx.position(bar.symbol) + 1.0  # "optimistic" bookkeeping
        return intents


class Unpicklable(Cycle):
    def __init__(self, params=None, strategy_id=None):
        super().__init__(params, strategy_id)
        self.log = lambda text: None


class ForgetsOnPickle(Cycle):
    ENTRY_EVERY = 7  # so a counter restarted at the midpoint is out of phase

    def __getstate__(self):
        state = dict(self.__dict__)
        state["seen"] = {}
        return state


class HatesGaps(Cycle):
    def __init__(self, params=None, strategy_id=None):
        super().__init__(params, strategy_id)
        self.last: int | None = None

    def on_bar(self, ctx, bar):
        if self.last is not None and bar.ts_event - self.last > 30 * 86_400 * 10**9:
            raise RuntimeError("data hole")
        self.last = bar.ts_event
        return super().on_bar(ctx, bar)


class OneSymbol(Cycle):
    def __init__(self, params=None, strategy_id=None):
        super().__init__(params, strategy_id)
        self.symbol: str | None = None

    def on_bar(self, ctx, bar):
        self.symbol = self.symbol or bar.symbol
        assert bar.symbol == self.symbol, "one symbol only"
        return super().on_bar(ctx, bar)


BROKEN = {
    "declares_needs": [UndeclaredLearner, LooseParams],
    "warm_up": [NeedsHistory],
    "produces_intents": [Idle],
    "valid_intents": [NanQuantity, LimitWithoutPrice, Generator],
    "bar_symbol_only": [OtherSymbol],
    "reduce_only_reduces": [OverExit],
    "deterministic": [Noisy],
    "no_input_mutation": [TouchesTheBook],
    "pickle_round_trip": [Unpicklable, ForgetsOnPickle],
    "tolerates_gaps": [HatesGaps],
    "unseen_symbol": [OneSymbol],
}


def test_every_check_has_a_broken_strategy():
    assert list(BROKEN) == list(CHECKS)


def test_the_sound_base_passes(spy_bars):
    assert check_strategy(Cycle, spy_bars) == list(CHECKS)


@pytest.mark.parametrize("check, cls", [(check, cls) for check, classes in BROKEN.items() for cls in classes],
                         ids=lambda value: value if isinstance(value, str) else value.__name__)
def test_a_broken_strategy_fails_the_named_check(check, cls, spy_bars):
    with pytest.raises(StrategyCheckFailed) as failed:
        check_strategy(cls, spy_bars)
    assert failed.value.check == check, str(failed.value)
    assert failed.value.strategy == cls.__name__
    assert f"check {check!r} failed" in str(failed.value)


def test_failure_messages_say_what_to_do(spy_bars):
    messages = {}
    for cls in (UndeclaredLearner, Idle, Generator, OtherSymbol, OverExit):
        with pytest.raises(StrategyCheckFailed) as failed:
            check_strategy(cls, spy_bars)
        messages[cls.__name__] = str(failed.value)
    assert "set uses_learner = True" in messages["UndeclaredLearner"]
    assert "check_params()" in messages["Idle"]
    assert "return a list or tuple" in messages["Generator"]
    assert "'QQQ'" in messages["OtherSymbol"] and "bar.symbol only" in messages["OtherSymbol"]
    assert "exit_quantity" in messages["OverExit"] and "shares left to close" in messages["OverExit"]


def test_an_exception_in_on_bar_is_reported_with_the_bar(spy_bars):
    with pytest.raises(StrategyCheckFailed, match=r"on_bar raised IndexError.* on bar 0 \(SPY start") as failed:
        check_strategy(NeedsHistory, spy_bars)
    assert isinstance(failed.value.__cause__, IndexError)


def _members(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")}


def test_the_check_context_offers_exactly_the_strategy_view():
    public = {name for name in dir(CheckContext) if not name.startswith("_")}
    assert _members(StrategyView) <= public
    assert public - _members(StrategyView) == {"begin_bar", "submit", "state", "reads"}  # the driver's


def test_the_engine_context_offers_the_strategy_view():
    # the contract with core.context.StrategyContext (the lead's rewrite adds pending_entries/exits)
    missing = _members(StrategyView) - set(dir(StrategyContext))
    assert not missing, f"core.context.StrategyContext lacks {sorted(missing)}"
