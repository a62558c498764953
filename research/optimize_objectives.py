"""What a parameter study optimizes and what a trial must reach to be ranked.

:data:`OBJECTIVES` (the metrics a study may optimize, with their direction), :data:`METRIC_KEYS`
(what every trial records), :func:`parse_objectives` and :class:`TrialFilters`; and
:class:`OptimizeError`, the error of a study that cannot run as asked. The base of the
``research.optimize_*`` modules: it imports none of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["METRIC_KEYS", "OBJECTIVES", "OptimizeError", "TrialFilters", "parse_objectives"]

OBJECTIVES: dict[str, str] = {
    "sharpe": "maximize", "sortino": "maximize", "calmar": "maximize", "total_return": "maximize",
    "cagr": "maximize", "win_rate": "maximize", "profit_factor": "maximize", "expectancy": "maximize",
    "max_drawdown": "minimize", "volatility": "minimize"}
"""Metrics a study may optimize (see :class:`research.metrics.PerformanceMetrics`) and their direction."""
METRIC_KEYS = ("sharpe", "sortino", "calmar", "total_return", "cagr", "volatility", "max_drawdown", "win_rate",
               "profit_factor", "expectancy", "exposure", "turnover", "trades")
"""Metrics recorded for every trial (fractions, USD for ``expectancy``, a count for ``trades``)."""


class OptimizeError(ValueError):
    """A study that cannot run as asked (bad method, objective, trial count, resumed study that
    does not match); the message says what and how to fix it."""


def parse_objectives(text: str | Sequence[str]) -> tuple[str, ...]:
    """Return the objective names of ``"sharpe,max_drawdown"`` (or a sequence), validated.

    Raises
    ------
    OptimizeError
        For an empty list, an unknown name (listing :data:`OBJECTIVES`) or a repeated one.

    Examples
    --------
    >>> parse_objectives("sharpe, max_drawdown")
    ('sharpe', 'max_drawdown')
    """
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise OptimizeError(f"no objective given; choose from {', '.join(OBJECTIVES)}")
    for name in names:
        if name not in OBJECTIVES:
            raise OptimizeError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
    if len(set(names)) != len(names):
        raise OptimizeError(f"objective repeated in {', '.join(names)}")
    return tuple(names)


@dataclass(frozen=True)
class TrialFilters:
    """What a trial must reach to be ranked.

    Attributes
    ----------
    min_trades
        Fewest round trips (0 = no filter).
    max_drawdown
        Largest drawdown, a fraction (0.3 = 30 %); None = no filter. Not the risk breaker.
    min_win_rate
        Smallest fraction of winning round trips; None or 0 = no filter.
    """

    min_trades: int = 20
    max_drawdown: float | None = None
    min_win_rate: float | None = None

    def __post_init__(self) -> None:
        if self.min_trades < 0:
            raise OptimizeError(f"min trades {self.min_trades}: must be 0 or more")
        if self.max_drawdown is not None and not 0 < self.max_drawdown <= 1:
            raise OptimizeError(f"max drawdown {self.max_drawdown}: must be a fraction in (0, 1]")
        if self.min_win_rate is not None and not 0 <= self.min_win_rate <= 1:
            raise OptimizeError(f"min win rate {self.min_win_rate}: must be a fraction in [0, 1]")

    def problems(self, metrics: Mapping[str, Any]) -> list[str]:
        """Return why ``metrics`` fail the filters (empty: they pass).

        Examples
        --------
        >>> TrialFilters(min_trades=20, max_drawdown=0.3).problems({"trades": 12, "max_drawdown": 0.1})
        ['12 trades < min trades 20']
        """
        out = []
        trades = int(metrics.get("trades") or 0)
        if trades < self.min_trades:
            out.append(f"{trades} trades < min trades {self.min_trades}")
        drawdown = metrics.get("max_drawdown")
        if self.max_drawdown is not None and drawdown is not None and drawdown > self.max_drawdown:
            out.append(f"max drawdown {drawdown:.4f} > {self.max_drawdown}")
        if self.min_win_rate:
            win = metrics.get("win_rate")
            if win is None or win < self.min_win_rate:
                shown = "none" if win is None else f"{win:.4f}"
                out.append(f"win rate {shown} < min win rate {self.min_win_rate}")
        return out

    def constraints(self, metrics: Mapping[str, Any]) -> dict[str, float]:
        """Optuna constraint values of the active filters (<= 0 = met), for TPE and NSGA-II."""
        out = {}
        if self.min_trades:
            out["min_trades"] = float(self.min_trades - int(metrics.get("trades") or 0))
        if self.max_drawdown is not None:
            out["max_drawdown"] = float((metrics.get("max_drawdown") or 0.0) - self.max_drawdown)
        if self.min_win_rate:
            out["min_win_rate"] = float(self.min_win_rate - (metrics.get("win_rate") or 0.0))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"min_trades": self.min_trades, "max_drawdown": self.max_drawdown, "min_win_rate": self.min_win_rate}
