"""The read-only context a strategy receives on every bar, as a protocol.

The engine's :class:`core.context.StrategyContext` and the conformance checks'
:class:`strategies.check_context.CheckContext` both provide exactly this API, so a strategy that
passes :func:`strategies.checks.check_strategy` only relies on what the engine offers.
"""

from __future__ import annotations

from typing import Protocol

from core.enums import Regime, TradingState


class StrategyView(Protocol):
    """What a strategy may read: account, positions, working orders, signals, clock.

    Every accessor returns plain values (floats, ints, enums) or a fresh copy; a strategy cannot
    change the engine through it. Quantities are signed shares (+ long / buy, - short / sell).
    """

    @property
    def now(self) -> int:
        """Current time, epoch ns UTC (the bar's close time during ``on_bar``)."""
        ...

    @property
    def cash(self) -> float:
        """Cash balance, USD."""
        ...

    @property
    def equity(self) -> float:
        """Cash plus positions at their last marks, USD."""
        ...

    @property
    def trading_state(self) -> TradingState:
        """ACTIVE, REDUCING (exits only) or HALTED (nothing goes through)."""
        ...

    def position(self, symbol: str) -> float:
        """Signed shares held (0.0 when flat)."""
        ...

    def avg_price(self, symbol: str) -> float:
        """Average entry price of the open position, USD (0.0 when flat)."""
        ...

    def entry_time(self, symbol: str) -> int | None:
        """Epoch ns UTC of the open trade's first fill, or None when flat."""
        ...

    def pending(self, symbol: str) -> float:
        """Net signed shares still to fill in working orders (entries plus exits)."""
        ...

    def pending_entries(self, symbol: str) -> float:
        """Signed shares still to fill in working orders that may open or grow a position."""
        ...

    def pending_exits(self, symbol: str) -> float:
        """Signed shares still to fill in working ``reduce_only`` orders (negative for a long's exit)."""
        ...

    def features(self, symbol: str) -> dict[str, float] | None:
        """A copy of the latest streaming features, or None (warm-up, or ``uses_learner`` False)."""
        ...

    def prediction(self, symbol: str) -> float | None:
        """The online learner's P(forward return beats its threshold), in [0, 1], or None."""
        ...

    def regime(self, symbol: str) -> Regime:
        """Current regime of ``symbol`` (UNKNOWN during warm-up or when the detector is off)."""
        ...


__all__ = ["StrategyView"]
