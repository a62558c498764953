"""The numbers behind a study report and their plotly figures (re-exported from the modules below).

:func:`analyse_study` computes everything the HTML page, ``summary.txt`` and ``report.pdf`` show,
once, into a :class:`StudyAnalysis`; the ``*_figure`` builders turn parts of it into plotly
figure dicts (:data:`research.reports.plotting.Figure`). Nothing here writes files.

Modules (each imports only those above it; the figures read the analysis):

* :mod:`research.reports.study_format`: formatting of metrics and readers of loose inputs;
* :mod:`research.reports.study_landscape`: the scored trials on their levels (the landscape), the
  surface of a parameter pair and the Pareto front;
* :mod:`research.reports.study_sensitivity`: robust and fragile parameters (the neighbour drop);
* :mod:`research.reports.study_importance`: PED-ANOVA and eta^2 importance;
* :mod:`research.reports.study_replays`: the top sets replayed;
* :mod:`research.reports.study_overfitting`: the overfitting statistics block;
* :mod:`research.reports.study_wf_view`: a walk-forward result as the report reads it;
* :mod:`research.reports.study_recommend`: the recommended configuration;
* :mod:`research.reports.study_analysis`: :func:`analyse_study`, all of the above at once;
* figures: :mod:`research.reports.study_fig_sensitivity`, :mod:`research.reports.study_fig_landscape`
  (heat map, surface, parallel coordinates, Pareto, importance), :mod:`research.reports.study_fig_curves`
  (top sets' equity and drawdown, walk-forward) and :mod:`research.reports.study_fig_overfitting`
  (CSCV, verdict).
"""

from __future__ import annotations

from research.reports.study_analysis import StudyAnalysis, analyse_study
from research.reports.study_fig_curves import (top_drawdown_figure, top_equity_figure, walk_forward_bars_figure,
                                               walk_forward_equity_figure, walk_forward_steps_figure)
from research.reports.study_fig_landscape import (SURFACE_FILL, heatmap_figure, importance_figure, parallel_figure,
                                                  pareto_figure, surface_figure)
from research.reports.study_fig_overfitting import pbo_figure, verdict_figure
from research.reports.study_fig_sensitivity import sensitivity_figure
from research.reports.study_format import PERCENT_METRICS, fmt_metric, param_name, pct_tickformat
from research.reports.study_importance import ParameterImportance, parameter_importance
from research.reports.study_landscape import (MAX_LEVELS, Landscape, Levels, PairSurface, ParetoView, max_levels,
                                              pair_surface, pareto_view, study_landscape)
from research.reports.study_overfitting import OverfittingBlock, overfitting_block
from research.reports.study_recommend import PLATEAU_TOLERANCE, Recommendation, recommend
from research.reports.study_replays import TOP_SETS, SetReplay, replay_sets
from research.reports.study_sensitivity import FRAGILE_DROP, ROBUST_DROP, ParameterSensitivity, parameter_sensitivity
from research.reports.study_wf_view import WalkForwardFold, WalkForwardView, walk_forward_view

__all__ = ["FRAGILE_DROP", "MAX_LEVELS", "PERCENT_METRICS", "PLATEAU_TOLERANCE", "ROBUST_DROP", "SURFACE_FILL",
           "TOP_SETS", "Landscape", "Levels", "OverfittingBlock", "PairSurface", "ParameterImportance",
           "ParameterSensitivity", "ParetoView", "Recommendation", "SetReplay", "StudyAnalysis", "WalkForwardFold",
           "WalkForwardView", "analyse_study", "fmt_metric", "heatmap_figure", "importance_figure", "max_levels",
           "overfitting_block", "pair_surface", "parallel_figure", "param_name", "parameter_importance",
           "parameter_sensitivity", "pareto_figure", "pareto_view", "pbo_figure", "pct_tickformat", "recommend",
           "replay_sets", "sensitivity_figure", "study_landscape", "surface_figure", "top_drawdown_figure",
           "top_equity_figure", "verdict_figure", "walk_forward_bars_figure", "walk_forward_equity_figure",
           "walk_forward_steps_figure", "walk_forward_view"]
