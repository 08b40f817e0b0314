"""The conversation's types (CONTRACT.md, "Entry payloads"): NormalizedEntry, EntryType,
ToolStatus and ActionType as TypedDicts, with their constructors and the few questions the
rest of execlog asks of an entry (is this an open tool call?).

They are plain dicts at run time, so an entry is encoded once by ``protocol`` with no
conversion; the types are for the normalizers that build entries, and for approvals, the
pipeline, the console and the API that read them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypeAlias, TypedDict, cast

from execlog.protocol import now_rfc3339

__all__ = [
    "ActionType",
    "CommandResult",
    "EntryType",
    "NormalizedEntry",
    "ToolStatus",
    "ToolStatusName",
    "assistant_message_entry",
    "command_result",
    "command_run_action",
    "edit_change",
    "entry_kind",
    "entry_of_payload",
    "error_kind",
    "error_message_entry",
    "failed_exit_code",
    "file_edit_action",
    "file_read_action",
    "is_open_tool_call",
    "other_action",
    "search_action",
    "denial_reason",
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
    "tool_name",
    "tool_result",
    "tool_status_name",
    "tool_subject",
    "tool_use_entry",
    "user_message_entry",
    "web_fetch_action",
    "with_tool_status",
    "write_change",
]

# --- ToolStatus -------------------------------------------------------------------------------

ToolStatusName = Literal["created", "success", "failed", "timed_out", "denied", "pending_approval"]


class _PlainStatus(TypedDict):
    status: Literal["created", "success", "failed", "timed_out"]


class _DeniedStatus(TypedDict):
    status: Literal["denied"]
    reason: str | None


class _PendingApprovalStatus(TypedDict):
    status: Literal["pending_approval"]
    approval_id: str
    requested_at: str
    timeout_at: str | None


ToolStatus: TypeAlias = _PlainStatus | _DeniedStatus | _PendingApprovalStatus

# A tool call whose status can still change (its result or an approval is to come).
_OPEN_STATUSES: frozenset[str] = frozenset({"created", "pending_approval"})


def status_created() -> ToolStatus:
    return {"status": "created"}


def status_success() -> ToolStatus:
    return {"status": "success"}


def status_failed() -> ToolStatus:
    return {"status": "failed"}


def status_timed_out() -> ToolStatus:
    return {"status": "timed_out"}


def status_denied(reason: str | None) -> ToolStatus:
    return {"status": "denied", "reason": reason}


def status_pending_approval(
    approval_id: str, requested_at: str, timeout_at: str | None
) -> ToolStatus:
    return {
        "status": "pending_approval",
        "approval_id": approval_id,
        "requested_at": requested_at,
        "timeout_at": timeout_at,
    }


# --- ActionType -------------------------------------------------------------------------------


class CommandResult(TypedDict):
    """``exit_status``: ``{"type": "exit_code", "code": n}`` or ``{"type": "success",
    "success": bool}`` (when the agent reports no code)."""

    exit_status: dict[str, Any] | None
    output: str | None


class _ToolResult(TypedDict):
    type: dict[str, str]
    value: Any


class _FileRead(TypedDict):
    action: Literal["file_read"]
    path: str


class _FileEdit(TypedDict):
    action: Literal["file_edit"]
    path: str
    changes: list[dict[str, Any]]


class _CommandRun(TypedDict):
    action: Literal["command_run"]
    command: str
    result: CommandResult | None


class _Search(TypedDict):
    action: Literal["search"]
    query: str


class _WebFetch(TypedDict):
    action: Literal["web_fetch"]
    url: str


class _Tool(TypedDict):
    action: Literal["tool"]
    tool_name: str
    arguments: Any
    result: _ToolResult | None


class _TodoManagement(TypedDict):
    action: Literal["todo_management"]
    todos: list[dict[str, Any]]
    operation: str


class _Other(TypedDict):
    action: Literal["other"]
    description: str


ActionType: TypeAlias = (
    _FileRead | _FileEdit | _CommandRun | _Search | _WebFetch | _Tool | _TodoManagement | _Other
)


def file_read_action(path: str) -> ActionType:
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


def file_edit_action(path: str, changes: list[dict[str, Any]]) -> ActionType:
    return {"action": "file_edit", "path": path, "changes": changes}


def command_result(exit_status: dict[str, Any] | None, output: str | None) -> CommandResult:
    return {"exit_status": exit_status, "output": output}


def command_run_action(command: str, result: CommandResult | None = None) -> ActionType:
    return {"action": "command_run", "command": command, "result": result}


def search_action(query: str) -> ActionType:
    return {"action": "search", "query": query}


def web_fetch_action(url: str) -> ActionType:
    return {"action": "web_fetch", "url": url}


def tool_result(value: Any, *, markdown: bool) -> _ToolResult:
    return {"type": {"type": "markdown" if markdown else "json"}, "value": value}


def tool_action(tool_name: str, arguments: Any, result: _ToolResult | None = None) -> ActionType:
    return {"action": "tool", "tool_name": tool_name, "arguments": arguments, "result": result}


def todo_action(todos: list[dict[str, Any]], operation: str = "write") -> ActionType:
    """``todos``: ``{"content", "status", "priority"}`` items."""
    return {"action": "todo_management", "todos": todos, "operation": operation}


def other_action(description: str) -> ActionType:
    return {"action": "other", "description": description}


# --- EntryType and NormalizedEntry --------------------------------------------------------------


class _MessageType(TypedDict):
    type: Literal["user_message", "assistant_message", "thinking", "system_message"]


class _ErrorKind(TypedDict):
    type: Literal["other", "setup_required"]


class _ErrorMessageType(TypedDict):
    type: Literal["error_message"]
    error_type: _ErrorKind


class _ToolUseType(TypedDict):
    type: Literal["tool_use"]
    tool_name: str
    action_type: ActionType
    status: ToolStatus


EntryType: TypeAlias = _MessageType | _ErrorMessageType | _ToolUseType


class NormalizedEntry(TypedDict):
    timestamp: str | None
    entry_type: EntryType
    content: str
    metadata: NotRequired[Any]


def _entry(
    entry_type: EntryType, content: str, metadata: Any, timestamp: str | None
) -> NormalizedEntry:
    entry: NormalizedEntry = {
        "timestamp": timestamp if timestamp is not None else now_rfc3339(),
        "entry_type": entry_type,
        "content": content,
    }
    if metadata is not None:
        entry["metadata"] = metadata
    return entry


def user_message_entry(
    content: str, *, metadata: Any = None, timestamp: str | None = None
) -> NormalizedEntry:
    return _entry({"type": "user_message"}, content, metadata, timestamp)


def assistant_message_entry(
    content: str, *, metadata: Any = None, timestamp: str | None = None
) -> NormalizedEntry:
    return _entry({"type": "assistant_message"}, content, metadata, timestamp)


def thinking_entry(
    content: str, *, metadata: Any = None, timestamp: str | None = None
) -> NormalizedEntry:
    return _entry({"type": "thinking"}, content, metadata, timestamp)


def system_message_entry(
    content: str, *, metadata: Any = None, timestamp: str | None = None
) -> NormalizedEntry:
    return _entry({"type": "system_message"}, content, metadata, timestamp)


def error_message_entry(
    content: str,
    *,
    error_type: Literal["other", "setup_required"] = "other",
    metadata: Any = None,
    timestamp: str | None = None,
) -> NormalizedEntry:
    entry_type: _ErrorMessageType = {"type": "error_message", "error_type": {"type": error_type}}
    return _entry(entry_type, content, metadata, timestamp)


def tool_use_entry(
    tool_name: str,
    action_type: ActionType,
    status: ToolStatus,
    content: str,
    *,
    metadata: Any = None,
    timestamp: str | None = None,
) -> NormalizedEntry:
    entry_type: _ToolUseType = {
        "type": "tool_use",
        "tool_name": tool_name,
        "action_type": action_type,
        "status": status,
    }
    return _entry(entry_type, content, metadata, timestamp)


# --- questions about an entry -----------------------------------------------------------------


def entry_of_payload(payload: Mapping[str, Any]) -> NormalizedEntry | None:
    """The NormalizedEntry a ``NORMALIZED_ENTRY`` payload carries, or ``None`` when its content
    does not have an entry's shape (a kind and a text; a tool call also its action and status).

    Payloads come over the wire, so their shape is checked once here and the questions below
    can read the typed fields."""
    entry = payload.get("content")
    if not isinstance(entry, dict) or not isinstance(entry.get("content"), str):
        return None
    entry_type = entry.get("entry_type")
    if not isinstance(entry_type, dict) or not isinstance(entry_type.get("type"), str):
        return None
    if entry_type["type"] == "tool_use" and not (
        isinstance(entry_type.get("tool_name"), str)
        and isinstance(entry_type.get("action_type"), dict)
        and isinstance(entry_type["action_type"].get("action"), str)
        and isinstance(entry_type.get("status"), dict)
        and isinstance(entry_type["status"].get("status"), str)
    ):
        return None
    return cast(NormalizedEntry, entry)


def entry_kind(entry: NormalizedEntry) -> str:
    """The entry type's name: ``assistant_message``, ``tool_use``, ``error_message``, ..."""
    return entry["entry_type"]["type"]


def error_kind(entry: NormalizedEntry) -> str | None:
    """An error message's kind (``other``, ``setup_required``); ``None`` for other entries."""
    entry_type = entry["entry_type"]
    if entry_type["type"] != "error_message":
        return None
    return entry_type.get("error_type", {}).get("type")


def tool_name(entry: NormalizedEntry) -> str | None:
    """The tool a tool call uses (``None`` for any other entry)."""
    entry_type = entry["entry_type"]
    if entry_type["type"] != "tool_use":
        return None
    return entry_type["tool_name"]


def tool_subject(entry: NormalizedEntry) -> str:
    """What a tool call acts on: the entry's own text, else its command, path, query, URL or
    description ("" when it names none)."""
    entry_type = entry["entry_type"]
    if entry["content"] or entry_type["type"] != "tool_use":
        return entry["content"]
    action = entry_type["action_type"]
    subject: object = ""
    if action["action"] == "command_run":
        subject = action.get("command", "")
    elif action["action"] in ("file_read", "file_edit"):
        subject = cast(_FileRead, action).get("path", "")
    elif action["action"] == "search":
        subject = action.get("query", "")
    elif action["action"] == "web_fetch":
        subject = action.get("url", "")
    elif action["action"] == "other":
        subject = action.get("description", "")
    return str(subject)


def denial_reason(entry: NormalizedEntry) -> str | None:
    """Why a tool call was denied (``None`` if it was not, or no reason was given)."""
    entry_type = entry["entry_type"]
    if entry_type["type"] != "tool_use":
        return None
    status = entry_type["status"]
    if status["status"] != "denied":
        return None
    return status.get("reason")


def failed_exit_code(entry: NormalizedEntry) -> object | None:
    """The exit code of a failed command run (``None`` for anything else, or without a code)."""
    entry_type = entry["entry_type"]
    if entry_type["type"] != "tool_use" or entry_type["status"]["status"] != "failed":
        return None
    action = entry_type["action_type"]
    if action["action"] != "command_run":
        return None
    result = action.get("result")
    exit_status = (result.get("exit_status") if result else None) or {}
    if exit_status.get("type") != "exit_code":
        return None
    return exit_status.get("code")


def tool_status_name(entry: NormalizedEntry) -> ToolStatusName | None:
    """The status of a tool call (``None`` for any other entry)."""
    entry_type = entry["entry_type"]
    if entry_type["type"] != "tool_use":
        return None
    return entry_type["status"]["status"]


def is_open_tool_call(entry: NormalizedEntry) -> bool:
    """A tool call whose status can still change (its result or an approval is to come)."""
    return tool_status_name(entry) in _OPEN_STATUSES


def with_tool_status(entry: NormalizedEntry, status: ToolStatus) -> NormalizedEntry:
    """A copy of a tool_use entry with another ToolStatus (the input is not modified)."""
    entry_type = entry["entry_type"]
    if entry_type["type"] != "tool_use":
        raise ValueError("with_tool_status needs a tool_use entry")
    return {**entry, "entry_type": {**entry_type, "status": status}}
