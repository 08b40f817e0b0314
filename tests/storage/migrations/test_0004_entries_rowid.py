"""Migration 0004: an SQLite entries table made WITHOUT ROWID is rebuilt with rowids, rows intact,
in one transaction; a new file has rowids from the start; large lines take fewer pages."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, inspect
from sqlalchemy.exc import OperationalError

from execlog.protocol import encode_raw_entry
from execlog.storage.entries import EntryRow, EntryStore
from execlog.storage.migrate import current_revision, head_revision, run_migrations
from tests.storage.helpers import ENTRIES_KEY_INDEX, explain_tail_page, new_process_id

pytestmark = pytest.mark.timeout(60)

BEFORE = "0003_process_ownership"
TABLE = "execution_process_log_entries"
ALL_ROWS = f"SELECT * FROM {TABLE} ORDER BY execution_process_id, channel, entry_index"


def table_sql(engine: Engine) -> str:
    with engine.connect() as connection:
        sql = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
        ).scalar_one()
    return str(sql)


def has_rowids(engine: Engine) -> bool:
    return "WITHOUT ROWID" not in table_sql(engine).upper()


def fetch_all_rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(ALL_ROWS)]


def page_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA page_count").scalar_one())


def payload(random_: random.Random, size: int) -> str:
    text = "".join(random_.choices("abcdefghijklmnopqrstuvwxyz0123456789 ", k=size))
    return encode_raw_entry("stdout", text)


def store_mixed_rows(engine: Engine) -> list[str]:
    """Three processes, both channels, lines of 100 B, 20 KB and 600 KB, written in an order
    that is not the key's, with two time stamps apart (a replaced row). The processes' ids."""
    random_ = random.Random(4)
    processes = [new_process_id() for _ in range(3)]
    rows = [
        EntryRow(pid, channel, index, payload(random_, (100, 20_000, 600_000)[index % 3]))
        for index in range(12)
        for channel in ("normalized", "raw")
        for pid in processes
    ]
    store = EntryStore(engine)
    with engine.begin() as connection:
        store.upsert_entries(connection, rows[::-1], now_ms=1_000)
    with engine.begin() as connection:
        store.upsert_entries(connection, [EntryRow(processes[1], "raw", 4, "{}")], now_ms=2_000)
    return processes


def downgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", "execlog.storage:migrations")
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_a_without_rowid_table_is_rebuilt_with_every_row_identical(
    make_engine: Callable[..., Engine], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(migrate=False)
    run_migrations(engine, BEFORE)
    assert not has_rowids(engine)
    processes = store_mixed_rows(engine)
    before = fetch_all_rows(engine)
    assert len(before) == 72 and ("{}" in {row[3] for row in before})

    with caplog.at_level(logging.WARNING, logger="execlog.storage.migrate"):
        run_migrations(engine)

    # The start-up says why it waits, and when the rebuild is over.
    messages = [r.getMessage() for r in caplog.records if r.name == "execlog.storage.migrate"]
    assert len(messages) == 2, messages
    assert re.fullmatch(
        r"rebuilding the entries table with rowids \(migration 0004, once\) in a \d+ MB "
        r"database file, about 12 s per GB of entries, before the server starts",
        messages[0],
    )
    assert re.fullmatch(r"rebuilt the entries table: 72 entries in \d+\.\d s", messages[1])

    assert current_revision(engine) == head_revision()
    assert has_rowids(engine)
    assert fetch_all_rows(engine) == before
    with engine.connect() as connection:
        rowids = connection.exec_driver_sql(
            f"SELECT rowid FROM {TABLE} ORDER BY execution_process_id, channel, entry_index"
        ).scalars()
        assert list(rowids) == list(range(1, 73))  # copied in key order
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
        assert [
            (row[1], row[2], row[3])
            for row in connection.exec_driver_sql(f"PRAGMA index_list({TABLE})")
        ] == [(ENTRIES_KEY_INDEX, 1, "pk")]
    pk = inspect(engine).get_pk_constraint(TABLE)
    assert pk["constrained_columns"] == ["execution_process_id", "channel", "entry_index"]
    # The WAL that held the new table is cut back once the migration is in the file.
    assert (tmp_path / "execlog.db-wal").stat().st_size == 0

    indexes, plan = explain_tail_page(engine, processes[0], 9)
    assert indexes == [4, 5, 6, 7, 8]
    assert f"USING INDEX {ENTRIES_KEY_INDEX}" in plan and "TEMP B-TREE" not in plan, plan
    # Upserts find the key in its unique index: a replace keeps created_at, an append is new.
    store = EntryStore(engine)
    with engine.begin() as connection:
        store.upsert_entries(
            connection,
            [EntryRow(processes[2], "raw", 0, '"a"'), EntryRow(processes[2], "raw", 12, '"b"')],
            now_ms=3_000,
        )
    after = {row[:3]: row[3:] for row in fetch_all_rows(engine)}
    stored = {row[:3]: row[3:] for row in before}
    assert after[processes[2], "raw", 0] == ('"a"', 1_000, 3_000)
    assert after[processes[2], "raw", 12] == ('"b"', 3_000, 3_000)
    assert after[processes[2], "raw", 11] == stored[processes[2], "raw", 11]
    assert len(after) == 73


def test_the_downgrade_rebuilds_without_rowids_and_the_upgrade_again(
    make_engine: Callable[..., Engine],
) -> None:
    engine = make_engine()
    store_mixed_rows(engine)
    rows = fetch_all_rows(engine)
    downgrade(engine, BEFORE)
    assert not has_rowids(engine) and fetch_all_rows(engine) == rows
    run_migrations(engine)
    assert has_rowids(engine) and fetch_all_rows(engine) == rows


def test_a_failed_rebuild_changes_nothing(make_engine: Callable[..., Engine]) -> None:
    """The disk fills during the copy: the old table, its rows and the revision are as they
    were, with no half-built table left behind, and the next start migrates."""
    engine = make_engine(migrate=False)
    run_migrations(engine, BEFORE)
    store_mixed_rows(engine)
    rows = fetch_all_rows(engine)
    limit = page_count(engine) + 4  # room for the new table's first pages, not for its rows

    def limit_pages(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {limit}")

    event.listen(engine, "checkout", limit_pages)
    with pytest.raises(OperationalError, match="full"):
        run_migrations(engine)
    event.remove(engine, "checkout", limit_pages)
    engine.dispose()  # the pooled connections forget the limit

    assert current_revision(engine) == BEFORE
    assert not has_rowids(engine) and fetch_all_rows(engine) == rows
    assert inspect(engine).get_table_names().count(f"{TABLE}_rebuilt") == 0
    run_migrations(engine)
    assert has_rowids(engine) and fetch_all_rows(engine) == rows


def test_a_new_database_is_not_rebuilt_and_says_nothing(
    make_engine: Callable[..., Engine], caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(migrate=False)
    with caplog.at_level(logging.WARNING, logger="execlog.storage.migrate"):
        run_migrations(engine)
    assert has_rowids(engine)
    assert not [r for r in caplog.records if "entries table" in r.getMessage()]


def test_a_new_database_has_rowids_and_the_key_index(engine: Engine) -> None:
    assert has_rowids(engine)
    assert "PRIMARY KEY (execution_process_id, channel, entry_index)" in table_sql(engine)
    run_migrations(engine)  # at head: nothing rebuilt
    assert has_rowids(engine)


def test_lines_of_20_to_40_kb_take_far_fewer_pages_with_rowids(
    make_engine: Callable[..., Engine],
) -> None:
    """WITHOUT ROWID keeps ~8 KB of such a row in its leaf and the rest in a 64 KiB overflow page
    of its own (about 1.1 pages a row); a rowid table keeps the row in its leaf, two or so a
    page (docs/performance.md)."""
    random_ = random.Random(20)
    process_id = new_process_id()
    rows = [
        EntryRow(process_id, "raw", index, payload(random_, random_.randrange(20_000, 40_000)))
        for index in range(150)
    ]
    without_rowid = make_engine("without-rowid.db", migrate=False)
    run_migrations(without_rowid, BEFORE)
    with_rowid = make_engine("rowid.db")
    pages = {}
    for engine in (without_rowid, with_rowid):
        empty = page_count(engine)
        EntryStore(engine).upsert_entries_now(rows)
        pages[has_rowids(engine)] = page_count(engine) - empty
    assert pages[True] < 0.65 * pages[False], pages
