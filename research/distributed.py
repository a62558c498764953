"""Trials of a parameter study on a Dask cluster (``tradingd optimize --dask tcp://host:port``).

:class:`DaskExecutor` is the :class:`research.optimize.TrialExecutor` that runs replays on the
workers of a running ``dask scheduler`` (started with the ``dask scheduler`` / ``dask worker``
CLIs; no cluster manager). The study loop stays in the calling process, the one Optuna writer: it
asks trials, ships each as a :class:`research.optimize.TrialTask` and tells the outcome, so a
trial's result does not depend on where it ran and the study (in PostgreSQL) has a single writer.

* Bars go to each worker once per study, not once per trial: the :class:`research.optimize.StudyData`
  is scattered to every worker under a key derived from its fingerprint (:class:`ShippedBars`)
  and kept in a worker-side cache keyed by that fingerprint (:data:`HELD_DATASETS` studies);
  trial tasks carry only the fingerprint and key, and a worker joining later fetches the bars
  once from a peer. Two studies on the same bars share the key and the cached copy.
* Pruning works as locally: at the pruning step the worker puts (trial, metrics so far) on a Dask
  ``Queue`` of the study, the study loop asks Optuna's pruner and answers on a ``Variable`` of
  that trial; the replay goes on (or stops) in place, nothing is replayed twice.
* A trial's outcome comes back with the daily returns of its equity curve (a few thousand
  floats, pickled with it), so the study's overfitting statistics never replay it.
* Workers must run the same tradingd code: every task carries :func:`code_fingerprint` (sources of
  the packages that decide a replay, plus the Python, numpy and pandas versions) and a worker
  whose own differs fails the trial saying so, instead of caching a different result.
* A worker lost mid-trial: Dask reruns the task elsewhere (replays are deterministic); after
  Dask's allowed failures the trial is ``failed``. A scheduler lost for good stops the study with
  :class:`research.optimize.OptimizeError`; its running trials are recorded ``interrupted`` and the
  same command resumes.

Start workers with one thread each (``dask worker tcp://host:8786 --nthreads 1 --nworkers N``):
a replay is pure Python and holds the GIL, so threads of one worker process do not add speed.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import queue
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import distributed
import numpy as np
import pandas as pd
from distributed import Client, Future, Queue, Variable

from research.optimize_data import StudyData
from research.optimize_executors import Intermediate
from research.optimize_objectives import OptimizeError
from research.optimize_trial import TrialOutcome, TrialTask, evaluate_trial

__all__ = ["ANSWER_TIMEOUT_S", "HELD_DATASETS", "DaskExecutor", "ShippedBars", "bars_received", "code_fingerprint",
           "data_fingerprint", "parse_dask_address", "run_trial"]

ANSWER_TIMEOUT_S = 120.0
"""A worker waits this long for the study's pruning answer, then replays on (the study may be gone)."""
_ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
HELD_DATASETS = 4
"""Studies' bars a worker keeps (least recently used dropped first): a resumed study or one on the
same bars finds them in place."""
_RECEIVED: dict[str, int] = {}  # per worker process: data fingerprint -> times its bars arrived
# Per worker process: data fingerprint -> bars. Trials read the bars from here, not as a Dask
# dependency: Dask's active memory manager drops "extra" replicas of a broadcast key, and a task
# depending on it would then fetch the bars again from a peer.
_HELD: OrderedDict[str, StudyData] = OrderedDict()


def parse_dask_address(text: str) -> str:
    """Return the scheduler address ``tcp://host:port`` (or ``tls://``), validated.

    Raises
    ------
    OptimizeError
        For anything else, saying what form is expected.

    Examples
    --------
    >>> parse_dask_address(" tcp://127.0.0.1:8786 ")
    'tcp://127.0.0.1:8786'
    >>> parse_dask_address("127.0.0.1:8786")
    Traceback (most recent call last):
    ...
    research.optimize_objectives.OptimizeError: --dask '127.0.0.1:8786': expected the scheduler's address as tcp://host:port
    """
    address = text.strip()
    match = _ADDRESS.match(address)
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise OptimizeError(f"--dask {text!r}: expected the scheduler's address as tcp://host:port")
    return address


@cache
def code_fingerprint() -> str:
    """Return the identity of the code that decides a trial's result in this process: sha256 over
    the sources of core, strategies, risk, learning, backtest and research's metrics, optimize
    (``research/optimize*.py``: the trial, its returns, the executors ...) and distributed modules,
    and the Python, numpy and pandas versions (computed once per process).

    Examples
    --------
    >>> len(code_fingerprint()) == 64 and code_fingerprint() == code_fingerprint()
    True
    """
    import backtest
    import core
    import learning
    import research.metrics
    import research.optimize
    import risk
    import strategies

    files: list[Path] = []
    for package in (core, strategies, risk, learning, backtest):
        files.extend(Path(package.__file__ or "").parent.rglob("*.py"))
    files.append(Path(research.metrics.__file__ or ""))
    files.extend(Path(research.optimize.__file__ or "").parent.glob("optimize*.py"))
    files.append(Path(__file__))  # the worker side of this module
    root = Path(core.__file__ or "").parent.parent
    digest = hashlib.sha256(f"python {platform.python_version()} numpy {np.__version__} pandas {pd.__version__}".encode())
    for path in sorted(files):
        digest.update(f"|{path.relative_to(root)}|".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class ShippedBars:
    """A study's bars as shipped to the workers, keyed by ``fingerprint``.

    Dask names a scattered object by its token; this one's token is its fingerprint, so the same
    bars get the same key (one copy per worker, shared by studies on the same data), and a
    worker records each arrival (:func:`bars_received`).

    Parameters
    ----------
    fingerprint
        :func:`data_fingerprint` of ``data``.
    data
        The bars of every timeframe the study uses.
    """

    __slots__ = ("data", "fingerprint")

    def __init__(self, fingerprint: str, data: StudyData) -> None:
        self.fingerprint = fingerprint
        self.data = data

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("tradingd-bars", self.fingerprint)

    def __reduce__(self) -> tuple[Any, tuple[str, StudyData]]:
        return (_arrived, (self.fingerprint, self.data))


def _arrived(fingerprint: str, data: StudyData) -> ShippedBars:
    _RECEIVED[fingerprint] = _RECEIVED.get(fingerprint, 0) + 1
    return ShippedBars(fingerprint, _hold(fingerprint, data))


def _hold(fingerprint: str, data: StudyData) -> StudyData:
    """Keep ``data`` in this worker's cache (the copy already held wins) and return the one kept."""
    held = _HELD.setdefault(fingerprint, data)
    _HELD.move_to_end(fingerprint)
    while len(_HELD) > HELD_DATASETS:
        _HELD.popitem(last=False)
    return held


def _bars(fingerprint: str, key: str) -> StudyData:
    """The bars of ``fingerprint`` on this worker: from its cache, else fetched once from the
    scattered copy under ``key`` (on a peer, or in this worker's Dask memory)."""
    held = _HELD.get(fingerprint)
    if held is not None:
        _HELD.move_to_end(fingerprint)
        return held
    shipped: ShippedBars = Future(key, client=distributed.get_client()).result()
    return _hold(fingerprint, shipped.data)


def bars_received() -> dict[str, int]:
    """Return, for this process, data fingerprint -> how many times its bars arrived here (run it
    on the workers with ``client.run(bars_received)``: 1 per study means shipped once)."""
    return dict(_RECEIVED)


def data_fingerprint(data: StudyData) -> str:
    """Return one identity of all the series of ``data`` (each timeframe's
    :meth:`research.optimize.StudyData.fingerprint`, and the default timeframe)."""
    payload = json.dumps({"default": data.default, "series": {k: data.fingerprint(k) for k in sorted(data.series)}},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


# --- on the worker ----------------------------------------------------------------------------------

def _plain(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics as msgpack-safe Python numbers (Dask queues do not carry numpy scalars)."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, (np.integer, np.floating)):
            value = value.item()
        out[key] = value if value is None or isinstance(value, (int, float, str, bool)) else str(value)
    return out


def _ask(channel: str, number: int, metrics: dict[str, Any]) -> bool:
    Queue(channel).put((number, _plain(metrics)))
    try:
        return bool(Variable(f"{channel}-{number}").get(timeout=ANSWER_TIMEOUT_S))
    except TimeoutError:
        return False  # nobody answered: replay on; the study, if still there, records the result


def run_trial(fingerprint: str, key: str, task: TrialTask, code: str, channel: str | None) -> TrialOutcome:
    """Run ``task`` on a worker (the Dask task of one trial) with
    :func:`research.optimize.evaluate_trial`, the function every executor uses.

    Parameters
    ----------
    fingerprint, key
        The study's bars: :func:`data_fingerprint` and the Dask key they were scattered under.
    task
        The trial.
    code
        The study's :func:`code_fingerprint`; a worker whose own differs fails the trial.
    channel
        Name of the study's pruning queue (None when the task has no pruning step).
    """
    if code != code_fingerprint():
        where = distributed.get_worker().address
        return TrialOutcome(error=f"Dask worker {where} runs other tradingd code or library versions than the "
                                  "study (start every worker from the same checkout and virtualenv)")
    data = _bars(fingerprint, key)
    if channel is None or task.prune_fraction is None:
        return evaluate_trial(data, task, lambda metrics: False)
    return evaluate_trial(data, task, lambda metrics: _ask(channel, task.number, metrics))


def _identity() -> dict[str, str]:
    return {"code": code_fingerprint(), "python": platform.python_version()}


# --- in the study's process ------------------------------------------------------------------------

class DaskExecutor:
    """Run a study's trials on the Dask cluster at ``address`` (a
    :class:`research.optimize.TrialExecutor`; ``run_study(dask_address=...)`` builds one).

    Parameters
    ----------
    address
        The scheduler, ``tcp://host:port`` (:func:`parse_dask_address`).
    data
        The study's bars; shipped once to each worker.
    jobs
        Trials in flight: 1 = one per worker thread of the cluster (re-read as workers come and
        go) plus one waiting at the scheduler, so a worker that finishes starts the next trial
        while the study records the last; N > 1 = N (the scheduler queues those beyond the threads).
    connect_timeout_s
        Seconds to reach the scheduler.
    worker_timeout_s
        Seconds to wait for a first worker, and how long the cluster may have none mid-study.

    Raises
    ------
    OptimizeError
        When the scheduler cannot be reached, no worker joins in time, or workers cannot import
        tradingd or run other code than this process.
    """

    poll_s = 2.0
    """How often a wait for results checks that the scheduler and some worker are still there."""

    def __init__(self, address: str, data: StudyData, *, jobs: int = 1, connect_timeout_s: float = 10.0,
                 worker_timeout_s: float = 60.0) -> None:
        self.address = parse_dask_address(address)
        self.jobs = jobs
        self.worker_timeout_s = worker_timeout_s
        self._token = uuid.uuid4().hex[:12]
        self._channel = f"tradingd-prune-{self._token}"
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._running: dict[str, int] = {}  # task key -> trial number
        self._futures: dict[str, Future] = {}
        self._asked: set[int] = set()
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        self._threads = 0
        self._threads_at = -math.inf
        self._no_workers_since: float | None = None
        self._closed = False
        try:
            self._client = Client(self.address, timeout=connect_timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise OptimizeError(f"cannot reach the Dask scheduler at {self.address} within {connect_timeout_s:g} s "
                                f"({type(exc).__name__}: {exc}); start it with `dask scheduler` and check the "
                                "address") from None
        try:
            self._start(data, worker_timeout_s)
        except BaseException:
            self._client.close()
            raise

    def _start(self, data: StudyData, worker_timeout_s: float) -> None:
        try:
            self._client.wait_for_workers(1, timeout=worker_timeout_s)
        except TimeoutError:
            raise OptimizeError(f"no Dask worker joined the scheduler at {self.address} within {worker_timeout_s:g} "
                                f"s; start some with `dask worker {self.address} --nthreads 1`") from None
        self._code = code_fingerprint()
        try:
            identities = self._client.run(_identity)
        except (ImportError, AttributeError) as exc:  # the workers cannot unpickle a reference to this module
            raise OptimizeError(f"the Dask workers of {self.address} cannot import tradingd ({type(exc).__name__}: "
                                f"{exc}); start them from tradingd's virtualenv (.venv/bin/dask worker ...)") from None
        other = sorted(worker for worker, identity in identities.items() if identity.get("code") != self._code)
        if other:
            raise OptimizeError(f"Dask workers {', '.join(other)} run other tradingd code or library versions than "
                                "this process; start every worker from the same checkout and virtualenv")
        self.fingerprint = data_fingerprint(data)
        self._bars = self._client.scatter(ShippedBars(self.fingerprint, data), broadcast=True, hash=True)

    # -- TrialExecutor
    @property
    def slots(self) -> int:
        if self.jobs > 1:
            return self.jobs
        now = time.monotonic()
        if now - self._threads_at > 1.0:  # one scheduler call a second at most
            try:
                workers = self._client.scheduler_info(n_workers=-1).get("workers", {})
            except (OSError, TimeoutError):
                return self._threads + 1  # reconnecting: next() reports a scheduler gone for good
            self._threads = sum(int(w.get("nthreads", 1)) for w in workers.values())
            self._threads_at = now
        return self._threads + 1  # one queued: a worker never waits while the study tells and asks

    def idle(self) -> int:
        return max(0, self.slots - len(self._running))

    def submit(self, task: TrialTask) -> None:
        channel = None
        if task.prune_fraction is not None:
            channel = self._channel
            self._listen()
        key = f"tradingd-trial-{self._token}-{task.number}"
        future = self._client.submit(run_trial, self.fingerprint, self._bars.key, task, self._code, channel, key=key,
                                     pure=False)
        self._running[key] = task.number
        self._futures[key] = future
        future.add_done_callback(lambda done: self._events.put(("done", done)))

    def next(self, on_intermediate: Intermediate) -> tuple[int, TrialOutcome]:
        while True:
            try:
                kind, item = self._events.get(timeout=self.poll_s)
            except queue.Empty:
                self._check_cluster()
                continue
            if kind == "lost":
                raise OptimizeError(item)
            if kind == "ask":
                number, metrics = item
                if number in self._asked or number not in self._running.values():
                    continue  # a rerun after a lost worker finds its answer already set
                self._asked.add(number)
                answer = bool(on_intermediate(number, metrics))
                Variable(f"{self._channel}-{number}", client=self._client).set(answer)
                continue
            key = str(item.key)
            if key not in self._running:
                continue  # cancelled by terminate()
            future = self._futures[key]
            outcome = self._outcome(future)  # raises for a trial the cluster lost: it stays in flight
            number = self._running.pop(key)
            del self._futures[key]
            if number in self._asked:
                self._asked.discard(number)
                Variable(f"{self._channel}-{number}", client=self._client).delete()
            return number, outcome

    def _number_of(self, future: Future) -> int | str:
        key = str(future.key)
        return self._running.get(key, key)

    def _outcome(self, future: Future) -> TrialOutcome:
        if future.status == "finished":
            outcome = future.result()
            if not isinstance(outcome, TrialOutcome):
                return TrialOutcome(error=f"the Dask worker returned a {type(outcome).__name__}, not a trial outcome")
            return outcome
        if future.status == "error":
            exc = future.exception()
            if isinstance(exc, distributed.KilledWorker):
                return TrialOutcome(error=f"the Dask workers running it died ({exc})")
            return TrialOutcome(error=f"on Dask: {type(exc).__name__}: {exc}")
        # cancelled or lost, though we did not cancel it: the cluster dropped it (scheduler restarted?)
        raise OptimizeError(f"lost trial {self._number_of(future)} on the Dask cluster at {self.address} "
                            f"({future.status}: the connection to the scheduler was lost or it restarted); run the "
                            "same command again to resume the study")

    def _check_cluster(self) -> None:
        if self._client.status not in ("running", "connecting"):
            raise OptimizeError(f"lost the Dask scheduler at {self.address} (client {self._client.status}); run "
                                "the same command again to resume the study")
        try:
            workers = self._client.scheduler_info(n_workers=-1).get("workers")
        except (OSError, TimeoutError):
            workers = None  # reconnecting: counts as no worker until the timeout
        if workers:
            self._no_workers_since = None
            return
        now = time.monotonic()
        self._no_workers_since = self._no_workers_since or now
        if now - self._no_workers_since > self.worker_timeout_s:
            raise OptimizeError(f"no Dask worker has been connected to {self.address} for "
                                f"{self.worker_timeout_s:g} s; start some, then run the same command to resume")

    def _listen(self) -> None:
        if self._listener is not None:
            return
        self._listener = threading.Thread(target=self._pump_questions, name="tradingd-dask-prune", daemon=True)
        self._listener.start()

    def _pump_questions(self) -> None:
        """Forward the workers' pruning questions from the study's Dask queue to :meth:`next`."""
        channel = Queue(self._channel, client=self._client)
        while not self._stop.is_set():
            try:
                item = channel.get(timeout=1.0)
            except TimeoutError:
                continue
            except Exception as exc:  # the scheduler is gone; next() reports it
                if not self._stop.is_set():
                    self._events.put(("lost", f"lost the Dask scheduler at {self.address} while pruning "
                                              f"({type(exc).__name__}: {exc}); run the same command again to resume"))
                return
            if item is None:  # close() wakes us
                return
            self._events.put(("ask", tuple(item)))

    def terminate(self) -> None:
        """Cancel the trials in flight (an interrupted study records them ``interrupted``).

        A replay already running on a worker cannot be stopped by Dask; those that reach their
        pruning step find the answer "prune" waiting, so they end there and free the worker.
        """
        futures = list(self._futures.values())
        numbers = list(self._running.values())
        self._running.clear()
        self._futures.clear()
        if not futures or self._closed:
            return
        try:
            self._client.cancel(futures, force=True)
            if self._listener is not None:
                for number in numbers:
                    if number not in self._asked:
                        Variable(f"{self._channel}-{number}", client=self._client).set(True)
        except Exception:  # the scheduler may be what failed
            pass

    def close(self) -> None:
        """Release the shipped bars and the study's queue and disconnect (the cluster keeps running)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        try:
            if self._listener is not None:
                channel = Queue(self._channel, client=self._client)
                channel.put(None)
                self._listener.join(5)
                channel.close()
            self._futures.clear()
            if hasattr(self, "_bars"):
                self._bars.release()
        except Exception:  # closing must not hide why the study ended
            pass
        finally:
            self._client.close()
