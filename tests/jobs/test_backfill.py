"""Backfill of legacy JSONL into entries, on real SQLite files: line splitting as the live runner
does it, patches (last value wins), the normalizer for logs without patches, idempotence, and
one run for concurrent requests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from execlog.conversation import assistant_message_entry
from execlog.jobs.backfill import LegacyBackfiller, ProcessBackfill
from execlog.protocol import encode_normalized_entry, encode_raw_entry
from execlog.storage.backfills import BackfillLedger
from execlog.storage.entries import EntryRow, EntryStore
from execlog.storage.legacy import LegacyLogStore
from execlog.storage.processes import ProcessRepository
from execlog.storage.tables import execution_process_log_entries as entries_table

from .legacy_data import patch, seed_process, stderr, stdout

FIXTURE = Path(__file__).parents[1] / "fixtures" / "agents" / "claude-code-build-session.jsonl"


def make_backfiller(engine: Engine, max_line_bytes: int = 1_048_576) -> LegacyBackfiller:
    entries = EntryStore(engine)
    legacy = LegacyLogStore(engine)
    repository = ProcessRepository(engine)
    ledger = BackfillLedger(engine)
    job = ProcessBackfill(
        engine, entries, legacy, repository, ledger, max_line_bytes=max_line_bytes
    )
    return LegacyBackfiller(job, ledger, legacy, repository)


def stored(engine: Engine, pid: str, channel: str) -> list[dict[str, Any]]:
    return [
        json.loads(e.entry_json) for e in EntryStore(engine).fetch_entries_after(pid, channel, None)
    ]  # type: ignore[arg-type]


def raw_lines(engine: Engine, pid: str) -> list[tuple[str, str]]:
    return [(e["type"], e["content"]) for e in stored(engine, pid, "raw")]


async def test_chunks_are_split_into_lines_as_the_live_runner_does(engine: Engine) -> None:
    pid = seed_process(
        engine,
        [
            stdout("hel"),
            stdout("lo\r\nwor"),  # \r\n ends a line; a chunk ends mid-line
            '{"Stdout": "ld \\ud83d"}',  # an emoji cut between two chunks (surrogate halves)
            '{"Stdout": "\\ude00!\\n"}',
            "{not json",
            stderr("warn"),
            '"Ready"',
            '{"MessageId": "m-1"}',
            stdout("last line without newline"),
            '"Finished"',
        ],
    )
    result = await make_backfiller(engine).backfill_process(pid)

    assert result is not None
    assert result.malformed_lines == 1
    assert raw_lines(engine, pid) == [
        ("STDOUT", "hello"),
        ("STDOUT", "world \U0001f600!"),
        ("STDOUT", "last line without newline"),
        ("STDERR", "warn"),
    ]
    assert result.raw_entries == 4 and result.normalized_entries == 0


async def test_rows_are_read_by_insertion_time_then_row_id(engine: Engine) -> None:
    # Row ids 1..4; the second and third share a time; the fourth was inserted earliest.
    pid = seed_process(
        engine,
        [
            (stdout("b\n"), 2000),
            (stdout("c\n"), 3000),
            (stdout("d\n"), 3000),
            (stdout("a\n"), 1000),
        ],
    )
    await make_backfiller(engine).backfill_process(pid)
    assert [content for _t, content in raw_lines(engine, pid)] == ["a", "b", "c", "d"]


async def test_long_lines_are_cut_at_max_line_bytes(engine: Engine) -> None:
    pid = seed_process(engine, [stdout("é" * 10 + "\n")])
    await make_backfiller(engine, max_line_bytes=8).backfill_process(pid)
    assert [c for _t, c in raw_lines(engine, pid)] == ["éééé", "éééé", "éé"]


async def test_patches_rebuild_the_conversation_last_value_wins(engine: Engine) -> None:
    first = {
        "type": "NORMALIZED_ENTRY",
        "content": assistant_message_entry("draft", timestamp=None),
    }
    final = {
        "type": "NORMALIZED_ENTRY",
        "content": assistant_message_entry("final", timestamp=None),
    }
    other = {
        "type": "NORMALIZED_ENTRY",
        "content": assistant_message_entry("second", timestamp=None),
    }
    pid = seed_process(
        engine,
        [
            stdout('{"type":"ignored because patches exist"}\n'),
            patch("add", 0, first),
            '{"SessionId": "agent-7"}',
            patch("add", 1, other),
            patch("replace", 0, final),
        ],
        executor="claude-code",
        run_reason="codingagent",
    )
    result = await make_backfiller(engine).backfill_process(pid)

    assert result is not None and result.agent_session_id == "agent-7"
    assert [e["content"]["content"] for e in stored(engine, pid, "normalized")] == [
        "final",
        "second",
    ]
    turn = ProcessRepository(engine).fetch_turn(pid)
    assert turn is not None and turn["agent_session_id"] == "agent-7"


async def test_session_id_never_overwrites_the_turns_own(engine: Engine) -> None:
    pid = seed_process(
        engine, ['{"SessionId": "from-log"}'], executor="claude-code", run_reason="codingagent"
    )
    ProcessRepository(engine).set_agent_session_id(pid, "kept", 1)
    await make_backfiller(engine).backfill_process(pid)
    turn = ProcessRepository(engine).fetch_turn(pid)
    assert turn is not None and turn["agent_session_id"] == "kept"


async def test_claude_log_without_patches_gets_its_conversation(engine: Engine) -> None:
    # A vibe-kanban database that never stored patches: the recorded Claude Code output cut into
    # 4 KiB pipe chunks, nothing else.
    data = FIXTURE.read_text(encoding="utf-8")
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    pid = seed_process(
        engine, [stdout(c) for c in chunks], executor="claude-code", run_reason="codingagent"
    )
    result = await make_backfiller(engine).backfill_process(pid)

    assert result is not None
    assert result.raw_entries == len(data.splitlines())
    assert result.agent_session_id == "a2566954-4e4c-4265-b0b2-0e42f2a13909"
    conversation = [e["content"] for e in stored(engine, pid, "normalized")]
    calls = [e for e in conversation if e["entry_type"]["type"] == "tool_use"]
    assert len(calls) == 20
    # Each tool call was matched to its result: replaced in place, none left open.
    statuses = [c["entry_type"]["status"]["status"] for c in calls]
    assert statuses.count("success") == 19 and statuses.count("failed") == 1
    which_go = next(
        c for c in calls if c["metadata"]["tool_use_id"] == "toolu_01DUEFtsHTS3nmjub1EPXm1r"
    )
    assert which_go["entry_type"]["action_type"]["result"]["output"] == "/usr/bin/go"
    assert len(conversation) == 28


async def test_backfill_is_idempotent_and_leaves_complete_channels_alone(engine: Engine) -> None:
    entry = encode_normalized_entry(assistant_message_entry("live", timestamp=None))
    pid = seed_process(
        engine,
        [stdout("one\ntwo\n"), patch("add", 0, json.loads(entry))],
        executor="claude-code",
        run_reason="codingagent",
    )
    # Written live in dual mode: both channels already complete, the entry holds a decision.
    decided = encode_normalized_entry(assistant_message_entry("decided live", timestamp=None))
    EntryStore(engine).upsert_entries_now(
        [
            EntryRow(pid, "raw", 0, encode_raw_entry("stdout", "one")),
            EntryRow(pid, "raw", 1, encode_raw_entry("stdout", "two")),
            EntryRow(pid, "normalized", 0, decided),
        ]
    )
    backfiller = make_backfiller(engine)
    result = await backfiller.backfill_process(pid)
    assert result is not None and result.entries_written == 0
    assert stored(engine, pid, "normalized")[0]["content"]["content"] == "decided live"
    # Checked once: the ledger makes every later call a no-op.
    assert await make_backfiller(engine).backfill_process(pid) is None


async def test_incomplete_channel_is_rewritten(engine: Engine) -> None:
    pid = seed_process(engine, [stdout("one\ntwo\nthree\n")])
    EntryStore(engine).upsert_entries_now(
        [EntryRow(pid, "raw", 0, encode_raw_entry("stdout", "one"))]
    )
    result = await make_backfiller(engine).backfill_process(pid)
    assert result is not None and result.entries_written == 3
    assert [c for _t, c in raw_lines(engine, pid)] == ["one", "two", "three"]


async def test_concurrent_requests_run_the_backfill_once(engine: Engine) -> None:
    pid = seed_process(engine, [stdout(f"line {i}\n") for i in range(2000)])
    backfiller = make_backfiller(engine)
    results = await asyncio.gather(*(backfiller.backfill_process(pid) for _ in range(5)))
    assert results[0] is not None
    assert all(r is results[0] for r in results)  # one run, shared
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(entries_table)).scalar()
    assert count == 2000


async def test_running_and_unknown_processes_are_not_backfilled(engine: Engine) -> None:
    pid = seed_process(engine, [stdout("x\n")], status="running")
    backfiller = make_backfiller(engine)
    assert await backfiller.backfill_process(pid) is None
    assert await backfiller.backfill_process("00000000-0000-0000-0000-000000000000") is None
    assert stored(engine, pid, "raw") == []


async def test_a_broken_process_raises_a_backfill_error(engine: Engine) -> None:
    from execlog.errors import BackfillError
    from execlog.storage.tables import execution_processes

    pid = seed_process(engine, [stdout("x\n")])
    with engine.begin() as connection:
        connection.execute(
            update(execution_processes)
            .where(execution_processes.c.id == pid)
            .values(executor_action="{broken")
        )
    with pytest.raises(BackfillError, match=pid):
        await make_backfiller(engine).ensure_backfilled(pid)
