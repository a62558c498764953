"""The overfitting statistics a study report shows, read from the dict of
:func:`research.study_stats.study_statistics` (:func:`overfitting_block`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from research.reports.study_format import as_float, as_int, is_finite_number, pick

__all__ = ["OverfittingBlock", "overfitting_block"]


@dataclass(frozen=True)
class OverfittingBlock:
    """The overfitting statistics a report shows (read from a :func:`research.study_stats.study_statistics` dict).

    Attributes
    ----------
    source
        ``"study"`` or ``"walk_forward"`` (the statistics' ``kind``), or ``"not computed"``.
    psr
        Probabilistic Sharpe ratio of the judged series against 0 (Bailey & López de Prado 2012).
    dsr
        Deflated Sharpe ratio (Bailey & López de Prado 2014) over ``n_trials`` trials whose
        per-period Sharpe ratios have variance ``sr_variance``.
    n_trials, sr_variance
        Inputs of the DSR.
    min_trl, min_trl_years, have_obs
        Minimum track record length at 95 % (daily observations, years) and the observations there are.
    sharpe, sharpe_period, skew, kurtosis, n_obs
        The judged series: annualised and per-period Sharpe ratio, skewness, ordinary kurtosis, days.
    pbo, pbo_splits, pbo_combinations, prob_oos_loss, degradation_slope
        Probability of backtest overfitting by CSCV (Bailey, Borwein, López de Prado, Zhu 2017), its
        blocks S and C(S, S/2) combinations, the probability of an OOS loss, and the slope of OOS
        on IS performance over the combinations.
    logits, is_performance, oos_performance
        Per CSCV combination: the logit of the IS-best trial's OOS relative rank, and its IS and
        OOS Sharpe ratio (per period).
    degradation_source
        Where the IS/OOS comparison of the verdict comes from (``cscv``, ``holdout``, ``walk_forward``).
    oos_dsr
        Walk-forward only: the stitched OOS Sharpe deflated over the re-optimization steps compared.
    basis
        What each walk-forward number is of (from the statistics).
    folds
        Walk-forward only: per fold ``fold``, ``psr``, ``dsr``, ``pbo``, ``tried``, ``verdict_score``.
    verdict
        The verdict dict (:meth:`research.overfitting_verdict.OverfittingVerdict.to_dict`) or object.
    notes
        What is missing and why.
    """

    source: str
    psr: float | None = None
    dsr: float | None = None
    n_trials: int | None = None
    sr_variance: float | None = None
    min_trl: float | None = None
    min_trl_years: float | None = None
    have_obs: int | None = None
    sharpe: float | None = None
    sharpe_period: float | None = None
    skew: float | None = None
    kurtosis: float | None = None
    n_obs: int | None = None
    pbo: float | None = None
    pbo_splits: int | None = None
    pbo_combinations: int | None = None
    prob_oos_loss: float | None = None
    degradation_slope: float | None = None
    logits: tuple[float, ...] = ()
    is_performance: tuple[float, ...] = ()
    oos_performance: tuple[float, ...] = ()
    degradation_source: str | None = None
    oos_dsr: float | None = None
    basis: dict[str, str] = field(default_factory=dict)
    folds: tuple[dict[str, Any], ...] = ()
    verdict: Any = None
    notes: tuple[str, ...] = ()

    @property
    def score(self) -> float | None:
        return as_float(pick(self.verdict, "score"))

    @property
    def level(self) -> str | None:
        level = pick(self.verdict, "level")
        return None if level is None else str(level)

    def parts(self) -> list[dict[str, Any]]:
        """The verdict's parts as dicts (name, weight, severity, points, flagged, detail, remedy)."""
        return [{k: pick(part, k) for k in ("name", "weight", "severity", "points", "flagged", "detail", "remedy")}
                for part in pick(self.verdict, "parts") or ()]

    def degradations(self) -> list[dict[str, Any]]:
        """The verdict's per-metric IS/OOS comparison as dicts (metric, in_sample, out_of_sample,
        lower_is_better, degradation, flagged)."""
        return [{k: pick(item, k) for k in ("metric", "in_sample", "out_of_sample", "lower_is_better", "degradation",
                                             "flagged")}
                for item in pick(self.verdict, "degradations") or ()]

    def flags(self) -> list[str]:
        return [str(f) for f in pick(self.verdict, "flags") or ()]

    def remedy(self) -> str | None:
        remedy = pick(self.verdict, "remedy")
        return None if remedy is None else str(remedy)


def _floats(value: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in (value or ()) if is_finite_number(v))


def overfitting_block(statistics: Any) -> OverfittingBlock:
    """Return the statistics block of ``statistics``: the dict of
    :func:`research.study_stats.study_statistics` (any mapping or object with its keys), or None
    for a block that says it was not computed.

    Keys read: ``kind``, ``psr``, ``dsr``, ``pbo``, ``min_trl`` (``observations``, ``years``,
    ``have_observations``), ``best`` (``sharpe``, ``sharpe_per_period``, ``skew``, ``kurtosis``,
    ``n_obs``), ``trials`` (``tried``, ``sharpe_variance_per_period``), ``pbo_detail``
    (:meth:`research.overfitting.PBOResult.to_dict`), ``degradation`` (``source``), ``oos_dsr``,
    ``basis``, ``folds``, ``verdict``, ``notes``.

    Examples
    --------
    >>> overfitting_block(None).source
    'not computed'
    >>> block = overfitting_block({"kind": "study", "psr": 0.97, "pbo": 0.2, "verdict": {"score": 18.0, "level": "low"}})
    >>> block.psr, block.pbo, block.score, block.level
    (0.97, 0.2, 18.0, 'low')
    """
    if statistics is None:
        return OverfittingBlock("not computed", notes=(
            "no overfitting statistics: pass statistics=research.study_stats.study_statistics(result, data)",))
    best = pick(statistics, "best")
    trials = pick(statistics, "trials")
    trl = pick(statistics, "min_trl")
    detail = pick(statistics, "pbo_detail")
    degradation = pick(statistics, "degradation")
    trl_obs = as_float(pick(trl, "observations")) if isinstance(trl, Mapping) else as_float(trl)
    if trl_obs is None:
        trl_obs = as_float(pick(best, "min_trl_obs"))
    trl_years = as_float(pick(trl, "years")) if isinstance(trl, Mapping) else None
    if trl_years is None:
        trl_years = as_float(pick(best, "min_trl_years"))
    basis = pick(statistics, "basis")
    notes = pick(statistics, "notes")
    return OverfittingBlock(
        source=str(pick(statistics, "kind") or "study"), psr=as_float(pick(statistics, "psr")),
        dsr=as_float(pick(statistics, "dsr")), n_trials=as_int(pick(trials, "tried")),
        sr_variance=as_float(pick(trials, "sharpe_variance_per_period")), min_trl=trl_obs, min_trl_years=trl_years,
        have_obs=as_int(pick(trl, "have_observations")) if isinstance(trl, Mapping) else None,
        sharpe=as_float(pick(best, "sharpe")), sharpe_period=as_float(pick(best, "sharpe_per_period")),
        skew=as_float(pick(best, "skew")), kurtosis=as_float(pick(best, "kurtosis")),
        n_obs=as_int(pick(best, "n_obs")), pbo=as_float(pick(statistics, "pbo")),
        pbo_splits=as_int(pick(detail, "n_splits")), pbo_combinations=as_int(pick(detail, "n_combinations")),
        prob_oos_loss=as_float(pick(detail, "prob_oos_loss")),
        degradation_slope=as_float(pick(detail, "degradation_slope")), logits=_floats(pick(detail, "logits")),
        is_performance=_floats(pick(detail, "is_performance")),
        oos_performance=_floats(pick(detail, "oos_performance")),
        degradation_source=None if pick(degradation, "source") is None else str(pick(degradation, "source")),
        oos_dsr=as_float(pick(statistics, "oos_dsr")),
        basis={str(k): str(v) for k, v in basis.items()} if isinstance(basis, Mapping) else {},
        folds=tuple(dict(f) for f in (pick(statistics, "folds") or ()) if isinstance(f, Mapping)),
        verdict=pick(statistics, "verdict"),
        notes=tuple(str(n) for n in notes) if isinstance(notes, (list, tuple)) else ())
