"""EntryStore on real SQLite files (and PostgreSQL when EXECLOG_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, select

from execlog.protocol import StoredEntry, encode_raw_entry
from execlog.storage.entries import UPSERT_CHUNK_ROWS, EntryRow, EntryStats, EntryStore
from execlog.storage.tables import execution_process_log_entries as entries_table
from execlog.storage.writer import EntryWrite
from tests.storage.helpers import ENTRIES_KEY_INDEX, explain_tail_page, new_process_id, rows_for


def timestamps(engine: Engine, process_id: str, index: int) -> tuple[int, int]:
    t = entries_table.c
    with engine.connect() as connection:
        row = connection.execute(
            select(t.created_at, t.updated_at).where(
                (t.execution_process_id == process_id) & (t.entry_index == index)
            )
        ).one()
    return int(row.created_at), int(row.updated_at)


# --- paging property --------------------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    initial=st.integers(min_value=0, max_value=300),
    page_size=st.integers(min_value=1, max_value=60),
    appends=st.lists(st.integers(min_value=0, max_value=40), max_size=20),
)
def test_cursor_walk_from_tail_yields_every_entry_once(
    any_engine: Engine, initial: int, page_size: int, appends: list[int]
) -> None:
    # A fresh process per example: the any_engine (and its file) is shared across examples.
    store = EntryStore(any_engine)
    process_id = new_process_id()
    store.upsert_entries_now(rows_for(process_id, range(initial)))

    seen: list[int] = []
    cursor: int | None = None
    more_appends = iter(appends)
    while True:
        page = store.fetch_tail_page(process_id, "raw", page_size, cursor)
        indexes = [entry.entry_index for entry in page]
        assert indexes == sorted(indexes)
        assert len(page) <= page_size
        if cursor is not None:
            assert all(i < cursor for i in indexes)
        seen = indexes + seen
        # The process keeps appending between page requests.
        added = next(more_appends, 0)
        start = store.next_index(process_id, "raw")
        store.upsert_entries_now(rows_for(process_id, range(start, start + added)))
        if not page or not store.has_entries_before(process_id, "raw", page[0].entry_index):
            break
        cursor = page[0].entry_index

    assert seen == list(range(initial))


# --- reads ------------------------------------------------------------------------------------


def test_tail_page_returns_newest_ascending_with_payloads(any_engine: Engine) -> None:
    store = EntryStore(any_engine)
    process_id = new_process_id()
    store.upsert_entries_now(rows_for(process_id, range(10)))

    page = store.fetch_tail_page(process_id, "raw", 3)

    assert page == [StoredEntry(i, encode_raw_entry("stdout", f"line {i}")) for i in (7, 8, 9)]
    assert [e.entry_index for e in store.fetch_tail_page(process_id, "raw", 3, cursor=7)] == [
        4,
        5,
        6,
    ]
    assert store.fetch_tail_page(process_id, "raw", 3, cursor=0) == []
    assert store.fetch_tail_page(process_id, "raw", 50, cursor=2) == page_of(process_id, [0, 1])


def page_of(process_id: str, indexes: list[int]) -> list[StoredEntry]:
    return [StoredEntry(i, encode_raw_entry("stdout", f"line {i}")) for i in indexes]


def test_channels_and_processes_are_separate(any_engine: Engine) -> None:
    store = EntryStore(any_engine)
    first, second = new_process_id(), new_process_id()
    store.upsert_entries_now(rows_for(first, range(5)) + rows_for(first, range(2), "normalized"))
    store.upsert_entries_now(rows_for(second, range(100, 103)))

    assert store.fetch_stats(first, "raw") == EntryStats(5, 0, 4)
    assert store.fetch_stats(first, "normalized") == EntryStats(2, 0, 1)
    assert store.fetch_stats(second, "raw") == EntryStats(3, 100, 102)
    assert store.fetch_stats(second, "normalized") == EntryStats(0, None, None)
    assert [e.entry_index for e in store.fetch_tail_page(first, "normalized", 10)] == [0, 1]


def test_has_entries_before(any_engine: Engine) -> None:
    store = EntryStore(any_engine)
    process_id = new_process_id()
    store.upsert_entries_now(rows_for(process_id, [3, 4, 9]))

    assert not store.has_entries_before(process_id, "raw", 3)
    assert store.has_entries_before(process_id, "raw", 4)
    assert store.has_entries_before(process_id, "raw", 100)
    assert not store.has_entries_before(new_process_id(), "raw", 100)


def test_fetch_entries_after_with_and_without_limit(any_engine: Engine) -> None:
    store = EntryStore(any_engine)
    process_id = new_process_id()
    store.upsert_entries_now(rows_for(process_id, range(20)))

    def indexes(after: int | None, limit: int | None = None) -> list[int]:
        return [e.entry_index for e in store.fetch_entries_after(process_id, "raw", after, limit)]

    assert indexes(None) == list(range(20))
    assert indexes(None, 3) == [0, 1, 2]
    assert indexes(15) == [16, 17, 18, 19]
    assert indexes(5, 2) == [6, 7]
    assert indexes(19) == []


def test_fetch_range_is_half_open(any_engine: Engine) -> None:
    store = EntryStore(any_engine)
    process_id = new_process_id()
    store.upsert_entries_now(rows_for(process_id, range(10)))

    assert store.fetch_range(process_id, "raw", 3, 6) == page_of(process_id, [3, 4, 5])
    assert store.fetch_range(process_id, "raw", 8, 50) == page_of(process_id, [8, 9])
    assert store.fetch_range(process_id, "raw", 5, 5) == []


@pytest.mark.parametrize("cursor", [None, 10])
def test_tail_page_uses_primary_key_index(engine: Engine, cursor: int | None) -> None:
    """The newest page and an older one are a seek in the primary key's index (the table has
    rowids: migration 0004), never a scan plus sort."""
    process_id = new_process_id()
    EntryStore(engine).upsert_entries_now(rows_for(process_id, range(20)))
    indexes, plan = explain_tail_page(engine, process_id, cursor)
    assert indexes == list(range(15, 20) if cursor is None else range(5, 10))
    assert f"SEARCH execution_process_log_entries USING INDEX {ENTRIES_KEY_INDEX}" in plan, plan
    assert "SCAN" not in plan and "TEMP B-TREE" not in plan, plan


# --- writes -----------------------------------------------------------------------------------


def test_upsert_replaces_payload_and_keeps_index_and_created_at(any_engine: Engine) -> None:
    store = EntryStore(any_engine)
    process_id = new_process_id()
    with any_engine.begin() as connection:
        store.upsert_entries(connection, rows_for(process_id, range(3)), now_ms=1_000)
    with any_engine.begin() as connection:
        store.upsert_entries(
            connection, [EntryRow(process_id, "raw", 1, '{"type":"STDOUT","content":"new"}')], 2_000
        )

    assert store.fetch_range(process_id, "raw", 0, 3) == [
        StoredEntry(0, encode_raw_entry("stdout", "line 0")),
        StoredEntry(1, '{"type":"STDOUT","content":"new"}'),
        StoredEntry(2, encode_raw_entry("stdout", "line 2")),
    ]
    assert timestamps(any_engine, process_id, 1) == (1_000, 2_000)
    assert timestamps(any_engine, process_id, 0) == (1_000, 1_000)
    assert store.fetch_stats(process_id, "raw") == EntryStats(3, 0, 2)


@pytest.mark.parametrize("row", [EntryRow, EntryWrite])
def test_upsert_same_key_twice_in_one_call_last_wins(
    any_engine: Engine, row: type[EntryRow]
) -> None:
    """``EntryWrite``: appends only, which PostgreSQL copies without deduplicating; a chunk
    naming a key twice cannot be copied and is upserted instead. Then a partial line's writes
    and its final append in one call: the final one is stored."""
    store = EntryStore(any_engine)
    process_id = new_process_id()
    store.upsert_entries_now(
        [
            row(process_id, "raw", 0, '"first"'),
            row(process_id, "raw", 1, '"other"'),
            row(process_id, "raw", 0, '"last"'),
        ]
    )
    store.upsert_entries_now(
        [
            EntryWrite(process_id, "raw", 2, '"p"', partial=True),
            EntryWrite(process_id, "raw", 2, '"pq"', partial=True),
            EntryWrite(process_id, "raw", 2, '"pqr"'),
        ]
    )

    assert store.fetch_range(process_id, "raw", 0, 3) == [
        StoredEntry(0, '"last"'),
        StoredEntry(1, '"other"'),
        StoredEntry(2, '"pqr"'),
    ]


def bulk_upsert(
    store: EntryStore,
    connection: Connection,
    bulk_path: str,
    process_id: str,
    pairs: list[tuple[int, str]],
) -> None:
    """The backfill's two bulk writes, EntryRows (many processes) or one channel's rows, and the
    writer's EntryRows (``writer``: statements of 500 rows and less)."""
    if bulk_path in ("entries", "writer"):
        rows = [EntryRow(process_id, "raw", i, payload) for i, payload in pairs]
        store.upsert_entries(connection, rows, 1_000, bulk=bulk_path == "entries")
    else:
        triples = [(process_id, i, payload) for i, payload in pairs]
        store.upsert_channel_rows(connection, "raw", triples, 1_000)


@pytest.mark.parametrize("bulk_path", ["entries", "channel_rows", "writer"])
def test_bulk_upserts_of_every_statement_size_store_each_row_once(
    any_engine: Engine, bulk_path: str
) -> None:
    """The backfill's bulk writes (statements of 2,000 rows and the smaller sizes) and the
    writer's: 2,627 rows need every size; a second pass over part of them (across a statement
    boundary) replaces."""
    store = EntryStore(any_engine)
    process_id = new_process_id()
    total = 2_000 + 500 + 100 + 20 + 5 + 2

    def write(indexes: list[int], text: str) -> None:
        pairs = [(i, encode_raw_entry("stdout", f"{text} {i}")) for i in indexes]
        with any_engine.begin() as connection:
            bulk_upsert(store, connection, bulk_path, process_id, pairs)

    write(list(range(total)), "first")
    write([*range(1_990, 2_010), 5], "second")

    stored = store.fetch_range(process_id, "raw", 0, total)
    replaced = {*range(1_990, 2_010), 5}
    assert stored == [
        StoredEntry(i, encode_raw_entry("stdout", f"{'second' if i in replaced else 'first'} {i}"))
        for i in range(total)
    ]
    assert store.fetch_stats(process_id, "raw") == EntryStats(total, 0, total - 1)


@pytest.mark.parametrize("bulk_path", ["entries", "channel_rows", "writer"])
def test_sqlite_statements_keep_no_payload_after_a_bulk_upsert(
    engine: Engine, bulk_path: str
) -> None:
    """Issue 9: sqlite3 caches statements with their last bound values, i.e. SQLite's copies of
    the payloads; each statement size used is re-bound with NULLs before the call returns. The
    statements' memory (SQLite's sqlite_stmt table) stays far below the payloads written."""
    store = EntryStore(engine)
    process_id = new_process_id()
    payload = encode_raw_entry("stdout", "x" * 50_000)
    pairs = [(i, payload) for i in range(2_000 + 100 + 3)]  # three statement sizes
    with engine.begin() as connection:
        bulk_upsert(store, connection, bulk_path, process_id, pairs)
        held = connection.exec_driver_sql("SELECT sum(mem) FROM sqlite_stmt").scalar_one()

    # Payloads written: 105 MB, 100 MB of them bound to the 2,000-row statement. What stays is
    # the prepared programs (0.6-1.4 MB).
    assert held < len(payload) * len(pairs) // 50
    assert store.fetch_stats(process_id, "raw") == EntryStats(len(pairs), 0, len(pairs) - 1)


def test_upsert_rolls_back_with_the_callers_transaction(any_engine: Engine) -> None:
    store = EntryStore(any_engine)
    process_id = new_process_id()
    with pytest.raises(RuntimeError), any_engine.begin() as connection:
        store.upsert_entries(connection, rows_for(process_id, range(5)), 1)
        raise RuntimeError("caller fails after the upsert")

    assert store.fetch_stats(process_id, "raw") == EntryStats(0, None, None)


def test_batch_of_100k_rows_upserts_in_one_call(engine: Engine) -> None:
    store = EntryStore(engine)
    process_id = new_process_id()
    count = 100_000
    assert count > UPSERT_CHUNK_ROWS  # the batch really spans several chunks

    store.upsert_entries_now(rows_for(process_id, range(count)))

    assert store.fetch_stats(process_id, "raw") == EntryStats(count, 0, count - 1)
    assert store.fetch_tail_page(process_id, "raw", 2) == page_of(process_id, [99_998, 99_999])


def test_next_index_continues_after_restart(make_engine: Callable[..., Engine]) -> None:
    process_id = new_process_id()
    first = make_engine("same.db")
    store = EntryStore(first)
    assert store.next_index(process_id, "raw") == 0
    store.upsert_entries_now(rows_for(process_id, range(7)))
    store.upsert_entries_now(rows_for(process_id, range(3), "normalized"))
    first.dispose()

    reopened = EntryStore(make_engine("same.db"))

    assert reopened.next_index(process_id, "raw") == 7
    assert reopened.next_index(process_id, "normalized") == 3
    assert reopened.next_index(new_process_id(), "raw") == 0


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_entry_store_basics_on_postgres(postgres_engine: Engine) -> None:
    store = EntryStore(postgres_engine)
    process_id = new_process_id()
    store.upsert_entries_now(rows_for(process_id, range(50)))
    store.upsert_entries_now(
        [
            EntryRow(process_id, "raw", 10, '"replaced once"'),
            EntryRow(process_id, "raw", 10, '"replaced twice"'),
        ]
    )

    page = store.fetch_tail_page(process_id, "raw", 5, cursor=12)
    assert [e.entry_index for e in page] == [7, 8, 9, 10, 11]
    assert page[3] == StoredEntry(10, '"replaced twice"')
    assert store.fetch_stats(process_id, "raw") == EntryStats(50, 0, 49)
    assert store.next_index(process_id, "raw") == 50
    assert store.has_entries_before(process_id, "raw", 1)
    assert [e.entry_index for e in store.fetch_entries_after(process_id, "raw", 47)] == [48, 49]
    assert [e.entry_index for e in store.fetch_range(process_id, "raw", 0, 2)] == [0, 1]


@pytest.mark.postgres
@pytest.mark.parametrize("new", [True, False])
def test_postgres_channel_rows_claimed_new_skip_the_staging_table(
    postgres_engine: Engine, new: bool
) -> None:
    """The backfill's raw rows of a process without entries (``new=True``) are copied straight
    into the table: none goes through the session's staging table (which empties at commit).
    A wrong claim (a key stored already) still ends as an upsert, nothing lost or doubled."""
    store = EntryStore(postgres_engine)
    process_id = new_process_id()
    store.upsert_entries_now([EntryRow(process_id, "raw", 3, '"stored"')])
    rows = [(process_id, index, f'"new {index}"') for index in range(10, 210)]
    with postgres_engine.connect() as connection:
        with connection.begin():
            store.upsert_channel_rows(connection, "raw", rows, 1_000, new=new)
            staging = connection.exec_driver_sql(
                "SELECT to_regclass('pg_temp.execlog_entry_staging')"
            ).scalar()
            staged = 0
            if staging is not None:  # created by an earlier use of this pooled session
                staged = connection.exec_driver_sql(
                    "SELECT count(*) FROM pg_temp.execlog_entry_staging"
                ).scalar()
    assert staged == (0 if new else len(rows))
    with postgres_engine.connect() as connection:
        with connection.begin():  # wrongly claimed new: index 3 is stored
            store.upsert_channel_rows(
                connection,
                "raw",
                [(process_id, 3, '"again"'), (process_id, 4, '"four"')],
                2_000,
                new=True,
            )
    assert store.fetch_stats(process_id, "raw") == EntryStats(202, 3, 209)
    stored = {e.entry_index: e.entry_json for e in store.fetch_range(process_id, "raw", 0, 300)}
    assert stored[3] == '"again"' and stored[4] == '"four"' and stored[209] == '"new 209"'


def test_fetch_indexes_and_updated_since_serve_resyncs(engine: Engine) -> None:
    store = EntryStore(engine)
    process_id = new_process_id()
    with engine.begin() as connection:
        store.upsert_entries(connection, rows_for(process_id, range(1200)), 1_000)
    with engine.begin() as connection:
        store.upsert_entries(
            connection,
            [EntryRow(process_id, "raw", index, '"later"') for index in (5, 700, 1100)],
            2_000,
        )
    found = store.fetch_indexes(process_id, "raw", [1100, 5, 5, 999_999, *range(600, 1200)])
    assert [e.entry_index for e in found] == [5, *range(600, 1200)]
    assert found[0] == StoredEntry(5, '"later"')
    updated = store.fetch_updated_since(process_id, "raw", 1000, 2_000)
    assert updated == [StoredEntry(5, '"later"'), StoredEntry(700, '"later"')]
    assert store.fetch_updated_since(process_id, "raw", 10, 2_001) == []
