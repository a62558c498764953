"""Where a study lives: the Optuna storage of a database URL (:func:`open_study_storage`), the
study's name (:func:`default_study_name`), what its trials keep in their user attributes and how
they are read back (:func:`record_of`), and what a resumed run checks and settles (the study was
created for the same work; trials left running by a run that is gone are ``interrupted``).

Trials are kept in Optuna's tables; tradingd's part of each is one user attribute
(:data:`RESULT_ATTR`: status, reason, metrics, cached, replay seconds, metrics at the pruning
step, and the daily returns of a trial replayed to the end) plus the host and process running it
(:data:`RUNNER_ATTR`); the study's own attribute :data:`META_ATTR` says what it was created for.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from backtest.spec import RunSpec
from research.optimize_data import StudyData
from research.optimize_objectives import OptimizeError
from research.optimize_records import TrialRecord
from research.optimize_returns import DailyReturns
from research.search_space import SearchSpace

__all__ = ["META_ATTR", "RESULT_ATTR", "RUNNER_ATTR", "check_meta", "default_study_name", "host_pid",
           "open_study_storage", "record_of", "require_shared_storage", "settle_stale", "storage_label"]

META_ATTR = "tradingd"
"""Study user attribute: what the study was created for (strategy, method, objectives, space, settings, data, seed)."""
RESULT_ATTR = "tradingd"
"""Trial user attribute: status, reason, metrics, cached, replay_s, intermediate and (replayed to the end) returns."""
RUNNER_ATTR = "tradingd_runner"
"""Trial user attribute: ``host:pid`` of the process that runs it."""


def default_study_name(strategy: str, method: str, space: SearchSpace, base: RunSpec, data: StudyData,
                       objectives: Sequence[str]) -> str:
    """A study name that is the same for the same study (strategy, method, space, settings, data,
    objectives), so running the same command again resumes it; e.g. ``sma_cross-tpe-3f2a9c01d4``."""
    payload = json.dumps({"space": space.fingerprint(), "base": base.spec_hash(),
                          "data": {k: data.fingerprint(k) for k in sorted(data.series)}, "objectives": list(objectives),
                          "method": method}, sort_keys=True)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", strategy)
    return f"{slug}-{method}-{hashlib.sha256(payload.encode()).hexdigest()[:10]}"


def record_of(trial: FrozenTrial) -> TrialRecord:
    """The :class:`research.optimize_records.TrialRecord` of a stored trial (its :data:`RESULT_ATTR`
    and Optuna's state; ``returns`` None when the trial keeps none or an unreadable form)."""
    attrs = trial.user_attrs.get(RESULT_ATTR) or {}
    status = attrs.get("status")
    if status is None:
        status = {TrialState.RUNNING: "running", TrialState.WAITING: "waiting", TrialState.PRUNED: "pruned",
                  TrialState.COMPLETE: "complete"}.get(trial.state, "failed")
    values = tuple(trial.values) if trial.values is not None and trial.state == TrialState.COMPLETE else None
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    return TrialRecord(trial.number, status, attrs.get("reason", ""), dict(trial.params), attrs.get("metrics"),
                       values, bool(attrs.get("cached", False)), attrs.get("replay_s"), attrs.get("intermediate"),
                       trial.datetime_start, duration, trial.state.name.lower(),
                       DailyReturns.from_json(attrs.get("returns")))


def host_pid() -> str:
    """``host:pid`` of this process (:data:`RUNNER_ATTR`)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(runner: str) -> bool:
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's trial: not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _SqliteConnection(sqlite3.Connection):
    """A SQLite connection with the state store's durability (``state/db.py``): in WAL mode a
    commit does not wait for the disk (``synchronous=NORMAL``; the file stays consistent through a
    crash, a power cut may lose the last trials, which a resumed run replays). A file not in WAL
    mode keeps SQLite's default (``FULL``). A study commits several times a trial, and a
    synchronous commit costs milliseconds to tens of them on a busy disk."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mode = self.execute("PRAGMA journal_mode").fetchone()
        if mode is not None and str(mode[0]).lower() == "wal":
            self.execute("PRAGMA synchronous=NORMAL")


def open_study_storage(storage: str | optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """Return the Optuna storage of a database URL (SQLite or PostgreSQL; a storage is returned as is).

    The tradingd state database keeps its Alembic revision in ``alembic_version``, as Optuna's
    schema does: open the state store on the URL first (so its revision is there), then this.
    Optuna leaves an existing revision alone and adds its own tables (``studies``, ``trials``,
    ...); its compatibility check, which would read the state's revision as a foreign schema, is
    skipped (Optuna is pinned). Tools opening the same database (``optuna-dashboard``,
    ``optuna.load_study``) need ``RDBStorage(url, skip_compatibility_check=True)`` likewise.

    A SQLite file in WAL mode (as the state store leaves it) is written with its durability,
    ``synchronous=NORMAL``, as the state store writes it (see :class:`_SqliteConnection`).
    """
    if not isinstance(storage, str):
        return storage
    url = storage
    if url.startswith("postgresql://"):  # bare postgresql means psycopg 3, as in the state store
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    kwargs: dict[str, Any] = ({"connect_args": {"timeout": 60, "factory": _SqliteConnection}} if url.startswith("sqlite")
                              else {"pool_pre_ping": True})
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=True)


def settle_stale(storage: optuna.storages.BaseStorage, study_id: int) -> None:
    """Record trials left RUNNING by a run of this host that is gone as ``interrupted``."""
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        runner = trial.user_attrs.get(RUNNER_ATTR, "")
        if runner and not _alive(runner):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_user_attr(trial_id, RESULT_ATTR, {
                "status": "interrupted", "reason": f"its run ({runner}) ended before it finished"})
            storage.set_trial_state_values(trial_id, TrialState.FAIL)


def check_meta(name: str, meta: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    """Raise :class:`OptimizeError` when a study resumed as ``name`` was created for other work
    (strategy, method, objectives, space, settings or data) than ``wanted``."""
    for key in ("strategy", "method", "objectives", "space", "base", "data"):
        if key in meta and meta[key] != wanted[key]:
            what = {"space": "a different search space", "base": "different settings (risk, fill, signals, cash)",
                    "data": "different data"}.get(key, f"{key} {meta[key]!r}")
            raise OptimizeError(f"study {name!r} exists and was created with {what}; resuming needs the same "
                                f"{key}, or choose a new study name (--study-name)")


def require_shared_storage(storage: str | optuna.storages.BaseStorage, what: str = "a study on Dask") -> None:
    """Raise unless ``storage`` is a PostgreSQL database (a URL, or an ``RDBStorage`` on one).

    A study whose trials run on several machines lives where all of them, a dashboard and a
    resumed run on another host can reach it: PostgreSQL. SQLite (one file on one machine) and
    in-memory storage are refused.

    Raises
    ------
    OptimizeError
        Naming the storage (password masked) and how to pass a PostgreSQL URL.

    Examples
    --------
    >>> require_shared_storage("postgresql+psycopg://trader@db:5432/research")
    >>> require_shared_storage("sqlite:///tradingd.db")
    Traceback (most recent call last):
    ...
    research.optimize_objectives.OptimizeError: a study on Dask needs the study in PostgreSQL, shared by every machine of the cluster; got sqlite:///tradingd.db: pass --db postgresql+psycopg://user@host:5432/db
    """
    if isinstance(storage, str):
        url, shown = storage, storage_label(storage)
    elif isinstance(storage, optuna.storages.RDBStorage):
        url = str(storage.url)
        shown = storage_label(url)
    else:
        url, shown = "", f"an {type(storage).__name__}"
    if not url.startswith("postgresql"):
        raise OptimizeError(f"{what} needs the study in PostgreSQL, shared by every machine of the cluster; got "
                            f"{shown}: pass --db postgresql+psycopg://user@host:5432/db")


def storage_label(storage: str | optuna.storages.BaseStorage) -> str:
    """The storage as shown in summaries: a URL with its password masked, else the class name.

    Examples
    --------
    >>> storage_label("postgresql+psycopg://trader:p@ss@db:5432/x?sslmode=require")
    'postgresql+psycopg://trader:***@db:5432/x?sslmode=require'
    """
    if not isinstance(storage, str):
        return type(storage).__name__
    head, question, query = storage.partition("?")
    scheme, sep, rest = head.partition("://")
    if "@" in rest:  # credentials end at the last @ (a password may hold one)
        credentials, _, host = rest.rpartition("@")
        user, colon, _ = credentials.partition(":")
        rest = f"{user}:***@{host}" if colon else f"{credentials}@{host}"
    return f"{scheme}{sep}{rest}{question}{query}"
