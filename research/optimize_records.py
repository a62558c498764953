"""Trial records and the result of a study: :class:`TrialRecord` (one trial as the storage holds
it), :class:`StudyProgress` (where a running study stands), :class:`StudyResult` (what
:func:`research.optimize.run_study` returns), and the ranking of complete trials (several
objectives: the Pareto front first).

Trial statuses (:attr:`TrialRecord.status`): ``complete`` (ranked), ``filtered``, ``pruned``,
``failed``, ``skipped`` (broke a constraint; not replayed, not counted), ``interrupted`` (not
counted), ``running``, ``waiting``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from backtest.spec import RunSpec
from research.optimize_objectives import TrialFilters
from research.optimize_returns import DailyReturns
from research.search_space import SearchSpace, TrialSetup

__all__ = ["COUNTED", "StudyProgress", "StudyResult", "TrialRecord", "param_key", "rank_trials", "refilter"]

COUNTED = ("complete", "filtered", "pruned", "failed")
"""Statuses that count towards ``n_trials``."""


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a study.

    Attributes
    ----------
    number
        Optuna's trial number (0-based, in the order trials were asked).
    status, reason
        See the module docstring; ``reason`` says why a trial is not ``complete``.
    params
        Space key (``"params.fast"``, ``"risk.risk_per_trade"``, ``"timeframe"``) -> value.
    metrics
        :data:`METRIC_KEYS` of the full period (None when not replayed to the end).
    values
        The objective values told to Optuna (None unless complete or filtered).
    cached
        True when the metrics came from the result cache (no replay).
    replay_s
        Seconds the replay took (None when not replayed).
    intermediate
        Metrics at the pruning step, when there was one.
    started, duration_s
        When the trial started (UTC) and how long it took to ask, run and tell.
    state
        Optuna's state (``complete``, ``pruned``, ``fail``, ``running``, ``waiting``; filtered
        trials are ``complete`` there, skipped and interrupted ones ``fail``).
    returns
        Daily returns of the full-period replay, kept for complete and filtered trials that were
        replayed or found in the result cache with them (None otherwise, e.g. a trial recorded by
        an older tradingd, or a repeat of a parameter set the study already holds returns of).
    """

    number: int
    status: str
    reason: str
    params: dict[str, Any]
    metrics: dict[str, Any] | None
    values: tuple[float, ...] | None
    cached: bool = False
    replay_s: float | None = None
    intermediate: dict[str, Any] | None = None
    started: datetime | None = None
    duration_s: float | None = None
    state: str = ""
    returns: DailyReturns | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "status": self.status, "reason": self.reason, "params": self.params,
                "metrics": self.metrics, "values": list(self.values) if self.values is not None else None,
                "cached": self.cached, "replay_s": self.replay_s}


@dataclass(frozen=True)
class StudyProgress:
    """Where a running study stands (given to the ``progress`` callback after every trial)."""

    done: int
    target: int
    running: int
    replays: int
    cache_hits: int
    best: TrialRecord | None
    last: TrialRecord | None


@dataclass
class StudyResult:
    """What :func:`run_study` returns; the outputs (:func:`write_study_outputs`) and later tools
    (reports, walk-forward) build on it.

    ``ranked`` holds the ``complete`` trials best first, each parameter set once (several
    objectives: the Pareto front first, each group by the first objective); ``best`` is ``ranked[0]`` and ``best_setup`` its run
    (spec and timeframe). Counts and timings (``replays``, ``cache_hits``, ``runtime_s``) are of
    this call; ``trials`` is every trial of the study.
    """

    study_name: str
    method: str
    strategy: str
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    filters: TrialFilters
    space: SearchSpace
    base: RunSpec
    trials: list[TrialRecord]
    ranked: list[TrialRecord]
    pareto: list[TrialRecord]
    target: int
    new_trials: int
    replays: int
    cache_hits: int
    skipped: int
    runtime_s: float
    replay_s: float
    period: tuple[str, str]
    timeframe: str
    seed: int
    pruning: bool
    grid_size: int | None = None
    interrupted: bool = False
    storage: str = ""
    best_setup: TrialSetup | None = None
    data_fingerprint: str = ""  # of the default series (research.trial_cache.series_fingerprint); "" unknown

    @property
    def best(self) -> TrialRecord | None:
        return self.ranked[0] if self.ranked else None

    def counts(self) -> dict[str, int]:
        """Trials of the study by status."""
        out: dict[str, int] = {}
        for trial in self.trials:
            out[trial.status] = out.get(trial.status, 0) + 1
        return out


def param_key(params: Mapping[str, Any]) -> str:
    """One text per parameter set (the same for the same values, whatever their order).

    Examples
    --------
    >>> param_key({"params.slow": 40, "params.fast": 5}) == param_key({"params.fast": 5, "params.slow": 40})
    True
    """
    return json.dumps(sorted(params.items()), default=str)


def refilter(record: TrialRecord, filters: TrialFilters) -> TrialRecord:
    """``record`` judged under ``filters`` (complete or filtered; other statuses stay)."""
    if record.status not in ("complete", "filtered") or record.metrics is None:
        return record
    problems = filters.problems(record.metrics)
    return replace(record, status="filtered" if problems else "complete", reason="; ".join(problems))


def _dominates(a: Sequence[float], b: Sequence[float], signs: Sequence[float]) -> bool:
    better = False
    for x, y, sign in zip(a, b, signs):
        if sign * x < sign * y:
            return False
        better = better or sign * x > sign * y
    return better


def rank_trials(trials: Sequence[TrialRecord], directions: Sequence[str]) -> tuple[list[TrialRecord], list[TrialRecord]]:
    """(ranked complete trials, Pareto front) under ``directions``, each parameter set once (its first trial)."""
    signs = [1.0 if d == "maximize" else -1.0 for d in directions]
    complete: dict[str, TrialRecord] = {}
    for t in sorted(trials, key=lambda t: t.number):  # a parameter set asked again (a cache hit) is ranked once
        if t.status == "complete" and t.values is not None:
            complete.setdefault(param_key(t.params), t)
    order = sorted(complete.values(), key=lambda t: (-signs[0] * (t.values or (0.0,))[0], t.number))
    if len(directions) == 1:
        return order, order[:1]
    front = [t for t in order if not any(_dominates(o.values or (), t.values or (), signs) for o in order)]
    ids = {t.number for t in front}
    return front + [t for t in order if t.number not in ids], front
