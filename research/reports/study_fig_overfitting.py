"""Overfitting figures of a study report: the CSCV diagnostics behind the PBO and the parts of the
overfitting score."""

from __future__ import annotations

from typing import Any

import numpy as np

from research.reports.plotting import Figure, axis, figure, typed
from research.reports.study_analysis import StudyAnalysis

__all__ = ["pbo_figure", "verdict_figure"]


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
