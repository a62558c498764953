"""Online-learning strategy: trade on the River learner's probability that the forward return beats
its threshold (see :mod:`learning.learner`). The learner only learns labels that have matured, so
the probability at bar t uses nothing after t.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, model_validator

from core.enums import Side
from core.events import Bar
from core.intents import OrderIntent, close, enter
from strategies.base import NO_INTENTS, Strategy, StrategyParams
from strategies.view import StrategyView


class OnlineMlParams(StrategyParams):
    threshold: float = Field(0.6, gt=0.5, lt=1, description="enter long when P(up) >= this")
    exit_threshold: float = Field(0.5, gt=0, lt=1, description="exit a long when P(up) < this")
    allow_short: bool = Field(False, description="enter short when P(up) <= 1 - threshold")

    @model_validator(mode="after")
    def _ordered(self) -> OnlineMlParams:
        if self.exit_threshold >= self.threshold:
            raise ValueError(f"exit_threshold ({self.exit_threshold}) must be below threshold ({self.threshold})")
        return self


class OnlineMl(Strategy[OnlineMlParams]):
    """Trade the online learner's probability P(up) that the forward return beats its threshold.

    Buys when P(up) >= ``threshold`` and closes the long when it falls below ``exit_threshold``;
    with ``allow_short`` it also sells short when P(up) <= 1 - ``threshold`` and covers when P(up)
    rises above 1 - ``exit_threshold``. The learner (River) learns only matured labels, so the
    probability at a bar uses nothing after it. The probability travels with the intent as
    ``confidence``, so the risk engine's confidence floor can veto it. Nothing is sent while an
    order of the symbol is still working.
    """

    name = "online_ml"
    Params = OnlineMlParams
    uses_learner = True

    @classmethod
    def check_params(cls) -> dict[str, Any]:
        return {"threshold": 0.55, "exit_threshold": 0.5}

    def on_bar(self, ctx: StrategyView, bar: Bar) -> Sequence[OrderIntent]:
        symbol = bar.symbol
        prob = ctx.prediction(symbol)
        if prob is None or ctx.pending(symbol) != 0.0:
            return NO_INTENTS
        p = self.params
        position = ctx.position(symbol)
        if position > 0:
            return (close(symbol, position, "ml_exit"),) if prob < p.exit_threshold else NO_INTENTS
        if position < 0:
            return (close(symbol, position, "ml_exit"),) if prob > 1 - p.exit_threshold else NO_INTENTS
        if prob >= p.threshold:
            return (enter(symbol, Side.BUY, "ml_long", confidence=prob),)
        if p.allow_short and prob <= 1 - p.threshold:
            return (enter(symbol, Side.SELL, "ml_short", confidence=1 - prob),)
        return NO_INTENTS
