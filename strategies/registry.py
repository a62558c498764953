"""Name -> strategy class for the CLI and config (``--strategy sma_cross --param fast=10``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from strategies.base import Strategy
from strategies.online_ml import OnlineMl
from strategies.rsi_momentum import RsiMomentum
from strategies.sma_cross import SmaCross

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (SmaCross, RsiMomentum, OnlineMl)}


class StrategyConfigError(ValueError):
    """Unknown strategy name or invalid parameters; the message names what and why."""


def build_strategy(name: str, params: Mapping[str, Any] | None = None, strategy_id: str | None = None) -> Strategy:
    """Instantiate strategy ``name`` with validated ``params`` (strings like ``"10"`` are coerced).

    Raises
    ------
    StrategyConfigError
        For an unknown name (listing the known ones) or a parameter that fails validation.
    """
    cls = STRATEGIES.get(name)
    if cls is None:
        raise StrategyConfigError(f"unknown strategy {name!r}; available: {', '.join(sorted(STRATEGIES))}")
    try:
        validated = cls.Params.model_validate(dict(params or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'params'}={err.get('input')!r}: {err['msg']}"
            for err in exc.errors())
        raise StrategyConfigError(f"strategy {name!r}: invalid parameter(s): {problems}") from None
    return cls(validated, strategy_id)
