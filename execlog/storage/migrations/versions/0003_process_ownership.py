"""Process ownership: which server runs a process (``server_id``, with a lease per server in
``server_leases``), the child's pid, process group and start time (to stop an orphan safely
after a crash), and how far each channel's entry indexes are durably reserved (so no index is
ever given to different content, not even after kill -9). Issue 10.

Revision ID: 0003_process_ownership
Revises: 0002_legacy_backfills
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_process_ownership"
down_revision = "0002_legacy_backfills"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("execution_processes") as batch:
        batch.add_column(sa.Column("server_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("pid", sa.Integer, nullable=True))
        batch.add_column(sa.Column("pgid", sa.Integer, nullable=True))
        batch.add_column(sa.Column("pid_start_time", sa.BigInteger, nullable=True))
        batch.add_column(
            sa.Column("raw_index_reserved", sa.BigInteger, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column(
                "normalized_index_reserved", sa.BigInteger, nullable=False, server_default="0"
            )
        )
    op.create_table(
        "server_leases",
        sa.Column("server_id", sa.String(36), primary_key=True),
        sa.Column("hostname", sa.Text, nullable=False),
        sa.Column("boot_id", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("server_leases")
    with op.batch_alter_table("execution_processes") as batch:
        for column in (
            "normalized_index_reserved",
            "raw_index_reserved",
            "pid_start_time",
            "pgid",
            "pid",
            "server_id",
        ):
            batch.drop_column(column)
