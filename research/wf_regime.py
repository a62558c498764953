"""The regime-aware walk-forward: the best set per market regime of a training window, applied out
of sample by the regime the engine's detector reports (:class:`RegimeSwitch`)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtest.sources import BarSeries
from backtest.spec import RunSpec
from core.enums import Regime
from core.events import Bar
from core.intents import OrderIntent
from learning.regime import RegimeDetector
from research.optimize import StudyData, StudyResult
from research.study_stats import TrialReturns
from research.wf_replay import replay_oos
from research.wf_windows import FoldWindow, WalkForwardError
from strategies.registry import build_strategy

__all__ = ["MIN_REGIME_DAYS", "FoldRegime", "RegimeSwitch", "day_regimes", "pick_regime_symbol", "regime_fold"]

MIN_REGIME_DAYS = 20
"""Training days a regime needs before it gets a set of its own (else the single best set)."""


class RegimeSwitch:
    """Runs one strategy per market regime on every bar and passes on the intents of the one for
    the regime the engine's detector reports for ``symbol`` (``default`` for the others), from
    ``start_ns`` on."""

    def __init__(self, default: Any, by_regime: Mapping[Regime, Any], symbol: str, start_ns: int) -> None:
        self.default, self.by_regime, self.symbol, self.start_ns = default, dict(by_regime), symbol, start_ns
        self.strategies = list({id(s): s for s in (default, *by_regime.values())}.values())
        self.strategy_id: str = default.strategy_id

    @property
    def params(self) -> Any:
        return self.default.params

    @property
    def uses_learner(self) -> bool:
        return any(s.uses_learner for s in self.strategies)

    def on_bar(self, ctx: Any, bar: Bar) -> Sequence[OrderIntent]:
        out = {id(s): s.on_bar(ctx, bar) for s in self.strategies}  # every one stays warm
        if bar.ts_event < self.start_ns:
            return ()
        chosen = self.by_regime.get(ctx.regime(self.symbol), self.default)
        return out[id(chosen)]


def pick_regime_symbol(symbols: Sequence[str], wanted: str | None) -> str:
    """The symbol whose regime is the market's: ``wanted`` (any case), else SPY when in ``symbols``,
    else the first.

    Raises
    ------
    WalkForwardError
        If ``wanted`` is not one of ``symbols``.
    """
    if wanted:
        match = [s for s in symbols if s.lower() == wanted.lower()]
        if not match:
            raise WalkForwardError(f"regime symbol {wanted!r} is not in the data ({', '.join(symbols)})")
        return match[0]
    return "SPY" if "SPY" in symbols else symbols[0]


def day_regimes(series: BarSeries, spec: RunSpec, days: pd.DatetimeIndex) -> np.ndarray:
    """Regime (value) of each day: the detector's reading on ``series`` as of the day's start (the
    last bar released by then), with ``spec``'s regime settings."""
    detector = RegimeDetector(spec.signals.regime)
    labels = np.array([detector.update_closes((float(c),)).value for c in series.close], dtype=object)
    at = np.searchsorted(series.ts_init, days.asi8, side="right") - 1
    out = np.full(len(days), Regime.UNKNOWN.value, dtype=object)
    out[at >= 0] = labels[at[at >= 0]]
    return out


@dataclass
class FoldRegime:
    """The regime-aware choice of one fold.

    Attributes
    ----------
    symbol
        Whose regime (the market's) picks the set.
    params
        Regime value (``"low_vol_trending"``, ...) -> the space values used in it; regimes with
        fewer than :data:`MIN_REGIME_DAYS` training days use the single best set.
    scores, days
        Regime -> annualized Sharpe of the chosen set on that regime's training days, and how
        many days there were.
    oos_metrics, oos_equity
        The regime-switching replay over the test window (USD from the starting cash).
    """

    symbol: str
    params: dict[str, dict[str, Any]]
    scores: dict[str, float | None]
    days: dict[str, int]
    oos_metrics: dict[str, Any] | None = None
    oos_equity: pd.Series | None = None
    stitched: pd.Series | None = field(default=None, repr=False)
    stitched_pnl: list[float] = field(default_factory=list, repr=False)


def _choose_by_regime(study: StudyResult, returns: TrialReturns, data: StudyData, symbol: str) -> FoldRegime | None:
    best = study.best
    setup = study.best_setup
    if best is None or setup is None:
        return None
    fixed = {k: v for k, v in best.params.items() if not k.startswith("params.")}
    candidates = [t for t in study.ranked
                  if {k: v for k, v in t.params.items() if not k.startswith("params.")} == fixed
                  and returns.column(t.params) is not None]
    frame = returns.returns
    if frame.empty:
        return None
    ref = next((s for s in data.get(setup.timeframe) if s.symbol == symbol), None)
    if ref is None:
        return None
    labels = day_regimes(ref, setup.spec, pd.DatetimeIndex(frame.index))
    ppy = returns.periods_per_year
    out = FoldRegime(symbol, {}, {}, {})
    for regime in (r for r in Regime if r is not Regime.UNKNOWN):
        mask = labels == regime.value
        out.days[regime.value] = int(mask.sum())
        chosen, score = best, None
        if mask.sum() >= MIN_REGIME_DAYS:
            scored = []
            for t in candidates:
                r = frame[returns.column(t.params)].to_numpy()[mask]
                std = float(r.std(ddof=1))
                if std > 0:
                    scored.append((float(r.mean()) / std * math.sqrt(ppy), t))
            if scored:
                score, chosen = max(scored, key=lambda x: (x[0], -x[1].number))
        out.params[regime.value] = dict(chosen.params)
        out.scores[regime.value] = score
    return out


def regime_fold(study: StudyResult, returns: TrialReturns, is_data: StudyData, data: StudyData, symbol: str,
                w: FoldWindow, warm_start: int) -> FoldRegime | None:
    """The regime-aware choice of one fold and its OOS replay.

    Chooses the best set per ``symbol`` regime of the training window ``is_data`` (from the daily
    ``returns`` of the study's ranked trials), then replays the regime switch over the test window
    of ``w`` from ``warm_start`` (epoch ns UTC) on all the bars ``data``, with the regime detector
    on. None when the study ranked no trial or the window has no returns.
    """
    choice = _choose_by_regime(study, returns, is_data, symbol)
    setup = study.best_setup
    if choice is None or setup is None:
        return choice
    spec = setup.spec.model_copy(update={"signals": setup.spec.signals.model_copy(update={"regime_enabled": True})})
    default = build_strategy(spec.strategy, spec.params)
    built: dict[str, Any] = {}
    by_regime: dict[Regime, Any] = {}
    for regime, params in choice.params.items():
        key = json.dumps(sorted(params.items()), default=str)
        if key not in built:
            trial_spec = study.space.apply(study.base, params).spec
            built[key] = (default if trial_spec.params == spec.params
                          else build_strategy(trial_spec.strategy, trial_spec.params))
        by_regime[Regime(regime)] = built[key]
    switch = RegimeSwitch(default, by_regime, symbol, w.oos_start)
    run, part = replay_oos(data, spec, setup.timeframe, w, warm_start, strategy=switch)
    choice.oos_metrics, choice.oos_equity, choice.stitched = run.metrics, run.equity, part.equity
    choice.stitched_pnl = [t.pnl for t in part.trades]
    return choice
