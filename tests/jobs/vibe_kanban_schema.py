"""vibe-kanban-shaped SQLite databases for the import tests, built from the schema its
migrations leave (crates/db/migrations in its public repository): the older ``task_attempts``
era whose ``execution_process_logs`` had one row per process, and the newer ``sessions`` era
with one log row per pipe chunk (or per-process files under the asset directory)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

ATTEMPTS_ERA = """
CREATE TABLE task_attempts (
    id BLOB PRIMARY KEY, task_id BLOB NOT NULL, container_ref TEXT, branch TEXT,
    executor TEXT, created_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec')),
    updated_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec'))
);
CREATE TABLE execution_processes (
    id BLOB PRIMARY KEY, task_attempt_id BLOB NOT NULL,
    run_reason TEXT NOT NULL DEFAULT 'setupscript'
        CHECK (run_reason IN ('setupscript','codingagent','devserver','cleanupscript')),
    executor_action TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'running'
        CHECK (status IN ('running','completed','failed','killed')),
    exit_code INTEGER,
    started_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec')),
    completed_at TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec')),
    updated_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec'))
);
CREATE TABLE executor_sessions (
    id BLOB PRIMARY KEY, task_attempt_id BLOB NOT NULL, execution_process_id BLOB NOT NULL,
    session_id TEXT, prompt TEXT, summary TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec')),
    updated_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec'))
);
CREATE TABLE execution_process_logs (
    execution_id BLOB PRIMARY KEY, logs TEXT NOT NULL, byte_size INTEGER NOT NULL,
    inserted_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec'))
);
"""

SESSIONS_ERA = """
CREATE TABLE workspaces (
    id BLOB PRIMARY KEY, task_id BLOB, container_ref TEXT, branch TEXT NOT NULL DEFAULT 'main',
    created_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec')),
    updated_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec'))
);
CREATE TABLE sessions (
    id BLOB PRIMARY KEY, workspace_id BLOB NOT NULL, executor TEXT, name TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec')),
    updated_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec'))
);
CREATE TABLE execution_processes (
    id BLOB PRIMARY KEY, session_id BLOB NOT NULL,
    run_reason TEXT NOT NULL DEFAULT 'setupscript'
        CHECK (run_reason IN ('setupscript','codingagent','devserver','cleanupscript',
                              'archivescript')),
    executor_action TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'running'
        CHECK (status IN ('running','completed','failed','killed')),
    exit_code INTEGER, dropped INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec')), completed_at TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec')),
    updated_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec'))
);
CREATE TABLE coding_agent_turns (
    id BLOB PRIMARY KEY, execution_process_id BLOB NOT NULL, agent_session_id TEXT,
    agent_message_id TEXT, prompt TEXT, summary TEXT, seen INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec')),
    updated_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec'))
);
CREATE TABLE execution_process_logs (
    execution_id BLOB NOT NULL, logs TEXT NOT NULL, byte_size INTEGER NOT NULL,
    inserted_at TEXT NOT NULL DEFAULT (datetime('now', 'subsec'))
);
CREATE INDEX idx_execution_process_logs_execution_id_inserted_at
    ON execution_process_logs (execution_id, inserted_at);
"""


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def create_database(path: Path, schema: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path)
    if sqlite3.sqlite_version_info < (3, 42):
        # 'subsec' is newer than this SQLite; the same text form, milliseconds included:
        schema = schema.replace("datetime('now', 'subsec')", "strftime('%Y-%m-%d %H:%M:%f', 'now')")
    connection.executescript(schema)
    return connection


def add_logs(
    connection: sqlite3.Connection, process: uuid.UUID, rows: list[tuple[str, str]]
) -> None:
    """Rows of (JSONL text, inserted_at)."""
    connection.executemany(
        "INSERT INTO execution_process_logs (execution_id, logs, byte_size, inserted_at) "
        "VALUES (?, ?, ?, ?)",
        [(process.bytes, logs, len(logs.encode()), at) for logs, at in rows],
    )
