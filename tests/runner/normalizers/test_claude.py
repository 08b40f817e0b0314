"""ClaudeNormalizer: the recorded Claude Code session, streamed partial messages, sub-agents,
out-of-order results, and arbitrary input that must never crash it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings

from execlog.conversation import (
    status_denied,
    status_pending_approval,
    with_tool_status,
)
from execlog.protocol import encode_normalized_entry
from execlog.runner.normalizers.base import (
    EntryPatch,
)
from execlog.runner.normalizers.claude import ClaudeNormalizer

from . import Conversation, agent_output_lines, assert_entry_shape, read_fixture

SESSION = "a2566954-4e4c-4265-b0b2-0e42f2a13909"


def line(value: dict[str, Any]) -> str:
    return json.dumps(value)


def assistant(message_id: str, *blocks: dict[str, Any], parent: str | None = None) -> str:
    return line(
        {
            "type": "assistant",
            "message": {"id": message_id, "role": "assistant", "content": list(blocks)},
            "parent_tool_use_id": parent,
            "session_id": "s-1",
        }
    )


def result_line(tool_id: str, content: Any, *, is_error: bool = False) -> str:
    block = {
        "type": "tool_result",
        "tool_use_id": tool_id,
        "content": content,
        "is_error": is_error,
    }
    return line({"type": "user", "message": {"role": "user", "content": [block]}})


def stream_event(event: dict[str, Any]) -> str:
    return line({"type": "stream_event", "event": event, "session_id": "s-1"})


def test_recorded_session_becomes_a_conversation() -> None:
    conversation = Conversation()
    conversation.feed_lines(ClaudeNormalizer(), read_fixture("claude-code-build-session.jsonl"))

    assert conversation.session_ids == [SESSION]
    assert len(conversation.summaries) == 1
    assert conversation.summaries[0].startswith("Excellent! The project is complete")
    for entry in conversation.entries:
        assert_entry_shape(entry)
        encode_normalized_entry(entry)  # encodable as a payload

    types = conversation.types()
    assert types["tool_use"] == 20
    assert types["assistant_message"] == 6
    assert types["system_message"] == 2  # init and the final result
    assert types["user_message"] == 0
    assert sum(types.values()) == 28
    # Every result replaced its tool call in place: 20 replacements, nothing left open.
    assert conversation.replacements == 20
    statuses = [call["entry_type"]["status"]["status"] for call in conversation.tool_calls()]
    assert statuses.count("failed") == 1
    assert statuses.count("success") == 19

    init = conversation.entries[0]
    assert init["entry_type"]["type"] == "system_message"
    assert "claude-sonnet-4-5-20250929" in init["content"]
    assert "/home/ari/repos/claude-code-clean-output" in init["content"]


def test_recorded_tool_calls_carry_their_details() -> None:
    conversation = Conversation()
    conversation.feed_lines(ClaudeNormalizer(), read_fixture("claude-code-build-session.jsonl"))
    calls = {call["metadata"]["tool_use_id"]: call for call in conversation.tool_calls()}

    which_go = calls["toolu_01DUEFtsHTS3nmjub1EPXm1r"]["entry_type"]
    assert which_go["tool_name"] == "Bash"
    assert which_go["action_type"] == {
        "action": "command_run",
        "command": "which go",
        "result": {"exit_status": {"type": "success", "success": True}, "output": "/usr/bin/go"},
    }

    failed_read = calls["toolu_01BRu9dqQuHZTbGcPMK9KFYZ"]
    assert failed_read["entry_type"]["status"] == {"status": "failed"}
    assert failed_read["entry_type"]["action_type"] == {
        "action": "file_read",
        "path": "/home/ari/repos/claude-code-clean-output/claude-stream-json-log.log",
    }
    assert "File does not exist" in failed_read["metadata"]["error"]

    write = calls["toolu_01EVQVjYVcsJeZnjzLuhK2of"]["entry_type"]["action_type"]
    assert write["action"] == "file_edit"
    assert write["path"] == "/home/ari/repos/claude-code-clean-output/main.go"
    assert write["changes"][0]["action"] == "write"
    assert write["changes"][0]["content"].startswith("package main")

    glob = calls["toolu_01Y5XHqHrgfD5CrgXaCe9dG4"]["entry_type"]["action_type"]
    assert glob == {"action": "search", "query": "**/*.go"}

    todo = calls["toolu_01P9QeG7ZhvQ8BzbhgFZcDVn"]["entry_type"]["action_type"]
    assert todo["action"] == "todo_management"
    assert todo["todos"][0] == {
        "content": "Explore the repository structure and existing files",
        "status": "in_progress",
        "priority": None,
    }


def test_results_out_of_order_replace_the_right_calls() -> None:
    conversation = Conversation()
    normalizer = ClaudeNormalizer()
    conversation.feed_lines(
        normalizer,
        [
            assistant(
                "m1", {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "a"}}
            ),
            assistant(
                "m1", {"type": "tool_use", "id": "t2", "name": "Bash", "input": {"command": "b"}}
            ),
            result_line("t2", "out b", is_error=True),
            result_line("t1", [{"type": "text", "text": "out a"}]),
        ],
    )
    first, second = conversation.tool_calls()
    assert first["entry_type"]["action_type"]["result"]["output"] == "out a"
    assert first["entry_type"]["status"] == {"status": "success"}
    assert second["entry_type"]["action_type"]["result"]["output"] == "out b"
    assert second["entry_type"]["status"] == {"status": "failed"}


def test_result_before_its_call_is_applied_when_the_call_arrives() -> None:
    conversation = Conversation()
    conversation.feed_lines(
        ClaudeNormalizer(),
        [
            result_line("t9", "done"),
            assistant(
                "m1", {"type": "tool_use", "id": "t9", "name": "Read", "input": {"file_path": "x"}}
            ),
        ],
    )
    (call,) = conversation.tool_calls()
    assert call["entry_type"]["status"] == {"status": "success"}


def test_streamed_text_grows_then_the_final_line_replaces_it() -> None:
    conversation = Conversation()
    normalizer = ClaudeNormalizer()
    conversation.feed_lines(
        normalizer,
        [
            stream_event({"type": "message_start", "message": {"id": "m7"}}),
            stream_event(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "thinking", "thinking": ""},
                }
            ),
            stream_event(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": "Let me "},
                }
            ),
            stream_event(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": "think."},
                }
            ),
            assistant("m7", {"type": "thinking", "thinking": "Let me think.", "signature": "x"}),
            stream_event(
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {"type": "text", "text": ""},
                }
            ),
            stream_event(
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "text_delta", "text": "Hel"},
                }
            ),
        ],
    )
    assert [entry["content"] for entry in conversation.entries] == ["Let me think.", "Hel"]
    assert conversation.entries[1]["entry_type"] == {"type": "assistant_message"}
    timestamp = conversation.entries[1]["timestamp"]
    conversation.feed_lines(
        normalizer,
        [
            stream_event(
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "text_delta", "text": "lo!"},
                }
            ),
            stream_event(
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": "{"},
                }
            ),
            stream_event({"type": "content_block_stop", "index": 1}),
            assistant("m7", {"type": "text", "text": "Hello!"}),
            stream_event({"type": "message_stop"}),
        ],
    )
    assert [entry["content"] for entry in conversation.entries] == ["Let me think.", "Hello!"]
    assert conversation.entries[1]["timestamp"] == timestamp
    assert "streaming" not in conversation.entries[1]["metadata"]
    assert conversation.types() == {"thinking": 1, "assistant_message": 1}


def test_subagent_lines_link_to_their_parent_call() -> None:
    conversation = Conversation()
    conversation.feed_lines(
        ClaudeNormalizer(),
        [
            assistant(
                "m1",
                {
                    "type": "tool_use",
                    "id": "task1",
                    "name": "Task",
                    "input": {"description": "Explore", "prompt": "look"},
                },
            ),
            line(
                {
                    "type": "user",
                    "message": {"role": "user", "content": [{"type": "text", "text": "look"}]},
                    "parent_tool_use_id": "task1",
                }
            ),
            assistant(
                "m2",
                {
                    "type": "tool_use",
                    "id": "g1",
                    "name": "Grep",
                    "input": {"pattern": "TODO", "path": "src"},
                },
                parent="task1",
            ),
            result_line("g1", "src/a.py:1: TODO"),
            assistant("m3", {"type": "text", "text": "Found one TODO."}, parent="task1"),
            result_line("task1", [{"type": "text", "text": "One TODO in src/a.py"}]),
        ],
    )
    task, prompt, grep, report = conversation.entries
    assert task["entry_type"]["action_type"]["tool_name"] == "Task"
    assert task["entry_type"]["action_type"]["result"]["value"] == "One TODO in src/a.py"
    assert task["content"] == "Explore"
    assert prompt["entry_type"] == {"type": "user_message"}
    for entry in (prompt, grep, report):
        assert entry["metadata"]["parent_tool_use_id"] == "task1"
    assert grep["entry_type"]["action_type"] == {"action": "search", "query": "TODO"}
    assert grep["content"] == "TODO in src"


def test_tool_kinds_map_to_action_types() -> None:
    calls = [
        ("Edit", {"file_path": "a.py", "old_string": "x = 1\n", "new_string": "x = 2\n"}),
        (
            "MultiEdit",
            {
                "file_path": "b.py",
                "edits": [
                    {"old_string": "a", "new_string": "b"},
                    {"old_string": "c", "new_string": "d"},
                ],
            },
        ),
        ("WebFetch", {"url": "https://example.com", "prompt": "read"}),
        ("WebSearch", {"query": "asyncio"}),
        ("mcp__perplexity-mcp__perplexity_ask", {"messages": [{"role": "user", "content": "q"}]}),
    ]
    lines = [
        assistant(f"m{n}", {"type": "tool_use", "id": f"t{n}", "name": name, "input": args})
        for n, (name, args) in enumerate(calls)
    ]
    conversation = Conversation()
    conversation.feed_lines(ClaudeNormalizer(), lines + [result_line("t4", "answer")])
    edit, multi, fetch, search, mcp = (
        call["entry_type"]["action_type"] for call in conversation.tool_calls()
    )
    assert edit["path"] == "a.py"
    assert "-x = 1\n+x = 2\n" in edit["changes"][0]["unified_diff"]
    assert len(multi["changes"]) == 2
    assert fetch == {"action": "web_fetch", "url": "https://example.com"}
    assert search == {"action": "search", "query": "asyncio"}
    assert mcp["action"] == "tool"
    assert mcp["arguments"] == {"messages": [{"role": "user", "content": "q"}]}
    assert mcp["result"] == {"type": {"type": "markdown"}, "value": "answer"}
    assert conversation.tool_calls()[4]["content"] == "mcp: perplexity-mcp / perplexity_ask"


def test_result_error_user_text_rate_limits_and_junk() -> None:
    conversation = Conversation()
    conversation.feed_lines(
        ClaudeNormalizer(),
        [
            "not json at all",
            "[1, 2]",
            "",
            line({"type": "user", "message": {"role": "user", "content": "please continue"}}),
            line({"type": "rate_limit_event", "rate_limit_info": {"status": "allowed"}}),
            line({"type": "mystery", "x": 1}),
            line(
                {"type": "result", "subtype": "error_max_turns", "is_error": True, "num_turns": 3}
            ),
        ],
    )
    contents = [(entry["entry_type"]["type"], entry["content"]) for entry in conversation.entries]
    assert contents[0] == ("system_message", "not json at all")
    assert contents[1] == ("system_message", "[1, 2]")
    assert contents[2] == ("user_message", "please continue")
    assert contents[3][0] == "system_message" and "allowed" in contents[3][1]
    assert contents[4] == ("system_message", '{"type": "mystery", "x": 1}')
    assert contents[5] == ("error_message", "error_max_turns")
    assert conversation.summaries == []


def test_stderr_lines_are_error_messages() -> None:
    normalizer = ClaudeNormalizer()
    (patch,) = normalizer.feed("stderr", "Error: invalid API key")
    assert isinstance(patch, EntryPatch) and patch.key is None
    assert patch.entry["entry_type"] == {"type": "error_message", "error_type": {"type": "other"}}
    assert normalizer.feed("stderr", "   ") == []


def test_session_id_is_reported_once_per_change() -> None:
    conversation = Conversation()
    normalizer = ClaudeNormalizer()
    conversation.feed_lines(
        normalizer,
        [
            line(
                {"type": "system", "subtype": "init", "session_id": "s-1", "model": "m", "cwd": "/"}
            ),
            assistant("m1", {"type": "text", "text": "hi"}),
            line(
                {"type": "system", "subtype": "init", "session_id": "s-2", "model": "m", "cwd": "/"}
            ),
        ],
    )
    assert conversation.session_ids == ["s-1", "s-2"]


def test_with_tool_status_restates_a_call() -> None:
    (_session, patch) = ClaudeNormalizer().feed(
        "stdout",
        assistant(
            "m1", {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "rm -rf x"}}
        ),
    )
    assert isinstance(patch, EntryPatch)
    pending = with_tool_status(
        patch.entry, status_pending_approval("ap-1", "2025-01-01T00:00:00Z", None)
    )
    assert pending["entry_type"]["status"]["status"] == "pending_approval"
    assert patch.entry["entry_type"]["status"] == {"status": "created"}  # input untouched
    denied = with_tool_status(pending, status_denied("too risky"))
    assert denied["entry_type"]["status"] == {"status": "denied", "reason": "too risky"}
    assert denied["entry_type"]["action_type"]["command"] == "rm -rf x"


AGENT_LINES = agent_output_lines(
    line_types=[
        "assistant",
        "user",
        "stream_event",
        "system",
        "result",
        "rate_limit_event",
    ],
    top_level_keys=[
        "message",
        "event",
        "session_id",
        "parent_tool_use_id",
        "result",
        "subtype",
    ],
    nested_keys=[
        "type",
        "message",
        "content",
        "id",
        "text",
        "tool_use_id",
        "event",
        "index",
        "delta",
        "session_id",
        "parent_tool_use_id",
        "input",
        "name",
        "is_error",
        "result",
        "subtype",
    ],
)


@pytest.mark.timeout(180)  # 400 examples: seconds alone, a minute on a loaded machine
@settings(max_examples=400, deadline=None)
@given(AGENT_LINES)
def test_arbitrary_lines_never_crash(lines: list[str]) -> None:
    conversation = Conversation()
    normalizer = ClaudeNormalizer()
    conversation.feed_lines(normalizer, lines)
    conversation.apply(normalizer.finish())
    for entry in conversation.entries:
        assert_entry_shape(entry)
        encode_normalized_entry(entry)


def test_a_redacted_thinking_block_says_so_in_words() -> None:
    normalizer = ClaudeNormalizer()
    block = {"type": "redacted_thinking", "data": "EqoBCkgIARABGAIiQ..."}
    events = normalizer.feed("stdout", assistant("msg-r", block))
    [patch] = [event for event in events if isinstance(event, EntryPatch)]
    assert patch.entry["entry_type"] == {"type": "thinking"}
    assert patch.entry["content"] == "(redacted thinking)"
    assert "EqoBCkgI" not in json.dumps(patch.entry)  # the opaque data is not shown
