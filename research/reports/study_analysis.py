"""Everything a study report shows, computed once (:func:`analyse_study`) into a
:class:`StudyAnalysis` the HTML page, ``summary.txt`` and ``report.pdf`` all read, so they agree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from research.benchmark import buy_and_hold
from research.optimize import StudyData, StudyResult
from research.reports.study_format import pick
from research.reports.study_importance import ParameterImportance, parameter_importance
from research.reports.study_landscape import (Landscape, PairSurface, ParetoView, pair_surface, pareto_view,
                                              study_landscape)
from research.reports.study_overfitting import OverfittingBlock, overfitting_block
from research.reports.study_recommend import Recommendation, recommend
from research.reports.study_replays import TOP_SETS, SetReplay, replay_sets
from research.reports.study_sensitivity import ParameterSensitivity, parameter_sensitivity
from research.reports.study_wf_view import WalkForwardView, walk_forward_view
from research.study_stats import study_statistics
from research.wf_windows import window_data

__all__ = ["StudyAnalysis", "analyse_study"]


@dataclass(frozen=True)
class StudyAnalysis:
    """Everything a study report shows (see :func:`analyse_study`); ``statistics`` is the raw
    statistics the overfitting block was read from."""

    result: StudyResult
    landscape: Landscape
    sensitivity: list[ParameterSensitivity]
    importance: list[ParameterImportance]
    importance_note: str
    pair: PairSurface | None
    pareto: ParetoView
    replays: list[SetReplay]
    benchmark: pd.Series | None
    overfitting: OverfittingBlock
    walk_forward: WalkForwardView | None
    recommendation: Recommendation | None
    notes: tuple[str, ...]
    statistics: Any = None


def analyse_study(result: StudyResult, *, data: StudyData | None = None, walk_forward: Any = None,
                  statistics: Any = None, top: int = TOP_SETS) -> StudyAnalysis:
    """Compute what a study report shows.

    Parameters
    ----------
    result
        The study (:func:`research.optimize.run_study`).
    data
        The bars it ran on; needed to replay the top sets (equity, drawdown, Sharpe interval).
        When ``result`` is the walk-forward's ``final_study``, all the walk-forward's bars may be
        given: they are cut to its ``final_window`` here.
    walk_forward
        A walk-forward result (see :func:`walk_forward_view`), optional.
    statistics
        Overfitting statistics (the dict of :func:`research.study_stats.study_statistics`); when
        None: the walk-forward's ``statistics`` if given, else computed here when ``data`` is
        given (every complete or filtered trial is replayed once for the PBO's return matrix).
    top
        Sets replayed for the overlays.

    Raises
    ------
    ValueError
        If ``walk_forward`` has no folds, or a replay does not reproduce its trial.
    """
    land = study_landscape(result)
    notes: list[str] = []
    sensitivity = parameter_sensitivity(land)
    importance, importance_note = parameter_importance(land, result.space)
    varied = [p.key for p in importance if len(land.levels[p.key].labels) > 1]
    pair = pair_surface(land, varied[0], varied[1]) if len(varied) >= 2 and land.best is not None else None
    if pair is None:
        notes.append("heat map and surface need two parameters with at least two values each")
    raw_final = pick(walk_forward, "final_study") if walk_forward is not None else None
    window = pick(walk_forward, "final_window") if walk_forward is not None else None
    if data is not None and raw_final is result and window is not None:
        data = window_data(data, int(window[0]), int(window[1]))  # the final study ran on its training window
    replays = replay_sets(result, data, top) if data is not None else []
    if data is None:
        notes.append("equity overlays need the study's bars (data=StudyData)")
    benchmark = None
    if replays:
        first = replays[0]
        try:
            benchmark = buy_and_hold(first.closes, float(first.equity.iloc[0]), pd.DatetimeIndex(first.equity.index))
        except ValueError as exc:
            notes.append(f"no buy-and-hold benchmark: {exc}")
    wf = walk_forward_view(walk_forward) if walk_forward is not None else None
    if statistics is None and walk_forward is not None:
        statistics = pick(walk_forward, "statistics")
    if statistics is None and data is not None:
        statistics = study_statistics(result, data)
    block = overfitting_block(statistics)
    recommendation = recommend(result, land, sensitivity, block, replays, wf)
    return StudyAnalysis(result, land, sensitivity, importance, importance_note, pair, pareto_view(result, land),
                         replays, benchmark, block, wf, recommendation, tuple(notes), statistics)
