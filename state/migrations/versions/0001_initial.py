"""Initial schema: runs, orders, fills, trades, decisions, equity snapshots, positions, trading state.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-21

Self-contained on purpose (it does not import ``state.tables``): a migration must keep creating
the schema of its time when the table classes move on.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column:
    """Surrogate key: BIGINT (BIGSERIAL) on PostgreSQL, INTEGER (the rowid) on SQLite."""
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def _run_id(table: str) -> tuple[sa.Column, sa.ForeignKeyConstraint]:
    return (sa.Column("run_id", sa.String(), nullable=False),
            sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f(f"fk_{table}_run_id_runs"), ondelete="CASCADE"))


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str) -> sa.Column:
    return sa.Column(name, sa.String(), nullable=False)


def _double(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Double(), nullable=nullable)


def _json(name: str, nullable: bool) -> sa.Column:
    return sa.Column(name, sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                     nullable=nullable)


def upgrade() -> None:
    """Create every table and index of the store."""
    op.create_table(
        "runs",
        _text("id"), _text("kind"), _text("strategy_id"), _json("params", False), _text("config_hash"),
        _text("data_hash"), _ts("started_at"), _ts("finished_at", nullable=True), _text("status"),
        _json("metrics", True),
        sa.CheckConstraint("kind IN ('replay', 'live')", name=op.f("ck_runs_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index("ix_runs_strategy_id_started_at", "runs", ["strategy_id", "started_at"])

    op.create_table(
        "trading_state",
        _text("account"), _text("state"), _text("reason"), _ts("updated_at"),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_trading_state")),
    )
    op.create_table(
        "trading_state_history",
        _id(), _text("account"), _text("previous"), _text("state"), _text("reason"), _ts("ts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trading_state_history")),
    )
    op.create_index("ix_trading_state_history_account_ts", "trading_state_history", ["account", "ts"])

    run_id, fk = _run_id("decisions")
    op.create_table(
        "decisions",
        _id(), run_id, _ts("ts"), _text("strategy_id"), _text("symbol"), _text("side"), _double("quantity"),
        _text("outcome"), _text("reason"), _text("client_order_id"), _double("confidence", nullable=True),
        _text("regime"),
        fk, sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    op.create_index("ix_decisions_run_id_ts", "decisions", ["run_id", "ts"])

    run_id, fk = _run_id("equity_snapshots")
    op.create_table(
        "equity_snapshots",
        _id(), run_id, _ts("ts"), _double("cash"), _double("equity"), _double("gross_exposure"),
        sa.Column("open_positions", sa.Integer(), nullable=False),
        fk, sa.PrimaryKeyConstraint("id", name=op.f("pk_equity_snapshots")),
    )
    op.create_index("ix_equity_snapshots_run_id_ts", "equity_snapshots", ["run_id", "ts"])

    run_id, fk = _run_id("fills")
    op.create_table(
        "fills",
        _id(), run_id, _text("client_order_id"), _text("fill_id"), _text("symbol"), _text("side"),
        _double("quantity"), _double("price"), _double("cum_quantity"), _double("commission"),
        _ts("ts_event"), _ts("ts_init"),
        fk, sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
        sa.UniqueConstraint("run_id", "fill_id", name=op.f("uq_fills_run_id_fill_id")),
    )
    op.create_index("ix_fills_run_id_client_order_id", "fills", ["run_id", "client_order_id"])

    run_id, fk = _run_id("orders")
    op.create_table(
        "orders",
        _id(), run_id, _text("client_order_id"), _text("strategy_id"), _text("symbol"), _text("side"),
        _double("quantity"), _text("order_type"), _double("limit_price", nullable=True),
        _double("stop_price", nullable=True), _text("time_in_force"), _text("reason"), _text("status"),
        _double("filled_quantity"), _double("avg_fill_price"), _double("commission"), _text("broker_order_id"),
        _ts("created_at"), _ts("updated_at"),
        fk, sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("run_id", "client_order_id", name=op.f("uq_orders_run_id_client_order_id")),
    )
    op.create_index("ix_orders_run_id_status", "orders", ["run_id", "status"])
    op.create_index("ix_orders_broker_order_id", "orders", ["broker_order_id"])

    run_id, fk = _run_id("positions")
    op.create_table(
        "positions",
        _id(), run_id, _text("symbol"), _double("quantity"), _double("avg_price"), _double("realized_pnl"),
        _double("commission"), _ts("updated_at"),
        fk, sa.PrimaryKeyConstraint("id", name=op.f("pk_positions")),
        sa.UniqueConstraint("run_id", "symbol", name=op.f("uq_positions_run_id_symbol")),
    )

    run_id, fk = _run_id("trades")
    op.create_table(
        "trades",
        _id(), run_id, _text("symbol"), _text("side"), _double("quantity"), _ts("entry_ts"), _ts("exit_ts"),
        _double("entry_price"), _double("exit_price"), _double("pnl"), _double("commission"),
        _text("exit_reason"), _ts("ts_init"),
        fk, sa.PrimaryKeyConstraint("id", name=op.f("pk_trades")),
    )
    op.create_index("ix_trades_run_id_exit_ts", "trades", ["run_id", "exit_ts"])


def downgrade() -> None:
    """Drop every table of the store (their indexes go with them), children before ``runs``."""
    for table in ("trades", "positions", "orders", "fills", "equity_snapshots", "decisions",
                  "trading_state_history", "trading_state", "runs"):
        op.drop_table(table)
