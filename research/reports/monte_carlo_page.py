"""The Monte Carlo report (``tradingd montecarlo``): verdict, outcome percentiles, risk of ruin and
circuit-breaker trip probabilities, fan charts of the simulated equity paths and histograms of the
outcomes, as one self-contained HTML page (plotly.js inlined, no network).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from research.monte_carlo_result import LOWER_BOUNDS, NOTES, MonteCarloResult, quantiles
from research.monte_carlo_sims import BAND_PERCENTILES, METHODS, Simulations
from research.reports.formatting import fmt_num, fmt_pct
from research.reports.page import Section, note, render_page, write_page
from research.reports.plotting import Charts, Figure, axis, figure, plot_times, typed
from research.reports.tables import Cell, Column, html_table

__all__ = ["LABELS", "SECTION_IDS", "render_monte_carlo_page", "write_monte_carlo_report"]

LABELS = {"trade_shuffle": "Trade shuffle", "trade_bootstrap": "Trade bootstrap",
          "daily_bootstrap": "Daily block bootstrap", "price_noise": "Price noise", "cost_replays": "Cost replays"}
"""Display name of each method."""
SECTION_IDS = ("verdict", "outcomes", "risk", "fan-charts", "distributions", "methods")
"""Section anchors in page order."""
_COLOURS = {"trade_shuffle": "#1f77b4", "trade_bootstrap": "#ff7f0e", "daily_bootstrap": "#2ca02c",
            "price_noise": "#9467bd", "cost_replays": "#8c564b"}
_MIN_HISTOGRAM = 50  # fewer simulations than this are drawn as markers, not bars
_METRICS = (("total_return", "Total return", True), ("max_drawdown", "Max drawdown", True), ("sharpe", "Sharpe", False))
_HOW = {
    "trade_shuffle": "trade returns on account compounded in a random order (no replacement)",
    "trade_bootstrap": "trade returns drawn with replacement and compounded",
    "daily_bootstrap": "circular block bootstrap of daily returns (Politis & Romano 1992)",
    "price_noise": "entry and exit prices moved by N(0, noise) bps, returns recomputed, run order",
    "cost_replays": "re-replays with slippage and commission x U(1, 3)",
}


def _fmt(value: float | None, percent: bool) -> str:
    return fmt_pct(value) if percent else fmt_num(value)


def _verdict_section(r: MonteCarloResult) -> Section:
    ok, reason = r.verdict()
    ruin, method = r.risk_of_ruin()
    colour = "#1a9850" if ok else "#a50026"
    rows: list[Sequence[Cell]] = [
        ("verdict", "acceptable" if ok else "not acceptable"),
        ("risk of ruin", f"{fmt_pct(ruin)}: P(equity <= {1 - r.ruin:.0%} of start at some point), {LABELS[method]}"),
        ("simulations", f"{r.sims:,} per method, seed {r.seed}"
         + (f"; {r.simulations['cost_replays'].sims} cost replays" if "cost_replays" in r.simulations else "")),
        ("run", f"{r.run_id} ({r.strategy}); {r.actual.get('trades')} trades, {r.actual.get('days')} daily returns"),
        ("actual", f"total return {fmt_pct(r.actual.get('total_return'))}, max drawdown "
                   f"{fmt_pct(r.actual.get('max_drawdown'))}, Sharpe {fmt_num(r.actual.get('sharpe'))}; trades "
                   f"compounded in order {fmt_pct(r.actual.get('trade_path_return'))} (closed trades only)"),
        ("settings", f"ruin = losing {r.ruin:.0%}, price noise {r.noise_bps:g} bps, blocks of {r.block_days} days, "
                     f"{r.trades_per_year:.1f} trades and {r.days_per_year:.1f} days per year"),
    ]
    body = (f'<p id="verdict-text" style="font-weight:600;color:{colour}">{html.escape(reason)}</p>'
            + html_table("verdict-table", [Column("item"), Column("value")], rows))
    return Section("verdict", "Verdict", body)


def _outcomes_section(r: MonteCarloResult) -> Section:
    columns = [Column("Method"), Column("Outcome"), Column("Actual", True),
               *(Column(f"p{p}", True) for p in BAND_PERCENTILES), Column("Mean", True), Column("90% interval")]
    rows: list[list[Cell]] = []
    for name, s in r.simulations.items():
        for key, label, percent in _METRICS:
            q = quantiles(getattr(s, key))
            actual = r.actual_for(name)[key]
            rows.append([LABELS[name], label, (_fmt(actual, percent), actual),
                         *((_fmt(q[f"p{p}"], percent), q[f"p{p}"]) for p in BAND_PERCENTILES),
                         (_fmt(q["mean"], percent), q["mean"]),
                         f"{_fmt(q['p5'], percent)} .. {_fmt(q['p95'], percent)}"])
    explained = note("Percentiles of each method's simulations; the 90% interval is [p5, p95]. Actual: the run's "
                     "closed trades compounded in order (per-trade Sharpe) for the trade methods, its equity curve "
                     "(daily Sharpe) for the others. A trade shuffle cannot change the final return or the per-trade "
                     "Sharpe (a product and a mean do not depend on order): read its drawdown; the bootstrap gives "
                     "the return's spread.")
    return Section("outcomes", "Outcomes", explained + html_table("outcomes-table", columns, rows, sortable=True))


def _risk_section(r: MonteCarloResult) -> Section:
    ruin = r.ruin_by_method()
    ruin_rows: list[Sequence[Cell]] = [(LABELS[m], (fmt_pct(p), p)) for m, p in ruin.items()]
    ruin_table = html_table("ruin-table", [Column("Method"), Column(f"P(lose {r.ruin:.0%})", True)], ruin_rows)
    probs = r.breaker_probabilities()
    limits = r.limits
    breakers = [("max_drawdown", "max_drawdown", "daily bootstrap: a path's drawdown reaches the limit",
                 fmt_pct(limits["max_drawdown"])),
                ("daily_loss", "daily_loss_limit", "daily bootstrap: some day loses at least the limit",
                 fmt_pct(limits["daily_loss_limit"])),
                ("consecutive_losses", "max_consecutive_losses", "trade shuffle: a losing streak reaches the limit",
                 "n/a" if limits["max_consecutive_losses"] is None else f"{limits['max_consecutive_losses']:g} trades")]
    rows: list[Sequence[Cell]] = [(f"[risk] {key}", limit, how, (_trip(name, probs[name]), probs[name]))
                                  for name, key, how, limit in breakers]
    breaker_table = html_table("breaker-table", [Column("Circuit breaker"), Column("Limit"), Column("Measured on"),
                                                 Column("P(trip)", True)], rows)
    return Section("risk", "Risk of ruin and circuit breakers",
                   "<h3>Risk of ruin</h3>" + ruin_table
                   + note("The headline risk of ruin is the largest over the simulated methods (cost replays are too "
                          "few for a small probability).")
                   + "<h3>Probability of tripping each circuit breaker</h3>" + breaker_table
                   + note("Not configured: n/a. The max-drawdown and daily-loss probabilities are lower bounds "
                          "(\"at least\"): the daily bootstrap sees close-to-close UTC daily returns, while the "
                          "breakers trip intraday, on any bar, against the equity high-water mark and the day's "
                          "start equity."))


def _trip(name: str, probability: float | None) -> str:
    """A trip probability as shown: ``"at least 4.10%"`` for the lower bounds (:data:`LOWER_BOUNDS`)."""
    text = fmt_pct(probability)
    bounded = name in LOWER_BOUNDS and probability is not None and math.isfinite(probability)
    return f"at least {text}" if bounded else text


def _fan_figure(r: MonteCarloResult, s: Simulations) -> Figure:
    if s.times is not None:
        x: Any = plot_times(s.times)
        xaxis = axis("time (UTC)")
    else:
        x = typed(s.steps.astype(float))
        xaxis = axis("trade number")
    colour = _COLOURS[s.method]
    usd = s.bands * r.starting_cash

    def line(values: np.ndarray, name: str, **extra: Any) -> dict[str, Any]:
        return {"type": "scatter", "mode": "lines", "x": x, "y": typed(values), "name": name,
                "hovertemplate": "%{y:$,.0f}", **extra}

    data = [line(usd[0], "p5", line={"width": 0}, showlegend=False),
            line(usd[4], "p5-p95", line={"width": 0}, fill="tonexty", fillcolor=_rgba(colour, 0.18)),
            line(usd[1], "p25", line={"width": 0}, showlegend=False),
            line(usd[3], "p25-p75", line={"width": 0}, fill="tonexty", fillcolor=_rgba(colour, 0.35)),
            line(usd[2], "median", line={"color": colour, "width": 2}),
            line(s.actual * r.starting_cash, "actual run", line={"color": "#222", "width": 1.5, "dash": "dot"})]
    return figure(data, f"{LABELS[s.method]}: equity percentiles of {s.sims:,} paths", axis("equity (USD)"),
                  height=380, xaxis=xaxis)


def _rgba(colour: str, alpha: float) -> str:
    red, green, blue = (int(colour[k:k + 2], 16) for k in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def _histogram_figure(r: MonteCarloResult, key: str, label: str, percent: bool) -> Figure:
    """Histograms of one outcome, a bar series per method on shared bins (share of that method's
    simulations). A method whose simulations all agree (a shuffle's return) or that has fewer than
    :data:`_MIN_HISTOGRAM` of them (cost replays) is drawn as markers on the axis instead: a bar
    of 100% would flatten every other method's."""
    samples = [(m, getattr(s, key)[np.isfinite(getattr(s, key))]) for m, s in r.simulations.items()]
    samples = [(m, v) for m, v in samples if len(v)]
    data: list[dict[str, Any]] = []
    shapes: list[dict[str, Any]] = []
    hover = f"%{{x:{'.2%' if percent else '.2f'}}}"
    if samples:
        values = np.concatenate([v for _, v in samples])
        low, high = np.quantile(values, [0.001, 0.999])
        edges = np.histogram_bin_edges(np.clip(values, low, high), bins=60)
        centres, width = (edges[:-1] + edges[1:]) / 2, float(edges[1] - edges[0])
        for method, v in samples:
            counts, _ = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)
            marker = {"color": _COLOURS[method], "symbol": "diamond", "size": 11}
            if len(v) < _MIN_HISTOGRAM:  # each simulation a marker
                data.append({"type": "scatter", "mode": "markers", "name": f"{LABELS[method]} ({len(v)})",
                             "x": typed(v), "y": typed(np.zeros(len(v))), "cliponaxis": False, "marker": marker,
                             "hovertemplate": hover + f"<extra>{LABELS[method]}</extra>"})
                continue
            if np.count_nonzero(counts) <= 2:  # all in a bin or two: the median and its 90% interval
                q5, q50, q95 = np.percentile(v, [5, 50, 95])
                same = float(v.max() - v.min()) <= 1e-9 * max(1.0, float(np.abs(v).max()))
                data.append({"type": "scatter", "mode": "markers", "x": typed([q50]), "y": typed([0.0]),
                             "name": f"{LABELS[method]} ({'all identical' if same else 'median, p5-p95'})",
                             "error_x": {"type": "data", "symmetric": False, "array": typed([q95 - q50]),
                                         "arrayminus": typed([q50 - q5]), "color": _COLOURS[method]},
                             "cliponaxis": False, "marker": marker,
                             "hovertemplate": hover + f"<extra>{LABELS[method]}</extra>"})
                continue
            data.append({"type": "bar", "name": LABELS[method], "x": typed(centres), "y": typed(counts / len(v)),
                         "width": width, "opacity": 0.55, "marker": {"color": _COLOURS[method]},
                         "hovertemplate": hover + ": %{y:.1%} of simulations"})
    lines = [(r.actual_for("daily_bootstrap")[key], "#222"), (r.actual_for("trade_shuffle")[key], "#888")]
    if key == "max_drawdown":
        lines.append((r.limits.get("max_drawdown"), "#a50026"))
    for value, colour in lines:
        if value is not None:
            shapes.append({"type": "line", "x0": value, "x1": value, "yref": "paper", "y0": 0, "y1": 1,
                           "line": {"color": colour, "dash": "dash", "width": 1.5}})
    return figure(data, label, axis("share of simulations", tickformat=".0%"),
        height=340, xaxis=axis(label.lower(), tickformat=".0%" if percent else ".2f"), hovermode="closest",
        barmode="overlay", shapes=shapes)


def _streak_figure(r: MonteCarloResult) -> Figure:
    streaks = {m: s.losing_streak for m, s in r.simulations.items() if s.losing_streak is not None}
    top = max(int(v.max()) for v in streaks.values()) if streaks else 0
    x = np.arange(top + 1, dtype=float)
    data = [{"type": "bar", "name": LABELS[m], "x": typed(x), "y": typed(np.bincount(v, minlength=top + 1) / len(v)),
             "marker": {"color": _COLOURS[m]}, "hovertemplate": "%{x} losses in a row: %{y:.1%}"}
            if len(v) >= _MIN_HISTOGRAM else
            {"type": "scatter", "mode": "markers", "name": f"{LABELS[m]} ({len(v)})", "x": typed(v.astype(float)),
             "y": typed(np.zeros(len(v))), "cliponaxis": False,
             "marker": {"color": _COLOURS[m], "symbol": "diamond", "size": 11}}
            for m, v in streaks.items()]
    limit = r.limits.get("max_consecutive_losses")
    shapes = [] if limit is None else [{"type": "line", "x0": limit - 0.5, "x1": limit - 0.5, "yref": "paper", "y0": 0,
                                        "y1": 1, "line": {"color": "#a50026", "dash": "dash", "width": 1.5}}]
    return figure(data, "Longest losing streak",
                  axis("share of simulations", tickformat=".0%"), height=340,
                  xaxis=axis("losing trades in a row"), hovermode="closest", barmode="group", shapes=shapes)


def render_monte_carlo_page(result: MonteCarloResult) -> str:
    """Return the report as a complete HTML document (sections :data:`SECTION_IDS`)."""
    chart = Charts()
    fans = "".join(chart(_fan_figure(result, result.simulations[m]), f"fan-{m.replace('_', '-')}")
                   for m in METHODS if m in result.simulations)
    histograms = "".join(chart(_histogram_figure(result, key, label, percent), f"hist-{key.replace('_', '-')}")
                         for key, label, percent in _METRICS) + chart(_streak_figure(result), "hist-losing-streak")
    methods = html_table("methods-table", [Column("Method"), Column("What is simulated")],
                         [(LABELS[m], _HOW[m]) for m in METHODS if m in result.simulations])
    sections = [
        _verdict_section(result), _outcomes_section(result), _risk_section(result),
        Section("fan-charts", "Fan charts",
                note("Percentile bands of the simulated equity (USD) by trade number or day; dotted: the run's own "
                     "path (closed trades only for the trade methods).") + fans),
        Section("distributions", "Distributions",
                note("Share of each method's simulations per bin. Dashed lines: the run's own value (black: its "
                     "equity curve; grey: its closed trades compounded in order); red: the [risk] limit of the "
                     "circuit breaker. A method whose simulations fall in one or two bins shows its median and "
                     "p5-p95 as a marker; fewer than 50 simulations show one marker each.") + histograms),
        Section("methods", "Methods", methods + "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in NOTES)
                + "</ul>"),
    ]
    header = (f'<p id="run-info">{html.escape(result.strategy)} | run {html.escape(result.run_id)} | '
              f"{result.sims:,} simulations per method | seed {result.seed}</p>")
    return render_page(f"Monte Carlo: {result.strategy}", f"tradingd montecarlo {result.run_id}", header, sections)


def write_monte_carlo_report(result: MonteCarloResult, out_dir: str | Path) -> Path:
    """Write ``report.html`` into ``out_dir`` (created; written to a temporary name and moved into
    place, so a reader never sees half a file) and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_page(out / "report.html", render_monte_carlo_page(result))
