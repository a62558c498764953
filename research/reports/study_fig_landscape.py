"""Figures of a study's landscape: the heat map and 3-D surface of the most important pair,
parallel coordinates, the Pareto front and parameter importance."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from plotly.colors import get_colorscale

from research.optimize import TrialRecord
from research.reports.formatting import NOT_AVAILABLE
from research.reports.plotting import Figure, axis, figure, typed
from research.reports.study_analysis import StudyAnalysis
from research.reports.study_format import (PERCENT_METRICS, fmt_metric, is_finite_number, param_name, pct_tickformat,
                                           show_value)
from research.reports.study_landscape import Levels

__all__ = ["SURFACE_FILL", "heatmap_figure", "importance_figure", "parallel_figure", "pareto_figure",
           "surface_figure"]

SURFACE_FILL = 0.6
"""Share of the pair's cells with a trial from which the 3-D chart is a surface (below: points)."""
_SCALE = get_colorscale("RdYlGn")
_SCALE_REVERSED = [[1.0 - p, c] for p, c in reversed(_SCALE)]


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
        if all(is_finite_number(v) for v in values):
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
        params = ", ".join(f"{param_name(k)}={show_value(v)}" for k, v in t.params.items())
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
