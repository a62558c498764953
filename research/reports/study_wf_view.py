"""A walk-forward result as a study report reads it (:func:`walk_forward_view`): the result object
of :func:`research.walk_forward.walk_forward`, or any object or mapping with its fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from research.reports.study_format import as_float, as_int, pick

__all__ = ["WalkForwardFold", "WalkForwardView", "walk_forward_view"]


@dataclass(frozen=True)
class WalkForwardFold:
    """One walk-forward fold as the report shows it.

    Attributes
    ----------
    number
        1-based fold number, in time order.
    train_start, train_end, test_start, test_end
        Window bounds, UTC.
    status
        ``"ok"``, or why the fold stayed in cash.
    params
        The parameters chosen in the training window (empty without a ranked trial).
    in_sample, out_of_sample
        Metrics of those parameters in the training and the test window.
    degradation
        Metric -> ``(IS - OOS) / |IS|`` (positive = OOS worse), as the walk-forward computed it.
    efficiency
        OOS CAGR / IS CAGR of the fold.
    """

    number: int
    train_start: pd.Timestamp | None
    train_end: pd.Timestamp | None
    test_start: pd.Timestamp | None
    test_end: pd.Timestamp | None
    status: str
    params: dict[str, Any]
    in_sample: dict[str, Any]
    out_of_sample: dict[str, Any]
    degradation: dict[str, Any]
    efficiency: float | None


@dataclass(frozen=True)
class WalkForwardView:
    """A walk-forward result (:class:`research.walk_forward.WalkForwardResult`) as the report reads it.

    Attributes
    ----------
    folds
        The folds in time order.
    oos_equity, oos_metrics
        Stitched out-of-sample equity in USD (UTC index) and its metrics.
    benchmark, benchmark_label, benchmark_metrics
        Buy-and-hold over the same index, its name and metrics (None when absent).
    efficiency, sharpe_efficiency
        Walk-forward efficiency (mean OOS over mean IS CAGR, Pardo 2008) and the same of Sharpe ratios.
    profitable_share
        Fraction of folds whose test window made money.
    stability
        :func:`research.walk_forward.parameter_stability` of the chosen sets.
    steps
        Per compared re-optimization step: ``step``, ``folds``, ``oos_metrics``, ``efficiency``,
        ``profitable_share``, ``oos_equity``.
    best_step
        The step that did best on the first objective, when steps were compared.
    regime
        ``symbol``, ``oos_metrics``, ``single_metrics``, ``better``, ``oos_equity`` of the
        regime-aware variant, when run.
    settings
        ``train``, ``test``, ``step``, ``anchored`` as given.
    """

    folds: list[WalkForwardFold]
    oos_equity: pd.Series | None
    oos_metrics: dict[str, Any]
    benchmark: pd.Series | None
    benchmark_label: str
    benchmark_metrics: dict[str, Any]
    efficiency: float | None
    sharpe_efficiency: float | None
    profitable_share: float | None
    stability: dict[str, Any]
    steps: list[dict[str, Any]]
    best_step: str | None
    regime: dict[str, Any] | None
    settings: dict[str, Any]


def _timestamp(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return pd.Timestamp(int(value), unit="ns", tz="UTC")
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _metrics_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "to_dict"):
        return dict(value.to_dict())
    return dict(vars(value))


def _series(value: Any) -> pd.Series | None:
    if value is None:
        return None
    series = pd.Series(value, dtype=float)
    if not len(series):
        return None
    index = pd.DatetimeIndex(series.index)
    series.index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return series.dropna()


def walk_forward_view(walk_forward: Any) -> WalkForwardView:
    """Read a :class:`research.walk_forward.WalkForwardResult` (or an object or mapping with its
    fields) into a :class:`WalkForwardView`.

    Fields read: ``folds`` (each ``is_start``, ``is_end``, ``oos_start``, ``oos_end``, ``status``,
    ``params``, ``is_metrics``, ``oos_metrics``, ``degradation``, ``efficiency``), ``oos_equity``,
    ``oos_metrics``, ``benchmark_equity``, ``benchmark_label``, ``benchmark_metrics``,
    ``efficiency``, ``sharpe_efficiency``, ``profitable_share``, ``stability``,
    ``step_comparison``, ``best_step``, ``regime``, ``train``, ``test``, ``step``, ``anchored``.

    Raises
    ------
    ValueError
        If it has no folds.
    """
    raw_folds = list(pick(walk_forward, "folds") or [])
    if not raw_folds:
        raise ValueError("walk-forward result has no folds (field 'folds')")
    folds = []
    for k, fold in enumerate(raw_folds, start=1):
        folds.append(WalkForwardFold(
            number=k, train_start=_timestamp(pick(fold, "is_start", "train_start")),
            train_end=_timestamp(pick(fold, "is_end", "train_end")),
            test_start=_timestamp(pick(fold, "oos_start", "test_start")),
            test_end=_timestamp(pick(fold, "oos_end", "test_end")),
            status=str(pick(fold, "status") or "ok"), params=dict(pick(fold, "params") or {}),
            in_sample=_metrics_dict(pick(fold, "is_metrics", "in_sample")),
            out_of_sample=_metrics_dict(pick(fold, "oos_metrics", "out_of_sample")),
            degradation=_metrics_dict(pick(fold, "degradation")),
            efficiency=as_float(pick(fold, "efficiency"))))
    steps = []
    for item in pick(walk_forward, "step_comparison") or ():
        steps.append({"step": str(pick(item, "step")), "folds": as_int(pick(item, "folds")),
                      "oos_metrics": _metrics_dict(pick(item, "oos_metrics")),
                      "efficiency": as_float(pick(item, "efficiency")),
                      "profitable_share": as_float(pick(item, "profitable_share")),
                      "oos_equity": _series(pick(item, "oos_equity"))})
    raw_regime = pick(walk_forward, "regime")
    regime = None if raw_regime is None else {
        "symbol": pick(raw_regime, "symbol"), "oos_metrics": _metrics_dict(pick(raw_regime, "oos_metrics")),
        "single_metrics": _metrics_dict(pick(raw_regime, "single_metrics")),
        "better": bool(pick(raw_regime, "better")), "oos_equity": _series(pick(raw_regime, "oos_equity"))}
    best_step = pick(walk_forward, "best_step")
    return WalkForwardView(
        folds=folds, oos_equity=_series(pick(walk_forward, "oos_equity")),
        oos_metrics=_metrics_dict(pick(walk_forward, "oos_metrics")),
        benchmark=_series(pick(walk_forward, "benchmark_equity")),
        benchmark_label=str(pick(walk_forward, "benchmark_label") or "Buy & hold"),
        benchmark_metrics=_metrics_dict(pick(walk_forward, "benchmark_metrics")),
        efficiency=as_float(pick(walk_forward, "efficiency")),
        sharpe_efficiency=as_float(pick(walk_forward, "sharpe_efficiency")),
        profitable_share=as_float(pick(walk_forward, "profitable_share")),
        stability=_metrics_dict(pick(walk_forward, "stability")), steps=steps,
        best_step=None if best_step is None else str(best_step), regime=regime,
        settings={k: pick(walk_forward, k) for k in ("train", "test", "step", "anchored")})
