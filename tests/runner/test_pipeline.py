"""The per-process data path with real parts: MsgStores, the batched writer on SQLite, the
Claude normalizer. Memory for replace bookkeeping stays bounded however long the agent runs."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Engine

from execlog.config import LogPersistence
from execlog.live.msg_store import MsgStore
from execlog.runner.normalizers.claude import ClaudeNormalizer
from execlog.runner.pipeline import KEYED_ENTRIES_CAPACITY, ProcessPipeline
from execlog.storage.entries import EntryStore
from execlog.storage.legacy import LegacyLogStore
from execlog.storage.writer import LogWriter

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def writer(engine: Engine) -> AsyncIterator[LogWriter]:
    log_writer = LogWriter(EntryStore(engine), LegacyLogStore(engine), LogPersistence.ENTRIES)
    await log_writer.start()
    yield log_writer
    await log_writer.close()


def _pipeline(writer: LogWriter) -> ProcessPipeline:
    process_id = str(uuid.uuid4())

    def store(channel: Any) -> MsgStore:
        return MsgStore(process_id, channel, max_bytes=1 << 20, max_entries=500, queue_capacity=64)

    async def ignore(_value: str) -> None:
        return None

    return ProcessPipeline(
        process_id,
        store("raw"),
        store("normalized"),
        writer,
        ClaudeNormalizer(),
        on_session_id=ignore,
        on_summary=ignore,
    )


def _tool_use(tool_id: str, command: str) -> str:
    return json.dumps(
        {
            "type": "assistant",
            "message": {
                "id": f"msg_{tool_id}",
                "content": [
                    {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": "Bash",
                        "input": {"command": command},
                    }
                ],
            },
            "session_id": "s",
        }
    )


def _tool_result(tool_id: str, output: str) -> str:
    return json.dumps(
        {
            "type": "user",
            "message": {
                "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": output}]
            },
            "session_id": "s",
        }
    )


async def test_long_runs_keep_replace_bookkeeping_bounded(
    writer: LogWriter, engine: Engine
) -> None:
    pipeline = _pipeline(writer)
    calls = KEYED_ENTRIES_CAPACITY + 3000
    for start in range(0, calls, 500):
        lines = []
        for n in range(start, min(start + 500, calls)):
            lines += [_tool_use(f"toolu_{n}", f"echo {n}"), _tool_result(f"toolu_{n}", str(n))]
        await pipeline.handle_output("stdout", lines)
    remembered, still_open = pipeline.tracked_keys
    assert remembered <= KEYED_ENTRIES_CAPACITY
    assert still_open == 0
    await pipeline.finish()
    stored = EntryStore(engine).fetch_entries_after(pipeline.process_id, "normalized", None)
    tools = [json.loads(e.entry_json)["content"]["entry_type"] for e in stored]
    # One entry per call, each replaced in place by its result.
    assert len(tools) == calls
    assert all(t["status"] == {"status": "success"} for t in tools)
    assert [t["action_type"]["command"] for t in tools] == [f"echo {n}" for n in range(calls)]


async def test_approval_restates_an_open_tool_call_only(writer: LogWriter) -> None:
    pipeline = _pipeline(writer)
    await pipeline.handle_output("stdout", [_tool_use("toolu_a", "rm -rf build")])
    assert pipeline.tracked_keys == (1, 1)
    pending = {
        "status": "pending_approval",
        "approval_id": "x",
        "requested_at": "t",
        "timeout_at": None,
    }
    assert await pipeline.set_tool_status("toolu_a", pending)
    [held] = pipeline.normalized.held_after(None)
    assert json.loads(held.entry_json)["content"]["entry_type"]["status"] == pending
    await pipeline.set_tool_status("toolu_a", {"status": "denied", "reason": "no"})
    await pipeline.handle_output("stdout", [_tool_result("toolu_a", "refused")])
    [held] = pipeline.normalized.held_after(None)
    # The user's denial stands over the failed result the agent reports afterwards.
    assert json.loads(held.entry_json)["content"]["entry_type"]["status"] == {
        "status": "denied",
        "reason": "no",
    }
    assert pipeline.tracked_keys == (1, 0)
    assert not await pipeline.set_tool_status("toolu_a", {"status": "created"}, wait_seconds=5)
