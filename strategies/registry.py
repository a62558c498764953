"""Strategy names -> strategy classes, for the CLI and the config (``--strategy sma_cross``).

A name resolves, in this order, to

1. a built-in (:data:`BUILTINS`: ``sma_cross``, ``rsi_momentum``, ``online_ml``);
2. an import path ``package.module:Class`` (the module must be importable: installed, or on
   ``PYTHONPATH``; the current directory is not searched);
3. an entry point of the group :data:`ENTRY_POINT_GROUP` (``tradingd.strategies``) declared by an
   installed distribution, e.g. in its ``pyproject.toml``::

       [project.entry-points."tradingd.strategies"]
       my_strategy = "mypkg.module:MyStrategy"

   An entry point named like a built-in is ignored: built-in names always mean the built-in.

Whatever the source, the class must subclass :class:`strategies.base.Strategy`, implement
``on_bar`` and have a frozen pydantic ``Params`` model; every problem is a
:class:`StrategyConfigError` that says what is wrong and where.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from strategies.base import Strategy
from strategies.online_ml import OnlineMl
from strategies.rsi_momentum import RsiMomentum
from strategies.sma_cross import SmaCross

BUILTINS: dict[str, type[Strategy[Any]]] = {cls.name: cls for cls in (SmaCross, RsiMomentum, OnlineMl)}
"""Built-in strategies by name."""
STRATEGIES = BUILTINS
"""Former name of :data:`BUILTINS` (kept for callers that only want the built-ins)."""
ENTRY_POINT_GROUP = "tradingd.strategies"
"""importlib.metadata entry-point group through which installed packages offer strategies."""
_EXAMPLE = "mypkg.module:MyStrategy"


class StrategyConfigError(ValueError):
    """A strategy name that does not resolve, or invalid parameters; the message names what and why."""


@dataclass(frozen=True, slots=True)
class StrategyListing:
    """One row of :func:`list_strategies`: ``strategy`` is None when loading it failed (``error`` says why)."""

    name: str
    source: str  # "built-in" or "entry point <value> (<distribution>)"
    strategy: type[Strategy[Any]] | None
    error: str = ""


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in BUILTINS:
            found.setdefault(ep.name, ep)  # first on sys.path wins, as for imports
    return found


def _entry_point_source(ep: EntryPoint) -> str:
    dist = ep.dist.name if ep.dist is not None else "unknown distribution"
    return f"entry point {ep.value} ({dist})"


def available_names() -> list[str]:
    """Return the built-in and entry-point strategy names, sorted.

    Examples
    --------
    >>> {"online_ml", "rsi_momentum", "sma_cross"} <= set(available_names())
    True
    """
    return sorted({*BUILTINS, *_entry_points()})


def _strategy_classes(module: object) -> list[str]:
    return sorted(name for name, value in vars(module).items()
                  if inspect.isclass(value) and issubclass(value, Strategy) and value is not Strategy)


def _import(path: str, label: str) -> object:
    module_name, _, attr = path.partition(":")
    module_name, attr = module_name.strip(), attr.strip()
    if not module_name or not attr:
        raise StrategyConfigError(f"{label}: expected an import path module:Class, e.g. {_EXAMPLE}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise StrategyConfigError(f"{label}: module {exc.name!r} not found (is it installed, or on PYTHONPATH? "
                                      "the current directory is not searched)") from None
        raise StrategyConfigError(f"{label}: importing {module_name!r} raised ModuleNotFoundError: {exc}") from exc
    except Exception as exc:  # whatever the user's module raises at import time
        raise StrategyConfigError(f"{label}: importing {module_name!r} raised {type(exc).__name__}: {exc}") from exc
    value: object = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            defined = _strategy_classes(module)
            hint = f"; strategies it defines: {', '.join(defined)}" if defined else ""
            raise StrategyConfigError(f"{label}: module {module_name!r} has no attribute {attr!r}{hint}") from None
    return value


def _as_strategy(value: object, label: str) -> type[Strategy[Any]]:
    if not inspect.isclass(value):
        raise StrategyConfigError(f"{label}: is a {type(value).__name__}, not a Strategy class")
    if not issubclass(value, Strategy):
        missing = [m for m in ("on_bar", "Params") if not hasattr(value, m)]
        lacks = f" (it lacks {' and '.join(missing)})" if missing else ""
        raise StrategyConfigError(f"{label}: {value.__name__} is not a Strategy{lacks}; subclass "
                                  "strategies.base.Strategy, set Params and implement on_bar(ctx, bar)")
    if value.on_bar is Strategy.on_bar:
        raise StrategyConfigError(f"{label}: {value.__name__} is not a Strategy: it does not implement on_bar(ctx, bar)")
    params = value.Params
    if not (inspect.isclass(params) and issubclass(params, BaseModel) and params.model_config.get("frozen")):
        raise StrategyConfigError(f"{label}: {value.__name__}.Params must be a frozen pydantic model "
                                  "(subclass strategies.base.StrategyParams)")
    return value


def resolve_strategy(name: str) -> type[Strategy[Any]]:
    """Return the strategy class ``name`` stands for (built-in, ``module:Class`` or entry point).

    Parameters
    ----------
    name
        A built-in name (``sma_cross``), an import path (``mypkg.module:MyStrategy``) or the name
        of an entry point in the group :data:`ENTRY_POINT_GROUP`.

    Returns
    -------
    type
        A subclass of :class:`strategies.base.Strategy` that implements ``on_bar``.

    Raises
    ------
    StrategyConfigError
        For an unknown name (listing the known ones), a module that is not found, a missing
        attribute, a module that raises while importing, or an object that is not a Strategy.

    Examples
    --------
    >>> resolve_strategy("sma_cross").__name__
    'SmaCross'
    >>> resolve_strategy("strategies.rsi_momentum:RsiMomentum").name
    'rsi_momentum'
    """
    builtin = BUILTINS.get(name)
    if builtin is not None:
        return builtin
    if ":" in name:
        return _as_strategy(_import(name, f"strategy {name!r}"), f"strategy {name!r}")
    ep = _entry_points().get(name)
    if ep is None:
        raise StrategyConfigError(f"unknown strategy {name!r}; available: {', '.join(available_names())} "
                                  f"(or an import path such as {_EXAMPLE})")
    label = f"strategy {name!r} ({_entry_point_source(ep)})"
    return _as_strategy(_import(f"{ep.module}:{ep.attr}", label), label)


def build_strategy(name: str, params: Mapping[str, Any] | None = None,
                   strategy_id: str | None = None) -> Strategy[Any]:
    """Instantiate strategy ``name`` with validated ``params`` (strings like ``"10"`` are coerced).

    Parameters
    ----------
    name
        See :func:`resolve_strategy`.
    params
        Parameter values by name; missing ones take their defaults.
    strategy_id
        Identifier of the instance; ``None`` = the class's ``name``.

    Returns
    -------
    Strategy
        A new instance (no bars seen).

    Raises
    ------
    StrategyConfigError
        If the name does not resolve (see :func:`resolve_strategy`), a parameter fails
        validation (unknown keys list the known ones), or the constructor raises.

    Examples
    --------
    >>> build_strategy("sma_cross", {"fast": "5"}).params.fast
    5
    """
    cls = resolve_strategy(name)
    try:
        validated = cls.Params.model_validate(dict(params or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'params'}={err.get('input')!r}: {err['msg']}"
            for err in exc.errors())
        message = f"strategy {name!r}: invalid parameter(s): {problems}"
        if set(params or {}) - set(cls.Params.model_fields):
            known = ", ".join(cls.Params.model_fields) or "none"
            message += f"; parameters of {name!r}: {known}"
        raise StrategyConfigError(message) from None
    try:
        return cls(validated, strategy_id)
    except Exception as exc:  # a user strategy's constructor
        raise StrategyConfigError(f"strategy {name!r}: {cls.__name__}(...) raised {type(exc).__name__}: {exc}") from exc


def list_strategies() -> list[StrategyListing]:
    """Return the built-ins (sorted by name), then the entry-point strategies (sorted by name).

    An entry point that fails to load is listed with its error instead of raising, so one broken
    package does not hide the others.
    """
    listed = [StrategyListing(name, "built-in", cls) for name, cls in sorted(BUILTINS.items())]
    for name, ep in sorted(_entry_points().items()):
        try:
            listed.append(StrategyListing(name, _entry_point_source(ep), resolve_strategy(name)))
        except StrategyConfigError as exc:
            listed.append(StrategyListing(name, _entry_point_source(ep), None, str(exc)))
    return listed


__all__ = ["BUILTINS", "ENTRY_POINT_GROUP", "STRATEGIES", "StrategyConfigError", "StrategyListing",
           "available_names", "build_strategy", "list_strategies", "resolve_strategy"]
