"""The configuration a study report recommends and how far to trust it (:func:`recommend`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from research.optimize import StudyResult, TrialRecord
from research.overfitting import sample_moments
from research.reports.study_format import as_float, fmt_metric
from research.reports.study_landscape import Landscape
from research.reports.study_overfitting import OverfittingBlock
from research.reports.study_replays import SetReplay
from research.reports.study_sensitivity import ParameterSensitivity
from research.reports.study_wf_view import WalkForwardView
from strategies.registry import build_strategy

__all__ = ["PLATEAU_TOLERANCE", "Recommendation", "recommend"]

PLATEAU_TOLERANCE = 0.02
"""Neighbourhood means this close (a fraction of the scale) to the best count as the same plateau."""


@dataclass(frozen=True)
class Recommendation:
    """The configuration the report recommends and how far to trust it.

    Attributes
    ----------
    trial, rank
        The recommended trial and its rank (1 = the study's best).
    params
        Space key -> value.
    strategy_params
        The strategy's full parameters (defaults filled in), as a config file takes them.
    timeframe
        The bar length it trades (None = the data's).
    reason
        Why this set (plateau average against the best's).
    plateau
        Mean objective of the set and its neighbours (every level within one step).
    confidence
        ``"high"``, ``"medium"`` or ``"low"``.
    confidence_reasons
        The facts that set it.
    sharpe_interval
        95 % interval of the annualised Sharpe ratio from the replay's daily returns (standard
        error of Mertens 2002 as used by Bailey & López de Prado 2012:
        ``sqrt((1 - skew*SR + (kurt - 1)/4 * SR^2) / T)``), None without a replay.
    sharpe_obs
        The daily returns ``T`` behind that interval.
    oos_range
        Lowest and highest out-of-sample objective over walk-forward folds, None without one.
    max_drawdown, annual_return
        Of the recommended set's full-period run (fractions).
    """

    trial: TrialRecord
    rank: int
    params: dict[str, Any]
    strategy_params: dict[str, Any]
    timeframe: str | None
    reason: str
    plateau: float | None
    confidence: str
    confidence_reasons: tuple[str, ...]
    sharpe_interval: tuple[float, float] | None
    sharpe_obs: int | None
    oos_range: tuple[float, float] | None
    max_drawdown: float | None
    annual_return: float | None


def _plateau(land: Landscape, row: int) -> float:
    near = np.ones(len(land.trials), dtype=bool)
    for j, key in enumerate(land.keys):
        diff = np.abs(land.codes[:, j] - land.codes[row, j])
        near &= diff <= 1 if land.levels[key].numeric else diff == 0
    return float(land.values[near].mean())


def _row_of(land: Landscape, trial: TrialRecord) -> int | None:
    wanted = repr(sorted((k, trial.params.get(k)) for k in land.keys))
    rows = (i for i, t in enumerate(land.trials) if repr(sorted((k, t.params.get(k)) for k in land.keys)) == wanted)
    return next(rows, None)


def recommend(result: StudyResult, land: Landscape, sensitivity: Sequence[ParameterSensitivity],
              block: OverfittingBlock, replays: Sequence[SetReplay],
              wf: WalkForwardView | None) -> Recommendation | None:
    """Return the recommended configuration, None when no trial was ranked.

    Among the ten best ranked sets, the best ranked one whose neighbourhood (itself and every set
    within one level of it on each numeric parameter, the same choice on categorical ones) has a
    mean objective within :data:`PLATEAU_TOLERANCE` of the scale (:attr:`Landscape.scale`) of the
    best such mean: a plateau is more likely to hold out of sample than a peak, and among sets on
    the plateau the ranking decides. Confidence is ``low`` when any of: overfitting score >= 50, DSR < 0.5, PBO > 0.5, fewer
    than 30 trades, a fragile parameter, at most half the walk-forward folds profitable; ``high``
    when none of those and the score < 25, DSR >= 0.95 and (when given) PBO <= 0.25 and at least
    60 % of folds profitable; else ``medium``. Without a verdict and a DSR it is at most medium.
    """
    if not result.ranked or land.best is None:
        return None
    sign = land.sign
    candidates: list[tuple[int, TrialRecord, float | None]] = []
    for rank, trial in enumerate(result.ranked[:10], start=1):
        row = _row_of(land, trial)
        if row is not None:
            candidates.append((rank, trial, _plateau(land, row)))
    if not candidates:
        candidates = [(1, result.ranked[0], None)]
    best_plateau = max(sign * c[2] for c in candidates if c[2] is not None) if any(
        c[2] is not None for c in candidates) else None
    tolerance = PLATEAU_TOLERANCE * land.scale
    rank, trial, plateau = next(c for c in candidates if best_plateau is None or c[2] is None
                                or sign * c[2] >= best_plateau - tolerance)
    top_plateau = candidates[0][2]
    objective = land.objective
    if rank == 1:
        reason = (f"the best set; its neighbourhood averages {objective} {fmt_metric(objective, plateau)}"
                  if plateau is not None else "the best set")
    else:
        reason = (f"rank {rank} chosen over rank 1: its neighbourhood averages {objective} "
                  f"{fmt_metric(objective, plateau)} against {fmt_metric(objective, top_plateau)} around rank 1 "
                  "(a plateau holds out of sample better than a peak)")
    setup = result.space.apply(result.base, trial.params)
    strategy_params = build_strategy(setup.spec.strategy, setup.spec.params).params.model_dump(mode="json")
    metrics = trial.metrics or {}
    low: list[str] = []
    high_ok: list[str] = []
    score, dsr, pbo = block.score, block.dsr, block.pbo
    if score is not None:
        (low if score >= 50 else high_ok if score < 25 else []).append(
            f"overfitting score {score:.0f}/100 ({block.level})")
    if dsr is not None:
        (low if dsr < 0.5 else high_ok if dsr >= 0.95 else []).append(f"DSR {dsr:.2f}")
    if pbo is not None:
        (low if pbo > 0.5 else high_ok if pbo <= 0.25 else []).append(f"PBO {pbo:.2f}")
    trades = metrics.get("trades")
    if trades is not None and int(trades) < 30:
        low.append(f"only {int(trades)} trades")
    fragile = [s.name for s in sensitivity if s.verdict == "fragile"]
    if fragile:
        low.append(f"fragile parameter(s): {', '.join(fragile)}")
    oos_range = None
    if wf is not None:
        oos = [as_float(f.out_of_sample.get(objective)) for f in wf.folds]
        finite = [v for v in oos if v is not None and math.isfinite(v)]
        if finite:
            oos_range = (min(finite), max(finite))
        if wf.profitable_share is not None:
            share = wf.profitable_share
            (low if share <= 0.5 else high_ok if share >= 0.6 else []).append(
                f"{100 * share:.0f}% of walk-forward folds profitable")
    needed = 2 + (pbo is not None) + (wf is not None and wf.profitable_share is not None)
    context = [f for f in (f"overfitting score {score:.0f}/100 ({block.level})" if score is not None else None,
                           f"DSR {dsr:.2f}" if dsr is not None else None, f"PBO {pbo:.2f}" if pbo is not None else None)
               if f is not None and f not in low and f not in high_ok]
    if low:
        others = high_ok + context
        confidence, reasons = "low", low + ([f"other checks: {', '.join(others)}"] if others else [])
    elif score is not None and dsr is not None and len(high_ok) >= needed:
        confidence, reasons = "high", high_ok
    else:
        confidence = "medium"
        reasons = context + high_ok + ([] if score is not None and dsr is not None
                                       else ["no overfitting verdict and DSR to confirm it"])
    interval, n_obs = None, None
    replay = next((r for r in replays if r.trial.number == trial.number), None)
    if replay is not None:
        try:
            sr, skew, kurt, n = sample_moments(replay.returns.to_numpy(dtype=float))
            se = math.sqrt(max(1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr, 0.0) / n)
            k = math.sqrt(replay.periods_per_year)
            interval, n_obs = ((sr - 1.96 * se) * k, (sr + 1.96 * se) * k), n
        except ValueError:
            interval = None
    return Recommendation(trial=trial, rank=rank, params=dict(trial.params), strategy_params=strategy_params,
                          timeframe=setup.timeframe, reason=reason, plateau=plateau, confidence=confidence,
                          confidence_reasons=tuple(reasons), sharpe_interval=interval, sharpe_obs=n_obs,
                          oos_range=oos_range,
                          max_drawdown=as_float(metrics.get("max_drawdown")),
                          annual_return=as_float(metrics.get("cagr")))
