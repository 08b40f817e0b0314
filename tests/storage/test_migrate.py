"""Migrations run on an empty database, are idempotent, and build the contract's tables."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text

from execlog.errors import DatabaseUnavailableError
from execlog.storage.database import (
    SQLITE_PAGE_SIZE,
    convert_sqlite_page_size,
    create_database_engine,
    fetch_sqlite_page_size,
)
from execlog.storage.migrate import current_revision, head_revision, run_migrations


def test_migrations_create_the_contract_tables(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(migrate=False)
    assert current_revision(engine) is None
    run_migrations(engine)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {
        "sessions",
        "execution_processes",
        "coding_agent_turns",
        "execution_process_logs",
        "execution_process_log_entries",
    } <= tables
    columns = {c["name"] for c in inspect(engine).get_columns("execution_process_log_entries")}
    assert columns == {
        "execution_process_id",
        "channel",
        "entry_index",
        "entry_json",
        "created_at",
        "updated_at",
    }
    pk = inspect(engine).get_pk_constraint("execution_process_log_entries")
    assert pk["constrained_columns"] == ["execution_process_id", "channel", "entry_index"]


def test_migrations_are_idempotent(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO sessions (id, executor, created_at) VALUES ('s', 'script', 1)")
        )
    run_migrations(engine)
    run_migrations(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM sessions")).scalar() == 1


def test_sqlite_runs_in_wal_with_normal_sync(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 5000


def make_old_sqlite_file(path: Path) -> None:
    """A file as execlog made it before issue 9: SQLite's default 4 KiB pages, WAL, one row."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.close()
    engine = create_database_engine(f"sqlite:///{path}")
    try:
        run_migrations(engine)
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO sessions (id, executor, created_at) VALUES ('s', 'script', 1)")
            )
    finally:
        engine.dispose()


def test_a_new_sqlite_file_gets_the_large_page_size(engine: Engine) -> None:
    assert fetch_sqlite_page_size(engine) == SQLITE_PAGE_SIZE == 65_536


def test_an_old_sqlite_file_keeps_its_pages_until_converted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.db"
    make_old_sqlite_file(path)
    engine = create_database_engine(f"sqlite:///{path}")
    try:
        assert fetch_sqlite_page_size(engine) == 4096
        with caplog.at_level(logging.WARNING, logger="execlog.storage.migrate"):
            run_migrations(engine)
        assert "4096-byte pages" in caplog.text and "--convert-page-size" in caplog.text
        assert convert_sqlite_page_size(engine) == (4096, SQLITE_PAGE_SIZE)
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("SELECT id FROM sessions")).scalars().all() == ["s"]
        assert convert_sqlite_page_size(engine) == (SQLITE_PAGE_SIZE, SQLITE_PAGE_SIZE)
    finally:
        engine.dispose()


def test_converting_a_file_in_use_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    make_old_sqlite_file(path)
    other = sqlite3.connect(path)  # a running server's connection, mid-read
    other.execute("BEGIN")
    other.execute("SELECT count(*) FROM sessions").fetchall()
    engine = create_database_engine(f"sqlite:///{path}", timeout_seconds=0.5)
    try:
        with pytest.raises(DatabaseUnavailableError, match="stop the server"):
            convert_sqlite_page_size(engine)
        assert fetch_sqlite_page_size(engine) == 4096
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        other.close()
        engine.dispose()
