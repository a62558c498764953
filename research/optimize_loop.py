"""The ask-and-tell loop of one :func:`research.optimize.run_study` call (:class:`StudyLoop`): it
asks Optuna for trials, settles at once those that break a constraint or are in the result cache,
hands the rest to a :class:`research.optimize_executors.TrialExecutor`, answers their pruning
questions and tells Optuna each outcome. It is the one writer of the study storage; the samplers
of the methods are built here (:func:`make_sampler`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from backtest.spec import RunSpec
from research.optimize_data import StudyData
from research.optimize_executors import TrialExecutor
from research.optimize_objectives import OBJECTIVES, OptimizeError, TrialFilters
from research.optimize_records import COUNTED, StudyProgress, TrialRecord, param_key
from research.optimize_returns import DailyReturns
from research.optimize_storage import RESULT_ATTR, RUNNER_ATTR, host_pid
from research.optimize_trial import TrialOutcome, TrialTask
from research.search_space import Dimension, SearchSpace, SpaceError, TrialSetupError
from research.trial_cache import TrialCache, cache_key
from strategies.registry import StrategyConfigError, build_strategy

__all__ = ["MAX_SKIPS", "StudyLoop", "make_sampler", "optuna_distribution"]

MAX_SKIPS = 1_000
"""Samples in a row breaking the constraints after which a study gives up."""


def optuna_distribution(dim: Dimension) -> BaseDistribution:
    """The Optuna distribution of one search-space dimension (a log-scaled float has no step:
    Optuna refuses both)."""
    if dim.kind == "categorical":
        return CategoricalDistribution(dim.choices)
    assert dim.low is not None and dim.high is not None
    if dim.kind == "int":
        return IntDistribution(int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log)
    return FloatDistribution(float(dim.low), float(dim.high), step=None if dim.log else dim.step, log=dim.log)


_MODEL_BASED = frozenset({"tpe", "cmaes"})
"""Samplers that learn from told values (a skipped sample is told a penalty, not FAIL)."""


def make_sampler(method: str, seed: int, jobs: int, multi: bool) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of ``method`` (``jobs`` > 1: TPE's constant liar for trials in flight).

    Raises
    ------
    OptimizeError
        For ``cmaes`` with several objectives.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if method == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=jobs > 1)
        if method == "cmaes":
            if multi:
                raise OptimizeError("cmaes optimizes one objective; use nsga2 (or tpe) for several")
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if method == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        if method == "sobol":
            return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed,
                                              warn_independent_sampling=False)
        return optuna.samplers.RandomSampler(seed=seed)  # random; grid and lhs enqueue their points


class StudyLoop:
    """The ask-and-tell loop of one :func:`research.optimize.run_study` call.

    Counters (``replays``, ``cache_hits``, ``skipped``, ``new``, ``replay_s``) are of this call;
    ``done`` counts the study's trials in :data:`research.optimize_records.COUNTED` statuses
    (the driver sets it from the stored trials before :meth:`run`), ``with_returns`` the parameter
    sets (:func:`research.optimize_records.param_key`) of which the study already keeps daily returns.
    """

    def __init__(self, base: RunSpec, space: SearchSpace, data: StudyData, study: optuna.Study, cache: TrialCache | None,
                 filters: TrialFilters, objectives: tuple[str, ...], method: str, prune_fraction: float | None,
                 seed: int, target: int, progress: Callable[[StudyProgress], None] | None) -> None:
        self.base, self.space, self.data, self.study, self.cache = base, space, data, study, cache
        self.filters, self.objectives, self.method = filters, objectives, method
        self.prune_fraction, self.seed, self.target, self.progress = prune_fraction, seed, target, progress
        self.distributions = {d.key: optuna_distribution(d) for d in space.dimensions}
        self.in_flight: dict[int, tuple[optuna.trial.Trial, str | None]] = {}
        self.replays = self.cache_hits = self.skipped = self.new = 0
        self.replay_s = 0.0
        self.best: TrialRecord | None = None
        self.done = 0
        self.queue: list[dict[str, Any]] = []
        self.with_returns: set[str] = set()
        self.batches = 0
        self.asking: optuna.trial.Trial | None = None  # asked, not yet running or told
        self.constrained = method in ("tpe", "nsga2")

    def _penalty(self) -> list[float]:
        """The worst value seen per objective (0 before any), for a sample that breaks a constraint."""
        worst: list[float] = []
        for i, direction in enumerate(self.study.directions):
            seen = [t.values[i] for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                    if t.values is not None and math.isfinite(t.values[i])]
            pick = min if direction == optuna.study.StudyDirection.MAXIMIZE else max
            worst.append(pick(seen) if seen else 0.0)
        return worst

    # -- bookkeeping
    def finish(self, trial: optuna.trial.Trial, status: str, reason: str = "", *, metrics: dict[str, Any] | None = None,
               values: Sequence[float] | None = None, cached: bool = False, replay_s: float | None = None,
               intermediate: dict[str, Any] | None = None, returns: DailyReturns | None = None) -> None:
        attrs: dict[str, Any] = {"status": status, "reason": reason, "metrics": metrics, "cached": cached,
                                 "replay_s": replay_s, "intermediate": intermediate}
        if returns is not None and status in ("complete", "filtered"):
            # kept with the trial (one write with the rest), so statistics never replay it, also after resuming
            attrs["returns"] = returns.to_json()
            self.with_returns.add(param_key(trial.params))
        else:
            returns = None
        trial.set_user_attr(RESULT_ATTR, attrs)
        if status in ("complete", "filtered") and self.constrained and metrics is not None:
            for name, value in self.filters.constraints(metrics).items():
                trial.set_constraint(name, value)
        if status in ("complete", "filtered"):
            self.study.tell(trial, list(values or ()))
        elif status == "skipped" and self.method in _MODEL_BASED:
            # a model-based sampler ignores FAIL trials and keeps sampling the same infeasible
            # region (TPE stalled on `fast < slow`): tell it the point is as bad as the worst seen
            self.study.tell(trial, self._penalty())
        else:
            self.study.tell(trial, state=TrialState.PRUNED if status == "pruned" else TrialState.FAIL)
        if self.asking is trial:
            self.asking = None
        if status in COUNTED:
            self.done += 1
            self.new += 1
        record = TrialRecord(trial.number, status, reason, dict(trial.params), metrics,
                             tuple(values) if values is not None else None, cached, replay_s, intermediate,
                             returns=returns)
        if status == "complete" and record.values is not None:
            sign = 1.0 if OBJECTIVES[self.objectives[0]] == "maximize" else -1.0
            if self.best is None or sign * record.values[0] > sign * (self.best.values or (0.0,))[0]:
                self.best = record
        if self.progress is not None and status in COUNTED:
            running = len(self.in_flight) - (trial.number in self.in_flight)
            self.progress(StudyProgress(self.done, self.target, running, self.replays, self.cache_hits, self.best,
                                        record))

    def scored(self, trial: optuna.trial.Trial, metrics: dict[str, Any], *, cached: bool,
               replay_s: float | None, intermediate: dict[str, Any] | None, returns: DailyReturns | None = None) -> None:
        values = [metrics.get(name) for name in self.objectives]
        undefined = [name for name, value in zip(self.objectives, values) if value is None]
        if undefined:
            why = "no trades" if not metrics.get("trades") else "flat or constant equity, or no losing trade"
            self.finish(trial, "failed", f"{', '.join(undefined)} undefined ({why})", metrics=metrics,
                        cached=cached, replay_s=replay_s, intermediate=intermediate)
            return
        problems = self.filters.problems(metrics)
        self.finish(trial, "filtered" if problems else "complete", "; ".join(problems), metrics=metrics,
                    values=[float(v) for v in values if v is not None], cached=cached, replay_s=replay_s,
                    intermediate=intermediate, returns=returns)

    # -- asking
    def next_point(self) -> dict[str, Any] | None:
        """The next enqueued point of grid / lhs (None: use the sampler; {} marks exhaustion)."""
        if self.method == "grid":
            return self.queue.pop(0) if self.queue else {}
        if self.method == "lhs":
            while not self.queue:
                if self.batches >= 50:
                    raise OptimizeError(f"{self.space.source}: Latin-hypercube points keep breaking the constraints "
                                        f"({', '.join(c.text for c in self.space.constraints)}); relax them")
                self.queue = self.lhs_batch(max(1, self.target - self.done - len(self.in_flight)))
                self.batches += 1
            return self.queue.pop(0)
        return None

    def lhs_batch(self, n: int) -> list[dict[str, Any]]:
        from scipy.stats import qmc

        dims = self.space.dimensions
        rng = np.random.default_rng([self.seed, len(self.study.get_trials(deepcopy=False)), self.batches])
        design = qmc.LatinHypercube(d=len(dims), rng=rng).random(n)
        points = [{d.key: d.from_unit(float(u)) for d, u in zip(dims, row)} for row in design]
        kept = [p for p in points if not self.space.violations(p, self.base, self.data.default)]
        self.skipped += len(points) - len(kept)
        return kept

    def launch(self, runner: TrialExecutor) -> bool:
        """Ask one trial and start it (or settle it at once); False when nothing is left to ask."""
        point = self.next_point()
        if point == {}:
            return False
        me = host_pid()
        if point is not None:  # the runner goes in with the point: one storage write less per trial
            self.study.enqueue_trial(point, user_attrs={RUNNER_ATTR: me})
        skips = 0
        while True:
            trial = self.asking = self.study.ask(self.distributions)
            values = dict(trial.params)
            try:
                broken = self.space.violations(values, self.base, self.data.default)
            except SpaceError as exc:
                self.finish(trial, "failed", str(exc))
                return True
            if not broken:
                break
            skips += 1
            self.skipped += 1
            self.finish(trial, "skipped", f"breaks constraint {', '.join(broken)}; not replayed")
            if skips >= MAX_SKIPS:
                raise OptimizeError(f"{self.space.source}: {MAX_SKIPS} samples in a row broke the constraints "
                                    f"({', '.join(c.text for c in self.space.constraints)}); relax them or narrow "
                                    "the ranges")
        if trial.user_attrs.get(RUNNER_ATTR) != me:  # sampled, or a point an earlier run enqueued
            trial.set_user_attr(RUNNER_ATTR, me)
        try:
            setup = self.space.apply(self.base, values)
            strategy = build_strategy(setup.spec.strategy, setup.spec.params)
            spec = setup.spec.model_copy(update={"params": strategy.params.model_dump(mode="json")})
            key = cache_key(self.data.fingerprint(setup.timeframe), spec.spec_hash()) if self.cache is not None else None
        except (TrialSetupError, StrategyConfigError, OptimizeError) as exc:
            self.finish(trial, "failed", str(exc))
            return True
        cached = self.cache.get(key) if self.cache is not None and key is not None else None
        if cached is not None:
            assert self.cache is not None and key is not None
            self.cache_hits += 1
            # the pruner sees what the replay would report: the same trials are pruned, warm cache or not
            intermediate = self.cache.intermediate(key) if self.prune_fraction else None
            if intermediate is not None and self._report(trial, intermediate) and trial.should_prune():
                self.finish(trial, "pruned", self._pruned_reason(intermediate), cached=True,
                            intermediate=intermediate)
                return True
            # the statistics take each parameter set's first trial: a repeat needs no returns of its own
            returns = None if param_key(values) in self.with_returns else self.cache.returns(key)
            self.scored(trial, cached, cached=True, replay_s=None, intermediate=intermediate, returns=returns)
            return True
        self.in_flight[trial.number] = (trial, key)
        self.asking = None
        runner.submit(TrialTask(trial.number, spec, setup.timeframe, self.prune_fraction))
        return True

    # -- results coming back
    def _report(self, trial: optuna.trial.Trial, metrics: dict[str, Any]) -> bool:
        """Report the objective at the pruning step; False when it is not a number yet."""
        value = metrics.get(self.objectives[0])
        if value is None or not math.isfinite(value):
            return False  # nothing to compare yet: run on
        trial.report(float(value), step=round(100 * (self.prune_fraction or 0)))
        return True

    def _pruned_reason(self, intermediate: dict[str, Any] | None) -> str:
        shown = (intermediate or {}).get(self.objectives[0])
        return (f"pruned at {self.prune_fraction:.0%} of the period: {self.objectives[0]} {shown:.4f} worse than "
                "the median of earlier trials" if shown is not None else "pruned")

    def on_intermediate(self, number: int, metrics: dict[str, Any]) -> bool:
        trial = self.in_flight[number][0]
        return self._report(trial, metrics) and trial.should_prune()

    def on_outcome(self, number: int, outcome: TrialOutcome) -> None:
        trial, key = self.in_flight[number]  # removed once told, so an interruption before that records it
        self.replays += 1
        self.replay_s += outcome.replay_s
        if outcome.error is not None:
            self.finish(trial, "failed", outcome.error, replay_s=outcome.replay_s, intermediate=outcome.intermediate)
        elif outcome.pruned:
            self.finish(trial, "pruned", self._pruned_reason(outcome.intermediate), replay_s=outcome.replay_s,
                        intermediate=outcome.intermediate)
        else:
            assert outcome.metrics is not None
            if self.cache is not None and key is not None:
                self.cache.put(key, outcome.metrics, outcome.returns, outcome.intermediate)
            self.scored(trial, outcome.metrics, cached=False, replay_s=outcome.replay_s,
                        intermediate=outcome.intermediate, returns=outcome.returns)
        del self.in_flight[number]

    def interrupt_running(self) -> None:
        """Record the trials running (or being asked) as interrupted; a trial already told stays as it is."""
        for trial, _ in [*self.in_flight.values(), *([(self.asking, None)] if self.asking is not None else [])]:
            try:
                trial.set_user_attr(RESULT_ATTR, {"status": "interrupted", "reason": "the run was interrupted"})
                self.study.tell(trial, state=TrialState.FAIL)
            except Exception:  # the storage may be what failed; resuming marks them from their runner
                pass
        self.in_flight.clear()
        self.asking = None

    def run(self, runner: TrialExecutor) -> None:
        exhausted = False
        while True:
            while (not exhausted and runner.idle() > 0 and self.done + len(self.in_flight) < self.target):
                exhausted = not self.launch(runner)
            if not self.in_flight:
                if exhausted or self.done >= self.target:
                    return
                continue
            number, outcome = runner.next(self.on_intermediate)
            self.on_outcome(number, outcome)
