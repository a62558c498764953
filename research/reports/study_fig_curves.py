"""Time-series figures of a study report: equity and drawdown of the top sets against
buy-and-hold, and the walk-forward's folds, stitched out-of-sample equity and step comparison."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from research.metrics import drawdown_series
from research.optimize import OBJECTIVES
from research.reports.plotting import (Figure, axis, downsample, figure, log_axis, plot_times,
                                       spans_orders_of_magnitude, typed)
from research.reports.study_analysis import StudyAnalysis
from research.reports.study_format import PERCENT_METRICS, as_float, fmt_metric, param_name, show_value
from research.reports.study_replays import SetReplay

__all__ = ["top_drawdown_figure", "top_equity_figure", "walk_forward_bars_figure", "walk_forward_equity_figure",
           "walk_forward_steps_figure"]

_COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
_BENCHMARK = "#ff7f0e"


def _curve(series: pd.Series, name: str, colour: str, **extra: Any) -> dict[str, Any]:
    shown = downsample(series.astype(float))
    return {"type": "scatter", "mode": "lines", "name": name, "x": plot_times(shown.index),
            "y": typed(shown.to_numpy()), "line": {"color": colour, "width": 1.6, **extra.pop("line", {})}, **extra}


def _set_name(r: SetReplay) -> str:
    params = ", ".join(f"{param_name(k)}={show_value(v)}" for k, v in r.trial.params.items())
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
    is_values = [as_float(f.in_sample.get(objective)) for f in wf.folds]
    oos_values = [as_float(f.out_of_sample.get(objective)) for f in wf.folds]
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
