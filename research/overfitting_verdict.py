"""Overfitting verdict: the checks a report shows next to an optimised or walk-forward result.

Pure functions over plain numbers and dicts, so the optimizer, the walk-forward loop and the
reports can all feed them without sharing types.

What is checked
---------------
* **IS -> OOS degradation** per metric: ``(IS - OOS) / |IS|`` for a metric where higher is better,
  ``(OOS - IS) / |IS|`` for one where lower is better (drawdown, volatility); positive means the
  out-of-sample (OOS) result is worse. Flagged above 30 % (``max_degradation``).
* **Too many parameters for the number of trades**: fewer than ``min_trades_per_parameter`` (10)
  trades per free parameter.
* **Too few trades**: fewer than ``min_trades`` (30) round trips.
* **Works in only one period**: of two or more periods (walk-forward windows, years, regimes),
  the metric beats ``period_threshold`` (0) in at most one.
* Optionally the **probability of backtest overfitting** (flagged above 0.5: the in-sample best is
  more likely than not below the OOS median) and the **deflated Sharpe ratio** (flagged below
  0.95, the 5 % significance level of Bailey & López de Prado 2014), from
  :mod:`research.overfitting`.

The 0-100 score
---------------
Each applicable check gets a severity in [0, 1] and a weight; the score is
``100 * sum(weight * severity) / sum(weight)`` over the checks whose inputs were given, so an
absent PBO or DSR neither helps nor hurts. Weights: degradation 30, PBO 20, DSR 15, parameters per
trade 15, trade count 10, period concentration 10. Severities:

* degradation: ``clip(max_degradation_over_metrics / (2 * max_degradation), 0, 1)`` (0.5 at the
  flag line, 1 at twice it);
* parameters per trade: ``clip(1 - (trades / parameters) / min_trades_per_parameter, 0, 1)``;
* trade count: ``clip(1 - trades / min_trades, 0, 1)``;
* period concentration: ``clip((periods - working) / (periods - 1), 0, 1)``;
* PBO: ``min(1, 2 * pbo)`` (0.5, a coin flip, is already the worst case);
* DSR: ``clip((0.95 - dsr) / 0.95, 0, 1)``.

Levels: score < 25 ``"low"``, < 50 ``"moderate"``, < 75 ``"high"``, otherwise ``"severe"``.
The suggested remedy is that of the flagged check contributing the most points; checks below their
flag lines still add (a few) points but suggest nothing.
The thresholds (30 %, 30 trades, 10 trades per parameter), weights, severity curves and levels are
this project's conventions, chosen for readability of reports, **not** published results; the PBO
and DSR they summarise are (see :mod:`research.overfitting`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_LOWER_IS_BETTER",
    "MetricDegradation",
    "OverfittingVerdict",
    "ScorePart",
    "VerdictThresholds",
    "metric_degradation",
    "overfitting_verdict",
]

DEFAULT_LOWER_IS_BETTER: frozenset[str] = frozenset(
    {"max_drawdown", "max_drawdown_duration", "max_drawdown_duration_days", "max_drawdown_duration_seconds",
     "volatility"}
)
"""Metric names (as in :class:`research.metrics.PerformanceMetrics`) where a smaller value is better."""

WEIGHTS: Mapping[str, float] = {
    "degradation": 30.0,
    "pbo": 20.0,
    "dsr": 15.0,
    "parameters_per_trade": 15.0,
    "trade_count": 10.0,
    "period_concentration": 10.0,
}
"""Points each check can contribute before re-normalising over the checks that apply."""

REMEDIES: Mapping[str, str] = {
    "degradation": (
        "Out-of-sample results fall well short of in-sample ones: simplify the strategy, prefer "
        "parameters on a broad plateau over the single best point, and judge it on walk-forward "
        "out-of-sample results only."
    ),
    "pbo": (
        "The selection itself is overfit (the in-sample best often ranks below the median out of "
        "sample): search fewer parameter sets, coarsen the grid, and pick parameters that rank well "
        "across CSCV splits rather than the single in-sample best."
    ),
    "dsr": (
        "The Sharpe ratio does not survive the number of trials run: count every trial honestly, "
        "run fewer of them, or collect a longer track record before trusting it."
    ),
    "parameters_per_trade": (
        "Too many free parameters for the trades behind them: fix parameters from first principles, "
        "drop filters that barely change results, or test on more symbols and years."
    ),
    "trade_count": (
        "Too few trades to tell skill from luck: extend the history or the universe before drawing "
        "conclusions."
    ),
    "period_concentration": (
        "The result comes from a single period: check regime dependence, require it to hold in "
        "most walk-forward windows, or restrict the strategy to the regime where it works."
    ),
}
"""The suggested remedy for each check."""

_NO_REMEDY = "None needed: the inputs show no sign of overfitting."


@dataclass(frozen=True)
class VerdictThresholds:
    """Flag lines of the verdict (project conventions; see the module docstring).

    Attributes
    ----------
    max_degradation : float
        IS -> OOS degradation above this fraction is flagged (0.30 = 30 %).
    min_trades : int
        Fewer round trips than this are flagged.
    min_trades_per_parameter : float
        Fewer trades per free parameter than this are flagged.
    period_threshold : float
        A period "works" when its metric is strictly above this.
    max_pbo : float
        A probability of backtest overfitting above this is flagged.
    min_dsr : float
        A deflated Sharpe ratio below this is flagged (0.95: Bailey & López de Prado 2014).
    """

    max_degradation: float = 0.30
    min_trades: int = 30
    min_trades_per_parameter: float = 10.0
    period_threshold: float = 0.0
    max_pbo: float = 0.5
    min_dsr: float = 0.95

    def __post_init__(self) -> None:
        for name in ("max_degradation", "min_trades", "min_trades_per_parameter"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"VerdictThresholds.{name} must be a positive number, got {value!r}")
        if not math.isfinite(self.period_threshold):
            raise ValueError(f"VerdictThresholds.period_threshold must be finite, got {self.period_threshold!r}")
        for name in ("max_pbo", "min_dsr"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"VerdictThresholds.{name} must be in (0, 1), got {value!r}")


@dataclass(frozen=True)
class MetricDegradation:
    """In-sample versus out-of-sample value of one metric.

    Attributes
    ----------
    metric : str
        Metric name.
    in_sample, out_of_sample : float or None
        The two values (``None`` when undefined, e.g. a Sharpe ratio of a flat curve).
    lower_is_better : bool
        Whether a smaller value is better (drawdown, volatility).
    degradation : float or None
        Fraction by which OOS is worse than IS (negative: OOS better); ``None`` when either value
        is undefined or IS is 0.
    flagged : bool
        ``degradation > max_degradation``.
    """

    metric: str
    in_sample: float | None
    out_of_sample: float | None
    lower_is_better: bool
    degradation: float | None
    flagged: bool


@dataclass(frozen=True)
class ScorePart:
    """One check's contribution to the overfitting score.

    Attributes
    ----------
    name : str
        ``"degradation"``, ``"pbo"``, ``"dsr"``, ``"parameters_per_trade"``, ``"trade_count"`` or
        ``"period_concentration"``.
    weight : float
        Points available to this check after re-normalising over the checks that apply (they sum
        to 100).
    severity : float
        How bad it is, in [0, 1].
    points : float
        ``weight * severity``; the score is the sum of the parts' points.
    flagged : bool
        Whether the check crossed its flag line.
    detail : str
        One sentence with the numbers behind it.
    remedy : str
        What to do about it.
    """

    name: str
    weight: float
    severity: float
    points: float
    flagged: bool
    detail: str
    remedy: str


@dataclass(frozen=True)
class OverfittingVerdict:
    """Overfitting score with its parts, flags and the suggested remedy.

    Attributes
    ----------
    score : float
        0 (no sign of overfitting) to 100 (every check at its worst).
    level : str
        ``"low"``, ``"moderate"``, ``"high"`` or ``"severe"``.
    parts : tuple of ScorePart
        The checks that applied, in a fixed order.
    degradations : tuple of MetricDegradation
        Per-metric IS/OOS comparison, in the order of ``in_sample``.
    flags : tuple of str
        Human-readable description of each flagged check.
    remedy : str
        Remedy of the flagged part contributing the most points, or a "none needed" sentence when
        nothing is flagged (below their flag lines, parts still add a few points to the score).
    remedies : tuple of str
        Remedies of every flagged part, most points first.
    """

    score: float
    level: str
    parts: tuple[ScorePart, ...]
    degradations: tuple[MetricDegradation, ...]
    flags: tuple[str, ...]
    remedy: str
    remedies: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the verdict (nested dataclasses become dicts, tuples lists).

        Returns
        -------
        dict[str, Any]
            Keys are the attribute names.
        """
        return {
            "score": self.score,
            "level": self.level,
            "parts": [asdict(p) for p in self.parts],
            "degradations": [asdict(d) for d in self.degradations],
            "flags": list(self.flags),
            "remedy": self.remedy,
            "remedies": list(self.remedies),
        }


def _value(name: str, where: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}[{name!r}] must be a number or None, got {value!r}")
    v = float(value)
    return v if math.isfinite(v) else None  # inf profit factor, nan: undefined, not comparable


def metric_degradation(
    metric: str,
    in_sample: float | None,
    out_of_sample: float | None,
    *,
    lower_is_better: bool = False,
    max_degradation: float = 0.30,
) -> MetricDegradation:
    """Relative IS -> OOS degradation of one metric.

    ``(IS - OOS) / |IS|`` when higher is better, ``(OOS - IS) / |IS|`` when lower is better, so a
    positive value always means OOS is worse: a Sharpe ratio of 2.0 IS and 1.2 OOS degrades by
    40 %; a drawdown of 10 % IS and 15 % OOS by 50 %.

    Parameters
    ----------
    metric : str
        Metric name (for the result only).
    in_sample, out_of_sample : float or None
        Values of the metric; ``None``, ``nan`` or ``inf`` mean undefined.
    lower_is_better : bool, default False
        Whether a smaller value is better.
    max_degradation : float, default 0.30
        Flag line, a fraction.

    Returns
    -------
    MetricDegradation
        ``degradation`` is ``None`` (and nothing is flagged) when a value is undefined or IS is 0.

    Raises
    ------
    ValueError
        If a value is neither a number nor ``None``.

    Examples
    --------
    >>> d = metric_degradation("sharpe", 2.0, 1.2)
    >>> round(d.degradation, 6), d.flagged
    (0.4, True)
    >>> metric_degradation("max_drawdown", 0.10, 0.12, lower_is_better=True).flagged
    False
    """
    is_v = _value(metric, "in_sample", in_sample)
    oos_v = _value(metric, "out_of_sample", out_of_sample)
    degradation: float | None = None
    if is_v is not None and oos_v is not None and is_v != 0.0:
        worse_by = (oos_v - is_v) if lower_is_better else (is_v - oos_v)
        degradation = worse_by / abs(is_v)
    return MetricDegradation(
        metric=metric,
        in_sample=is_v,
        out_of_sample=oos_v,
        lower_is_better=lower_is_better,
        degradation=degradation,
        flagged=degradation is not None and degradation > max_degradation,
    )


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


def _count(name: str, value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _probability(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating))
            or not 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a probability in [0, 1] or None, got {value!r}")
    return float(value)


def overfitting_verdict(
    *,
    in_sample: Mapping[str, float | None],
    out_of_sample: Mapping[str, float | None],
    n_trades: int | np.integer[Any],
    n_parameters: int | np.integer[Any],
    period_performance: Mapping[str, float] | None = None,
    pbo: float | None = None,
    dsr: float | None = None,
    lower_is_better: Collection[str] = DEFAULT_LOWER_IS_BETTER,
    thresholds: VerdictThresholds | None = None,
) -> OverfittingVerdict:
    """Score how likely a backtest result is overfit, say why, and suggest a remedy.

    Parameters
    ----------
    in_sample, out_of_sample : Mapping[str, float or None]
        Metrics of the chosen parameter set in sample and out of sample, same keys (e.g. the
        output of :meth:`research.metrics.PerformanceMetrics.to_dict` restricted to numbers:
        ``sharpe``, ``cagr``, ``max_drawdown``, ...). Fractions, not percent.
    n_trades : int
        Round trips behind the in-sample result.
    n_parameters : int
        Free (optimised) parameters of the strategy.
    period_performance : Mapping[str, float], optional
        The chosen parameters' metric (e.g. Sharpe ratio or return) in each period: walk-forward
        windows, years or regimes. Needs at least 2 periods to be judged.
    pbo : float, optional
        Probability of backtest overfitting from
        :func:`research.overfitting.probability_of_backtest_overfitting`.
    dsr : float, optional
        Deflated Sharpe ratio from :func:`research.overfitting.deflated_sharpe_ratio`.
    lower_is_better : Collection[str], default DEFAULT_LOWER_IS_BETTER
        Metric names where a smaller value is better.
    thresholds : VerdictThresholds, optional
        Flag lines; defaults to ``VerdictThresholds()``.

    Returns
    -------
    OverfittingVerdict
        Score 0-100, level, parts, per-metric degradations, flags and remedies.

    Raises
    ------
    ValueError
        If ``in_sample`` and ``out_of_sample`` have different keys or none, a metric value is not a
        number, a count is negative or not an integer, ``pbo``/``dsr`` is outside [0, 1], or a
        period value is not finite.

    Examples
    --------
    Sharpe ratio 2.0 in sample but 0.8 out of sample (-60 %, severity 1), 12 trades for 4 parameters
    (3 per parameter, severity 0.7; 12 of 30 trades, severity 0.6): 100 * (30 + 10.5 + 6) / 55:

    >>> v = overfitting_verdict(in_sample={"sharpe": 2.0}, out_of_sample={"sharpe": 0.8},
    ...                         n_trades=12, n_parameters=4)
    >>> v.level, round(v.score, 1), [p.name for p in v.parts if p.flagged]
    ('severe', 84.5, ['degradation', 'parameters_per_trade', 'trade_count'])
    """
    th = thresholds if thresholds is not None else VerdictThresholds()
    missing_oos = [k for k in in_sample if k not in out_of_sample]
    missing_is = [k for k in out_of_sample if k not in in_sample]
    if missing_oos or missing_is:
        raise ValueError(
            "in_sample and out_of_sample must have the same metrics; only in in_sample: "
            f"{missing_oos}, only in out_of_sample: {missing_is}"
        )
    if not in_sample:
        raise ValueError("in_sample and out_of_sample need at least one metric to compare")
    trades = _count("n_trades", n_trades)
    params = _count("n_parameters", n_parameters)
    pbo_v = _probability("pbo", pbo)
    dsr_v = _probability("dsr", dsr)
    lower = set(lower_is_better)

    degradations = tuple(
        metric_degradation(k, in_sample[k], out_of_sample[k], lower_is_better=k in lower,
                           max_degradation=th.max_degradation)
        for k in in_sample
    )
    # name -> (severity, flagged, detail)
    raw: dict[str, tuple[float, bool, str]] = {}

    defined = [d for d in degradations if d.degradation is not None]
    if defined:
        worst = max(defined, key=lambda d: d.degradation or 0.0)
        worst_value = worst.degradation or 0.0
        flagged_names = [d.metric for d in defined if d.flagged]
        raw["degradation"] = (
            _clip01(worst_value / (2.0 * th.max_degradation)),
            bool(flagged_names),
            f"worst IS->OOS degradation {worst_value:+.0%} ({worst.metric}); flagged above "
            f"{th.max_degradation:.0%}: {', '.join(flagged_names) or 'none'}",
        )

    if params > 0:
        per_param = trades / params
        raw["parameters_per_trade"] = (
            _clip01(1.0 - per_param / th.min_trades_per_parameter),
            per_param < th.min_trades_per_parameter,
            f"{trades} trades for {params} free parameters ({per_param:.1f} per parameter; "
            f"wanted at least {th.min_trades_per_parameter:g})",
        )

    raw["trade_count"] = (
        _clip01(1.0 - trades / th.min_trades),
        trades < th.min_trades,
        f"{trades} trades (wanted at least {th.min_trades})",
    )

    if period_performance is not None and len(period_performance) >= 2:
        values: dict[str, float] = {}
        for name, value in period_performance.items():
            v = _value(name, "period_performance", value)
            if v is None:
                raise ValueError(f"period_performance[{name!r}] must be finite, got {value!r}")
            values[name] = v
        working = [name for name, v in values.items() if v > th.period_threshold]
        n_periods = len(values)
        where = f" ({working[0]})" if len(working) == 1 else ""
        raw["period_concentration"] = (
            _clip01((n_periods - len(working)) / (n_periods - 1)),
            len(working) <= 1,
            f"works (metric > {th.period_threshold:g}) in {len(working)} of {n_periods} periods{where}",
        )

    if pbo_v is not None:
        raw["pbo"] = (
            min(1.0, 2.0 * pbo_v),
            pbo_v > th.max_pbo,
            f"probability of backtest overfitting {pbo_v:.2f} (flagged above {th.max_pbo:g})",
        )

    if dsr_v is not None:
        raw["dsr"] = (
            _clip01((th.min_dsr - dsr_v) / th.min_dsr),
            dsr_v < th.min_dsr,
            f"deflated Sharpe ratio {dsr_v:.3f} (significant at 5 % above {th.min_dsr:g})",
        )

    total_weight = sum(WEIGHTS[name] for name in raw)
    parts: list[ScorePart] = []
    for name in WEIGHTS:  # fixed order, whatever order the checks ran in
        if name not in raw:
            continue
        severity, flagged, detail = raw[name]
        weight = 100.0 * WEIGHTS[name] / total_weight
        parts.append(ScorePart(name=name, weight=weight, severity=severity, points=weight * severity,
                               flagged=flagged, detail=detail, remedy=REMEDIES[name]))

    score = min(100.0, max(0.0, sum(p.points for p in parts)))
    level = "low" if score < 25 else "moderate" if score < 50 else "high" if score < 75 else "severe"
    ranked = sorted((p for p in parts if p.flagged), key=lambda p: p.points, reverse=True)
    return OverfittingVerdict(
        score=score,
        level=level,
        parts=tuple(parts),
        degradations=degradations,
        flags=tuple(f"{p.name}: {p.detail}" for p in parts if p.flagged),
        remedy=ranked[0].remedy if ranked else _NO_REMEDY,
        remedies=tuple(p.remedy for p in ranked),
    )
