"""BackgroundCheckpoints on real SQLite files (and PostgreSQL): writes commit, the WAL stays
bounded and is copied into the database file, and pooled connections keep their settings."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine

from execlog.protocol import encode_raw_entry
from execlog.storage.checkpoints import BackgroundCheckpoints
from execlog.storage.database import SQLITE_PAGE_SIZE
from execlog.storage.entries import EntryStats, EntryStore
from tests.storage.helpers import new_process_id

_PAGE_PAYLOAD = encode_raw_entry("stdout", "x" * (SQLITE_PAGE_SIZE // 2))


def _write_batches(
    store: EntryStore, checkpoints: BackgroundCheckpoints, process_id: str, batches: int
) -> None:
    """``batches`` transactions of 8 rows of half a page each."""
    for batch in range(batches):
        rows = [(process_id, batch * 8 + i, _PAGE_PAYLOAD) for i in range(8)]
        with checkpoints.writing() as connection:
            store.upsert_channel_rows(connection, "raw", rows, 1_000)


def _wal_bytes(engine: Engine) -> int:
    database = engine.url.database
    assert database is not None
    wal = Path(database + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def _rows_in_database_file(engine: Engine, tmp_path: Path) -> int:
    """Entry rows that checkpoints have copied into the database file: a copy of the file alone,
    without its WAL, holds only those."""
    database = engine.url.database
    assert database is not None
    copy = tmp_path / "checkpointed.db"
    shutil.copyfile(database, copy)
    connection = sqlite3.connect(copy)
    try:
        return int(
            connection.execute("SELECT count(*) FROM execution_process_log_entries").fetchone()[0]
        )
    finally:
        connection.close()


def test_the_wal_stays_bounded_and_is_copied_on_close(engine: Engine, tmp_path: Path) -> None:
    """The writer's commits do not checkpoint; the background checkpoints and the writer's own
    copy every ``restart_writes`` writes keep the WAL at a few writes (14 pages each; without
    the writer's copies, all 100 of them), and closing copies the rest."""
    store = EntryStore(engine)
    process_id = new_process_id()
    with BackgroundCheckpoints(engine, restart_writes=4) as checkpoints:
        _write_batches(store, checkpoints, process_id, 100)
        assert _wal_bytes(engine) < 120 * SQLITE_PAGE_SIZE

    assert _rows_in_database_file(engine, tmp_path) == 800
    assert store.fetch_stats(process_id, "raw") == EntryStats(800, 0, 799)


def test_a_run_of_one_write_is_left_to_sqlites_automatic_checkpoint(
    engine: Engine, tmp_path: Path
) -> None:
    """An on-demand backfill of a small log writes once: no checkpoint thread, and closing does
    not copy the WAL (it holds fewer frames than SQLite's automatic checkpoint waits for)."""
    store = EntryStore(engine)
    with engine.connect() as connection:  # the schema into the file
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    with BackgroundCheckpoints(engine) as checkpoints:
        _write_batches(store, checkpoints, new_process_id(), 1)

    assert _rows_in_database_file(engine, tmp_path) == 0


def test_pooled_connections_keep_their_automatic_checkpoints(engine: Engine) -> None:
    store = EntryStore(engine)
    with BackgroundCheckpoints(engine) as checkpoints:
        _write_batches(store, checkpoints, new_process_id(), 3)
    for _ in range(3):  # whichever pooled connection comes back
        with engine.connect() as connection:
            setting = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
        assert setting == 1000


def test_a_failed_write_rolls_back(any_engine: Engine) -> None:
    store = EntryStore(any_engine)
    process_id = new_process_id()
    with BackgroundCheckpoints(any_engine) as checkpoints:
        with pytest.raises(RuntimeError), checkpoints.writing() as connection:
            store.upsert_channel_rows(connection, "raw", [(process_id, 0, '"x"')], 1_000)
            raise RuntimeError("the caller fails after the upsert")
        _write_batches(store, checkpoints, process_id, 1)

    assert store.fetch_stats(process_id, "raw") == EntryStats(8, 0, 7)
