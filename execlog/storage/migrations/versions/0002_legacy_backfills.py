"""Legacy backfill ledger and time-ordered JSONL reads.

``legacy_backfills`` records the processes whose entries were checked against (or rebuilt from)
their legacy JSONL, so start-up does that once per process; retention deletes JSONL only of
processes recorded there. The JSONL index gains ``inserted_at``: rows are read by insertion
time, then row id (issue 11).

Revision ID: 0002_legacy_backfills
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_legacy_backfills"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "legacy_backfills",
        sa.Column("execution_process_id", sa.String(36), primary_key=True),
        sa.Column("raw_entries", sa.BigInteger, nullable=False),
        sa.Column("normalized_entries", sa.BigInteger, nullable=False),
        sa.Column("source_bytes", sa.BigInteger, nullable=False),
        sa.Column("malformed_lines", sa.BigInteger, nullable=False),
        sa.Column("checked_at", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_execution_process_logs_execution_time",
        "execution_process_logs",
        ["execution_id", "inserted_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_execution_process_logs_execution_time", "execution_process_logs")
    op.drop_table("legacy_backfills")
