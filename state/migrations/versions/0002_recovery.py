"""Recovery state: risk state, account snapshot and positions, learner state; runs know their
account; orders keep ``reduce_only``; fills keep ``slippage``.

Revision ID: 0002_recovery
Revises: 0001_initial
Create Date: 2026-11-28

Self-contained like ``0001_initial``. Existing rows stay valid: runs get the account
``"default"`` (the store's default account), orders ``reduce_only = false``, fills ``slippage =
0``. Each account's persisted trading state is copied into ``risk_state`` (the row recovery reads
the state from) with empty causes, so a HALTED account stays HALTED after the upgrade.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_recovery"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str) -> sa.Column:
    return sa.Column(name, sa.String(), nullable=False)


def _double(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Double(), nullable=nullable)


def _json(name: str) -> sa.Column:
    return sa.Column(name, sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                     nullable=False)


def upgrade() -> None:
    """Add the recovery tables and columns; copy each account's trading state into ``risk_state``."""
    with op.batch_alter_table("runs", recreate="never") as batch:
        batch.add_column(sa.Column("account", sa.String(), nullable=False, server_default="default"))
        batch.create_index("ix_runs_account", ["account"])
    with op.batch_alter_table("orders", recreate="never") as batch:
        batch.add_column(sa.Column("reduce_only", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("fills", recreate="never") as batch:
        batch.add_column(sa.Column("slippage", sa.Double(), nullable=False, server_default="0"))

    op.create_table(
        "risk_state",
        _text("account"), _text("state"), _text("reason"), _json("causes"), _double("peak_equity", nullable=True),
        _double("day_start_equity", nullable=True), _ts("day_end", nullable=True),
        _ts("cooldown_until", nullable=True), sa.Column("loss_streak", sa.Integer(), nullable=False), _ts("ts"),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_risk_state")),
    )
    op.create_table(
        "accounts",
        _text("account"), _double("cash"), sa.Column("last_fill_id", sa.BigInteger(), nullable=True),
        _json("last_bar_ts"), _ts("ts"),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_accounts")),
    )
    op.create_table(
        "account_positions",
        _text("account"), _text("symbol"), _double("quantity"), _double("avg_price"), _double("mark"),
        _ts("entry_ts", nullable=True),
        sa.PrimaryKeyConstraint("account", "symbol", name=op.f("pk_account_positions")),
    )
    op.create_table(
        "learner_state",
        _text("account"), _text("symbol"),
        sa.Column("state", sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql"), nullable=False),
        _ts("ts", nullable=True),
        sa.PrimaryKeyConstraint("account", "symbol", name=op.f("pk_learner_state")),
    )

    # PostgreSQL types an untyped literal of INSERT ... SELECT as text, which jsonb does not take
    empty = "CAST('{}' AS JSONB)" if op.get_context().dialect.name == "postgresql" else "'{}'"
    op.execute(f"INSERT INTO risk_state (account, state, reason, causes, loss_streak, ts) "  # noqa: S608 - constant
               f"SELECT account, state, reason, {empty}, 0, updated_at FROM trading_state")


def downgrade() -> None:
    """Drop the recovery tables and columns (their data is lost)."""
    for table in ("learner_state", "account_positions", "accounts", "risk_state"):
        op.drop_table(table)
    with op.batch_alter_table("fills", recreate="never") as batch:
        batch.drop_column("slippage")
    with op.batch_alter_table("orders", recreate="never") as batch:
        batch.drop_column("reduce_only")
    with op.batch_alter_table("runs", recreate="never") as batch:
        batch.drop_index("ix_runs_account")
        batch.drop_column("account")
