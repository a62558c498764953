"""The landscape of a study: its scored trials on their parameter levels, and two views of it (the
objective over a pair of parameters, the Pareto front of two metrics).

The analysed trials are the *scored* ones: status ``complete`` or ``filtered`` with a finite value
of the study's first objective, each parameter set once (filtered trials are part of the
landscape: a neighbour that trades too little is a bad neighbour). Parameter values become
*levels*: the distinct values, or for a numeric key with more distinct values than
:func:`max_levels` allows (random / TPE sampling: about three trials per bin, at most
:data:`MAX_LEVELS`) that many quantile bins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from research.optimize import OBJECTIVES, StudyResult, TrialRecord
from research.reports.study_format import is_finite_number, is_number, show_value
from research.search_space import Dimension

__all__ = ["MAX_LEVELS", "Landscape", "Levels", "PairSurface", "ParetoView", "max_levels", "pair_surface",
           "pareto_view", "study_landscape"]

MAX_LEVELS = 12
"""Most levels per numeric parameter (see :func:`max_levels`); more distinct values go into quantile bins."""


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
    if values and all(is_number(v) for v in values):
        distinct = sorted(set(float(v) if isinstance(v, (float, np.floating)) else int(v) for v in values))
        limit = max_levels(len(values))
        stepped = dim is not None and dim.kind != "categorical" and (dim.kind == "int" or dim.step is not None)
        if stepped and dim is not None and dim.low is not None and dim.high is not None:
            step = float(dim.step or 1)
            if (float(dim.high) - float(dim.low)) / step + 1 <= MAX_LEVELS:
                limit = MAX_LEVELS  # a few stepped values: keep each one, as the space names them
        if len(distinct) <= limit:
            return Levels(key, True, tuple(show_value(v) for v in distinct), tuple(distinct))
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
        if t.status not in ("complete", "filtered") or t.metrics is None \
                or not is_finite_number(t.metrics.get(objective)):
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
    trials = [t for t in land.trials
              if t.metrics is not None and all(is_finite_number(t.metrics.get(m)) for m in metrics)]
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
