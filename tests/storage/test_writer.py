"""LogWriter on real SQLite files: group commits, max_delay, back-pressure, modes, failures."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.exc import OperationalError

from execlog.config import LogPersistence
from execlog.conversation import (
    system_message_entry,
)
from execlog.protocol import (
    LEGACY_FINISHED_LINE,
    encode_legacy_session_id_line,
    encode_legacy_stream_line,
    encode_normalized_entry,
    encode_raw_entry,
)
from execlog.storage.entries import POSTGRES_CHUNK_ROWS, EntryStats, EntryStore
from execlog.storage.legacy import (
    FinishedMessage,
    JsonPatchMessage,
    LegacyLogStore,
    PatchOperation,
    SessionIdMessage,
    StderrMessage,
    StdoutMessage,
)
from execlog.storage.tables import execution_process_log_entries as entries_table
from execlog.storage.tables import execution_process_logs as logs_table
from execlog.storage.writer import (
    CLOSE_ATTEMPTS,
    EntryWrite,
    LegacyLineWrite,
    LogWriter,
    WriteOp,
    WriterClosedError,
)
from tests.helpers import wait_until
from tests.storage.helpers import count_rows, new_process_id


def entry_write(process_id: str, index: int) -> EntryWrite:
    return EntryWrite(process_id, "raw", index, encode_raw_entry("stdout", f"line {index}"))


def line_write(process_id: str, index: int) -> LegacyLineWrite:
    return LegacyLineWrite(process_id, encode_legacy_stream_line("stdout", f"line {index}"))


@pytest.fixture
async def writers() -> AsyncIterator[list[LogWriter]]:
    """Writers a test started; closed at the end even when the test fails."""
    started: list[LogWriter] = []
    yield started
    for writer in started:
        try:
            await writer.close()
        except Exception:  # a test that broke the database already asserted on it
            pass


async def started(writer: LogWriter, registry: list[LogWriter]) -> LogWriter:
    await writer.start()
    registry.append(writer)
    return writer


async def test_many_submits_become_few_group_commits(
    engine: Engine, writers: list[LogWriter]
) -> None:
    writer = await started(
        LogWriter(
            EntryStore(engine),
            LegacyLogStore(engine),
            LogPersistence.ENTRIES,
            batch_rows=2000,
            max_delay=30.0,
        ),
        writers,
    )
    process_id = new_process_id()

    for index in range(10_000):
        await writer.submit(entry_write(process_id, index))
    await writer.flush()

    assert writer.committed_rows == 10_000
    assert 1 <= writer.committed_groups <= 5
    assert EntryStore(engine).fetch_stats(process_id, "raw") == EntryStats(10_000, 0, 9_999)


async def test_batch_rows_triggers_a_commit_without_flush(
    engine: Engine, writers: list[LogWriter]
) -> None:
    writer = await started(
        LogWriter(
            EntryStore(engine),
            LegacyLogStore(engine),
            LogPersistence.ENTRIES,
            batch_rows=100,
            max_delay=60.0,
        ),
        writers,
    )
    process_id = new_process_id()

    for index in range(100):
        await writer.submit(entry_write(process_id, index))
    await wait_until(lambda: writer.committed_groups == 1)

    assert EntryStore(engine).next_index(process_id, "raw") == 100


async def test_single_submit_is_committed_after_max_delay(
    engine: Engine, writers: list[LogWriter]
) -> None:
    max_delay = 0.2
    writer = await started(
        LogWriter(
            EntryStore(engine),
            LegacyLogStore(engine),
            LogPersistence.ENTRIES,
            batch_rows=10_000,
            max_delay=max_delay,
        ),
        writers,
    )
    store = EntryStore(engine)
    process_id = new_process_id()

    submitted_at = time.monotonic()
    await writer.submit(entry_write(process_id, 0))
    await wait_until(lambda: store.next_index(process_id, "raw") == 1, timeout=5.0)
    elapsed = time.monotonic() - submitted_at

    # Not before max_delay (the writer waits for company), and long before any other trigger.
    assert elapsed >= max_delay
    assert elapsed < max_delay + 2.0
    # The loop learns of the commit just after the row became visible.
    await wait_until(lambda: writer.committed_groups == 1)


async def test_full_queue_blocks_producers_until_the_database_frees_up(
    engine: Engine, writers: list[LogWriter]
) -> None:
    writer = await started(
        LogWriter(
            EntryStore(engine),
            LegacyLogStore(engine),
            LogPersistence.DUAL,
            batch_rows=10,
            max_delay=0.01,
            queue_rows=100,
        ),
        writers,
    )
    process_id = new_process_id()
    total = 1000
    # Dual mode: the writer derives each entry's legacy line itself.
    ops: list[WriteOp] = [entry_write(process_id, index) for index in range(total)]

    # Another connection holds the write lock: the writer's commit waits on SQLite's busy
    # handler, its queue fills, and the producer has to wait.
    database = engine.url.database
    assert database is not None
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:

        async def produce() -> None:
            for op in ops:
                await writer.submit(op)

        producer = asyncio.create_task(produce())
        await wait_until(lambda: writer.producer_waits >= 1 and writer.pending_rows >= 100)
        assert not producer.done()
        assert count_rows(engine, entries_table) == 0
    finally:
        blocker.rollback()
        blocker.close()

    await asyncio.wait_for(producer, timeout=30)
    await writer.flush()

    assert EntryStore(engine).fetch_stats(process_id, "raw") == EntryStats(total, 0, total - 1)
    messages = list(LegacyLogStore(engine).read_messages(process_id))
    assert messages == [StdoutMessage(f"line {index}\n") for index in range(total)]


async def test_submit_many_waits_for_space_and_keeps_order(
    engine: Engine, writers: list[LogWriter]
) -> None:
    writer = await started(
        LogWriter(
            EntryStore(engine),
            LegacyLogStore(engine),
            LogPersistence.LEGACY_JSONL,
            batch_rows=7,
            max_delay=0.01,
            queue_rows=25,
        ),
        writers,
    )
    process_id = new_process_id()

    await writer.submit_many([line_write(process_id, index) for index in range(500)])
    await writer.flush()

    assert writer.producer_waits >= 1
    messages = list(LegacyLogStore(engine).read_messages(process_id))
    assert messages == [StdoutMessage(f"line {index}\n") for index in range(500)]


async def test_close_flushes_everything_and_is_idempotent(engine: Engine) -> None:
    writer = LogWriter(
        EntryStore(engine),
        LegacyLogStore(engine),
        LogPersistence.ENTRIES,
        batch_rows=100_000,
        max_delay=60.0,
    )
    await writer.start()
    process_id = new_process_id()
    for index in range(500):
        await writer.submit(entry_write(process_id, index))

    await writer.close()
    await writer.close()

    assert EntryStore(engine).next_index(process_id, "raw") == 500
    with pytest.raises(WriterClosedError):
        await writer.submit(entry_write(process_id, 500))


async def test_dual_mode_writes_both_tables_in_one_transaction(
    engine: Engine, writers: list[LogWriter]
) -> None:
    writer = await started(
        LogWriter(
            EntryStore(engine),
            LegacyLogStore(engine),
            LogPersistence.DUAL,
            batch_rows=10_000,
            max_delay=60.0,
        ),
        writers,
    )
    first, second = new_process_id(), new_process_id()
    events: list[str] = []

    def record_insert(*args: Any) -> None:
        statement = str(args[2])
        if statement.startswith("INSERT INTO execution_process_log_entries"):
            events.append("entries")
        elif statement.startswith("INSERT INTO execution_process_logs"):
            events.append("legacy")

    def record_commit(*_args: Any) -> None:
        events.append("commit")

    event.listen(engine, "before_cursor_execute", record_insert)
    event.listen(engine, "commit", record_commit)
    try:
        for index in range(3):
            await writer.submit_many([entry_write(first, index), entry_write(second, index)])
        await writer.flush()
    finally:
        event.remove(engine, "before_cursor_execute", record_insert)
        event.remove(engine, "commit", record_commit)

    # One transaction: the entry upserts (a few statement sizes, each also run once without
    # rows to release its bindings), one legacy row per process, then one commit.
    assert events[-3:] == ["legacy", "legacy", "commit"]
    assert set(events[:-3]) == {"entries"} and len(events) <= 3 + 4
    store = EntryStore(engine)
    assert store.fetch_stats(first, "raw") == EntryStats(3, 0, 2)
    assert store.fetch_stats(second, "raw") == EntryStats(3, 0, 2)
    with engine.connect() as connection:
        logs = connection.execute(
            select(logs_table.c.logs).where(logs_table.c.execution_id == first)
        ).scalar_one()
    assert logs == "\n".join(line_write(first, index).line for index in range(3))


@pytest.mark.parametrize(
    ("persistence", "entry_rows", "legacy_rows"),
    [
        (LogPersistence.ENTRIES, 4, 0),
        (LogPersistence.LEGACY_JSONL, 0, 1),
        (LogPersistence.DUAL, 4, 1),
    ],
)
async def test_each_mode_writes_only_its_tables(
    engine: Engine,
    writers: list[LogWriter],
    persistence: LogPersistence,
    entry_rows: int,
    legacy_rows: int,
) -> None:
    writer = await started(
        LogWriter(EntryStore(engine), LegacyLogStore(engine), persistence, max_delay=60.0), writers
    )
    process_id = new_process_id()

    for index in range(4):
        await writer.submit(entry_write(process_id, index))
    await writer.submit(LegacyLineWrite(process_id, LEGACY_FINISHED_LINE))
    await writer.flush()

    assert writer.writes_entries == (entry_rows > 0)
    assert writer.writes_legacy == (legacy_rows > 0)
    assert count_rows(engine, entries_table) == entry_rows
    assert count_rows(engine, logs_table) == legacy_rows


async def test_failed_commit_is_retried_atomically_and_loses_nothing(
    engine: Engine, writers: list[LogWriter]
) -> None:
    writer = await started(
        LogWriter(EntryStore(engine), LegacyLogStore(engine), LogPersistence.DUAL, max_delay=0.01),
        writers,
    )
    process_id = new_process_id()
    # A real failure: the legacy table is missing while the group commits.
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE execution_process_logs RENAME TO logs_away")

    await writer.submit(entry_write(process_id, 0))
    await wait_until(lambda: writer.failed_commits >= 1)
    # The entry upsert ran before the failing legacy insert, and was rolled back with it.
    assert count_rows(engine, entries_table) == 0

    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE logs_away RENAME TO execution_process_logs")
    await writer.flush()

    assert EntryStore(engine).fetch_stats(process_id, "raw") == EntryStats(1, 0, 0)
    assert list(LegacyLogStore(engine).read_messages(process_id)) == [StdoutMessage("line 0\n")]


async def test_legacy_lines_are_derived_from_entry_writes_in_submission_order(
    engine: Engine, writers: list[LogWriter]
) -> None:
    """The mode is the writer's business: producers submit entry writes and legacy-only lines,
    and legacy JSONL gets the same lines the producers would have written."""
    writer = await started(
        LogWriter(EntryStore(engine), LegacyLogStore(engine), LogPersistence.LEGACY_JSONL),
        writers,
    )
    process_id = new_process_id()
    text = 'héllo "quoted" \\ tab\t'
    entry = encode_normalized_entry(system_message_entry("note"))
    await writer.submit_many(
        [
            EntryWrite(process_id, "raw", 0, encode_raw_entry("stdout", text)),
            EntryWrite(process_id, "normalized", 0, entry),
            EntryWrite(process_id, "raw", 1, encode_raw_entry("stderr", "oops")),
            EntryWrite(process_id, "normalized", 0, entry, replace=True),
            LegacyLineWrite(process_id, encode_legacy_session_id_line("sess-1")),
            LegacyLineWrite(process_id, LEGACY_FINISHED_LINE),
        ]
    )
    await writer.flush()

    assert count_rows(engine, entries_table) == 0
    assert list(LegacyLogStore(engine).read_messages(process_id)) == [
        StdoutMessage(text + "\n"),
        JsonPatchMessage([PatchOperation("add", 0, entry)]),
        StderrMessage("oops\n"),
        JsonPatchMessage([PatchOperation("replace", 0, entry)]),
        SessionIdMessage("sess-1"),
        FinishedMessage(),
    ]


async def test_close_gives_up_after_bounded_retries(engine: Engine) -> None:
    writer = LogWriter(
        EntryStore(engine), LegacyLogStore(engine), LogPersistence.LEGACY_JSONL, max_delay=60.0
    )
    await writer.start()
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE execution_process_logs RENAME TO logs_away")
    await writer.submit(line_write(new_process_id(), 0))

    with pytest.raises(OperationalError):
        await asyncio.wait_for(writer.close(), timeout=30)

    assert writer.failed_commits >= CLOSE_ATTEMPTS
    with pytest.raises(WriterClosedError):
        await writer.flush()


@pytest.mark.postgres
async def test_writer_basics_on_postgres(postgres_engine: Engine) -> None:
    writer = LogWriter(
        EntryStore(postgres_engine),
        LegacyLogStore(postgres_engine),
        LogPersistence.DUAL,
        batch_rows=50,
        max_delay=0.01,
    )
    await writer.start()
    process_id = new_process_id()
    try:
        for index in range(120):
            await writer.submit(entry_write(process_id, index))
        # The same key twice in one group: the last payload wins.
        await writer.submit(EntryWrite(process_id, "normalized", 5, '"first"'))
        await writer.submit(EntryWrite(process_id, "normalized", 5, '"second"', replace=True))
        await writer.flush()
    finally:
        await writer.close()

    store = EntryStore(postgres_engine)
    assert store.fetch_stats(process_id, "raw") == EntryStats(120, 0, 119)
    assert store.fetch_range(process_id, "normalized", 5, 6)[0].entry_json == '"second"'
    messages = list(LegacyLogStore(postgres_engine).read_messages(process_id))
    assert messages[:120] == [StdoutMessage(f"line {index}\n") for index in range(120)]
    assert messages[120:] == [
        JsonPatchMessage([PatchOperation("add", 5, '"first"')]),
        JsonPatchMessage([PatchOperation("replace", 5, '"second"')]),
    ]


@pytest.mark.postgres
def test_postgres_copies_new_rows_and_upserts_stored_keys(postgres_engine: Engine) -> None:
    """New rows go by COPY straight into the table; a chunk holding a key that is stored
    already (a row wrongly marked new) falls back to the upsert without losing or doubling a
    row, also across several chunks of one transaction and beside replaces."""
    store = EntryStore(postgres_engine)
    process_id = new_process_id()
    total = POSTGRES_CHUNK_ROWS + 300
    store.upsert_entries_now([EntryWrite(process_id, "raw", i, f'"a{i}"') for i in range(total)])
    assert store.fetch_stats(process_id, "raw") == EntryStats(total, 0, total - 1)
    # One transaction, two chunks: the first has new rows and one stored key marked new; the
    # second new rows and replaces of stored keys.
    first = POSTGRES_CHUNK_ROWS - 1000
    rows = [EntryWrite(process_id, "raw", i, f'"b{i}"') for i in range(total, total + first)]
    rows.append(EntryWrite(process_id, "raw", 7, '"b7"'))
    more = range(total + first, total + first + 2000)
    rows += [EntryWrite(process_id, "raw", i, f'"b{i}"') for i in more]
    rows += [EntryWrite(process_id, "raw", i, f'"r{i}"', replace=True) for i in range(10, 20)]
    store.upsert_entries_now(rows)
    final = total + first + 2000
    assert store.fetch_stats(process_id, "raw") == EntryStats(final, 0, final - 1)
    stored = {e.entry_index: e.entry_json for e in store.fetch_range(process_id, "raw", 0, final)}
    assert stored[7] == '"b7"' and stored[6] == '"a6"'
    assert [stored[i] for i in range(10, 20)] == [f'"r{i}"' for i in range(10, 20)]
    assert stored[total] == f'"b{total}"' and stored[final - 1] == f'"b{final - 1}"'
