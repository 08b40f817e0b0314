"""Initial schema: sessions, processes, turns, legacy JSONL logs, indexed log entries.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("executor", sa.String(32), nullable=False),
        sa.Column("working_dir", sa.Text, nullable=True),
        sa.Column("setup_script", sa.Text, nullable=True),
        sa.Column("cleanup_script", sa.Text, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "execution_processes",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("session_id", sa.String(36), sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("run_reason", sa.String(32), nullable=False),
        sa.Column("executor_action", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("completed_at", sa.BigInteger, nullable=True),
    )
    op.create_index(
        "ix_execution_processes_session", "execution_processes", ["session_id", "started_at"]
    )
    op.create_index("ix_execution_processes_status", "execution_processes", ["status"])
    op.create_table(
        "coding_agent_turns",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "execution_process_id",
            sa.String(36),
            sa.ForeignKey("execution_processes.id"),
            nullable=False,
            unique=True,
        ),
        sa.Column("agent_session_id", sa.Text, nullable=True),
        sa.Column("prompt", sa.Text, nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "execution_process_logs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("logs", sa.Text, nullable=False),
        sa.Column("byte_size", sa.Integer, nullable=False),
        sa.Column("inserted_at", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_execution_process_logs_execution", "execution_process_logs", ["execution_id", "id"]
    )
    op.create_table(
        "execution_process_log_entries",
        sa.Column("execution_process_id", sa.String(36), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("entry_index", sa.BigInteger, nullable=False),
        sa.Column("entry_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("execution_process_id", "channel", "entry_index"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("execution_process_log_entries")
    op.drop_index("ix_execution_process_logs_execution", "execution_process_logs")
    op.drop_table("execution_process_logs")
    op.drop_table("coding_agent_turns")
    op.drop_index("ix_execution_processes_status", "execution_processes")
    op.drop_index("ix_execution_processes_session", "execution_processes")
    op.drop_table("execution_processes")
    op.drop_table("sessions")
