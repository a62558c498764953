"""``SqlStore``: the SQL adapter of the :class:`core.ports.Store` port (SQLite or PostgreSQL).

Writes of the hot path are buffered and go out in one transaction per :meth:`SqlStore.flush`,
table by table in a fixed order (orders, fills, decisions, trades, equity, risk state, account
snapshot, learner state), each table in arrival order, with Core ``executemany`` statements.
Orders are buffered by id, so a flush writes only the latest state of an order, as an upsert;
the risk state, the account snapshot and each learner state likewise keep only their latest.

Because a flush is one transaction and a fill is buffered together with the order row it
updated (:meth:`SqlStore.save_fill`), a crash can never leave a fill whose order still says
unfilled. Trading state changes, risk state changes and run bookkeeping are committed at once
(after the buffer, in the same transaction, so the order of writes is kept). Reads
(:class:`state.queries.SqlQueries`) see only what was flushed.

Runs record the process writing them (pid, hostname, process start). Opening a store marks the
runs of this host still ``running`` whose process is gone (kill -9, power loss) ``interrupted``
with a note (:attr:`SqlStore.stale_runs`). Opening migrates under an exclusive lock: PostgreSQL's
advisory lock, or for a SQLite file an ``fcntl.flock`` on ``<file>.lock`` beside it, so processes
opening a fresh database at once migrate one after the other.

Rows are mapped to and from ``core`` types in :mod:`state.rows`; table classes never leave
``state/``.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from core.enums import TradingState
from core.events import OrderFilled, TradeClosed, TradingStateChanged
from core.orders import Order
from core.portfolio import Position
from core.ports import Decision, EquitySnapshot
from core.recovery import RestoredPosition, RiskSnapshot
from core.time import to_datetime
from state.config import StoreConfig, mask_url
from state.db import StoreError, create_engine, dumps_json, store_error
from state.migrations import adopt_legacy_version, alembic_config
from state.queries import (ACCOUNT_POSITIONS, ACCOUNT_TABLES, ACCOUNTS, BROKER_ACCOUNTS, DECISIONS, EQUITY, FILLS,
                           JOURNAL, LEARNER_STATE, ORDERS, POSITIONS, RECONCILIATIONS, RISK_STATE, RUN_TABLES, RUNS,
                           TRADES, TRADING_STATE, TRADING_STATE_HISTORY, SqlQueries, binding_dict)
from state.reconcile import ReconcileReport, binding_conflict, check_binding
from state.rows import (decision_row, equity_row, fill_row, order_row, position_row, risk_row, trade_row,
                        value)

RUN_KINDS = ("replay", "live")
_MIGRATION_LOCK = 0x7472_6164_696E_6764  # b"tradingd": the PostgreSQL advisory lock key of migrations
_BINDING_LOCK = 0x7472_6164_6269_6E64  # b"tradbind": bindings of one database are checked one at a time


def process_start(pid: int) -> str | None:
    """Return ``"<boot id>:<start tick>"`` of process ``pid`` (Linux ``/proc``), or ``None`` when it
    does not exist or the platform has no ``/proc``.

    Two processes that ever had the same pid on one host differ in it, so a run whose pid was
    reused by another process is still recognised as orphaned.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: count fields after its last ')'
    fields = stat[stat.rfind(")") + 2:].split()
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None


def process_alive(pid: int, start: str | None) -> bool:
    """Return whether process ``pid`` of this host is running and, when ``start`` (see
    :func:`process_start`) is given and this host can tell, is the same process as then."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    now = process_start(pid)
    return start is None or now is None or now == start


class SqlStore(SqlQueries):
    """Persist runs, orders, fills, decisions, trades, equity, positions and account state.

    Opening connects, runs the Alembic migrations up to ``head`` (a no-op when the schema is
    current; one opener at a time), marks this host's orphaned ``running`` runs ``interrupted``
    (:attr:`stale_runs`) and keeps one engine. Not thread-safe: use one store per thread (the daemon calls
    it from its single engine task). One store writes one account; a second writer of the same
    account at the same time is not supported.

    Parameters
    ----------
    config
        Database URL, batch size and order durability.
    account
        Account this store reads and writes: its runs, trading and risk state, snapshot and
        learner state belong to it. Account state is not scoped to a run, so a halt survives
        restarts and later runs.
    durable_state
        True (the default, and what live trading needs): every trading-state change, and every
        risk snapshot whose state differs from the last one, is committed at once. False (a
        replay, whose account is its own run's and whose rows matter only once the run is
        complete): they are buffered like every other row and reach the database in the next
        flush, in the same order and with the same final rows, instead of costing two commits
        per breaker trip (a breaker-heavy replay trips hundreds of times).

    Raises
    ------
    StoreError
        If the URL is malformed or unsupported, the database cannot be reached, or migrating fails.
    """

    def __init__(self, config: StoreConfig, account: str = "default", *, durable_state: bool = True) -> None:
        self.config = config
        self.account = account
        self.durable_state = durable_state
        self.url = mask_url(config.database_url)
        self._password = ""
        self._run_id: str | None = None
        self._orders: dict[tuple[str, str], dict[str, Any]] = {}
        self._fills: list[dict[str, Any]] = []
        self._decisions: list[dict[str, Any]] = []
        self._journal: list[dict[str, Any]] = []
        self._trades: list[dict[str, Any]] = []
        self._equity: list[dict[str, Any]] = []
        self._risk: dict[str, Any] | None = None
        # durable_state=False: buffered trading-state changes (history rows in order, the latest
        # current-state row, and the latest state-only risk row not yet superseded by a snapshot)
        self._state_history: list[dict[str, Any]] = []
        self._state_row: dict[str, Any] | None = None
        self._state_into_risk: dict[str, Any] | None = None
        # (accounts row, position rows, number of buffered fills the snapshot includes)
        self._account_snapshot: tuple[dict[str, Any], list[dict[str, Any]], int] | None = None
        self._learner: dict[str, dict[str, Any]] = {}
        self._last_risk_state: TradingState | None = None
        self._buffered = 0
        self._engine: Engine | None = None
        self.stale_runs: list[tuple[str, str]] = []
        """(run id, note) of the runs this opening found orphaned and marked ``interrupted``."""
        self._sqlite_file: str | None = None
        try:
            url = make_url(config.database_url)
            self._password = url.password or ""
            self._engine = create_engine(url)
            self._dialect = self._engine.dialect.name
            self._sqlite_file = url.database if self._dialect == "sqlite" and url.database not in (
                None, "", ":memory:") and not url.query.get("uri") else None
            if self._sqlite_file is not None:  # like --out, a new database's folder is created
                Path(self._sqlite_file).parent.mkdir(parents=True, exist_ok=True)
            self._migrate()
        except Exception as exc:  # driver, URL, Alembic and file errors alike
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
            raise self._error("cannot open store", exc) from exc
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        self._insert_order = self._upsert(insert, ORDERS, ("run_id", "client_order_id"), ("created_at",))
        self._insert_position = self._upsert(insert, POSITIONS, ("run_id", "symbol"), ())
        self._insert_state = self._upsert(insert, TRADING_STATE, ("account",), ())
        self._insert_risk = self._upsert(insert, RISK_STATE, ("account",), ())
        self._insert_account = self._upsert(insert, ACCOUNTS, ("account",), ())
        self._insert_learner = self._upsert(insert, LEARNER_STATE, ("account", "symbol"), ())
        self._insert_fill = insert(FILLS).on_conflict_do_nothing(index_elements=["run_id", "fill_id"])
        # a state change on an account without a risk row yet gets one with the breakers' defaults
        state_only = insert(RISK_STATE)
        self._insert_state_into_risk = state_only.on_conflict_do_update(
            index_elements=["account"], set_={name: state_only.excluded[name] for name in ("state", "reason", "ts")})
        try:
            self.stale_runs = self._mark_stale_runs()
        except StoreError:
            self._engine.dispose()
            self._engine = None
            raise

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlStore({self.url!r}, account={self.account!r}, run={self._run_id!r})"

    @property
    def run_id(self) -> str | None:
        """Run that saves are attributed to (set by :meth:`start_run` or :meth:`set_run`)."""
        return self._run_id

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file (as the URL names it), or ``None`` (PostgreSQL, in-memory)."""
        return Path(self._sqlite_file) if self._sqlite_file is not None else None

    @property
    def buffered(self) -> int:
        """Rows waiting for the next flush."""
        return self._buffered

    def close(self) -> None:
        """Flush what is buffered and release the connections; calling it again does nothing.

        Raises
        ------
        StoreError
            If the final flush fails (the connections are released anyway).
        """
        if self._engine is None:
            return
        try:
            self.flush()
        finally:
            self._engine.dispose()
            self._engine = None

    # --- runs --------------------------------------------------------------------------------
    def start_run(self, run_id: str, kind: str, strategy_id: str, params: dict[str, Any], config_hash: str,
                  data_hash: str, started_ns: int) -> None:
        """Record a new run of the store's account (status ``"running"``) and make it the current run.

        The run row records this process (pid, hostname, process start): if the process dies
        without finishing the run, the next store opened on this host marks it ``interrupted``.

        Parameters
        ----------
        run_id
            Unique id of the run.
        kind
            ``"replay"`` or ``"live"``.
        strategy_id, params
            The strategy and its parameters (JSON-serializable; non-finite floats become null).
        config_hash, data_hash
            Fingerprints of the configuration and of the input data.
        started_ns
            Start time, epoch ns UTC.

        Raises
        ------
        ValueError
            If ``kind`` is not ``"replay"`` or ``"live"``.
        StoreError
            If the run already exists or the write fails.
        """
        if kind not in RUN_KINDS:
            raise ValueError(f"run kind must be one of {RUN_KINDS}, got {kind!r}")
        row = {"id": run_id, "account": self.account, "kind": kind, "strategy_id": strategy_id, "params": params,
               "config_hash": config_hash, "data_hash": data_hash, "started_at": to_datetime(started_ns),
               "finished_at": None, "status": "running", "metrics": None, "pid": os.getpid(),
               "hostname": socket.gethostname(), "process_start": process_start(os.getpid()), "note": None}

        def write(conn: Connection) -> None:
            try:
                conn.execute(RUNS.insert(), row)
            except IntegrityError as exc:
                raise StoreError(f"run {run_id!r} already exists in {self.url}") from exc

        self._write(f"start run {run_id!r}", write)
        self._run_id = run_id

    def set_run(self, run_id: str) -> None:
        """Attribute subsequent saves to the existing run ``run_id`` (e.g. a resumed live session).

        Raises
        ------
        StoreError
            If there is no such run, or the lookup fails.
        """
        if self.run(run_id) is None:
            raise StoreError(f"unknown run {run_id!r} in {self.url}")
        self._run_id = run_id

    def finish_run(self, run_id: str, finished_ns: int, status: str, metrics: dict[str, Any],
                   note: str | None = None) -> None:
        """Flush, then record the end of run ``run_id``.

        Parameters
        ----------
        run_id
            The run to close; it stays the current run.
        finished_ns
            End time, epoch ns UTC.
        status
            Free text, e.g. ``"finished"``, ``"failed"``, ``"interrupted"``, ``"stopped"``.
        metrics
            Result metrics (JSON-serializable; non-finite floats become null).
        note
            Why the run ended so, for people (e.g. ``"interrupted by SIGTERM after 12 of 40 bars"``).

        Raises
        ------
        StoreError
            If there is no such run or the write fails.
        """
        values = {"finished_at": to_datetime(finished_ns), "status": status, "metrics": metrics, "note": note}

        def write(conn: Connection) -> None:
            if conn.execute(RUNS.update().where(RUNS.c.id == run_id).values(values)).rowcount != 1:
                raise StoreError(f"unknown run {run_id!r} in {self.url}")

        self._write(f"finish run {run_id!r}", write)

    # --- the Store port ----------------------------------------------------------------------
    def save_order(self, order: Order) -> None:
        """Buffer the current state of ``order`` (upserted by ``(run_id, client_order_id)``).

        With ``durable_orders`` the order (and everything buffered before it) is committed before
        this returns.

        Raises
        ------
        StoreError
            If there is no current run, or a flush this triggers fails.
        """
        self._buffer_order(order)
        if self.config.durable_orders or self._buffered >= self.config.batch_size:
            self.flush()

    def save_fill(self, fill: OrderFilled, order: Order) -> None:
        """Buffer one fill together with ``order`` as the fill left it: both reach the database in
        the same transaction, or neither does.

        ``order`` must already have the fill applied (its ``filled_quantity`` includes
        ``fill.cum_quantity``). A fill whose ``fill_id`` the run already has is ignored when
        written (the order row is still updated). With ``durable_orders`` both are committed
        before this returns.

        Raises
        ------
        StoreError
            If there is no current run, or a flush this triggers fails.
        """
        self._fills.append(fill_row(self._current_run(), fill))
        self._buffered += 1
        self._buffer_order(order)  # before any flush: a flush must never see the fill without it
        if self.config.durable_orders or self._buffered >= self.config.batch_size:
            self.flush()

    def save_decision(self, decision: Decision) -> None:
        """Buffer one decision (audit of an intent: submitted or denied).

        Raises
        ------
        StoreError
            If there is no current run, or a flush this triggers fails.
        """
        self._decisions.append(decision_row(self._current_run(), decision))
        self._added()

    def save_journal(self, seq: int, kind: str, ts_init: int, payload: dict[str, Any], digest: str) -> None:
        """Buffer one journal entry of the current run (see :mod:`state.journal`); written in the
        same transaction as, and before, the rows the event then caused.

        Raises
        ------
        StoreError
            If there is no current run, or a flush this triggers fails.
        """
        self._journal.append({"run_id": self._current_run(), "seq": seq, "kind": kind, "ts_init": ts_init,
                              "payload": payload, "hash": digest})
        self._added()

    def save_trade(self, trade: TradeClosed) -> None:
        """Buffer one closed round trip.

        Raises
        ------
        StoreError
            If there is no current run, or a flush this triggers fails.
        """
        self._trades.append(trade_row(self._current_run(), trade))
        self._added()

    def save_equity(self, snapshot: EquitySnapshot) -> None:
        """Buffer one equity snapshot.

        Raises
        ------
        StoreError
            If there is no current run, or a flush this triggers fails.
        """
        self._equity.append(equity_row(self._current_run(), snapshot))
        self._added()

    def save_trading_state(self, change: TradingStateChanged) -> None:
        """Commit a trading state change now: a history row plus the account's current state.

        Never only buffered (unless the store was opened with ``durable_state=False``): a
        breaker's HALTED must survive a crash. Whatever is buffered is written first, in the same
        transaction. The account's risk state row takes the new state and reason too (created
        with the breakers' defaults if the account had none), so recovery sees an operator's halt
        or re-arm. Needs no current run.

        Raises
        ------
        StoreError
            If the write fails.
        """
        ts = to_datetime(change.ts_init)
        state = value(change.current)
        risk_defaults = risk_row(self.account, RiskSnapshot(state=change.current, reason=change.reason,
                                                            ts=change.ts_init))
        history = {"account": self.account, "previous": value(change.previous), "state": state,
                   "reason": change.reason, "ts": ts}
        current = {"account": self.account, "state": state, "reason": change.reason, "updated_at": ts}
        self._last_risk_state = change.current
        if not self.durable_state:
            self._buffer_state(history, current, risk_defaults)
            return

        def write(conn: Connection) -> None:
            conn.execute(TRADING_STATE_HISTORY.insert(), history)
            conn.execute(self._insert_state, current)
            conn.execute(self._insert_state_into_risk, risk_defaults)

        self._write("save trading state", write)

    def save_risk_state(self, snapshot: RiskSnapshot) -> None:
        """Save the account's circuit-breaker memory (one row per account, upserted).

        Buffered, and only the latest snapshot of each flush is written; but a snapshot whose
        ``state`` differs from the one saved before it (or the first one this store saves) is
        committed at once, with everything buffered before it (not with ``durable_state=False``).
        Needs no current run.

        Raises
        ------
        StoreError
            If a flush this triggers fails.
        """
        if self._risk is None:
            self._buffered += 1
        self._risk = risk_row(self.account, snapshot)
        self._state_into_risk = None  # the snapshot replaces every column a state change set
        changed = snapshot.state != self._last_risk_state and self.durable_state
        self._last_risk_state = snapshot.state
        if changed or self._buffered >= self.config.batch_size:
            self.flush()

    def save_account(self, cash: float, positions: Iterable[RestoredPosition], ts: int, *,
                     last_bar_ts: Mapping[str, int] | None = None) -> None:
        """Save the account's snapshot: cash, open positions and the last bar per symbol.

        Buffered; only the latest snapshot of each flush is written, and it replaces the previous
        one (positions missing from ``positions`` are closed). The snapshot records which fills
        it includes: those saved before this call. Recovery books later fills on top, so a crash
        between a fill and the next snapshot loses nothing. Needs no current run.

        Parameters
        ----------
        cash
            USD.
        positions
            Open positions (signed shares, average entry price and mark USD, entry time ns UTC);
            flat ones are skipped.
        ts
            Epoch ns UTC of the snapshot.
        last_bar_ts
            Symbol -> epoch ns UTC (start) of the last bar the engine accepted.

        Raises
        ------
        StoreError
            If a flush this triggers fails.
        """
        row = {"account": self.account, "cash": cash, "last_fill_id": None,
               "last_bar_ts": dict(last_bar_ts or {}), "ts": to_datetime(ts)}
        rows = [position_row(self.account, p) for p in positions if p.quantity != 0.0]
        if self._account_snapshot is None:
            self._buffered += 1
        self._account_snapshot = (row, rows, len(self._fills))
        if self._buffered >= self.config.batch_size:
            self.flush()

    def save_learner_state(self, symbol: str, state: bytes, ts: int | None = None) -> None:
        """Save the online learner of ``symbol`` (its ``to_bytes()`` payload), one row per
        (account, symbol), upserted. Buffered; only the latest per symbol and flush is written.

        Parameters
        ----------
        symbol
            The learner's symbol.
        state
            The payload.
        ts
            Epoch ns UTC it was taken at (optional).

        Raises
        ------
        TypeError
            If ``state`` is not bytes.
        StoreError
            If a flush this triggers fails.
        """
        if not isinstance(state, (bytes, bytearray, memoryview)):
            raise TypeError(f"learner state of {symbol} must be bytes, got {type(state).__name__}")
        if symbol not in self._learner:
            self._buffered += 1
        self._learner[symbol] = {"account": self.account, "symbol": symbol, "state": bytes(state),
                                 "ts": None if ts is None else to_datetime(ts)}
        if self._buffered >= self.config.batch_size:
            self.flush()

    def save_positions(self, run_id: str, positions: Mapping[str, Position], ts: int) -> None:
        """Commit the holdings of run ``run_id`` as of ``ts`` (epoch ns UTC), one row per symbol
        (the run's result; the account's holdings are :meth:`save_account`).

        Upserts by ``(run_id, symbol)``; symbols missing from ``positions`` keep their last row.
        Whatever is buffered is written first, in the same transaction.

        Raises
        ------
        StoreError
            If the run does not exist or the write fails.
        """
        updated_at = to_datetime(ts)
        rows = [{"run_id": run_id, "symbol": symbol, "quantity": pos.quantity, "avg_price": pos.avg_price,
                 "realized_pnl": pos.realized_pnl, "commission": pos.commission, "updated_at": updated_at}
                for symbol, pos in positions.items()]

        def write(conn: Connection) -> None:
            if rows:
                conn.execute(self._insert_position, rows)

        self._write(f"save positions of run {run_id!r}", write)

    # --- reconciliation and broker binding -----------------------------------------------------
    def save_reconciliation(self, report: ReconcileReport, reason: str, *, account: str | None = None) -> None:
        """Commit one reconciliation result now (with whatever is buffered, in one transaction).

        Parameters
        ----------
        report
            The result (its ``taken_ns`` is the row's time).
        reason
            Why it ran: ``"startup"``, ``"reconnect"``, ``"scheduled"``, ``"cli"``, ...
        account
            Default: the store's account.

        Raises
        ------
        StoreError
            If the write fails.
        """
        counts = report.counts()
        row = {"account": account or self.account, "ts": int(report.taken_ns), "reason": reason, "ok": report.ok,
               "account_number": report.account_number,
               "differences": [d.as_dict() for d in report.differences], "counts": counts}

        def write(conn: Connection) -> None:
            conn.execute(RECONCILIATIONS.insert(), row)

        self._write("save reconciliation", write)

    def bind_broker_account(self, account: str, broker: str, mode: str, number: str | None, *,
                            ts: int | None = None) -> dict[str, Any]:
        """Bind ``account`` to a broker account, once; return the binding (see :meth:`broker_account`).

        Binding the same again changes nothing. Checked and written in one transaction, one
        binder of a database at a time (PostgreSQL advisory lock; SQLite's write lock, taken by
        the insert before the check reads).

        Parameters
        ----------
        account
            tradingd account name.
        broker
            ``"alpaca"`` or ``"paper"`` (the simulated paper broker).
        mode
            ``"paper"`` or ``"live"`` money.
        number
            The broker's account number (``""`` or None for the simulated paper broker).
        ts
            Epoch ns UTC of the first binding (default: now).

        Raises
        ------
        ValueError
            If a value is not allowed (:func:`state.reconcile.check_binding`).
        StoreError
            If the database already holds this account, or any account, bound to the other
            mode, or to another broker account ("paper and live never share a state database";
            the message names both bindings), or the write fails.
        """
        number = number or ""
        check_binding(account, broker, mode, number)
        row = {"account": account, "broker": broker, "mode": mode, "broker_account_number": number,
               "first_seen": time.time_ns() if ts is None else int(ts)}
        insert = (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(BROKER_ACCOUNTS)
        result: dict[str, Any] = {}

        def write(conn: Connection) -> None:
            if self._dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _BINDING_LOCK})
            inserted = conn.execute(insert.on_conflict_do_nothing(index_elements=["account"]), row).rowcount == 1
            rows = [binding_dict(r) for r in conn.execute(sa.select(BROKER_ACCOUNTS)).mappings()]
            others = [r for r in rows if not (inserted and r["account"] == account)]
            problem = binding_conflict(others, account, broker, mode, number, self.url)
            if problem is not None:
                raise StoreError(problem)  # rolls the insert back
            result.update(next(r for r in rows if r["account"] == account))

        self._write(f"bind account {account!r}", write)
        return result

    # --- run management ------------------------------------------------------------------------
    def delete_runs(self, run_ids: Sequence[str]) -> dict[str, int]:
        """Delete runs and every row they own, in one transaction; return what was deleted.

        Deleted with each run: its orders, fills, trades, decisions, equity snapshots and
        positions, and the account state of the run's own account (a replay writes to an account
        named after the run; state of any other account, e.g. a live account's halt, is never
        touched). Running runs are refused: stop them first.

        Parameters
        ----------
        run_ids
            Exact run ids.

        Returns
        -------
        dict[str, int]
            Rows deleted per table (``runs`` included), as :meth:`count_run_rows` counts them.

        Raises
        ------
        StoreError
            If a run does not exist or is running (nothing is deleted then), or the write fails.
        """
        ids = list(dict.fromkeys(run_ids))
        counted: dict[str, int] = {}

        def write(conn: Connection) -> None:
            found = {r.id: r.status for r in conn.execute(sa.select(RUNS.c.id, RUNS.c.status)
                                                          .where(RUNS.c.id.in_(ids)))}
            missing = [i for i in ids if i not in found]
            if missing:
                raise StoreError(f"unknown run {missing[0]!r} in {self.url}")
            running = [i for i in ids if found[i] == "running"]
            if running:
                raise StoreError(f"run {running[0]!r} is running: stop it before deleting it")
            counted.update(self._count_rows(conn, ids))
            own = self._own_accounts(conn, ids)
            for table in RUN_TABLES:
                conn.execute(table.delete().where(table.c.run_id.in_(ids)))
            for table in ACCOUNT_TABLES:
                conn.execute(table.delete().where(table.c.account.in_(own)))
            conn.execute(RUNS.delete().where(RUNS.c.id.in_(ids)))

        if ids:
            self._write(f"delete {len(ids)} runs", write)
        return counted

    def count_run_rows(self, run_ids: Sequence[str]) -> dict[str, int]:
        """Return the rows :meth:`delete_runs` would delete for ``run_ids``, per table: ``runs``,
        the run-scoped tables by name and ``account_state`` (rows of the runs' own accounts).

        Raises
        ------
        StoreError
            If the read fails.
        """
        ids = list(dict.fromkeys(run_ids))
        engine = self._engine_or_raise()
        try:
            with engine.connect() as conn:
                return self._count_rows(conn, ids)
        except SQLAlchemyError as exc:
            raise self._error("read failed", exc) from exc

    def vacuum(self) -> bool:
        """Give the space of deleted rows back to the file system (SQLite ``VACUUM``, then a WAL
        checkpoint, so the file shrinks); return whether it ran.

        PostgreSQL reclaims space with its autovacuum: nothing is done there (``False``). A SQLite
        database another process is writing may stay busy past the busy timeout: then this gives
        up and returns ``False`` (the data is unaffected).

        Raises
        ------
        StoreError
            If the store is closed.
        """
        engine = self._engine_or_raise()
        if self._dialect != "sqlite":
            return False
        self.flush()
        raw = engine.raw_connection()  # VACUUM cannot run in a transaction; the raw connection has none
        try:
            cursor = raw.cursor()
            try:
                cursor.execute("VACUUM")
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                cursor.close()
        except Exception as exc:  # "database is locked": another writer
            if "locked" in str(exc) or "busy" in str(exc):
                return False
            raise self._error("vacuum failed", exc) from exc
        finally:
            raw.close()
        return True

    def flush(self) -> None:
        """Write everything buffered in one transaction (a no-op when nothing is buffered).

        Raises
        ------
        StoreError
            If the write fails; the buffer is kept, so a later flush retries it.
        """
        if self._buffered:
            self._write("flush", lambda conn: None)

    # --- internals ---------------------------------------------------------------------------
    def _migrate(self) -> None:
        assert self._engine is not None
        with self._sqlite_migration_lock(), self._engine.begin() as conn:
            if self._dialect == "postgresql":  # concurrent openers migrate one at a time
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            adopt_legacy_version(conn)  # a database made before 0005 kept it in alembic_version
            command.upgrade(alembic_config(connection=conn), "head")

    @contextmanager
    def _sqlite_migration_lock(self) -> Iterator[None]:
        """Hold an exclusive ``flock`` on ``<file>.lock`` (SQLite files only).

        SQLite's own locks cannot serialize migrations: two openers of a fresh file both read
        the schema version, then one fails to upgrade its read lock ("database is locked"
        without waiting). The first connection's ``PRAGMA journal_mode=WAL`` happens under
        this lock too. The lock goes with the process, so a killed migrator never blocks others.
        """
        if self._sqlite_file is None:
            yield
            return
        fd = os.open(f"{self._sqlite_file}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _mark_stale_runs(self) -> list[tuple[str, str]]:
        """Mark this host's ``running`` runs whose process is gone ``interrupted``; return them."""
        host = socket.gethostname()
        rows = self._read(sa.select(RUNS.c.id, RUNS.c.pid, RUNS.c.process_start)
                          .where(RUNS.c.status == "running", RUNS.c.hostname == host, RUNS.c.pid.is_not(None)))
        stale = [r for r in rows if not process_alive(int(r["pid"]), r["process_start"])]
        if not stale:
            return []
        found = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        marked = []

        def write(conn: Connection) -> None:
            for r in stale:
                note = (f"process {r['pid']} on {host} ended without finishing the run (killed or crashed); "
                        f"found at {found}")
                # only if still running: another opener may have marked it meanwhile
                if conn.execute(RUNS.update().where(RUNS.c.id == r["id"], RUNS.c.status == "running")
                                .values(status="interrupted", note=note)).rowcount:
                    marked.append((str(r["id"]), note))

        self._write("mark stale runs", write)
        return marked

    @staticmethod
    def _count_rows(conn: Connection, ids: Sequence[str]) -> dict[str, int]:
        counts = {"runs": conn.execute(sa.select(sa.func.count()).select_from(RUNS).where(RUNS.c.id.in_(ids))
                                       ).scalar_one()}
        for table in RUN_TABLES:
            counts[table.name] = conn.execute(sa.select(sa.func.count()).select_from(table)
                                              .where(table.c.run_id.in_(ids))).scalar_one()
        own = SqlStore._own_accounts(conn, ids)
        counts["account_state"] = sum(
            conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.account.in_(own))).scalar_one()
            for t in ACCOUNT_TABLES)
        return counts

    @staticmethod
    def _own_accounts(conn: Connection, ids: Sequence[str]) -> list[str]:
        """Accounts of the runs ``ids`` named after their run (a replay's) that no other run uses."""
        own = conn.execute(sa.select(RUNS.c.account).where(RUNS.c.id.in_(ids), RUNS.c.account == RUNS.c.id)
                           ).scalars().all()
        shared = set(conn.execute(sa.select(RUNS.c.account).where(RUNS.c.account.in_(own), RUNS.c.id.not_in(ids))
                                  ).scalars().all())
        return [a for a in own if a not in shared]

    @staticmethod
    def _upsert(insert: Callable[[sa.Table], Any], table: sa.Table, keys: tuple[str, ...],
                keep: tuple[str, ...]) -> Any:
        stmt = insert(table)
        fixed = {"id", *keys, *keep}
        return stmt.on_conflict_do_update(index_elements=list(keys),
                                          set_={c.name: stmt.excluded[c.name] for c in table.c if c.name not in fixed})

    def _current_run(self) -> str:
        if self._run_id is None:
            raise StoreError(f"no current run in {self.url}: call start_run() or set_run() first")
        return self._run_id

    def _buffer_order(self, order: Order) -> None:
        run_id = self._current_run()
        key = (run_id, order.client_order_id)
        if key not in self._orders:
            self._buffered += 1
        self._orders[key] = order_row(run_id, order)

    def _buffer_state(self, history: dict[str, Any], current: dict[str, Any], risk_defaults: dict[str, Any]) -> None:
        """Buffer a trading-state change so the next flush leaves exactly the rows the three
        immediate statements of :meth:`save_trading_state` would have left by then."""
        self._state_history.append(history)
        self._state_row = current  # upserted per account: the latest wins
        # written after the buffered risk snapshot (if any), as the immediate statement came after it;
        # a later snapshot drops it (its row replaces these columns anyway)
        self._state_into_risk = risk_defaults
        self._added()

    def _added(self) -> None:
        self._buffered += 1
        if self._buffered >= self.config.batch_size:
            self.flush()

    def _engine_or_raise(self) -> Engine:
        if self._engine is None:
            raise StoreError(f"store {self.url} is closed")
        return self._engine

    def _write_fills(self, conn: Connection) -> int | None:
        """Insert the buffered fills; return the account snapshot's fill watermark (if one is buffered).

        The watermark is the highest fill id once the fills saved before the snapshot are in:
        ids only grow (a PostgreSQL sequence; SQLite's rowid is max + 1 and fills are never
        deleted), so every fill the snapshot does not include gets a higher one.
        """
        split = len(self._fills) if self._account_snapshot is None else self._account_snapshot[2]
        if split:
            conn.execute(self._insert_fill, self._fills[:split])
        watermark = None
        if self._account_snapshot is not None:
            watermark = conn.execute(sa.select(sa.func.max(FILLS.c.id))).scalar()
        if split < len(self._fills):
            conn.execute(self._insert_fill, self._fills[split:])
        return watermark

    def _write(self, what: str, then: Callable[[Connection], None]) -> None:
        """In one transaction: write the buffer (stable table order), then call ``then``."""
        engine = self._engine_or_raise()
        try:
            with engine.begin() as conn:
                if self._journal:
                    conn.execute(JOURNAL.insert(), self._journal)
                if self._orders:
                    conn.execute(self._insert_order, list(self._orders.values()))
                watermark = self._write_fills(conn)
                if self._decisions:
                    conn.execute(DECISIONS.insert(), self._decisions)
                if self._trades:
                    conn.execute(TRADES.insert(), self._trades)
                if self._equity:
                    conn.execute(EQUITY.insert(), self._equity)
                if self._risk is not None:
                    conn.execute(self._insert_risk, self._risk)
                if self._state_history:
                    conn.execute(TRADING_STATE_HISTORY.insert(), self._state_history)
                if self._state_row is not None:
                    conn.execute(self._insert_state, self._state_row)
                if self._state_into_risk is not None:
                    conn.execute(self._insert_state_into_risk, self._state_into_risk)
                if self._account_snapshot is not None:
                    row, positions, _ = self._account_snapshot
                    conn.execute(self._insert_account, {**row, "last_fill_id": watermark})
                    conn.execute(ACCOUNT_POSITIONS.delete().where(ACCOUNT_POSITIONS.c.account == row["account"]))
                    if positions:
                        conn.execute(ACCOUNT_POSITIONS.insert(), positions)
                if self._learner:
                    conn.execute(self._insert_learner, list(self._learner.values()))
                then(conn)
        except StoreError:
            raise
        except (SQLAlchemyError, TypeError, ValueError) as exc:
            raise self._error(f"{what} failed", exc) from exc
        self._orders = {}
        self._fills, self._decisions, self._trades, self._equity = [], [], [], []
        self._risk, self._account_snapshot, self._learner = None, None, {}
        self._state_history, self._state_row, self._state_into_risk = [], None, None
        self._journal = []
        self._buffered = 0

    def _read(self, query: Any) -> list[Any]:
        engine = self._engine_or_raise()
        try:
            with engine.connect() as conn:
                return list(conn.execute(query).mappings())
        except SQLAlchemyError as exc:
            raise self._error("read failed", exc) from exc

    def _error(self, what: str, exc: BaseException) -> StoreError:
        return store_error(what, exc, url=self.config.database_url, masked_url=self.url, password=self._password)


__all__ = ["RUN_KINDS", "SqlStore", "StoreError", "dumps_json"]
