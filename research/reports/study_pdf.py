"""``report.pdf`` of a study: the report's charts and summary on A4 landscape pages (matplotlib).

Only ``matplotlib.figure.Figure`` objects and the PDF backend are used (no ``pyplot``): no global
figure state and no GUI backend, so it runs headless and in worker threads. Pages, in order:
the cover (study, recommendation, overfitting headline), the top-10 table, sensitivity curves
and importance, the heat map and 3-D surface of the most important pair, parallel coordinates
and the Pareto front, equity and drawdown of the top sets, the overfitting score's parts and the
CSCV diagnostics, the walk-forward pages (when given), then summary.txt itself.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.colors
import matplotlib.patches
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from research.metrics import drawdown_series
from research.reports.plotting import downsample
from research.reports.study_analysis import StudyAnalysis
from research.reports.study_format import PERCENT_METRICS, fmt_metric, param_name
from research.reports.study_text import params_text

__all__ = ["PAGE_SIZE", "write_study_pdf"]

PAGE_SIZE = (11.69, 8.27)
"""A4 landscape, inches."""
_COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
_LINES_PER_PAGE = 58
_PDF_POINTS = 2000  # per curve: more than a printed page resolves
_VERDICT = {"robust": "#1a9850", "moderate": "#e08214", "fragile": "#d73027", "undetermined": "#777777"}


def _page(title: str) -> Figure:
    fig = Figure(figsize=PAGE_SIZE)
    fig.suptitle(title, fontsize=14, fontweight="bold", x=0.02, ha="left")
    return fig


def _pct_axis(ax: Axes, which: str = "y") -> None:
    low, high = ax.get_ylim() if which == "y" else ax.get_xlim()
    span = abs(high - low)
    formatter = PercentFormatter(1.0, decimals=2 if span < 0.05 else 1 if span < 0.5 else 0)
    (ax.yaxis if which == "y" else ax.xaxis).set_major_formatter(formatter)


def _text_page(pdf: PdfPages, title: str, lines: list[str], size: float = 7.6) -> None:
    for start in range(0, max(1, len(lines)), _LINES_PER_PAGE):
        chunk = lines[start:start + _LINES_PER_PAGE]
        fig = _page(title if start == 0 else f"{title} (continued)")
        fig.text(0.02, 0.93, "\n".join(chunk), family="DejaVu Sans Mono", fontsize=size, va="top", ha="left")
        pdf.savefig(fig)


def _wrap(text: str, width: int = 150) -> list[str]:
    out: list[str] = []
    for line in text.split("\n"):
        indent = len(line) - len(line.lstrip())
        while len(line) > width:
            cut = line.rfind(" ", indent + 20, width)
            cut = cut if cut > 0 else width
            out.append(line[:cut])
            line = " " * (indent + 2) + line[cut:].lstrip()
        out.append(line)
    return out


def _cover(pdf: PdfPages, analysis: StudyAnalysis, title: str) -> None:
    r = analysis.result
    fig = _page(title)
    block, rec = analysis.overfitting, analysis.recommendation
    lines = [f"Study {r.study_name}: {r.strategy}, {r.method}, objective {', '.join(r.objectives)}",
             f"Period {r.period[0]} .. {r.period[1]} ({r.timeframe} bars); {len(r.trials)} trials, "
             f"{len(analysis.landscape.trials)} scored; runtime {r.runtime_s:.1f} s", ""]
    if rec is not None:
        m = rec.trial.metrics or {}
        lines += [f"Recommended: {params_text(rec.params)}  (trial {rec.trial.number}, rank {rec.rank})",
                  f"  confidence {rec.confidence.upper()}: {'; '.join(rec.confidence_reasons) or 'no warning sign'}",
                  f"  Sharpe {fmt_metric('sharpe', m.get('sharpe'))}, CAGR {fmt_metric('cagr', m.get('cagr'))}, "
                  f"max drawdown {fmt_metric('max_drawdown', m.get('max_drawdown'))}, "
                  f"{fmt_metric('trades', m.get('trades'))} trades"]
        if rec.sharpe_interval is not None:
            lines.append(f"  Sharpe 95% interval {rec.sharpe_interval[0]:.2f} .. {rec.sharpe_interval[1]:.2f}")
    else:
        lines.append("No trial passed the filters: nothing to recommend.")
    lines += ["", "Overfitting"]
    if block.source == "not computed":
        lines += [f"  {n}" for n in block.notes]
    else:
        trl = "n/a" if block.min_trl is None else ("never" if not math.isfinite(block.min_trl)
                                                   else f"{block.min_trl:.0f} days")
        lines.append(f"  PSR {fmt_metric('sharpe', block.psr)}   DSR {fmt_metric('sharpe', block.dsr)} "
                     f"({block.n_trials} trials)   MinTRL {trl}   PBO {fmt_metric('sharpe', block.pbo)}")
        if block.score is not None:
            lines.append(f"  score {block.score:.0f}/100 ({block.level})")
            lines += ["  " + s for s in _wrap(f"remedy: {block.remedy()}", 110)]
    robust = [s.name for s in analysis.sensitivity if s.verdict == "robust"]
    fragile = [s.name for s in analysis.sensitivity if s.verdict == "fragile"]
    lines += ["", f"Robust parameters: {', '.join(robust) or 'none'};  fragile: {', '.join(fragile) or 'none'}"]
    fig.text(0.04, 0.86, "\n".join(lines), fontsize=11, va="top", ha="left", linespacing=1.5)
    fig.text(0.04, 0.03, f"tradingd study report, written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
             fontsize=8, color="#666")
    pdf.savefig(fig)


def _top_table(pdf: PdfPages, analysis: StudyAnalysis) -> None:
    ranked = analysis.result.ranked[:10]
    if not ranked:
        return
    fig = _page("Top 10 parameter sets")
    ax = fig.add_axes((0.03, 0.08, 0.94, 0.8))
    ax.axis("off")
    header = ["rank", "trial", "parameters", "Sharpe", "return", "max DD", "win rate", "trades"]
    rows = []
    for rank, t in enumerate(ranked, 1):
        m = t.metrics or {}
        rows.append([str(rank), str(t.number), params_text(t.params), fmt_metric("sharpe", m.get("sharpe")),
                     fmt_metric("total_return", m.get("total_return")), fmt_metric("max_drawdown", m.get("max_drawdown")),
                     fmt_metric("win_rate", m.get("win_rate")), fmt_metric("trades", m.get("trades"))])
    table = ax.table(cellText=rows, colLabels=header, loc="upper center", cellLoc="right",
                     colWidths=[0.05, 0.05, 0.42, 0.08, 0.09, 0.09, 0.09, 0.07])
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.5)
    for (row, col), cell in table.get_celld().items():
        if col == 2:
            cell.set_text_props(ha="left")
        if row == 0:
            cell.set_facecolor("#eeeeee")
    pdf.savefig(fig)


def _sensitivity(pdf: PdfPages, analysis: StudyAnalysis) -> None:
    items = analysis.sensitivity
    if not items:
        return
    objective = analysis.landscape.objective
    n = len(items) + (1 if analysis.importance else 0)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = _page(f"Sensitivity of {objective} (line: through the best set; dotted: mean; band: min-max)")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, s in zip(axes.flat, items):
        x = np.arange(len(s.labels))
        prof = np.array([np.nan if v is None else v for v in s.profile], dtype=float)
        low = np.array([np.nan if v is None else v for v in s.marginal_low], dtype=float)
        high = np.array([np.nan if v is None else v for v in s.marginal_high], dtype=float)
        mean = np.array([np.nan if v is None else v for v in s.marginal_mean], dtype=float)
        ax.fill_between(x, low, high, color="#1f77b4", alpha=0.12, linewidth=0)
        ax.plot(x, mean, ":", color="#7f7f7f", marker=".")
        ax.plot(x, prof, "-" if s.numeric else "", color="#1f77b4", marker="o")
        ax.plot([s.best_level], [prof[s.best_level]], marker="*", markersize=16, color="#d62728", linestyle="")
        ax.set_xticks(x, list(s.labels), rotation=45 if len(s.labels) > 6 else 0, fontsize=8)
        drop = "" if s.neighbour_drop is None else f" (drop {100 * s.neighbour_drop:.0f}%)"
        ax.set_title(f"{s.name}: {s.verdict}{drop}", color=_VERDICT[s.verdict], fontsize=10)
        ax.set_ylabel(objective, fontsize=8)
        if objective in PERCENT_METRICS:
            _pct_axis(ax)
        ax.grid(alpha=0.3)
    used = len(items)
    if analysis.importance:
        ax = axes.flat[used]
        names = [p.name for p in analysis.importance][::-1]
        y = np.arange(len(names))
        ped = [p.ped_anova or 0.0 for p in analysis.importance][::-1]
        eta = [p.eta_squared for p in analysis.importance][::-1]
        if any(p.ped_anova is not None for p in analysis.importance):
            ax.barh(y + 0.2, ped, height=0.4, color="#1f77b4", label="PED-ANOVA")
        ax.barh(y - 0.2, eta, height=0.4, color="#ff7f0e", label="eta^2")
        ax.set_yticks(y, names, fontsize=8)
        ax.set_xlim(0, 1)
        _pct_axis(ax, "x")
        ax.set_title("Parameter importance", fontsize=10)
        ax.legend(fontsize=7)
        used += 1
    for ax in list(axes.flat)[used:]:
        ax.axis("off")
    fig.subplots_adjust(hspace=0.55, wspace=0.3, top=0.88, bottom=0.1, left=0.07, right=0.98)
    pdf.savefig(fig)


def _pair(pdf: PdfPages, analysis: StudyAnalysis) -> None:
    pair = analysis.pair
    if pair is None:
        return
    land = analysis.landscape
    cmap = matplotlib.colormaps["RdYlGn" if land.direction == "maximize" else "RdYlGn_r"]
    fig = _page(f"{land.objective} over {param_name(pair.x_key)} and {param_name(pair.y_key)} "
                "(best trial per cell, other parameters free)")
    ax = fig.add_subplot(1, 2, 1)
    z = np.ma.masked_invalid(pair.z)
    image = ax.imshow(z, cmap=cmap, aspect="auto", origin="lower")
    ax.set_xticks(range(len(pair.x.labels)), list(pair.x.labels), fontsize=8,
                  rotation=45 if len(pair.x.labels) > 6 else 0)
    ax.set_yticks(range(len(pair.y.labels)), list(pair.y.labels), fontsize=8)
    ax.set_xlabel(param_name(pair.x_key))
    ax.set_ylabel(param_name(pair.y_key))
    finite = pair.z[np.isfinite(pair.z)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if z.size <= 150:
        for j in range(z.shape[0]):
            for i in range(z.shape[1]):
                if not np.ma.is_masked(z[j, i]):
                    shade = (float(z[j, i]) - low) / ((high - low) or 1.0)
                    ax.text(i, j, fmt_metric(land.objective, float(z[j, i])), ha="center", va="center", fontsize=9,
                            color="white" if shade < 0.2 or shade > 0.8 else "black")
    by, bx = pair.best_cell
    ax.add_patch(matplotlib.patches.Rectangle((bx - 0.5, by - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=3))
    ax.set_title("outlined: the best set", fontsize=9)
    fig.colorbar(image, ax=ax, label=land.objective)
    ax3 = fig.add_subplot(1, 2, 2, projection="3d")
    xs = np.array([float(c) for c in pair.x.centres]) if pair.x.numeric else np.arange(len(pair.x.labels), dtype=float)
    ys = np.array([float(c) for c in pair.y.centres]) if pair.y.numeric else np.arange(len(pair.y.labels), dtype=float)
    gx, gy = np.meshgrid(xs, ys)
    norm = matplotlib.colors.Normalize(vmin=low, vmax=high)
    if min(pair.z.shape) >= 2 and finite.size == pair.z.size:
        # face colours from each face's mean height (matplotlib's own shading can invert on tiny grids)
        faces = (pair.z[:-1, :-1] + pair.z[1:, :-1] + pair.z[:-1, 1:] + pair.z[1:, 1:]) / 4
        ax3.plot_surface(gx, gy, pair.z, facecolors=cmap(norm(faces)), edgecolor="#555", linewidth=0.3,
                         shade=False)
    else:  # cells without a trial: points, not a surface through holes
        ax3.scatter(gx.ravel(), gy.ravel(), pair.z.ravel(), c=pair.z.ravel(), cmap=cmap, norm=norm, s=30)
    ax3.set_xlabel(param_name(pair.x_key))
    ax3.set_ylabel(param_name(pair.y_key))
    ax3.set_zlabel(land.objective)
    fig.subplots_adjust(left=0.07, right=0.97, top=0.88, bottom=0.1, wspace=0.25)
    pdf.savefig(fig)


def _parallel_pareto(pdf: PdfPages, analysis: StudyAnalysis) -> None:
    land = analysis.landscape
    if not land.trials:
        return
    fig = _page("Parallel coordinates and Pareto front")
    ax = fig.add_subplot(1, 2, 1)
    columns: list[tuple[str, np.ndarray, list[str] | None]] = []
    for j, key in enumerate(land.keys):
        lv = land.levels[key]
        values = land.codes[:, j].astype(float)
        columns.append((param_name(key), values, list(lv.labels)))
    for name in (land.objective, "sharpe", "total_return", "max_drawdown", "trades"):
        if name == land.objective and any(c[0] == name for c in columns):
            continue
        raw = [(t.metrics or {}).get(name) for t in land.trials]
        finite = all(isinstance(v, (int, float)) and math.isfinite(float(v)) for v in raw)
        if finite and name not in [c[0] for c in columns]:
            columns.append((name, np.asarray(raw, dtype=float), None))
    cmap = matplotlib.colormaps["RdYlGn" if land.direction == "maximize" else "RdYlGn_r"]
    span = float(np.ptp(land.values)) or 1.0
    colour = (land.values - land.values.min()) / span
    scaled = []
    for _, values, _labels in columns:
        low, high = float(values.min()), float(values.max())
        scaled.append((values - low) / (high - low) if high > low else np.full(len(values), 0.5))
    matrix = np.column_stack(scaled)
    for row in np.argsort(colour):
        ax.plot(range(len(columns)), matrix[row], color=cmap(colour[row]), alpha=0.7, linewidth=1)
    ax.set_xticks(range(len(columns)), [c[0] for c in columns], rotation=30, fontsize=8)
    for k, (_, values, labels) in enumerate(columns):
        low, high = float(values.min()), float(values.max())
        ax.text(k, -0.06, labels[0] if labels else f"{low:.3g}", ha="center", fontsize=6, color="#555")
        ax.text(k, 1.03, labels[-1] if labels else f"{high:.3g}", ha="center", fontsize=6, color="#555")
    ax.set_yticks([])
    ax.set_ylim(-0.1, 1.1)
    ax.set_title(f"{len(land.trials)} scored trials, colour: {land.objective}", fontsize=10)
    view = analysis.pareto
    ax2 = fig.add_subplot(1, 2, 2)
    if len(view.trials):
        ax2.scatter(view.points[:, 0], view.points[:, 1], color="#99aaaa", s=18, label="trials")
        front = view.points[view.front]
        ax2.step(front[:, 0], front[:, 1], where="post", color="#d62728")
        ax2.scatter(front[:, 0], front[:, 1], color="#d62728", s=30, label="Pareto front")
        if land.best is not None and land.trials[land.best] in view.trials:
            i = view.trials.index(land.trials[land.best])
            ax2.scatter([view.points[i, 0]], [view.points[i, 1]], marker="*", s=250, color="#ffbf00",
                        edgecolor="black", label="best set", zorder=5)
    mx, my = view.metrics
    ax2.set_xlabel(mx)
    ax2.set_ylabel(my)
    if mx in PERCENT_METRICS:
        _pct_axis(ax2, "x")
    if my in PERCENT_METRICS:
        _pct_axis(ax2)
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    ax2.set_title("Pareto front: " + ("the study's objectives" if view.optimized else f"{mx} vs {my} (not optimised)"),
                  fontsize=10)
    fig.subplots_adjust(left=0.04, right=0.97, top=0.88, bottom=0.15, wspace=0.2)
    pdf.savefig(fig)


def _xy(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Decimated (min/max per bucket) naive-UTC datetime64 times and values of a curve: object
    Timestamps of a tz-aware index are what makes matplotlib slow on long curves."""
    shown = downsample(series.astype(float), _PDF_POINTS)
    index = pd.DatetimeIndex(shown.index)
    times = (index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index).to_numpy()
    return times, shown.to_numpy(dtype=float)


def _usd(ax: Axes) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:,.0f}"))


def _equity(pdf: PdfPages, analysis: StudyAnalysis) -> None:
    if not analysis.replays:
        return
    fig = _page(f"Equity and drawdown of the top {len(analysis.replays)} sets")
    ax, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for i, r in enumerate(analysis.replays):
        label = f"#{r.rank} {params_text(r.trial.params)}"
        ax.plot(*_xy(r.equity), color=_COLOURS[i % len(_COLOURS)], linewidth=1, label=label)
        ax2.plot(*_xy(r.drawdown), color=_COLOURS[i % len(_COLOURS)], linewidth=0.8)
    if analysis.benchmark is not None:
        ax.plot(*_xy(analysis.benchmark), "--", color="#ff7f0e", linewidth=1, label="Buy & hold")
        ax2.plot(*_xy(drawdown_series(analysis.benchmark)), "--", color="#ff7f0e", linewidth=0.8)
    _usd(ax)
    _pct_axis(ax2)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_ylabel("equity (USD)")
    ax2.set_ylabel("drawdown")
    ax.grid(alpha=0.3)
    ax2.grid(alpha=0.3)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.08, hspace=0.08)
    pdf.savefig(fig)


def _overfitting(pdf: PdfPages, analysis: StudyAnalysis) -> None:
    block = analysis.overfitting
    parts = block.parts()
    if not parts and not block.logits:
        return
    fig = _page("Overfitting: score parts and CSCV diagnostics (Bailey, Borwein, López de Prado, Zhu 2017)")
    axes = fig.subplots(1, 3) if block.logits else fig.subplots(1, 1, squeeze=False)[0]
    ax = axes[0]
    if parts:
        names = [str(p["name"]).replace("_", " ") for p in parts][::-1]
        y = np.arange(len(names))
        ax.barh(y, [float(p["weight"] or 0) for p in parts][::-1], color="#e6e6e6", label="available")
        ax.barh(y, [float(p["points"] or 0) for p in parts][::-1], label="scored",
                color=["#d73027" if p["flagged"] else "#4575b4" for p in parts][::-1])
        ax.set_yticks(y, names, fontsize=8)
        ax.set_title(f"score {block.score:.0f}/100 ({block.level}); red = flagged", fontsize=10)
        ax.legend(fontsize=7)
    else:
        ax.axis("off")
    if block.logits:
        logits = np.asarray(block.logits)
        counts, edges = np.histogram(logits, bins=min(40, max(10, len(np.unique(logits)))))
        centres = (edges[:-1] + edges[1:]) / 2
        axes[1].bar(centres, counts / counts.sum(), width=np.diff(edges),
                    color=["#d73027" if c <= 0 else "#4575b4" for c in centres])
        axes[1].axvline(0, color="#333", linestyle=":")
        _pct_axis(axes[1])
        axes[1].set_title(f"logits of OOS rank: PBO {fmt_metric('sharpe', block.pbo)}", fontsize=10)
        axes[1].set_xlabel("logit (<= 0: IS best below the OOS median)", fontsize=8)
        k = (block.sharpe / block.sharpe_period) if block.sharpe and block.sharpe_period else 1.0
        is_perf, oos_perf = np.asarray(block.is_performance) * k, np.asarray(block.oos_performance) * k
        every = max(1, len(is_perf) // 3000)
        axes[2].scatter(is_perf[::every], oos_perf[::every], s=4, alpha=0.3, color="#4575b4")
        if len(is_perf) > 1:
            slope, intercept = np.polyfit(is_perf, oos_perf, 1)
            xs = np.array([is_perf.min(), is_perf.max()])
            axes[2].plot(xs, slope * xs + intercept, color="#d73027", label=f"OOS = {slope:.2f} x IS {intercept:+.2f}")
            axes[2].legend(fontsize=7)
        unit = "annualised" if k != 1.0 else "per day"
        axes[2].set_xlabel(f"IS Sharpe ({unit})", fontsize=8)
        axes[2].set_ylabel(f"OOS Sharpe ({unit})", fontsize=8)
        axes[2].set_title("performance degradation", fontsize=10)
        axes[2].grid(alpha=0.3)
    fig.subplots_adjust(left=0.13, right=0.98, top=0.86, bottom=0.12, wspace=0.35)
    pdf.savefig(fig)


def _walk_forward(pdf: PdfPages, analysis: StudyAnalysis) -> None:
    wf = analysis.walk_forward
    if wf is None:
        return
    objective = analysis.landscape.objective
    fig = _page("Walk-forward: in sample vs out of sample per fold, stitched OOS equity")
    ax, ax2 = fig.subplots(2, 1)
    x = np.arange(len(wf.folds))
    is_values = [float(f.in_sample.get(objective) or np.nan) for f in wf.folds]
    oos_values = [float(f.out_of_sample.get(objective) or np.nan) for f in wf.folds]
    ax.bar(x - 0.2, is_values, width=0.4, color="#9ecae1", label="in sample")
    ax.bar(x + 0.2, oos_values, width=0.4, color="#08519c", label="out of sample")
    ax.set_xticks(x, [f"{f.number}\n{f.test_start:%Y-%m-%d}" if f.test_start is not None else str(f.number)
                      for f in wf.folds], fontsize=7)
    ax.set_ylabel(objective)
    if objective in PERCENT_METRICS:
        _pct_axis(ax)
    ax.axhline(0, color="#333", linewidth=0.6)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(f"efficiency {fmt_metric('sharpe', wf.efficiency)}, profitable folds "
                 f"{fmt_metric('win_rate', wf.profitable_share)}", fontsize=10)
    if wf.oos_equity is not None:
        ax2.plot(*_xy(wf.oos_equity), color="#08519c", linewidth=1.4, label="stitched OOS")
    if wf.benchmark is not None:
        ax2.plot(*_xy(wf.benchmark), "--", color="#ff7f0e", linewidth=1, label=wf.benchmark_label)
    if wf.regime is not None and wf.regime.get("oos_equity") is not None:
        ax2.plot(*_xy(wf.regime["oos_equity"]), ":", color="#2ca02c", label="regime-aware sets")
    for f in wf.folds:
        if f.test_start is not None:
            ax2.axvline(f.test_start.tz_localize(None).to_datetime64(), color="#999", linestyle=":",
                        linewidth=0.8)
    _usd(ax2)
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.07, hspace=0.35)
    pdf.savefig(fig)
    steps = [s for s in wf.steps if s.get("oos_equity") is not None]
    if steps:
        fig = _page("Re-optimization frequency: stitched OOS equity per step (common span)")
        ax = fig.add_subplot(1, 1, 1)
        for i, s in enumerate(steps):
            best = s["step"] == wf.best_step
            ax.plot(*_xy(s["oos_equity"]), color=_COLOURS[i % len(_COLOURS)], linewidth=2.2 if best else 1,
                    label=f"every {s['step']}{' (best)' if best else ''}: Sharpe "
                          f"{fmt_metric('sharpe', s['oos_metrics'].get('sharpe'))}")
        _usd(ax)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        pdf.savefig(fig)


def write_study_pdf(analysis: StudyAnalysis, path: str | Path, summary: str, title: str) -> Path:
    """Write ``report.pdf`` of ``analysis`` to ``path`` (parent created) and return it.

    Parameters
    ----------
    analysis
        :func:`research.reports.study_analysis.analyse_study` of the study.
    path
        Target file; written to a temporary name beside it and moved into place.
    summary
        summary.txt's text, printed on the last pages.
    title
        Cover title.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    metadata: dict[str, Any] = {"Title": title, "Creator": "tradingd", "Subject": analysis.result.study_name}
    with PdfPages(tmp, metadata=metadata) as pdf:
        _cover(pdf, analysis, title)
        _top_table(pdf, analysis)
        _sensitivity(pdf, analysis)
        _pair(pdf, analysis)
        _parallel_pareto(pdf, analysis)
        _equity(pdf, analysis)
        _overfitting(pdf, analysis)
        _walk_forward(pdf, analysis)
        _text_page(pdf, "summary.txt", _wrap(summary))
    tmp.replace(target)
    return target
