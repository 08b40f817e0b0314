"""Retention of legacy JSONL: only processes ended before the period whose entries are complete
lose their JSONL, and their history stays fully retrievable; incomplete ones are kept."""

from __future__ import annotations

from sqlalchemy import Engine, delete, func, select

from execlog.jobs.backfill import LegacyBackfiller
from execlog.jobs.retention import LegacyRetention
from execlog.protocol import now_ms
from execlog.storage.entries import EntryStore
from execlog.storage.legacy import LegacyLogStore
from execlog.storage.tables import execution_process_log_entries as entries_table
from execlog.storage.tables import execution_process_logs as logs_table

from .legacy_data import DAY_MS, seed_process, stdout


def jsonl_rows(engine: Engine, pid: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(logs_table).where(logs_table.c.execution_id == pid)
            ).scalar_one()
        )


def make_retention(engine: Engine, days: int = 14) -> tuple[LegacyBackfiller, LegacyRetention]:
    backfiller = LegacyBackfiller.create(engine, max_line_bytes=1_048_576)
    return backfiller, LegacyRetention.create(engine, backfiller, days)


async def test_cleanup_deletes_old_complete_jsonl_and_history_stays(engine: Engine) -> None:
    old = now_ms() - 20 * DAY_MS
    expired = seed_process(engine, [stdout("a\nb\n"), stdout("c\n")], completed_at=old)
    recent = seed_process(engine, [stdout("new\n")], completed_at=now_ms() - DAY_MS)
    running = seed_process(engine, [stdout("run\n")], status="running", completed_at=old)
    _backfiller, retention = make_retention(engine)

    dry = await retention.clean(dry_run=True)
    assert dry.deleted == [] and [pid for pid, _ in dry.skipped] == [expired]  # not checked yet
    assert jsonl_rows(engine, expired) == 2

    report = await retention.clean()
    assert [p.process_id for p in report.deleted] == [expired]
    assert report.deleted_rows == 2
    assert jsonl_rows(engine, expired) == 0
    assert jsonl_rows(engine, recent) == 1 and jsonl_rows(engine, running) == 1
    # The history is served from the entries the backfill wrote before the delete.
    entries = EntryStore(engine).fetch_entries_after(expired, "raw", None)
    assert [e.entry_json for e in entries] == [
        '{"type":"STDOUT","content":"a"}',
        '{"type":"STDOUT","content":"b"}',
        '{"type":"STDOUT","content":"c"}',
    ]
    assert (await retention.clean()).deleted == []  # nothing left to do


async def test_incomplete_processes_are_never_cleaned(engine: Engine) -> None:
    old = now_ms() - 20 * DAY_MS
    pid = seed_process(engine, [stdout("a\nb\n")], completed_at=old)
    backfiller, retention = make_retention(engine)
    await backfiller.backfill_process(pid)
    with engine.begin() as connection:  # entry rows lost after the backfill checked them
        connection.execute(delete(entries_table).where(entries_table.c.entry_index == 1))

    report = await retention.clean()
    assert report.deleted == []
    assert report.skipped == [(pid, "raw entries incomplete")]
    assert jsonl_rows(engine, pid) == 1


async def test_zero_days_disables_retention(engine: Engine) -> None:
    pid = seed_process(engine, [stdout("a\n")], completed_at=now_ms() - 400 * DAY_MS)
    _backfiller, retention = make_retention(engine, days=0)
    assert (await retention.clean()).deleted == []
    assert LegacyLogStore(engine).has_rows(pid)
