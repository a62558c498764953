"""RSI momentum: buy when the trend is up (close above its SMA) and RSI sits inside an entry band
(strong but not exhausted); exit on profit target, stop loss, trailing stop or max holding period.

Every rule is evaluated on bar closes; exits are market orders that fill at a later bar's open.
Exit reasons (``profit_target``, ``stop_loss``, ``trailing_stop``, ``max_holding``) reach
``trades.csv``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, model_validator

from core.enums import Side
from core.events import Bar
from core.indicators import RSI, SMA
from core.intents import OrderIntent, close, enter
from strategies.base import NO_INTENTS, Strategy, StrategyParams, exit_quantity
from strategies.view import StrategyView


class RsiMomentumParams(StrategyParams):
    rsi_period: int = Field(14, ge=2, description="RSI period, bars (Wilder smoothing)")
    rsi_min: float = Field(55.0, ge=0, le=100, description="lower edge of the RSI entry band")
    rsi_max: float = Field(75.0, ge=0, le=100, description="upper edge of the RSI entry band")
    trend_period: int = Field(50, ge=1, description="trend filter: enter only when close > SMA(trend_period)")
    profit_target: float = Field(0.04, gt=0, description="exit when close >= entry * (1 + this), fraction")
    stop_loss: float = Field(0.02, gt=0, lt=1, description="exit when close <= entry * (1 - this), fraction")
    trailing_stop: float = Field(0.03, gt=0, lt=1,
                                 description="exit when close <= highest close since entry * (1 - this)")
    max_holding_bars: int = Field(35, ge=1, description="exit after this many bars in the trade")

    @model_validator(mode="after")
    def _band(self) -> RsiMomentumParams:
        if self.rsi_min >= self.rsi_max:
            raise ValueError(f"rsi_min ({self.rsi_min}) must be below rsi_max ({self.rsi_max})")
        return self


class _State:
    __slots__ = ("rsi", "trend", "bars_held", "highest")

    def __init__(self, params: RsiMomentumParams) -> None:
        self.rsi = RSI(params.rsi_period)
        self.trend = SMA(params.trend_period)
        self.bars_held = 0
        self.highest = 0.0


class RsiMomentum(Strategy[RsiMomentumParams]):
    """Long-only RSI momentum with protective exits.

    Buys when the trend is up (close above its ``trend_period`` SMA) and the RSI (``rsi_period``,
    Wilder) sits inside [``rsi_min``, ``rsi_max``]: strong but not exhausted. Exits on a profit
    target, a stop loss or a trailing stop (fractions of the entry price or of the highest close
    since entry), or after ``max_holding_bars``. Rules are evaluated on bar closes; exits are
    market orders that fill at a later bar's open, and close only what no working exit covers yet.
    """

    name = "rsi_momentum"
    Params = RsiMomentumParams

    def __init__(self, params: RsiMomentumParams | None = None, strategy_id: str | None = None) -> None:
        super().__init__(params, strategy_id)
        self._states: dict[str, _State] = {}

    @classmethod
    def check_params(cls) -> dict[str, Any]:
        return {"rsi_min": 50, "rsi_max": 80, "trend_period": 30}

    def on_bar(self, ctx: StrategyView, bar: Bar) -> Sequence[OrderIntent]:
        p = self.params
        state = self._states.get(bar.symbol)
        if state is None:
            state = self._states[bar.symbol] = _State(p)
        rsi = state.rsi.update(bar.close)
        trend = state.trend.update(bar.close)
        symbol = bar.symbol
        position = ctx.position(symbol)
        if position > 0:
            state.bars_held += 1
            state.highest = max(state.highest, bar.close)
            # Size exits from what is still open: an entry may still be filling (participation
            # cap) while an earlier exit works, and closing the whole position again would go short.
            remaining = exit_quantity(ctx, symbol)
            if remaining <= 0.0:
                return NO_INTENTS  # exits already cover the position
            entry = ctx.avg_price(symbol)
            if bar.close >= entry * (1 + p.profit_target):
                return (close(symbol, remaining, "profit_target"),)
            if bar.close <= entry * (1 - p.stop_loss):
                return (close(symbol, remaining, "stop_loss"),)
            if bar.close <= state.highest * (1 - p.trailing_stop):
                return (close(symbol, remaining, "trailing_stop"),)
            if state.bars_held >= p.max_holding_bars:
                return (close(symbol, remaining, "max_holding"),)
            return NO_INTENTS
        state.bars_held = 0
        state.highest = 0.0
        if rsi is None or trend is None or ctx.pending(symbol) != 0.0:
            return NO_INTENTS
        if bar.close > trend and p.rsi_min <= rsi <= p.rsi_max:
            return (enter(symbol, Side.BUY, "rsi_momentum", stop_loss=bar.close * (1 - p.stop_loss)),)
        return NO_INTENTS
