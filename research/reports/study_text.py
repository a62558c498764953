"""``summary.txt`` of a study report: plain text a trader reads in a terminal.

Sections, in order: ``optimization summary`` (study, period, trials, metric, runtime),
``walk-forward`` (when the report has one: per fold IS vs OOS, stitched OOS vs buy-and-hold,
efficiency, profitable folds, parameter stability, re-optimization steps, regime-aware variant),
``top 10`` (rank, parameters, Sharpe, return, max drawdown, win rate, trades), ``sensitivity``
(robust and fragile parameters by the neighbour drop of :mod:`research.reports.study_sensitivity`),
``overfitting`` (:func:`research.study_stats.statistics_text`), ``recommended configuration``
(confidence and expected range) and ``implementation notes`` (how to apply it, expected
variability, when to re-optimize). Every figure is one of the :class:`StudyAnalysis`, so the
text, the HTML page and the PDF agree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from research.optimize import COUNTED
from research.reports.formatting import NOT_AVAILABLE
from research.reports.study_analysis import StudyAnalysis
from research.reports.study_format import fmt_metric, param_name
from research.reports.study_recommend import Recommendation
from research.reports.study_sensitivity import sensitivity_lines
from research.study_stats import statistics_text

__all__ = ["SECTIONS", "config_snippet", "params_text", "summary_text"]

SECTIONS = ("optimization summary", "walk-forward", "top 10", "sensitivity", "overfitting",
            "recommended configuration", "implementation notes")
"""Section titles of summary.txt (``walk-forward`` only when the report has one)."""


def params_text(params: Mapping[str, Any]) -> str:
    """``fast=5, slow=60, timeframe=4h``: space keys without the ``params.`` prefix.

    Examples
    --------
    >>> params_text({"params.fast": 5, "risk.fixed_fraction": 0.1, "timeframe": "4h"})
    'fast=5, risk.fixed_fraction=0.1, timeframe=4h'
    """
    return ", ".join(f"{param_name(k)}={v:.6g}" if isinstance(v, float) else f"{param_name(k)}={v}"
                     for k, v in params.items())


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def config_snippet(strategy: str, rec: Recommendation) -> str:
    """The config-file tables that apply ``rec``: ``[strategy]`` with every parameter, the
    searched ``[risk]`` / ``[fill]`` keys and ``[data] timeframe`` when it was searched.

    Examples
    --------
    >>> from research.optimize import TrialRecord
    >>> rec = Recommendation(TrialRecord(1, "complete", "", {"params.fast": 5, "risk.fixed_fraction": 0.2}, None, None),
    ...                      1, {"params.fast": 5, "risk.fixed_fraction": 0.2}, {"fast": 5, "slow": 60}, None, "", None,
    ...                      "low", (), None, None, None, None, None)
    >>> print(config_snippet("sma_cross", rec), end="")
    [strategy]
    name = "sma_cross"
    [strategy.params]
    fast = 5
    slow = 60
    [risk]
    fixed_fraction = 0.2
    """
    lines = ["[strategy]", f"name = {_toml(strategy)}", "[strategy.params]"]
    lines += [f"{k} = {_toml(v)}" for k, v in rec.strategy_params.items() if v is not None]
    for section in ("risk", "fill"):
        keys = {k.split(".", 1)[1]: v for k, v in rec.params.items() if k.startswith(f"{section}.")}
        if keys:
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml(v)}" for k, v in keys.items()]
    if rec.timeframe is not None:
        lines += ["[data]", f"timeframe = {_toml(rec.timeframe)}"]
    return "\n".join(lines) + "\n"


def _summary(analysis: StudyAnalysis) -> list[str]:
    r = analysis.result
    counts = r.counts()
    counted = sum(counts.get(s, 0) for s in COUNTED)
    objectives = ", ".join(f"{n} ({d})" for n, d in zip(r.objectives, r.directions))
    per_trial = f" ({r.runtime_s / r.new_trials:.2f} s per trial)" if r.new_trials else ""
    f = r.filters
    scope = (["  scope      the final training window's study (the set for the next live period)"]
             if analysis.walk_forward is not None else [])
    return ["optimization summary", *scope,
            f"  study      {r.study_name} ({r.storage})",
            f"  strategy   {r.strategy}; space {r.space.source} ({len(r.space.dimensions)} searched: "
            f"{', '.join(param_name(k) for k in r.space.keys)})",
            f"  method     {r.method}" + (f" ({r.grid_size:,} grid combinations)" if r.grid_size else "")
            + f", seed {r.seed}, pruning {'on' if r.pruning else 'off'}",
            f"  metric     {objectives}",
            f"  period     {r.period[0]} .. {r.period[1]} ({r.timeframe} bars)",
            f"  trials     {counted} of {r.target}: " + ", ".join(
                f"{counts.get(s, 0)} {s}" for s in ("complete", "filtered", "pruned", "failed"))
            + f" ({counts.get('skipped', 0)} skipped by constraints, {counts.get('interrupted', 0)} interrupted)",
            f"  filters    min trades {f.min_trades}, max drawdown {f.max_drawdown or 'none'}, "
            f"min win rate {f.min_win_rate or 'none'}",
            f"  runtime    {r.runtime_s:.1f} s{per_trial}; this run {r.new_trials} trials, {r.replays} replays, "
            f"{r.cache_hits} from the cache"]


def _pct(value: Any) -> str:
    return fmt_metric("total_return", value)


def _num(value: Any) -> str:
    return fmt_metric("sharpe", value)


def _date(value: Any) -> str:
    return NOT_AVAILABLE if value is None else f"{value:%Y-%m-%d}"


def _walk_forward(analysis: StudyAnalysis) -> list[str]:
    wf = analysis.walk_forward
    if wf is None:
        return []
    objective = analysis.landscape.objective
    s = wf.settings
    lines = ["walk-forward (each fold's chosen set traded on the window after its training window)",
             f"  windows    {'anchored' if s.get('anchored') else 'rolling'}: train {s.get('train')}, test "
             f"{s.get('test')}, step {s.get('step')}; {len(wf.folds)} folds",
             f"  {'fold':>4}  {'train':<23} {'test':<23} {'IS ' + objective:>12} {'OOS ' + objective:>12} "
             f"{'degr.':>7} {'OOS ret':>8}  parameters"]
    for f in wf.folds:
        degradation = f.degradation.get(objective)
        lines.append(f"  {f.number:>4}  {_date(f.train_start) + '..' + _date(f.train_end):<23} "
                     f"{_date(f.test_start) + '..' + _date(f.test_end):<23} "
                     f"{fmt_metric(objective, f.in_sample.get(objective)):>12} "
                     f"{fmt_metric(objective, f.out_of_sample.get(objective)):>12} "
                     f"{(_pct(degradation) if degradation is not None else '-'):>7} "
                     f"{_pct(f.out_of_sample.get('total_return')):>8}  "
                     f"{params_text(f.params) if f.params else '(in cash: ' + f.status + ')'}")
    m, b = wf.oos_metrics, wf.benchmark_metrics
    lines += [f"  stitched OOS   return {_pct(m.get('total_return'))}, CAGR {_pct(m.get('cagr'))}, Sharpe "
              f"{_num(m.get('sharpe'))}, max drawdown {_pct(m.get('max_drawdown'))}, {m.get('trades', '-')} trades",
              f"  {wf.benchmark_label:<14} return {_pct(b.get('total_return'))}, CAGR {_pct(b.get('cagr'))}, Sharpe "
              f"{_num(b.get('sharpe'))}, max drawdown {_pct(b.get('max_drawdown'))}",
              f"  efficiency     {_num(wf.efficiency)} (mean OOS CAGR / mean IS CAGR; of Sharpe ratios "
              f"{_num(wf.sharpe_efficiency)})",
              f"  profitable     {_pct(wf.profitable_share)} of the OOS folds",
              f"  stability      score {_num(wf.stability.get('score'))} (1 = the same set every fold)"]
    for key, entry in (wf.stability.get("params") or {}).items():
        lines.append(f"    {param_name(key):<20} {'stable' if entry.get('stable') else 'unstable':<9} "
                     f"mode {entry.get('mode')} in {_pct(entry.get('mode_share'))} of folds, "
                     f"{entry.get('changes')} changes")
    for step in wf.steps:
        sm = step["oos_metrics"]
        lines.append(f"  every {step['step']:<6} return {_pct(sm.get('total_return')):>8}, Sharpe "
                     f"{_num(sm.get('sharpe')):>6}, max dd {_pct(sm.get('max_drawdown')):>7}, WFE "
                     f"{_num(step['efficiency'])}" + ("  <- best re-optimization step" if step["step"] == wf.best_step
                                                    else ""))
    if wf.regime is not None:
        rm, sm = wf.regime["oos_metrics"], wf.regime["single_metrics"]
        lines.append(f"  regime-aware   Sharpe {_num(rm.get('sharpe'))} vs single set {_num(sm.get('sharpe'))}: "
                     + ("the regime sets did better" if wf.regime["better"] else "the single set did as well or better"))
    return lines


def _top(analysis: StudyAnalysis) -> list[str]:
    lines = ["top 10",
             f"  {'rank':>4} {'trial':>5} {'sharpe':>8} {'return':>9} {'max dd':>8} {'win rate':>8} {'trades':>6}"
             "  parameters"]
    for rank, t in enumerate(analysis.result.ranked[:10], 1):
        m = t.metrics or {}
        lines.append(f"  {rank:>4} {t.number:>5} {_num(m.get('sharpe')):>8} {_pct(m.get('total_return')):>9} "
                     f"{_pct(m.get('max_drawdown')):>8} {_pct(m.get('win_rate')):>8} "
                     f"{fmt_metric('trades', m.get('trades')):>6}  {params_text(t.params)}")
    if not analysis.result.ranked:
        lines.append("  (no trial passed the filters)")
    return lines


def _sensitivity(analysis: StudyAnalysis) -> list[str]:
    lines = sensitivity_lines(analysis.sensitivity, analysis.landscape.objective)
    if analysis.importance:
        lines.append("  importance: " + ", ".join(
            f"{p.name} {100 * (p.ped_anova if p.ped_anova is not None else p.eta_squared):.0f}%"
            for p in analysis.importance) + f" ({analysis.importance_note}; eta^2: "
            + ", ".join(f"{p.name} {100 * p.eta_squared:.0f}%" for p in analysis.importance) + ")")
    return lines


def _overfitting(analysis: StudyAnalysis) -> list[str]:
    stats = analysis.statistics
    if isinstance(stats, Mapping):
        title = "overfitting (walk-forward)" if stats.get("kind") == "walk_forward" else "overfitting"
        text = statistics_text(stats, title).rstrip("\n").split("\n")
        nested = stats.get("study")
        if isinstance(nested, Mapping):
            text += statistics_text(nested, "  final study").rstrip("\n").split("\n")
        return text
    block = analysis.overfitting
    lines = ["overfitting"]
    if block.source == "not computed":
        lines += [f"  note       {n}" for n in block.notes]
        return lines
    lines += [f"  PSR        {_num(block.psr)}", f"  DSR        {_num(block.dsr)} ({block.n_trials} trials)",
              f"  MinTRL     {NOT_AVAILABLE if block.min_trl is None else f'{block.min_trl:.0f}'} days",
              f"  PBO        {_num(block.pbo)}"]
    if block.score is not None:
        lines.append(f"  score      {block.score:.0f}/100 ({block.level})")
        lines.append(f"  remedy     {block.remedy()}")
    return lines


def _recommended(analysis: StudyAnalysis) -> list[str]:
    rec = analysis.recommendation
    lines = ["recommended configuration"]
    if rec is None:
        return lines + ["  (none: no trial passed the filters; relax them or widen the search)"]
    objective = analysis.landscape.objective
    m = rec.trial.metrics or {}
    lines += [f"  parameters   {params_text(rec.params)} (trial {rec.trial.number}, rank {rec.rank})",
              f"  why          {rec.reason}",
              f"  confidence   {rec.confidence}: {'; '.join(rec.confidence_reasons) or 'no warning sign'}",
              f"  backtest     Sharpe {_num(m.get('sharpe'))}, CAGR {_pct(m.get('cagr'))}, max drawdown "
              f"{_pct(m.get('max_drawdown'))}, win rate {_pct(m.get('win_rate'))}, {fmt_metric('trades', m.get('trades'))} "
              "trades"]
    if rec.sharpe_interval is not None:
        lo, hi = rec.sharpe_interval
        lines.append(f"  expected     Sharpe {lo:.2f} .. {hi:.2f} (95% interval of the annualised Sharpe ratio"
                     + (f" from {rec.sharpe_obs} daily returns" if rec.sharpe_obs else "") + ", non-normal standard error)")
    if rec.oos_range is not None:
        lines.append(f"  out of sample {objective} {fmt_metric(objective, rec.oos_range[0])} .. "
                     f"{fmt_metric(objective, rec.oos_range[1])} over the walk-forward folds")
    if rec.sharpe_interval is None and rec.oos_range is None:
        lines.append("  expected     (no replay of the set: pass data= for its Sharpe interval)")
    return lines


def _implementation(analysis: StudyAnalysis) -> list[str]:
    rec = analysis.recommendation
    lines = ["implementation notes"]
    if rec is None:
        return lines + ["  nothing to apply"]
    r = analysis.result
    lines.append("  apply        put these tables in the config file (best.toml beside this file holds them with the "
                 "data and settings); check with tradingd replay --config FILE before tradingd run:")
    lines += [f"                 {line}" for line in config_snippet(r.strategy, rec).rstrip("\n").split("\n")]
    block = analysis.overfitting
    worst = max((rp.metrics.get("max_drawdown") or 0.0 for rp in analysis.replays), default=None)
    variability = []
    if rec.sharpe_interval is not None:
        lo, hi = rec.sharpe_interval
        variability.append(f"the Sharpe ratio's 95% interval {lo:.2f} .. {hi:.2f} "
                           + ("excludes 0" if lo > 0 else "includes 0: the edge is not significant on this sample"))
    if rec.max_drawdown is not None:
        variability.append(f"backtest max drawdown {_pct(rec.max_drawdown)}"
                           + (f" (worst of the top {len(analysis.replays)}: {_pct(worst)})" if worst else ""))
    wf = analysis.walk_forward
    if wf is not None:
        returns = [float(f.out_of_sample["total_return"]) for f in wf.folds
                   if f.out_of_sample.get("total_return") is not None]
        if returns:
            variability.append(f"OOS fold returns {_pct(min(returns))} .. {_pct(max(returns))} per "
                               f"{wf.settings.get('test')}")
    lines.append(f"  variability  {'; '.join(variability) or NOT_AVAILABLE}")
    if block.min_trl is not None and math.isfinite(block.min_trl):
        years = f" ({block.min_trl_years:.1f} years)" if block.min_trl_years is not None else ""
        lines.append(f"  track record a live record needs {block.min_trl:.0f} daily returns{years} before its Sharpe "
                     "ratio beats 0 at 95% confidence (MinTRL)")
    if wf is not None:
        step = wf.best_step or wf.settings.get("step")
        lines.append(f"  re-optimize  every {step}" + (" (the best of the steps compared)" if wf.best_step else
                                                       " (the step validated by this walk-forward)")
                     + "; sooner when a live drawdown exceeds the worst OOS drawdown")
    else:
        lines.append("  re-optimize  validate first with tradingd walkforward (it finds the re-optimization step "
                     "that worked); re-optimize sooner when a live drawdown exceeds the backtest's or the live "
                     "Sharpe falls below the interval above")
    return lines


def summary_text(analysis: StudyAnalysis) -> str:
    """Return summary.txt of ``analysis`` (sections :data:`SECTIONS`, blank lines between them)."""
    parts = [_summary(analysis), _walk_forward(analysis), _top(analysis), _sensitivity(analysis),
             _overfitting(analysis), _recommended(analysis), _implementation(analysis)]
    notes = [f"  {n}" for n in analysis.notes]
    if notes:
        parts.append(["notes", *notes])
    return "\n\n".join("\n".join(p) for p in parts if p) + "\n"
