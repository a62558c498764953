"""SMA crossover: long when the fast SMA crosses above the slow one, flat when it crosses below
(short on the down-cross only when ``allow_short``). Signals at the bar close; the order fills at
a later price."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, model_validator

from core.enums import Side
from core.events import Bar
from core.indicators import SMA
from core.intents import OrderIntent, close, enter
from strategies.base import NO_INTENTS, Strategy, StrategyParams, exit_quantity
from strategies.view import StrategyView


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
    """Moving-average crossover on bar closes.

    When the fast SMA (``fast`` bars) crosses above the slow SMA (``slow`` bars) it closes any
    short and buys; when it crosses below it closes the long, and with ``allow_short`` also sells
    short. Entries are sized by the risk engine. Signals come at the bar close; orders fill at a
    later bar's open.
    """

    name = "sma_cross"
    Params = SmaCrossParams

    def __init__(self, params: SmaCrossParams | None = None, strategy_id: str | None = None) -> None:
        super().__init__(params, strategy_id)
        self._states: dict[str, _State] = {}

    @classmethod
    def check_params(cls) -> dict[str, Any]:
        return {"fast": 10, "slow": 40}

    def on_bar(self, ctx: StrategyView, bar: Bar) -> Sequence[OrderIntent]:
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
            return self._turn(ctx, symbol, Side.BUY, "sma_cross_up")
        if prev >= 0.0 > diff:
            return self._turn(ctx, symbol, Side.SELL, "sma_cross_down")
        return NO_INTENTS

    def _turn(self, ctx: StrategyView, symbol: str, side: Side, reason: str) -> list[OrderIntent]:
        """Close what is held against ``side`` and, where allowed, enter towards ``side``."""
        held = ctx.position(symbol) + ctx.pending(symbol)  # where the book goes once orders fill
        if held * side.sign > 0:
            return []  # already positioned (or on the way) this way
        intents = []
        remaining = exit_quantity(ctx, symbol)
        if remaining * side.sign < 0:  # only shares not already being closed
            intents.append(close(symbol, remaining, reason))
        if side is Side.BUY or self.params.allow_short:
            intents.append(enter(symbol, side, reason))
        return intents
