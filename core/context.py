"""The read-only context a strategy sees on each bar."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.enums import Regime, TradingState

if TYPE_CHECKING:
    from core.engine import Engine


class StrategyContext:
    """Read-only window onto the engine for strategies: account, positions, signals, clock.

    Strategies must not keep references to mutable engine state; every accessor returns plain
    values (floats, str, enums) or a copy.
    """

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def now(self) -> int:
        """Current clock time, epoch ns UTC (= the bar's close time during ``on_bar``)."""
        return self._engine.clock.now

    @property
    def cash(self) -> float:
        """Cash balance, USD (negative when a short's proceeds were spent)."""
        return self._engine.portfolio.cash

    @property
    def equity(self) -> float:
        """Cash plus positions at their last marks, USD."""
        return self._engine.portfolio.equity

    @property
    def trading_state(self) -> TradingState:
        """ACTIVE, REDUCING (exits only) or HALTED (nothing goes through)."""
        return self._engine.risk.state

    def position(self, symbol: str) -> float:
        """Signed shares held (0.0 when flat)."""
        return self._engine.portfolio.position(symbol)

    def avg_price(self, symbol: str) -> float:
        """Average entry price of the open position, USD (0.0 when flat)."""
        return self._engine.portfolio.avg_price(symbol)

    def entry_time(self, symbol: str) -> int | None:
        """Epoch ns of the first fill of the open trade in ``symbol``, or None when flat."""
        return self._engine.trades.entry_ts(symbol)

    def pending(self, symbol: str) -> float:
        """Signed shares in open (unfilled) orders for ``symbol``."""
        return self._engine.pending_quantity(symbol)

    def features(self, symbol: str) -> dict[str, float] | None:
        """A copy of the latest streaming features of ``symbol`` (see ``learning.features``), or
        None when the learner pipeline is off or still warming up."""
        signals = self._engine.signals
        if signals is None:
            return None
        features = signals.features(symbol)
        return dict(features) if features is not None else None

    def prediction(self, symbol: str) -> float | None:
        """Online learner's probability that the forward return beats its threshold, or None."""
        signals = self._engine.signals
        return signals.prediction(symbol) if signals is not None else None

    def regime(self, symbol: str) -> Regime:
        """Current regime of ``symbol`` (UNKNOWN during warm-up or when the detector is off)."""
        signals = self._engine.signals
        return signals.regime(symbol) if signals is not None else Regime.UNKNOWN
