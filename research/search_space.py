"""Search spaces of a parameter study: the space file (TOML), its constraints and what a sampled
point changes in a :class:`backtest.spec.RunSpec`.

A space file names the parameters to search, each a table with a ``type``::

    strategy = "sma_cross"                  # optional: the strategy the params belong to
    constraints = ["fast < slow"]           # optional: conditions every trial must meet

    [params.fast]                           # a strategy parameter
    type = "int"                            # int | float | categorical
    low = 5
    high = 50
    step = 5                                # optional (int default 1; float: continuous)

    [risk.risk_per_trade]                   # a RiskConfig key; [fill.*] a FillConfig key
    type = "float"
    low = 0.005
    high = 0.02
    log = true                              # log-uniform (low > 0, no step)

    [timeframe]                             # the bar length, built with backtest.aggregator
    type = "categorical"
    choices = ["1h", "4h", "1d"]

    [fixed]                                 # optional: values every trial uses
    risk.sizing = "risk_per_trade"

Every key is checked against the strategy's parameter model and ``RiskConfig`` / ``FillConfig``
(unknown names, values out of a field's range, a float range on an integer parameter), and every
problem is a :class:`SpaceError` that names the file and the key.

Constraints are parsed by a small expression parser (never ``eval``): numbers, quoted strings,
``true``/``false``, parameter names (``fast`` or ``params.fast``, ``risk.max_open_positions``,
``timeframe``), ``+ - * / %``, comparisons (chained as in ``5 <= fast < slow``), ``and``, ``or``,
``not`` and parentheses. A name not searched takes its fixed or base value.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from backtest.fill_model import FillConfig
from backtest.spec import RunSpec
from core.time import parse_timeframe
from risk.config import RiskConfig
from strategies.registry import StrategyConfigError, resolve_strategy

__all__ = ["Constraint", "Dimension", "SearchSpace", "SpaceError", "TrialSetup", "TrialSetupError", "load_space",
           "parse_constraint", "parse_space"]

KINDS = ("int", "float", "categorical")
"""Parameter types a space file may declare."""
SECTIONS = ("params", "risk", "fill")
"""Tables of searchable keys (plus the top-level ``[timeframe]``)."""
_TOP_KEYS = ("strategy", "constraints", "params", "risk", "fill", "timeframe", "fixed")
_KEYS = {"int": ("type", "low", "high", "step", "log"), "float": ("type", "low", "high", "step", "log"),
         "categorical": ("type", "choices")}
_MODELS: dict[str, type[BaseModel]] = {"risk": RiskConfig, "fill": FillConfig}


class SpaceError(ValueError):
    """An invalid space file or constraint; the message names the file, the key and the rule."""


class TrialSetupError(ValueError):
    """A sampled point that cannot form a valid run (e.g. a risk value the model refuses)."""


# --- constraints: a tokenizer and a recursive-descent parser ----------------------------------------

_TOKEN = re.compile(r"""\s*(?:
    (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>"[^"]*"|'[^']*')
  | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|%|\(|\))
  | (?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)
)""", re.VERBOSE)
_COMPARE = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
_ARITH = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
          "%": lambda a, b: a % b}
_WORDS = {"and", "or", "not", "true", "false"}

Node = tuple[Any, ...]
"""A parsed expression: ``("num", v)``, ``("str", s)``, ``("name", key)``, ``("neg", x)``,
``("arith", op, a, b)``, ``("cmp", ops, operands)``, ``("and"|"or", a, b)``, ``("not", x)``."""


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise SpaceError(f"constraint {text!r}: unexpected character {text[pos:].strip()[0]!r} at "
                             f"position {pos + len(text[pos:]) - len(text[pos:].lstrip())}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        out.append(("word" if kind == "name" and value in _WORDS else kind, value, match.start(kind)))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    def fail(self, what: str) -> SpaceError:
        if self.i < len(self.tokens):
            _, value, at = self.tokens[self.i]
            return SpaceError(f"constraint {self.text!r}: {what}, found {value!r} at position {at}")
        return SpaceError(f"constraint {self.text!r}: {what}, found the end")

    def peek(self, *values: str) -> bool:
        return self.i < len(self.tokens) and self.tokens[self.i][1] in values and self.tokens[self.i][0] in ("op", "word")

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            raise SpaceError(f"constraint {self.text!r}: empty")
        node = self.or_()
        if self.i < len(self.tokens):
            raise self.fail("expected an operator or the end")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.peek("or"):
            self.take()
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.peek("and"):
            self.take()
            node = ("and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.peek("not"):
            self.take()
            return ("not", self.not_())
        return self.compare()

    def compare(self) -> Node:
        first = self.sum_()
        ops, operands = [], [first]
        while self.peek(*_COMPARE):
            ops.append(self.take()[1])
            operands.append(self.sum_())
        return ("cmp", tuple(ops), tuple(operands)) if ops else first

    def sum_(self) -> Node:
        node = self.product()
        while self.peek("+", "-"):
            node = ("arith", self.take()[1], node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.peek("*", "/", "%"):
            node = ("arith", self.take()[1], node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek("-"):
            self.take()
            return ("neg", self.unary())
        return self.atom()

    def atom(self) -> Node:
        if self.i >= len(self.tokens):
            raise self.fail("expected a number, a name or '('")
        kind, value, _ = self.tokens[self.i]
        if kind == "num":
            self.take()
            number = float(value)
            return ("num", int(number) if number.is_integer() and "." not in value and "e" not in value.lower()
                    else number)
        if kind == "str":
            self.take()
            return ("str", value[1:-1])
        if kind == "word" and value in ("true", "false"):
            self.take()
            return ("num", value == "true")
        if kind == "name":
            self.take()
            return ("name", value)
        if self.peek("("):
            self.take()
            node = self.or_()
            if not self.peek(")"):
                raise self.fail("expected ')'")
            self.take()
            return node
        raise self.fail("expected a number, a name or '('")


def _names(node: Node) -> set[str]:
    kind = node[0]
    if kind == "name":
        return {node[1]}
    if kind in ("num", "str"):
        return set()
    if kind == "cmp":
        return set().union(*(_names(n) for n in node[2]))
    return set().union(*(_names(n) for n in node[1:] if isinstance(n, tuple)))


def _is_condition(node: Node) -> bool:
    return node[0] in ("cmp", "not") or (node[0] in ("and", "or") and all(_is_condition(n) for n in node[1:]))


@dataclass(frozen=True)
class Constraint:
    """One parsed constraint: ``text`` as written, ``names`` it reads (as resolved space keys)."""

    text: str
    names: frozenset[str]
    node: Node = field(repr=False)

    def holds(self, values: Mapping[str, Any]) -> bool:
        """Return whether the constraint is met by ``values`` (space key -> value).

        Raises
        ------
        SpaceError
            If a name has no value, or the values cannot be compared or computed (division by
            zero, a string compared with a number).

        Examples
        --------
        >>> parse_constraint("fast < slow", {"fast": "params.fast", "slow": "params.slow"}).holds(
        ...     {"params.fast": 10, "params.slow": 30})
        True
        """
        try:
            return bool(self._eval(self.node, values))
        except SpaceError:
            raise
        except (TypeError, ZeroDivisionError, ArithmeticError) as exc:
            shown = ", ".join(f"{k}={values.get(k)!r}" for k in sorted(self.names))
            raise SpaceError(f"constraint {self.text!r} cannot be evaluated with {shown}: {exc}") from None

    def _eval(self, node: Node, values: Mapping[str, Any]) -> Any:
        kind = node[0]
        if kind in ("num", "str"):
            return node[1]
        if kind == "name":
            if node[1] not in values:
                raise SpaceError(f"constraint {self.text!r}: no value for {node[1]!r}")
            return values[node[1]]
        if kind == "neg":
            return -self._eval(node[1], values)
        if kind == "arith":
            return _ARITH[node[1]](self._eval(node[2], values), self._eval(node[3], values))
        if kind == "not":
            return not self._eval(node[1], values)
        if kind == "and":
            return self._eval(node[1], values) and self._eval(node[2], values)
        if kind == "or":
            return self._eval(node[1], values) or self._eval(node[2], values)
        ops, operands = node[1], node[2]
        left = self._eval(operands[0], values)
        for op, operand in zip(ops, operands[1:]):
            right = self._eval(operand, values)
            if not _COMPARE[op](left, right):
                return False
            left = right
        return True


def parse_constraint(text: str, names: Mapping[str, str]) -> Constraint:
    """Parse ``text`` into a :class:`Constraint` whose names are resolved through ``names``.

    Parameters
    ----------
    text
        E.g. ``"fast < slow"`` or ``"risk.max_open_positions * 2 <= 10 or timeframe == '1d'"``.
    names
        Every name the expression may use -> the space key it stands for (``"fast"`` ->
        ``"params.fast"``).

    Raises
    ------
    SpaceError
        On a syntax error (with the position), an unknown name (listing the known ones), or an
        expression that is not a condition (``"fast + slow"``).

    Examples
    --------
    >>> c = parse_constraint("5 <= fast < slow", {"fast": "params.fast", "slow": "params.slow"})
    >>> sorted(c.names), c.holds({"params.fast": 4, "params.slow": 9})
    (['params.fast', 'params.slow'], False)
    """
    if not isinstance(text, str):
        raise SpaceError(f"constraint {text!r}: must be a string such as \"fast < slow\"")
    node = _Parser(text).parse()
    if not _is_condition(node):
        raise SpaceError(f"constraint {text!r}: not a condition; compare with <, <=, >, >=, == or !=")
    unknown = sorted(n for n in _names(node) if n not in names)
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise SpaceError(f"constraint {text!r}: unknown name {unknown[0]!r}; names it may use: {known}")
    return Constraint(text, frozenset(names[n] for n in _names(node)), _rename(node, names))


def _rename(node: Node, names: Mapping[str, str]) -> Node:
    kind = node[0]
    if kind == "name":
        return ("name", names[node[1]])
    if kind in ("num", "str"):
        return node
    if kind == "cmp":
        return ("cmp", node[1], tuple(_rename(n, names) for n in node[2]))
    if kind == "arith":
        return ("arith", node[1], _rename(node[2], names), _rename(node[3], names))
    return (kind, *(_rename(n, names) for n in node[1:]))


# --- dimensions ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dimension:
    """One searched key.

    Attributes
    ----------
    key
        ``"params.<name>"``, ``"risk.<name>"``, ``"fill.<name>"`` or ``"timeframe"``.
    kind
        ``"int"``, ``"float"`` or ``"categorical"``.
    low, high
        Inclusive bounds (int and float), in the key's own unit.
    step
        Grid spacing (int default 1; float ``None`` = continuous).
    log
        Sample uniformly in log space.
    choices
        The values of a categorical key.
    """

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def grid_values(self) -> list[Any]:
        """Return the values a grid search tries, in order.

        Raises
        ------
        SpaceError
            For a continuous float (no ``step``).

        Examples
        --------
        >>> Dimension("params.fast", "int", 5, 20, 5).grid_values()
        [5, 10, 15, 20]
        >>> Dimension("risk.risk_per_trade", "float", 0.01, 0.02, 0.005).grid_values()
        [0.01, 0.015, 0.02]
        """
        if self.kind == "categorical":
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            raise SpaceError(f"[{self.key}]: a grid needs a step for a float range (or use categorical choices, "
                             "or --method random/lhs/tpe)")
        count = round((self.high - self.low) / self.step)
        return [_tidy(self.low + i * self.step) for i in range(count + 1)]

    def from_unit(self, u: float) -> Any:
        """Map ``u`` in [0, 1) to a value of this dimension (for Latin-hypercube designs):
        uniformly (log-uniformly with ``log``), snapped to the step.

        Examples
        --------
        >>> Dimension("params.fast", "int", 5, 50, 5).from_unit(0.0), Dimension("timeframe", "categorical",
        ...     choices=("1h", "4h")).from_unit(0.75)
        (5, '4h')
        """
        u = min(max(u, 0.0), math.nextafter(1.0, 0.0))
        if self.kind == "categorical":
            return self.choices[int(u * len(self.choices))]
        assert self.low is not None and self.high is not None
        if self.kind == "int" or self.step is not None:
            values = self.grid_values()
            if self.log:  # log-uniform over the integer range, then the nearest integer
                raw = math.exp(math.log(self.low) + u * (math.log(self.high + 1) - math.log(self.low)))
                return min(int(raw), int(self.high))
            return values[int(u * len(values))]
        if self.log:
            return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)


def _tidy(value: float) -> float:
    """``value`` rounded to 12 significant decimals, so 0.1 + 2 * 0.05 prints as 0.2."""
    return float(f"{value:.12g}")


@dataclass(frozen=True)
class TrialSetup:
    """What one sampled point runs: the spec and the timeframe of the bars (None = the default)."""

    spec: RunSpec
    timeframe: str | None


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space.

    Attributes
    ----------
    strategy
        The strategy the ``params.*`` keys belong to.
    dimensions
        The searched keys, in file order.
    constraints
        Conditions every trial must meet.
    fixed
        Space key -> value applied to every trial.
    defaults
        Space key -> the strategy's default, for names a constraint reads that nothing sets.
    source
        The file (for messages).
    """

    strategy: str
    dimensions: tuple[Dimension, ...]
    constraints: tuple[Constraint, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<space>"

    @property
    def keys(self) -> list[str]:
        """The searched keys."""
        return [d.key for d in self.dimensions]

    def timeframes(self) -> list[str] | None:
        """The timeframes trials use (searched choices or the fixed one), or None when the space
        leaves the bar length alone."""
        for dim in self.dimensions:
            if dim.key == "timeframe":
                return list(dim.choices)
        return [self.fixed["timeframe"]] if "timeframe" in self.fixed else None

    def grid_size(self) -> int:
        """Number of grid combinations before constraints (raises :class:`SpaceError` for a
        continuous float)."""
        return math.prod(len(d.grid_values()) for d in self.dimensions)

    def grid(self) -> Iterator[dict[str, Any]]:
        """Yield every grid combination (space key -> value) in order, constraints not applied."""
        keys = self.keys
        for combo in itertools.product(*(d.grid_values() for d in self.dimensions)):
            yield dict(zip(keys, combo))

    def violations(self, values: Mapping[str, Any], base: RunSpec | None = None,
                   timeframe: str | None = None) -> list[str]:
        """Return the constraints ``values`` break (their text), empty when all hold.

        Names not in ``values`` take the fixed value, else ``base``'s (its params, risk, fill;
        ``timeframe`` for the bar length), else the strategy's default.

        Raises
        ------
        SpaceError
            If a constraint cannot be evaluated (see :meth:`Constraint.holds`).
        """
        if not self.constraints:
            return []
        full = {**self.defaults, **_base_values(base, timeframe), **self.fixed, **values}
        return [c.text for c in self.constraints if not c.holds(full)]

    def apply(self, base: RunSpec, values: Mapping[str, Any]) -> TrialSetup:
        """Return the run of point ``values``: ``base`` with the fixed and sampled keys set.

        Raises
        ------
        TrialSetupError
            If the risk or fill keys form an invalid configuration (the message names them);
            strategy parameters are validated when the kernel builds the strategy.
        """
        merged = {**self.fixed, **values}
        updates: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
        for key, value in merged.items():
            if key != "timeframe":
                section, name = key.split(".", 1)
                updates[section][name] = value
        params = {**base.params, **updates["params"]}
        try:
            risk = RiskConfig.model_validate({**base.risk.model_dump(), **updates["risk"]})
            fill = FillConfig.model_validate({**base.fill.model_dump(), **updates["fill"]})
        except ValidationError as exc:
            raise TrialSetupError("; ".join(_problem(err, "") for err in exc.errors())) from None
        spec = base.model_copy(update={"strategy": self.strategy, "params": params, "risk": risk, "fill": fill})
        return TrialSetup(spec, merged.get("timeframe"))

    def fingerprint(self) -> str:
        """sha256 of the space's content (dimensions, constraints, fixed values, strategy)."""
        payload = {"strategy": self.strategy, "dimensions": [vars(d) for d in self.dimensions],
                   "constraints": [c.text for c in self.constraints], "fixed": dict(self.fixed)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _base_values(base: RunSpec | None, timeframe: str | None) -> dict[str, Any]:
    if base is None:
        return {} if timeframe is None else {"timeframe": timeframe}
    values = {f"params.{k}": v for k, v in base.params.items()}
    values.update({f"risk.{k}": v for k, v in base.risk.model_dump().items()})
    values.update({f"fill.{k}": v for k, v in base.fill.model_dump().items()})
    if timeframe is not None:
        values["timeframe"] = timeframe
    return values


# --- parsing a space file --------------------------------------------------------------------------

def _problem(err: Mapping[str, Any], prefix: str) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{prefix}{loc} = {err.get('input')!r}: {msg}" if loc else f"{prefix}{err.get('input')!r}: {msg}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Fields:
    """The models the keys of a space are checked against."""

    def __init__(self, strategy: str) -> None:
        try:
            cls = resolve_strategy(strategy)
        except StrategyConfigError as exc:
            raise SpaceError(str(exc)) from None
        self.strategy = strategy
        self.models: dict[str, type[BaseModel]] = {"params": cls.Params, **_MODELS}

    def info(self, where: str, key: str) -> Any:
        section, name = key.split(".", 1)
        model = self.models[section]
        info = model.model_fields.get(name)
        if info is None:
            owner = f"parameter of {self.strategy}" if section == "params" else f"[{section}] key"
            known = ", ".join(model.model_fields) or "none"
            raise SpaceError(f"{where}: unknown {owner} {name!r}; known: {known}")
        return info

    def check_value(self, where: str, key: str, value: Any, what: str) -> None:
        if key == "timeframe":
            if not isinstance(value, str):
                raise SpaceError(f"{where}: {what} {value!r} is not a timeframe such as \"1h\"")
            try:
                parse_timeframe(value)
            except ValueError as exc:
                raise SpaceError(f"{where}: {what}: {exc}") from None
            return
        self.info(where, key)
        section, name = key.split(".", 1)
        try:  # the model itself, so field validators run too; errors of other fields (defaults) are not ours
            self.models[section].model_validate({name: value})
        except ValidationError as exc:
            mine = [e for e in exc.errors() if tuple(e["loc"][:1]) == (name,)]
            if mine:
                msg = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in mine)
                raise SpaceError(f"{where}: {what} {value!r}: {msg}") from None

    def integer_only(self, key: str) -> bool:
        if key == "timeframe":
            return False
        return self.info("", key).annotation is int


def parse_space(table: Mapping[str, Any], *, strategy: str | None = None, source: str = "<space>",
                default_strategy: str | None = None) -> SearchSpace:
    """Validate a parsed space file.

    Parameters
    ----------
    table
        The TOML document as a dict (see the module docstring for its layout).
    strategy
        The run's strategy (name or ``module:Class``); default the file's ``strategy`` key. When
        both are given they must agree.
    source
        Name of the file, for messages.
    default_strategy
        The strategy when neither ``strategy`` nor the file names one (the configuration's).

    Returns
    -------
    SearchSpace

    Raises
    ------
    SpaceError
        For an unknown key or section, a missing or wrong ``type``, bounds out of order or out of
        the field's range, a step that does not fit the range, ``log`` with a step or a
        non-positive low, empty or duplicate choices, a key both searched and fixed, an invalid
        constraint, or no strategy. The message starts with ``source`` and names the key.

    Examples
    --------
    >>> space = parse_space({"params": {"fast": {"type": "int", "low": 5, "high": 20, "step": 5},
    ...                                 "slow": {"type": "int", "low": 20, "high": 40, "step": 10}},
    ...                      "constraints": ["fast < slow"]}, strategy="sma_cross")
    >>> space.grid_size(), sum(not space.violations(p) for p in space.grid())
    (12, 11)
    """
    unknown = sorted(set(table) - set(_TOP_KEYS))
    if unknown:
        raise SpaceError(f"{source}: unknown key {unknown[0]!r}; allowed: {', '.join(_TOP_KEYS)}")
    named = table.get("strategy")
    if named is not None and not isinstance(named, str):
        raise SpaceError(f"{source}: strategy = {named!r}: must be a strategy name")
    if strategy is not None and named is not None and named != strategy:
        raise SpaceError(f"{source}: the space is for strategy {named!r}, but the run's strategy is {strategy!r}")
    chosen = strategy or named or default_strategy
    if chosen is None:
        raise SpaceError(f"{source}: no strategy: set strategy = \"...\" in the file or pass one (--strategy)")
    fields = _Fields(chosen)
    dimensions: list[Dimension] = []
    for section in SECTIONS:
        entries = table.get(section, {})
        if not isinstance(entries, Mapping):
            raise SpaceError(f"{source}: [{section}] must be a table of [{section}.<name>] tables")
        for name, spec in entries.items():
            dimensions.append(_dimension(f"{section}.{name}", spec, fields, source))
    if "timeframe" in table:
        dimensions.append(_dimension("timeframe", table["timeframe"], fields, source))
    if not dimensions:
        raise SpaceError(f"{source}: no parameter to search: add tables such as [params.<name>], [risk.<name>], "
                         "[fill.<name>] or [timeframe]")
    fixed = _fixed(table.get("fixed", {}), fields, source)
    both = sorted(set(fixed) & {d.key for d in dimensions})
    if both:
        raise SpaceError(f"{source}: [{both[0]}] is both searched and in [fixed]")
    param_names = list(fields.models["params"].model_fields)
    names = {f"params.{n}": f"params.{n}" for n in param_names}
    names.update({n: f"params.{n}" for n in param_names})
    for section, model in _MODELS.items():
        names.update({f"{section}.{n}": f"{section}.{n}" for n in model.model_fields})
    names["timeframe"] = "timeframe"
    raw = table.get("constraints", [])
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        raise SpaceError(f"{source}: constraints must be a list of strings, e.g. [\"fast < slow\"]")
    try:
        constraints = tuple(parse_constraint(text, names) for text in raw)
    except SpaceError as exc:
        raise SpaceError(f"{source}: {exc}") from None
    defaults = {f"params.{n}": info.get_default(call_default_factory=True)
                for n, info in fields.models["params"].model_fields.items() if not info.is_required()}
    return SearchSpace(chosen, tuple(dimensions), constraints, fixed, defaults, source)


def _dimension(key: str, spec: Any, fields: _Fields, source: str) -> Dimension:
    where = f"{source}: [{key}]"
    if not isinstance(spec, Mapping):
        raise SpaceError(f"{where}: must be a table with a type, e.g. type = \"int\", low = 5, high = 50")
    kind = spec.get("type")
    if kind not in KINDS:
        raise SpaceError(f"{where}: type = {kind!r}: must be one of {', '.join(KINDS)}")
    if key == "timeframe" and kind != "categorical":
        raise SpaceError(f"{where}: type must be \"categorical\" with choices such as [\"1h\", \"4h\", \"1d\"]")
    extra = sorted(set(spec) - set(_KEYS[kind]))
    if extra:
        raise SpaceError(f"{where}: unknown key {extra[0]!r} for type {kind!r}; allowed: {', '.join(_KEYS[kind])}")
    if key != "timeframe":
        fields.info(where, key)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where}: choices must be a non-empty list")
        for choice in choices:
            if not isinstance(choice, (str, int, float, bool)):
                raise SpaceError(f"{where}: choice {choice!r}: choices must be strings, numbers or booleans")
            fields.check_value(where, key, choice, "choice")
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise SpaceError(f"{where}: choices repeat a value: {choices!r}")
        return Dimension(key, kind, choices=tuple(choices))
    for bound in ("low", "high"):
        if bound not in spec:
            raise SpaceError(f"{where}: {bound} is required for type {kind!r}")
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: log = {log!r}: must be true or false")
    if kind == "int":
        for name, value in (("low", low), ("high", high)) + ((("step", step),) if step is not None else ()):
            if not isinstance(value, int) or isinstance(value, bool):
                raise SpaceError(f"{where}: {name} = {value!r}: must be an integer for type \"int\"")
        step = 1 if step is None else step
        if step < 1:
            raise SpaceError(f"{where}: step = {step}: must be a positive integer")
        if log and step != 1:
            raise SpaceError(f"{where}: log = true cannot be combined with step = {step}")
    else:
        if fields.integer_only(key):
            raise SpaceError(f"{where}: type = \"float\", but {key.split('.', 1)[1]} is an integer; use type = \"int\"")
        for name, value in (("low", low), ("high", high)) + ((("step", step),) if step is not None else ()):
            if not _is_number(value):
                raise SpaceError(f"{where}: {name} = {value!r}: must be a finite number")
        low, high = float(low), float(high)
        if step is not None:
            step = float(step)
            if step <= 0:
                raise SpaceError(f"{where}: step = {step}: must be positive")
            if log:
                raise SpaceError(f"{where}: log = true cannot be combined with a step")
    if low > high or (kind == "float" and low == high):
        raise SpaceError(f"{where}: low = {low!r} must be below high = {high!r}")
    if log and low <= 0:
        raise SpaceError(f"{where}: log = true needs low > 0 (got {low!r})")
    if step is not None:
        count = (high - low) / step
        if abs(count - round(count)) > 1e-9 * max(1.0, abs(count)):
            raise SpaceError(f"{where}: high = {high!r} is not low + a whole number of steps ({step!r})")
    fields.check_value(where, key, low, "low")
    fields.check_value(where, key, high, "high")
    return Dimension(key, kind, low, high, step, log)


def _fixed(raw: Any, fields: _Fields, source: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise SpaceError(f"{source}: [fixed] must be a table, e.g. risk.sizing = \"risk_per_trade\"")
    fixed: dict[str, Any] = {}
    for section, values in raw.items():
        if section == "timeframe":
            fields.check_value(f"{source}: [fixed] timeframe", "timeframe", values, "value")
            fixed["timeframe"] = values
            continue
        if section not in SECTIONS:
            raise SpaceError(f"{source}: [fixed] {section}: unknown section; allowed: {', '.join(SECTIONS)}, timeframe")
        if not isinstance(values, Mapping):
            raise SpaceError(f"{source}: [fixed] {section} must be a table of keys")
        for name, value in values.items():
            key = f"{section}.{name}"
            fields.check_value(f"{source}: [fixed] {key}", key, value, "value")
            fixed[key] = value
    return fixed


def load_space(path: str | Path, strategy: str | None = None, default_strategy: str | None = None) -> SearchSpace:
    """Read and validate the space file ``path`` (see :func:`parse_space` for the arguments).

    Raises
    ------
    SpaceError
        If the file is missing, not valid TOML, or invalid (the message names the file and key).
    """
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpaceError(f"{path}: space file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"{path}: cannot read the space file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpaceError(f"{path}: invalid TOML: {exc}") from None
    return parse_space(table, strategy=strategy, source=str(path), default_strategy=default_strategy)
