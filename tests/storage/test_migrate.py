"""Migrations run on an empty database, are idempotent, and build the contract's tables."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, inspect, text

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
