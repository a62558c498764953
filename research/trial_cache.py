"""The result cache of parameter studies: metrics and daily returns of full replays keyed by (data,
run spec), kept in the study storage so a parameter set already replayed on the same bars under
the same settings is never replayed again, by this study, a resumed one or another study in the
same database, neither for its metrics nor for the overfitting statistics.

The metrics are the user attributes of one reserved Optuna study, :data:`CACHE_STUDY`, in the
same storage as the studies (the ``[state]`` database): no table of our own, so nothing here
touches SQLAlchemy. Keys are sha256 digests of :data:`CACHE_VERSION`, the data fingerprint and the
spec hash (:meth:`backtest.spec.RunSpec.spec_hash`). Only the process that runs a study writes
(workers report to it), so there is one writer per study; two studies writing the same key store
the same value.

The daily returns of an entry (:class:`research.optimize_returns.DailyReturns`, tens of KB for
decades of days) are one trial each of a second reserved study, :data:`RETURNS_STUDY`; the
entry names that trial by id, so they are read one at a time when wanted, never all at once
when the cache is opened. An entry written before the cache kept returns has none
(:meth:`TrialCache.returns` gives None; the statistics then replay that set).

Bump :data:`CACHE_VERSION` when a change of the engine changes results: older entries then
never match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.study import StudyDirection
from optuna.trial import TrialState

from backtest.data import data_hash
from backtest.sources import BarSeries
from research.optimize_returns import DailyReturns

__all__ = ["CACHE_STUDY", "CACHE_VERSION", "RETURNS_STUDY", "TrialCache", "cache_key", "series_fingerprint"]

CACHE_STUDY = "tradingd.trial-cache"
"""Name of the reserved study whose user attributes hold the cache."""
RETURNS_STUDY = "tradingd.trial-cache.returns"
"""Name of the reserved study holding each entry's daily returns, one trial per entry."""
_RETURNS_REF = "_returns_trial"  # key in an entry: the trial id of its returns in RETURNS_STUDY
_INTERMEDIATE = "_intermediate"  # key in an entry: the metrics at the pruning step (what the pruner saw)
_RESERVED = (_RETURNS_REF, _INTERMEDIATE)
CACHE_VERSION = 1
"""Part of every key: entries written under another version never match."""


def series_fingerprint(series: Sequence[BarSeries]) -> str:
    """Return the identity of exactly these bars: :func:`backtest.data.data_hash` (files and bar
    counts) plus each series' timeframe and first and last bar start (the window and the
    aggregation, which the file digests alone do not tell).

    Examples
    --------
    >>> import numpy as np
    >>> from backtest.sources import BarSeries
    >>> ts = np.arange(3, dtype=np.int64) * 3_600_000_000_000
    >>> one = BarSeries("SPY", 3_600_000_000_000, ts, *(np.ones(3),) * 5, source="x", sha256="ab")
    >>> series_fingerprint([one]) == series_fingerprint([one]), len(series_fingerprint([one]))
    (True, 64)
    """
    digest = hashlib.sha256(data_hash(series).encode())
    for s in sorted(series, key=lambda one: (one.symbol, one.source or "")):
        first = int(s.ts_event[0]) if len(s) else -1
        last = int(s.ts_event[-1]) if len(s) else -1
        digest.update(f"|{s.symbol}:{s.timeframe_ns}:{first}:{last}".encode())
    return digest.hexdigest()


def cache_key(fingerprint: str, spec_hash: str) -> str:
    """Return the cache key of a run spec (its hash) on data of ``fingerprint``.

    Examples
    --------
    >>> cache_key("d" * 64, "s" * 64) == cache_key("d" * 64, "s" * 64) != cache_key("e" * 64, "s" * 64)
    True
    """
    return hashlib.sha256(f"v{CACHE_VERSION}|{fingerprint}|{spec_hash}".encode()).hexdigest()


def _reserved_study(storage: optuna.storages.BaseStorage, name: str) -> int:
    try:
        return storage.create_new_study([StudyDirection.MINIMIZE], name)
    except DuplicatedStudyError:
        return storage.get_study_id_from_name(name)


class TrialCache:
    """Metrics and daily returns of full replays in an Optuna storage.

    Parameters
    ----------
    storage
        The storage the studies live in (e.g. an ``optuna.storages.RDBStorage`` on the state
        database). The reserved studies :data:`CACHE_STUDY` and :data:`RETURNS_STUDY` are
        created on first use.

    Notes
    -----
    All metrics are read once, when the cache is opened (one query); :meth:`put` writes one row
    (and one trial for the returns), :meth:`returns` reads one trial.
    """

    def __init__(self, storage: optuna.storages.BaseStorage) -> None:
        self._storage = storage
        self._study_id = _reserved_study(storage, CACHE_STUDY)
        self._returns_study_id: int | None = None
        self._entries: dict[str, dict[str, Any]] = {
            key: value for key, value in storage.get_study_user_attrs(self._study_id).items()
            if isinstance(value, dict)}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: str) -> dict[str, Any] | None:
        """Return the metrics stored under ``key``, or None."""
        entry = self._entries.get(key)
        return {k: v for k, v in entry.items() if k not in _RESERVED} if entry is not None else None

    def intermediate(self, key: str) -> dict[str, Any] | None:
        """Return the metrics the replay under ``key`` reported at its pruning step (so a cache hit
        can show the pruner what a fresh replay would), or None (no pruning step, or an older entry)."""
        value = (self._entries.get(key) or {}).get(_INTERMEDIATE)
        return dict(value) if isinstance(value, dict) else None

    def returns(self, key: str) -> DailyReturns | None:
        """Return the daily returns stored under ``key``; None when there is no entry, the entry
        has none (written by an older tradingd) or they cannot be read."""
        ref = (self._entries.get(key) or {}).get(_RETURNS_REF)
        if not isinstance(ref, int):
            return None
        try:
            trial = self._storage.get_trial(ref)
        except KeyError:  # the returns study was removed by hand
            return None
        return DailyReturns.from_json(trial.user_attrs.get("returns"))

    def put(self, key: str, metrics: Mapping[str, Any], returns: DailyReturns | None = None,
            intermediate: Mapping[str, Any] | None = None) -> None:
        """Store ``metrics`` (JSON-safe: numbers, None, strings), ``returns`` and the metrics at the
        pruning step ``intermediate`` (when given) under ``key``."""
        value: dict[str, Any] = {k: v for k, v in metrics.items() if k not in _RESERVED}
        if intermediate:
            value[_INTERMEDIATE] = dict(intermediate)
        if returns is not None:
            if self._returns_study_id is None:
                self._returns_study_id = _reserved_study(self._storage, RETURNS_STUDY)
            holder = optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.0,
                                               user_attrs={"key": key, "returns": returns.to_json()})
            value[_RETURNS_REF] = self._storage.create_new_trial(self._returns_study_id, template_trial=holder)
        self._storage.set_study_user_attr(self._study_id, key, value)
        self._entries[key] = value
