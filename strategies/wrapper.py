"""A strategy that wraps another: the run records the inner strategy's id, parameters and learner
use, and only what reaches the market changes (research variants such as entries held one bar, or
orders blocked before a walk-forward fold's out-of-sample start)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.events import Bar
from core.intents import OrderIntent

__all__ = ["WrappedStrategy"]


class WrappedStrategy:
    """Forwards ``strategy_id``, ``params``, ``uses_learner`` and (by default) ``on_bar`` to ``inner``.

    Parameters
    ----------
    inner
        The strategy (see :class:`core.ports.Strategy`). Subclasses override :meth:`on_bar`.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.strategy_id: str = inner.strategy_id

    @property
    def params(self) -> Any:
        return self.inner.params

    @property
    def uses_learner(self) -> bool:
        return bool(self.inner.uses_learner)

    def on_bar(self, ctx: Any, bar: Bar) -> Sequence[OrderIntent]:
        return self.inner.on_bar(ctx, bar)
