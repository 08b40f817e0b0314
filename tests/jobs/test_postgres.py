"""The legacy-history jobs on PostgreSQL (when EXECLOG_TEST_POSTGRES_URL is set): backfill with
patches and with the normalizer, the start-up run, retention, and a vibe-kanban import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from execlog.config import BackfillMode
from execlog.jobs.backfill import LegacyBackfiller
from execlog.jobs.retention import LegacyRetention
from execlog.jobs.vibe_kanban import import_vibe_kanban
from execlog.protocol import now_ms
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
