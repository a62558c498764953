"""The overfitting statistics block of ``tradingd optimize`` and ``tradingd walkforward``.

From a :class:`research.optimize.StudyResult` (and the bars it ran on) :func:`study_statistics`
computes, for the best parameter set: the probabilistic Sharpe ratio (PSR), the deflated Sharpe
ratio (DSR, with the real number of trials and the variance of their Sharpe ratios), the minimum
track record length (MinTRL), the probability of backtest overfitting (PBO, by CSCV over the T x N
matrix of every trial's daily returns), the in-sample vs out-of-sample degradation and the 0-100
verdict of :func:`research.overfitting_verdict.overfitting_verdict`. Given a walk-forward result
instead (``walk_forward=``), the same block is built from the stitched out-of-sample curve and the
folds' own statistics.

The T x N matrix comes from the study itself (:func:`research.study_returns.trial_returns`,
importable from here too): every trial the optimizer replays to the end comes back with the daily
returns of its equity curve, kept with the trial and in the result cache, so the statistics of a
study run by this version replay nothing. Only trials without them (recorded by an older
tradingd) are replayed with :func:`backtest.replay.run_replay` on the study's bars.

Conventions (see :mod:`research.overfitting`): Sharpe ratios inside the PSR/DSR/MinTRL are per
period (per trading day); the dict also shows them annualised with the periods per year inferred
from the data (``n_days / years``, as :mod:`research.metrics`). Kurtosis is the ordinary one (3
for normal returns).

Where the in-sample vs out-of-sample comparison comes from (``degradation.source``):

* ``"cscv"`` (a study alone): for each CSCV combination the trial best on its in-sample half is
  scored on the other half; the means over combinations of its annualised Sharpe ratio, mean
  annual return (``252``-ish x mean daily return) and volatility are the IS and OOS values.
* ``"holdout"``: out-of-sample metrics given by the caller (``out_of_sample=``) against the best
  trial's in-sample metrics.
* ``"walk_forward"``: the mean over folds of the chosen sets' IS metrics against the mean of their
  OOS metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from research.metrics import daily_returns
from research.optimize_data import StudyData
from research.optimize_records import StudyResult, TrialRecord, param_key
from research.optimize_trial import DiscardStore
from research.overfitting import (deflated_sharpe_ratio, minimum_track_record_length, probabilistic_sharpe_ratio,
                                  probability_of_backtest_overfitting, sample_moments)
from research.overfitting_verdict import OverfittingVerdict, VerdictThresholds, overfitting_verdict
from research.study_returns import REPLAYED, TrialReturns, replay_daily_returns, trial_returns

if TYPE_CHECKING:
    from research.walk_forward import WalkForwardResult

__all__ = ["REPLAYED", "DiscardStore", "TrialReturns", "choose_splits", "replay_daily_returns", "statistics_text",
           "study_statistics", "trial_returns"]

EVALUATED = ("complete", "filtered", "pruned", "failed")
"""Statuses of trials that count as tried for the DSR's number of trials (a failed trial counts only
when it was replayed, i.e. has metrics)."""
MIN_ROWS_PER_BLOCK = 4
"""Fewest daily returns per CSCV block :func:`choose_splits` accepts."""
DEFAULT_SPLITS = 16
"""CSCV blocks S when the data allow it (Bailey et al. 2017 use 16: 12,870 combinations)."""


# --- the statistics ---------------------------------------------------------------------------------

def choose_splits(n_obs: int, wanted: int = DEFAULT_SPLITS) -> int | None:
    """The CSCV block count: the largest even S <= ``wanted`` leaving at least
    :data:`MIN_ROWS_PER_BLOCK` rows per block (None when not even S = 2 fits).

    Examples
    --------
    >>> choose_splits(500), choose_splits(30), choose_splits(7)
    (16, 6, None)
    """
    s = min(wanted, n_obs // MIN_ROWS_PER_BLOCK)
    s -= s % 2
    return s if s >= 2 else None


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats -> None, numpy scalars -> Python."""
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _sharpe_block(returns: np.ndarray, periods_per_year: float, prob: float) -> dict[str, Any]:
    """PSR (vs 0) and MinTRL of one daily return series; Nones when the Sharpe ratio is undefined."""
    out: dict[str, Any] = {"n_obs": int(returns.size), "periods_per_year": periods_per_year, "sharpe_per_period": None,
                           "sharpe": None, "skew": None, "kurtosis": None, "psr": None,
                           "min_trl_obs": None, "min_trl_years": None}
    try:
        sr, skew, kurt, n = sample_moments(returns)
    except ValueError as exc:
        out["note"] = str(exc)
        return out
    min_trl = minimum_track_record_length(sr, 0.0, skew, kurt, prob)
    out.update(sharpe_per_period=sr, sharpe=sr * math.sqrt(periods_per_year), skew=skew, kurtosis=kurt,
               psr=probabilistic_sharpe_ratio(sr, 0.0, n, skew, kurt), min_trl_obs=min_trl,
               min_trl_years=min_trl / periods_per_year)
    return out


def _cscv_degradation(matrix: np.ndarray, pbo_best: np.ndarray, n_splits: int,
                      periods_per_year: float) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Mean over CSCV combinations of the IS-best trial's annualised Sharpe, annual return and
    volatility on its IS half and on the OOS half (the rows and combinations of
    :func:`research.overfitting.probability_of_backtest_overfitting`)."""
    block = matrix.shape[0] // n_splits
    m = matrix[matrix.shape[0] - block * n_splits:]  # the PBO drops the oldest rows likewise
    blocks = m.reshape(n_splits, block, m.shape[1])
    sums, squares = blocks.sum(axis=1), (blocks * blocks).sum(axis=1)
    combos = np.array(list(combinations(range(n_splits), n_splits // 2)), dtype=np.int64)
    member = np.zeros((len(combos), n_splits))
    member[np.arange(len(combos))[:, None], combos] = 1.0
    rows = float(block * (n_splits // 2))
    star = pbo_best
    s_in = (member * sums[:, star].T).sum(axis=1)
    q_in = (member * squares[:, star].T).sum(axis=1)
    s_out, q_out = sums[:, star].sum(axis=0) - s_in, squares[:, star].sum(axis=0) - q_in

    def stats(s: np.ndarray, q: np.ndarray) -> dict[str, float | None]:
        mean = s / rows
        std = np.sqrt(np.maximum(q - rows * mean * mean, 0.0) / (rows - 1.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            sharpe = np.where(std > 0, mean / std, np.nan) * math.sqrt(periods_per_year)
        finite = sharpe[np.isfinite(sharpe)]
        return {"sharpe": float(finite.mean()) if finite.size else None,
                "annual_return": float(mean.mean() * periods_per_year),
                "volatility": float(std.mean() * math.sqrt(periods_per_year))}

    return stats(s_in, q_in), stats(s_out, q_out)


def _period_returns(daily: pd.Series) -> dict[str, float]:
    """Compounded return per calendar year (per quarter when the series spans under two years)."""
    if daily.empty:
        return {}
    index = pd.DatetimeIndex(daily.index)
    span_years = (index[-1] - index[0]) / pd.Timedelta(days=365.25)
    keys = index.year if span_years >= 2 else index.tz_localize(None).to_period("Q").astype(str)
    growth = (1.0 + daily).groupby(keys).prod() - 1.0
    return {str(k): float(v) for k, v in growth.items()}


def _tried(result: StudyResult) -> int:
    """Distinct parameter sets tried (complete, filtered, pruned, failed after a replay)."""
    return len({param_key(t.params) for t in result.trials
                if t.status in EVALUATED and (t.status != "failed" or t.metrics is not None or t.replay_s is not None)})


def _verdict_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float | None]:
    keys = ("sharpe", "sortino", "cagr", "max_drawdown", "win_rate")
    return {k: (None if metrics is None else metrics.get(k)) for k in keys}


def _study_block(result: StudyResult, returns: TrialReturns, *, out_of_sample: Mapping[str, Any] | None,
                 n_splits: int, prob: float, thresholds: VerdictThresholds | None) -> dict[str, Any]:
    best: TrialRecord | None = result.best
    ppy = returns.periods_per_year
    notes: list[str] = []
    tried = _tried(result)
    block: dict[str, Any] = {"kind": "study", "study_name": result.study_name, "best_trial": None, "psr": None, "dsr": None,
                             "min_trl": None, "pbo": None, "best": None, "pbo_detail": None, "degradation": None,
                             "verdict": None, "notes": notes,
                             "trials": {"tried": tried, "with_returns": int(returns.returns.shape[1]),
                                        "failed_replays": len(returns.failed), "sharpe_variance_per_period": None,
                                        "periods": int(returns.returns.shape[0]), "periods_per_year": ppy}}
    column = returns.column(best.params) if best is not None else None
    if best is None or column is None:
        notes.append("no ranked trial (none passed the filters): no statistics of a best set")
        return block
    block["best_trial"] = best.number
    matrix = returns.returns.to_numpy()
    best_returns = returns.returns[column].to_numpy()
    sharpe = _sharpe_block(best_returns, ppy, prob)
    block["best"] = sharpe
    block["psr"] = sharpe["psr"]
    if sharpe["min_trl_obs"] is not None:
        block["min_trl"] = {"observations": sharpe["min_trl_obs"], "years": sharpe["min_trl_years"],
                            "have_observations": sharpe["n_obs"], "enough": sharpe["n_obs"] >= sharpe["min_trl_obs"]}
    # DSR: every trial tried counts; the variance is that of the trials' own Sharpe ratios
    sharpes = []
    for n in returns.returns.columns:
        try:
            sharpes.append(sample_moments(returns.returns[n].to_numpy())[0])
        except ValueError:
            continue  # flat curve: no Sharpe ratio to spread
    if len(sharpes) >= 2 and sharpe["sharpe_per_period"] is not None:
        variance = float(np.var(sharpes, ddof=1))
        block["trials"]["sharpe_variance_per_period"] = variance
        block["dsr"] = deflated_sharpe_ratio(sharpe["sharpe_per_period"], sharpe["n_obs"], sharpe["skew"],
                                             sharpe["kurtosis"], max(tried, len(sharpes)), variance)
    else:
        notes.append("DSR needs the Sharpe ratios of at least two trials")
    splits = choose_splits(matrix.shape[0], n_splits)
    in_sample: dict[str, Any] | None = None
    oos: dict[str, Any] | None = None
    if matrix.shape[1] >= 2 and splits is not None:
        pbo = probability_of_backtest_overfitting(matrix, splits)
        block["pbo"] = pbo.pbo
        detail = pbo.to_dict()
        detail["best_trial"] = [int(returns.returns.columns[i]) for i in pbo.best_trial]  # trial numbers
        block["pbo_detail"] = detail
        in_sample, oos = _cscv_degradation(matrix, pbo.best_trial, splits, ppy)
    else:
        notes.append(f"PBO needs at least 2 trials with returns and {2 * MIN_ROWS_PER_BLOCK} days "
                     f"(have {matrix.shape[1]} trials, {matrix.shape[0]} days)")
    if out_of_sample is not None:
        in_sample, oos = _verdict_metrics(best.metrics), _verdict_metrics(out_of_sample)
        block["degradation"] = {"source": "holdout", "in_sample": in_sample, "out_of_sample": oos}
    elif in_sample is not None and oos is not None:
        block["degradation"] = {"source": "cscv", "in_sample": in_sample, "out_of_sample": oos}
    periods = _period_returns(returns.returns[column])
    block["period_returns"] = periods
    if in_sample is None or oos is None:  # nothing out of sample: the best set against itself (no degradation)
        in_sample = oos = {"sharpe": (best.metrics or {}).get("sharpe")}
        notes.append("no out-of-sample comparison available: degradation not judged")
    verdict = overfitting_verdict(in_sample=in_sample, out_of_sample=oos,
                                  n_trades=int((best.metrics or {}).get("trades") or 0),
                                  n_parameters=len(result.space.dimensions), period_performance=periods or None,
                                  pbo=block["pbo"], dsr=block["dsr"], thresholds=thresholds)
    block["verdict"] = verdict.to_dict()
    return block


def _median(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(kept)) if kept else None


def _mean(values: Iterable[Any]) -> float | None:
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(kept)) if kept else None


def _walk_forward_block(wf: WalkForwardResult, *, prob: float,
                        thresholds: VerdictThresholds | None) -> dict[str, Any]:
    notes: list[str] = []
    equity = wf.oos_equity
    daily = daily_returns(equity) if len(equity) >= 2 else pd.Series(dtype=float)
    ppy = 252.0
    if len(daily) >= 2:
        years = (daily.index[-1] - daily.index[0]) / pd.Timedelta(days=365.25)
        ppy = float(len(daily) / years) if years > 2 / 365.25 else 252.0
    sharpe = _sharpe_block(daily.to_numpy(), ppy, prob)
    folds = [f for f in wf.folds if f.params is not None]
    fold_stats = [f.statistics or {} for f in wf.folds]
    block: dict[str, Any] = {
        "kind": "walk_forward", "psr": sharpe["psr"], "best": sharpe, "notes": notes,
        "min_trl": ({"observations": sharpe["min_trl_obs"], "years": sharpe["min_trl_years"],
                     "have_observations": sharpe["n_obs"], "enough": sharpe["n_obs"] >= sharpe["min_trl_obs"]}
                    if sharpe["min_trl_obs"] is not None else None),
        "pbo": _median(s.get("pbo") for s in fold_stats),
        "dsr": _median(s.get("dsr") for s in fold_stats),
        "folds": [{"fold": f.index, "psr": s.get("psr"), "dsr": s.get("dsr"), "pbo": s.get("pbo"),
                   "min_trl": s.get("min_trl"), "tried": (s.get("trials") or {}).get("tried"),
                   "verdict_score": (s.get("verdict") or {}).get("score")} for f, s in zip(wf.folds, fold_stats)],
        "basis": {"psr": "stitched out-of-sample daily returns vs a Sharpe ratio of 0",
                  "min_trl": "stitched out-of-sample daily returns, 95 % confidence vs 0",
                  "pbo": "median over folds of the PBO (CSCV) of each fold's in-sample study",
                  "dsr": "median over folds of the DSR of each fold's chosen set (its study's real trial count)"},
        "trials": {"tried": sum(((s.get("trials") or {}).get("tried") or 0) for s in fold_stats),
                   "periods": int(len(daily)), "periods_per_year": ppy},
    }
    # the stitched curve was not selected in sample; only the variants compared (steps) were chosen among
    variants = [v for v in (wf.step_comparison or [])]
    if len(variants) >= 2 and sharpe["sharpe_per_period"] is not None:
        srs = [v.oos_metrics.get("sharpe") for v in variants]
        srs_pp = [s / math.sqrt(ppy) for s in srs if s is not None]
        if len(srs_pp) >= 2:
            block["oos_dsr"] = deflated_sharpe_ratio(sharpe["sharpe_per_period"], sharpe["n_obs"], sharpe["skew"],
                                                     sharpe["kurtosis"], len(srs_pp), float(np.var(srs_pp, ddof=1)))
            block["basis"]["oos_dsr"] = f"stitched OOS returns deflated over the {len(srs_pp)} re-optimization steps compared"
    if not folds:
        notes.append("no fold had a ranked trial: nothing to judge")
        block["degradation"] = None
        block["verdict"] = None
        return block
    keys = ("sharpe", "sortino", "cagr", "max_drawdown", "win_rate")
    in_sample = {k: _mean((f.is_metrics or {}).get(k) for f in folds) for k in keys}
    oos = {k: _mean((f.oos_metrics or {}).get(k) for f in folds) for k in keys}
    block["degradation"] = {"source": "walk_forward", "in_sample": in_sample, "out_of_sample": oos}
    periods = {f"fold {f.index}": float((f.oos_metrics or {}).get("total_return") or 0.0) for f in folds}
    trades = int(round(_mean((f.is_metrics or {}).get("trades") for f in folds) or 0))
    verdict: OverfittingVerdict = overfitting_verdict(
        in_sample=in_sample, out_of_sample=oos, n_trades=trades, n_parameters=len(wf.space.dimensions),
        period_performance=periods, pbo=block["pbo"], dsr=block["dsr"], thresholds=thresholds)
    block["verdict"] = verdict.to_dict()
    block["period_returns"] = periods
    return block


def study_statistics(result: StudyResult | None = None, data: StudyData | None = None, *,
                     walk_forward: WalkForwardResult | None = None, returns: TrialReturns | None = None,
                     out_of_sample: Mapping[str, Any] | None = None, n_splits: int = DEFAULT_SPLITS,
                     prob: float = 0.95, jobs: int = 1, thresholds: VerdictThresholds | None = None) -> dict[str, Any]:
    """Return the statistics block of a study or of a walk-forward run (JSON-safe dict).

    Parameters
    ----------
    result
        A finished study; needs ``data`` (or ``returns``) to replay its trials.
    data
        The bars the study ran on.
    walk_forward
        A :class:`research.walk_forward.WalkForwardResult`: the block is then that of the
        walk-forward run (stitched OOS curve, folds' statistics); ``result`` may be left out.
    returns
        The trials' daily returns when already computed (:func:`trial_returns`).
    out_of_sample
        OOS metrics (:data:`research.optimize.METRIC_KEYS`) of the best set on a holdout; the
        degradation is then judged against them instead of by CSCV.
    n_splits
        Wanted CSCV blocks (reduced for short data, see :func:`choose_splits`).
    prob
        Confidence of the MinTRL.
    jobs
        Replays at a time for :func:`trial_returns`.
    thresholds
        Flag lines of the verdict.

    Returns
    -------
    dict
        ``kind`` (``"study"`` / ``"walk_forward"``); ``study_name`` (a study's); ``psr``, ``dsr``, ``pbo`` (probabilities or
        None); ``min_trl`` (``observations`` and ``years`` needed, ``have_observations``,
        ``enough``) or None; ``best`` (the judged series: ``sharpe`` annualised,
        ``sharpe_per_period``, ``skew``, ``kurtosis``, ``n_obs``, ``periods_per_year``); ``trials``
        (``tried`` = the DSR's N, ``with_returns``, ``sharpe_variance_per_period``, ``periods``);
        ``pbo_detail`` (:meth:`research.overfitting.PBOResult.to_dict`, ``best_trial`` as trial
        numbers); ``degradation`` (``source``, ``in_sample``, ``out_of_sample``);
        ``period_returns``; ``verdict`` (:meth:`OverfittingVerdict.to_dict`: ``score``, ``level``,
        ``parts``, ``flags``, ``remedy``); ``notes``. Walk-forward adds ``folds`` (per fold
        ``psr``, ``dsr``, ``pbo``, ``tried``, ``verdict_score``), ``basis`` (what each number is
        of) and, when re-optimization steps were compared, ``oos_dsr``. With both ``result`` and
        ``walk_forward`` the walk-forward block has the study's under ``study``.

    Raises
    ------
    ValueError
        If neither ``result`` nor ``walk_forward`` is given, or ``result`` without ``data`` or
        ``returns``.
    """
    if walk_forward is None and result is None:
        raise ValueError("study_statistics: give a study result (with its data) or a walk-forward result")
    study_block = None
    if result is not None:
        if returns is None:
            if data is None:
                raise ValueError("study_statistics: a study result needs the data it ran on (data=) or its "
                                 "trials' returns (returns=)")
            returns = trial_returns(result, data, jobs=jobs)
        study_block = _study_block(result, returns, out_of_sample=out_of_sample, n_splits=n_splits, prob=prob,
                                   thresholds=thresholds)
    if walk_forward is None:
        assert study_block is not None
        return dict(_clean(study_block))
    block = _walk_forward_block(walk_forward, prob=prob, thresholds=thresholds)
    block["study"] = study_block
    return dict(_clean(block))


# --- text -------------------------------------------------------------------------------------------

def _num(value: Any, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def statistics_text(stats: Mapping[str, Any], title: str = "overfitting") -> str:
    """The ``overfitting`` section of summary.txt for a :func:`study_statistics` dict.

    Examples
    --------
    >>> print(statistics_text({"kind": "study", "psr": 0.9, "dsr": None, "pbo": 0.25, "min_trl": None,
    ...                        "trials": {"tried": 8}, "verdict": None, "notes": []}), end="")
    overfitting
      PSR        0.900 (P[true Sharpe > 0])
      DSR        - (deflated over 8 trials)
      MinTRL     -
      PBO        0.250 (CSCV)
    """
    lines = [title]
    tried = (stats.get("trials") or {}).get("tried")
    basis = stats.get("basis") or {}
    lines.append(f"  PSR        {_num(stats.get('psr'))} ({basis.get('psr', 'P[true Sharpe > 0]')})")
    deflated = f"deflated over {tried if tried is not None else '?'} trials"
    lines.append(f"  DSR        {_num(stats.get('dsr'))} ({basis.get('dsr', deflated)})")
    trl = stats.get("min_trl")
    if trl:
        lines.append(f"  MinTRL     {_num(trl.get('observations'), '.0f')} days ({_num(trl.get('years'), '.1f')} years) for "
                     f"95 % confidence; have {trl.get('have_observations')}"
                     + (" (enough)" if trl.get("enough") else " (not enough)"))
    else:
        lines.append("  MinTRL     -")
    lines.append(f"  PBO        {_num(stats.get('pbo'))} ({basis.get('pbo', 'CSCV')})")
    if "oos_dsr" in stats:
        lines.append(f"  OOS DSR    {_num(stats.get('oos_dsr'))} ({(stats.get('basis') or {}).get('oos_dsr', '')})")
    degradation = stats.get("degradation")
    if degradation:
        lines.append(f"  IS -> OOS  ({degradation['source']})")
        for key, is_value in degradation["in_sample"].items():
            oos_value = degradation["out_of_sample"].get(key)
            change = ""
            if is_value not in (None, 0) and oos_value is not None:
                worse = (oos_value - is_value) if key in ("max_drawdown", "volatility") else (is_value - oos_value)
                change = f"  degradation {worse / abs(is_value):+.0%}" + (" FLAG" if worse / abs(is_value) > 0.3 else "")
            lines.append(f"    {key:<14} IS {_num(is_value):>8}  OOS {_num(oos_value):>8}{change}")
    verdict = stats.get("verdict")
    if verdict:
        lines.append(f"  score      {verdict['score']:.0f}/100 ({verdict['level']})")
        for part in verdict["parts"]:
            lines.append(f"    {part['name']:<22} {part['points']:5.1f} of {part['weight']:5.1f}"
                         + ("  FLAG" if part["flagged"] else "") + f"  {part['detail']}")
        lines.append(f"  remedy     {verdict['remedy']}")
    for note in stats.get("notes") or ():
        lines.append(f"  note       {note}")
    return "\n".join(lines) + "\n"

