"""CodexNormalizer: the recorded ``codex exec --json`` runs, item life cycles, failures, and
arbitrary input that must never crash it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings

from execlog.protocol import encode_normalized_entry
from execlog.runner.normalizers.codex import CodexNormalizer

from . import Conversation, agent_output_lines, assert_entry_shape, read_fixture


def item(event: str, **fields: Any) -> str:
    return json.dumps({"type": event, "item": fields})


def run(lines: list[str]) -> Conversation:
    conversation = Conversation()
    normalizer = CodexNormalizer()
    conversation.feed_lines(normalizer, lines)
    conversation.apply(normalizer.finish())
    for entry in conversation.entries:
        assert_entry_shape(entry)
        encode_normalized_entry(entry)
    return conversation


def test_recorded_command_run() -> None:
    conversation = run(read_fixture("codex-exec-command.jsonl"))
    assert conversation.session_ids == ["019a2d7a-6455-7170-a661-c6d8b94c630a"]
    assert conversation.types() == {
        "thinking": 1,
        "tool_use": 1,
        "assistant_message": 1,
        "system_message": 1,
    }
    (call,) = conversation.tool_calls()
    assert conversation.replacements == 1  # started → completed in place
    assert call["entry_type"]["status"] == {"status": "success"}
    assert call["entry_type"]["action_type"] == {
        "action": "command_run",
        "command": "bash -lc ls",
        "result": {
            "exit_status": {"type": "exit_code", "code": 0},
            "output": "stream-output-1.jsonl\nstream-output-2.jsonl\ntest.js\n",
        },
    }
    assert (
        conversation.by_type("thinking")[0]["content"]
        == "**Preparing to list files with bash shell**"
    )
    summary = "Files here: `stream-output-1.jsonl`, `stream-output-2.jsonl`, `test.js`."
    assert conversation.summaries == [summary]  # at turn.completed, not again at finish
    assert "input tokens 6040" in conversation.by_type("system_message")[0]["content"]


def test_recorded_file_change() -> None:
    conversation = run(read_fixture("codex-exec-file-change.jsonl"))
    assert conversation.session_ids == ["019a2d7a-8e1c-7111-b1a6-8cec551a55a0"]
    (call,) = conversation.tool_calls()
    assert call["entry_type"]["status"] == {"status": "success"}
    action = call["entry_type"]["action_type"]
    assert action["action"] == "file_edit"
    assert action["path"] == "/private/tmp/codex-research-test/hello.txt"
    assert action["changes"][0]["action"] == "write"
    assert call["metadata"]["kind"] == "add"
    assert conversation.summaries == ["Created `hello.txt` containing `Hello from Codex`."]


def test_command_created_updated_then_failed_by_exit_code() -> None:
    conversation = run(
        [
            item(
                "item.started",
                id="c1",
                type="command_execution",
                command="make",
                status="in_progress",
            ),
            item(
                "item.updated",
                id="c1",
                type="command_execution",
                command="make",
                aggregated_output="cc ...",
                status="in_progress",
            ),
        ]
    )
    (call,) = conversation.tool_calls()
    assert call["entry_type"]["status"] == {"status": "created"}
    assert call["entry_type"]["action_type"]["result"]["output"] == "cc ..."
    first_timestamp = call["timestamp"]

    normalizer = CodexNormalizer()
    conversation = Conversation()
    conversation.feed_lines(
        normalizer,
        [
            item(
                "item.started",
                id="c1",
                type="command_execution",
                command="make",
                status="in_progress",
            ),
            item(
                "item.completed",
                id="c1",
                type="command_execution",
                command="make",
                aggregated_output="error",
                exit_code=2,
                status="completed",
            ),
        ],
    )
    (call,) = conversation.tool_calls()
    assert call["entry_type"]["status"] == {"status": "failed"}
    assert call["entry_type"]["action_type"]["result"]["exit_status"] == {
        "type": "exit_code",
        "code": 2,
    }
    assert isinstance(first_timestamp, str)


def test_multi_file_change_mcp_todo_and_search_items() -> None:
    conversation = run(
        [
            item(
                "item.completed",
                id="f1",
                type="file_change",
                status="completed",
                changes=[{"path": "a.py", "kind": "update"}, {"path": "b.py", "kind": "delete"}],
            ),
            item(
                "item.started",
                id="m1",
                type="mcp_tool_call",
                server="docs",
                tool="lookup",
                status="in_progress",
            ),
            item(
                "item.completed",
                id="m1",
                type="mcp_tool_call",
                server="docs",
                tool="lookup",
                status="failed",
                error={"message": "server down"},
            ),
            item(
                "item.started",
                id="t1",
                type="todo_list",
                items=[{"text": "write code", "completed": False}],
            ),
            item(
                "item.completed",
                id="t1",
                type="todo_list",
                items=[{"text": "write code", "completed": True}],
            ),
            item("item.completed", id="w1", type="web_search", query="asyncio subprocess"),
        ]
    )
    calls = conversation.tool_calls()
    assert [call["entry_type"]["action_type"].get("path") for call in calls[:2]] == ["a.py", "b.py"]
    assert calls[1]["entry_type"]["action_type"]["changes"] == [{"action": "delete"}]
    mcp = calls[2]["entry_type"]
    assert mcp["tool_name"] == "mcp__docs__lookup"
    assert mcp["status"] == {"status": "failed"}
    assert mcp["action_type"]["result"]["value"] == "server down"
    todo = calls[3]["entry_type"]
    assert todo["action_type"]["todos"] == [
        {"content": "write code", "status": "completed", "priority": None}
    ]
    assert todo["status"] == {"status": "success"}
    assert calls[4]["entry_type"]["action_type"] == {
        "action": "search",
        "query": "asyncio subprocess",
    }
    assert len(calls) == 5
    assert all(call["entry_type"]["status"]["status"] != "created" for call in calls)


def test_failures_unknown_lines_and_stderr() -> None:
    conversation = Conversation()
    normalizer = CodexNormalizer()
    conversation.feed_lines(
        normalizer,
        [
            json.dumps({"type": "turn.failed", "error": {"message": "stream disconnected"}}),
            json.dumps({"type": "error", "message": "rate limited"}),
            json.dumps({"type": "something.new", "x": 1}),
            "plain text",
        ],
    )
    conversation.feed_lines(normalizer, ["Reading prompt from stdin..."], stream="stderr")
    kinds = [(entry["entry_type"]["type"], entry["content"]) for entry in conversation.entries]
    assert kinds == [
        ("error_message", "turn failed: stream disconnected"),
        ("error_message", "rate limited"),
        ("system_message", '{"type": "something.new", "x": 1}'),
        ("system_message", "plain text"),
        ("error_message", "Reading prompt from stdin..."),
    ]


def test_summary_at_finish_without_turn_completed() -> None:
    conversation = run(
        [
            item("item.completed", id="a1", type="agent_message", text="first"),
            item("item.completed", id="a2", type="agent_message", text="last words"),
        ]
    )
    assert conversation.summaries == ["last words"]


AGENT_LINES = agent_output_lines(
    line_types=[
        "thread.started",
        "turn.completed",
        "turn.failed",
        "error",
        "item.started",
        "item.updated",
        "item.completed",
    ],
    top_level_keys=[
        "item",
        "thread_id",
        "usage",
        "error",
        "message",
    ],
    nested_keys=[
        "id",
        "type",
        "text",
        "command",
        "status",
        "exit_code",
        "changes",
        "path",
        "kind",
        "items",
        "error",
        "result",
        "server",
        "tool",
        "query",
        "aggregated_output",
    ],
)


@pytest.mark.timeout(180)  # 400 examples: seconds alone, a minute on a loaded machine
@settings(max_examples=400, deadline=None)
@given(AGENT_LINES)
def test_arbitrary_lines_never_crash(lines: list[str]) -> None:
    run(lines)
