"""The ``tradingd robustness`` report: the score and its parts, one row per scenario, and equity
overlays per scenario kind (market periods, universes, stress, pessimistic assumptions).

Self-contained like every report (:mod:`research.reports.page`): plotly.js is inlined once, no
network request. Money in USD, returns and drawdowns in percent of the fractions, times UTC.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from research.reports.formatting import fmt_num, fmt_pct
from research.reports.page import Section, render_page, write_page
from research.reports.plotting import Charts, Figure, axis, downsample, figure, log_axis, plot_times, \
    spans_orders_of_magnitude, typed
from research.reports.tables import Column, html_table
from research.robustness_score import MIN_SCENARIO_TRADES, WEIGHTS

if TYPE_CHECKING:
    from research.robustness import RobustnessResult
    from research.variants import VariantResult

__all__ = ["KIND_TITLES", "robustness_html", "write_robustness_report"]

KIND_TITLES = {"period": "Market periods", "universe": "Universes", "stress": "Stress scenarios",
               "assumption": "Pessimistic assumptions"}
"""Section heading of each scenario kind."""
_PART_TITLES = {"profitable": "Scenarios profitable", "worst_sharpe": "Worst-case Sharpe vs base",
                "drawdown": "Worst drawdown vs the breaker limit", "cost": "Return kept under 2x costs"}
_BASE_COLOUR = "#222222"
_TABLE_STYLE = ("<style>#scenario-table td:nth-child(-n+9) { white-space: nowrap; } "
                "#scenario-table td:last-child { max-width: 360px; font-size: 92%; }</style>")


def _line(equity: pd.Series, name: str, **extra: Any) -> dict[str, Any]:
    shown = downsample(equity.astype(float))
    return {"type": "scatter", "mode": "lines", "name": name, "x": plot_times(shown.index),
            "y": typed(shown.to_numpy()), **extra}


def _overlay(kind: str, base: VariantResult, results: Sequence[VariantResult],
             windows: dict[str, tuple[int, int]]) -> Figure:
    """Base equity and each scenario's; periods are rebased to the base's equity where they start,
    so each sits on the base curve; stress windows are shaded."""
    data = [_line(base.equity, "base", line={"color": _BASE_COLOUR, "width": 1.5})]
    values = [base.equity.to_numpy(dtype=float)]
    for result in results:
        if not result.ok or not len(result.equity):
            continue
        equity = result.equity
        if kind == "period":
            at = int(np.clip(base.equity.index.searchsorted(equity.index[0], side="right") - 1, 0,
                             len(base.equity) - 1))
            equity = equity / float(equity.iloc[0]) * float(base.equity.iloc[at])
        data.append(_line(equity, result.name, line={"width": 2.5 if kind == "period" else 1.2}))
        values.append(equity.to_numpy(dtype=float))
    shapes = []
    for name, (start, end) in windows.items():
        if any(r.name == name for r in results):
            x0, x1 = plot_times(pd.DatetimeIndex(pd.to_datetime([start, end], unit="ns", utc=True)))
            shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": x0, "x1": x1, "y0": 0, "y1": 1,
                           "fillcolor": "#d62728", "opacity": 0.08, "line": {"width": 0}, "layer": "below"})
    joined = np.concatenate(values)
    joined = joined[np.isfinite(joined)]
    yaxis = (log_axis("USD (log scale)", joined, prefix="$") if spans_orders_of_magnitude(joined)
             else axis("USD", tickprefix="$", type="linear"))
    title = f"{KIND_TITLES[kind]}: equity (USD)" + (", rebased onto the base curve" if kind == "period" else "")
    return figure(data, title, yaxis, height=440, shapes=shapes)


def _score_body(result: RobustnessResult) -> str:
    score = result.score
    passed, why = result.verdict
    head = (f'<p id="score-value"><strong style="font-size:200%">{score.score:.1f}</strong> / 100 '
            f'<span class="muted">({"passed" if passed else "failed"}: {html.escape(why)})</span></p>')
    rows: list[list[Any]] = [[_PART_TITLES.get(name, name), (f"{score.parts[name]:.1f}", score.parts[name]),
             (f"{WEIGHTS[name]:g}", WEIGHTS[name]), (fmt_pct(score.fractions[name], 0), score.fractions[name]),
             score.details.get(name, "")] for name in WEIGHTS]
    table = html_table("score-parts", [Column("Part"), Column("Points", True), Column("Of", True),
                                       Column("Fraction", True), Column("Measured")], rows)
    weakest = score.weakest
    weak = ("" if weakest is None else
            f'<p id="weakest">Weakest scenario: <strong>{html.escape(weakest.name)}</strong> ({html.escape(weakest.kind)}'
            f"): Sharpe {fmt_num(weakest.sharpe)}, total return {fmt_pct(weakest.total_return)}, max drawdown "
            f"{fmt_pct(weakest.max_drawdown)}" + (f", failed: {html.escape(weakest.error)}" if weakest.error else "")
            + "</p>")
    formula = ('<p class="muted">Score = sum of the parts: 30 x share of scenarios profitable + 25 x clip(worst '
               "Sharpe of the whole-span scenarios / base Sharpe) + 25 x clip(2 - worst max drawdown / [risk] "
               "max_drawdown) + 20 x clip(lowest return under 2x slippage or commission / base return); clip to "
               f"[0, 1]. A scenario with fewer than {MIN_SCENARIO_TRADES} closed trades is thin: never profitable, and "
               "left out of the worst Sharpe and the weakest scenario while others are not thin. The run passes at "
               f"the pass score if its base replay closed at least {result.min_trades} trades.</p>")
    return head + weak + table + formula


def _period(row: dict[str, Any]) -> str:
    if not row["start"]:
        return ""
    return f"{str(row['start'])[:10]} – {str(row['end'])[:10]}"


def _scenario_table(result: RobustnessResult) -> str:
    rows: list[list[Any]] = []
    for row in result.rows():
        rows.append([row["name"], row["kind"], _period(row), (fmt_pct(row["total_return"]), row["total_return"]),
                     (fmt_num(row["sharpe"]), row["sharpe"]), (fmt_pct(row["max_drawdown"]), row["max_drawdown"]),
                     (str(row["trades"]) + (" (thin)" if row["thin"] and row["kind"] != "base" else ""), row["trades"]),
                     (fmt_pct(row["vs_base_return"]), row["vs_base_return"]),
                     (fmt_num(row["vs_base_sharpe"]), row["vs_base_sharpe"]),
                     f"failed: {row['error']}" if row["error"] else "ok"])
    columns = [Column("Scenario"), Column("Kind"), Column("Measured"), Column("Return", True),
               Column("Sharpe", True), Column("Max DD", True), Column("Trades", True),
               Column("Δ return", True), Column("Δ Sharpe", True), Column("Status")]
    return (_TABLE_STYLE + '<div class="wide">' + html_table("scenario-table", columns, rows, sortable=True) + "</div>"
            '<p class="muted">Δ = the scenario minus the base replay over the same span (a market period '
            "against that period of the run, a universe against the run over the universe's dates; return in "
            "percentage points). Sharpe annualized from daily returns; max drawdown of the full-resolution "
            "equity.</p>")


def robustness_html(result: RobustnessResult) -> str:
    """Return the report as one HTML document."""
    run = result.run
    sections = [Section("score", "Robustness score", _score_body(result)),
                Section("scenarios", "Scenarios", _scenario_table(result))]
    charts = Charts()
    for kind, title in KIND_TITLES.items():
        members = [r for r in result.scenarios if r.kind == kind]
        if not members:
            continue
        chart = charts(_overlay(kind, result.base, members, result.stress_windows), f"{kind}-chart")
        listed = "".join(f"<li><strong>{html.escape(r.name)}</strong>: {html.escape(r.label)}"
                         + (f" <span class=\"muted\">{html.escape(r.note)}</span>" if r.note else "")
                         + (f" <em>failed: {html.escape(r.error)}</em>" if r.error else "") + "</li>" for r in members)
        sections.append(Section(f"{kind}-section", title, chart + f"<ul>{listed}</ul>"))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    sections.append(Section("notes", "Notes", (
        f"<ul>{notes}</ul>" if notes else "<p>Every scenario applied.</p>") + (
        '<p class="muted">Market periods are the calendar quarters most dominated by each regime label of the '
        "benchmark (the engine's regime detector), each replayed with warm-up bars before it and measured from its "
        "start. Stress scenarios change only the bars of their window; later bars keep their returns.</p>")))
    params = ", ".join(f"{k}={v}" for k, v in run.params.items())
    span = (f"{result.base.start:%Y-%m-%d} .. {result.base.end:%Y-%m-%d}" if result.base.start is not None else "")
    header = (f'<p>Run <code>{html.escape(run.run_id)}</code>: <strong>{html.escape(run.strategy)}</strong> '
              f"({html.escape(params)}) on {html.escape(', '.join(run.symbols))}, {html.escape(run.timeframe)} bars, "
              f"{html.escape(span)}; {len(result.scenarios)} scenarios in {result.elapsed_s:.1f} s.</p>")
    return render_page(f"tradingd robustness: {run.strategy}", f"score {result.score.score:.1f} / 100", header,
                       sections)


def write_robustness_report(result: RobustnessResult, path: str | Path) -> Path:
    """Write :func:`robustness_html` to ``path`` (through a temporary file); return the path."""
    return write_page(path, robustness_html(result))
