"""SMA crossover: long when the fast SMA crosses above the slow one, flat when it crosses below
(short on the down-cross only when ``allow_short``). Signals at the bar close; the order fills at
a later price."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, model_validator

from core.enums import Side
from core.events import Bar
from core.indicators import SMA
from core.intents import OrderIntent, close, enter
from strategies.base import NO_INTENTS, Strategy, StrategyParams


class SmaCrossParams(StrategyParams):
    fast: int = Field(10, ge=1, description="fast SMA period, bars")
    slow: int = Field(30, ge=2, description="slow SMA period, bars")
    allow_short: bool = Field(False, description="go short on a down-cross instead of only flat")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
        return self


class _State:
    __slots__ = ("fast", "slow", "prev_diff")

    def __init__(self, params: SmaCrossParams) -> None:
        self.fast = SMA(params.fast)
        self.slow = SMA(params.slow)
        self.prev_diff: float | None = None


class SmaCross(Strategy[SmaCrossParams]):
    """Moving-average crossover on closes (Params: ``fast``, ``slow`` in bars, ``allow_short``)."""

    name = "sma_cross"
    Params = SmaCrossParams

    def on_bar(self, ctx, bar: Bar) -> Sequence[OrderIntent]:
        state = self._states.get(bar.symbol)
        if state is None:
            state = self._states[bar.symbol] = _State(self.params)
        fast = state.fast.update(bar.close)
        slow = state.slow.update(bar.close)
        if fast is None or slow is None:
            return NO_INTENTS
        diff = fast - slow
        prev, state.prev_diff = state.prev_diff, diff
        if prev is None:
            return NO_INTENTS
        symbol = bar.symbol
        if prev <= 0.0 < diff:
            held = ctx.position(symbol) + ctx.pending(symbol)
            if held > 0:
                return NO_INTENTS
            intents = [close(symbol, held, "sma_cross_up")] if held < 0 else []
            intents.append(enter(symbol, Side.BUY, "sma_cross_up"))
            return intents
        if prev >= 0.0 > diff:
            held = ctx.position(symbol) + ctx.pending(symbol)
            intents = [close(symbol, held, "sma_cross_down")] if held > 0 else []
            if self.params.allow_short and held >= 0:
                intents.append(enter(symbol, Side.SELL, "sma_cross_down"))
            return intents
        return NO_INTENTS
