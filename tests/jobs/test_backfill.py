"""Backfill of legacy JSONL into entries, on real SQLite files: line splitting as the live runner
does it, patches (last value wins), the normalizer for logs without patches, idempotence, and
one run for concurrent requests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, func, select, update

from execlog.conversation import assistant_message_entry
from execlog.jobs.backfill import LegacyBackfiller, ProcessBackfill
from execlog.protocol import encode_json, encode_normalized_entry, encode_raw_entry
from execlog.runner.lines import LineSplitter
from execlog.storage.backfills import BackfillLedger
from execlog.storage.entries import EntryRow, EntryStore
from execlog.storage.legacy import LegacyLogStore
from execlog.storage.processes import ProcessRepository
from execlog.storage.tables import execution_process_log_entries as entries_table

from .legacy_data import patch, seed_process, stderr, stdout

# An engine never connected to: the replay tests hand their rows in.
_NO_DATABASE = create_engine("sqlite://")
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


async def test_surrogate_halves_at_a_line_start_are_joined(engine: Engine) -> None:
    """A chunk cut inside an escaped surrogate pair when no line is pending (the fast path holds
    the first half, and the joined line cannot be encoded): the splitter joins the halves; a
    lone half in a one-chunk line becomes U+FFFD, as the live runner's decoding makes it."""
    pid = seed_process(
        engine,
        [
            '{"Stdout": "\\ud83d"}',
            '{"Stdout": "\\ude00 one\\n"}',
            '{"Stdout": "a\\ud800b\\n"}',
            stdout("c\n"),
        ],
    )
    await make_backfiller(engine).backfill_process(pid)
    assert raw_lines(engine, pid) == [
        ("STDOUT", "\U0001f600 one"),
        ("STDOUT", "a\ufffdb"),
        ("STDOUT", "c"),
    ]


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


def seed_varied(engine: Engine) -> list[str]:
    """Processes of every kind the start-up pass meets, with the same ids in any database."""
    data = FIXTURE.read_text(encoding="utf-8")
    hello = {
        "type": "NORMALIZED_ENTRY",
        "content": {
            "timestamp": None,
            "entry_type": {"type": "assistant_message"},
            "content": "hi",
        },
    }
    kinds: list[tuple[list[str], dict[str, Any]]] = [
        ([stdout("a\nb"), stdout("c\r\n"), "{not json", stderr("e\n"), stdout("tail")], {}),
        ([stdout("é"[0] + "\n"), '{"SessionId": "s-1"}', '"Finished"'], {}),
        (
            [stdout("x\n"), patch("add", 0, hello), patch("replace", 0, hello)],
            {"executor": "claude-code", "run_reason": "codingagent"},
        ),
        (
            [stdout(data[i : i + 4096]) for i in range(0, len(data), 4096)],
            {"executor": "claude-code", "run_reason": "codingagent"},
        ),
        ([stdout("amp\n"), '{"SessionId": "amp-1"}'], {"executor": "amp"}),
    ]
    ids = []
    for number, (rows, options) in enumerate(kinds):
        pid = f"00000000-0000-4000-8000-{number:012d}"
        ids.append(seed_process(engine, rows, process_id=pid, **options))
    return ids


def without_timestamp(entry_json: str) -> Any:
    """A normalized payload without its timestamp (the normalizer stamps the replay's time)."""
    payload = json.loads(entry_json)
    payload["content"].pop("timestamp", None)
    return payload


def everything_stored(engine: Engine, pids: list[str]) -> dict[str, Any]:
    store = EntryStore(engine)
    repository = ProcessRepository(engine)
    ledger = BackfillLedger(engine)
    found: dict[str, Any] = {}
    for pid in pids:
        row = ledger.fetch(pid)
        turn = repository.fetch_turn(pid)
        found[pid] = (
            [(e.entry_index, e.entry_json) for e in store.fetch_entries_after(pid, "raw", None)],
            [
                (e.entry_index, without_timestamp(e.entry_json))
                for e in store.fetch_entries_after(pid, "normalized", None)
            ],
            None if row is None else (row.raw_entries, row.normalized_entries, row.source_bytes),
            None if row is None else row.malformed_lines,
            None if turn is None else turn["agent_session_id"],
        )
    return found


async def test_a_start_up_group_stores_what_one_by_one_backfills_store(
    make_engine: Any,
) -> None:
    """The start-up pass backfills small processes as a group (grouped queries, one write
    transaction): what it stores is what each process's own backfill stores, ledger and
    session ids included; a process with entries already stored goes alone, likewise."""
    from execlog.config import BackfillMode

    alone, grouped = make_engine("alone.db"), make_engine("grouped.db")
    ids = seed_varied(alone)
    assert seed_varied(grouped) == ids
    partial = EntryRow(ids[0], "raw", 0, encode_raw_entry("stdout", "a"))
    for engine in (alone, grouped):
        EntryStore(engine).upsert_entries_now([partial])

    one_by_one = make_backfiller(alone)
    for pid in ids:
        assert await one_by_one.backfill_process(pid) is not None
    lines: list[str] = []
    run = await make_backfiller(grouped).run_pending(BackfillMode.STARTUP, lines.append)

    assert run.processes == len(ids) and run.errors == 0
    assert everything_stored(grouped, ids) == everything_stored(alone, ids)
    assert everything_stored(grouped, ids)[ids[1]][4] is None  # a script process has no turn
    assert len(everything_stored(grouped, ids)[ids[3]][1]) == 28  # Claude, from its stdout
    again: list[str] = []
    await make_backfiller(grouped).run_pending(BackfillMode.STARTUP, again.append)
    assert again[0].startswith("log-history backfill starting: processes=0, ")


async def test_a_read_during_a_start_up_group_waits_for_it(engine: Engine) -> None:
    """One backfill per process: a read of a process that the pass is backfilling in a group
    gets the group's result instead of starting a second run."""
    from execlog.config import BackfillMode

    ids = [seed_process(engine, [stdout(f"p{n} {i}\n") for i in range(300)]) for n in range(3)]
    backfiller = make_backfiller(engine)
    pending = backfiller.ledger.fetch_pending()
    results: dict[str, Any] = {}
    run = asyncio.create_task(
        backfiller.run_pending(
            BackfillMode.STARTUP,
            lambda _line: None,
            on_progress=lambda process, result: results.__setitem__(process.process_id, result),
            only=pending,
        )
    )
    await asyncio.sleep(0)  # one step: the task marks the group in flight, then awaits it
    read = await backfiller.backfill_process(ids[1])
    await run
    assert read is not None and read is results[ids[1]]
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(entries_table)).scalar()
    assert count == 900


async def test_a_cancelled_pass_leaves_no_reader_waiting(engine: Engine) -> None:
    """A background pass cancelled at shutdown with a group in flight: a read waiting on that
    group gets an error instead of hanging, and the next read backfills the process itself."""
    from execlog.config import BackfillMode
    from execlog.errors import BackfillError

    ids = [seed_process(engine, [stdout(f"p{n}\n")]) for n in range(3)]
    backfiller = make_backfiller(engine)
    run = asyncio.create_task(
        backfiller.run_pending(
            BackfillMode.BACKGROUND, lambda _line: None, only=backfiller.ledger.fetch_pending()
        )
    )
    await asyncio.sleep(0)  # one step: the group is marked in flight
    read = asyncio.create_task(backfiller.backfill_process(ids[1]))
    await asyncio.sleep(0)  # the read now waits on the group
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)

    with pytest.raises(BackfillError, match="cancelled"):
        await read
    result = await backfiller.backfill_process(ids[1])
    assert result is not None and result.raw_entries == 1


# Pipe chunks: some text, then mostly a line's end or nothing (a line of several chunks).
_PIECES = st.builds(
    str.__add__,
    st.text(
        alphabet=st.one_of(
            st.sampled_from(list('\n\r"\\/é\U0001f600\x00ab')),
            st.characters(exclude_categories=("Cs",)),
        ),
        max_size=10,
    ),
    st.sampled_from(["", "", "\n", "\n", "\r\n", "\nx"]),
)


def _quoted_jsonl(stream: str, text: str, spaced: bool) -> str:
    key = "Stdout" if stream == "stdout" else "Stderr"
    if spaced:  # the general path, as CONTRACT.md spells the line
        return json.dumps({key: text}, ensure_ascii=False)
    return '{"' + key + '":' + encode_json(text) + "}"  # execlog's own encoder, compact


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(st.sampled_from(["stdout", "stderr"]), _PIECES, st.booleans()), max_size=20
    ),
    max_line_bytes=st.sampled_from([4, 9, 16, 64, 1_048_576]),
)
@example(chunks=[("stdout", "ab", False), ("stdout", "cd\n", False)], max_line_bytes=64)
def test_any_chunking_gives_the_live_runners_lines(
    chunks: list[tuple[str, str, bool]], max_line_bytes: int
) -> None:
    """Texts of any chunking, either stream, compact or spaced: whether a line takes the fast path
    (one chunk, or pieces held and joined) or the splitter, the raw entries are the live runner's
    lines for each stream in order of completion, payloads byte for byte."""
    splitters = {s: LineSplitter(max_line_bytes) for s in ("stdout", "stderr")}
    expected: list[str] = []
    for stream, text, _spaced in chunks:
        expected += [encode_raw_entry(stream, x) for x in splitters[stream].feed(text.encode())]  # type: ignore[arg-type]
    for stream in ("stdout", "stderr"):
        expected += [encode_raw_entry(stream, x) for x in splitters[stream].finish()]  # type: ignore[arg-type]
    rows = [(_quoted_jsonl(s, t, spaced), 0) for s, t, spaced in chunks]
    job = ProcessBackfill(
        _NO_DATABASE,
        EntryStore(_NO_DATABASE),
        LegacyLogStore(_NO_DATABASE),
        ProcessRepository(_NO_DATABASE),
        BackfillLedger(_NO_DATABASE),
        max_line_bytes=max_line_bytes,
    )
    replay = job._replay("p", None, use_patches=True, rows=rows)  # rows given: no query

    payloads = [payload for raw, _n in replay.chunks() for _p, _i, payload in raw]

    assert payloads == expected
