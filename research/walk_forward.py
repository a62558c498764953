"""Walk-forward validation: optimize on a training window, trade the chosen set on the window after
it, move on, and stitch the out-of-sample (OOS) pieces into one curve. A loop over replays of the
one engine (:func:`research.optimize.run_study` in sample, :func:`backtest.replay.run_replay` out
of sample).

Windows (:func:`plan_folds`). The origin is the first bar start of the data, floored to UTC
midnight. Fold ``k`` trains on ``[is_start, is_end]`` and is tested on ``[oos_start, oos_end]``
with ``oos_start = is_end``:

* rolling: ``is_start = origin + k * step``, ``is_end = is_start + train``;
* anchored (``anchored=True``): ``is_start = origin``, ``is_end = origin + train + k * step``;
* ``oos_end = min(oos_start + test, last bar end)``; a last window shorter than half of ``test``
  is dropped. ``step`` must not exceed ``test`` (no OOS gaps); when it is shorter, the stitched
  curve takes the first ``step`` of each test window (the set is re-optimized after that), while
  the fold's own metrics are of its whole test window.

A window holds the bars that start at or after its start and are released (known) by its end, so
**no bar of a fold's optimization is released after its OOS window starts**, and every OOS bar
starts at or after it: nothing of the future reaches the choice. Months and years are calendar
ones (``pandas.DateOffset``).

Out of sample the chosen set is replayed from the start of its training window (at most ``train``
back) with its orders blocked until the OOS start (:class:`TradeFrom`): indicators, the regime
detector and learners are warm, as a live node started with history would be, but every trade
happens out of sample and the equity is flat until then. Each fold starts flat with the starting
cash; the stitched curve chains the folds' returns (a position open at a fold's end is valued at
its mark, as if sold there without costs). A fold whose study ranked no trial stays in cash.

Across folds: walk-forward efficiency (Pardo 2008, "The Evaluation and Optimization of Trading
Strategies", 2nd ed., Wiley, ch. 11: annualized OOS return over annualized IS return; here the mean
over folds of the OOS CAGR over the mean IS CAGR of the chosen sets), the share of profitable OOS
folds, parameter stability (:func:`parameter_stability`), and optionally the re-optimization
frequency that worked best (``compare_steps``: the whole walk-forward with ``test = step = s``
for each ``s``, compared on their common OOS span) and a regime-aware variant (the best set per
market regime of the training window, applied OOS by the regime the engine's detector reports,
against the single best set).

Modules (each imports only those above it; this module re-exports their public names, and its
constants are copies: change ``research.wf_regime.MIN_REGIME_DAYS``, not this module's):

* :mod:`research.wf_windows`: periods, folds and the bars in a window;
* :mod:`research.wf_replay`: out-of-sample replays (:class:`TradeFrom`) and the stitched curve;
* :mod:`research.wf_regime`: the regime-aware mode;
* :mod:`research.wf_results`: :class:`Fold`, :class:`StepResult`, :class:`RegimeSummary`,
  :class:`WalkForwardResult` and their JSON form;
* :mod:`research.wf_stats`: figures across folds (efficiency, stability, benchmark, step comparison);
* :mod:`research.wf_output`: ``summary.txt`` and the CSV/JSON files;
* :mod:`research.wf_loop`: :func:`walk_forward`, the loop over the folds.

The sensitivity section of ``summary.txt`` is the study report's neighbour-drop measure
(:mod:`research.reports.study_sensitivity`) of the final study, so ``summary.txt`` and
``report.html`` name the same robust and fragile parameters.
"""

from __future__ import annotations

from research.wf_loop import Progress, walk_forward
from research.wf_output import summary_text, write_walk_forward_outputs
from research.wf_regime import MIN_REGIME_DAYS, FoldRegime
from research.wf_replay import TradeFrom
from research.wf_results import DEGRADATION_METRICS, Fold, RegimeSummary, StepResult, WalkForwardResult
from research.wf_stats import STABLE_RANGE_STD, parameter_stability
from research.wf_windows import MIN_TEST_FRACTION, FoldWindow, WalkForwardError, parse_period, plan_folds, window_data

__all__ = ["DEGRADATION_METRICS", "MIN_REGIME_DAYS", "MIN_TEST_FRACTION", "STABLE_RANGE_STD", "Fold", "FoldRegime",
           "FoldWindow", "Progress", "RegimeSummary", "StepResult", "TradeFrom", "WalkForwardError",
           "WalkForwardResult", "parameter_stability", "parse_period", "plan_folds", "summary_text", "walk_forward",
           "window_data", "write_walk_forward_outputs"]
