"""PostgreSQL reads that do not depend on statistics (issue 9, item 8): on a freshly loaded
table that was never analyzed, a running process's tail, cursor and catch-up reads cost about
what they cost on a small process, instead of a scan of all its rows."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from execlog.storage.entries import EntryStore
from execlog.storage.legacy import LegacyLogStore, StdoutMessage

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

BIG_ROWS = 300_000
SMALL_ROWS = 1_000
# Measured: without pinned plans the big tail page is ~1000x the small one (a bitmap heap scan
# of every row and a top-N sort); with them both are one index seek.
MAX_RATIO = 10.0


def load_without_statistics(engine: Engine, process_id: str, rows: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO execution_process_log_entries SELECT :pid, 'raw', g, "
                '\'{"type":"STDOUT","content":"\' || repeat(\'x\', 80) || \'"}\', 0, 0 '
                "FROM generate_series(0, :last) g"
            ),
            {"pid": process_id, "last": rows - 1},
        )


def median_seconds(read: Callable[[], object], runs: int = 7) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        read()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def test_reads_use_the_primary_key_before_any_analyze(postgres_engine: Engine) -> None:
    engine = postgres_engine
    with engine.begin() as connection:
        # No autovacuum ANALYZE may run between the load and the reads.
        connection.execute(
            text("ALTER TABLE execution_process_log_entries SET (autovacuum_enabled = false)")
        )
    big, small = str(uuid.uuid4()), str(uuid.uuid4())
    load_without_statistics(engine, big, BIG_ROWS)
    load_without_statistics(engine, small, SMALL_ROWS)
    with engine.connect() as connection:
        analyzed = connection.execute(
            text(
                "SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables "
                "WHERE relname = 'execution_process_log_entries' AND schemaname = current_schema()"
            )
        ).one()
    assert analyzed == (None, None)

    store = EntryStore(engine)
    reads: dict[str, Callable[[str, int], object]] = {
        "tail": lambda pid, n: store.fetch_tail_page(pid, "raw", 200),
        "cursor": lambda pid, n: store.fetch_tail_page(pid, "raw", 200, cursor=n - 300),
        "after": lambda pid, n: store.fetch_entries_after(pid, "raw", n - 500, 200),
        "next_index": lambda pid, n: store.next_index(pid, "raw"),
    }
    for name, read in reads.items():
        small_time = median_seconds(lambda: read(small, SMALL_ROWS))  # noqa: B023
        big_time = median_seconds(lambda: read(big, BIG_ROWS))  # noqa: B023
        assert big_time < max(small_time * MAX_RATIO, 0.005), (name, big_time, small_time)
    page = store.fetch_tail_page(big, "raw", 200)
    assert [e.entry_index for e in page] == list(range(BIG_ROWS - 200, BIG_ROWS))


def test_legacy_pages_use_their_index_before_any_analyze(postgres_engine: Engine) -> None:
    """The backfill reads a process's JSONL in keyset pages of 256 rows. An imported log's
    process id has no statistics yet: without pinned plans each page was a bitmap heap scan of
    all its rows and a sort (60-80 ms at 300k rows, so a backfill went quadratic)."""
    engine = postgres_engine
    with engine.begin() as connection:
        connection.execute(
            text("ALTER TABLE execution_process_logs SET (autovacuum_enabled = false)")
        )
    big, small = str(uuid.uuid4()), str(uuid.uuid4())
    for pid, rows in ((big, BIG_ROWS), (small, SMALL_ROWS)):
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO execution_process_logs "
                    "(execution_id, logs, byte_size, inserted_at) "
                    "SELECT :pid, '{\"Stdout\":\"' || g || '\\n\"}', 20, g "
                    "FROM generate_series(1, :rows) g"
                ),
                {"pid": pid, "rows": rows},
            )
    legacy = LegacyLogStore(engine)

    def first_page(pid: str) -> object:
        return next(iter(legacy.read_messages(pid, page_rows=256)))

    small_time = median_seconds(lambda: first_page(small))
    big_time = median_seconds(lambda: first_page(big))
    assert big_time < max(small_time * MAX_RATIO, 0.005), (big_time, small_time)
    assert first_page(big) == StdoutMessage("1\n")
