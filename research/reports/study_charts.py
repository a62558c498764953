"""The numbers behind a study report and their plotly figures.

:func:`analyse_study` computes everything the HTML page, ``summary.txt`` and ``report.pdf`` show,
once, into a :class:`StudyAnalysis`; the ``*_figure`` builders turn parts of it into plotly
figure dicts (:data:`research.reports.plotting.Figure`). Nothing here writes files.

The landscape
-------------
The analysed trials are the *scored* ones: status ``complete`` or ``filtered`` with a finite value
of the study's first objective, each parameter set once (filtered trials are part of the
landscape: a neighbour that trades too little is a bad neighbour). Parameter values become
*levels*: the distinct values, or for a numeric key with more distinct values than
:func:`max_levels` allows (random / TPE sampling: about three trials per bin, at most
:data:`MAX_LEVELS`) that many quantile bins.

Sensitivity: robust (flat) and fragile (sharp) parameters
---------------------------------------------------------
For each parameter a *profile* of the objective over its levels is drawn through the best set:

* ``others at their best``: the trials whose other parameters sit at the best set's levels (a
  grid gives one trial per level): the classic one-at-a-time slice;
* when that slice has no neighbour of the best level (sampled studies), the *envelope*: the best
  trial at each level, the other parameters free.

The measure is the **neighbour drop**: the mean loss of the objective one level either side of the
best level (every other choice for a categorical key), relative to
``scale = max(|best objective|, objective range over the scored trials)``. A parameter is
**robust** when the drop is at most :data:`ROBUST_DROP` (10 %: one step off, the objective keeps
90 % of its best), **fragile** from :data:`FRAGILE_DROP` (30 %, the degradation flag line of
:mod:`research.overfitting_verdict`), ``moderate`` in between. The full profile range over the
same scale is reported beside it. These thresholds are this project's conventions.

Importance
----------
Two measures, both normalised to sum to 1: Optuna's PED-ANOVA
(:class:`optuna.importance.PedAnovaImportanceEvaluator`, Watanabe et al. 2023, "PED-ANOVA:
Efficiently Quantifying Hyperparameter Importance in Arbitrary Subspaces", IJCAI; no scikit-learn
needed) with ``target_quantile = clip(3 / n_trials, 0.1, 0.5)`` so that at least three trials form
the top group of a small study, and the variance explained by each parameter's levels, the
correlation ratio ``eta^2 = sum_g n_g (mean_g - mean)^2 / sum_i (y_i - mean)^2`` (Pearson 1903).
The pair shown in the heat map and 3-D surface is the top two by PED-ANOVA (by eta^2 when
PED-ANOVA cannot be computed).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from plotly.colors import get_colorscale

from alerts.sinks import MemoryAlertSink
from backtest.replay import run_replay
from research.benchmark import buy_and_hold
from research.frames import closes_series
from research.metrics import daily_returns, drawdown_series
from research.optimize import OBJECTIVES, StudyData, StudyResult, TrialRecord, trial_metrics
from research.overfitting import sample_moments
from research.reports.formatting import NOT_AVAILABLE, fmt_num, fmt_pct, fmt_usd
from research.reports.plotting import (Figure, axis, downsample, figure, log_axis, plot_times,
                                       spans_orders_of_magnitude, typed)
from research.search_space import Dimension, SearchSpace
from research.study_stats import DiscardStore, study_statistics
from research.walk_forward import window_data
from strategies.registry import build_strategy

__all__ = ["FRAGILE_DROP", "MAX_LEVELS", "PERCENT_METRICS", "PLATEAU_TOLERANCE", "ROBUST_DROP", "SURFACE_FILL",
           "TOP_SETS", "Landscape", "Levels", "OverfittingBlock", "PairSurface", "ParameterImportance",
           "ParameterSensitivity", "ParetoView", "Recommendation", "SetReplay", "StudyAnalysis", "WalkForwardFold",
           "WalkForwardView", "analyse_study", "fmt_metric", "heatmap_figure", "importance_figure", "max_levels",
           "overfitting_block", "pair_surface", "parallel_figure", "param_name", "parameter_importance",
           "parameter_sensitivity", "pareto_figure", "pareto_view", "pbo_figure", "pct_tickformat", "recommend",
           "replay_sets", "sensitivity_figure", "study_landscape", "surface_figure", "top_drawdown_figure",
           "top_equity_figure", "verdict_figure", "walk_forward_bars_figure", "walk_forward_equity_figure",
           "walk_forward_steps_figure", "walk_forward_view"]

MAX_LEVELS = 12
"""Most levels per numeric parameter (see :func:`max_levels`); more distinct values go into quantile bins."""
ROBUST_DROP = 0.10
"""Neighbour drop (fraction of the scale) up to which a parameter is called robust."""
FRAGILE_DROP = 0.30
"""Neighbour drop from which a parameter is called fragile."""
PLATEAU_TOLERANCE = 0.02
"""Neighbourhood means this close (a fraction of the scale) to the best count as the same plateau."""
SURFACE_FILL = 0.6
"""Share of the pair's cells with a trial from which the 3-D chart is a surface (below: points)."""
TOP_SETS = 5
"""Parameter sets replayed for the equity and drawdown overlays."""
PERCENT_METRICS = frozenset({"total_return", "cagr", "annual_return", "volatility", "max_drawdown", "win_rate",
                             "exposure"})
"""Metrics that are fractions, shown in percent."""
_RATIO = frozenset({"sharpe", "sortino", "calmar", "profit_factor", "turnover"})
_COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
_BENCHMARK = "#ff7f0e"
_SCALE = get_colorscale("RdYlGn")
_SCALE_REVERSED = [[1.0 - p, c] for p, c in reversed(_SCALE)]


def fmt_metric(name: str, value: Any) -> str:
    """Format a metric by its kind: fractions in %, ratios with 2 decimals, USD, counts.

    Examples
    --------
    >>> fmt_metric("sharpe", 1.2345), fmt_metric("max_drawdown", 0.0123), fmt_metric("trades", 41.0)
    ('1.23', '1.23%', '41')
    >>> fmt_metric("expectancy", 12.5), fmt_metric("sharpe", None)
    ('$12.50', 'n/a')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_AVAILABLE
    if name in PERCENT_METRICS:
        return fmt_pct(float(value))
    if name == "expectancy":
        return fmt_usd(float(value))
    if name == "trades":
        return f"{int(value)}"
    return fmt_num(float(value))


def pct_tickformat(values: Any) -> str:
    """A plotly percent tick format with enough decimals for ``values`` (fractions).

    Examples
    --------
    >>> pct_tickformat([0.006, 0.011]), pct_tickformat([0.05, 0.4]), pct_tickformat([])
    ('.2%', '.1%', '.1%')
    """
    data = np.asarray(values, dtype=float).ravel()
    data = data[np.isfinite(data)]
    if not len(data):
        return ".1%"
    span = float(data.max() - data.min()) or abs(float(data.max()))
    return ".2%" if span < 0.05 else ".1%" if span < 0.5 else ".0%"


def param_name(key: str) -> str:
    """The display name of a space key: ``"params.fast"`` -> ``"fast"`` (risk./fill. keep theirs).

    Examples
    --------
    >>> param_name("params.fast"), param_name("risk.risk_per_trade"), param_name("timeframe")
    ('fast', 'risk.risk_per_trade', 'timeframe')
    """
    return key.removeprefix("params.")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(float(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# --- the landscape -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Levels:
    """The levels of one parameter over the scored trials.

    Attributes
    ----------
    key
        Space key (``"params.fast"``).
    numeric
        True for numbers (levels ordered by value), False for categorical choices.
    labels
        Display text per level (``"10"``, ``"12.5-17"`` for a bin, ``"4h"``).
    centres
        A value per level: the distinct value, or the median of the values in a bin.
    edges
        Inner bin edges when binned (``len(labels) - 1`` of them), else empty.
    """

    key: str
    numeric: bool
    labels: tuple[str, ...]
    centres: tuple[Any, ...]
    edges: tuple[float, ...] = ()

    @property
    def binned(self) -> bool:
        return bool(self.edges)

    def index(self, value: Any) -> int:
        """Level of ``value`` (ValueError when it is not one of the values seen)."""
        if self.binned:
            return int(np.searchsorted(np.asarray(self.edges), float(value), side="right"))
        for k, centre in enumerate(self.centres):
            if centre == value:
                return k
        raise ValueError(f"{self.key}: value {value!r} is not one of the levels {list(self.labels)}")


def max_levels(n_trials: int) -> int:
    """Most levels of a numeric parameter over ``n_trials`` scored trials: ``min(MAX_LEVELS,
    max(4, n_trials // 3))``, so a sampled study's bins hold about three trials each. A stepped
    parameter with at most :data:`MAX_LEVELS` values in the space keeps every value.

    Examples
    --------
    >>> max_levels(8), max_levels(30), max_levels(500)
    (4, 10, 12)
    """
    return min(MAX_LEVELS, max(4, n_trials // 3))


def _levels(key: str, values: Sequence[Any], dim: Dimension | None) -> Levels:
    if values and all(_is_number(v) for v in values):
        distinct = sorted(set(float(v) if isinstance(v, (float, np.floating)) else int(v) for v in values))
        limit = max_levels(len(values))
        stepped = dim is not None and dim.kind != "categorical" and (dim.kind == "int" or dim.step is not None)
        if stepped and dim is not None and dim.low is not None and dim.high is not None:
            step = float(dim.step or 1)
            if (float(dim.high) - float(dim.low)) / step + 1 <= MAX_LEVELS:
                limit = MAX_LEVELS  # a few stepped values: keep each one, as the space names them
        if len(distinct) <= limit:
            return Levels(key, True, tuple(_show(v) for v in distinct), tuple(distinct))
        data = np.asarray(values, dtype=float)
        edges = np.unique(np.quantile(data, np.linspace(0.0, 1.0, limit + 1)))
        inner = edges[1:-1]
        codes = np.searchsorted(inner, data, side="right")
        labels, centres = [], []
        bounds = [float(data.min()), *inner.tolist(), float(data.max())]
        for k in range(len(inner) + 1):
            labels.append(f"{bounds[k]:.3g}-{bounds[k + 1]:.3g}")
            members = data[codes == k]
            centres.append(float(np.median(members)) if len(members) else (bounds[k] + bounds[k + 1]) / 2)
        return Levels(key, True, tuple(labels), tuple(centres), tuple(float(e) for e in inner))
    seen = list(dict.fromkeys(values))
    order = list(dim.choices) if dim is not None and dim.kind == "categorical" else sorted(seen, key=str)
    ordered = [c for c in order if c in seen] + [v for v in seen if v not in order]
    return Levels(key, False, tuple(str(v) for v in ordered), tuple(ordered))


@dataclass(frozen=True)
class Landscape:
    """The scored trials of a study on their parameter levels.

    Attributes
    ----------
    objective, direction
        The study's first objective and ``"maximize"`` / ``"minimize"``.
    keys
        The searched space keys, in space order.
    trials
        Scored trials (see the module docstring), each parameter set once, in trial order.
    values
        Shape (n_trials,): the objective of each trial, in its own unit.
    levels
        Space key -> :class:`Levels`.
    codes
        Shape (n_trials, n_keys): level index of each trial's value of each key.
    best
        Row of the study's best set (``result.best``; the best scored trial when no trial
        passed the filters), None without scored trials.
    """

    objective: str
    direction: str
    keys: list[str]
    trials: list[TrialRecord]
    values: np.ndarray
    levels: dict[str, Levels]
    codes: np.ndarray
    best: int | None

    @property
    def sign(self) -> float:
        """+1 when higher is better, -1 when lower is better."""
        return 1.0 if self.direction == "maximize" else -1.0

    @property
    def goodness(self) -> np.ndarray:
        """``sign * values``: higher is better whatever the direction."""
        return self.sign * self.values

    @property
    def scale(self) -> float:
        """``max(|best objective|, objective range)``: the unit of the sensitivity measures."""
        if self.best is None or not len(self.values):
            return 1.0
        spread = float(self.values.max() - self.values.min())
        return max(abs(float(self.values[self.best])), spread, 1e-12)


def study_landscape(result: StudyResult) -> Landscape:
    """Return the :class:`Landscape` of ``result`` over its first objective.

    Examples
    --------
    A study with no scored trial has an empty landscape:

    >>> from research.optimize import TrialFilters
    >>> from research.search_space import parse_space
    >>> from backtest.spec import RunSpec
    >>> space = parse_space({"params": {"fast": {"type": "int", "low": 5, "high": 10, "step": 5}}}, strategy="sma_cross")
    >>> empty = StudyResult("s", "grid", "sma_cross", ("sharpe",), ("maximize",), TrialFilters(), space, RunSpec(),
    ...                     [], [], [], 2, 0, 0, 0, 0, 0.0, 0.0, ("", ""), "1h", 1, False)
    >>> study_landscape(empty).best is None
    True
    """
    objective, direction = result.objectives[0], result.directions[0]
    keys = list(result.space.keys)
    seen: set[str] = set()
    trials: list[TrialRecord] = []
    for t in result.trials:
        if t.status not in ("complete", "filtered") or t.metrics is None or not _finite(t.metrics.get(objective)):
            continue
        signature = repr(sorted((k, t.params.get(k)) for k in keys))
        if signature in seen:
            continue
        seen.add(signature)
        trials.append(t)
    dims = {d.key: d for d in result.space.dimensions}
    levels = {k: _levels(k, [t.params.get(k) for t in trials], dims.get(k)) for k in keys}
    codes = np.array([[levels[k].index(t.params.get(k)) for k in keys] for t in trials], dtype=np.int64)
    codes = codes.reshape(len(trials), len(keys))
    values = np.array([float(t.metrics[objective]) for t in trials if t.metrics is not None], dtype=float)
    best: int | None = None
    if trials:
        if result.best is not None:
            wanted = repr(sorted((k, result.best.params.get(k)) for k in keys))
            best = next((i for i, t in enumerate(trials)
                         if repr(sorted((k, t.params.get(k)) for k in keys)) == wanted), None)
        if best is None:
            best = int(np.argmax((1.0 if direction == "maximize" else -1.0) * values))
    return Landscape(objective, direction, keys, trials, values, levels, codes, best)


# --- sensitivity ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParameterSensitivity:
    """How the objective moves along one parameter through the best set.

    Attributes
    ----------
    key, name
        Space key and display name.
    labels
        Level labels (x axis).
    profile
        Objective per level along the chosen ``basis`` (None where no trial), objective units.
    marginal_mean, marginal_low, marginal_high
        Mean, lowest and highest objective per level over every scored trial (others free).
    counts
        Scored trials per level.
    best_level
        Level of the best set.
    basis
        ``"others at their best"`` or ``"best per level (others free)"``.
    neighbour_drop
        Mean loss one level either side of the best, a fraction of :attr:`Landscape.scale`
        (None without a neighbour).
    range_drop
        ``(best - worst)`` of the profile over the same scale.
    verdict
        ``"robust"``, ``"moderate"``, ``"fragile"`` or ``"undetermined"``.
    numeric
        Whether the levels are numbers (a line) or choices.
    """

    key: str
    name: str
    labels: tuple[str, ...]
    profile: list[float | None]
    marginal_mean: list[float | None]
    marginal_low: list[float | None]
    marginal_high: list[float | None]
    counts: list[int]
    best_level: int
    basis: str
    neighbour_drop: float | None
    range_drop: float | None
    verdict: str
    numeric: bool

    def describe(self, objective: str) -> str:
        """One sentence a trader reads: the verdict and the numbers behind it."""
        if self.neighbour_drop is None:
            return f"{self.name}: undetermined (no trial next to the best value {self.labels[self.best_level]})"
        best = self.profile[self.best_level]
        return (f"{self.name}: {self.verdict} - one step from {self.labels[self.best_level]} the {objective} "
                f"loses {100 * self.neighbour_drop:.0f}% of scale (best {fmt_metric(objective, best)}; "
                f"full range {100 * (self.range_drop or 0):.0f}%; {self.basis})")


def _neighbours(k: int, profile: Sequence[float | None], numeric: bool) -> list[int]:
    present = [i for i, v in enumerate(profile) if v is not None and i != k]
    if not numeric:
        return present
    below = [i for i in present if i < k]
    above = [i for i in present if i > k]
    return ([below[-1]] if below else []) + ([above[0]] if above else [])


def parameter_sensitivity(land: Landscape) -> list[ParameterSensitivity]:
    """Return the sensitivity of every parameter (see the module docstring for the measure).

    Returns an empty list for a landscape without a best set.
    """
    out: list[ParameterSensitivity] = []
    if land.best is None:
        return out
    good = land.goodness
    best_codes = land.codes[land.best]
    scale = land.scale
    for j, key in enumerate(land.keys):
        lv = land.levels[key]
        n_levels = len(lv.labels)
        col = land.codes[:, j]
        others = np.ones(len(land.trials), dtype=bool)
        for jj in range(len(land.keys)):
            if jj != j:
                others &= land.codes[:, jj] == best_codes[jj]
        counts = [int((col == k).sum()) for k in range(n_levels)]

        def per_level(mask: np.ndarray, how: str) -> list[float | None]:
            row: list[float | None] = []
            for k in range(n_levels):
                sel = good[mask & (col == k)]
                if not len(sel):
                    row.append(None)
                    continue
                value = {"best": sel.max(), "mean": sel.mean(), "low": sel.min(), "high": sel.max()}[how]
                row.append(float(value))
            return row

        best_level = int(best_codes[j])
        sliced = per_level(others, "best")
        basis = "others at their best"
        profile_good = sliced
        if not _neighbours(best_level, sliced, lv.numeric):
            profile_good = per_level(np.ones(len(land.trials), dtype=bool), "best")
            basis = "best per level (others free)"
        nbs = _neighbours(best_level, profile_good, lv.numeric)
        centre = profile_good[best_level]
        drop = range_drop = None
        verdict = "undetermined"
        if nbs and centre is not None:
            drop = float(np.mean([centre - (profile_good[i] or 0.0) for i in nbs])) / scale
            verdict = "robust" if drop <= ROBUST_DROP else "fragile" if drop >= FRAGILE_DROP else "moderate"
        present = [v for v in profile_good if v is not None]
        if len(present) > 1:
            range_drop = (max(present) - min(present)) / scale

        def back(row: list[float | None]) -> list[float | None]:
            return [None if v is None else land.sign * v for v in row]

        low, high = per_level(np.ones(len(land.trials), dtype=bool), "low"), \
            per_level(np.ones(len(land.trials), dtype=bool), "high")
        if land.sign < 0:  # in objective units the lowest goodness is the highest value
            low, high = high, low
        out.append(ParameterSensitivity(
            key=key, name=param_name(key), labels=lv.labels, profile=back(profile_good),
            marginal_mean=back(per_level(np.ones(len(land.trials), dtype=bool), "mean")),
            marginal_low=back(low), marginal_high=back(high), counts=counts, best_level=best_level, basis=basis,
            neighbour_drop=drop, range_drop=range_drop, verdict=verdict, numeric=lv.numeric))
    return out


# --- importance ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParameterImportance:
    """Importance of one parameter; both measures sum to 1 over the parameters.

    Attributes
    ----------
    key, name
        Space key and display name.
    ped_anova
        Optuna PED-ANOVA importance, None when it could not be computed.
    eta_squared
        Share of the objective's variance explained by the parameter's levels (normalised).
    """

    key: str
    name: str
    ped_anova: float | None
    eta_squared: float


def _distribution(dim: Dimension) -> BaseDistribution:
    if dim.kind == "categorical":
        return CategoricalDistribution(dim.choices)
    assert dim.low is not None and dim.high is not None
    if dim.kind == "int":
        return IntDistribution(int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log)
    return FloatDistribution(float(dim.low), float(dim.high), step=None if dim.log else dim.step, log=dim.log)


def _ped_anova(land: Landscape, space: SearchSpace) -> tuple[dict[str, float] | None, str]:
    """PED-ANOVA importances (None and why when they cannot be computed)."""
    n = len(land.trials)
    varied = [k for k in land.keys if len(land.levels[k].labels) > 1]
    if n < 4 or not varied:
        return None, f"PED-ANOVA needs at least 4 scored trials and a varied parameter ({n} trials)"
    dims = {d.key: d for d in space.dimensions}
    distributions = {k: _distribution(dims[k]) for k in land.keys if k in dims}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line per report
    try:
        study = optuna.create_study(direction="maximize" if land.direction == "maximize" else "minimize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    for trial, value in zip(land.trials, land.values):
        params = {k: trial.params[k] for k in distributions if k in trial.params}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=float(value)))
    quantile = min(0.5, max(0.1, 3.0 / n))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile)
            found = optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=True)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        return None, f"PED-ANOVA failed: {exc}"
    if not found or not all(math.isfinite(v) for v in found.values()):
        return None, "PED-ANOVA gave no finite importance"
    return {k: float(found.get(k, 0.0)) for k in land.keys}, f"PED-ANOVA, target quantile {quantile:.2f}"


def parameter_importance(land: Landscape, space: SearchSpace) -> tuple[list[ParameterImportance], str]:
    """Return the importance of each parameter, most important first, and a note on the method.

    Ordered by PED-ANOVA when it was computed, else by eta^2 (see the module docstring).
    """
    if not land.trials or not land.keys:
        return [], "no scored trial"
    y = land.goodness
    total = float(((y - y.mean()) ** 2).sum())
    eta: dict[str, float] = {}
    for j, key in enumerate(land.keys):
        col = land.codes[:, j]
        between = sum(float((col == k).sum()) * (float(y[col == k].mean()) - float(y.mean())) ** 2
                      for k in np.unique(col))
        eta[key] = between / total if total > 0 else 0.0
    eta_total = sum(eta.values())
    ped, note = _ped_anova(land, space)
    items = [ParameterImportance(k, param_name(k), None if ped is None else ped[k],
                                 eta[k] / eta_total if eta_total > 0 else 0.0) for k in land.keys]
    items.sort(key=lambda p: -(p.ped_anova if p.ped_anova is not None else p.eta_squared))
    return items, note


# --- the most important pair ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PairSurface:
    """The objective over two parameters: the best trial in each cell (the others free).

    Attributes
    ----------
    x_key, y_key
        Space keys of the two axes.
    x, y
        Their :class:`Levels`.
    z
        Shape (len(y levels), len(x levels)): best objective in each cell, NaN where no trial.
    counts
        Same shape: scored trials per cell.
    best_cell
        ``(y index, x index)`` of the study's best set.
    """

    x_key: str
    y_key: str
    x: Levels
    y: Levels
    z: np.ndarray
    counts: np.ndarray
    best_cell: tuple[int, int]


def pair_surface(land: Landscape, x_key: str, y_key: str) -> PairSurface:
    """Return the :class:`PairSurface` of two parameters of ``land`` (which must have a best set)."""
    if land.best is None:
        raise ValueError("pair_surface: the landscape has no scored trial")
    jx, jy = land.keys.index(x_key), land.keys.index(y_key)
    x, y = land.levels[x_key], land.levels[y_key]
    z = np.full((len(y.labels), len(x.labels)), np.nan)
    counts = np.zeros(z.shape, dtype=np.int64)
    good = land.goodness
    for i in range(len(land.trials)):
        cy, cx = int(land.codes[i, jy]), int(land.codes[i, jx])
        counts[cy, cx] += 1
        if np.isnan(z[cy, cx]) or good[i] > land.sign * z[cy, cx]:
            z[cy, cx] = land.values[i]
    return PairSurface(x_key, y_key, x, y, z, counts,
                       (int(land.codes[land.best, jy]), int(land.codes[land.best, jx])))


# --- Pareto front --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParetoView:
    """Two objectives of the scored trials and their non-dominated set.

    Attributes
    ----------
    metrics, directions
        The two metric names and their directions.
    optimized
        True when both are objectives of the study (a multi-objective study); False when the
        study optimised one and the front shows its trade-off with a risk measure.
    points
        Shape (n, 2): the two metrics per trial (rows of ``trials``).
    trials
        The trials with both metrics finite.
    front
        Rows on the front, ordered by the first metric.
    """

    metrics: tuple[str, str]
    directions: tuple[str, str]
    optimized: bool
    points: np.ndarray
    trials: list[TrialRecord]
    front: list[int]


def pareto_view(result: StudyResult, land: Landscape) -> ParetoView:
    """Return the front of the study's first two objectives, or for one objective its trade-off
    with ``max_drawdown`` (with ``total_return`` when the objective is a drawdown or volatility)."""
    if len(result.objectives) > 1:
        metrics = (result.objectives[0], result.objectives[1])
        directions = (result.directions[0], result.directions[1])
        optimized = True
    else:
        second = "total_return" if result.objectives[0] in ("max_drawdown", "volatility") else "max_drawdown"
        metrics = (result.objectives[0], second)
        directions = (result.directions[0], OBJECTIVES[second])
        optimized = False
    trials = [t for t in land.trials if t.metrics is not None and all(_finite(t.metrics.get(m)) for m in metrics)]
    points = np.array([[float(t.metrics[m]) for m in metrics] for t in trials if t.metrics is not None],
                      dtype=float).reshape(len(trials), 2)
    signs = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    good = points * signs
    dominated = np.zeros(len(trials), dtype=bool)
    for low in range(0, len(trials), 512):  # row blocks: memory stays O(512 x n) for big studies
        block = good[low:low + 512, None, :]
        dominated[low:low + 512] = ((good[None, :, :] >= block).all(axis=2)
                                    & (good[None, :, :] > block).any(axis=2)).any(axis=1)
    front = sorted(np.flatnonzero(~dominated).tolist(), key=lambda i: points[i, 0])
    return ParetoView(metrics, directions, optimized, points, trials, front)


# --- top sets replayed ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SetReplay:
    """One parameter set replayed on the study's bars.

    Attributes
    ----------
    rank
        1-based rank in ``result.ranked``.
    trial
        The trial it reproduces.
    equity
        Equity in USD per bar end (UTC index).
    drawdown
        Fraction <= 0 from the running peak, same index.
    metrics
        :func:`research.optimize.trial_metrics` of the replay (the same figures as the trial's).
    returns
        Daily returns behind the Sharpe ratio (:func:`research.metrics.daily_returns`).
    periods_per_year
        Daily returns per year of this curve (as :func:`research.metrics.compute_metrics` infers it).
    closes
        Close per symbol at bar end (for the buy-and-hold benchmark).
    """

    rank: int
    trial: TrialRecord
    equity: pd.Series
    drawdown: pd.Series
    metrics: dict[str, Any]
    returns: pd.Series
    periods_per_year: float
    closes: dict[str, pd.Series] = field(repr=False)


def replay_sets(result: StudyResult, data: StudyData, n: int = TOP_SETS) -> list[SetReplay]:
    """Replay the ``n`` best ranked sets of ``result`` on ``data`` with :func:`run_replay`.

    Parameters
    ----------
    result
        The study.
    data
        The bars the study ran on (:class:`research.optimize.StudyData`).
    n
        How many sets, best first.

    Returns
    -------
    list[SetReplay]
        At most ``n``; fewer when fewer sets were ranked.

    Raises
    ------
    ValueError
        If a replay's metrics differ from the trial's recorded ones (the data are not the
        study's): the overlays would show another run than the tables.
    """
    out: list[SetReplay] = []
    for rank, trial in enumerate(result.ranked[:n], start=1):
        setup = result.space.apply(result.base, trial.params)
        strategy = build_strategy(setup.spec.strategy, setup.spec.params)
        spec = setup.spec.model_copy(update={"params": strategy.params.model_dump(mode="json")})
        replay = run_replay(data.get(setup.timeframe), spec, store=DiscardStore(), alerts=MemoryAlertSink(),
                            run_id=f"report-{trial.number}")
        metrics = trial_metrics(replay)
        recorded = (trial.metrics or {}).get("trades")
        if recorded is not None and metrics.get("trades") != recorded:
            raise ValueError(f"replay of trial {trial.number} ({trial.params}) made {metrics.get('trades')} trades, the "
                             f"study recorded {recorded}: pass the StudyData the study ran on")
        index = pd.to_datetime(replay.equity_ts, unit="ns", utc=True)
        equity = pd.Series(replay.equity, index=index, name=f"rank {rank}")
        returns = daily_returns(equity)
        years = (index[-1] - index[0]) / pd.Timedelta(days=365.25) if len(index) > 1 else 0.0
        ppy = len(returns) / years if len(returns) >= 2 and years > 2 / 365.25 else 252.0
        out.append(SetReplay(rank, trial, equity, drawdown_series(equity), metrics, returns, float(ppy),
                             closes_series(replay, index)))
    return out


# --- overfitting statistics ----------------------------------------------------------------------------

def _pick(source: Any, *names: str) -> Any:
    """The first of ``names`` found as a mapping key or an attribute of ``source`` (None if none)."""
    if source is None:
        return None
    for name in names:
        if isinstance(source, Mapping):
            if name in source and source[name] is not None:
                return source[name]
        elif getattr(source, name, None) is not None:
            return getattr(source, name)
    return None


def _as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if not math.isnan(number) else None


@dataclass(frozen=True)
class OverfittingBlock:
    """The overfitting statistics a report shows (read from a :func:`research.study_stats.study_statistics` dict).

    Attributes
    ----------
    source
        ``"study"`` or ``"walk_forward"`` (the statistics' ``kind``), or ``"not computed"``.
    psr
        Probabilistic Sharpe ratio of the judged series against 0 (Bailey & López de Prado 2012).
    dsr
        Deflated Sharpe ratio (Bailey & López de Prado 2014) over ``n_trials`` trials whose
        per-period Sharpe ratios have variance ``sr_variance``.
    n_trials, sr_variance
        Inputs of the DSR.
    min_trl, min_trl_years, have_obs
        Minimum track record length at 95 % (daily observations, years) and the observations there are.
    sharpe, sharpe_period, skew, kurtosis, n_obs
        The judged series: annualised and per-period Sharpe ratio, skewness, ordinary kurtosis, days.
    pbo, pbo_splits, pbo_combinations, prob_oos_loss, degradation_slope
        Probability of backtest overfitting by CSCV (Bailey, Borwein, López de Prado, Zhu 2017), its
        blocks S and C(S, S/2) combinations, the probability of an OOS loss, and the slope of OOS
        on IS performance over the combinations.
    logits, is_performance, oos_performance
        Per CSCV combination: the logit of the IS-best trial's OOS relative rank, and its IS and
        OOS Sharpe ratio (per period).
    degradation_source
        Where the IS/OOS comparison of the verdict comes from (``cscv``, ``holdout``, ``walk_forward``).
    oos_dsr
        Walk-forward only: the stitched OOS Sharpe deflated over the re-optimization steps compared.
    basis
        What each walk-forward number is of (from the statistics).
    folds
        Walk-forward only: per fold ``fold``, ``psr``, ``dsr``, ``pbo``, ``tried``, ``verdict_score``.
    verdict
        The verdict dict (:meth:`research.overfitting_verdict.OverfittingVerdict.to_dict`) or object.
    notes
        What is missing and why.
    """

    source: str
    psr: float | None = None
    dsr: float | None = None
    n_trials: int | None = None
    sr_variance: float | None = None
    min_trl: float | None = None
    min_trl_years: float | None = None
    have_obs: int | None = None
    sharpe: float | None = None
    sharpe_period: float | None = None
    skew: float | None = None
    kurtosis: float | None = None
    n_obs: int | None = None
    pbo: float | None = None
    pbo_splits: int | None = None
    pbo_combinations: int | None = None
    prob_oos_loss: float | None = None
    degradation_slope: float | None = None
    logits: tuple[float, ...] = ()
    is_performance: tuple[float, ...] = ()
    oos_performance: tuple[float, ...] = ()
    degradation_source: str | None = None
    oos_dsr: float | None = None
    basis: dict[str, str] = field(default_factory=dict)
    folds: tuple[dict[str, Any], ...] = ()
    verdict: Any = None
    notes: tuple[str, ...] = ()

    @property
    def score(self) -> float | None:
        return _as_float(_pick(self.verdict, "score"))

    @property
    def level(self) -> str | None:
        level = _pick(self.verdict, "level")
        return None if level is None else str(level)

    def parts(self) -> list[dict[str, Any]]:
        """The verdict's parts as dicts (name, weight, severity, points, flagged, detail, remedy)."""
        return [{k: _pick(part, k) for k in ("name", "weight", "severity", "points", "flagged", "detail", "remedy")}
                for part in _pick(self.verdict, "parts") or ()]

    def degradations(self) -> list[dict[str, Any]]:
        """The verdict's per-metric IS/OOS comparison as dicts (metric, in_sample, out_of_sample,
        lower_is_better, degradation, flagged)."""
        return [{k: _pick(item, k) for k in ("metric", "in_sample", "out_of_sample", "lower_is_better", "degradation",
                                             "flagged")}
                for item in _pick(self.verdict, "degradations") or ()]

    def flags(self) -> list[str]:
        return [str(f) for f in _pick(self.verdict, "flags") or ()]

    def remedy(self) -> str | None:
        remedy = _pick(self.verdict, "remedy")
        return None if remedy is None else str(remedy)


def _int(value: Any) -> int | None:
    number = _as_float(value)
    return None if number is None or not math.isfinite(number) else int(number)


def _floats(value: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in (value or ()) if _finite(v))


def overfitting_block(statistics: Any) -> OverfittingBlock:
    """Return the statistics block of ``statistics``: the dict of
    :func:`research.study_stats.study_statistics` (any mapping or object with its keys), or None
    for a block that says it was not computed.

    Keys read: ``kind``, ``psr``, ``dsr``, ``pbo``, ``min_trl`` (``observations``, ``years``,
    ``have_observations``), ``best`` (``sharpe``, ``sharpe_per_period``, ``skew``, ``kurtosis``,
    ``n_obs``), ``trials`` (``tried``, ``sharpe_variance_per_period``), ``pbo_detail``
    (:meth:`research.overfitting.PBOResult.to_dict`), ``degradation`` (``source``), ``oos_dsr``,
    ``basis``, ``folds``, ``verdict``, ``notes``.

    Examples
    --------
    >>> overfitting_block(None).source
    'not computed'
    >>> block = overfitting_block({"kind": "study", "psr": 0.97, "pbo": 0.2, "verdict": {"score": 18.0, "level": "low"}})
    >>> block.psr, block.pbo, block.score, block.level
    (0.97, 0.2, 18.0, 'low')
    """
    if statistics is None:
        return OverfittingBlock("not computed", notes=(
            "no overfitting statistics: pass statistics=research.study_stats.study_statistics(result, data)",))
    best = _pick(statistics, "best")
    trials = _pick(statistics, "trials")
    trl = _pick(statistics, "min_trl")
    detail = _pick(statistics, "pbo_detail")
    degradation = _pick(statistics, "degradation")
    trl_obs = _as_float(_pick(trl, "observations")) if isinstance(trl, Mapping) else _as_float(trl)
    if trl_obs is None:
        trl_obs = _as_float(_pick(best, "min_trl_obs"))
    trl_years = _as_float(_pick(trl, "years")) if isinstance(trl, Mapping) else None
    if trl_years is None:
        trl_years = _as_float(_pick(best, "min_trl_years"))
    basis = _pick(statistics, "basis")
    notes = _pick(statistics, "notes")
    return OverfittingBlock(
        source=str(_pick(statistics, "kind") or "study"), psr=_as_float(_pick(statistics, "psr")),
        dsr=_as_float(_pick(statistics, "dsr")), n_trials=_int(_pick(trials, "tried")),
        sr_variance=_as_float(_pick(trials, "sharpe_variance_per_period")), min_trl=trl_obs, min_trl_years=trl_years,
        have_obs=_int(_pick(trl, "have_observations")) if isinstance(trl, Mapping) else None,
        sharpe=_as_float(_pick(best, "sharpe")), sharpe_period=_as_float(_pick(best, "sharpe_per_period")),
        skew=_as_float(_pick(best, "skew")), kurtosis=_as_float(_pick(best, "kurtosis")),
        n_obs=_int(_pick(best, "n_obs")), pbo=_as_float(_pick(statistics, "pbo")),
        pbo_splits=_int(_pick(detail, "n_splits")), pbo_combinations=_int(_pick(detail, "n_combinations")),
        prob_oos_loss=_as_float(_pick(detail, "prob_oos_loss")),
        degradation_slope=_as_float(_pick(detail, "degradation_slope")), logits=_floats(_pick(detail, "logits")),
        is_performance=_floats(_pick(detail, "is_performance")),
        oos_performance=_floats(_pick(detail, "oos_performance")),
        degradation_source=None if _pick(degradation, "source") is None else str(_pick(degradation, "source")),
        oos_dsr=_as_float(_pick(statistics, "oos_dsr")),
        basis={str(k): str(v) for k, v in basis.items()} if isinstance(basis, Mapping) else {},
        folds=tuple(dict(f) for f in (_pick(statistics, "folds") or ()) if isinstance(f, Mapping)),
        verdict=_pick(statistics, "verdict"),
        notes=tuple(str(n) for n in notes) if isinstance(notes, (list, tuple)) else ())


# --- walk-forward ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WalkForwardFold:
    """One walk-forward fold as the report shows it.

    Attributes
    ----------
    number
        1-based fold number, in time order.
    train_start, train_end, test_start, test_end
        Window bounds, UTC.
    status
        ``"ok"``, or why the fold stayed in cash.
    params
        The parameters chosen in the training window (empty without a ranked trial).
    in_sample, out_of_sample
        Metrics of those parameters in the training and the test window.
    degradation
        Metric -> ``(IS - OOS) / |IS|`` (positive = OOS worse), as the walk-forward computed it.
    efficiency
        OOS CAGR / IS CAGR of the fold.
    """

    number: int
    train_start: pd.Timestamp | None
    train_end: pd.Timestamp | None
    test_start: pd.Timestamp | None
    test_end: pd.Timestamp | None
    status: str
    params: dict[str, Any]
    in_sample: dict[str, Any]
    out_of_sample: dict[str, Any]
    degradation: dict[str, Any]
    efficiency: float | None


@dataclass(frozen=True)
class WalkForwardView:
    """A walk-forward result (:class:`research.walk_forward.WalkForwardResult`) as the report reads it.

    Attributes
    ----------
    folds
        The folds in time order.
    oos_equity, oos_metrics
        Stitched out-of-sample equity in USD (UTC index) and its metrics.
    benchmark, benchmark_label, benchmark_metrics
        Buy-and-hold over the same index, its name and metrics (None when absent).
    efficiency, sharpe_efficiency
        Walk-forward efficiency (mean OOS over mean IS CAGR, Pardo 2008) and the same of Sharpe ratios.
    profitable_share
        Fraction of folds whose test window made money.
    stability
        :func:`research.walk_forward.parameter_stability` of the chosen sets.
    steps
        Per compared re-optimization step: ``step``, ``folds``, ``oos_metrics``, ``efficiency``,
        ``profitable_share``, ``oos_equity``.
    best_step
        The step that did best on the first objective, when steps were compared.
    regime
        ``symbol``, ``oos_metrics``, ``single_metrics``, ``better``, ``oos_equity`` of the
        regime-aware variant, when run.
    settings
        ``train``, ``test``, ``step``, ``anchored`` as given.
    """

    folds: list[WalkForwardFold]
    oos_equity: pd.Series | None
    oos_metrics: dict[str, Any]
    benchmark: pd.Series | None
    benchmark_label: str
    benchmark_metrics: dict[str, Any]
    efficiency: float | None
    sharpe_efficiency: float | None
    profitable_share: float | None
    stability: dict[str, Any]
    steps: list[dict[str, Any]]
    best_step: str | None
    regime: dict[str, Any] | None
    settings: dict[str, Any]


def _timestamp(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return pd.Timestamp(int(value), unit="ns", tz="UTC")
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _metrics_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "to_dict"):
        return dict(value.to_dict())
    return dict(vars(value))


def _series(value: Any) -> pd.Series | None:
    if value is None:
        return None
    series = pd.Series(value, dtype=float)
    if not len(series):
        return None
    index = pd.DatetimeIndex(series.index)
    series.index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return series.dropna()


def walk_forward_view(walk_forward: Any) -> WalkForwardView:
    """Read a :class:`research.walk_forward.WalkForwardResult` (or an object or mapping with its
    fields) into a :class:`WalkForwardView`.

    Fields read: ``folds`` (each ``is_start``, ``is_end``, ``oos_start``, ``oos_end``, ``status``,
    ``params``, ``is_metrics``, ``oos_metrics``, ``degradation``, ``efficiency``), ``oos_equity``,
    ``oos_metrics``, ``benchmark_equity``, ``benchmark_label``, ``benchmark_metrics``,
    ``efficiency``, ``sharpe_efficiency``, ``profitable_share``, ``stability``,
    ``step_comparison``, ``best_step``, ``regime``, ``train``, ``test``, ``step``, ``anchored``.

    Raises
    ------
    ValueError
        If it has no folds.
    """
    raw_folds = list(_pick(walk_forward, "folds") or [])
    if not raw_folds:
        raise ValueError("walk-forward result has no folds (field 'folds')")
    folds = []
    for k, fold in enumerate(raw_folds, start=1):
        folds.append(WalkForwardFold(
            number=k, train_start=_timestamp(_pick(fold, "is_start", "train_start")),
            train_end=_timestamp(_pick(fold, "is_end", "train_end")),
            test_start=_timestamp(_pick(fold, "oos_start", "test_start")),
            test_end=_timestamp(_pick(fold, "oos_end", "test_end")),
            status=str(_pick(fold, "status") or "ok"), params=dict(_pick(fold, "params") or {}),
            in_sample=_metrics_dict(_pick(fold, "is_metrics", "in_sample")),
            out_of_sample=_metrics_dict(_pick(fold, "oos_metrics", "out_of_sample")),
            degradation=_metrics_dict(_pick(fold, "degradation")),
            efficiency=_as_float(_pick(fold, "efficiency"))))
    steps = []
    for item in _pick(walk_forward, "step_comparison") or ():
        steps.append({"step": str(_pick(item, "step")), "folds": _int(_pick(item, "folds")),
                      "oos_metrics": _metrics_dict(_pick(item, "oos_metrics")),
                      "efficiency": _as_float(_pick(item, "efficiency")),
                      "profitable_share": _as_float(_pick(item, "profitable_share")),
                      "oos_equity": _series(_pick(item, "oos_equity"))})
    raw_regime = _pick(walk_forward, "regime")
    regime = None if raw_regime is None else {
        "symbol": _pick(raw_regime, "symbol"), "oos_metrics": _metrics_dict(_pick(raw_regime, "oos_metrics")),
        "single_metrics": _metrics_dict(_pick(raw_regime, "single_metrics")),
        "better": bool(_pick(raw_regime, "better")), "oos_equity": _series(_pick(raw_regime, "oos_equity"))}
    best_step = _pick(walk_forward, "best_step")
    return WalkForwardView(
        folds=folds, oos_equity=_series(_pick(walk_forward, "oos_equity")),
        oos_metrics=_metrics_dict(_pick(walk_forward, "oos_metrics")),
        benchmark=_series(_pick(walk_forward, "benchmark_equity")),
        benchmark_label=str(_pick(walk_forward, "benchmark_label") or "Buy & hold"),
        benchmark_metrics=_metrics_dict(_pick(walk_forward, "benchmark_metrics")),
        efficiency=_as_float(_pick(walk_forward, "efficiency")),
        sharpe_efficiency=_as_float(_pick(walk_forward, "sharpe_efficiency")),
        profitable_share=_as_float(_pick(walk_forward, "profitable_share")),
        stability=_metrics_dict(_pick(walk_forward, "stability")), steps=steps,
        best_step=None if best_step is None else str(best_step), regime=regime,
        settings={k: _pick(walk_forward, k) for k in ("train", "test", "step", "anchored")})


# --- the recommendation ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recommendation:
    """The configuration the report recommends and how far to trust it.

    Attributes
    ----------
    trial, rank
        The recommended trial and its rank (1 = the study's best).
    params
        Space key -> value.
    strategy_params
        The strategy's full parameters (defaults filled in), as a config file takes them.
    timeframe
        The bar length it trades (None = the data's).
    reason
        Why this set (plateau average against the best's).
    plateau
        Mean objective of the set and its neighbours (every level within one step).
    confidence
        ``"high"``, ``"medium"`` or ``"low"``.
    confidence_reasons
        The facts that set it.
    sharpe_interval
        95 % interval of the annualised Sharpe ratio from the replay's daily returns (standard
        error of Mertens 2002 as used by Bailey & López de Prado 2012:
        ``sqrt((1 - skew*SR + (kurt - 1)/4 * SR^2) / T)``), None without a replay.
    sharpe_obs
        The daily returns ``T`` behind that interval.
    oos_range
        Lowest and highest out-of-sample objective over walk-forward folds, None without one.
    max_drawdown, annual_return
        Of the recommended set's full-period run (fractions).
    """

    trial: TrialRecord
    rank: int
    params: dict[str, Any]
    strategy_params: dict[str, Any]
    timeframe: str | None
    reason: str
    plateau: float | None
    confidence: str
    confidence_reasons: tuple[str, ...]
    sharpe_interval: tuple[float, float] | None
    sharpe_obs: int | None
    oos_range: tuple[float, float] | None
    max_drawdown: float | None
    annual_return: float | None


def _plateau(land: Landscape, row: int) -> float:
    near = np.ones(len(land.trials), dtype=bool)
    for j, key in enumerate(land.keys):
        diff = np.abs(land.codes[:, j] - land.codes[row, j])
        near &= diff <= 1 if land.levels[key].numeric else diff == 0
    return float(land.values[near].mean())


def _row_of(land: Landscape, trial: TrialRecord) -> int | None:
    wanted = repr(sorted((k, trial.params.get(k)) for k in land.keys))
    rows = (i for i, t in enumerate(land.trials) if repr(sorted((k, t.params.get(k)) for k in land.keys)) == wanted)
    return next(rows, None)


def recommend(result: StudyResult, land: Landscape, sensitivity: Sequence[ParameterSensitivity],
              block: OverfittingBlock, replays: Sequence[SetReplay],
              wf: WalkForwardView | None) -> Recommendation | None:
    """Return the recommended configuration, None when no trial was ranked.

    Among the ten best ranked sets, the best ranked one whose neighbourhood (itself and every set
    within one level of it on each numeric parameter, the same choice on categorical ones) has a
    mean objective within :data:`PLATEAU_TOLERANCE` of the scale (:attr:`Landscape.scale`) of the
    best such mean: a plateau is more likely to hold out of sample than a peak, and among sets on
    the plateau the ranking decides. Confidence is ``low`` when any of: overfitting score >= 50, DSR < 0.5, PBO > 0.5, fewer
    than 30 trades, a fragile parameter, at most half the walk-forward folds profitable; ``high``
    when none of those and the score < 25, DSR >= 0.95 and (when given) PBO <= 0.25 and at least
    60 % of folds profitable; else ``medium``. Without a verdict and a DSR it is at most medium.
    """
    if not result.ranked or land.best is None:
        return None
    sign = land.sign
    candidates: list[tuple[int, TrialRecord, float | None]] = []
    for rank, trial in enumerate(result.ranked[:10], start=1):
        row = _row_of(land, trial)
        if row is not None:
            candidates.append((rank, trial, _plateau(land, row)))
    if not candidates:
        candidates = [(1, result.ranked[0], None)]
    best_plateau = max(sign * c[2] for c in candidates if c[2] is not None) if any(
        c[2] is not None for c in candidates) else None
    tolerance = PLATEAU_TOLERANCE * land.scale
    rank, trial, plateau = next(c for c in candidates if best_plateau is None or c[2] is None
                                or sign * c[2] >= best_plateau - tolerance)
    top_plateau = candidates[0][2]
    objective = land.objective
    if rank == 1:
        reason = (f"the best set; its neighbourhood averages {objective} {fmt_metric(objective, plateau)}"
                  if plateau is not None else "the best set")
    else:
        reason = (f"rank {rank} chosen over rank 1: its neighbourhood averages {objective} "
                  f"{fmt_metric(objective, plateau)} against {fmt_metric(objective, top_plateau)} around rank 1 "
                  "(a plateau holds out of sample better than a peak)")
    setup = result.space.apply(result.base, trial.params)
    strategy_params = build_strategy(setup.spec.strategy, setup.spec.params).params.model_dump(mode="json")
    metrics = trial.metrics or {}
    low: list[str] = []
    high_ok: list[str] = []
    score, dsr, pbo = block.score, block.dsr, block.pbo
    if score is not None:
        (low if score >= 50 else high_ok if score < 25 else []).append(
            f"overfitting score {score:.0f}/100 ({block.level})")
    if dsr is not None:
        (low if dsr < 0.5 else high_ok if dsr >= 0.95 else []).append(f"DSR {dsr:.2f}")
    if pbo is not None:
        (low if pbo > 0.5 else high_ok if pbo <= 0.25 else []).append(f"PBO {pbo:.2f}")
    trades = metrics.get("trades")
    if trades is not None and int(trades) < 30:
        low.append(f"only {int(trades)} trades")
    fragile = [s.name for s in sensitivity if s.verdict == "fragile"]
    if fragile:
        low.append(f"fragile parameter(s): {', '.join(fragile)}")
    oos_range = None
    if wf is not None:
        oos = [_as_float(f.out_of_sample.get(objective)) for f in wf.folds]
        finite = [v for v in oos if v is not None and math.isfinite(v)]
        if finite:
            oos_range = (min(finite), max(finite))
        if wf.profitable_share is not None:
            share = wf.profitable_share
            (low if share <= 0.5 else high_ok if share >= 0.6 else []).append(
                f"{100 * share:.0f}% of walk-forward folds profitable")
    needed = 2 + (pbo is not None) + (wf is not None and wf.profitable_share is not None)
    context = [f for f in (f"overfitting score {score:.0f}/100 ({block.level})" if score is not None else None,
                           f"DSR {dsr:.2f}" if dsr is not None else None, f"PBO {pbo:.2f}" if pbo is not None else None)
               if f is not None and f not in low and f not in high_ok]
    if low:
        others = high_ok + context
        confidence, reasons = "low", low + ([f"other checks: {', '.join(others)}"] if others else [])
    elif score is not None and dsr is not None and len(high_ok) >= needed:
        confidence, reasons = "high", high_ok
    else:
        confidence = "medium"
        reasons = context + high_ok + ([] if score is not None and dsr is not None
                                       else ["no overfitting verdict and DSR to confirm it"])
    interval, n_obs = None, None
    replay = next((r for r in replays if r.trial.number == trial.number), None)
    if replay is not None:
        try:
            sr, skew, kurt, n = sample_moments(replay.returns.to_numpy(dtype=float))
            se = math.sqrt(max(1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr, 0.0) / n)
            k = math.sqrt(replay.periods_per_year)
            interval, n_obs = ((sr - 1.96 * se) * k, (sr + 1.96 * se) * k), n
        except ValueError:
            interval = None
    return Recommendation(trial=trial, rank=rank, params=dict(trial.params), strategy_params=strategy_params,
                          timeframe=setup.timeframe, reason=reason, plateau=plateau, confidence=confidence,
                          confidence_reasons=tuple(reasons), sharpe_interval=interval, sharpe_obs=n_obs,
                          oos_range=oos_range,
                          max_drawdown=_as_float(metrics.get("max_drawdown")),
                          annual_return=_as_float(metrics.get("cagr")))


# --- everything at once ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class StudyAnalysis:
    """Everything a study report shows (see :func:`analyse_study`); ``statistics`` is the raw
    statistics the overfitting block was read from."""

    result: StudyResult
    landscape: Landscape
    sensitivity: list[ParameterSensitivity]
    importance: list[ParameterImportance]
    importance_note: str
    pair: PairSurface | None
    pareto: ParetoView
    replays: list[SetReplay]
    benchmark: pd.Series | None
    overfitting: OverfittingBlock
    walk_forward: WalkForwardView | None
    recommendation: Recommendation | None
    notes: tuple[str, ...]
    statistics: Any = None


def analyse_study(result: StudyResult, *, data: StudyData | None = None, walk_forward: Any = None,
                  statistics: Any = None, top: int = TOP_SETS) -> StudyAnalysis:
    """Compute what a study report shows.

    Parameters
    ----------
    result
        The study (:func:`research.optimize.run_study`).
    data
        The bars it ran on; needed to replay the top sets (equity, drawdown, Sharpe interval).
        When ``result`` is the walk-forward's ``final_study``, all the walk-forward's bars may be
        given: they are cut to its ``final_window`` here.
    walk_forward
        A walk-forward result (see :func:`walk_forward_view`), optional.
    statistics
        Overfitting statistics (the dict of :func:`research.study_stats.study_statistics`); when
        None: the walk-forward's ``statistics`` if given, else computed here when ``data`` is
        given (every complete or filtered trial is replayed once for the PBO's return matrix).
    top
        Sets replayed for the overlays.

    Raises
    ------
    ValueError
        If ``walk_forward`` has no folds, or a replay does not reproduce its trial.
    """
    land = study_landscape(result)
    notes: list[str] = []
    sensitivity = parameter_sensitivity(land)
    importance, importance_note = parameter_importance(land, result.space)
    varied = [p.key for p in importance if len(land.levels[p.key].labels) > 1]
    pair = pair_surface(land, varied[0], varied[1]) if len(varied) >= 2 and land.best is not None else None
    if pair is None:
        notes.append("heat map and surface need two parameters with at least two values each")
    raw_final = _pick(walk_forward, "final_study") if walk_forward is not None else None
    window = _pick(walk_forward, "final_window") if walk_forward is not None else None
    if data is not None and raw_final is result and window is not None:
        data = window_data(data, int(window[0]), int(window[1]))  # the final study ran on its training window
    replays = replay_sets(result, data, top) if data is not None else []
    if data is None:
        notes.append("equity overlays need the study's bars (data=StudyData)")
    benchmark = None
    if replays:
        first = replays[0]
        try:
            benchmark = buy_and_hold(first.closes, float(first.equity.iloc[0]), pd.DatetimeIndex(first.equity.index))
        except ValueError as exc:
            notes.append(f"no buy-and-hold benchmark: {exc}")
    wf = walk_forward_view(walk_forward) if walk_forward is not None else None
    if statistics is None and walk_forward is not None:
        statistics = _pick(walk_forward, "statistics")
    if statistics is None and data is not None:
        statistics = study_statistics(result, data)
    block = overfitting_block(statistics)
    recommendation = recommend(result, land, sensitivity, block, replays, wf)
    return StudyAnalysis(result, land, sensitivity, importance, importance_note, pair, pareto_view(result, land),
                         replays, benchmark, block, wf, recommendation, tuple(notes), statistics)


# --- figures --------------------------------------------------------------------------------------------

def _grid_axes(n: int, cols: int, gap: float = 0.06,
               vgap: float = 0.12) -> list[tuple[str, tuple[float, float], tuple[float, float]]]:
    """Axis suffixes and x/y domains of ``n`` subplots on a ``cols``-wide grid; ``vgap`` (a
    fraction of the figure height) below each row leaves room for its tick labels and the next
    row's title."""
    rows = max(1, math.ceil(n / cols))
    out = []
    for i in range(n):
        r, c = divmod(i, cols)
        x = (c / cols + gap / 2, (c + 1) / cols - gap / 2)
        y = (1 - (r + 1) / rows + (vgap if r < rows - 1 else 0.0), 1 - r / rows - (0.06 / rows if r else 0.0))
        out.append(("" if i == 0 else str(i + 1), x, y))
    return out


def sensitivity_figure(analysis: StudyAnalysis) -> Figure:
    """Return one panel per parameter: the profile through the best set (line), the mean over all
    trials per value (dotted), their min-max band and the best value (star); panel titles name
    the verdict and the neighbour drop."""
    items = analysis.sensitivity
    objective = analysis.landscape.objective
    cols = min(3, max(1, len(items)))
    rows = max(1, math.ceil(len(items) / cols))
    long_ticks = any(len(s.labels) * max(len(label) for label in s.labels) > 40 for s in items)
    grid = _grid_axes(len(items), cols, gap=0.06, vgap=(0.3 if long_ticks else 0.14) / rows)
    data: list[dict[str, Any]] = []
    layout: dict[str, Any] = {}
    annotations = []
    colours = {"robust": "#1a9850", "moderate": "#e08214", "fragile": "#d73027", "undetermined": "#777"}
    for k, (s, (suffix, xd, yd)) in enumerate(zip(items, grid)):
        xa, ya = f"x{suffix}", f"y{suffix}"
        x = list(s.labels)
        hover = [f"{s.name}={lab}<br>{objective} {fmt_metric(objective, v)}<br>{n} trials"
                 for lab, v, n in zip(x, s.profile, s.counts)]
        data += [
            {"type": "scatter", "x": x, "y": s.marginal_high, "xaxis": xa, "yaxis": ya, "mode": "lines",
             "line": {"width": 0}, "hoverinfo": "skip", "showlegend": False, "legendgroup": "band"},
            {"type": "scatter", "x": x, "y": s.marginal_low, "xaxis": xa, "yaxis": ya, "mode": "lines",
             "line": {"width": 0}, "fill": "tonexty", "fillcolor": "rgba(31,119,180,0.12)", "hoverinfo": "skip",
             "name": "min-max over all trials", "legendgroup": "band", "showlegend": k == 0},
            {"type": "scatter", "x": x, "y": s.marginal_mean, "xaxis": xa, "yaxis": ya, "mode": "lines+markers",
             "line": {"dash": "dot", "color": "#7f7f7f"}, "marker": {"size": 5}, "name": "mean over all trials",
             "legendgroup": "mean", "showlegend": k == 0, "connectgaps": True,
             "hovertemplate": "mean %{y:.4g}<extra></extra>"},
            {"type": "scatter", "x": x, "y": s.profile, "xaxis": xa, "yaxis": ya,
             "mode": "lines+markers" if s.numeric else "markers", "connectgaps": True,
             "line": {"color": "#1f77b4", "width": 2}, "marker": {"size": 7}, "name": "through the best set",
             "legendgroup": "profile", "showlegend": k == 0, "text": hover, "hovertemplate": "%{text}<extra></extra>"},
            {"type": "scatter", "x": [x[s.best_level]], "y": [s.profile[s.best_level]], "xaxis": xa, "yaxis": ya,
             "mode": "markers", "marker": {"symbol": "star", "size": 15, "color": "#d62728",
                                           "line": {"width": 1, "color": "#333"}},
             "name": "best set", "legendgroup": "best", "showlegend": k == 0,
             "hovertemplate": f"best {s.name}={x[s.best_level]}<extra></extra>"},
        ]
        layout[f"xaxis{suffix}"] = {"domain": list(xd), "anchor": ya, "type": "category",
                                    "title": {"text": s.name}}
        layout[f"yaxis{suffix}"] = {"domain": list(yd), "anchor": xa,
                                    "title": {"text": objective if k % cols == 0 else ""},
                                    **({"tickformat": ".1%"} if objective in PERCENT_METRICS else {})}
        drop = "" if s.neighbour_drop is None else f" (drop {100 * s.neighbour_drop:.0f}%)"
        annotations.append({"text": f"<b>{s.name}</b>: {s.verdict}{drop}", "showarrow": False, "xref": "paper",
                            "yref": "paper", "x": (xd[0] + xd[1]) / 2, "y": yd[1] + 0.01, "xanchor": "center",
                            "yanchor": "bottom", "font": {"color": colours[s.verdict]}})
    fig = figure(data, f"Sensitivity of {objective} to each parameter",
                 height=140 + (360 if long_ticks else 300) * rows,
                 hovermode="closest", annotations=annotations)
    fig["layout"].pop("xaxis")
    fig["layout"].pop("yaxis")
    fig["layout"].update(layout)
    margin = {"l": 60, "r": 20, "t": 110, "b": 50}
    fig["layout"]["margin"] = margin
    plot_height = fig["layout"]["height"] - margin["t"] - margin["b"]
    # the legend above the panel titles (which sit just above each panel)
    fig["layout"]["legend"] = {"orientation": "h", "x": 1, "xanchor": "right", "yanchor": "bottom",
                               "y": 1 + 30 / plot_height}
    return fig


def _scale_for(direction: str) -> list[list[Any]]:
    return [list(p) for p in (_SCALE if direction == "maximize" else _SCALE_REVERSED)]


def heatmap_figure(analysis: StudyAnalysis) -> Figure:
    """Return the heat map of the most important pair: the best objective in each cell (the
    other parameters free), the trial count in the hover, the best set starred."""
    pair = analysis.pair
    if pair is None:
        raise ValueError("heatmap_figure: the analysis has no parameter pair")
    land = analysis.landscape
    objective = land.objective
    z = [[None if math.isnan(v) else float(v) for v in row] for row in pair.z]
    text = [[("" if v is None else fmt_metric(objective, v)) for v in row] for row in z]
    hover = [[f"{param_name(pair.x_key)}={pair.x.labels[i]}, {param_name(pair.y_key)}={pair.y.labels[j]}<br>"
              f"best {objective} {text[j][i] or NOT_AVAILABLE}<br>{int(pair.counts[j, i])} trials"
              for i in range(len(pair.x.labels))] for j in range(len(pair.y.labels))]
    trace = {"type": "heatmap", "x": list(pair.x.labels), "y": list(pair.y.labels), "z": z, "text": text,
             "texttemplate": "%{text}", "customdata": hover, "hovertemplate": "%{customdata}<extra></extra>",
             "colorscale": _scale_for(land.direction), "hoverongaps": False, "xgap": 1, "ygap": 1,
             "colorbar": {"title": {"text": objective}}}
    by, bx = pair.best_cell
    outline = {"type": "rect", "xref": "x", "yref": "y", "x0": bx - 0.5, "x1": bx + 0.5, "y0": by - 0.5,
               "y1": by + 0.5, "line": {"color": "#000", "width": 3}, "name": "best set"}
    return figure([trace], f"{objective}: {param_name(pair.y_key)} x {param_name(pair.x_key)} "
                  "(best trial per cell, other parameters free; outlined: the best set)",
                  axis(param_name(pair.y_key), type="category"), height=max(360, 140 + 34 * len(pair.y.labels)),
                  xaxis=axis(param_name(pair.x_key), type="category"), hovermode="closest", shapes=[outline])


def _numeric_axis(levels: Levels) -> tuple[list[float], dict[str, Any]]:
    if levels.numeric:
        return [float(c) for c in levels.centres], {}
    idx = [float(i) for i in range(len(levels.labels))]
    return idx, {"tickvals": idx, "ticktext": list(levels.labels)}


def surface_figure(analysis: StudyAnalysis) -> Figure:
    """Return the 3-D surface of the same cells as :func:`heatmap_figure` (gaps where no trial)."""
    pair = analysis.pair
    if pair is None:
        raise ValueError("surface_figure: the analysis has no parameter pair")
    land = analysis.landscape
    x, xticks = _numeric_axis(pair.x)
    y, yticks = _numeric_axis(pair.y)
    z = [[None if math.isnan(v) else float(v) for v in row] for row in pair.z]
    hover = (f"{param_name(pair.x_key)}=%{{x}}<br>{param_name(pair.y_key)}=%{{y}}<br>"
             f"{land.objective} %{{z:.4g}}<extra></extra>")
    filled = np.isfinite(pair.z)
    title = f"{land.objective} surface over {param_name(pair.x_key)} and {param_name(pair.y_key)}"
    if filled.mean() >= SURFACE_FILL:
        trace: dict[str, Any] = {"type": "surface", "x": x, "y": y, "z": z, "colorscale": _scale_for(land.direction),
                                 "colorbar": {"title": {"text": land.objective}}, "hovertemplate": hover}
    else:  # a surface through mostly empty cells shows nothing: the filled cells as points
        jy, ix = np.nonzero(filled)
        values = pair.z[filled]
        trace = {"type": "scatter3d", "mode": "markers", "x": [x[i] for i in ix], "y": [y[j] for j in jy],
                 "z": values.tolist(), "hovertemplate": hover, "name": "cells",
                 "marker": {"size": 5, "color": values.tolist(), "colorscale": _scale_for(land.direction),
                            "colorbar": {"title": {"text": land.objective}}, "showscale": True}}
        title += f" ({100 * filled.mean():.0f}% of the cells tried: drawn as points)"
    by, bx = pair.best_cell
    best = {"type": "scatter3d", "x": [x[bx]], "y": [y[by]], "z": [z[by][bx]], "mode": "markers",
            "marker": {"size": 6, "color": "#d62728", "symbol": "diamond"}, "name": "best set"}
    scene = {"xaxis": {"title": {"text": param_name(pair.x_key)}, **xticks},
             "yaxis": {"title": {"text": param_name(pair.y_key)}, **yticks},
             "zaxis": {"title": {"text": land.objective}}, "camera": {"eye": {"x": 1.6, "y": -1.6, "z": 0.9}}}
    fig = figure([trace, best], title, height=560, hovermode="closest", scene=scene)
    fig["layout"].pop("xaxis")
    fig["layout"].pop("yaxis")
    return fig


_PARALLEL_METRICS = ("sharpe", "total_return", "max_drawdown", "win_rate", "trades")


def parallel_figure(analysis: StudyAnalysis) -> Figure:
    """Return parallel coordinates: every parameter, then the objective and the main metrics,
    one line per scored trial coloured by the objective."""
    land = analysis.landscape
    dims: list[dict[str, Any]] = []
    for j, key in enumerate(land.keys):
        lv = land.levels[key]
        if lv.numeric and not lv.binned:
            dims.append({"label": param_name(key), "values": [float(t.params[key]) for t in land.trials]})
        else:
            dims.append({"label": param_name(key), "values": [int(c) for c in land.codes[:, j]],
                         "tickvals": list(range(len(lv.labels))), "ticktext": list(lv.labels)})
    shown = [land.objective] + [m for m in _PARALLEL_METRICS if m != land.objective]
    for name in shown:
        values = [(t.metrics or {}).get(name) for t in land.trials]
        if all(_finite(v) for v in values):
            numbers = [float(v) for v in values if v is not None]
            fmt = pct_tickformat(numbers) if name in PERCENT_METRICS else "d" if name == "trades" else ".2f"
            dims.append({"label": name, "values": numbers, "tickformat": fmt})
    trace = {"type": "parcoords", "dimensions": dims,
             "line": {"color": [float(v) for v in land.values], "colorscale": _scale_for(land.direction),
                      "showscale": True, "colorbar": {"title": {"text": land.objective}}}}
    fig = figure([trace], f"Parallel coordinates of {len(land.trials)} scored trials (colour: {land.objective})",
                 height=460, hovermode="closest")
    fig["layout"].pop("xaxis")
    fig["layout"].pop("yaxis")
    fig["layout"]["margin"] = {"l": 70, "r": 40, "t": 80, "b": 30}
    return fig


def pareto_figure(analysis: StudyAnalysis) -> Figure:
    """Return every scored trial on the two metrics of :func:`pareto_view`, the non-dominated
    front joined in red and the best set starred."""
    view = analysis.pareto
    land = analysis.landscape
    (mx, my), points = view.metrics, view.points

    def label(t: TrialRecord) -> str:
        params = ", ".join(f"{param_name(k)}={_show(v)}" for k, v in t.params.items())
        return (f"trial {t.number}: {params}<br>{mx} {fmt_metric(mx, (t.metrics or {}).get(mx))}, "
                f"{my} {fmt_metric(my, (t.metrics or {}).get(my))}")

    data: list[dict[str, Any]] = [{"type": "scatter", "mode": "markers", "name": "trials", "x": typed(points[:, 0]),
             "y": typed(points[:, 1]), "text": [label(t) for t in view.trials],
             "hovertemplate": "%{text}<extra></extra>", "marker": {"color": "#9aa", "size": 8}},
            {"type": "scatter", "mode": "lines+markers", "name": "Pareto front", "x": typed(points[view.front, 0]),
             "y": typed(points[view.front, 1]), "text": [label(view.trials[i]) for i in view.front],
             "hovertemplate": "%{text}<extra></extra>", "line": {"color": "#d62728", "shape": "hv"},
             "marker": {"color": "#d62728", "size": 10}}]
    if land.best is not None:
        best = land.trials[land.best]
        if best in view.trials:
            i = view.trials.index(best)
            data.append({"type": "scatter", "mode": "markers", "name": "best set", "x": [float(points[i, 0])],
                         "y": [float(points[i, 1])], "hoverinfo": "skip",
                         "marker": {"symbol": "star", "size": 16, "color": "#ffbf00", "line": {"width": 1}}})
    kind = "objectives of the study" if view.optimized else f"{mx} (optimised) vs {my} (not optimised)"
    better = [f"{'higher' if d == 'maximize' else 'lower'} is better" for d in view.directions]
    return figure(data, f"Pareto front: {kind}",
                  axis(f"{my} ({better[1]})", **({"tickformat": pct_tickformat(points[:, 1])}
                                                   if my in PERCENT_METRICS else {})), height=440,
                  xaxis=axis(f"{mx} ({better[0]})", **({"tickformat": pct_tickformat(points[:, 0])}
                                                         if mx in PERCENT_METRICS else {})),
                  hovermode="closest")


def importance_figure(analysis: StudyAnalysis) -> Figure:
    """Return horizontal bars of PED-ANOVA importance and the variance share (eta^2) per parameter."""
    items = list(reversed(analysis.importance))
    names = [p.name for p in items]
    data = []
    if any(p.ped_anova is not None for p in items):
        data.append({"type": "bar", "orientation": "h", "name": "PED-ANOVA (optuna)", "y": names,
                     "x": [p.ped_anova for p in items], "marker": {"color": "#1f77b4"},
                     "hovertemplate": "%{y}: %{x:.1%}<extra>PED-ANOVA</extra>"})
    data.append({"type": "bar", "orientation": "h", "name": "variance explained (eta^2)", "y": names,
                 "x": [p.eta_squared for p in items], "marker": {"color": "#ff7f0e"},
                 "hovertemplate": "%{y}: %{x:.1%}<extra>eta^2</extra>"})
    return figure(data, f"Parameter importance for {analysis.landscape.objective} ({analysis.importance_note})",
                  axis("", type="category"), height=160 + 50 * max(1, len(items)),
                  xaxis=axis("share of importance", tickformat=".0%", range=[0, 1]), barmode="group",
                  hovermode="closest")


def _curve(series: pd.Series, name: str, colour: str, **extra: Any) -> dict[str, Any]:
    shown = downsample(series.astype(float))
    return {"type": "scatter", "mode": "lines", "name": name, "x": plot_times(shown.index),
            "y": typed(shown.to_numpy()), "line": {"color": colour, "width": 1.6, **extra.pop("line", {})}, **extra}


def _set_name(r: SetReplay) -> str:
    params = ", ".join(f"{param_name(k)}={_show(v)}" for k, v in r.trial.params.items())
    return f"#{r.rank} {params}"


def top_equity_figure(analysis: StudyAnalysis) -> Figure:
    """Return the equity (USD) of the replayed top sets and buy-and-hold on one axis."""
    data = [_curve(r.equity, _set_name(r), _COLOURS[i % len(_COLOURS)]) for i, r in enumerate(analysis.replays)]
    arrays = [r.equity.to_numpy(dtype=float) for r in analysis.replays]
    if analysis.benchmark is not None:
        data.append(_curve(analysis.benchmark, "Buy & hold", _BENCHMARK, line={"dash": "dash"}))
        arrays.append(analysis.benchmark.to_numpy(dtype=float))
    values = np.concatenate(arrays) if arrays else np.array([1.0])
    yaxis = (log_axis("USD (log scale)", values, prefix="$") if spans_orders_of_magnitude(values)
             else axis("USD", tickprefix="$"))
    return figure(data, f"Equity of the top {len(analysis.replays)} sets (USD)", yaxis, height=460)


def top_drawdown_figure(analysis: StudyAnalysis) -> Figure:
    """Return the underwater curves (fraction below the running peak) of the top sets and buy-and-hold."""
    data = [_curve(r.drawdown, _set_name(r), _COLOURS[i % len(_COLOURS)], hovertemplate="%{y:.2%}")
            for i, r in enumerate(analysis.replays)]
    if analysis.benchmark is not None:
        data.append(_curve(drawdown_series(analysis.benchmark), "Buy & hold", _BENCHMARK, line={"dash": "dash"},
                           hovertemplate="%{y:.2%}"))
    return figure(data, "Drawdown of the top sets", axis("drawdown", tickformat=".0%"), height=340)


def walk_forward_bars_figure(analysis: StudyAnalysis) -> Figure:
    """Return the in-sample and out-of-sample objective per fold as grouped bars, each OOS bar
    labelled with its degradation from IS."""
    wf = analysis.walk_forward
    if wf is None:
        raise ValueError("walk_forward_bars_figure: no walk-forward result")
    objective = analysis.landscape.objective
    lower = OBJECTIVES.get(objective) == "minimize"
    labels = [f"fold {f.number}" + (f"<br>{f.test_start:%Y-%m-%d}" if f.test_start is not None else "")
              for f in wf.folds]
    is_values = [_as_float(f.in_sample.get(objective)) for f in wf.folds]
    oos_values = [_as_float(f.out_of_sample.get(objective)) for f in wf.folds]
    text = []
    for a, b in zip(is_values, oos_values):
        if a is None or b is None or a == 0:
            text.append("")
        else:
            change = ((b - a) if lower else (a - b)) / abs(a)
            text.append(f"{'-' if change > 0 else '+'}{abs(100 * change):.0f}%")
    pct = {"tickformat": ".1%"} if objective in PERCENT_METRICS else {}
    data = [{"type": "bar", "name": "in sample (training window)", "x": labels, "y": is_values,
             "marker": {"color": "#9ecae1"}, "hovertemplate": "%{x}: IS %{y:.4g}<extra></extra>"},
            {"type": "bar", "name": "out of sample (test window)", "x": labels, "y": oos_values, "text": text,
             "textposition": "outside", "marker": {"color": "#08519c"},
             "hovertemplate": "%{x}: OOS %{y:.4g}<extra></extra>"}]
    return figure(data, f"Walk-forward {objective} per fold: in sample vs out of sample (label: OOS vs IS)",
                  axis(objective, **pct), height=380, xaxis=axis("fold (test window start)", type="category"),
                  barmode="group", hovermode="closest")


def walk_forward_equity_figure(analysis: StudyAnalysis) -> Figure:
    """Return the stitched out-of-sample equity and buy-and-hold, fold boundaries as dotted lines."""
    wf = analysis.walk_forward
    if wf is None or wf.oos_equity is None or not len(wf.oos_equity):
        raise ValueError("walk_forward_equity_figure: no stitched out-of-sample equity")
    data = [_curve(wf.oos_equity, "Stitched out-of-sample equity", "#08519c", line={"width": 2})]
    if wf.benchmark is not None and len(wf.benchmark):
        data.append(_curve(wf.benchmark, wf.benchmark_label, _BENCHMARK, line={"dash": "dash"}))
    if wf.regime is not None and wf.regime.get("oos_equity") is not None:
        data.append(_curve(wf.regime["oos_equity"], f"Regime-aware sets ({wf.regime.get('symbol')} regime)", "#2ca02c",
                           line={"dash": "dot"}))
    shapes = []
    for f in wf.folds:
        if f.test_start is not None:
            x = plot_times(pd.DatetimeIndex([f.test_start]))[0]
            shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
                           "line": {"color": "#999", "width": 1, "dash": "dot"}})
    return figure(data, "Walk-forward: stitched out-of-sample equity vs buy & hold (USD; dotted: fold starts)",
                  axis("USD", tickprefix="$"), height=420, shapes=shapes)



def walk_forward_steps_figure(analysis: StudyAnalysis) -> Figure:
    """Return the stitched OOS equity of each compared re-optimization step on their common span."""
    wf = analysis.walk_forward
    steps = [] if wf is None else [s for s in wf.steps if s.get("oos_equity") is not None]
    if not steps:
        raise ValueError("walk_forward_steps_figure: no re-optimization steps were compared")
    assert wf is not None
    data = []
    for i, step in enumerate(steps):
        best = " (best)" if step["step"] == wf.best_step else ""
        sharpe = fmt_metric("sharpe", step["oos_metrics"].get("sharpe"))
        data.append(_curve(step["oos_equity"], f"every {step['step']}{best}: Sharpe {sharpe}",
                           _COLOURS[i % len(_COLOURS)], line={"width": 2.4 if best else 1.4}))
    return figure(data, "Re-optimization frequency: stitched OOS equity per step (USD, common span)",
                  axis("USD", tickprefix="$"), height=380)


def pbo_figure(analysis: StudyAnalysis) -> Figure:
    """Return the CSCV diagnostics of Bailey et al. (2017): the distribution of the logits of the
    IS-best trial's OOS relative rank (PBO = share at or below 0) and its OOS against IS Sharpe
    ratio per combination with the least-squares line (performance degradation)."""
    block = analysis.overfitting
    if not block.logits or not block.is_performance:
        raise ValueError("pbo_figure: the statistics hold no CSCV detail (pbo_detail)")
    logits = np.asarray(block.logits)
    edges = np.histogram_bin_edges(logits, bins=min(40, max(10, len(np.unique(logits)))))
    counts, edges = np.histogram(logits, bins=edges)
    centres = (edges[:-1] + edges[1:]) / 2
    share = counts / counts.sum()
    colours = ["#d73027" if c <= 0 else "#4575b4" for c in centres]
    k = (block.sharpe / block.sharpe_period) if block.sharpe and block.sharpe_period else 1.0
    unit = "annualised" if k != 1.0 else "per day"
    is_perf, oos_perf = np.asarray(block.is_performance) * k, np.asarray(block.oos_performance) * k
    every = max(1, len(is_perf) // 3000)  # the regression uses every point; the chart shows at most ~3000
    slope, intercept = np.polyfit(is_perf, oos_perf, 1) if len(is_perf) > 1 else (0.0, float(oos_perf.mean()))
    xs = np.array([is_perf.min(), is_perf.max()])
    data: list[dict[str, Any]] = [{"type": "bar", "x": typed(centres), "y": typed(share), "marker": {"color": colours},
             "name": "logit",
             "xaxis": "x", "yaxis": "y", "showlegend": False,
             "hovertemplate": "logit %{x:.2f}: %{y:.1%} of combinations<extra></extra>"},
            {"type": "scatter", "mode": "markers", "x": typed(is_perf[::every]), "y": typed(oos_perf[::every]),
             "xaxis": "x2", "yaxis": "y2", "name": "CSCV combination", "marker": {"size": 4, "color": "#4575b4",
                                                                                  "opacity": 0.35},
             "hovertemplate": "IS %{x:.2f}, OOS %{y:.2f}<extra></extra>"},
            {"type": "scatter", "mode": "lines", "x": typed(xs), "y": typed(slope * xs + intercept), "xaxis": "x2",
             "yaxis": "y2", "name": f"OOS = {slope:.2f} x IS {intercept:+.2f}", "line": {"color": "#d73027"}}]
    pbo = f"PBO {block.pbo:.2f}" if block.pbo is not None else "PBO n/a"
    fig = figure(data, f"CSCV ({block.pbo_combinations or len(logits)} combinations of {block.pbo_splits or '?'} "
                 f"blocks): {pbo} = share of logits <= 0 (red)", height=400, hovermode="closest",
                 shapes=[{"type": "line", "xref": "x", "yref": "paper", "x0": 0, "x1": 0, "y0": 0, "y1": 1,
                          "line": {"color": "#333", "dash": "dot"}}])
    fig["layout"].update({
        "xaxis": {"domain": [0, 0.45], "title": {"text": "logit of the IS-best trial's OOS relative rank"}},
        "yaxis": {"title": {"text": "share of combinations"}, "tickformat": ".0%"},
        "xaxis2": {"domain": [0.55, 1], "anchor": "y2", "title": {"text": f"IS Sharpe ({unit})"}},
        "yaxis2": {"anchor": "x2", "title": {"text": f"OOS Sharpe ({unit})"}}})
    return fig


def verdict_figure(analysis: StudyAnalysis) -> Figure:
    """Return the overfitting score's parts: points scored (red when flagged) against the points
    each check can give."""
    parts = analysis.overfitting.parts()
    if not parts:
        raise ValueError("verdict_figure: no verdict")
    names = [str(p["name"]).replace("_", " ") for p in parts][::-1]
    weights = [float(p["weight"] or 0) for p in parts][::-1]
    points = [float(p["points"] or 0) for p in parts][::-1]
    colours = ["#d73027" if p["flagged"] else "#4575b4" for p in parts][::-1]
    details = [str(p["detail"]) for p in parts][::-1]
    data: list[dict[str, Any]] = [{"type": "bar", "orientation": "h", "y": names, "x": weights,
             "name": "points available",
             "marker": {"color": "#e6e6e6"}, "hoverinfo": "skip"},
            {"type": "bar", "orientation": "h", "y": names, "x": points, "name": "points scored (red: flagged)",
             "marker": {"color": colours}, "text": [f"{p:.1f}" for p in points], "textposition": "outside",
             "customdata": details, "hovertemplate": "%{y}: %{x:.1f}<br>%{customdata}<extra></extra>"}]
    score = analysis.overfitting.score
    title = f"Overfitting score {score:.0f}/100 ({analysis.overfitting.level})" if score is not None else "Overfitting"
    return figure(data, title, axis("", type="category"), height=140 + 42 * len(parts),
                  xaxis=axis("points (the score is their sum)"), barmode="overlay", hovermode="closest")
