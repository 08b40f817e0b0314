"""The legacy-history jobs on PostgreSQL (when EXECLOG_TEST_POSTGRES_URL is set): backfill with
patches and with the normalizer, the start-up run, retention, and a vibe-kanban import."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from execlog.config import BackfillMode, Settings
from execlog.jobs.backfill import LegacyBackfiller
from execlog.jobs.retention import LegacyRetention
from execlog.jobs.vibe_kanban import import_vibe_kanban
from execlog.protocol import now_ms
from execlog.services import Services
from execlog.storage.backfills import BackfillLedger
from execlog.storage.entries import EntryStore
from execlog.storage.legacy import LegacyLogStore

from .legacy_data import DAY_MS, patch, seed_process, stdout
from .test_vibe_kanban import build_sessions_era

pytestmark = pytest.mark.postgres

FIXTURE = Path(__file__).parents[1] / "fixtures" / "agents" / "claude-code-build-session.jsonl"
HELLO = {
    "type": "NORMALIZED_ENTRY",
    "content": {"timestamp": None, "entry_type": {"type": "assistant_message"}, "content": "hi"},
}


async def test_backfill_and_retention_on_postgres(postgres_engine: Engine) -> None:
    engine = postgres_engine
    old = now_ms() - 30 * DAY_MS
    patched = seed_process(
        engine,
        [stdout("a\nb"), stdout("c\n"), patch("add", 0, HELLO), patch("replace", 0, HELLO)],
        executor="claude-code",
        run_reason="codingagent",
        completed_at=old,
    )
    data = FIXTURE.read_text(encoding="utf-8")
    claude = seed_process(
        engine,
        [stdout(data[i : i + 4096]) for i in range(0, len(data), 4096)],
        executor="claude-code",
        run_reason="codingagent",
        completed_at=now_ms(),
    )
    backfiller = LegacyBackfiller.create(engine, max_line_bytes=1_048_576)
    lines: list[str] = []
    run = await backfiller.run_pending(BackfillMode.STARTUP, lines.append)
    assert run.processes == 2 and run.errors == 0
    assert lines[0].startswith("log-history backfill starting: processes=2, ")

    store = EntryStore(engine)
    raw = store.fetch_entries_after(patched, "raw", None)
    assert [json.loads(e.entry_json)["content"] for e in raw] == ["a", "bc"]
    normalized = store.fetch_entries_after(patched, "normalized", None)
    assert [json.loads(e.entry_json) for e in normalized] == [HELLO]
    conversation = store.fetch_entries_after(claude, "normalized", None)
    calls = [e for e in conversation if '"tool_use"' in e.entry_json]
    assert len(calls) == 20

    report = await LegacyRetention.create(engine, backfiller, 14).clean()
    assert [p.process_id for p in report.deleted] == [patched]
    assert not LegacyLogStore(engine).has_rows(patched)
    assert store.fetch_stats(patched, "raw").count == 2


def test_vibe_kanban_import_on_postgres(
    postgres_engine: Engine,
    tmp_path: Path,
) -> None:
    assets = tmp_path / "assets"
    build_sessions_era(tmp_path / "vk.sqlite", assets)
    first = import_vibe_kanban(postgres_engine, tmp_path / "vk.sqlite", assets=assets)
    assert first.processes == 4
    again = import_vibe_kanban(postgres_engine, tmp_path / "vk.sqlite", assets=assets)
    assert again.processes == 0 and again.skipped["already imported"] == 4


def test_maintenance_outlives_the_request_deadline_but_not_a_lock(
    postgres_engine: Engine, make_settings: Callable[..., Settings]
) -> None:
    """The server's ``EXECLOG_DB_TIMEOUT_SECONDS`` is PostgreSQL's ``statement_timeout`` on
    its request connections (issue 9). The legacy jobs' scans and deletes may take longer and
    must not be cancelled by it (here a 30 ms deadline against the backfill, the listing and
    the deletion of 300,000 JSONL rows; all three failed with "statement timeout" on the
    request engine); a wait on a lock still ends at the deadline."""
    old = now_ms() - 30 * DAY_MS
    pid = seed_process(postgres_engine, [stdout("a\n")], completed_at=old)
    with postgres_engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO execution_process_logs (execution_id, logs, byte_size, inserted_at) "
            'SELECT %(pid)s, \'{"Stdout":"x\\n"}\', 15, %(at)s + g '
            "FROM generate_series(1, 300000) AS g",
            {"pid": pid, "at": old},
        )
        schema = connection.exec_driver_sql("SELECT current_schema()").scalar_one()
    url = postgres_engine.url.update_query_dict({"options": f"-csearch_path={schema}"})
    settings = make_settings(
        database_url=url.render_as_string(hide_password=False),
        db_timeout_seconds=0.03,
        legacy_jsonl_retention_days=14,
    )
    services = Services.build(settings)
    try:
        with services.engine.connect() as connection:  # requests: the deadline is in force
            with pytest.raises(OperationalError, match="statement timeout"):
                connection.exec_driver_sql("SELECT pg_sleep(0.2)")

        lines: list[str] = []
        run = asyncio.run(services.backfiller.run_pending(BackfillMode.STARTUP, lines.append))
        assert (run.processes, run.errors) == (1, 0), lines
        report = asyncio.run(services.retention.clean())
        assert [p.process_id for p in report.deleted] == [pid], report.skipped
        assert not LegacyLogStore(postgres_engine).has_rows(pid)
        assert EntryStore(postgres_engine).fetch_stats(pid, "raw").count == 300_001

        # A lock still bounds the wait: another session holds the JSONL table.
        with postgres_engine.begin() as holder:
            holder.exec_driver_sql("LOCK TABLE execution_process_logs IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(OperationalError, match="lock timeout"):
                BackfillLedger(services.maintenance_engine).fetch_expired(now_ms())
            assert time.monotonic() - started < 5
    finally:
        services.engine.dispose()
        services.maintenance_engine.dispose()
