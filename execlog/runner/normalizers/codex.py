"""Codex ``exec --json`` lines → conversation entries.

An item goes ``item.started`` → ``item.updated``* → ``item.completed`` under one id, each line
carrying the whole item: the entry is keyed by the item id and replaced. ``thread.started``
names the session (what ``codex exec resume`` takes); the last agent message is the summary.
"""

from __future__ import annotations

from typing import Any

from execlog.conversation import (
    NormalizedEntry,
    ToolStatus,
    assistant_message_entry,
    command_result,
    command_run_action,
    error_message_entry,
    file_edit_action,
    search_action,
    status_created,
    status_failed,
    status_success,
    system_message_entry,
    thinking_entry,
    todo_action,
    tool_action,
    tool_result,
    tool_use_entry,
)
from execlog.protocol import OutputStream
from execlog.runner.normalizers.base import (
    EntryPatch,
    NormalizerEvent,
    SessionIdSeen,
    SummarySeen,
    decode_agent_line,
    describe_json,
)

__all__ = ["CodexNormalizer"]


_CHANGE_BY_KIND: dict[str, dict[str, Any]] = {
    "add": {"action": "write", "content": ""},
    "delete": {"action": "delete"},
    "update": {"action": "edit", "unified_diff": "", "has_line_numbers": False},
}


class CodexNormalizer:
    """Stateful: feed every line of one process in order, then ``finish``."""

    def __init__(self) -> None:
        self._session_id: str | None = None
        self._last_message: str | None = None
        self._summary_sent: str | None = None
        # Timestamps of item entries already emitted, so a replacement keeps its first one.
        self._item_timestamps: dict[str, str | None] = {}

    def feed(self, stream: OutputStream, line: str) -> list[NormalizerEvent]:
        value = decode_agent_line(stream, line)
        if isinstance(value, list):
            return value
        try:
            return self._dispatch(value, line)
        except Exception:  # a surprising shape must never stop the pipeline
            return [EntryPatch(None, system_message_entry(line))]

    def finish(self) -> list[NormalizerEvent]:
        return self._summary_events()

    def _dispatch(self, value: dict[str, Any], line: str) -> list[NormalizerEvent]:
        kind = value.get("type")
        if kind == "thread.started":
            thread_id = value.get("thread_id")
            if isinstance(thread_id, str) and thread_id and thread_id != self._session_id:
                self._session_id = thread_id
                return [SessionIdSeen(thread_id)]
            return []
        if kind == "turn.started":
            return []
        if kind == "turn.completed":
            events = self._summary_events()
            usage = _mapping(value.get("usage"))
            facts = [f"{name.replace('_', ' ')} {count}" for name, count in usage.items()]
            content = "Turn completed" + (": " + ", ".join(facts) if facts else "")
            events.append(
                EntryPatch(None, system_message_entry(content, metadata={"usage": usage}))
            )
            return events
        if kind == "turn.failed":
            error = _mapping(value.get("error"))
            message = _text(error.get("message")) or describe_json(value.get("error"))
            return [EntryPatch(None, error_message_entry(f"turn failed: {message}"))]
        if kind == "error":
            message = _text(value.get("message")) or line
            return [EntryPatch(None, error_message_entry(message))]
        if kind in ("item.started", "item.updated", "item.completed"):
            item = _mapping(value.get("item"))
            return self._on_item(item, kind, line)
        return [EntryPatch(None, system_message_entry(line))]

    def _summary_events(self) -> list[NormalizerEvent]:
        if self._last_message is None or self._last_message == self._summary_sent:
            return []
        self._summary_sent = self._last_message
        return [SummarySeen(self._last_message)]

    def _on_item(self, item: dict[str, Any], event: str, line: str) -> list[NormalizerEvent]:
        item_id = _text(item.get("id"))
        kind = item.get("type")
        completed = event == "item.completed"
        metadata = {"item_id": item_id} if item_id else None
        if kind == "agent_message":
            text = _text(item.get("text")) or ""
            if completed:
                self._last_message = text
            return self._patches(item_id, [assistant_message_entry(text, metadata=metadata)])
        if kind == "reasoning":
            return self._patches(
                item_id, [thinking_entry(_text(item.get("text")) or "", metadata=metadata)]
            )
        if kind == "error":
            message = _text(item.get("message")) or describe_json(item)
            return self._patches(item_id, [error_message_entry(message, metadata=metadata)])
        if kind == "command_execution":
            return self._patches(item_id, [_command_entry(item, completed, metadata)])
        if kind == "file_change":
            return self._patches(item_id, _file_change_entries(item, completed, metadata))
        if kind == "mcp_tool_call":
            return self._patches(item_id, [_mcp_entry(item, completed, metadata)])
        if kind == "todo_list":
            return self._patches(item_id, [_todo_entry(item, completed, metadata)])
        if kind == "web_search":
            query = _text(item.get("query")) or ""
            status = _item_status(item, completed)
            entry = tool_use_entry(
                "web_search", search_action(query), status, query, metadata=metadata
            )
            return self._patches(item_id, [entry])
        return [EntryPatch(None, system_message_entry(line))]

    def _patches(
        self, item_id: str | None, entries: list[NormalizedEntry]
    ) -> list[NormalizerEvent]:
        """One patch per entry of an item; several entries (file changes) get ``id:n`` keys."""
        if item_id is None:
            return [EntryPatch(None, entry) for entry in entries]
        patches: list[NormalizerEvent] = []
        for number, entry in enumerate(entries):
            key = item_id if number == 0 else f"{item_id}:{number}"
            first = self._item_timestamps.setdefault(key, entry["timestamp"])
            entry["timestamp"] = first
            patches.append(EntryPatch(key, entry))
        return patches


def _item_status(item: dict[str, Any], completed: bool) -> ToolStatus:
    status = item.get("status")
    exit_code = item.get("exit_code")
    if status == "failed" or (isinstance(exit_code, int) and exit_code != 0):
        return status_failed()
    if completed or status == "completed":
        return status_success()
    return status_created()


def _command_entry(item: dict[str, Any], completed: bool, metadata: Any) -> NormalizedEntry:
    command = _text(item.get("command")) or ""
    output = _text(item.get("aggregated_output"))
    exit_code = item.get("exit_code")
    result = None
    if completed or output or isinstance(exit_code, int):
        exit_status = (
            {"type": "exit_code", "code": exit_code} if isinstance(exit_code, int) else None
        )
        result = command_result(exit_status, output)
    status = _item_status(item, completed)
    return tool_use_entry(
        "shell", command_run_action(command, result), status, command, metadata=metadata
    )


def _file_change_entries(
    item: dict[str, Any], completed: bool, metadata: Any
) -> list[NormalizedEntry]:
    status = _item_status(item, completed)
    changes = item.get("changes")
    entries = []
    for change in changes if isinstance(changes, list) else []:
        if not isinstance(change, dict):
            continue
        path = _text(change.get("path")) or ""
        kind = _text(change.get("kind")) or "update"
        action = file_edit_action(path, [dict(_CHANGE_BY_KIND.get(kind, {"action": kind}))])
        entry_metadata = {**(metadata or {}), "kind": kind}
        entries.append(tool_use_entry("apply_patch", action, status, path, metadata=entry_metadata))
    if not entries:
        entries.append(
            tool_use_entry(
                "apply_patch", file_edit_action("", []), status, "file change", metadata=metadata
            )
        )
    return entries


def _mcp_entry(item: dict[str, Any], completed: bool, metadata: Any) -> NormalizedEntry:
    server = _text(item.get("server")) or "?"
    tool = _text(item.get("tool")) or "?"
    name = f"mcp__{server}__{tool}"
    result = None
    if item.get("error") is not None:
        error = _mapping(item.get("error"))
        result = tool_result(
            _text(error.get("message")) or describe_json(item["error"]), markdown=True
        )
    elif item.get("result") is not None:
        result = tool_result(item["result"], markdown=False)
    action = tool_action(name, item.get("arguments"), result)
    status = status_failed() if item.get("error") is not None else _item_status(item, completed)
    return tool_use_entry(name, action, status, f"mcp: {server} / {tool}", metadata=metadata)


def _todo_entry(item: dict[str, Any], completed: bool, metadata: Any) -> NormalizedEntry:
    raw_items = item.get("items")
    todos = [
        {
            "content": _text(todo.get("text")) or "",
            "status": "completed" if todo.get("completed") is True else "pending",
            "priority": None,
        }
        for todo in (raw_items if isinstance(raw_items, list) else [])
        if isinstance(todo, dict)
    ]
    status = _item_status(item, completed)
    return tool_use_entry(
        "todo_list", todo_action(todos), status, "TODO list updated", metadata=metadata
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
