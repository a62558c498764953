"""The ``tradingd sizing`` report: one self-contained HTML page (plotly inlined, no network) of a
:class:`research.sizing.SizingResult`.

Sections: the recommendation (with the config line to apply it and the sweep's notes), the
efficient frontier (max drawdown against total return, each level labelled, the frontier line and
the drawdown tolerance), every metric against the level, each level's equity curve, and the
table of levels (sortable).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from plotly.colors import sample_colorscale

from research.reports.formatting import fmt_num, fmt_pct, fmt_time, fmt_usd
from research.reports.page import Section, note, paragraph, render_page, write_page
from research.reports.plotting import Charts, Figure, axis, downsample, figure, plot_times, typed
from research.reports.tables import Cell, Column, html_table
from research.sizing import SizingLevel, SizingResult

__all__ = ["frontier_figure", "level_equity_figure", "level_label", "level_metrics_figure", "render_sizing_page",
           "write_sizing_report"]

_FRONTIER, _OTHER, _PICK, _TOLERANCE = "#1f77b4", "#9e9e9e", "#d62728", "#d62728"
_WIDE_TOLERANCE = 2.0  # a tolerance beyond this multiple of the largest drawdown is not drawn to scale


def level_label(level: float) -> str:
    """A level as percent of equity without trailing zeros.

    Examples
    --------
    >>> level_label(0.0125), level_label(0.02)
    ('1.25%', '2%')
    """
    return f"{round(level * 100, 10):g}%"


def frontier_figure(result: SizingResult) -> Figure:
    """Max drawdown (x) against total return (y) per level: every level labelled, the frontier
    joined by a line, the recommended level starred and the tolerance as a vertical line."""
    levels = result.levels
    frontier = sorted((x for x in levels if x.on_frontier), key=lambda x: x.max_drawdown)
    others = [x for x in levels if not x.on_frontier]

    def points(items: Sequence[SizingLevel], name: str, **style: Any) -> dict[str, Any]:
        # levels with the very same point (capped sizes) share one label instead of overprinting
        same: dict[tuple[float, float], list[str]] = {}
        for x in items:
            same.setdefault((x.max_drawdown, x.total_return), []).append(level_label(x.level))
        text = [", ".join(same.pop((x.max_drawdown, x.total_return), [])) for x in items]
        return {"type": "scatter", "name": name, "x": [x.max_drawdown for x in items],
                "y": [x.total_return for x in items], "text": text, "customdata": [level_label(x.level) for x in items],
                "textposition": "top center", "hovertemplate": "level %{customdata}<br>max drawdown %{x:.2%}<br>"
                                                               "return %{y:.2%}<extra></extra>", **style}

    data = [points(frontier, "efficient frontier", mode="lines+markers+text",
                   line={"color": _FRONTIER}, marker={"size": 9, "color": _FRONTIER})]
    if others:
        data.append(points(others, "dominated", mode="markers+text", marker={"size": 8, "color": _OTHER},
                           textfont={"color": _OTHER}))
    if result.recommended is not None:
        data.append(points([result.recommended], "recommended", mode="markers",
                           marker={"size": 18, "color": _PICK, "symbol": "star"}))
    largest = max([x.max_drawdown for x in levels] + [1e-6])
    tolerance = result.max_drawdown
    to_scale = tolerance <= _WIDE_TOLERANCE * largest
    right = max(largest, tolerance if to_scale else 0.0) * 1.15
    shapes, notes = [], []
    if to_scale:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": tolerance, "x1": tolerance, "y0": 0,
                       "y1": 1, "line": {"color": _TOLERANCE, "dash": "dash", "width": 1.5}})
        notes.append({"x": tolerance, "y": 1, "xref": "x", "yref": "paper", "text": f"tolerance {tolerance:.1%}",
                      "showarrow": False, "xanchor": "left", "yanchor": "top", "font": {"color": _TOLERANCE}})
    else:
        notes.append({"x": 1, "y": 1, "xref": "paper", "yref": "paper", "showarrow": False, "xanchor": "right",
                      "yanchor": "top", "font": {"color": _TOLERANCE},
                      "text": f"tolerance {tolerance:.1%}: beyond every level's drawdown (off the chart)"})
    return figure(data, "Efficient frontier: return against max drawdown", height=480, hovermode="closest",
                  xaxis=axis("max drawdown", tickformat=".1%", range=[0, right], zeroline=False),
                  yaxis=axis("total return", tickformat=".1%"), shapes=shapes, annotations=notes)


_PANELS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("return", ".1%", (("total_return", "total return"), ("cagr", "CAGR"))),
    ("ratio", ".2f", (("sharpe", "Sharpe"), ("sortino", "Sortino"))),
    ("drawdown", ".1%", (("max_drawdown", "max drawdown"), ("ulcer_index", "Ulcer index"))),
    ("net profit / max drawdown", ".2f", (("recovery_factor", "recovery factor"),)),
    ("mean gross exposure", ".1%", (("exposure", "exposure"),)),
    ("mean entry notional (USD)", ",.0f", (("mean_position_usd", "mean position"),)),
)
_COLOURS = ("#1f77b4", "#ff7f0e")


def _value(level: SizingLevel, name: str) -> float:
    value = getattr(level, name)
    return float("nan") if value is None else float(value)


def level_metrics_figure(result: SizingResult) -> Figure:
    """Each metric against the level, in a 2 x 3 grid; the recommended level dotted in every panel."""
    cols, rows, gap_x, gap_y = 3, 2, 0.07, 0.16
    width, height = (1 - gap_x * (cols - 1)) / cols, (1 - gap_y * (rows - 1)) / rows
    levels = [x.level for x in result.levels]
    data: list[dict[str, Any]] = []
    layout: dict[str, Any] = {}
    shapes, titles = [], []
    for k, (title, tickformat, metrics) in enumerate(_PANELS):
        row, col = divmod(k, cols)
        suffix = "" if k == 0 else str(k + 1)
        x0 = col * (width + gap_x)
        y1 = 1 - row * (height + gap_y)
        layout[f"xaxis{suffix}"] = axis("level" if row == rows - 1 else "", domain=[x0, x0 + width],
                                        anchor=f"y{suffix}", tickformat=".2~%")
        layout[f"yaxis{suffix}"] = axis("", domain=[y1 - height, y1], anchor=f"x{suffix}", tickformat=tickformat)
        names = " and ".join(f'<span style="color:{colour}">{html.escape(label)}</span>'
                             for (_, label), colour in zip(metrics, _COLOURS))
        text = f"<b>{names}</b>" if len(metrics) > 1 else f"<b>{html.escape(title)}</b>"
        titles.append({"text": text, "x": x0 + width / 2, "y": y1, "xref": "paper",
                       "yref": "paper", "showarrow": False, "yanchor": "bottom", "xanchor": "center"})
        for (name, label), colour in zip(metrics, _COLOURS):
            data.append({"type": "scatter", "mode": "lines+markers", "name": label, "x": levels,
                         "y": typed([_value(x, name) for x in result.levels]), "xaxis": f"x{suffix}",
                         "yaxis": f"y{suffix}", "line": {"color": colour}, "showlegend": False,
                         "hovertemplate": f"{label} %{{y:{tickformat}}} at level %{{x:.3~%}}<extra></extra>"})
        if result.recommended is not None:
            shapes.append({"type": "line", "xref": f"x{suffix}", "yref": f"y{suffix} domain",
                           "x0": result.recommended.level, "x1": result.recommended.level, "y0": 0, "y1": 1,
                           "line": {"color": _PICK, "dash": "dot", "width": 1}})
    fig = figure(data, "Metrics by level (dotted: the recommended level)", height=640, hovermode="closest",
                 xaxis=layout.pop("xaxis"), yaxis=layout.pop("yaxis"), shapes=shapes, annotations=titles, **layout)
    fig["layout"]["margin"] = {"l": 60, "r": 20, "t": 80, "b": 50}
    return fig


def level_equity_figure(result: SizingResult) -> Figure:
    """Each level's equity curve (USD), light for small levels, dark for large; decimated."""
    n = len(result.levels)
    colours = sample_colorscale("Viridis", [0.85 * (1 - k / max(n - 1, 1)) for k in range(n)])
    data = []
    for level, colour in zip(result.levels, colours):
        shown = downsample(level.equity)
        width = 3 if result.recommended is not None and level.level == result.recommended.level else 1.3
        data.append({"type": "scatter", "mode": "lines", "name": level_label(level.level),
                     "x": plot_times(shown.index), "y": typed(shown.to_numpy()),
                     "line": {"color": colour, "width": width}})
    return figure(data, "Equity by level (thick: the recommended level)", yaxis=axis("equity (USD)", tickformat=",.0f"),
                  height=460)


def _pct(value: float | None) -> Cell:
    return fmt_pct(value), value


def _num(value: float | None) -> Cell:
    return fmt_num(value), value


def _levels_table(result: SizingResult) -> str:
    columns = [Column("Level", True), Column("Total return", True), Column("CAGR", True), Column("Sharpe", True),
               Column("Sortino", True), Column("Recovery factor", True), Column("Ulcer index", True),
               Column("Max drawdown", True), Column("Max drawdown (USD)", True), Column("Trades", True),
               Column("Denied: size rounds to 0", True), Column("Mean position (USD)", True), Column("Exposure", True),
               Column("Halted"), Column("Frontier"), Column("Recommended")]
    chosen = result.recommended.level if result.recommended is not None else None
    rows: list[list[Cell]] = []
    for x in result.levels:
        level = level_label(x.level) + (" (the run's)" if x.level == result.current else "")
        rows.append([(level, x.level), _pct(x.total_return), _pct(x.cagr), _num(x.sharpe), _num(x.sortino),
                     _num(x.recovery_factor), _pct(x.ulcer_index), _pct(x.max_drawdown),
                     (fmt_usd(x.max_drawdown_usd), x.max_drawdown_usd), (str(x.trades), x.trades),
                     (str(x.rounded_to_zero), x.rounded_to_zero), (fmt_usd(x.mean_position_usd), x.mean_position_usd),
                     _pct(x.exposure), fmt_time(pd.Timestamp(x.halted)) if x.halted else "no",
                     "yes" if x.on_frontier else "no",
                     "yes" if x.level == chosen else ""])
    return html_table("levels-table", columns, rows, sortable=True)


def _recommendation(result: SizingResult) -> str:
    name = result.key.partition(".")[2]
    parts = []
    if result.recommended is not None:
        x = result.recommended
        parts.append(f'<p id="recommended"><b>Recommended: {html.escape(name)} = {x.level:g}</b> '
                     f"({html.escape(level_label(x.level))} of equity)</p>")
        parts.append(paragraph(result.recommended_reason[:1].upper() + result.recommended_reason[1:] + "."))
        parts.append(paragraph(
            f"Total return {fmt_pct(x.total_return)}, CAGR {fmt_pct(x.cagr)}, Sharpe {fmt_num(x.sharpe)}, max "
            f"drawdown {fmt_pct(x.max_drawdown)} ({fmt_usd(x.max_drawdown_usd)}), Ulcer index "
            f"{fmt_pct(x.ulcer_index)}, recovery factor {fmt_num(x.recovery_factor)}, {x.trades} trades."))
        parts.append(f"<p>To apply it, in config.toml: <code>[risk] {html.escape(name)} = {x.level:g}</code> "
                     f"(the run has {result.current:g}).</p>")
    else:
        parts.append(f'<p id="recommended"><b>No recommendation</b>: {html.escape(result.recommended_reason)}.</p>')
    parts.append("<h3>Notes</h3><ul id=\"sizing-notes\">" + "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
                 + "</ul>")
    parts.append(note("A level is on the efficient frontier when no other level has a return at least as high with a "
                      "drawdown at least as small. Ulcer index: root mean square of the drawdown from the running peak "
                      "over every bar (Martin & McCann 1989). Recovery factor: net profit / max drawdown, both USD. "
                      "Sharpe and Sortino: annualized, daily returns."))
    return "\n".join(parts)


def _header(result: SizingResult) -> str:
    rows = [("Run", result.run_id), ("Strategy", result.strategy), ("Symbols", ", ".join(result.symbols)),
            ("Period (UTC)", f"{fmt_time(pd.Timestamp(result.period[0]))} .. {fmt_time(pd.Timestamp(result.period[1]))}"),
            ("Swept", f"{result.key}: {len(result.levels)} levels, {level_label(result.levels[0].level)} .. "
                      f"{level_label(result.levels[-1].level)} (the run's: {result.current:g})"),
            ("Drawdown tolerance", fmt_pct(result.max_drawdown)), ("Runtime", f"{result.runtime_s:.1f} s")]
    return html_table("sizing-info", [Column("Setting"), Column("Value")], [list(r) for r in rows])


def render_sizing_page(result: SizingResult) -> str:
    """Return the report as a complete HTML document.

    Raises
    ------
    ValueError
        If the result has no level.
    """
    if not result.levels:
        raise ValueError("a sizing report needs at least one level")
    chart = Charts()
    sections = [
        Section("recommendation", "Recommendation", _recommendation(result)),
        Section("frontier", "Efficient frontier", chart(frontier_figure(result), "frontier-chart")),
        Section("metrics", "Metrics by level", chart(level_metrics_figure(result), "metrics-chart")),
        Section("equity", "Equity by level", chart(level_equity_figure(result), "equity-chart")),
        Section("levels", "Levels", f'<div class="wide">{_levels_table(result)}</div>'),
    ]
    return render_page(f"tradingd sizing: {result.strategy}", f"{result.key} sweep of run {result.run_id}",
                       _header(result), sections)


def write_sizing_report(result: SizingResult, out_dir: str | Path) -> Path:
    """Write ``report.html`` into ``out_dir`` (created; through a temporary file) and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_page(out / "report.html", render_sizing_page(result))
