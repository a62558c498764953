"""``SqlStore``: the SQL adapter of the :class:`core.ports.Store` port (SQLite or PostgreSQL).

Writes of the hot path (orders, fills, decisions, trades, equity snapshots) are buffered and go
out with Core ``executemany`` inserts in one transaction per :meth:`SqlStore.flush`, table by
table in a fixed order (orders, fills, decisions, trades, equity), each table in arrival order.
Orders are buffered by id, so a flush writes only the latest state of an order, as an upsert.
Trading state changes and run bookkeeping are written at once (after the buffer, in the same
transaction, so the order of writes is kept). Reads see only what was flushed.

Rows are mapped to and from ``core`` types here; table classes never leave ``state/``.
Timestamps are epoch ns UTC outside, UTC ``DateTime`` inside (microsecond precision).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import date, datetime, timezone
from enum import Enum
from pathlib import PurePath
from urllib.parse import quote
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from core.enums import OrderStatus, OrderType, Side, TimeInForce, TradingState
from core.events import OrderFilled, TradeClosed, TradingStateChanged
from core.orders import Order
from core.portfolio import Position
from core.ports import Decision, EquitySnapshot
from core.time import to_datetime, to_nanos
from state.config import StoreConfig, mask_url
from state.migrations import alembic_config
from state.tables import (DecisionRow, EquitySnapshotRow, FillRow, OrderRow, PositionRow, RunRow, TradeRow,
                          TradingStateHistoryRow, TradingStateRow)

RUNS = RunRow.__table__
ORDERS = OrderRow.__table__
FILLS = FillRow.__table__
TRADES = TradeRow.__table__
DECISIONS = DecisionRow.__table__
EQUITY = EquitySnapshotRow.__table__
POSITIONS = PositionRow.__table__
TRADING_STATE = TradingStateRow.__table__
TRADING_STATE_HISTORY = TradingStateHistoryRow.__table__

RUN_KINDS = ("replay", "live")
_MIGRATION_LOCK = 0x7472_6164_696E_6764  # b"tradingd": the PostgreSQL advisory lock key of migrations
_PG_CONNECT_TIMEOUT_S = 10


class StoreError(RuntimeError):
    """The store cannot be opened, or a read or write failed; the message names the database URL
    (password masked) and the cause."""


# --- value mapping ---------------------------------------------------------------------------


def _ns(moment: datetime | None) -> int | None:
    """Epoch ns of a stored UTC datetime (SQLite hands them back naive)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return to_nanos(moment)


def _value(item: Any) -> Any:
    return item.value if isinstance(item, Enum) else item


def _json_safe(obj: Any) -> Any:
    """Copy ``obj`` with non-finite floats as ``None`` (JSON has no NaN; PostgreSQL rejects it)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(_value(k)): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Enum):
        return _json_safe(obj.value)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _json_safe(obj.item())
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, PurePath):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps_json(obj: Any) -> str:
    """Serialize run parameters or metrics for a JSON column.

    Non-finite floats become ``null``; enums their value; numpy scalars Python numbers;
    datetimes ISO text; paths text.

    Raises
    ------
    TypeError
        For any other object JSON cannot represent.

    Examples
    --------
    >>> dumps_json({"sharpe": float("nan"), "n": 3})
    '{"sharpe": null, "n": 3}'
    """
    return json.dumps(_json_safe(obj), default=_json_default, allow_nan=False)


# --- engine ----------------------------------------------------------------------------------


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_on_begin): pysqlite's own transaction
    # handling skips DDL, which would make migrations non-atomic.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def _create_engine(url: URL) -> Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        options: dict[str, Any] = {}
        if url.database in (None, "", ":memory:"):  # one shared connection, or each sees its own db
            options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        engine = sa.create_engine(url, json_serializer=dumps_json, **options)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if backend == "postgresql":
        if "+" not in url.drivername:  # a bare postgresql:// means psycopg 3, whatever SQLAlchemy's default
            url = url.set(drivername="postgresql+psycopg")
        connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": _PG_CONNECT_TIMEOUT_S}
        return sa.create_engine(url, json_serializer=dumps_json, pool_pre_ping=True, connect_args=connect_args)
    raise ArgumentError(f"unsupported database {backend!r}: use sqlite or postgresql+psycopg")


# --- the store -------------------------------------------------------------------------------


class SqlStore:
    """Persist runs, orders, fills, decisions, trades, equity, positions and trading state.

    Opening connects, runs the Alembic migrations up to ``head`` (a no-op when the schema is
    current) and keeps one engine. Not thread-safe: use one store per thread (the daemon calls
    it from its single engine task).

    Parameters
    ----------
    config
        Database URL, batch size and order durability.
    account
        Account whose trading state this store reads and writes; the state is not scoped to a
        run, so a halt survives restarts and later runs.

    Raises
    ------
    StoreError
        If the URL is malformed or unsupported, the database cannot be reached, or migrating fails.
    """

    def __init__(self, config: StoreConfig, account: str = "default") -> None:
        self.config = config
        self.account = account
        self.url = mask_url(config.database_url)
        self._password = ""
        self._run_id: str | None = None
        self._orders: dict[tuple[str, str], dict[str, Any]] = {}
        self._fills: list[dict[str, Any]] = []
        self._decisions: list[dict[str, Any]] = []
        self._trades: list[dict[str, Any]] = []
        self._equity: list[dict[str, Any]] = []
        self._buffered = 0
        self._engine: Engine | None = None
        try:
            url = make_url(config.database_url)
            self._password = url.password or ""
            self._engine = _create_engine(url)
            self._dialect = self._engine.dialect.name
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
        self._insert_fill = insert(FILLS).on_conflict_do_nothing(index_elements=["run_id", "fill_id"])

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
        """Record a new run (status ``"running"``) and make it the current run.

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
        row = {"id": run_id, "kind": kind, "strategy_id": strategy_id, "params": params,
               "config_hash": config_hash, "data_hash": data_hash, "started_at": to_datetime(started_ns),
               "finished_at": None, "status": "running", "metrics": None}

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

    def finish_run(self, run_id: str, finished_ns: int, status: str, metrics: dict[str, Any]) -> None:
        """Flush, then record the end of run ``run_id``.

        Parameters
        ----------
        run_id
            The run to close; it stays the current run.
        finished_ns
            End time, epoch ns UTC.
        status
            Free text, e.g. ``"completed"``, ``"failed"``, ``"stopped"``.
        metrics
            Result metrics (JSON-serializable; non-finite floats become null).

        Raises
        ------
        StoreError
            If there is no such run or the write fails.
        """
        values = {"finished_at": to_datetime(finished_ns), "status": status, "metrics": metrics}

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
        run_id = self._current_run()
        key = (run_id, order.client_order_id)
        if key not in self._orders:
            self._buffered += 1
        self._orders[key] = {
            "run_id": run_id, "client_order_id": order.client_order_id, "strategy_id": order.strategy_id,
            "symbol": order.symbol, "side": _value(order.side), "quantity": order.quantity,
            "order_type": _value(order.order_type), "limit_price": order.limit_price,
            "stop_price": order.stop_price, "time_in_force": _value(order.time_in_force), "reason": order.reason,
            "status": _value(order.status), "filled_quantity": order.filled_quantity,
            "avg_fill_price": order.avg_fill_price, "commission": order.commission,
            "broker_order_id": order.broker_order_id, "created_at": to_datetime(order.ts_created),
            "updated_at": to_datetime(order.ts_last)}
        if self.config.durable_orders or self._buffered >= self.config.batch_size:
            self.flush()

    def save_fill(self, fill: OrderFilled) -> None:
        """Buffer one fill; a fill whose ``fill_id`` the run already has is ignored when written.

        Raises
        ------
        StoreError
            If there is no current run, or a flush this triggers fails.
        """
        self._fills.append({
            "run_id": self._current_run(), "client_order_id": fill.client_order_id, "fill_id": fill.fill_id,
            "symbol": fill.symbol, "side": _value(fill.side), "quantity": fill.quantity, "price": fill.price,
            "cum_quantity": fill.cum_quantity, "commission": fill.commission,
            "ts_event": to_datetime(fill.ts_event), "ts_init": to_datetime(fill.ts_init)})
        self._added()

    def save_decision(self, decision: Decision) -> None:
        """Buffer one decision (audit of an intent: submitted or denied).

        Raises
        ------
        StoreError
            If there is no current run, or a flush this triggers fails.
        """
        self._decisions.append({
            "run_id": self._current_run(), "ts": to_datetime(decision.ts), "strategy_id": decision.strategy_id,
            "symbol": decision.symbol, "side": _value(decision.side), "quantity": decision.quantity,
            "outcome": decision.outcome, "reason": decision.reason, "client_order_id": decision.client_order_id,
            "confidence": decision.confidence, "regime": _value(decision.regime)})
        self._added()

    def save_trade(self, trade: TradeClosed) -> None:
        """Buffer one closed round trip.

        Raises
        ------
        StoreError
            If there is no current run, or a flush this triggers fails.
        """
        self._trades.append({
            "run_id": self._current_run(), "symbol": trade.symbol, "side": _value(trade.side),
            "quantity": trade.quantity, "entry_ts": to_datetime(trade.entry_ts),
            "exit_ts": to_datetime(trade.exit_ts), "entry_price": trade.entry_price,
            "exit_price": trade.exit_price, "pnl": trade.pnl, "commission": trade.commission,
            "exit_reason": trade.exit_reason, "ts_init": to_datetime(trade.ts_init)})
        self._added()

    def save_equity(self, snapshot: EquitySnapshot) -> None:
        """Buffer one equity snapshot.

        Raises
        ------
        StoreError
            If there is no current run, or a flush this triggers fails.
        """
        self._equity.append({
            "run_id": self._current_run(), "ts": to_datetime(snapshot.ts), "cash": snapshot.cash,
            "equity": snapshot.equity, "gross_exposure": snapshot.gross_exposure,
            "open_positions": snapshot.open_positions})
        self._added()

    def save_trading_state(self, change: TradingStateChanged) -> None:
        """Commit a trading state change now: a history row plus the account's current state.

        Never only buffered: a breaker's HALTED must survive a crash. Whatever is buffered is
        written first, in the same transaction. Needs no current run.

        Raises
        ------
        StoreError
            If the write fails.
        """
        ts = to_datetime(change.ts_init)
        state = _value(change.current)

        def write(conn: Connection) -> None:
            conn.execute(TRADING_STATE_HISTORY.insert(), {
                "account": self.account, "previous": _value(change.previous), "state": state,
                "reason": change.reason, "ts": ts})
            conn.execute(self._insert_state, {"account": self.account, "state": state, "reason": change.reason,
                                              "updated_at": ts})

        self._write("save trading state", write)

    def save_positions(self, run_id: str, positions: Mapping[str, Position], ts: int) -> None:
        """Commit the holdings of run ``run_id`` as of ``ts`` (epoch ns UTC), one row per symbol.

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

    def flush(self) -> None:
        """Write everything buffered in one transaction (a no-op when nothing is buffered).

        Raises
        ------
        StoreError
            If the write fails; the buffer is kept, so a later flush retries it.
        """
        if self._buffered:
            self._write("flush", lambda conn: None)

    # --- reads -------------------------------------------------------------------------------
    def load_trading_state(self) -> tuple[TradingState, str] | None:
        """Return the account's last persisted (state, reason), or ``None`` if it never had one.

        Raises
        ------
        StoreError
            If the read fails.
        """
        rows = self._read(sa.select(TRADING_STATE.c.state, TRADING_STATE.c.reason)
                          .where(TRADING_STATE.c.account == self.account))
        return (TradingState(rows[0]["state"]), rows[0]["reason"]) if rows else None

    def trading_state_history(self) -> list[dict[str, Any]]:
        """Return the account's state changes, oldest first: previous, state, reason, ts (ns).

        Raises
        ------
        StoreError
            If the read fails.
        """
        t = TRADING_STATE_HISTORY
        rows = self._read(sa.select(t).where(t.c.account == self.account).order_by(t.c.ts, t.c.id))
        return [{"previous": TradingState(r["previous"]), "state": TradingState(r["state"]), "reason": r["reason"],
                 "ts": _ns(r["ts"])} for r in rows]

    def run(self, run_id: str) -> dict[str, Any] | None:
        """Return run ``run_id`` as a dict (``started_ns``/``finished_ns`` epoch ns), or ``None``.

        Raises
        ------
        StoreError
            If the read fails.
        """
        rows = self._read(sa.select(RUNS).where(RUNS.c.id == run_id))
        if not rows:
            return None
        r = rows[0]
        return {"id": r["id"], "kind": r["kind"], "strategy_id": r["strategy_id"], "params": r["params"],
                "config_hash": r["config_hash"], "data_hash": r["data_hash"], "started_ns": _ns(r["started_at"]),
                "finished_ns": _ns(r["finished_at"]), "status": r["status"], "metrics": r["metrics"]}

    def orders(self, run_id: str) -> list[dict[str, Any]]:
        """Return the orders of ``run_id`` in creation order, keyed like :class:`core.orders.Order`
        (``ts_created``/``ts_last`` epoch ns; enums as ``core.enums`` members).

        Raises
        ------
        StoreError
            If the read fails.
        """
        rows = self._read(sa.select(ORDERS).where(ORDERS.c.run_id == run_id).order_by(ORDERS.c.created_at, ORDERS.c.id))
        return [{"run_id": r["run_id"], "client_order_id": r["client_order_id"], "strategy_id": r["strategy_id"],
                 "symbol": r["symbol"], "side": Side(r["side"]), "quantity": r["quantity"],
                 "order_type": OrderType(r["order_type"]), "limit_price": r["limit_price"],
                 "stop_price": r["stop_price"], "time_in_force": TimeInForce(r["time_in_force"]),
                 "reason": r["reason"], "status": OrderStatus(r["status"]), "filled_quantity": r["filled_quantity"],
                 "avg_fill_price": r["avg_fill_price"], "commission": r["commission"],
                 "broker_order_id": r["broker_order_id"], "ts_created": _ns(r["created_at"]),
                 "ts_last": _ns(r["updated_at"])} for r in rows]

    def fills(self, run_id: str) -> list[dict[str, Any]]:
        """Return the fills of ``run_id`` in the order they were saved, keyed like
        :class:`core.events.OrderFilled` plus ``run_id`` (``ts_event``/``ts_init`` epoch ns).

        Raises
        ------
        StoreError
            If the read fails.
        """
        rows = self._read(sa.select(FILLS).where(FILLS.c.run_id == run_id).order_by(FILLS.c.id))
        return [{"run_id": r["run_id"], "client_order_id": r["client_order_id"], "fill_id": r["fill_id"],
                 "symbol": r["symbol"], "side": Side(r["side"]), "quantity": r["quantity"], "price": r["price"],
                 "cum_quantity": r["cum_quantity"], "commission": r["commission"], "ts_event": _ns(r["ts_event"]),
                 "ts_init": _ns(r["ts_init"])} for r in rows]

    def trades(self, run_id: str) -> list[TradeClosed]:
        """Return the closed trades of ``run_id`` ordered by exit time, then save order.

        Raises
        ------
        StoreError
            If the read fails.
        """
        rows = self._read(sa.select(TRADES).where(TRADES.c.run_id == run_id).order_by(TRADES.c.exit_ts, TRADES.c.id))
        return [TradeClosed(r["symbol"], Side(r["side"]), r["quantity"], _ns(r["entry_ts"]), _ns(r["exit_ts"]),
                            r["entry_price"], r["exit_price"], r["pnl"], r["commission"], r["exit_reason"],
                            _ns(r["ts_init"])) for r in rows]

    def decisions(self, run_id: str) -> list[Decision]:
        """Return the decisions of ``run_id`` ordered by time, then save order.

        Raises
        ------
        StoreError
            If the read fails.
        """
        t = DECISIONS
        rows = self._read(sa.select(t).where(t.c.run_id == run_id).order_by(t.c.ts, t.c.id))
        return [Decision(_ns(r["ts"]), r["strategy_id"], r["symbol"], Side(r["side"]), r["quantity"], r["outcome"],
                         r["reason"], r["client_order_id"], r["confidence"], r["regime"]) for r in rows]

    def equity(self, run_id: str) -> list[EquitySnapshot]:
        """Return the equity snapshots of ``run_id`` ordered by time, then save order.

        Raises
        ------
        StoreError
            If the read fails.
        """
        rows = self._read(sa.select(EQUITY).where(EQUITY.c.run_id == run_id).order_by(EQUITY.c.ts, EQUITY.c.id))
        return [EquitySnapshot(_ns(r["ts"]), r["cash"], r["equity"], r["gross_exposure"], r["open_positions"])
                for r in rows]

    def positions(self, run_id: str) -> list[dict[str, Any]]:
        """Return the saved holdings of ``run_id`` by symbol: symbol, quantity (signed shares),
        avg_price, realized_pnl, commission (USD) and ts (epoch ns of the save).

        Raises
        ------
        StoreError
            If the read fails.
        """
        rows = self._read(sa.select(POSITIONS).where(POSITIONS.c.run_id == run_id).order_by(POSITIONS.c.symbol))
        return [{"symbol": r["symbol"], "quantity": r["quantity"], "avg_price": r["avg_price"],
                 "realized_pnl": r["realized_pnl"], "commission": r["commission"], "ts": _ns(r["updated_at"])}
                for r in rows]

    # --- internals ---------------------------------------------------------------------------
    def _migrate(self) -> None:
        assert self._engine is not None
        with self._engine.begin() as conn:
            if self._dialect == "postgresql":  # concurrent openers migrate one at a time
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            command.upgrade(alembic_config(connection=conn), "head")

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

    def _added(self) -> None:
        self._buffered += 1
        if self._buffered >= self.config.batch_size:
            self.flush()

    def _engine_or_raise(self) -> Engine:
        if self._engine is None:
            raise StoreError(f"store {self.url} is closed")
        return self._engine

    def _write(self, what: str, then: Callable[[Connection], None]) -> None:
        """In one transaction: write the buffer (stable table order), then call ``then``."""
        engine = self._engine_or_raise()
        try:
            with engine.begin() as conn:
                if self._orders:
                    conn.execute(self._insert_order, list(self._orders.values()))
                if self._fills:
                    conn.execute(self._insert_fill, self._fills)
                if self._decisions:
                    conn.execute(DECISIONS.insert(), self._decisions)
                if self._trades:
                    conn.execute(TRADES.insert(), self._trades)
                if self._equity:
                    conn.execute(EQUITY.insert(), self._equity)
                then(conn)
        except StoreError:
            raise
        except (SQLAlchemyError, TypeError, ValueError) as exc:
            raise self._error(f"{what} failed", exc) from exc
        self._orders = {}
        self._fills, self._decisions, self._trades, self._equity = [], [], [], []
        self._buffered = 0

    def _read(self, query: Any) -> list[Any]:
        engine = self._engine_or_raise()
        try:
            with engine.connect() as conn:
                return list(conn.execute(query).mappings())
        except SQLAlchemyError as exc:
            raise self._error("read failed", exc) from exc

    def _error(self, what: str, exc: BaseException) -> StoreError:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        text = " ".join(line.strip() for line in cause[:3]) or type(exc).__name__
        text = text.replace(self.config.database_url, self.url)
        if len(self._password) >= 3:  # shorter ones would garble the text; they are no secret anyway
            text = text.replace(self._password, "***").replace(quote(self._password, safe=""), "***")
        return StoreError(f"{what}: {self.url}: {type(exc).__name__}: {text}")


__all__ = ["SqlStore", "StoreError", "RUN_KINDS", "dumps_json"]
