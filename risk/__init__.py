"""Risk layer: position sizing, pre-trade limits, circuit breakers and the risk engine.

Trading state ACTIVE / REDUCING / HALTED (see :class:`core.enums.TradingState`). Domain layer:
imports ``core`` only; no I/O, no wall clock.
"""

from risk.config import RiskConfig
from risk.engine import RiskEngine

__all__ = ["RiskConfig", "RiskEngine"]
