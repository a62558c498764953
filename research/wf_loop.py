"""The walk-forward loop (:func:`walk_forward`): per fold, the study of its training window
(:func:`research.optimize.run_study`), the out-of-sample replay of the chosen set
(:func:`research.wf_replay.replay_oos`), its statistics and regime-aware variant; then the
stitched curve, the figures across folds, the step comparison and the final study."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import optuna
import pandas as pd

from backtest.spec import RunSpec
from research.benchmark import resolve_benchmark
from research.optimize import (OBJECTIVES, OptimizeError, StudyData, StudyResult, TrialFilters, parse_objectives,
                               run_study)
from research.overfitting_verdict import metric_degradation
from research.search_space import SearchSpace
from research.study_stats import TrialReturns, study_statistics, trial_returns
from research.wf_output import num_text, pct_text
from research.wf_regime import pick_regime_symbol, regime_fold
from research.wf_replay import cut_curve, replay_oos, stitch, window_metrics
from research.wf_results import DEGRADATION_METRICS, Fold, RegimeSummary, WalkForwardResult
from research.wf_stats import (compare_step_runs, finite_mean, is_better, oos_benchmark, parameter_stability, ratio,
                               stitched_metrics)
from research.wf_windows import FoldWindow, data_span, parse_period, plan_folds, timestamp_ns, window_data

__all__ = ["Progress", "walk_forward"]


Progress = Callable[[str], None]
"""Called with a line of text after each fold."""


def walk_forward(base: RunSpec, space: SearchSpace, data: StudyData, *, storage: str | optuna.storages.BaseStorage,
                 train: str = "2y", test: str = "6m", step: str | None = None, anchored: bool = False,
                 method: str = "tpe", n_trials: int | None = 50, objectives: str | Sequence[str] = ("sharpe",),
                 jobs: int = 1, seed: int | None = 0, filters: TrialFilters = TrialFilters(),
                 prune: bool | None = None, use_cache: bool = True, regime_aware: bool = False,
                 regime_symbol: str | None = None, compare_steps: Sequence[str] = (), benchmark: str | None = None,
                 statistics: bool = True, final: bool = True, progress: Progress | None = None) -> WalkForwardResult:
    """Run a walk-forward validation of ``space`` on ``data``.

    Parameters
    ----------
    base, space, storage, method, n_trials, objectives, jobs, seed, filters, prune, use_cache
        As :func:`research.optimize.run_study`, for the study of every training window (each a
        study of its own, named after its window's data, so running again resumes them).
    data
        All the bars, loaded once; windows are cut from them.
    train, test, step, anchored
        The windows (:func:`research.wf_windows.plan_folds`); ``step`` defaults to ``test``.
    regime_aware
        Also choose the best set per market regime of each training window and replay it OOS by
        regime, against the single best set (:class:`research.wf_results.RegimeSummary`). The
        sets per regime differ in strategy parameters only (trials sharing the best set's other
        keys).
    regime_symbol
        Whose regime is the market's (default SPY when in the data, else the first symbol).
    compare_steps
        Re-optimization steps to compare (``["1m", "3m", "6m"]``), each a whole walk-forward with
        ``test = step``.
    benchmark
        Buy-and-hold benchmark (:func:`research.benchmark.resolve_benchmark`; default SPY or
        equal weight; ``"none"`` for none).
    statistics
        Compute the statistics block (replays every ranked trial of every fold once more).
    final
        Run the study of the latest training window (the set for the next live period).
    progress
        Called with a line of text after each fold.

    Returns
    -------
    WalkForwardResult

    Raises
    ------
    WalkForwardError
        For bad periods, windows that do not fit the data, or a timeframe without bars in a window.
    research.optimize.OptimizeError
        As :func:`research.optimize.run_study`.
    KeyboardInterrupt
        When a fold's study was interrupted (Ctrl-C): its finished trials are kept in the storage
        and running the same walk-forward again resumes it.
    """
    started = time.perf_counter()
    names = parse_objectives(objectives)
    directions = tuple(OBJECTIVES[n] for n in names)
    step = step or test
    first, last = data_span(data)
    windows = plan_folds(first, last, train=train, test=test, step=step, anchored=anchored)
    train_off = parse_period(train)
    cash = base.replay.starting_cash
    symbols = [s.symbol for s in data.get(None)]
    ref = pick_regime_symbol(symbols, regime_symbol) if regime_aware else ""
    resolve_benchmark(benchmark, symbols)  # a bad name fails before any study runs

    def study_of(start: int, end: int) -> tuple[StudyData, StudyResult]:
        window = window_data(data, start, end)
        study = run_study(base, space, window, storage=storage, method=method, objectives=names, n_trials=n_trials,
                          jobs=jobs, seed=seed, filters=filters, prune=prune, use_cache=use_cache)
        if study.interrupted:  # the study kept its finished trials; running again resumes it
            raise KeyboardInterrupt
        return window, study

    folds: list[Fold] = []
    errors: list[OptimizeError] = []
    notes: list[str] = []
    for w in windows:
        try:
            is_data, study = study_of(w.is_start, w.is_end)
        except OptimizeError as exc:  # e.g. a sampler stuck on constraints: this fold in cash, the others go on
            errors.append(exc)
            fold = _cash_fold(w, cash, "failed", f"the study could not run: {exc}", "", None)
            notes.append(f"fold {w.index}: {fold.reason}")
            folds.append(fold)
            if progress is not None:
                progress(f"fold {w.index + 1}/{len(windows)}: IS {w.label('is')} OOS {w.label('oos')} failed: {exc}")
            continue
        warm_start = max(w.is_start, timestamp_ns(pd.Timestamp(w.oos_start, unit="ns", tz="UTC") - train_off))
        best, setup = study.best, study.best_setup
        if best is None or setup is None:
            fold = _cash_fold(w, cash, "no_ranked_trial", "no trial of the study passed the filters: in cash",
                              study.study_name, study)
        else:
            run, part = replay_oos(data, setup.spec, setup.timeframe, w, warm_start)
            degradation = {k: metric_degradation(k, (best.metrics or {}).get(k), run.metrics.get(k),
                                                 lower_is_better=k == "max_drawdown").degradation
                           for k in DEGRADATION_METRICS}
            fold = Fold(w.index, w, "failed" if run.error else "ok", run.error, study.study_name, dict(best.params),
                        setup.spec, setup.timeframe, best.metrics, run.metrics, degradation,
                        ratio(run.metrics.get("cagr"), (best.metrics or {}).get("cagr")), run.equity, study=study)
            fold.stitched, fold.stitched_pnl = part.equity, [t.pnl for t in part.trades]
            returns: TrialReturns | None = None
            if statistics or regime_aware:
                returns = trial_returns(study, is_data, jobs=jobs)
            if statistics and returns is not None:
                fold.statistics = study_statistics(study, is_data, returns=returns, out_of_sample=run.metrics)
            if regime_aware and returns is not None:
                fold.regime = regime_fold(study, returns, is_data, data, ref, w, warm_start)
        folds.append(fold)
        if progress is not None:
            m = fold.oos_metrics or {}
            progress(f"fold {w.index + 1}/{len(windows)}: IS {w.label('is')} OOS {w.label('oos')} "
                     f"{fold.status}; OOS return {pct_text(m.get('total_return'))}, Sharpe {num_text(m.get('sharpe'))}")

    if len(errors) == len(folds):
        raise errors[0]
    equity, fold_of = stitch([(f.index, f.stitched) for f in folds if f.stitched is not None], cash)
    oos_metrics = stitched_metrics(equity, [p for f in folds for p in f.stitched_pnl])
    bench_equity, bench_label, bench_metrics = oos_benchmark(data, benchmark, cash, equity)
    chosen = [f for f in folds if f.params is not None]
    result = WalkForwardResult(
        strategy=space.strategy, method=method, objectives=names, directions=directions, train=train, test=test,
        step=step, anchored=anchored, space=space, base=base, folds=folds, oos_equity=equity, oos_fold=fold_of,
        oos_metrics=oos_metrics, benchmark_equity=bench_equity, benchmark_label=bench_label,
        benchmark_metrics=bench_metrics,
        efficiency=ratio(finite_mean((f.oos_metrics or {}).get("cagr") for f in chosen),
                          finite_mean((f.is_metrics or {}).get("cagr") for f in chosen)),
        sharpe_efficiency=ratio(finite_mean((f.oos_metrics or {}).get("sharpe") for f in chosen),
                                 finite_mean((f.is_metrics or {}).get("sharpe") for f in chosen)),
        profitable_share=sum(1 for f in folds if ((f.oos_metrics or {}).get("total_return") or 0.0) > 0) / len(folds),
        stability=parameter_stability(space, [f.params for f in chosen if f.params is not None]),
        period=data.period(), timeframe=data.default)
    if regime_aware:
        pieces = [(f.index, f.regime.stitched if f.regime is not None and f.regime.stitched is not None else f.stitched)
                  for f in folds if f.stitched is not None]
        r_equity, _ = stitch([(i, s) for i, s in pieces if s is not None], cash)
        r_metrics = stitched_metrics(r_equity, [p for f in folds for p in (
            f.regime.stitched_pnl if f.regime is not None and f.regime.stitched is not None else f.stitched_pnl)])
        result.regime = RegimeSummary(ref, r_equity, r_metrics, oos_metrics,
                                      is_better(r_metrics.get(names[0]), oos_metrics.get(names[0]), directions[0]))
    if compare_steps:
        result.step_comparison, result.best_step = compare_step_runs(
            result, compare_steps, lambda s: walk_forward(
                base, space, data, storage=storage, train=train, test=s, step=s, anchored=anchored, method=method,
                n_trials=n_trials, objectives=names, jobs=jobs, seed=seed, filters=filters, prune=prune,
                use_cache=use_cache, benchmark="none", statistics=False, final=False, progress=_prefixed(progress, s)))
    result.notes = notes
    if final:
        end = last
        start = first if anchored else max(
            first, timestamp_ns((pd.Timestamp(end, unit="ns", tz="UTC") - train_off).floor("D")))
        try:
            _, result.final_study = study_of(start, end)
            result.final_window = (start, end)
        except OptimizeError as exc:
            notes.append(f"final window: the study could not run: {exc}")
    if statistics:
        final_data = window_data(data, *result.final_window) if result.final_window is not None else None
        final_block = (study_statistics(result.final_study, final_data, jobs=jobs)
                       if result.final_study is not None and final_data is not None else None)
        wf_block = study_statistics(walk_forward=result)
        wf_block["study"] = final_block
        result.statistics = wf_block
    result.runtime_s = time.perf_counter() - started
    return result


def _prefixed(progress: Progress | None, step: str) -> Progress | None:
    if progress is None:
        return None
    report = progress
    return lambda line: report(f"[every {step}] {line}")


def _cash_fold(w: FoldWindow, cash: float, status: str, reason: str, study_name: str,
               study: StudyResult | None) -> Fold:
    """A fold that stays in cash over its test window."""
    empty = np.array([], dtype=np.int64), np.array([])
    flat = cut_curve(*empty, w.oos_start, w.oos_end, cash)
    fold = Fold(w.index, w, status, reason, study_name, None, None, None, None,
                window_metrics(flat, None, w.oos_start, w.oos_end), {}, None, flat, study=study)
    fold.stitched = cut_curve(*empty, w.oos_start, w.stitch_end, cash)
    return fold
