"""What a normalizer emits (entry patches, the agent's session id, the turn summary) and the
typed constructors of CONTRACT.md's NormalizedEntry, ActionType and ToolStatus shapes.

A consumer applies an ``EntryPatch`` whose key it has seen before as a replacement of that
entry (same index) and appends every other one.
"""

from __future__ import annotations

import difflib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeAlias

import msgspec

from execlog.protocol import OutputStream

__all__ = [
    "decode_agent_line",
    "EntryPatch",
    "Normalizer",
    "NormalizerEvent",
    "SessionIdSeen",
    "SummarySeen",
    "assistant_message_entry",
    "command_result",
    "describe_json",
    "command_run_action",
    "edit_change",
    "error_message_entry",
    "file_edit_action",
    "file_read_action",
    "normalize_stderr_line",
    "now_rfc3339",
    "other_action",
    "search_action",
    "status_created",
    "status_denied",
    "status_failed",
    "status_pending_approval",
    "status_success",
    "status_timed_out",
    "system_message_entry",
    "thinking_entry",
    "todo_action",
    "tool_action",
    "tool_result",
    "tool_use_entry",
    "user_message_entry",
    "web_fetch_action",
    "with_tool_status",
    "write_change",
]

Entry: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True)
class EntryPatch:
    """A NormalizedEntry to append, or to put in place of the earlier entry with the same key."""

    key: str | None
    entry: Entry


@dataclass(frozen=True, slots=True)
class SessionIdSeen:
    agent_session_id: str


@dataclass(frozen=True, slots=True)
class SummarySeen:
    summary: str


NormalizerEvent: TypeAlias = EntryPatch | SessionIdSeen | SummarySeen


class Normalizer(Protocol):
    def feed(self, stream: OutputStream, line: str) -> list[NormalizerEvent]: ...

    def finish(self) -> list[NormalizerEvent]: ...


_clock_cache: list[Any] = [-1, ""]


def now_rfc3339() -> str:
    """The current UTC time, RFC 3339 with milliseconds; formatted once per millisecond since
    every entry of a fast stream asks for it."""
    ms = time.time_ns() // 1_000_000
    if ms != _clock_cache[0]:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
        _clock_cache[0] = ms
        _clock_cache[1] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    text: str = _clock_cache[1]
    return text


# --- NormalizedEntry --------------------------------------------------------------------------


def _entry(entry_type: dict[str, Any], content: str, metadata: Any, timestamp: str | None) -> Entry:
    entry: Entry = {
        "timestamp": timestamp if timestamp is not None else now_rfc3339(),
        "entry_type": entry_type,
        "content": content,
    }
    if metadata is not None:
        entry["metadata"] = metadata
    return entry


def user_message_entry(
    content: str, *, metadata: Any = None, timestamp: str | None = None
) -> Entry:
    return _entry({"type": "user_message"}, content, metadata, timestamp)


def assistant_message_entry(
    content: str, *, metadata: Any = None, timestamp: str | None = None
) -> Entry:
    return _entry({"type": "assistant_message"}, content, metadata, timestamp)


def thinking_entry(content: str, *, metadata: Any = None, timestamp: str | None = None) -> Entry:
    return _entry({"type": "thinking"}, content, metadata, timestamp)


def system_message_entry(
    content: str, *, metadata: Any = None, timestamp: str | None = None
) -> Entry:
    return _entry({"type": "system_message"}, content, metadata, timestamp)


def error_message_entry(
    content: str,
    *,
    error_type: Literal["other", "setup_required"] = "other",
    metadata: Any = None,
    timestamp: str | None = None,
) -> Entry:
    entry_type = {"type": "error_message", "error_type": {"type": error_type}}
    return _entry(entry_type, content, metadata, timestamp)


def tool_use_entry(
    tool_name: str,
    action_type: dict[str, Any],
    status: dict[str, Any],
    content: str,
    *,
    metadata: Any = None,
    timestamp: str | None = None,
) -> Entry:
    entry_type = {
        "type": "tool_use",
        "tool_name": tool_name,
        "action_type": action_type,
        "status": status,
    }
    return _entry(entry_type, content, metadata, timestamp)


def with_tool_status(entry: Entry, status: dict[str, Any]) -> Entry:
    """A copy of a tool_use entry with another ToolStatus (the input is not modified)."""
    entry_type = entry.get("entry_type")
    if not isinstance(entry_type, dict) or entry_type.get("type") != "tool_use":
        raise ValueError("with_tool_status needs a tool_use entry")
    return {**entry, "entry_type": {**entry_type, "status": status}}


# --- ToolStatus -------------------------------------------------------------------------------


def status_created() -> dict[str, Any]:
    return {"status": "created"}


def status_success() -> dict[str, Any]:
    return {"status": "success"}


def status_failed() -> dict[str, Any]:
    return {"status": "failed"}


def status_timed_out() -> dict[str, Any]:
    return {"status": "timed_out"}


def status_denied(reason: str | None) -> dict[str, Any]:
    return {"status": "denied", "reason": reason}


def status_pending_approval(
    approval_id: str, requested_at: str, timeout_at: str | None
) -> dict[str, Any]:
    return {
        "status": "pending_approval",
        "approval_id": approval_id,
        "requested_at": requested_at,
        "timeout_at": timeout_at,
    }


# --- ActionType -------------------------------------------------------------------------------


def file_read_action(path: str) -> dict[str, Any]:
    return {"action": "file_read", "path": path}


def write_change(content: str) -> dict[str, Any]:
    return {"action": "write", "content": content}


def edit_change(old: str, new: str, path: str = "") -> dict[str, Any]:
    """An edit as a unified diff of the replaced text (what the UI renders)."""
    diff = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{path}" if path else "a",
        tofile=f"b/{path}" if path else "b",
        lineterm="\n",
    )
    text = "".join(line if line.endswith("\n") else line + "\n" for line in diff)
    return {"action": "edit", "unified_diff": text, "has_line_numbers": False}


def file_edit_action(path: str, changes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"action": "file_edit", "path": path, "changes": changes}


def command_result(exit_status: dict[str, Any] | None, output: str | None) -> dict[str, Any]:
    """``exit_status`` is ``{"type": "exit_code", "code": n}`` or
    ``{"type": "success", "success": bool}`` (when the agent reports no code)."""
    return {"exit_status": exit_status, "output": output}


def command_run_action(command: str, result: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"action": "command_run", "command": command, "result": result}


def search_action(query: str) -> dict[str, Any]:
    return {"action": "search", "query": query}


def web_fetch_action(url: str) -> dict[str, Any]:
    return {"action": "web_fetch", "url": url}


def tool_result(value: Any, *, markdown: bool) -> dict[str, Any]:
    return {"type": {"type": "markdown" if markdown else "json"}, "value": value}


def tool_action(
    tool_name: str, arguments: Any, result: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"action": "tool", "tool_name": tool_name, "arguments": arguments, "result": result}


def todo_action(todos: list[dict[str, Any]], operation: str = "write") -> dict[str, Any]:
    """``todos``: ``{"content", "status", "priority"}`` items."""
    return {"action": "todo_management", "todos": todos, "operation": operation}


def other_action(description: str) -> dict[str, Any]:
    return {"action": "other", "description": description}


# --- stderr -----------------------------------------------------------------------------------


def normalize_stderr_line(line: str) -> list[NormalizerEvent]:
    """An agent's stderr line is an error message in the conversation (blank lines are not)."""
    if not line.strip():
        return []
    return [EntryPatch(None, error_message_entry(line))]


_line_decoder = msgspec.json.Decoder()


def decode_agent_line(stream: OutputStream, line: str) -> dict[str, Any] | list[NormalizerEvent]:
    """The first step of every JSON-lines normalizer: the decoded object, or the events that
    stand for a line that is not one (stderr → error entry, blank → none, anything that is not
    a JSON object → a system message with the text)."""
    if stream == "stderr":
        return normalize_stderr_line(line)
    if not line.strip():
        return []
    try:
        value = _line_decoder.decode(line)
    except msgspec.DecodeError:
        return [EntryPatch(None, system_message_entry(line))]
    if not isinstance(value, dict):
        return [EntryPatch(None, system_message_entry(line))]
    return value


def describe_json(value: Any) -> str:
    """Compact JSON text of a value, for entries that show what the agent sent as is."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)
