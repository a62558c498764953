"""The 0-100 robustness score of ``tradingd robustness``: how the scenarios' replays held up
against the base replay (:func:`score_scenarios`).

Four parts, each a fraction in [0, 1] times its weight (points; the score is their sum, 0-100):

* ``profitable`` (30): the share of scenarios with a positive total return from at least
  :data:`MIN_SCENARIO_TRADES` closed trades (a failed replay, or a *thin* one that closed fewer,
  counts as not profitable: a quarter without a trade made no money, it only did nothing);
* ``worst_sharpe`` (25): ``clip(worst Sharpe / base Sharpe, 0, 1)`` over the scenarios that ran
  on the run's whole span (universes, stress, assumptions; periods only when there are no
  others), leaving thin scenarios out when any other ran, 0 when the base Sharpe is not positive
  (an undefined Sharpe counts as 0). Periods are
  left out because one quarter's annualized Sharpe is mostly noise: its standard error is about
  ``sqrt(252 / 63) = 2`` (Lo 2002, "The Statistics of Sharpe Ratios", Financial Analysts Journal
  58(4)), larger than any Sharpe it would be compared with;
* ``drawdown`` (25): ``clip(2 - worst max drawdown / L, 0, 1)`` with ``L`` the run's
  ``[risk] max_drawdown``: full points while no scenario draws down more than the circuit breaker's
  limit, none at twice it;
* ``cost`` (20): ``clip(min(return under 2x costs) / base return, 0, 1)`` over ``slippage_2x`` and
  ``commission_2x``: the share of the base return that survives doubled costs (0 when the base
  return is not positive or no cost scenario ran).

The weakest scenario is the one with the lowest Sharpe (undefined: 0), ties by total return, among
the failed and the non-thin scenarios (all of them when every one is thin); a failed replay is
weaker than any. The run passes at ``score >= pass_score`` (60 by default) when its base replay
closed at least ``min_trades`` trades (:data:`DEFAULT_MIN_TRADES`): a score built on a handful of
trades is not evidence (:func:`verdict`). The
parts are the robustness questions of system testing (Pardo 2008, "The Evaluation and Optimization
of Trading Strategies", 2nd ed., Wiley: does it hold up across markets and periods, within its risk
budget, after realistic costs); the weights and thresholds are tradingd's own choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from research.variants import VariantResult

__all__ = ["COST_SCENARIOS", "DEFAULT_MIN_TRADES", "DEFAULT_PASS_SCORE", "MIN_SCENARIO_TRADES", "WEIGHTS",
           "RobustnessScore", "ScenarioOutcome", "finite_or_none", "outcome_of", "score_scenarios", "verdict"]

DEFAULT_PASS_SCORE = 60.0
"""Score at or above which a run passes."""
WEIGHTS: dict[str, float] = {"profitable": 30.0, "worst_sharpe": 25.0, "drawdown": 25.0, "cost": 20.0}
"""Points of each part of the score (they sum to 100)."""
COST_SCENARIOS = ("slippage_2x", "commission_2x")
"""The scenarios of the ``cost`` part (doubled costs; kind ``assumption``)."""
MIN_SCENARIO_TRADES = 5
"""A scenario that ran but closed fewer trades than this is *thin*: never counted as profitable,
and left out of the worst Sharpe and the weakest scenario when other scenarios are not thin."""
DEFAULT_MIN_TRADES = 20
"""Closed trades the base replay needs before a run can pass (``--min-trades``)."""


def finite_or_none(value: Any) -> float | None:
    """Return ``value`` as a float, or ``None`` when it is missing, not a number or not finite.

    A zero comes back as ``0.0``, never ``-0.0`` (no "-0.00%" in the report).

    Examples
    --------
    >>> finite_or_none(-0.0), finite_or_none(float("inf")), finite_or_none("x"), finite_or_none(3)
    (0.0, None, None, 3.0)
    """
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number + 0.0 if math.isfinite(number) else None


@dataclass(frozen=True)
class ScenarioOutcome:
    """What the score reads of one scenario (fractions; Sharpe annualized; ``None`` = undefined)."""

    name: str
    kind: str
    sharpe: float | None
    total_return: float | None
    max_drawdown: float | None
    trades: int = 0
    start: str | None = None
    end: str | None = None
    error: str = ""

    @property
    def thin(self) -> bool:
        """Ran, but closed fewer than :data:`MIN_SCENARIO_TRADES` trades."""
        return not self.error and self.trades < MIN_SCENARIO_TRADES

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "sharpe": finite_or_none(self.sharpe),
                "total_return": finite_or_none(self.total_return), "max_drawdown": finite_or_none(self.max_drawdown),
                "trades": self.trades, "start": self.start, "end": self.end, "thin": self.thin}


def outcome_of(result: VariantResult) -> ScenarioOutcome:
    """The :class:`ScenarioOutcome` of a replayed variant."""
    m = result.metrics
    return ScenarioOutcome(result.name, result.kind, finite_or_none(m.get("sharpe")), finite_or_none(m.get("total_return")),
                           finite_or_none(m.get("max_drawdown")), int(m.get("trades") or 0),
                           result.start.isoformat() if result.start is not None else None,
                           result.end.isoformat() if result.end is not None else None, result.error)


@dataclass(frozen=True)
class RobustnessScore:
    """The score, its parts and the weakest scenario.

    Attributes
    ----------
    score : float
        0-100, the sum of ``parts``.
    parts : dict of str to float
        Points per part (at most :data:`WEIGHTS`).
    fractions : dict of str to float
        Each part's fraction in [0, 1].
    details : dict of str to str
        How each part came out, in words.
    weakest : ScenarioOutcome or None
        See the module docstring (None without scenarios).
    """

    score: float
    parts: dict[str, float]
    fractions: dict[str, float]
    details: dict[str, str]
    weakest: ScenarioOutcome | None


def _clip(value: float) -> float:
    return float(min(1.0, max(0.0, value)))


def score_scenarios(base: ScenarioOutcome, scenarios: Sequence[ScenarioOutcome],
                    max_drawdown_limit: float) -> RobustnessScore:
    """Score ``scenarios`` against ``base`` as the module docstring defines.

    Parameters
    ----------
    base
        The base replay.
    scenarios
        Every other scenario (failed ones included).
    max_drawdown_limit
        The run's ``[risk] max_drawdown``, a fraction in (0, 1].

    Examples
    --------
    >>> b = ScenarioOutcome("base", "base", 1.0, 0.2, 0.1, trades=40)
    >>> s = [ScenarioOutcome("slippage_2x", "assumption", 0.5, 0.1, 0.15, trades=40),
    ...      ScenarioOutcome("x", "stress", -0.2, -0.05, 0.3, trades=38)]
    >>> r = score_scenarios(b, s, 0.2)
    >>> r.parts, r.score, r.weakest.name
    ({'profitable': 15.0, 'worst_sharpe': 0.0, 'drawdown': 12.5, 'cost': 10.0}, 37.5, 'x')
    """
    if not 0.0 < max_drawdown_limit <= 1.0:
        raise ValueError(f"max_drawdown_limit must be in (0, 1], got {max_drawdown_limit}")
    ran = [s for s in scenarios if not s.error]
    solid = [s for s in ran if not s.thin]
    fractions: dict[str, float] = {}
    details: dict[str, str] = {}
    profitable = sum(1 for s in solid if (s.total_return or 0.0) > 0)
    fractions["profitable"] = profitable / len(scenarios) if scenarios else 0.0
    thin = len(ran) - len(solid)
    details["profitable"] = f"{profitable} of {len(scenarios)} scenarios made money" + (
        f" ({thin} thin, with fewer than {MIN_SCENARIO_TRADES} trades, not counted)" if thin else "")
    base_sharpe = base.sharpe or 0.0
    pool = solid or ran
    spanning = [s for s in pool if s.kind != "period"] or pool
    if spanning and base_sharpe > 0:
        worst = min(spanning, key=lambda s: s.sharpe or 0.0)
        fractions["worst_sharpe"] = _clip((worst.sharpe or 0.0) / base_sharpe)
        details["worst_sharpe"] = f"worst Sharpe {worst.sharpe or 0.0:.2f} ({worst.name}) vs base {base_sharpe:.2f}"
    else:
        fractions["worst_sharpe"] = 0.0
        details["worst_sharpe"] = (f"base Sharpe {base_sharpe:.2f} is not positive" if ran
                                   else "no scenario ran")
    if ran:
        deepest = max(ran, key=lambda s: s.max_drawdown or 0.0)
        depth = deepest.max_drawdown or 0.0
        fractions["drawdown"] = _clip(2.0 - depth / max_drawdown_limit)
        details["drawdown"] = (f"worst max drawdown {depth:.1%} ({deepest.name}) vs the {max_drawdown_limit:.0%} "
                               "circuit-breaker limit")
    else:
        fractions["drawdown"] = 0.0
        details["drawdown"] = "no scenario ran"
    costs = [s for s in scenarios if s.kind == "assumption" and s.name in COST_SCENARIOS]
    base_return = base.total_return or 0.0
    if costs and base_return > 0:
        cheapest = min(costs, key=lambda s: (s.total_return or 0.0) if not s.error else -math.inf)
        kept = -math.inf if cheapest.error else (cheapest.total_return or 0.0)
        fractions["cost"] = _clip(kept / base_return)
        details["cost"] = (f"{cheapest.name}: return {kept:.1%} vs base {base_return:.1%}" if not cheapest.error
                           else f"{cheapest.name} failed")
    else:
        fractions["cost"] = 0.0
        details["cost"] = "no cost scenario ran" if not costs else f"base return {base_return:.1%} is not positive"
    parts = {name: round(WEIGHTS[name] * fractions[name], 6) for name in WEIGHTS}
    candidates = [s for s in scenarios if not s.thin] or list(scenarios)
    weakest = min(candidates, key=lambda s: (0 if s.error else 1, s.sharpe or 0.0, s.total_return or 0.0),
                  default=None)
    return RobustnessScore(round(sum(parts.values()), 6), parts, fractions, details, weakest)


def verdict(score: float, base_trades: int, pass_score: float = DEFAULT_PASS_SCORE,
            min_trades: int = DEFAULT_MIN_TRADES) -> tuple[bool, str]:
    """Whether a run passes and why: ``score >= pass_score`` and a base replay of at least
    ``min_trades`` closed trades.

    Examples
    --------
    >>> verdict(93.8, 1)
    (False, 'the base replay closed 1 trade(s), fewer than the 20 a pass needs (--min-trades): too little evidence')
    >>> verdict(61.0, 40)[0], verdict(59.0, 40)
    (True, (False, 'score 59.0 is below the pass score 60'))
    """
    if base_trades < min_trades:
        return False, (f"the base replay closed {base_trades} trade(s), fewer than the {min_trades} a pass needs "
                       "(--min-trades): too little evidence")
    if score < pass_score:
        return False, f"score {score:.1f} is below the pass score {pass_score:g}"
    return True, f"score {score:.1f} is at or above the pass score {pass_score:g} with {base_trades} trades"
