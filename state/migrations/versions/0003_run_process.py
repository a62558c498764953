"""Runs record the process writing them (pid, hostname, process start) and a note on how they ended.

Revision ID: 0003_run_process
Revises: 0002_recovery
Create Date: 2026-12-01

Self-contained like the earlier revisions. The new columns are nullable: runs written before this
revision have no process recorded, so they are never taken for stale (a ``running`` one of them
stays as it is until pruned or finished).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_run_process"
down_revision: str | Sequence[str] | None = "0002_recovery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("pid", "hostname", "process_start", "note")


def upgrade() -> None:
    """Add ``runs.pid``, ``runs.hostname``, ``runs.process_start`` and ``runs.note``."""
    # recreate="never": rebuilding ``runs`` on SQLite would cascade-delete every run's rows
    with op.batch_alter_table("runs", recreate="never") as batch:
        batch.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("hostname", sa.String(), nullable=True))
        batch.add_column(sa.Column("process_start", sa.String(), nullable=True))
        batch.add_column(sa.Column("note", sa.String(), nullable=True))


def downgrade() -> None:
    """Drop the columns again (what they held is lost)."""
    with op.batch_alter_table("runs", recreate="never") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
