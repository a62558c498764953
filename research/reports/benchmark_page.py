"""The ``tradingd benchmark`` report: a finished run against its passive benchmarks, one
self-contained HTML page (plotly.js inlined once, nothing loaded from the network).

Sections: Verdict, Statistics (``id="benchmark-table"``, sortable), Equity (``id="equity-overlay"``),
Drawdown (``id="drawdown-comparison"``), Monthly return correlation (``id="monthly-correlation"``),
Risk and return (``id="risk-return"``), How the benchmarks are built (``id="benchmark-rules"``) and
Momentum holdings (``id="momentum-holdings"``, the months its holdings changed).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from plotly.colors import get_colorscale

from research.benchmark_portfolios import MOMENTUM, SIXTY_FORTY
from research.benchmark_compare import NO_COSTS, STRATEGY, Comparison, CurveStats, VersusStats, partial_coverage_note
from research.metrics import drawdown_series
from research.reports.formatting import fmt_days, fmt_num, fmt_pct, fmt_time
from research.reports.page import Section, note, paragraph, render_page, write_page
from research.reports.plotting import (Charts, Figure, axis, downsample, figure, log_axis, plot_times,
                                       spans_orders_of_magnitude, typed)
from research.reports.tables import Cell, Column, html_table

__all__ = ["HEADINGS", "correlation_figure", "drawdown_overlay_figure", "equity_overlay_figure",
           "render_benchmark_page", "risk_return_figure", "write_benchmark_report"]

HEADINGS = ("Verdict", "Statistics", "Equity", "Drawdown", "Monthly return correlation", "Risk and return",
            "How the benchmarks are built", "Momentum holdings")
"""Section headings, in page order."""
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
_DIVERGING = get_colorscale("RdBu")  # plotly.js knows only a few scale names; send the colours
# five long legend entries do not fit beside the title: the legend goes under the plot
_LEGEND_BELOW: dict[str, Any] = {
    "legend": {"orientation": "h", "y": -0.16, "x": 0, "xanchor": "left", "yanchor": "top"},
    "margin": {"l": 60, "r": 20, "t": 50, "b": 90}}


def _curves(c: Comparison) -> list[tuple[str, str, pd.Series]]:
    """(key, legend name, equity) of the strategy then each benchmark."""
    return [(STRATEGY, f"Strategy ({c.strategy})", c.equity), *((b.curve.name, b.curve.label, b.curve.equity)
                                                                 for b in c.benchmarks)]


def _line(series: pd.Series, name: str, colour: str, **extra: Any) -> dict[str, Any]:
    shown = downsample(series.astype(float))
    return {"type": "scatter", "mode": "lines", "name": name, "x": plot_times(shown.index),
            "y": typed(shown.to_numpy()), "line": {"color": colour, "width": 1.6}, **extra}


def equity_overlay_figure(c: Comparison) -> Figure:
    """Return every curve's equity in USD on one chart (log axis when they span more than 10x)."""
    curves = _curves(c)
    data = [_line(eq, name, _COLOURS[k % len(_COLOURS)]) for k, (_, name, eq) in enumerate(curves)]
    ends = np.array([v for _, _, eq in curves for v in (float(eq.min()), float(eq.max()))])
    yaxis = (log_axis("USD (log scale)", ends, prefix="$") if spans_orders_of_magnitude(ends)
             else axis("USD", tickprefix="$"))
    return figure(data, "Equity (USD): strategy and benchmarks from the same starting cash", yaxis, height=520,
                  **_LEGEND_BELOW)


def drawdown_overlay_figure(c: Comparison) -> Figure:
    """Return every curve's drawdown from its running peak (fractions <= 0, shown in %)."""
    data = [_line(drawdown_series(eq), name, _COLOURS[k % len(_COLOURS)], hovertemplate="%{y:.2%}")
            for k, (_, name, eq) in enumerate(_curves(c))]
    return figure(data, "Drawdown from the running peak", axis("drawdown", tickformat=".0%"), height=420,
                  **_LEGEND_BELOW)


def correlation_figure(c: Comparison) -> Figure:
    """Return the Pearson correlation matrix of the monthly returns as a heat map (-1 blue .. +1 red)."""
    names = {key: name for key, name, _ in _curves(c)}
    matrix = c.monthly.corr(min_periods=3)
    labels = [names.get(str(k), str(k)) for k in matrix.columns]
    values = matrix.to_numpy()
    text = [["" if np.isnan(v) else f"{v:+.2f}" for v in row] for row in values]
    trace = {"type": "heatmap", "x": labels, "y": labels,
             "z": [[None if np.isnan(v) else round(float(v), 6) for v in row] for row in values], "text": text,
             "texttemplate": "%{text}", "zmin": -1.0, "zmax": 1.0, "zmid": 0.0, "colorscale": _DIVERGING,
             "reversescale": True, "xgap": 2, "ygap": 2, "hoverongaps": False,
             "hovertemplate": "%{y} vs %{x}: %{text}<extra></extra>", "colorbar": {"title": {"text": "r"}}}
    return figure([trace], f"Correlation of monthly returns ({len(c.monthly)} UTC months)",
                  {"autorange": "reversed", "type": "category"}, height=160 + 70 * len(labels),
                  xaxis={"type": "category"}, hovermode="closest")


def risk_return_figure(c: Comparison) -> Figure:
    """Return CAGR against annualised volatility, one marker per curve (hover: Sharpe, max drawdown)."""
    data = []
    stats: list[CurveStats] = [c.stats, *(b.stats for b in c.benchmarks)]
    xs, ys = [0.0], [0.0]
    for k, ((_, name, _), s) in enumerate(zip(_curves(c), stats)):
        if s.volatility is None or s.cagr is None:
            continue
        xs.append(s.volatility)
        ys.append(s.cagr)
        data.append({"type": "scatter", "mode": "markers+text", "name": name, "x": [s.volatility], "y": [s.cagr],
                     "text": [name], "textposition": "top center",
                     "marker": {"size": 14, "color": _COLOURS[k % len(_COLOURS)],
                                "line": {"width": 1, "color": "#333"}},
                     "hovertemplate": (f"{html.escape(name)}<br>volatility %{{x:.2%}}<br>CAGR %{{y:.2%}}<br>"
                                       f"Sharpe {fmt_num(s.sharpe)}<br>max drawdown {fmt_pct(s.max_drawdown)}"
                                       "<extra></extra>")})
    # room around the markers for their labels
    x_pad, y_pad = 0.2 * (max(xs) - min(xs)) or 0.01, 0.15 * (max(ys) - min(ys)) or 0.01
    return figure(data, "Risk and return (annualised volatility of daily returns vs CAGR)",
                  axis("CAGR", tickformat=".0%", zeroline=True, range=[min(ys) - y_pad, max(ys) + y_pad]), height=460,
                  xaxis=axis("volatility (annualised)", tickformat=".0%", range=[0.0, max(xs) + x_pad]),
                  hovermode="closest", showlegend=False)


def _stat_cells(s: CurveStats) -> list[Cell]:
    return [(fmt_pct(s.total_return), s.total_return), (fmt_pct(s.cagr), s.cagr), (fmt_num(s.sharpe), s.sharpe),
            (fmt_pct(s.volatility), s.volatility), (fmt_pct(s.max_drawdown), s.max_drawdown),
            (fmt_days(s.recovery_days) if s.recovery_days is not None else "not regained", s.recovery_days),
            (fmt_pct(s.win_rate_months, 1), s.win_rate_months)]


def _versus_cells(v: VersusStats | None) -> list[Cell]:
    if v is None:
        return [("", None)] * 5
    return [(fmt_pct(v.alpha), v.alpha), (fmt_num(v.beta), v.beta), (fmt_num(v.correlation), v.correlation),
            (fmt_num(v.information_ratio), v.information_ratio), (fmt_pct(v.tracking_error), v.tracking_error)]


def _table(c: Comparison) -> str:
    columns = [Column("Curve"), *(Column(h, numeric=True) for h in (
        "Total return", "CAGR", "Sharpe", "Volatility", "Max drawdown", "Recovery (days)", "Win rate (months)",
        "Alpha (/yr)", "Beta", "Correlation", "Information ratio", "Tracking error"))]
    rows = [[f"Strategy ({c.strategy})", *_stat_cells(c.stats), *_versus_cells(None)]]
    rows += [[b.curve.label, *_stat_cells(b.stats), *_versus_cells(b.versus)] for b in c.benchmarks]
    return html_table("benchmark-table", columns, rows, sortable=True)


def _verdict(c: Comparison) -> Section:
    primary = c.primary
    word = "favourable" if c.favourable else "not favourable"
    body = [f'<p id="verdict"><strong>{html.escape(word.capitalize())}</strong> against '
            f"{html.escape(primary.curve.label)}.</p>", paragraph(c.favourable_reason),
            paragraph(f"Strategy: total return {fmt_pct(c.stats.total_return)}, Sharpe {fmt_num(c.stats.sharpe)}, "
                      f"max drawdown {fmt_pct(c.stats.max_drawdown)}; {primary.curve.label}: "
                      f"{fmt_pct(primary.stats.total_return)}, "
                      f"Sharpe {fmt_num(primary.stats.sharpe)}, max drawdown {fmt_pct(primary.stats.max_drawdown)}."),
            note(NO_COSTS)]
    return Section("verdict-section", "Verdict", "\n".join(body))


def _rules(c: Comparison) -> Section:
    items = []
    for b in c.benchmarks:
        extra = ""
        if b is c.primary and partial_coverage_note(b):
            extra = " " + partial_coverage_note(b)
        elif b.curve.name == SIXTY_FORTY:
            share = b.extra.get("bond_coverage")
            first, last = b.extra.get("bond_first"), b.extra.get("bond_last")
            span = f" ({fmt_time(pd.Timestamp(first))} to {fmt_time(pd.Timestamp(last))})" if first and last else ""
            extra = (f" The bond ({b.extra.get('bond')}) has closes for {fmt_pct(share, 1)} of the period{span}"
                     + ": before its first close its share is cash, after its last it is held at that close.")
        elif b.curve.name == MOMENTUM:
            first = b.extra.get("first_invested")
            extra = (f" First invested {fmt_time(pd.Timestamp(first))}." if first
                     else " Never invested: no symbol had 12 months of closes.")
        items.append(f"<li><strong>{html.escape(b.curve.label)}</strong>: {html.escape(b.curve.rule)}."
                     f"{html.escape(extra)}</li>")
    notes = [paragraph(NO_COSTS),
             note("Statistics: daily returns are the last equity of each UTC day with data, annualised with "
                  f"{c.periods_per_year:.1f} periods a year (inferred from the strategy's curve). Sharpe = mean / std "
                  "(Sharpe 1994, risk-free rate 0). Recovery = the longest time under water until a peak was "
                  "regained (not regained: still under water at the end). Win rate (months) = the share of UTC "
                  "calendar months with a return > 0. Alpha = the CAPM regression intercept of daily returns x "
                  "periods a year (Jensen 1968); beta = the OLS slope; information ratio and tracking error from "
                  "the daily active return (Grinold & Kahn 1999).")]
    return Section("benchmark-rules", "How the benchmarks are built",
                   '<ul id="rules-list">' + "".join(items) + "</ul>\n" + "\n".join(notes))


def _holdings(c: Comparison) -> Section:
    momentum = next((b for b in c.benchmarks if b.curve.name == MOMENTUM), None)
    rows: list[Sequence[Cell]] = []
    previous: list[str] | None = None
    for entry in (momentum.extra.get("holdings", []) if momentum is not None else []):
        held = list(entry["symbols"])
        if held != previous:
            rows.append([fmt_time(pd.Timestamp(entry["time"])), ", ".join(held) or "cash"])
        previous = held
    body = (note("Rebalances at which the momentum benchmark's holdings changed (best trailing return first).")
            + '<div class="scroll">'
            + html_table("momentum-holdings", [Column("Rebalance (UTC)"), Column("Held")], rows) + "</div>")
    return Section("momentum-section", "Momentum holdings", body)


def render_benchmark_page(c: Comparison) -> str:
    """Return the report's HTML document."""
    chart = Charts()
    index = pd.DatetimeIndex(c.equity.index)
    sections = [
        _verdict(c),
        Section("statistics", "Statistics", _table(c) + note(
            "Alpha, beta, correlation, information ratio and tracking error: the strategy against each benchmark. "
            "Click a header to sort.")),
        Section("equity", "Equity", chart(equity_overlay_figure(c), "equity-overlay")),
        Section("drawdown", "Drawdown", chart(drawdown_overlay_figure(c), "drawdown-comparison")),
        Section("correlation", "Monthly return correlation", chart(correlation_figure(c), "monthly-correlation")),
        Section("risk-return-section", "Risk and return", chart(risk_return_figure(c), "risk-return")),
        _rules(c),
        _holdings(c),
    ]
    header = note(f"Run {c.run_id}, {fmt_time(index[0])} to {fmt_time(index[-1])} (UTC); "
                  f"{len(c.benchmarks)} benchmarks from the same starting cash.")
    return render_page(f"tradingd benchmark: {c.strategy}", f"run {c.run_id}", header, sections)


def write_benchmark_report(c: Comparison, path: str | os.PathLike[str]) -> Path:
    """Write the report to ``path`` (parents created; a temporary name renamed, so a reader never
    sees half a file) and return the path."""
    return write_page(path, render_benchmark_page(c))
