"""Base class and parameter handling shared by every strategy.

A strategy is an object with ``strategy_id``, ``params``, ``uses_learner`` and
``on_bar(ctx, bar) -> sequence of intents`` (the :class:`core.ports.Strategy` protocol); subclassing
:class:`Strategy` provides all of them. Parameters are a frozen pydantic model, so ``--param
fast=10`` strings are validated and an invalid value names the parameter and the rule.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from core.events import Bar
from core.intents import OrderIntent
from strategies.view import StrategyView

if TYPE_CHECKING:
    from core import ports

NO_INTENTS: tuple[OrderIntent, ...] = ()


class StrategyParams(BaseModel):
    """Base for strategy parameter models (frozen, unknown keys rejected)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


P = TypeVar("P", bound=StrategyParams)


class Strategy(Generic[P]):
    """Base for strategies, built-in and user-written.

    Subclasses set ``Params`` (a :class:`StrategyParams` model), ``uses_learner`` (True when they
    read ``ctx.prediction`` or ``ctx.features``, which makes the kernel run the online learners)
    and optionally ``name`` (default: the class name in snake_case), override
    :meth:`check_params` when the defaults trade too rarely for the conformance checks, and
    implement :meth:`on_bar`. The class docstring is the description ``tradingd strategies``
    shows. Keep per-symbol state in a dict keyed by symbol so one instance trades any number of
    symbols, and keep it picklable (a restart restores it).

    Parameters
    ----------
    params
        Validated parameters; ``None`` = the defaults of ``Params``.
    strategy_id
        Identifier in order ids, decisions and the store; ``None`` = ``name``.
    """

    name: ClassVar[str] = "strategy"
    Params: ClassVar[type[StrategyParams]] = StrategyParams
    uses_learner: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):  # each class its own id, never the parent's
            cls.name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls.__name__).lower()

    def __init__(self, params: P | None = None, strategy_id: str | None = None) -> None:
        self.params: P = params if params is not None else self.Params()  # type: ignore[assignment]
        self.strategy_id: str = strategy_id or self.name

    @classmethod
    def check_params(cls) -> dict[str, Any]:
        """Return parameters under which the strategy trades often on ~1,500 hourly bars.

        :func:`strategies.checks.check_strategy` runs the strategy with them, so every check
        sees entries and exits. The default (``{}``) means "the defaults of ``Params``".

        Returns
        -------
        dict of str to Any
            Keyword values for ``Params``; validated like ``--param`` values.
        """
        return {}

    @classmethod
    def description(cls) -> str:
        """Return the strategy's description: its class docstring, else its module's docstring.

        Paragraphs are re-flowed to one line each (separated by a blank line) so any display can
        wrap them; lines starting a list item (``-``, ``*``, ``1.``) stay lines of their own.
        Inline reST markup (double backticks, ``:role:`` references) becomes plain text.

        Returns
        -------
        str
            The description, or ``""`` when neither docstring exists.

        Examples
        --------
        >>> class Quiet(Strategy):
        ...     '''Buy the dip (``RSI < 30``),
        ...     sell the rip.
        ...
        ...     - exits on a stop
        ...     '''
        >>> print(Quiet.description())
        Buy the dip (RSI < 30), sell the rip.
        <BLANKLINE>
        - exits on a stop
        """
        doc = cls.__dict__.get("__doc__")  # a class's own docstring; never its parent's
        if not doc:
            module = sys.modules.get(cls.__module__)
            doc = module.__doc__ if module is not None else None
        return _reflow(inspect.cleandoc(doc)) if doc else ""

    def on_bar(self, ctx: StrategyView, bar: Bar) -> Sequence[OrderIntent]:
        """Return the intents for ``bar`` (closed; released at ``bar.ts_init``).

        Parameters
        ----------
        ctx
            Read-only view of account, positions, working orders, signals and clock.
        bar
            The bar that just closed; it passed the engine's bar gate (:mod:`core.bars`).

        Returns
        -------
        sequence of OrderIntent
            Intents for ``bar.symbol`` only (possibly empty); exits ``reduce_only`` and sized
            at most :func:`exit_quantity`.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement on_bar")


def exit_quantity(ctx: StrategyView, symbol: str) -> float:
    """Return the signed shares an exit may still close: the position minus exits already working.

    A long of 100 with a working sell exit of 30 can only be closed by 70 more; sending 100 again
    would overshoot into a short once both fill.

    Examples
    --------
    >>> class Ctx:
    ...     def position(self, symbol): return 100.0
    ...     def pending_exits(self, symbol): return -30.0
    >>> exit_quantity(Ctx(), "SPY")
    70.0
    """
    position = ctx.position(symbol)
    remaining = position + ctx.pending_exits(symbol)
    # exits never flip the sign: once they cover the position nothing is left to close
    return remaining if remaining * position > 0.0 else 0.0


def _reflow(text: str) -> str:
    text = re.sub(r"(?::[\w:.-]+:)?`+([^`]+?)`+", r"\1", text)  # ``code`` and :class:`x` -> plain text
    paragraphs: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines: list[str] = []
        for line in block.splitlines():
            stripped = line.strip()
            if lines and not re.match(r"([-*]|\d+[.)])\s", stripped):
                lines[-1] = f"{lines[-1]} {stripped}"
            else:
                lines.append(stripped)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


if TYPE_CHECKING:
    def _satisfies_the_port(strategy: Strategy[StrategyParams]) -> ports.Strategy:
        return strategy  # mypy proves the base class provides every member of the protocol


__all__ = ["NO_INTENTS", "Strategy", "StrategyParams", "exit_quantity"]
