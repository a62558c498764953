"""Importance of each parameter of a study.

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
from dataclasses import dataclass

import numpy as np
import optuna

from research.optimize_loop import optuna_distribution
from research.reports.study_format import param_name
from research.reports.study_landscape import Landscape
from research.search_space import SearchSpace

__all__ = ["ParameterImportance", "parameter_importance"]


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


def _ped_anova(land: Landscape, space: SearchSpace) -> tuple[dict[str, float] | None, str]:
    """PED-ANOVA importances (None and why when they cannot be computed)."""
    n = len(land.trials)
    varied = [k for k in land.keys if len(land.levels[k].labels) > 1]
    if n < 4 or not varied:
        return None, f"PED-ANOVA needs at least 4 scored trials and a varied parameter ({n} trials)"
    dims = {d.key: d for d in space.dimensions}
    distributions = {k: optuna_distribution(dims[k]) for k in land.keys if k in dims}
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
