"""The sensitivity figure of a study report: one panel per parameter."""

from __future__ import annotations

import math
from typing import Any

from research.reports.plotting import Figure, figure
from research.reports.study_analysis import StudyAnalysis
from research.reports.study_format import PERCENT_METRICS, fmt_metric

__all__ = ["sensitivity_figure"]


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
