"""The study report: one self-contained HTML page, ``summary.txt`` and ``report.pdf`` per study.

:func:`write_study_report` is the entry point the ``tradingd optimize`` and ``tradingd
walkforward`` commands call with their result. It analyses the study once
(:func:`research.reports.study_analysis.analyse_study`) and writes, into the study's output folder:

* ``report.html``: plotly charts with plotly.js inlined (no network request), built from the
  blocks of :mod:`research.reports` (page shell, tables, plot helpers);
* ``summary.txt``: :func:`research.reports.study_text.summary_text`;
* ``report.pdf``: :func:`research.reports.study_pdf.write_study_pdf` (matplotlib).

HTML sections (``<section id=...>``, in order; :data:`SECTION_IDS`): optimization summary,
recommended configuration, top 10 sets (sortable, ``id="top-sets"``), overfitting statistics
(``id="overfitting-stats"``, score parts ``id="verdict-parts"``, IS/OOS ``id="degradation-table"``),
parameter sensitivity (``id="sensitivity-table"``), parameter importance, heat map, 3-D surface,
parallel coordinates, Pareto front, equity and drawdown of the top sets, walk-forward folds
(``id="folds-table"``) and stitched OOS equity (walk-forward only), implementation notes, and
every trial (sortable, ``id="all-trials"``).
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from research.optimize import StudyData, StudyResult
from research.reports.formatting import NOT_AVAILABLE
from research.reports.page import Section, render_page
from research.reports.plotting import Figure, render
from research.reports.study_analysis import StudyAnalysis, analyse_study
from research.reports.study_fig_curves import (top_drawdown_figure, top_equity_figure, walk_forward_bars_figure,
                                               walk_forward_equity_figure, walk_forward_steps_figure)
from research.reports.study_fig_landscape import (heatmap_figure, importance_figure, parallel_figure, pareto_figure,
                                                  surface_figure)
from research.reports.study_fig_overfitting import pbo_figure, verdict_figure
from research.reports.study_fig_sensitivity import sensitivity_figure
from research.reports.study_format import fmt_metric, param_name
from research.reports.study_pdf import write_study_pdf
from research.reports.study_replays import TOP_SETS
from research.reports.study_text import config_snippet, params_text, summary_text
from research.reports.tables import Cell, Column, html_table

__all__ = ["MAX_TRIAL_ROWS", "REPORT_FILES", "SECTION_IDS", "render_study_page", "write_study_report"]

REPORT_FILES = ("report.html", "summary.txt", "report.pdf")
"""Files :func:`write_study_report` writes."""
SECTION_IDS = ("summary", "recommended", "top-sets-section", "overfitting", "sensitivity", "importance", "heatmap",
               "surface", "parallel", "pareto", "top-equity", "walk-forward-folds", "walk-forward-equity",
               "implementation", "trials")
"""Section anchors in page order (the two walk-forward ones only with a walk-forward result)."""
MAX_TRIAL_ROWS = 2000
"""Most trials listed in the page's trial table (all are in trials.csv)."""


class _Charts:
    """Renders figures in page order; the first one carries plotly.js inline."""

    def __init__(self) -> None:
        self.first = True

    def __call__(self, build: Callable[[StudyAnalysis], Figure], analysis: StudyAnalysis, div_id: str) -> str:
        try:
            fig = build(analysis)
        except ValueError as exc:  # the figure does not apply to this study: say why instead
            return f'<p class="muted" id="{html.escape(div_id)}-missing">{html.escape(str(exc))}</p>'
        out = render(fig, div_id, include_plotlyjs=self.first)
        self.first = False
        return out


def _kv_table(table_id: str, rows: list[tuple[str, str]]) -> str:
    return html_table(table_id, [Column("item"), Column("value")], rows)


def _p(text: str, klass: str = "") -> str:
    attr = f' class="{klass}"' if klass else ""
    return f"<p{attr}>{html.escape(text)}</p>"


def _summary_section(a: StudyAnalysis) -> Section:
    r = a.result
    counts = r.counts()
    rows = [("study", f"{r.study_name} ({r.storage})"), ("strategy", r.strategy), ("space", r.space.source),
            ("searched", ", ".join(param_name(k) for k in r.space.keys)),
            ("method", r.method + (f" ({r.grid_size:,} grid combinations)" if r.grid_size else "")
             + f", seed {r.seed}, pruning {'on' if r.pruning else 'off'}"),
            ("objective", ", ".join(f"{n} ({d})" for n, d in zip(r.objectives, r.directions))),
            ("period", f"{r.period[0]} .. {r.period[1]} ({r.timeframe} bars)"),
            ("trials", f"{len(r.trials)} in the study: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))),
            ("filters", f"min trades {r.filters.min_trades}, max drawdown {r.filters.max_drawdown or 'none'}, "
                        f"min win rate {r.filters.min_win_rate or 'none'}"),
            ("runtime", f"{r.runtime_s:.1f} s ({r.new_trials} trials this run, {r.replays} replays, "
                        f"{r.cache_hits} from the cache)")]
    if a.walk_forward is not None:
        rows.insert(0, ("scope", "the study of the final training window (its best set is the one for the next live "
                                 "period); the walk-forward sections judge the method out of sample"))
    return Section("summary", "Optimization summary", _kv_table("study-summary", rows))


def _recommended_section(a: StudyAnalysis) -> Section:
    rec = a.recommendation
    if rec is None:
        return Section("recommended", "Recommended configuration",
                       _p("No trial passed the filters: nothing to recommend. Relax the filters or widen the search."))
    m = rec.trial.metrics or {}
    rows = [("parameters", f"{params_text(rec.params)} (trial {rec.trial.number}, rank {rec.rank})"),
            ("why", rec.reason),
            ("confidence", f"{rec.confidence}: {'; '.join(rec.confidence_reasons) or 'no warning sign'}"),
            ("backtest", f"Sharpe {fmt_metric('sharpe', m.get('sharpe'))}, CAGR {fmt_metric('cagr', m.get('cagr'))}, "
                         f"max drawdown {fmt_metric('max_drawdown', m.get('max_drawdown'))}, win rate "
                         f"{fmt_metric('win_rate', m.get('win_rate'))}, {fmt_metric('trades', m.get('trades'))} trades")]
    if rec.sharpe_interval is not None:
        lo, hi = rec.sharpe_interval
        rows.append(("Sharpe 95% interval", f"{lo:.2f} .. {hi:.2f} (annualised; non-normal standard error of the "
                                            "daily returns, Mertens 2002)"))
    if rec.oos_range is not None:
        objective = a.landscape.objective
        rows.append((f"OOS {objective} range", f"{fmt_metric(objective, rec.oos_range[0])} .. "
                                               f"{fmt_metric(objective, rec.oos_range[1])} over the walk-forward folds"))
    badge = {"high": "#1a9850", "medium": "#e08214", "low": "#d73027"}[rec.confidence]
    body = (f'<p id="confidence" style="font-size:120%">Confidence: <b style="color:{badge}">'
            f"{html.escape(rec.confidence.upper())}</b></p>" + _kv_table("recommended-table", rows)
            + "<h3>Config file tables</h3><pre id=\"config-snippet\" style=\"white-space: pre-wrap\">"
            + html.escape(config_snippet(a.result.strategy, rec)) + "</pre>")
    return Section("recommended", "Recommended configuration", body)


def _trial_rows(a: StudyAnalysis, trials: list[Any], rank: bool) -> tuple[list[Column], list[list[Cell]]]:
    keys = a.result.space.keys
    shown = ("sharpe", "total_return", "cagr", "max_drawdown", "win_rate", "profit_factor", "trades")
    columns = ([Column("rank", True)] if rank else []) + [Column("trial", True)] + \
        [Column(param_name(k), True) if all(isinstance(t.params.get(k), (int, float)) for t in trials) else
         Column(param_name(k)) for k in keys] + [Column(m.replace("_", " "), True) for m in shown]
    if not rank:
        columns += [Column("status"), Column("reason")]
    rows: list[list[Cell]] = []
    for i, t in enumerate(trials, 1):
        m = t.metrics or {}
        row: list[Cell] = ([(str(i), i)] if rank else []) + [(str(t.number), t.number)]
        for k in keys:
            v = t.params.get(k)
            row.append((f"{v:.6g}" if isinstance(v, float) else str(v), v) if isinstance(v, (int, float))
                       and not isinstance(v, bool) else str(v))
        for name in shown:
            value = m.get(name)
            row.append((fmt_metric(name, value), value if isinstance(value, (int, float)) else None))
        if not rank:
            row += [t.status, t.reason]
        rows.append(row)
    return columns, rows


def _top_section(a: StudyAnalysis) -> Section:
    ranked = a.result.ranked[:10]
    if not ranked:
        return Section("top-sets-section", "Top 10 parameter sets", _p("No trial passed the filters."))
    columns, rows = _trial_rows(a, ranked, rank=True)
    return Section("top-sets-section", "Top 10 parameter sets",
                   _p("Ranked by " + ", ".join(a.result.objectives) + "; each parameter set once. Click a header "
                      "to sort.", "muted")
                   + f'<div class="wide">{html_table("top-sets", columns, rows, sortable=True)}</div>')


def _num(value: float | None, digits: int = 3) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.{digits}f}"


def _overfitting_section(a: StudyAnalysis, chart: _Charts) -> Section:
    b = a.overfitting
    if b.source == "not computed":
        return Section("overfitting", "Overfitting statistics", "".join(_p(n, "muted") for n in b.notes)
                       + '<table id="overfitting-stats"><tbody><tr><td>not computed</td></tr></tbody></table>')
    trl = NOT_AVAILABLE if b.min_trl is None else ("never (Sharpe <= 0)" if not math.isfinite(b.min_trl) else
                                                  f"{b.min_trl:.0f} daily returns"
                                                  + (f" ({b.min_trl_years:.1f} years)" if b.min_trl_years else "")
                                                  + (f"; have {b.have_obs}" + (" (enough)" if b.have_obs >= b.min_trl
                                                                               else " (not enough)")
                                                     if b.have_obs is not None else ""))
    judged = "stitched out-of-sample curve" if b.source == "walk_forward" else "best set"
    rows: list[tuple[str, str]] = [
        ("judged series", f"{judged}: Sharpe {_num(b.sharpe, 2)} annualised ({_num(b.sharpe_period, 4)} per day), "
                          f"skew {_num(b.skew, 2)}, kurtosis {_num(b.kurtosis, 2)} (normal = 3), {b.n_obs or '?'} days"),
        ("PSR (Sharpe > 0)", f"{_num(b.psr)}  (Bailey & López de Prado 2012)"),
        ("DSR", f"{_num(b.dsr)}  over {b.n_trials if b.n_trials is not None else '?'} trials"
                + (f", per-day Sharpe variance {_num(b.sr_variance, 6)}" if b.sr_variance is not None else "")
                + " (Bailey & López de Prado 2014; significant at 5% above 0.95)"),
        ("MinTRL (95%)", trl),
        ("PBO (CSCV)", f"{_num(b.pbo)}" + (f"  over {b.pbo_combinations:,} combinations of {b.pbo_splits} blocks"
                                            if b.pbo_combinations else "")
         + (f"; P(OOS loss) {_num(b.prob_oos_loss)}" if b.prob_oos_loss is not None else "")
         + "  (Bailey, Borwein, López de Prado, Zhu 2017; flagged above 0.5)")]
    if b.oos_dsr is not None:
        rows.append(("OOS DSR", f"{_num(b.oos_dsr)}  ({b.basis.get('oos_dsr', 'over the steps compared')})"))
    for key, text in b.basis.items():
        if key != "oos_dsr":
            rows.append((f"basis of {key}", text))
    if b.score is not None:
        rows.append(("overfitting score", f"{b.score:.0f}/100 ({b.level})"))
    body = html_table("overfitting-stats", [Column("statistic"), Column("value")], rows)
    if b.score is not None:
        body += f'<p id="remedy"><b>Suggested remedy:</b> {html.escape(b.remedy() or NOT_AVAILABLE)}</p>'
        body += chart(verdict_figure, a, "verdict-chart")
        parts: list[list[Cell]] = [[str(p["name"]).replace("_", " "), (f"{float(p['points'] or 0):.1f}", p["points"]),
                                    (f"{float(p['weight'] or 0):.1f}", p["weight"]),
                                    (f"{float(p['severity'] or 0):.2f}", p["severity"]),
                                    "FLAG" if p["flagged"] else "", str(p["detail"])] for p in b.parts()]
        body += "<h3>Score parts</h3>" + html_table(
            "verdict-parts", [Column("check"), Column("points", True), Column("of", True), Column("severity", True),
                              Column("flag"), Column("detail")], parts)
        degradations = b.degradations()
        if degradations:
            rows2: list[list[Cell]] = []
            for d in degradations:
                metric = str(d["metric"])
                rows2.append([metric.replace("_", " "), (fmt_metric(metric, d["in_sample"]), d["in_sample"]),
                              (fmt_metric(metric, d["out_of_sample"]), d["out_of_sample"]),
                              (fmt_metric("total_return", d["degradation"]), d["degradation"]),
                              "FLAG" if d["flagged"] else ""])
            source = {"cscv": "mean over CSCV combinations of the in-sample best trial on its IS and OOS halves",
                      "holdout": "the best set on a holdout", "walk_forward": "means over the walk-forward folds"}
            body += (f"<h3>In sample vs out of sample ({html.escape(source.get(b.degradation_source or '', ''))})</h3>"
                     + html_table("degradation-table", [Column("metric"), Column("in sample", True),
                                                        Column("out of sample", True), Column("degradation", True),
                                                        Column("flag (> 30%)")], rows2))
    if b.logits:
        body += chart(pbo_figure, a, "pbo-chart")
    if b.folds:
        fold_rows: list[list[Cell]] = [[(str(int(f.get("fold", 0)) + 1), f.get("fold")),
                                        (_num(f.get("psr")), f.get("psr")), (_num(f.get("dsr")), f.get("dsr")),
                                        (_num(f.get("pbo")), f.get("pbo")), (str(f.get("tried")), f.get("tried")),
                                        (_num(f.get("verdict_score"), 0), f.get("verdict_score"))] for f in b.folds]
        body += "<h3>Per fold (each training window's study)</h3>" + html_table(
            "fold-statistics", [Column("fold", True), Column("PSR", True), Column("DSR", True), Column("PBO", True),
                                Column("trials", True), Column("score", True)], fold_rows)
    body += "".join(_p(n, "muted") for n in b.notes)
    return Section("overfitting", "Overfitting statistics", body)


def _sensitivity_section(a: StudyAnalysis, chart: _Charts) -> Section:
    objective = a.landscape.objective
    intro = _p(f"Neighbour drop: the mean loss of {objective} one step either side of the best value (every other "
               "choice for a categorical parameter), as a share of max(|best|, range over the trials); robust "
               "(flat) at most 10%, fragile (sharp) from 30%. The profile runs through the best set (the other "
               "parameters at their best values), or for sampled studies through the best trial at each value.",
               "muted")
    rows: list[list[Cell]] = []
    for s in a.sensitivity:
        rows.append([s.name, s.verdict, (_num(None if s.neighbour_drop is None else 100 * s.neighbour_drop, 0) + "%"
                                         if s.neighbour_drop is not None else NOT_AVAILABLE, s.neighbour_drop),
                     (_num(None if s.range_drop is None else 100 * s.range_drop, 0) + "%"
                      if s.range_drop is not None else NOT_AVAILABLE, s.range_drop),
                     s.labels[s.best_level], s.basis])
    table = html_table("sensitivity-table", [Column("parameter"), Column("verdict"), Column("neighbour drop", True),
                                             Column("full range", True), Column("best value"), Column("profile")], rows)
    robust = [s.name for s in a.sensitivity if s.verdict == "robust"]
    fragile = [s.name for s in a.sensitivity if s.verdict == "fragile"]
    named = _p(f"Robust: {', '.join(robust) or 'none'}. Fragile: {', '.join(fragile) or 'none'}.")
    figure_html = chart(sensitivity_figure, a, "sensitivity-chart") if a.sensitivity else _p("No scored trial.")
    return Section("sensitivity", "Parameter sensitivity", intro + named + table + figure_html)


def _importance_section(a: StudyAnalysis, chart: _Charts) -> Section:
    if not a.importance:
        return Section("importance", "Parameter importance", _p("No scored trial."))
    note = _p("PED-ANOVA (Watanabe et al. 2023, optuna.importance) measures how much each parameter decides "
              "whether a trial reaches the top quantile; eta^2 is the share of the objective's variance explained "
              "by the parameter's values. Both sum to 100%.", "muted")
    return Section("importance", "Parameter importance", note + chart(importance_figure, a, "importance-chart"))


def _pair_sections(a: StudyAnalysis, chart: _Charts) -> list[Section]:
    why = _p("; ".join(n for n in a.notes if "heat map" in n) or "no parameter pair", "muted")
    if a.pair is None:
        return [Section("heatmap", "Heat map", why), Section("surface", "3-D surface", why)]
    return [Section("heatmap", f"Heat map: {param_name(a.pair.y_key)} x {param_name(a.pair.x_key)}",
                    _p("The two most important parameters; each cell shows the best trial with those values (the "
                       "other parameters free). A broad green plateau around the outlined best set is what holds out of "
                       "sample.",
                       "muted") + chart(heatmap_figure, a, "heatmap-chart")),
            Section("surface", "3-D surface", chart(surface_figure, a, "surface-chart"))]


def _equity_section(a: StudyAnalysis, chart: _Charts) -> Section:
    if not a.replays:
        return Section("top-equity", f"Top {TOP_SETS}: equity and drawdown",
                       _p("; ".join(n for n in a.notes if "equity" in n) or "no ranked trial", "muted"))
    rows: list[list[Cell]] = []
    for r in a.replays:
        row: list[Cell] = [(f"#{r.rank}", r.rank), params_text(r.trial.params)]
        row += [(fmt_metric(k, r.metrics.get(k)), r.metrics.get(k)) for k in ("sharpe", "cagr", "max_drawdown", "trades")]
        rows.append(row)
    table = html_table("top-equity-table", [Column("rank", True), Column("parameters"), Column("Sharpe", True),
                                            Column("CAGR", True), Column("max drawdown", True), Column("trades", True)],
                       rows)
    return Section("top-equity", f"Top {len(a.replays)}: equity and drawdown",
                   _p("Each set replayed on the study's bars (the same runs the tables report); buy & hold of the "
                      "same symbols, equal weight, dashed.", "muted")
                   + chart(top_equity_figure, a, "top-equity-chart") + chart(top_drawdown_figure, a, "top-drawdown-chart")
                   + table)


def _walk_forward_sections(a: StudyAnalysis, chart: _Charts) -> list[Section]:
    wf = a.walk_forward
    if wf is None:
        return []
    objective = a.landscape.objective
    rows: list[list[Cell]] = []
    for f in wf.folds:
        d = f.degradation.get(objective)
        rows.append([(str(f.number), f.number),
                     f"{f.train_start:%Y-%m-%d} .. {f.train_end:%Y-%m-%d}" if f.train_start and f.train_end else "",
                     f"{f.test_start:%Y-%m-%d} .. {f.test_end:%Y-%m-%d}" if f.test_start and f.test_end else "",
                     params_text(f.params) if f.params else f"in cash ({f.status})",
                     (fmt_metric(objective, f.in_sample.get(objective)), f.in_sample.get(objective)),
                     (fmt_metric(objective, f.out_of_sample.get(objective)), f.out_of_sample.get(objective)),
                     (fmt_metric("total_return", d), d),
                     (fmt_metric("total_return", f.out_of_sample.get("total_return")),
                      f.out_of_sample.get("total_return")), (_num(f.efficiency, 2), f.efficiency)])
    folds = html_table("folds-table", [Column("fold", True), Column("train"), Column("test"), Column("parameters"),
                                       Column(f"IS {objective}", True), Column(f"OOS {objective}", True),
                                       Column("degradation", True), Column("OOS return", True),
                                       Column("efficiency", True)], rows, sortable=True)
    stab_rows: list[tuple[str, str]] = [("score", f"{_num(wf.stability.get('score'), 2)} (1 = the same set every fold)")]
    for key, entry in (wf.stability.get("params") or {}).items():
        stab_rows.append((param_name(key), f"{'stable' if entry.get('stable') else 'unstable'}: mode "
                                           f"{entry.get('mode')} in {fmt_metric('win_rate', entry.get('mode_share'))} "
                                           f"of folds, {entry.get('changes')} changes, values {entry.get('values')}"))
    first = Section("walk-forward-folds", "Walk-forward: in sample vs out of sample",
                    chart(walk_forward_bars_figure, a, "walk-forward-bars")
                    + "<style>#folds-table td:nth-child(-n+3) { white-space: nowrap; }</style>"
                    + f'<div class="wide">{folds}</div>' + "<h3>Parameter stability</h3>"
                    + _kv_table("stability-table", stab_rows))
    m, bm = wf.oos_metrics, wf.benchmark_metrics
    summary: list[list[Cell]] = []
    for name in ("total_return", "cagr", "sharpe", "max_drawdown", "trades"):
        summary.append([name.replace("_", " "), (fmt_metric(name, m.get(name)), m.get(name)),
                        (fmt_metric(name, bm.get(name)), bm.get(name))])
    compare = html_table("walk-forward-summary", [Column("metric"), Column("stitched OOS", True),
                                                  Column(wf.benchmark_label, True)], summary)
    facts = _kv_table("walk-forward-facts", [
        ("walk-forward efficiency", f"{_num(wf.efficiency, 2)} (mean OOS CAGR / mean IS CAGR, Pardo 2008); of "
                                    f"Sharpe ratios {_num(wf.sharpe_efficiency, 2)}"),
        ("profitable OOS folds", fmt_metric("win_rate", wf.profitable_share)),
        ("windows", f"{'anchored' if wf.settings.get('anchored') else 'rolling'}: train {wf.settings.get('train')}, "
                    f"test {wf.settings.get('test')}, step {wf.settings.get('step')}")]
        + ([("best re-optimization step", str(wf.best_step))] if wf.best_step else [])
        + ([("regime-aware", f"Sharpe {fmt_metric('sharpe', wf.regime['oos_metrics'].get('sharpe'))} vs single set "
                             f"{fmt_metric('sharpe', wf.regime['single_metrics'].get('sharpe'))}: "
                             + ("regime sets better" if wf.regime["better"] else "single set as good or better"))]
           if wf.regime is not None else []))
    steps = chart(walk_forward_steps_figure, a, "walk-forward-steps") if wf.steps else ""
    second = Section("walk-forward-equity", "Walk-forward: stitched out-of-sample equity",
                     chart(walk_forward_equity_figure, a, "walk-forward-equity-chart") + compare + facts + steps)
    return [first, second]


def _implementation_section(text: str) -> Section:
    block = text.split("implementation notes\n", 1)
    body = block[1].split("\n\n", 1)[0] if len(block) == 2 else "nothing to apply"
    return Section("implementation", "Implementation notes",
                   f'<pre id="implementation-notes" style="white-space: pre-wrap">{html.escape(body)}</pre>')


def _trials_section(a: StudyAnalysis) -> Section:
    trials = sorted(a.result.trials, key=lambda t: t.number)[:MAX_TRIAL_ROWS]
    columns, rows = _trial_rows(a, trials, rank=False)
    more = len(a.result.trials) - len(trials)
    note = _p(f"Every trial of the study ({len(a.result.trials)})" + (f"; the first {len(trials)} listed, all in "
                                                                       "trials.csv" if more > 0 else "")
              + ". Click a header to sort.", "muted")
    table = html_table("all-trials", columns, rows, sortable=True)
    return Section("trials", "All trials", note + f'<div class="scroll">{table}</div>')


def render_study_page(analysis: StudyAnalysis, summary: str, title: str) -> str:
    """Return the report's HTML document (self-contained: plotly.js inlined once)."""
    chart = _Charts()
    a = analysis
    sections = [_summary_section(a), _recommended_section(a), _top_section(a), _overfitting_section(a, chart),
                _sensitivity_section(a, chart), _importance_section(a, chart), *_pair_sections(a, chart),
                Section("parallel", "Parallel coordinates",
                        _p("Drag along an axis to filter trials.", "muted") + chart(parallel_figure, a, "parallel-chart")),
                Section("pareto", "Pareto front", chart(pareto_figure, a, "pareto-chart")),
                _equity_section(a, chart), *_walk_forward_sections(a, chart), _implementation_section(summary),
                _trials_section(a)]
    r = a.result
    header = (f'<p id="run-info">{html.escape(r.strategy)} | {html.escape(r.method)} | '
              f"{html.escape(', '.join(r.objectives))} | {html.escape(r.period[0])} .. {html.escape(r.period[1])} | "
              f"{len(r.trials)} trials</p>")
    return render_page(title, f"study {r.study_name}", header, sections)


def _write(path: Path, write: Callable[[Path], Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_study_report(result: StudyResult, out_dir: str | Path, *, walk_forward: Any = None, statistics: Any = None,
                       data: StudyData | None = None, top: int = TOP_SETS, title: str | None = None) -> dict[str, Path]:
    """Write ``report.html``, ``summary.txt`` and ``report.pdf`` of a study into ``out_dir``.

    Parameters
    ----------
    result
        The study (:func:`research.optimize.run_study`); for a walk-forward run, its
        ``final_study`` (the set for the next live period).
    out_dir
        The study's output folder (created). Each file is written to a temporary name and moved
        into place, so a reader never sees half a file.
    walk_forward
        A :class:`research.walk_forward.WalkForwardResult`: adds the per-fold IS/OOS bars, the
        stitched OOS equity, step comparison and regime-aware results.
    statistics
        The :func:`research.study_stats.study_statistics` dict. Default: the walk-forward's own,
        else computed here from ``data`` (each complete or filtered trial replayed once).
    data
        The bars the study ran on (:class:`research.optimize.StudyData`): the top sets are
        replayed on them for the equity and drawdown overlays and the Sharpe interval. For a
        walk-forward, all its bars (cut here to the final training window). Without data the
        page says what is missing.
    top
        Sets replayed for the overlays.
    title
        Page and PDF title; default ``"tradingd optimize: <strategy>"`` (``walkforward`` with a
        walk-forward result).

    Returns
    -------
    dict[str, Path]
        File name (:data:`REPORT_FILES`) -> path written.

    Raises
    ------
    ValueError
        If ``walk_forward`` has no folds, or ``data`` are not the bars the study ran on (a replay
        of a top set does not reproduce its trial).
    OSError
        If ``out_dir`` cannot be written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    analysis = analyse_study(result, data=data, walk_forward=walk_forward, statistics=statistics, top=top)
    heading = title or f"tradingd {'walkforward' if walk_forward is not None else 'optimize'}: {result.strategy}"
    text = summary_text(analysis)
    page = render_study_page(analysis, text, heading)
    paths = {name: out / name for name in REPORT_FILES}
    _write(paths["report.html"], lambda p: p.write_text(page, encoding="utf-8"))
    _write(paths["summary.txt"], lambda p: p.write_text(text, encoding="utf-8"))
    write_study_pdf(analysis, paths["report.pdf"], text, heading)
    return paths
