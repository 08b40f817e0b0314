"""SQLAlchemy Core tables. Names of the contract's tables are fixed (CONTRACT.md, "Storage").

Ids are canonical UUID text. Timestamps are integer milliseconds since the epoch: no per-row
type conversion on the hot log tables, the same representation on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

__all__ = [
    "metadata",
    "sessions",
    "execution_processes",
    "coding_agent_turns",
    "execution_process_logs",
    "execution_process_log_entries",
    "legacy_backfills",
    "server_leases",
]

metadata = MetaData()

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("executor", String(32), nullable=False),
    Column("working_dir", Text, nullable=True),
    Column("setup_script", Text, nullable=True),
    Column("cleanup_script", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

execution_processes = Table(
    "execution_processes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("session_id", String(36), ForeignKey("sessions.id"), nullable=False),
    Column("run_reason", String(32), nullable=False),
    # JSON: {"argv": [...], "executor": ..., ...} - what was started, for display and follow-ups.
    Column("executor_action", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("exit_code", Integer, nullable=True),
    Column("started_at", BigInteger, nullable=False),
    Column("completed_at", BigInteger, nullable=True),
    # Ownership (storage/ownership.py, issue 10): the server running it, the child's pid,
    # process group and /proc start time, and the durable bound of each channel's indexes.
    Column("server_id", String(36), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("pgid", Integer, nullable=True),
    Column("pid_start_time", BigInteger, nullable=True),
    Column("raw_index_reserved", BigInteger, nullable=False, server_default="0"),
    Column("normalized_index_reserved", BigInteger, nullable=False, server_default="0"),
    Index("ix_execution_processes_session", "session_id", "started_at"),
    Index("ix_execution_processes_status", "status"),
)

coding_agent_turns = Table(
    "coding_agent_turns",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "execution_process_id",
        String(36),
        ForeignKey("execution_processes.id"),
        nullable=False,
        unique=True,
    ),
    Column("agent_session_id", Text, nullable=True),
    Column("prompt", Text, nullable=True),
    Column("summary", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Legacy history: rows of one or more JSONL LogMsg lines, read back in insertion (id) order.
execution_process_logs = Table(
    "execution_process_logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("execution_id", String(36), nullable=False),
    Column("logs", Text, nullable=False),
    Column("byte_size", Integer, nullable=False),
    Column("inserted_at", BigInteger, nullable=False),
    Index("ix_execution_process_logs_execution", "execution_id", "id"),
    Index("ix_execution_process_logs_execution_time", "execution_id", "inserted_at", "id"),
)

# One row per entry. The primary key (process, channel, index) is also the index that serves
# "newest N below a cursor". On SQLite a rowid table (migration 0004), the key its unique index:
# WITHOUT ROWID, lines of 16-64 KB left up to ~55 KB of a 64 KiB overflow page empty (588 MB
# against 376 MB for 300 MB of agent output; docs/performance.md).
execution_process_log_entries = Table(
    "execution_process_log_entries",
    metadata,
    Column("execution_process_id", String(36), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("entry_index", BigInteger, nullable=False),
    Column("entry_json", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("execution_process_id", "channel", "entry_index"),
)

# Processes whose entries were checked against (or rebuilt from) their legacy JSONL: start-up
# backfill does each once, and retention deletes JSONL only of processes listed here.
legacy_backfills = Table(
    "legacy_backfills",
    metadata,
    Column("execution_process_id", String(36), primary_key=True),
    Column("raw_entries", BigInteger, nullable=False),
    Column("normalized_entries", BigInteger, nullable=False),
    Column("source_bytes", BigInteger, nullable=False),
    Column("malformed_lines", BigInteger, nullable=False),
    Column("checked_at", BigInteger, nullable=False),
)

# One row per running server, renewed by its heartbeat (jobs/lease.py): a process whose
# server's lease has expired is an orphan; one of a live server is not (two servers, one db).
server_leases = Table(
    "server_leases",
    metadata,
    Column("server_id", String(36), primary_key=True),
    Column("hostname", Text, nullable=False),
    # /proc/sys/kernel/random/boot_id: pids and start times mean something on this boot only.
    Column("boot_id", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)
