"""Base class and parameter handling shared by every strategy.

A strategy is a plain object with ``strategy_id`` and ``on_bar(ctx, bar) -> sequence of intents``
(the :class:`core.ports.Strategy` protocol). Parameters are a frozen pydantic model, so
``--param fast=10`` strings are validated and an invalid value names the parameter and the rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from core.events import Bar
from core.intents import OrderIntent

NO_INTENTS: tuple[OrderIntent, ...] = ()


class StrategyParams(BaseModel):
    """Base for strategy parameter models (frozen, unknown keys rejected)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


P = TypeVar("P", bound=StrategyParams)


class Strategy(Generic[P]):
    """Base for built-in strategies.

    Subclasses set ``name``, ``Params`` and ``uses_learner`` (True when they read
    ``ctx.prediction``, which makes the engine run the online learners), and implement
    :meth:`on_bar`. Per-symbol state lives in ``self._states`` (symbol -> state object) so one
    instance trades any number of symbols.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[StrategyParams]] = StrategyParams
    uses_learner: ClassVar[bool] = False

    def __init__(self, params: P | None = None, strategy_id: str | None = None) -> None:
        self.params: P = params if params is not None else self.Params()  # type: ignore[assignment]
        self.strategy_id = strategy_id or self.name
        self._states: dict[str, object] = {}

    def on_bar(self, ctx, bar: Bar) -> Sequence[OrderIntent]:  # pragma: no cover - abstract
        raise NotImplementedError
