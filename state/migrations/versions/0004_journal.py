"""The live session's event journal: every inbound event, in order, hash-chained.

Revision ID: 0004_journal
Revises: 0003_run_process
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004_journal"
down_revision: str | Sequence[str] | None = "0003_run_process"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Create ``journal``."""
    op.create_table(
        "journal",
        sa.Column("id", _ID, nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("ts_init", sa.BigInteger(), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_journal_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal")),
        sa.UniqueConstraint("run_id", "seq", name=op.f("uq_journal_run_id_seq")),
    )


def downgrade() -> None:
    """Drop ``journal`` (its entries are lost)."""
    op.drop_table("journal")
