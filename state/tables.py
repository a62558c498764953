"""SQLModel table classes of the store (private to ``state/``: they never leave this package).

Every timestamp column is a timezone-aware ``DateTime`` holding UTC (converted from the epoch
nanoseconds used everywhere else; precision is one microsecond). Money columns are USD,
quantities shares, both double precision. Enumerations are stored as their string values.

The tables live in their own :class:`sqlalchemy.MetaData` (:data:`METADATA`) with a naming
convention, so constraint and index names are identical on SQLite and PostgreSQL and Alembic
can compare and drop them by name. Migrations ``0001_initial`` + ``0002_recovery`` +
``0003_run_process`` + ``0004_journal`` + ``0005_reconciliation`` create exactly this metadata; any change here needs a new migration (``tests/state/test_migrations.py`` checks
they agree). Columns added by a later migration carry a ``server_default`` so rows written before
it stay valid.

Run-scoped tables (orders, fills, trades, ...) reach their account through ``runs.account``;
account-scoped tables (risk state, account snapshot, positions, learner state) are keyed by the
account, so they survive runs and restarts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BYTEA, JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

METADATA = sa.MetaData(naming_convention=NAMING_CONVENTION)
"""The store's schema (kept apart from ``SQLModel.metadata``)."""

# 64-bit surrogate keys; SQLite only auto-increments an ``INTEGER PRIMARY KEY`` (its rowid).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)
DOUBLE: sa.Double[float] = sa.Double()
JSON_DOC = sa.JSON().with_variant(JSONB(), "postgresql")
TEXT = sa.String()
BYTES = sa.LargeBinary().with_variant(BYTEA(), "postgresql")
RUN_FK = "runs.id"
DEFAULT_ACCOUNT = "default"


class _Table(SQLModel, registry=registry(metadata=METADATA)):
    """Abstract base binding the tables to :data:`METADATA`."""


class RunRow(_Table, table=True):
    """One replay or live session (``kind``) of one strategy with its parameters and results.

    ``status`` is ``"running"`` until the run ends: ``"finished"``, ``"failed"``, ``"interrupted"``
    (stopped by a signal, or found ``running`` after its process died) or another word of the
    writer's. ``pid``, ``hostname`` and ``process_start`` identify the process that writes a
    running run, so a later opener can tell a run whose process is gone (kill -9) from a live
    one; ``note`` says why a run ended as it did (e.g. which signal, after how many bars).
    """

    __tablename__ = "runs"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('replay', 'live')", name="kind"),
        sa.Index("ix_runs_strategy_id_started_at", "strategy_id", "started_at"),
        sa.Index("ix_runs_account", "account"),
    )

    id: str = Field(primary_key=True, sa_type=TEXT)
    # the account the run traded (recovery finds an account's orders and fills through it)
    account: str = Field(sa_type=TEXT, sa_column_kwargs={"server_default": DEFAULT_ACCOUNT})
    kind: str = Field(sa_type=TEXT)
    strategy_id: str = Field(sa_type=TEXT)
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSON_DOC)
    config_hash: str = Field(sa_type=TEXT)
    data_hash: str = Field(sa_type=TEXT)
    started_at: datetime = Field(sa_type=UTC_DATETIME)
    finished_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
    status: str = Field(sa_type=TEXT)
    metrics: dict[str, Any] | None = Field(default=None, sa_type=JSON_DOC)
    pid: int | None = Field(default=None, sa_type=sa.Integer)
    hostname: str | None = Field(default=None, sa_type=TEXT)
    # "<boot id>:<start tick>" of the writing process (Linux), to tell a reused pid from the writer
    process_start: str | None = Field(default=None, sa_type=TEXT)
    note: str | None = Field(default=None, sa_type=TEXT)


class OrderRow(_Table, table=True):
    """Latest known state of one order; ``(run_id, client_order_id)`` is unique (upsert target)."""

    __tablename__ = "orders"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "client_order_id"),
        sa.Index("ix_orders_run_id_status", "run_id", "status"),
        sa.Index("ix_orders_broker_order_id", "broker_order_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    run_id: str = Field(foreign_key=RUN_FK, ondelete="CASCADE", sa_type=TEXT)
    client_order_id: str = Field(sa_type=TEXT)
    strategy_id: str = Field(sa_type=TEXT)
    symbol: str = Field(sa_type=TEXT)
    side: str = Field(sa_type=TEXT)
    quantity: float = Field(sa_type=DOUBLE)
    order_type: str = Field(sa_type=TEXT)
    limit_price: float | None = Field(default=None, sa_type=DOUBLE)
    stop_price: float | None = Field(default=None, sa_type=DOUBLE)
    time_in_force: str = Field(sa_type=TEXT)
    reduce_only: bool = Field(sa_type=sa.Boolean, sa_column_kwargs={"server_default": sa.false()})
    reason: str = Field(sa_type=TEXT)
    status: str = Field(sa_type=TEXT)
    filled_quantity: float = Field(sa_type=DOUBLE)
    avg_fill_price: float = Field(sa_type=DOUBLE)
    commission: float = Field(sa_type=DOUBLE)
    broker_order_id: str = Field(sa_type=TEXT)
    created_at: datetime = Field(sa_type=UTC_DATETIME)
    updated_at: datetime = Field(sa_type=UTC_DATETIME)


class FillRow(_Table, table=True):
    """One (partial) fill; ``(run_id, fill_id)`` is unique, so a replayed report is ignored."""

    __tablename__ = "fills"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "fill_id"),
        sa.Index("ix_fills_run_id_client_order_id", "run_id", "client_order_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    run_id: str = Field(foreign_key=RUN_FK, ondelete="CASCADE", sa_type=TEXT)
    client_order_id: str = Field(sa_type=TEXT)
    fill_id: str = Field(sa_type=TEXT)
    symbol: str = Field(sa_type=TEXT)
    side: str = Field(sa_type=TEXT)
    quantity: float = Field(sa_type=DOUBLE)
    price: float = Field(sa_type=DOUBLE)
    cum_quantity: float = Field(sa_type=DOUBLE)
    commission: float = Field(sa_type=DOUBLE)
    slippage: float = Field(sa_type=DOUBLE, sa_column_kwargs={"server_default": "0"})
    ts_event: datetime = Field(sa_type=UTC_DATETIME)
    ts_init: datetime = Field(sa_type=UTC_DATETIME)


class TradeRow(_Table, table=True):
    """One closed round trip (:class:`core.events.TradeClosed`); P&L USD net of commission."""

    __tablename__ = "trades"
    __table_args__ = (sa.Index("ix_trades_run_id_exit_ts", "run_id", "exit_ts"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    run_id: str = Field(foreign_key=RUN_FK, ondelete="CASCADE", sa_type=TEXT)
    symbol: str = Field(sa_type=TEXT)
    side: str = Field(sa_type=TEXT)
    quantity: float = Field(sa_type=DOUBLE)
    entry_ts: datetime = Field(sa_type=UTC_DATETIME)
    exit_ts: datetime = Field(sa_type=UTC_DATETIME)
    entry_price: float = Field(sa_type=DOUBLE)
    exit_price: float = Field(sa_type=DOUBLE)
    pnl: float = Field(sa_type=DOUBLE)
    commission: float = Field(sa_type=DOUBLE)
    exit_reason: str = Field(sa_type=TEXT)
    ts_init: datetime = Field(sa_type=UTC_DATETIME)


class DecisionRow(_Table, table=True):
    """What the engine decided about one intent (:class:`core.ports.Decision`)."""

    __tablename__ = "decisions"
    __table_args__ = (sa.Index("ix_decisions_run_id_ts", "run_id", "ts"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    run_id: str = Field(foreign_key=RUN_FK, ondelete="CASCADE", sa_type=TEXT)
    ts: datetime = Field(sa_type=UTC_DATETIME)
    strategy_id: str = Field(sa_type=TEXT)
    symbol: str = Field(sa_type=TEXT)
    side: str = Field(sa_type=TEXT)
    quantity: float = Field(sa_type=DOUBLE)
    outcome: str = Field(sa_type=TEXT)
    reason: str = Field(sa_type=TEXT)
    client_order_id: str = Field(sa_type=TEXT)
    confidence: float | None = Field(default=None, sa_type=DOUBLE)
    regime: str = Field(sa_type=TEXT)


class JournalRow(_Table, table=True):
    """One inbound event a live session handed its engine, in order, hash-chained.

    ``seq`` counts from 0 per run (entry 0 is the session start: spec and restored state);
    ``payload`` is the event as JSON (:mod:`state.journal`); ``hash`` = sha256 of the previous
    entry's hash and this entry's kind and payload, so an edited, missing or reordered entry is
    detected. ``ts_init`` is exact epoch ns (BigInteger, not a datetime: no precision lost).
    """

    __tablename__ = "journal"
    __table_args__ = (sa.UniqueConstraint("run_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    run_id: str = Field(foreign_key=RUN_FK, ondelete="CASCADE", sa_type=TEXT)
    seq: int = Field(sa_type=sa.BigInteger)
    kind: str = Field(sa_type=TEXT)
    ts_init: int = Field(sa_type=sa.BigInteger)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON_DOC)
    hash: str = Field(sa_type=TEXT)


class EquitySnapshotRow(_Table, table=True):
    """Account value at one time (:class:`core.ports.EquitySnapshot`), USD."""

    __tablename__ = "equity_snapshots"
    __table_args__ = (sa.Index("ix_equity_snapshots_run_id_ts", "run_id", "ts"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    run_id: str = Field(foreign_key=RUN_FK, ondelete="CASCADE", sa_type=TEXT)
    ts: datetime = Field(sa_type=UTC_DATETIME)
    cash: float = Field(sa_type=DOUBLE)
    equity: float = Field(sa_type=DOUBLE)
    gross_exposure: float = Field(sa_type=DOUBLE)
    open_positions: int = Field(sa_type=sa.Integer)


class PositionRow(_Table, table=True):
    """Holding in one symbol at the end of a run (its result); one row per ``(run_id, symbol)``,
    upserted. The account's live holdings are :class:`AccountPositionRow`."""

    __tablename__ = "positions"
    __table_args__ = (sa.UniqueConstraint("run_id", "symbol"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    run_id: str = Field(foreign_key=RUN_FK, ondelete="CASCADE", sa_type=TEXT)
    symbol: str = Field(sa_type=TEXT)
    quantity: float = Field(sa_type=DOUBLE)
    avg_price: float = Field(sa_type=DOUBLE)
    realized_pnl: float = Field(sa_type=DOUBLE)
    commission: float = Field(sa_type=DOUBLE)
    updated_at: datetime = Field(sa_type=UTC_DATETIME)


class TradingStateRow(_Table, table=True):
    """Current risk state of one account (not of a run: a halt survives restarts and runs)."""

    __tablename__ = "trading_state"

    account: str = Field(primary_key=True, sa_type=TEXT)
    state: str = Field(sa_type=TEXT)
    reason: str = Field(sa_type=TEXT)
    updated_at: datetime = Field(sa_type=UTC_DATETIME)


class TradingStateHistoryRow(_Table, table=True):
    """Every trading state change of every account, in order."""

    __tablename__ = "trading_state_history"
    __table_args__ = (sa.Index("ix_trading_state_history_account_ts", "account", "ts"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    account: str = Field(sa_type=TEXT)
    previous: str = Field(sa_type=TEXT)
    state: str = Field(sa_type=TEXT)
    reason: str = Field(sa_type=TEXT)
    ts: datetime = Field(sa_type=UTC_DATETIME)


class RiskStateRow(_Table, table=True):
    """The circuit breakers' memory of one account (:class:`core.recovery.RiskSnapshot`), upserted.

    ``day_end`` and ``cooldown_until`` are NULL where the snapshot says -1 (none). A trading
    state change (:class:`TradingStateRow`) also updates ``state`` and ``reason`` here, so this row
    is the one source recovery reads the state from.
    """

    __tablename__ = "risk_state"

    account: str = Field(primary_key=True, sa_type=TEXT)
    state: str = Field(sa_type=TEXT)
    reason: str = Field(sa_type=TEXT)
    causes: dict[str, Any] = Field(default_factory=dict, sa_type=JSON_DOC)
    peak_equity: float | None = Field(default=None, sa_type=DOUBLE)
    day_start_equity: float | None = Field(default=None, sa_type=DOUBLE)
    day_end: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
    cooldown_until: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
    loss_streak: int = Field(sa_type=sa.Integer)
    ts: datetime = Field(sa_type=UTC_DATETIME)


class AccountRow(_Table, table=True):
    """Latest cash snapshot of one account (USD), upserted.

    ``last_fill_id`` is the watermark: the snapshot (with its :class:`AccountPositionRow` rows)
    includes exactly the account's fills with ``fills.id <= last_fill_id`` (NULL: none), so
    recovery books the later ones on top and a crash between a fill and the next snapshot loses
    nothing. ``last_bar_ts`` maps symbol -> epoch ns of the last bar the engine accepted.
    """

    __tablename__ = "accounts"

    account: str = Field(primary_key=True, sa_type=TEXT)
    cash: float = Field(sa_type=DOUBLE)
    last_fill_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    last_bar_ts: dict[str, Any] = Field(default_factory=dict, sa_type=JSON_DOC)
    ts: datetime = Field(sa_type=UTC_DATETIME)


class AccountPositionRow(_Table, table=True):
    """One open position of an account as of its :class:`AccountRow` snapshot (replaced with it).

    ``quantity`` signed shares, ``avg_price`` and ``mark`` USD per share, ``entry_ts`` the first
    entry fill of the open trade.
    """

    __tablename__ = "account_positions"

    account: str = Field(primary_key=True, sa_type=TEXT)
    symbol: str = Field(primary_key=True, sa_type=TEXT)
    quantity: float = Field(sa_type=DOUBLE)
    avg_price: float = Field(sa_type=DOUBLE)
    mark: float = Field(sa_type=DOUBLE)
    entry_ts: datetime | None = Field(default=None, sa_type=UTC_DATETIME)


class LearnerStateRow(_Table, table=True):
    """The online learner of one (account, symbol): its ``to_bytes()`` payload, upserted."""

    __tablename__ = "learner_state"

    account: str = Field(primary_key=True, sa_type=TEXT)
    symbol: str = Field(primary_key=True, sa_type=TEXT)
    state: bytes = Field(sa_type=BYTES)
    ts: datetime | None = Field(default=None, sa_type=UTC_DATETIME)


class ReconciliationRow(_Table, table=True):
    """One reconciliation of an account with its broker (``state.reconcile.ReconcileReport``).

    ``ts`` is the broker snapshot's time, exact epoch ns; ``reason`` why it ran (``"startup"``,
    ``"reconnect"``, ``"scheduled"``, ``"cli"``, ...); ``ok`` no unexplained difference;
    ``differences`` the list of differences (``Difference.as_dict``); ``counts`` per kind and
    the id lists' lengths (``ReconcileReport.counts``).
    """

    __tablename__ = "reconciliations"
    __table_args__ = (sa.Index("ix_reconciliations_account_ts", "account", "ts"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    account: str = Field(sa_type=TEXT)
    ts: int = Field(sa_type=sa.BigInteger)
    reason: str = Field(sa_type=TEXT)
    ok: bool = Field(sa_type=sa.Boolean)
    account_number: str = Field(sa_type=TEXT)
    differences: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON_DOC)
    counts: dict[str, Any] = Field(default_factory=dict, sa_type=JSON_DOC)


class BrokerAccountRow(_Table, table=True):
    """Which broker account an account of this database trades: ``broker`` (``"alpaca"`` or the
    simulated ``"paper"``), ``mode`` (``"paper"`` or ``"live"`` money), the broker's account
    number and when it was first bound (epoch ns). Paper and live never share a database."""

    __tablename__ = "broker_accounts"
    __table_args__ = (
        sa.CheckConstraint("broker IN ('alpaca', 'paper')", name="broker"),
        sa.CheckConstraint("mode IN ('paper', 'live')", name="mode"),
    )

    account: str = Field(primary_key=True, sa_type=TEXT)
    broker: str = Field(sa_type=TEXT)
    mode: str = Field(sa_type=TEXT)
    broker_account_number: str = Field(sa_type=TEXT)
    first_seen: int = Field(sa_type=sa.BigInteger)


__all__ = ["METADATA", "NAMING_CONVENTION", "DEFAULT_ACCOUNT", "RunRow", "OrderRow", "FillRow", "TradeRow",
           "DecisionRow", "EquitySnapshotRow", "PositionRow", "TradingStateRow", "TradingStateHistoryRow",
           "RiskStateRow", "AccountRow", "AccountPositionRow", "LearnerStateRow", "ReconciliationRow",
           "BrokerAccountRow"]
