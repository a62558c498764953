"""The files of a walk-forward: ``folds.csv``, ``oos_equity.csv``, ``walkforward.json`` and
``summary.txt`` (:func:`summary_text`).

The sensitivity section of ``summary.txt`` is the study report's measure
(:func:`research.reports.study_sensitivity.parameter_sensitivity`, the neighbour drop) of the
final study, in the same words (:func:`research.reports.study_sensitivity.sensitivity_lines`), so
``summary.txt`` and ``report.html`` of one walk-forward name the same robust and fragile
parameters.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.time import to_datetime
from research.optimize import COUNTED, METRIC_KEYS
from research.reports.study_landscape import study_landscape
from research.reports.study_sensitivity import parameter_sensitivity, sensitivity_lines
from research.study_stats import statistics_text
from research.wf_results import DEGRADATION_METRICS, WalkForwardResult

__all__ = ["num_text", "pct_text", "summary_text", "write_walk_forward_outputs"]


def num_text(value: Any, fmt: str = ".3f") -> str:
    """``value`` in ``fmt``, ``"-"`` for None."""
    return "-" if value is None else format(value, fmt)


def pct_text(value: Any) -> str:
    """A fraction in percent with 2 decimals (``0.1234`` -> ``"12.34%"``), ``"-"`` for None."""
    return "-" if value is None else f"{100 * value:.2f}%"


def _params_text(params: Mapping[str, Any] | None) -> str:
    if not params:
        return "(in cash)"
    return ", ".join(f"{k.removeprefix('params.')}={v:.6g}" if isinstance(v, float)
                     else f"{k.removeprefix('params.')}={v}" for k, v in params.items())


def summary_text(result: WalkForwardResult) -> str:
    """summary.txt of a walk-forward run: optimization summary, walk-forward, top 10 sets,
    sensitivity (of the final study, as the study report measures it), overfitting, recommended
    configuration and implementation notes."""
    folds = result.folds
    chosen = [f for f in folds if f.params is not None]
    trials = sum(sum(t.status in COUNTED for t in f.study.trials) for f in folds if f.study is not None)
    final = result.final_study
    lines = ["optimization summary",
             f"  strategy   {result.strategy}; space {result.space.source}",
             f"  method     {result.method}, {folds[0].study.target if folds and folds[0].study else '?'} trials per "
             f"window; metric {', '.join(f'{n} ({d})' for n, d in zip(result.objectives, result.directions))}",
             f"  windows    {'anchored' if result.anchored else 'rolling'}: train {result.train}, test {result.test}, "
             f"step {result.step}; {len(folds)} folds, {trials} trials in all",
             f"  period     {result.period[0]} .. {result.period[1]} ({result.timeframe} bars)",
             f"  runtime    {result.runtime_s:.1f} s", *(f"  note       {n}" for n in result.notes), "",
             "walk-forward (out of sample, each fold's chosen set on the window after its training window)",
             f"  {'fold':>4} {'in sample':<23} {'out of sample':<23} {'IS sharpe':>9} {'OOS sharpe':>10} "
             f"{'IS cagr':>8} {'OOS cagr':>8} {'OOS ret':>8} {'Sh.degr':>8} {'WFE':>6}  parameters"]
    for f in folds:
        i, o = f.is_metrics or {}, f.oos_metrics or {}
        d = f.degradation.get("sharpe")
        lines.append(f"  {f.index:>4} {f.window.label('is'):<23} {f.window.label('oos'):<23} "
                     f"{num_text(i.get('sharpe')):>9} {num_text(o.get('sharpe')):>10} "
                     f"{pct_text(i.get('cagr')):>8} {pct_text(o.get('cagr')):>8} "
                     f"{pct_text(o.get('total_return')):>8} {pct_text(d) if d is not None else '-':>8} "
                     f"{num_text(f.efficiency, '.2f'):>6}  {_params_text(f.params)}")
    m, b = result.oos_metrics, result.benchmark_metrics or {}
    lines += [f"  stitched OOS   return {pct_text(m.get('total_return'))}, CAGR {pct_text(m.get('cagr'))}, "
              f"Sharpe {num_text(m.get('sharpe'))}, max drawdown {pct_text(m.get('max_drawdown'))}, "
              f"{m.get('trades')} trades",
              f"  {result.benchmark_label:<14} return {pct_text(b.get('total_return'))}, "
              f"CAGR {pct_text(b.get('cagr'))}, Sharpe {num_text(b.get('sharpe'))}, "
              f"max drawdown {pct_text(b.get('max_drawdown'))}",
              f"  walk-forward efficiency {num_text(result.efficiency, '.2f')} (OOS / IS CAGR; Sharpe ratio "
              f"{num_text(result.sharpe_efficiency, '.2f')}); profitable OOS folds "
              f"{sum(1 for f in folds if ((f.oos_metrics or {}).get('total_return') or 0) > 0)} of {len(folds)} "
              f"({result.profitable_share:.0%})",
              f"  parameter stability score {num_text(result.stability.get('score'), '.2f')} "
              "(1 = the same set every fold)"]
    for key, entry in result.stability.get("params", {}).items():
        spread = f", std {num_text(entry.get('std'), '.3g')} = {pct_text(entry.get('range_std'))} of its range" \
            if "range_std" in entry else ""
        lines.append(f"    {key:<24} {'stable' if entry['stable'] else 'unstable':<9} mode {entry['mode']} in "
                     f"{entry['mode_share']:.0%} of folds, {entry['changes']} changes{spread}")
    if result.step_comparison:
        lines += ["", "re-optimization frequency (test = step; metrics on the span all share)"]
        for s in result.step_comparison:
            sm = s.oos_metrics
            lines.append(f"  every {s.step:<4} {s.folds:>3} folds  return {pct_text(sm.get('total_return')):>9}  "
                         f"Sharpe {num_text(sm.get('sharpe')):>7}  max dd {pct_text(sm.get('max_drawdown')):>8}  WFE "
                         f"{num_text(s.efficiency, '.2f'):>5}  profitable {s.profitable_share:.0%}"
                         + ("  <- best" if s.step == result.best_step else ""))
    if result.regime is not None:
        r = result.regime
        lines += ["", f"regime-aware (best set per {r.symbol} regime of each training window, applied OOS by regime)",
                  f"  regime sets    return {pct_text(r.oos_metrics.get('total_return'))}, Sharpe "
                  f"{num_text(r.oos_metrics.get('sharpe'))}, max drawdown "
                  f"{pct_text(r.oos_metrics.get('max_drawdown'))}",
                  f"  single set     return {pct_text(r.single_metrics.get('total_return'))}, Sharpe "
                  f"{num_text(r.single_metrics.get('sharpe'))}, max drawdown "
                  f"{pct_text(r.single_metrics.get('max_drawdown'))}",
                  f"  {'the regime sets did better' if r.better else 'the single best set did as well or better'} "
                  f"on {result.objectives[0]}"]
    lines += ["", "top 10" + (f" (final training window {to_datetime(result.final_window[0]).date()}.."
                              f"{to_datetime(result.final_window[1]).date()})" if result.final_window else "")]
    lines.append(f"  {'rank':>4} {'trial':>5} {'sharpe':>8} {'return':>9} {'max dd':>8} {'win rate':>8} {'trades':>6}"
                 "  parameters")
    for rank, t in enumerate((final.ranked if final else [])[:10], 1):
        tm = t.metrics or {}
        lines.append(f"  {rank:>4} {t.number:>5} {num_text(tm.get('sharpe')):>8} "
                     f"{pct_text(tm.get('total_return')):>9} {pct_text(tm.get('max_drawdown')):>8} "
                     f"{pct_text(tm.get('win_rate')):>8} {tm.get('trades', '-'):>6}  {_params_text(t.params)}")
    if final is None or not final.ranked:
        lines.append("  (no ranked trial in the final training window)")
    lines += ["", *sensitivity_lines(parameter_sensitivity(study_landscape(final)) if final else [],
                                     result.objectives[0], scope="final study")]
    lines.append("")
    stats = result.statistics
    if stats:
        lines.append(statistics_text(stats, "overfitting (walk-forward)").rstrip("\n"))
        if stats.get("study"):
            lines.append(statistics_text(stats["study"], "  final study").rstrip("\n"))
    else:
        lines.append("overfitting\n  (statistics not computed)")
    lines += ["", "recommended configuration"]
    best = final.best if final else None
    score = ((stats or {}).get("verdict") or {}).get("score")
    confidence = "-" if score is None else "high" if score < 25 else "moderate" if score < 50 else "low"
    oos_cagr = [float(v) for v in ((f.oos_metrics or {}).get("cagr") for f in chosen) if v is not None]
    oos_sharpe = [float(v) for v in ((f.oos_metrics or {}).get("sharpe") for f in chosen) if v is not None]
    worst_dd = max(((f.oos_metrics or {}).get("max_drawdown") or 0.0 for f in chosen), default=None)
    lines.append(f"  parameters     {_params_text(best.params) if best else '(none: no trial passed the filters)'}")
    lines.append(f"  confidence     {confidence}"
                 + (f" (overfitting score {score:.0f}/100)" if score is not None else ""))
    if oos_cagr:
        lo, hi = np.percentile(oos_cagr, [10, 90]) if len(oos_cagr) >= 5 else (min(oos_cagr), max(oos_cagr))
        lines.append(f"  expected range annualized return {pct_text(lo)} .. {pct_text(hi)} (OOS folds, "
                     f"{'10th-90th percentile' if len(oos_cagr) >= 5 else 'min-max'})"
                     + (f"; Sharpe {min(oos_sharpe):.2f} .. {max(oos_sharpe):.2f}" if oos_sharpe else ""))
    fold_returns = [((f.oos_metrics or {}).get("total_return") or 0) for f in folds]
    lines += ["", "implementation notes",
              "  apply          best.toml holds the final window's best set: tradingd replay --config best.toml to "
              "check it, tradingd run --config best.toml to trade it",
              f"  variability    OOS fold returns {pct_text(min(fold_returns))} .. {pct_text(max(fold_returns))} per "
              f"{result.test}; worst OOS drawdown {pct_text(worst_dd)}",
              f"  re-optimize    every {result.best_step or result.step}"
              + (" (the best of the steps compared)" if result.best_step else " (the step validated here)")
              + ", and sooner when live drawdown exceeds the worst OOS drawdown above"]
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _folds_csv(result: WalkForwardResult, path: Path) -> None:
    keys = result.space.keys
    header = ["fold", "is_start", "is_end", "oos_start", "oos_end", "status", "study", *keys,
              *(f"is_{k}" for k in METRIC_KEYS), *(f"oos_{k}" for k in METRIC_KEYS),
              *(f"degradation_{k}" for k in DEGRADATION_METRICS), "efficiency", "psr", "dsr", "pbo"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for f in result.folds:
            w, stats = f.window.to_dict(), f.statistics or {}
            row = [f.index, w["is_start"], w["is_end"], w["oos_start"], w["oos_end"], f.status, f.study_name,
                   *((f.params or {}).get(k) for k in keys), *((f.is_metrics or {}).get(k) for k in METRIC_KEYS),
                   *((f.oos_metrics or {}).get(k) for k in METRIC_KEYS),
                   *(f.degradation.get(k) for k in DEGRADATION_METRICS),
                   f.efficiency, stats.get("psr"), stats.get("dsr"), stats.get("pbo")]
            writer.writerow(["" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v for v in row])


def _equity_csv(result: WalkForwardResult, path: Path) -> None:
    frame = pd.DataFrame({"equity": result.oos_equity, "fold": result.oos_fold})
    if result.benchmark_equity is not None:
        frame["benchmark"] = result.benchmark_equity
    if result.regime is not None:
        frame = frame.join(result.regime.oos_equity.rename("regime_equity"), how="outer")
        frame["fold"] = frame["fold"].ffill()
    frame.index.name = "ts"
    out = frame.reset_index()
    out["ts"] = out["ts"].map(lambda t: t.isoformat())
    out.to_csv(path, index=False, float_format="%.10g")


def write_walk_forward_outputs(result: WalkForwardResult, out_dir: str | Path) -> list[str]:
    """Write ``folds.csv`` (a row per fold: windows, chosen params, IS/OOS metrics, degradation,
    efficiency, PSR/DSR/PBO), ``oos_equity.csv`` (ts ISO-8601 UTC, stitched equity USD, fold,
    benchmark, regime_equity), ``walkforward.json`` (:meth:`WalkForwardResult.to_dict`) and
    ``summary.txt`` (:func:`summary_text`) into ``out_dir`` (created), each moved into place whole.
    Returns the names written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, write in (("folds.csv", lambda p: _folds_csv(result, p)),
                        ("oos_equity.csv", lambda p: _equity_csv(result, p)),
                        ("walkforward.json", lambda p: p.write_text(json.dumps(result.to_dict(), indent=2,
                                                                               default=str) + "\n")),
                        ("summary.txt", lambda p: p.write_text(summary_text(result)))):
        _write_atomic(out / name, write)
        written.append(name)
    return written
