"""Reconciliations with the broker, and the broker account each account is bound to.

Revision ID: 0005_reconciliation
Revises: 0004_journal
Create Date: 2026-12-01

Self-contained like the earlier revisions. Only new tables: rows written before stay as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005_reconciliation"
down_revision: str | Sequence[str] | None = "0004_journal"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Create ``reconciliations`` and ``broker_accounts``."""
    op.create_table(
        "reconciliations",
        sa.Column("id", _ID, nullable=False),
        sa.Column("account", sa.String(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("account_number", sa.String(), nullable=False),
        sa.Column("differences", _JSON, nullable=False),
        sa.Column("counts", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliations")),
    )
    op.create_index("ix_reconciliations_account_ts", "reconciliations", ["account", "ts"])
    op.create_table(
        "broker_accounts",
        sa.Column("account", sa.String(), nullable=False),
        sa.Column("broker", sa.String(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("broker_account_number", sa.String(), nullable=False),
        sa.Column("first_seen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("broker IN ('alpaca', 'paper')", name=op.f("ck_broker_accounts_broker")),
        sa.CheckConstraint("mode IN ('paper', 'live')", name=op.f("ck_broker_accounts_mode")),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_broker_accounts")),
    )


def downgrade() -> None:
    """Drop both tables (the reconciliation history and the bindings are lost)."""
    op.drop_table("broker_accounts")
    op.drop_index("ix_reconciliations_account_ts", table_name="reconciliations")
    op.drop_table("reconciliations")
