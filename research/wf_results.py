"""What a walk-forward returns: its folds, the re-optimization step comparison, the regime-aware
summary and :class:`WalkForwardResult` with its JSON form."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtest.spec import RunSpec
from core.time import to_datetime
from research.optimize import StudyResult
from research.search_space import SearchSpace
from research.wf_regime import FoldRegime
from research.wf_windows import FoldWindow

__all__ = ["DEGRADATION_METRICS", "Fold", "RegimeSummary", "StepResult", "WalkForwardResult"]

DEGRADATION_METRICS = ("sharpe", "sortino", "cagr", "max_drawdown", "win_rate", "profit_factor")
"""Metrics compared in sample vs out of sample per fold (annualized ones, so windows of different
lengths compare)."""


@dataclass
class Fold:
    """One fold: the IS study, the chosen set and how it did out of sample.

    Attributes
    ----------
    index, window
        Fold number and its windows (:class:`FoldWindow`, ns UTC; ``is_start`` ... also as
        datetimes through the properties of the same names).
    status, reason
        ``"ok"``; ``"no_ranked_trial"`` (no trial passed the filters: the fold stays in cash);
        ``"failed"`` (the study or the OOS replay could not run; in cash).
    study_name
        The IS study (in the storage; running again resumes it).
    params
        Space values chosen (``"params.fast"``, ``"timeframe"``...), None without a ranked trial.
    spec, timeframe
        The chosen run.
    is_metrics, oos_metrics
        :data:`research.optimize.METRIC_KEYS` of the chosen set in sample (its study trial) and
        over the test window.
    degradation
        Metric -> ``(IS - OOS) / |IS|`` (lower-is-better metrics the other way round: positive =
        OOS worse), None when undefined; for :data:`DEGRADATION_METRICS`.
    efficiency
        OOS CAGR / IS CAGR (None unless the IS CAGR is positive).
    oos_equity
        Equity over the test window, USD, from the starting cash (first point at ``oos_start``).
    statistics
        :func:`research.study_stats.study_statistics` of the IS study with this fold's OOS
        metrics as the holdout (None when not computed).
    study
        The IS :class:`research.optimize.StudyResult`.
    regime
        The regime-aware choice (:class:`FoldRegime`), when asked for.
    """

    index: int
    window: FoldWindow
    status: str
    reason: str
    study_name: str
    params: dict[str, Any] | None
    spec: RunSpec | None
    timeframe: str | None
    is_metrics: dict[str, Any] | None
    oos_metrics: dict[str, Any] | None
    degradation: dict[str, float | None]
    efficiency: float | None
    oos_equity: pd.Series
    statistics: dict[str, Any] | None = None
    study: StudyResult | None = field(default=None, repr=False)
    regime: FoldRegime | None = None
    stitched: pd.Series | None = field(default=None, repr=False)  # the part in the stitched curve
    stitched_pnl: list[float] = field(default_factory=list, repr=False)  # its round trips, USD

    @property
    def is_start(self) -> pd.Timestamp:
        return pd.Timestamp(self.window.is_start, unit="ns", tz="UTC")

    @property
    def is_end(self) -> pd.Timestamp:
        return pd.Timestamp(self.window.is_end, unit="ns", tz="UTC")

    @property
    def oos_start(self) -> pd.Timestamp:
        return pd.Timestamp(self.window.oos_start, unit="ns", tz="UTC")

    @property
    def oos_end(self) -> pd.Timestamp:
        return pd.Timestamp(self.window.oos_end, unit="ns", tz="UTC")

    def to_dict(self) -> dict[str, Any]:
        return {**self.window.to_dict(), "status": self.status, "reason": self.reason, "study": self.study_name,
                "params": self.params, "timeframe": self.timeframe, "is_metrics": self.is_metrics,
                "oos_metrics": self.oos_metrics, "degradation": self.degradation, "efficiency": self.efficiency,
                "statistics": _trim(self.statistics, keep=()),
                "regime": None if self.regime is None else {
                    "symbol": self.regime.symbol, "params": self.regime.params, "scores": self.regime.scores,
                    "days": self.regime.days, "oos_metrics": self.regime.oos_metrics}}


@dataclass
class StepResult:
    """One re-optimization frequency of the comparison (``test = step``).

    Attributes
    ----------
    step
        The period (``"3m"``).
    folds
        Folds it ran.
    oos_metrics
        Metrics of its stitched OOS curve over the span all compared steps share.
    efficiency, profitable_share
        As :class:`WalkForwardResult`.
    oos_equity
        Its stitched curve on the common span, USD from the starting cash.
    """

    step: str
    folds: int
    oos_metrics: dict[str, Any]
    efficiency: float | None
    profitable_share: float
    oos_equity: pd.Series = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "folds": self.folds, "oos_metrics": self.oos_metrics,
                "efficiency": self.efficiency, "profitable_share": self.profitable_share}


@dataclass
class RegimeSummary:
    """Regime-aware sets against the single best set, both out of sample.

    Attributes
    ----------
    symbol
        The symbol whose regime picks the set.
    oos_equity
        Stitched OOS curve of the regime-switching replays, USD.
    oos_metrics, single_metrics
        Metrics of that curve and of the single-best-set curve (``WalkForwardResult.oos_equity``).
    better
        Whether the regime-aware curve beat the single set on the first objective.
    """

    symbol: str
    oos_equity: pd.Series = field(repr=False)
    oos_metrics: dict[str, Any] = field(default_factory=dict)
    single_metrics: dict[str, Any] = field(default_factory=dict)
    better: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "oos_metrics": self.oos_metrics, "single_metrics": self.single_metrics,
                "better": self.better}


@dataclass
class WalkForwardResult:
    """What :func:`research.wf_loop.walk_forward` returns; the CLI's files and the study report build on it.

    Attributes
    ----------
    strategy, method, objectives, directions
        As the studies.
    train, test, step, anchored
        The window settings as given (``"2y"``, ``"6m"``...).
    space, base
        The search space and the run every trial starts from.
    folds
        :class:`Fold` list, in time order.
    oos_equity, oos_fold
        The stitched OOS curve (USD from ``base.replay.starting_cash``, UTC index) and the fold
        each point belongs to.
    oos_metrics
        :data:`research.optimize.METRIC_KEYS` of the stitched curve (all OOS trades).
    benchmark_equity, benchmark_label, benchmark_metrics
        Buy-and-hold on the same index (:func:`research.benchmark.benchmark_curve`; SPY when in
        the data, else equal weight), None when ``benchmark="none"``.
    efficiency
        Walk-forward efficiency: mean OOS CAGR / mean IS CAGR of the chosen sets (Pardo 2008);
        None unless the IS mean is positive.
    sharpe_efficiency
        The same ratio of Sharpe ratios.
    profitable_share
        Share of folds whose test window made money (folds in cash count as not profitable).
    stability
        :func:`research.wf_stats.parameter_stability` of the chosen sets.
    step_comparison, best_step
        :class:`StepResult` per compared step and the best one (first objective), when asked.
    regime
        :class:`RegimeSummary`, when asked.
    final_study, final_window
        The study on the latest training window (ending at the last bar): its best set is the one
        for the next live period (``best.toml``); window as (start, end) ns UTC.
    statistics
        :func:`research.study_stats.study_statistics` of this run (``kind="walk_forward"``, with
        the final study's block under ``study``).
    runtime_s, period, timeframe
        Wall time, the data span (ISO-8601 UTC) and the default bar length.
    notes
        What went wrong on the way (a window's study that could not run: that fold stayed in cash).
    """

    strategy: str
    method: str
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    train: str
    test: str
    step: str
    anchored: bool
    space: SearchSpace
    base: RunSpec
    folds: list[Fold]
    oos_equity: pd.Series
    oos_fold: pd.Series
    oos_metrics: dict[str, Any]
    benchmark_equity: pd.Series | None
    benchmark_label: str
    benchmark_metrics: dict[str, Any] | None
    efficiency: float | None
    sharpe_efficiency: float | None
    profitable_share: float
    stability: dict[str, Any]
    step_comparison: list[StepResult] | None = None
    best_step: str | None = None
    regime: RegimeSummary | None = None
    final_study: StudyResult | None = None
    final_window: tuple[int, int] | None = None
    statistics: dict[str, Any] | None = None
    runtime_s: float = 0.0
    period: tuple[str, str] = ("", "")
    timeframe: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (curves left out: they are in oos_equity.csv)."""
        final = self.final_study
        return _json_safe({
            "strategy": self.strategy, "method": self.method, "objectives": list(self.objectives),
            "train": self.train, "test": self.test, "step": self.step, "anchored": self.anchored,
            "space": self.space.source, "period": {"start": self.period[0], "end": self.period[1]},
            "timeframe": self.timeframe, "runtime_s": self.runtime_s, "folds": [f.to_dict() for f in self.folds],
            "oos_metrics": self.oos_metrics, "benchmark": {"label": self.benchmark_label,
                                                           "metrics": self.benchmark_metrics},
            "efficiency": self.efficiency, "sharpe_efficiency": self.sharpe_efficiency,
            "profitable_share": self.profitable_share, "stability": self.stability,
            "step_comparison": None if self.step_comparison is None else [s.to_dict() for s in self.step_comparison],
            "best_step": self.best_step, "regime": None if self.regime is None else self.regime.to_dict(),
            "final": None if final is None else {
                "study": final.study_name, "window": None if self.final_window is None else
                [to_datetime(t).isoformat() for t in self.final_window],
                "best": None if final.best is None else final.best.to_dict()},
            "statistics": _trim(self.statistics, keep=("logits",)), "notes": self.notes})


_PBO_ARRAYS = ("logits", "oos_relative_rank", "best_trial", "is_performance", "oos_performance")


def _trim(stats: Mapping[str, Any] | None, keep: Sequence[str]) -> dict[str, Any] | None:
    """``stats`` without the per-combination CSCV arrays but ``keep`` (12,870 values each at 16
    splits: too many to repeat per fold in a JSON file), here and in its nested ``study`` block."""
    if stats is None:
        return None
    out = dict(stats)
    if out.get("pbo_detail"):
        out["pbo_detail"] = {k: v for k, v in out["pbo_detail"].items() if k not in _PBO_ARRAYS or k in keep}
    if isinstance(out.get("study"), Mapping):
        out["study"] = _trim(out["study"], keep)
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    return value
