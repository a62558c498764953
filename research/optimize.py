"""Parameter studies: a loop over replays of the one engine (:func:`backtest.replay.run_replay`),
driven by Optuna.

:func:`run_study` samples points of a :class:`research.search_space.SearchSpace`, replays each on
bars loaded once (:class:`StudyData`), scores it (:data:`OBJECTIVES`, from
:func:`research.metrics.compute_metrics`, the figures ``tradingd replay`` reports) and returns a
:class:`StudyResult`: every trial with its parameters, metrics, status and reason, the ranking under
the filters and, for several objectives, the Pareto front.

* Methods (:data:`METHODS`): ``grid`` (every combination that meets the constraints, in order),
  ``random``, ``lhs`` (Latin hypercube, scipy), ``sobol`` / ``qmc`` (Optuna's QMCSampler),
  ``tpe``, ``cmaes`` (needs the ``cmaes`` package) and ``nsga2``. Several objectives
  (``("sharpe", "max_drawdown")``) give a Pareto front; every method but ``cmaes`` accepts them.
* Trials are asked and told by this process only (Optuna's ask-and-tell): it is the one writer of
  the study storage. With ``jobs > 1`` replays run in forked worker processes that inherit the
  loaded bars (copy-on-write, never re-parsed) and report back over pipes. With ``dask_address``
  they run on a Dask cluster (:mod:`research.distributed`): the bars are shipped once to each
  worker, the study lives in PostgreSQL. Executors are pluggable (:class:`TrialExecutor`).
* Pruning (single objective): a trial replays the first ``prune_fraction`` of the period, reports
  its objective there as an intermediate value and Optuna's ``MedianPruner`` decides; a kept trial
  goes on to the full period in the same replay (nothing is replayed twice).
* Filters (:class:`TrialFilters`) never crash a study: a trial that breaks one is recorded with its
  reason (status ``filtered``) and left out of the ranking; TPE and NSGA-II also see it as
  infeasible (Optuna constraints). A trial that raises is ``failed``, with the error as its reason.
* Studies persist in the storage and resume: running a study name again continues it up to
  ``n_trials`` in all. Trials left running by a run that was interrupted (or killed) are recorded
  ``interrupted`` and do not count. A result cache (:mod:`research.trial_cache`) keyed by the data
  and the trial's spec hash means a parameter set already replayed is never replayed again.
* Every trial replayed to the end comes back with the daily returns of its equity curve
  (:class:`research.optimize_returns.DailyReturns`), kept with the trial and in the cache, so
  the overfitting statistics (:mod:`research.study_stats`) never replay it a second time.

Trial statuses: ``complete`` (ranked), ``filtered``, ``pruned``, ``failed``, ``skipped`` (broke a
constraint; not replayed, not counted), ``interrupted`` (not counted), ``running``, ``waiting``.

This module is the driver (:func:`run_study`); the parts live in modules with one job each, every
name importable from here as before (dependencies point one way, top to bottom):

* :mod:`research.optimize_objectives`: objectives, recorded metrics, filters, :class:`OptimizeError`;
* :mod:`research.optimize_data`: :class:`StudyData`, the bars loaded once;
* :mod:`research.optimize_returns`: :class:`DailyReturns` of a trial and their stored form;
* :mod:`research.optimize_trial`: one trial, :func:`evaluate_trial` (replay, metrics, returns);
* :mod:`research.optimize_executors`: :class:`TrialExecutor`, in this process or forked workers;
* :mod:`research.optimize_records`: :class:`TrialRecord`, :class:`StudyResult`, the ranking;
* :mod:`research.optimize_storage`: the storage, study names, stored trials, resuming;
* :mod:`research.optimize_loop`: the ask-and-tell loop and the samplers;
* :mod:`research.optimize_outputs`: ``trials.csv``, ``summary.json``, ``summary.txt``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import optuna

from backtest.spec import RunSpec
from research.optimize_data import StudyData
from research.optimize_executors import ExecutorFactory, Intermediate, TrialExecutor, local_executor
from research.optimize_executors import _ForkPool as _ForkPool  # the local executors, importable from here as before
from research.optimize_executors import _Inline as _Inline
from research.optimize_loop import MAX_SKIPS, StudyLoop, make_sampler
from research.optimize_objectives import METRIC_KEYS, OBJECTIVES, OptimizeError, TrialFilters, parse_objectives
from research.optimize_outputs import write_study_outputs
from research.optimize_records import COUNTED, StudyProgress, StudyResult, TrialRecord, param_key, rank_trials, refilter
from research.optimize_returns import DailyReturns
from research.optimize_storage import (META_ATTR, check_meta, default_study_name, open_study_storage, record_of,
                                       require_shared_storage, settle_stale, storage_label)
from research.optimize_trial import DiscardStore, TrialOutcome, TrialTask, evaluate_trial, trial_metrics
from research.search_space import SearchSpace, TrialSetup
from research.trial_cache import TrialCache
from strategies.registry import build_strategy

__all__ = ["COUNTED", "DEFAULT_TRIALS", "GRID_WARNING", "MAX_SKIPS", "METHODS", "METRIC_KEYS", "OBJECTIVES", "DailyReturns",
           "DiscardStore", "ExecutorFactory", "Intermediate", "OptimizeError", "StudyData", "StudyProgress", "StudyResult",
           "TrialExecutor", "TrialFilters", "TrialOutcome", "TrialRecord", "TrialTask", "default_study_name",
           "evaluate_trial", "open_study_storage", "parse_objectives", "require_shared_storage", "run_study",
           "trial_metrics", "write_study_outputs"]

METHODS = ("grid", "random", "lhs", "sobol", "qmc", "tpe", "cmaes", "nsga2")
"""Search methods; ``qmc`` is another name of ``sobol``."""
GRID_WARNING = 1_000
"""A grid of more combinations than this gets a warning suggesting random, lhs or tpe."""
DEFAULT_TRIALS = 100
"""Trials of a study when ``n_trials`` is not given (grid: every combination)."""


def run_study(base: RunSpec, space: SearchSpace, data: StudyData, *, storage: str | optuna.storages.BaseStorage,
              study_name: str | None = None, method: str = "tpe", objectives: str | Sequence[str] = ("sharpe",),
              n_trials: int | None = None, jobs: int = 1, seed: int | None = None,
              filters: TrialFilters = TrialFilters(), prune: bool | None = None, prune_fraction: float = 0.5,
              use_cache: bool = True, progress: Callable[[StudyProgress], None] | None = None,
              warn: Callable[[str], None] | None = None, executor: str | ExecutorFactory | None = None,
              dask_address: str | None = None) -> StudyResult:
    """Run (or resume) a parameter study over replays of ``base`` with the points of ``space``.

    Parameters
    ----------
    base
        The run every trial starts from; ``space`` sets its strategy, params, risk and fill keys.
    space
        The search space (:func:`research.search_space.load_space`).
    data
        The bars, loaded once (:meth:`StudyData.load`); every timeframe the space uses must be in it.
    storage
        An Optuna storage, or a database URL opened as ``RDBStorage`` (SQLite or PostgreSQL). A URL
        of the tradingd state database must already hold the state tables (the CLI opens the
        store first): both keep their Alembic revision in ``alembic_version``, and Optuna then
        leaves it alone.
    study_name
        Study to create or resume; default :func:`default_study_name`.
    method
        One of :data:`METHODS`.
    objectives
        One or more of :data:`OBJECTIVES` (``"sharpe,max_drawdown"``).
    n_trials
        Trials of the study in all (a resumed study runs only the rest); grid default and
        maximum: every combination meeting the constraints; else default :data:`DEFAULT_TRIALS`.
        Skipped and interrupted trials do not count.
    jobs
        Replays at a time (> 1: forked worker processes). On Dask: 1 (the default) means one per
        worker thread of the cluster, followed as workers come and go, plus one queued; N > 1
        keeps N in flight.
    seed
        Sampler seed; default a random one, kept with the study so resuming reuses it.
    filters
        What a trial must reach to be ranked.
    prune
        Prune on the first ``prune_fraction`` of the period (MedianPruner). Default: on for one
        objective with random, lhs, sobol, tpe and cmaes; off for grid and several objectives.
    use_cache
        Look up and store full-period metrics in the result cache of ``storage``.
    progress
        Called after every counted trial.
    warn
        Called with warnings for the user (a grid above :data:`GRID_WARNING` combinations).
    executor
        Where replays run: ``"local"`` (this process, or ``jobs`` forked workers), ``"dask"``
        (:class:`research.distributed.DaskExecutor` on the scheduler at ``dask_address``), or an
        :data:`ExecutorFactory`. Default: ``"dask"`` when ``dask_address`` is given, else ``"local"``.
        Wherever they run, this process alone asks and tells Optuna, so results do not depend on it.
    dask_address
        The Dask scheduler, ``tcp://host:port``. The study must then be in PostgreSQL (the
        storage every machine of the cluster can reach; see :func:`require_shared_storage`).

    Returns
    -------
    StudyResult
        With ``interrupted=True`` when KeyboardInterrupt stopped it (trials running then are
        recorded ``interrupted``; running it again resumes).

    Raises
    ------
    OptimizeError
        For an unknown method or objective, pruning with several objectives, ``n_trials`` or
        ``jobs`` below 1, a timeframe the data lacks, a grid over a continuous float, or a
        resumed study created for another strategy, method, objectives, space, settings or data;
        on Dask also for a storage that is not PostgreSQL, a malformed or unreachable scheduler
        address, no worker, or workers running other tradingd code.
    """
    started = time.perf_counter()
    method = "sobol" if method == "qmc" else method
    if method not in METHODS:
        raise OptimizeError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    names = parse_objectives(objectives)
    multi = len(names) > 1
    if method == "cmaes" and multi:
        raise OptimizeError("cmaes optimizes one objective; use nsga2 (or tpe) for several")
    if prune is None:
        prune = not multi and method != "grid"
    if prune and multi:
        raise OptimizeError("pruning needs a single objective (Optuna cannot prune multi-objective trials)")
    if not 0 < prune_fraction < 1:
        raise OptimizeError(f"prune fraction {prune_fraction}: must be in (0, 1)")
    if jobs < 1:
        raise OptimizeError(f"jobs {jobs}: must be 1 or more")
    if n_trials is not None and n_trials < 1:
        raise OptimizeError(f"trials {n_trials}: must be 1 or more")
    for timeframe in space.timeframes() or ():
        data.get(timeframe)
    grid: list[dict[str, Any]] = []
    grid_size = None
    if method == "grid":
        grid_size = space.grid_size()
        grid = [p for p in space.grid() if not space.violations(p, base, data.default)]
        if not grid:
            raise OptimizeError(f"{space.source}: no grid combination meets the constraints")
        if len(grid) > GRID_WARNING and warn is not None:
            warn(f"the grid has {grid_size:,} combinations ({len(grid):,} meet the constraints), more than "
                 f"{GRID_WARNING:,}: consider --method random, lhs or tpe")
    target = min(n_trials or len(grid), len(grid)) if method == "grid" else (n_trials or DEFAULT_TRIALS)
    name = study_name or default_study_name(space.strategy, method, space, base, data, names)
    wanted = {"strategy": space.strategy, "method": method, "objectives": list(names), "space": space.fingerprint(),
              "base": base.spec_hash(), "data": {k: data.fingerprint(k) for k in sorted(data.series)}}
    make_runner = _executor_factory(executor, dask_address, storage)
    runner = make_runner(data, jobs)  # before any connection: the local pool forks
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    interrupted = False
    try:
        store = open_study_storage(storage)
        directions: list[Any] = [OBJECTIVES[n] for n in names]
        probe = optuna.create_study(storage=store, study_name=name, directions=directions, load_if_exists=True)
        meta = probe.user_attrs.get(META_ATTR) or {}
        check_meta(name, meta, wanted)
        if list(d.name.lower() for d in probe.directions) != directions:
            raise OptimizeError(f"study {name!r} exists with other objective directions; choose a new study name")
        chosen_seed = seed if seed is not None else int(meta.get("seed", secrets.randbelow(2**31)))
        if not meta:
            probe.set_user_attr(META_ATTR, {**wanted, "seed": chosen_seed, "filters": filters.to_dict(),
                                            "created": datetime.now(timezone.utc).isoformat()})
        settle_stale(store, store.get_study_id_from_name(name))
        existing = probe.get_trials(deepcopy=False)
        # a resumed random/tpe/... sampler must not replay the sequence it drew before
        sampler_seed = chosen_seed if method == "sobol" else (chosen_seed + len(existing)) % 2**32
        pruner = (optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0) if prune
                  else optuna.pruners.NopPruner())
        study = optuna.load_study(study_name=name, storage=store,
                                  sampler=make_sampler(method, sampler_seed, runner.slots, multi), pruner=pruner)
        cache = TrialCache(store) if use_cache else None
        loop = StudyLoop(base, space, data, study, cache, filters, names, method, prune_fraction if prune else None,
                         chosen_seed, target, progress)
        records = [record_of(t) for t in existing]
        loop.done = sum(1 for r in records if r.status in COUNTED)
        loop.with_returns = {param_key(r.params) for r in records if r.returns is not None}
        if method == "grid":
            visited = {param_key(r.params) for r in records if r.status in COUNTED or r.status in ("running", "waiting")}
            loop.queue = [p for p in grid if param_key(p) not in visited]
        try:
            loop.run(runner)
        except KeyboardInterrupt:
            interrupted = True
            runner.terminate()
            loop.interrupt_running()
        except BaseException:
            runner.terminate()
            loop.interrupt_running()
            raise
        # ranked under this call's filters, also the trials of earlier runs (they may have used others)
        trials = [refilter(record_of(t), filters) for t in study.get_trials(deepcopy=False)]
    finally:
        runner.close()
        optuna.logging.set_verbosity(verbosity)
    ranked, pareto = rank_trials(trials, directions)
    best_setup = None
    if ranked:
        setup = space.apply(base, ranked[0].params)
        params = build_strategy(setup.spec.strategy, setup.spec.params).params.model_dump(mode="json")
        best_setup = TrialSetup(setup.spec.model_copy(update={"params": params}), setup.timeframe)
    return StudyResult(
        study_name=name, method=method, strategy=space.strategy, objectives=names, directions=tuple(directions),
        filters=filters, space=space, base=base, trials=trials, ranked=ranked, pareto=pareto, target=target,
        new_trials=loop.new, replays=loop.replays, cache_hits=loop.cache_hits, skipped=loop.skipped,
        runtime_s=time.perf_counter() - started, replay_s=loop.replay_s, period=data.period(), timeframe=data.default,
        seed=chosen_seed, pruning=bool(prune), grid_size=grid_size, interrupted=interrupted,
        storage=storage_label(storage), best_setup=best_setup, data_fingerprint=data.fingerprint(None))


def _executor_factory(executor: str | ExecutorFactory | None, dask_address: str | None,
                      storage: str | optuna.storages.BaseStorage) -> ExecutorFactory:
    """The factory of ``run_study(executor=..., dask_address=...)``, validated before any work."""
    if executor is None:
        executor = "dask" if dask_address is not None else "local"
    if callable(executor):
        if dask_address is not None:
            raise OptimizeError("dask_address is given with a custom executor; pass one or the other")
        return executor
    if executor == "local":
        if dask_address is not None:
            raise OptimizeError(f"dask_address {dask_address!r} is given with executor 'local'; use executor 'dask'")
        return local_executor
    if executor == "dask":
        if dask_address is None:
            raise OptimizeError("executor 'dask' needs the scheduler's address (dask_address='tcp://host:port')")
        require_shared_storage(storage, "a study on Dask")
        from research.distributed import DaskExecutor, parse_dask_address

        address = parse_dask_address(dask_address)
        return lambda data, jobs: DaskExecutor(address, data, jobs=jobs)
    raise OptimizeError(f"unknown executor {executor!r}; choose 'local' or 'dask' (or pass a factory)")

