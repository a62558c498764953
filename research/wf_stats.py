"""Figures across the folds of a walk-forward.

Walk-forward efficiency (Pardo 2008, "The Evaluation and Optimization of Trading Strategies", 2nd
ed., Wiley, ch. 11: annualized OOS return over annualized IS return; here the mean over folds of
the OOS CAGR over the mean IS CAGR of the chosen sets: :func:`ratio` of :func:`finite_mean`),
parameter stability (:func:`parameter_stability`), the metrics of a stitched curve, the
buy-and-hold benchmark over it, and the comparison of re-optimization steps on their common OOS
span (:func:`compare_step_runs`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from research.benchmark import benchmark_curve
from research.metrics import compute_metrics
from research.optimize import METRIC_KEYS, StudyData
from research.search_space import SearchSpace
from research.wf_replay import cut_curve
from research.wf_results import StepResult, WalkForwardResult
from research.wf_windows import parse_period

__all__ = ["STABLE_RANGE_STD", "compare_step_runs", "finite_mean", "is_better", "oos_benchmark",
           "parameter_stability", "ratio", "stitched_metrics"]

STABLE_RANGE_STD = 0.25
"""A numeric parameter is stable when its std across folds is at most this fraction of its range
(project convention)."""


def parameter_stability(space: SearchSpace, chosen: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How much the chosen sets move from fold to fold.

    Per searched key: the values in fold order, ``changes`` (fold-to-fold changes), ``mode`` and
    ``mode_share``; numeric keys also ``mean``, ``std`` (population) and ``range_std`` = std /
    (high - low) of the space. A numeric key is ``stable`` when ``range_std <=``
    :data:`STABLE_RANGE_STD`, a categorical one when its mode holds in at least half the folds
    (project conventions). ``score`` = mean over keys of ``1 - min(1, 2 * range_std)`` (numeric)
    or ``mode_share`` (categorical), 1 = the same set every fold.

    Examples
    --------
    >>> from research.search_space import parse_space
    >>> space = parse_space({"params": {"fast": {"type": "int", "low": 10, "high": 50}}}, strategy="sma_cross")
    >>> s = parameter_stability(space, [{"params.fast": 20}, {"params.fast": 20}, {"params.fast": 30}])
    >>> s["params"]["params.fast"]["changes"], s["params"]["params.fast"]["stable"], round(s["score"], 3)
    (1, True, 0.764)
    """
    out: dict[str, Any] = {"params": {}, "score": None, "folds": len(chosen)}
    scores = []
    for dim in space.dimensions:
        values = [c.get(dim.key) for c in chosen if dim.key in c]
        if not values:
            continue
        counts: dict[str, int] = {}
        for v in values:
            counts[json.dumps(v)] = counts.get(json.dumps(v), 0) + 1
        mode_key = max(counts, key=lambda k: counts[k])
        entry: dict[str, Any] = {"values": values, "changes": sum(a != b for a, b in zip(values, values[1:])),
                                 "mode": json.loads(mode_key), "mode_share": counts[mode_key] / len(values)}
        if dim.kind != "categorical" and dim.low is not None and dim.high is not None:
            arr = np.asarray(values, dtype=float)
            width = float(dim.high) - float(dim.low)
            range_std = float(arr.std()) / width if width > 0 else 0.0
            entry.update(mean=float(arr.mean()), std=float(arr.std()), range_std=range_std,
                         stable=range_std <= STABLE_RANGE_STD)
            scores.append(1.0 - min(1.0, 2.0 * range_std))
        else:
            entry["stable"] = entry["mode_share"] >= 0.5
            scores.append(entry["mode_share"])
        out["params"][dim.key] = entry
    out["score"] = float(np.mean(scores)) if scores else None
    return out


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, None when either is None or the denominator is not positive
    (an efficiency over a losing in-sample figure means nothing)."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def finite_mean(values: Iterable[Any]) -> float | None:
    """Mean of the finite values (None and NaN left out); None when there is none."""
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(kept)) if kept else None


def stitched_metrics(equity: pd.Series, pnl: Sequence[float]) -> dict[str, Any]:
    """Metrics of a stitched curve with the round trips (net USD) of its parts."""
    no_fills = pd.DataFrame({"quantity": [], "price": []})  # turnover is per fold (folds.csv)
    m = compute_metrics(equity, trades=pd.DataFrame({"pnl": list(pnl)}), fills=no_fills).to_dict()
    return {k: m.get(k) for k in METRIC_KEYS}


def is_better(a: float | None, b: float | None, direction: str) -> bool:
    """Whether ``a`` beats ``b`` in ``direction`` (``"maximize"`` / ``"minimize"``); a missing
    value never beats and is always beaten."""
    if a is None:
        return False
    if b is None:
        return True
    return a > b if direction == "maximize" else a < b


def oos_benchmark(data: StudyData, name: str | None, cash: float,
                  equity: pd.Series) -> tuple[pd.Series | None, str, dict[str, Any] | None]:
    """Buy-and-hold ``name`` (:func:`research.benchmark.benchmark_curve`) from ``cash`` USD on the
    index of the stitched ``equity``: (curve, label, metrics); ``(None, "none", None)`` for no
    benchmark, metrics None when fewer than two positive points."""
    closes = {s.symbol: pd.Series(s.close, index=pd.to_datetime(s.ts_init, unit="ns", utc=True))
              for s in data.get(None)}
    curve = benchmark_curve(name, closes, cash, pd.DatetimeIndex(equity.index))
    if curve is None:
        return None, "none", None
    valid = curve.equity[curve.equity > 0]
    if len(valid) < 2:
        return curve.equity, curve.label, None
    m = compute_metrics(valid).to_dict()
    return curve.equity, curve.label, {k: m.get(k) for k in METRIC_KEYS if k in m}


def compare_step_runs(main: WalkForwardResult, steps: Sequence[str],
                      run: Callable[[str], WalkForwardResult]) -> tuple[list[StepResult], str | None]:
    """Compare re-optimization ``steps``: ``run(s)`` is the walk-forward with ``test = step = s``
    (``main`` itself when it is one). Their stitched curves are cut to the span they all share and
    rescaled to the starting cash; the best is the best first objective of ``main``.

    Returns
    -------
    (list[StepResult], str | None)
        One result per step in the given order, and the best step (None when no step has the
        objective).

    Raises
    ------
    WalkForwardError
        For a bad period in ``steps``.
    """
    runs: dict[str, WalkForwardResult] = {}
    for s in steps:
        parse_period(s)
        runs[s] = main if (s == main.step == main.test) else run(s)
    start = max(int(r.oos_equity.index[0].value) for r in runs.values())
    end = min(int(r.oos_equity.index[-1].value) for r in runs.values())
    out = []
    for s, r in runs.items():
        ts, values = pd.DatetimeIndex(r.oos_equity.index).asi8, r.oos_equity.to_numpy()
        common = cut_curve(ts, values, start, end, float(values[0]))
        common = common / float(common.iloc[0]) * main.base.replay.starting_cash
        m = compute_metrics(common).to_dict()
        out.append(StepResult(s, len(r.folds), {k: m.get(k) for k in METRIC_KEYS if k in m},
                              r.efficiency, r.profitable_share, common))
    objective, direction = main.objectives[0], main.directions[0]
    best: StepResult | None = None
    for item in out:
        if best is None or is_better(item.oos_metrics.get(objective), best.oos_metrics.get(objective), direction):
            best = item
    return out, (best.step if best is not None and best.oos_metrics.get(objective) is not None else None)
