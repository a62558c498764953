"""Sensitivity of a study's objective to each parameter: robust (flat) and fragile (sharp) ones.

For each parameter a *profile* of the objective over its levels
(:class:`research.reports.study_landscape.Levels`) is drawn through the best set:

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

This is the one sensitivity measure of the project: the study report (HTML, PDF, summary.txt) and
the walk-forward's summary.txt all show it (:func:`sensitivity_lines` for the text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from research.reports.study_format import fmt_metric, param_name
from research.reports.study_landscape import Landscape

__all__ = ["FRAGILE_DROP", "ROBUST_DROP", "ParameterSensitivity", "parameter_sensitivity", "sensitivity_lines"]

ROBUST_DROP = 0.10
"""Neighbour drop (fraction of the scale) up to which a parameter is called robust."""
FRAGILE_DROP = 0.30
"""Neighbour drop from which a parameter is called fragile."""


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


def sensitivity_lines(items: Sequence[ParameterSensitivity], objective: str, scope: str = "") -> list[str]:
    """The ``sensitivity`` section of a ``summary.txt``: how it is measured, one sentence per
    parameter (:meth:`ParameterSensitivity.describe`) and the robust and fragile ones named.

    Parameters
    ----------
    items
        :func:`parameter_sensitivity` of the study.
    objective
        The study's first objective (the unit of the profiles).
    scope
        Which study it is, put in the title (``"final study"`` in a walk-forward's summary).

    Examples
    --------
    >>> sensitivity_lines([], "sharpe", scope="final study")[1:]
    ['  robust: none; fragile: none', '  (no scored trial)']
    """
    where = f"{scope}; " if scope else ""
    lines = [f"sensitivity of {objective} ({where}neighbour drop: mean loss one step either side of the best value, "
             f"as a share of max(|best|, range); robust <= {ROBUST_DROP:.0%}, fragile >= {FRAGILE_DROP:.0%})"]
    lines += [f"  {s.describe(objective)}" for s in items]
    robust = [s.name for s in items if s.verdict == "robust"]
    fragile = [s.name for s in items if s.verdict == "fragile"]
    lines.append(f"  robust: {', '.join(robust) or 'none'}; fragile: {', '.join(fragile) or 'none'}")
    if not items:
        lines.append("  (no scored trial)")
    return lines
