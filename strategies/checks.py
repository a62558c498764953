"""Conformance checks every strategy must pass, shipped with the code (River's ``check_estimator``).

Run them on your own strategy before trading it::

    from strategies.checks import check_strategy
    check_strategy(MyStrategy)            # the class: built with MyStrategy.check_params()
    check_strategy(MyStrategy(params))    # or an instance (each check runs on a deep copy)

Each check drives the strategy bar by bar through :class:`~strategies.check_context.CheckContext`
(a small simulated book with partial fills) and raises :class:`StrategyCheckFailed` naming the
check. The rules (see :data:`CHECKS`):

``declares_needs``
    ``strategy_id`` is a non-empty str, ``params`` a frozen pydantic model whose values survive a
    JSON dump (the run records them), ``uses_learner`` a bool, and a strategy that does not declare
    ``uses_learner`` never reads ``ctx.features`` or ``ctx.prediction`` (they would stay None).
``warm_up``
    The first two bars raise nothing (indicators, predictions and features are still warming up).
``produces_intents``
    The check bars produce at least one intent (else ``check_params`` should trade more often).
``valid_intents``
    Every intent is an :class:`~core.intents.OrderIntent` with a :class:`~core.enums.Side`, a
    quantity that is None or finite and > 0, a LIMIT order's ``limit_price``, a STOP order's
    ``stop_price`` and both for a STOP_LIMIT (finite, > 0), finite positive prices otherwise, and a
    confidence in [0, 1].
``bar_symbol_only``
    Intents are for the bar's symbol only. The kernel decides a symbol when its bar closes;
    an intent for another symbol would be sized and risk-checked on that symbol's older mark,
    and the result would depend on the order of same-timestamp bars (issue 5, B5).
``reduce_only_reduces``
    A ``reduce_only`` intent points against the position and, with the other exits of the same
    call, closes at most what working exits do not already cover
    (:func:`strategies.base.exit_quantity`); a long-only book can then never turn short.
``deterministic``
    Two fresh instances on the same bars return the same intents.
``no_input_mutation``
    Neither the bars, nor the parameters, nor the context's book change because of ``on_bar``.
``pickle_round_trip``
    A strategy pickled mid-stream and restored continues exactly like the original.
``tolerates_gaps``
    Months of missing bars raise nothing, and the intents after the gap follow the rules above.
``unseen_symbol``
    A symbol first seen mid-stream raises nothing, and its intents follow the rules above.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from core.enums import OrderType, Side
from core.events import Bar
from core.intents import OrderIntent
from strategies.base import Strategy
from strategies.check_bars import default_check_bars
from strategies.check_context import CheckContext
from strategies.registry import resolve_strategy

_EPS = 1e-9
_UNSEEN = "ZZCHECK"  # a symbol no real data uses


class StrategyCheckFailed(AssertionError):
    """A strategy broke a conformance rule.

    Attributes
    ----------
    check : str
        Name of the failed check (a key of :data:`CHECKS`).
    strategy : str
        The strategy's class name.
    """

    def __init__(self, check: str, strategy: str, message: str) -> None:
        super().__init__(f"{strategy}: check {check!r} failed: {message}")
        self.check = check
        self.strategy = strategy


@dataclass(frozen=True, slots=True)
class _Step:
    """One ``on_bar`` call: the bar, what came back, and the book as the strategy saw it."""

    bar: Bar
    intents: object
    position: float
    pending_exits: float


@dataclass(frozen=True, slots=True)
class _Case:
    label: str
    fresh: Callable[[], Any]  # a new, unused strategy
    uses_learner: bool
    bars: tuple[Bar, ...]


class _Failed(Exception):
    """Raised inside a check; turned into :class:`StrategyCheckFailed` with the check's name."""


def _call(strategy: Any, ctx: CheckContext, bar: Bar, index: int) -> object:
    try:
        return strategy.on_bar(ctx, bar)
    except Exception as exc:
        where = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        raise _Failed(f"on_bar raised {where} on bar {index} ({bar.symbol} start {bar.ts_event} ns)") from exc


def _drive(strategy: Any, bars: Iterable[Bar], ctx: CheckContext,
           between: Callable[[], None] | None = None) -> list[_Step]:
    steps = []
    for index, bar in enumerate(bars):
        ctx.begin_bar(bar)
        position, exits = ctx.position(bar.symbol), ctx.pending_exits(bar.symbol)
        intents = _call(strategy, ctx, bar, index)
        if between is not None:
            between()
        steps.append(_Step(bar, intents, position, exits))
        ctx.submit(intents)
    return steps


def _run(case: _Case, bars: Iterable[Bar] | None = None) -> list[_Step]:
    return _drive(case.fresh(), case.bars if bars is None else bars, CheckContext(learner=case.uses_learner))


def _intents(steps: Sequence[_Step]) -> list[object]:
    return [step.intents if not isinstance(step.intents, list) else tuple(step.intents) for step in steps]


def _where(step: _Step) -> str:
    return f"bar {step.bar.symbol} start {step.bar.ts_event} ns"


# --- rules on one trace (shared by several checks) ---------------------------------------------


def _price_ok(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < value < math.inf


def _intent_problem(intent: object) -> str | None:
    """What is wrong with one intent, or None.

    >>> print(_intent_problem(OrderIntent("AAA", Side.BUY, 10.0, OrderType.STOP_LIMIT, stop_price=101.0)))
    ... # doctest: +ELLIPSIS
    OrderIntent(...): a STOP_LIMIT order needs stop_price and limit_price, limit_price missing
    >>> _intent_problem(OrderIntent("AAA", Side.BUY, 10.0, OrderType.STOP_LIMIT, limit_price=101.5,
    ...                             stop_price=101.0)) is None
    True
    """
    if not isinstance(intent, OrderIntent):
        return f"{intent!r} is a {type(intent).__name__}, not an OrderIntent"
    if not isinstance(intent.side, Side):
        return f"{intent}: side {intent.side!r} is not a Side"
    if not isinstance(intent.order_type, OrderType):
        return f"{intent}: order_type {intent.order_type!r} is not an OrderType"
    if intent.quantity is not None and not _price_ok(intent.quantity):
        return f"{intent}: quantity {intent.quantity!r} must be None or a finite number > 0 (shares)"
    if intent.order_type is OrderType.LIMIT and intent.limit_price is None:
        return f"{intent}: a LIMIT order needs limit_price"
    if intent.order_type is OrderType.STOP and intent.stop_price is None:
        return f"{intent}: a STOP order needs stop_price"
    if intent.order_type is OrderType.STOP_LIMIT and (intent.stop_price is None or intent.limit_price is None):
        missing = " and ".join(name for name in ("stop_price", "limit_price") if getattr(intent, name) is None)
        return f"{intent}: a STOP_LIMIT order needs stop_price and limit_price, {missing} missing"
    for field in ("limit_price", "stop_price", "stop_loss"):
        value = getattr(intent, field)
        if value is not None and not _price_ok(value):
            return f"{intent}: {field} {value!r} must be None or a finite price > 0 (USD)"
    if intent.confidence is not None and not (isinstance(intent.confidence, (int, float))
                                              and 0.0 <= intent.confidence <= 1.0):
        return f"{intent}: confidence {intent.confidence!r} must be None or in [0, 1]"
    return None


def _rule_valid_intents(steps: Sequence[_Step]) -> None:
    for step in steps:
        if not isinstance(step.intents, (list, tuple)):
            raise _Failed(f"on_bar returned {type(step.intents).__name__} at {_where(step)}; "
                          "return a list or tuple of OrderIntent")
        for intent in step.intents:
            problem = _intent_problem(intent)
            if problem:
                raise _Failed(f"{problem} at {_where(step)}")


def _rule_bar_symbol_only(steps: Sequence[_Step]) -> None:
    for step in steps:
        for intent in step.intents if isinstance(step.intents, (list, tuple)) else ():
            if isinstance(intent, OrderIntent) and intent.symbol != step.bar.symbol:
                raise _Failed(f"intent for {intent.symbol!r} on a bar of {step.bar.symbol!r} ({_where(step)}); "
                              "return intents for bar.symbol only")


def _rule_reduce_only_reduces(steps: Sequence[_Step]) -> None:
    for step in steps:
        remaining = step.position + step.pending_exits  # signed shares no working exit covers
        if remaining * step.position <= 0.0:
            remaining = 0.0
        for intent in step.intents if isinstance(step.intents, (list, tuple)) else ():
            if not (isinstance(intent, OrderIntent) and intent.reduce_only and isinstance(intent.side, Side)):
                continue
            book = f"position {step.position:g}, working exits {step.pending_exits:g} shares"
            if remaining * intent.side.sign >= 0.0:
                raise _Failed(f"reduce_only {intent.side.value} of {intent.quantity} with {book} has nothing "
                              f"to reduce at {_where(step)}")
            quantity = abs(remaining) if intent.quantity is None else intent.quantity
            if quantity > abs(remaining) * (1 + _EPS) + _EPS:
                raise _Failed(f"reduce_only {intent.side.value} of {quantity:g} exceeds the {abs(remaining):g} "
                              f"shares left to close ({book}) at {_where(step)}; size exits with "
                              "strategies.base.exit_quantity(ctx, symbol)")
            remaining += intent.side.sign * quantity


def _rules(steps: Sequence[_Step]) -> None:
    _rule_valid_intents(steps)
    _rule_bar_symbol_only(steps)
    _rule_reduce_only_reduces(steps)


# --- the checks ------------------------------------------------------------------------------


def _check_declares_needs(case: _Case) -> None:
    strategy = case.fresh()
    strategy_id = strategy.strategy_id
    if not (isinstance(strategy_id, str) and strategy_id):
        raise _Failed(f"strategy_id must be a non-empty str, got {strategy_id!r}")
    params = strategy.params
    if not isinstance(params, BaseModel) or not type(params).model_config.get("frozen"):
        raise _Failed(f"params must be a frozen pydantic model (subclass StrategyParams), got {type(params).__name__}")
    try:
        json.dumps(params.model_dump(mode="json"))
    except (TypeError, ValueError) as exc:
        raise _Failed(f"params do not dump to JSON (runs record them): {exc}") from None
    if not isinstance(strategy.uses_learner, bool):
        raise _Failed(f"uses_learner must be a bool, got {strategy.uses_learner!r}")
    if not case.uses_learner:
        ctx = CheckContext(learner=False)
        try:
            _drive(strategy, case.bars, ctx)
        except _Failed:
            pass  # a crash is the other checks' to report; what it read until then is what counts here
        if ctx.reads:
            raise _Failed(f"reads ctx.{'/ctx.'.join(sorted(ctx.reads))} but declares uses_learner = False, "
                          "so the kernel never runs the learners and it always gets None; set uses_learner = True")


def _check_warm_up(case: _Case) -> None:
    _run(case, case.bars[:2])


def _check_produces_intents(case: _Case) -> None:
    if not any(step.intents for step in _run(case)):
        raise _Failed(f"no intents on {len(case.bars)} check bars; make check_params() return parameters "
                      "that trade often")


def _check_valid_intents(case: _Case) -> None:
    _rule_valid_intents(_run(case))


def _check_bar_symbol_only(case: _Case) -> None:
    _rule_bar_symbol_only(_run(case))


def _check_reduce_only_reduces(case: _Case) -> None:
    _rule_reduce_only_reduces(_run(case))


def _check_deterministic(case: _Case) -> None:
    first, second = _intents(_run(case)), _intents(_run(case))
    for index, (a, b) in enumerate(zip(first, second)):
        if a != b:
            raise _Failed(f"bar {index}: first run returned {a!r}, second run {b!r}")


def _check_no_input_mutation(case: _Case) -> None:
    bars = list(case.bars)
    strategy = case.fresh()
    params = strategy.params
    dumped = params.model_dump()
    ctx = CheckContext(learner=case.uses_learner)
    for index, bar in enumerate(bars):
        ctx.begin_bar(bar)
        before = ctx.state()
        intents = _call(strategy, ctx, bar, index)
        if ctx.state() != before:
            raise _Failed(f"on_bar changed the context's book on bar {index}")
        ctx.submit(intents)
    if bars != list(case.bars):
        raise _Failed("on_bar changed the bars")
    if strategy.params is not params or params.model_dump() != dumped:
        raise _Failed(f"params changed during the run: {dumped} -> {strategy.params.model_dump()}")


def _check_pickle_round_trip(case: _Case) -> None:
    half = len(case.bars) // 2
    strategy = case.fresh()
    ctx = CheckContext(learner=case.uses_learner)
    _drive(strategy, case.bars[:half], ctx)
    try:
        restored = pickle.loads(pickle.dumps(strategy))
    except Exception as exc:
        raise _Failed(f"pickle round trip mid-stream raised {type(exc).__name__}: {exc}") from exc
    twin = copy.deepcopy(ctx)
    original, copied = _intents(_drive(strategy, case.bars[half:], ctx)), _intents(_drive(restored, case.bars[half:], twin))
    for index, (a, b) in enumerate(zip(original, copied), start=half):
        if a != b:
            raise _Failed(f"after the round trip, bar {index}: original returned {a!r}, restored {b!r}")


def _check_tolerates_gaps(case: _Case) -> None:
    n = len(case.bars)
    _rules(_run(case, case.bars[: n // 5] + case.bars[3 * n // 5:]))


def _check_unseen_symbol(case: _Case) -> None:
    half = len(case.bars) // 2
    newcomer = [bar._replace(symbol=_UNSEEN, open=bar.open / 2, high=bar.high / 2, low=bar.low / 2,
                             close=bar.close / 2) for bar in case.bars[half:]]
    mixed = list(case.bars[:half]) + [b for pair in zip(case.bars[half:], newcomer) for b in pair]
    _rules(_run(case, mixed))


CHECKS: dict[str, Callable[[_Case], None]] = {
    "declares_needs": _check_declares_needs,
    "warm_up": _check_warm_up,
    "produces_intents": _check_produces_intents,
    "valid_intents": _check_valid_intents,
    "bar_symbol_only": _check_bar_symbol_only,
    "reduce_only_reduces": _check_reduce_only_reduces,
    "deterministic": _check_deterministic,
    "no_input_mutation": _check_no_input_mutation,
    "pickle_round_trip": _check_pickle_round_trip,
    "tolerates_gaps": _check_tolerates_gaps,
    "unseen_symbol": _check_unseen_symbol,
}
"""Check name -> check, in the order :func:`check_strategy` runs them (rules in the module docstring)."""


def _case(strategy: Any, bars: Sequence[Bar] | None) -> _Case:
    if isinstance(strategy, str):
        strategy = resolve_strategy(strategy)
    if isinstance(strategy, type):
        if not issubclass(strategy, Strategy):
            raise TypeError(f"{strategy.__name__} is not a strategy class (subclass strategies.base.Strategy)")
        cls = strategy
        try:
            params = cls.Params.model_validate(cls.check_params())
        except ValidationError as exc:
            raise StrategyCheckFailed("declares_needs", cls.__name__,
                                      f"check_params() {cls.check_params()!r} are invalid: {exc}") from None

        def fresh() -> Any:
            return cls(params)
        label = cls.__name__
    else:
        instance = strategy

        def fresh() -> Any:
            return copy.deepcopy(instance)
        label = type(instance).__name__
    sample = fresh()
    missing = [member for member in ("strategy_id", "params", "uses_learner", "on_bar") if not hasattr(sample, member)]
    if missing:
        raise StrategyCheckFailed("declares_needs", label, f"missing {', '.join(missing)} (see core.ports.Strategy; "
                                  "subclass strategies.base.Strategy)")
    uses_learner = sample.uses_learner
    chosen = tuple(default_check_bars() if bars is None else bars)
    if len(chosen) < 10:
        raise ValueError(f"check_strategy needs at least 10 bars, got {len(chosen)}")
    return _Case(label, fresh, uses_learner is True, chosen)


def run_check(name: str, strategy: Any, bars: Sequence[Bar] | None = None) -> None:
    """Run the one check ``name`` on ``strategy``.

    Parameters
    ----------
    name
        A key of :data:`CHECKS`.
    strategy
        A strategy class (built with its ``check_params()``), an instance (each run uses a deep
        copy, so it is left untouched), or a registry name (see
        :func:`strategies.registry.resolve_strategy`).
    bars
        Bars of one symbol in time order, each passing the engine's gate (:mod:`core.bars`);
        ``None`` = :func:`strategies.check_bars.default_check_bars` (1,500 real hourly SPY bars).

    Raises
    ------
    StrategyCheckFailed
        If the strategy breaks the rule (the message says where and how).
    KeyError
        If ``name`` is not a check.
    ValueError
        If fewer than 10 bars are given.
    """
    check = CHECKS[name]
    case = _case(strategy, bars)
    try:
        check(case)
    except _Failed as exc:
        raise StrategyCheckFailed(name, case.label, str(exc)) from exc.__cause__


def check_strategy(strategy: Any, bars: Sequence[Bar] | None = None) -> list[str]:
    """Run every check of :data:`CHECKS` on ``strategy``, stopping at the first failure.

    Parameters
    ----------
    strategy, bars
        As for :func:`run_check`.

    Returns
    -------
    list of str
        The names of the checks passed (all of :data:`CHECKS`).

    Raises
    ------
    StrategyCheckFailed
        At the first broken rule, naming the check.

    Examples
    --------
    >>> check_strategy("sma_cross")[:3]
    ['declares_needs', 'warm_up', 'produces_intents']
    """
    case = _case(strategy, bars)
    for name, check in CHECKS.items():
        try:
            check(case)
        except _Failed as exc:
            raise StrategyCheckFailed(name, case.label, str(exc)) from exc.__cause__
    return list(CHECKS)


__all__ = ["CHECKS", "StrategyCheckFailed", "check_strategy", "run_check"]
