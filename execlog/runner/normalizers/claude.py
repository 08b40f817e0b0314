"""Claude Code ``--output-format stream-json --verbose`` lines → conversation entries.

Tool calls are keyed by their ``tool_use`` id and replaced when their ``tool_result`` arrives
(in any order); streamed text (``stream_event`` deltas) is keyed by message id and block index
and replaced by the final ``assistant`` line of that block. See tests/fixtures/agents/SOURCES.md.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from execlog.conversation import (
    ActionType,
    NormalizedEntry,
    ToolStatus,
    assistant_message_entry,
    command_result,
    command_run_action,
    edit_change,
    error_message_entry,
    file_edit_action,
    file_read_action,
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
    user_message_entry,
    web_fetch_action,
    write_change,
)
from execlog.protocol import OutputStream, now_rfc3339
from execlog.runner.normalizers.base import (
    EntryPatch,
    NormalizerEvent,
    SessionIdSeen,
    SummarySeen,
    decode_agent_line,
    describe_json,
)

__all__ = ["ClaudeNormalizer"]

# Results that arrive before their tool_use_entry (not seen in practice, but allowed) wait here.
_MAX_EARLY_RESULTS: Final = 1000
# Messages whose blocks are still being counted; older ones are done.
_MAX_OPEN_MESSAGES: Final = 256
# Text kept in an entry's metadata when a non-command tool fails.
_MAX_ERROR_CHARS: Final = 4000


@dataclass(slots=True)
class _ToolCall:
    tool_name: str
    action: ActionType
    content: str
    metadata: dict[str, Any]
    timestamp: str


class ClaudeNormalizer:
    """Stateful: feed every line of one process in order, then ``finish``."""

    def __init__(self) -> None:
        self._session_id: str | None = None
        self._open_calls: dict[str, _ToolCall] = {}
        self._early_results: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._blocks_seen: OrderedDict[str, int] = OrderedDict()
        # Streamed (partial) blocks: key → (first timestamp, text so far).
        self._streamed: dict[str, tuple[str, str]] = {}
        # Message being streamed, per scope ("" = main agent, else the parent tool_use id).
        self._streaming_message: dict[str, str] = {}

    def feed(self, stream: OutputStream, line: str) -> list[NormalizerEvent]:
        value = decode_agent_line(stream, line)
        if isinstance(value, list):
            return value
        events: list[NormalizerEvent] = []
        session_id = value.get("session_id")
        if isinstance(session_id, str) and session_id and session_id != self._session_id:
            self._session_id = session_id
            events.append(SessionIdSeen(session_id))
        try:
            events.extend(self._dispatch(value, line))
        except Exception:  # a surprising shape must never stop the pipeline
            events.append(EntryPatch(None, system_message_entry(line)))
        return events

    def finish(self) -> list[NormalizerEvent]:
        return []

    # --- line types ---------------------------------------------------------------------------

    def _dispatch(self, value: dict[str, Any], line: str) -> list[NormalizerEvent]:
        kind = value.get("type")
        if kind == "assistant":
            return self._on_assistant(value)
        if kind == "user":
            return self._on_user(value)
        if kind == "stream_event":
            return self._on_stream_event(value)
        if kind == "system":
            return [EntryPatch(None, self._system_entry(value))]
        if kind == "result":
            return self._on_result(value)
        if kind == "rate_limit_event":
            info = value.get("rate_limit_info", value)
            return [EntryPatch(None, system_message_entry("rate limit: " + describe_json(info)))]
        return [EntryPatch(None, system_message_entry(line))]

    def _system_entry(self, value: dict[str, Any]) -> NormalizedEntry:
        subtype = _text(value.get("subtype")) or "system"
        if subtype == "init":
            model = _text(value.get("model")) or "unknown model"
            cwd = _text(value.get("cwd")) or "?"
            metadata = _compact(
                {"subtype": "init", "model": model, "cwd": cwd, "session_id": self._session_id}
            )
            return system_message_entry(f"model {model}, cwd {cwd}", metadata=metadata)
        message = _text(value.get("message")) or _text(value.get("content"))
        content = f"{subtype}: {message}" if message else subtype
        return system_message_entry(content, metadata={"subtype": subtype})

    def _on_result(self, value: dict[str, Any]) -> list[NormalizerEvent]:
        events: list[NormalizerEvent] = []
        result = value.get("result")
        if isinstance(result, str) and result:
            events.append(SummarySeen(result))
        subtype = _text(value.get("subtype")) or "result"
        if value.get("is_error") is True or subtype.startswith("error"):
            detail = result if isinstance(result, str) and result else subtype
            errors = value.get("errors")
            if isinstance(errors, list) and errors:
                detail += ": " + "; ".join(str(error) for error in errors)
            events.append(
                EntryPatch(None, error_message_entry(detail, metadata={"subtype": subtype}))
            )
            return events
        facts = []
        if isinstance(turns := value.get("num_turns"), int):
            facts.append(f"{turns} turns")
        if isinstance(duration := value.get("duration_ms"), int | float):
            facts.append(f"{duration / 1000:.1f} s")
        if isinstance(cost := value.get("total_cost_usd"), int | float):
            facts.append(f"${cost:.4f}")
        content = "Finished" + (": " + ", ".join(facts) if facts else "")
        events.append(
            EntryPatch(None, system_message_entry(content, metadata={"subtype": subtype}))
        )
        return events

    def _on_assistant(self, value: dict[str, Any]) -> list[NormalizerEvent]:
        message = _mapping(value.get("message"))
        message_id = _text(message.get("id"))
        parent = _text(value.get("parent_tool_use_id"))
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        events: list[NormalizerEvent] = []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            index = self._next_block_index(message_id)
            events.extend(self._on_assistant_block(block, message_id, index, parent))
        return events

    def _on_assistant_block(
        self, block: dict[str, Any], message_id: str | None, index: int, parent: str | None
    ) -> list[NormalizerEvent]:
        kind = block.get("type")
        metadata = _compact({"message_id": message_id, "parent_tool_use_id": parent})
        key = f"{message_id}:{index}" if message_id else None
        timestamp = self._streamed.pop(key, (None, ""))[0] if key else None
        if kind == "text":
            entry = assistant_message_entry(
                _text(block.get("text")) or "", metadata=metadata or None
            )
        elif kind == "thinking":
            entry = thinking_entry(_text(block.get("thinking")) or "", metadata=metadata or None)
        elif kind == "redacted_thinking":
            entry = thinking_entry("(redacted thinking)", metadata=metadata or None)
        elif kind in ("tool_use", "server_tool_use"):
            return self._on_tool_use(block, message_id, parent)
        else:
            entry = system_message_entry(describe_json(block), metadata=metadata or None)
        if timestamp is not None:
            entry["timestamp"] = timestamp
        return [EntryPatch(key, entry)]

    def _on_tool_use(
        self, block: dict[str, Any], message_id: str | None, parent: str | None
    ) -> list[NormalizerEvent]:
        tool_id = _text(block.get("id"))
        name = _text(block.get("name")) or "unknown"
        arguments = block.get("input")
        action, content = describe_tool_call(name, arguments)
        metadata = _compact(
            {"tool_use_id": tool_id, "message_id": message_id, "parent_tool_use_id": parent}
        )
        call = _ToolCall(name, action, content, metadata, now_rfc3339())
        if tool_id is None:
            return [EntryPatch(None, _tool_entry(call, status_created()))]
        early = self._early_results.pop(tool_id, None)
        if early is not None:
            return [EntryPatch(tool_id, _completed_entry(call, early))]
        self._open_calls[tool_id] = call
        return [EntryPatch(tool_id, _tool_entry(call, status_created()))]

    def _on_user(self, value: dict[str, Any]) -> list[NormalizerEvent]:
        message = _mapping(value.get("message"))
        parent = _text(value.get("parent_tool_use_id"))
        metadata = _compact({"parent_tool_use_id": parent}) or None
        content = message.get("content")
        if isinstance(content, str):
            return (
                [EntryPatch(None, user_message_entry(content, metadata=metadata))]
                if content
                else []
            )
        events: list[NormalizerEvent] = []
        texts: list[str] = []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "tool_result":
                events.extend(self._on_tool_result(block))
            elif kind == "text":
                texts.append(_text(block.get("text")) or "")
            elif kind == "image":
                texts.append("[image]")
        if texts:
            events.append(EntryPatch(None, user_message_entry("\n".join(texts), metadata=metadata)))
        return events

    def _on_tool_result(self, block: dict[str, Any]) -> list[NormalizerEvent]:
        tool_id = _text(block.get("tool_use_id"))
        if tool_id is None:
            return []
        call = self._open_calls.pop(tool_id, None)
        if call is None:
            self._early_results[tool_id] = block
            if len(self._early_results) > _MAX_EARLY_RESULTS:
                self._early_results.popitem(last=False)
            return []
        return [EntryPatch(tool_id, _completed_entry(call, block))]

    def _on_stream_event(self, value: dict[str, Any]) -> list[NormalizerEvent]:
        event = _mapping(value.get("event"))
        scope = _text(value.get("parent_tool_use_id")) or ""
        kind = event.get("type")
        if kind == "message_start":
            message_id = _text(_mapping(event.get("message")).get("id"))
            previous = self._streaming_message.pop(scope, None)
            if previous is not None:
                # Blocks of the previous message that never got their final line are dropped.
                prefix = previous + ":"
                for key in [key for key in self._streamed if key.startswith(prefix)]:
                    del self._streamed[key]
            if message_id is not None:
                self._streaming_message[scope] = message_id
            return []
        if kind == "content_block_start":
            block = _mapping(event.get("content_block"))
            initial = _text(block.get("text")) or _text(block.get("thinking"))
            if initial and block.get("type") in ("text", "thinking"):
                return self._grow_streamed_block(scope, event.get("index"), block["type"], initial)
            return []
        if kind == "content_block_delta":
            delta = _mapping(event.get("delta"))
            if delta.get("type") == "text_delta":
                piece, block_type = _text(delta.get("text")), "text"
            elif delta.get("type") == "thinking_delta":
                piece, block_type = _text(delta.get("thinking")), "thinking"
            else:
                return []  # tool input and signatures: the final assistant line has them whole
            if not piece:
                return []
            return self._grow_streamed_block(scope, event.get("index"), block_type, piece)
        return []

    def _grow_streamed_block(
        self, scope: str, index: Any, block_type: str, piece: str
    ) -> list[NormalizerEvent]:
        message_id = self._streaming_message.get(scope)
        if message_id is None or not isinstance(index, int):
            return []
        key = f"{message_id}:{index}"
        timestamp, text = self._streamed.get(key, (now_rfc3339(), ""))
        text += piece
        self._streamed[key] = (timestamp, text)
        metadata = _compact(
            {"message_id": message_id, "parent_tool_use_id": scope or None, "streaming": True}
        )
        make = assistant_message_entry if block_type == "text" else thinking_entry
        return [EntryPatch(key, make(text, metadata=metadata, timestamp=timestamp))]

    def _next_block_index(self, message_id: str | None) -> int:
        """Claude Code prints each block of a message on its own line: count them per message
        to find the block index that stream events use."""
        if message_id is None:
            return 0
        index = self._blocks_seen.pop(message_id, 0)
        self._blocks_seen[message_id] = index + 1
        if len(self._blocks_seen) > _MAX_OPEN_MESSAGES:
            self._blocks_seen.popitem(last=False)
        return index


# --- tool calls -------------------------------------------------------------------------------


def describe_tool_call(name: str, arguments: Any) -> tuple[ActionType, str]:
    """The ActionType of a Claude Code tool call, and the text shown for it."""
    args = arguments if isinstance(arguments, dict) else {}

    def arg(key: str) -> str:
        return _text(args.get(key)) or ""

    if name == "Bash":
        return command_run_action(arg("command")), arg("command")
    if name == "Read":
        return file_read_action(arg("file_path")), arg("file_path")
    if name == "Edit":
        path = arg("file_path")
        change = edit_change(arg("old_string"), arg("new_string"), path)
        return file_edit_action(path, [change]), path
    if name == "MultiEdit":
        path = arg("file_path")
        edits = args.get("edits")
        changes = [
            edit_change(_text(e.get("old_string")) or "", _text(e.get("new_string")) or "", path)
            for e in (edits if isinstance(edits, list) else [])
            if isinstance(e, dict)
        ]
        return file_edit_action(path, changes), path
    if name == "Write":
        path = arg("file_path")
        return file_edit_action(path, [write_change(arg("content"))]), path
    if name == "NotebookEdit":
        path = arg("notebook_path")
        return file_edit_action(path, [write_change(arg("new_source"))]), path
    if name in ("Grep", "Glob"):
        where = arg("path")
        query = arg("pattern")
        return search_action(query), f"{query} in {where}" if where else query
    if name == "WebSearch":
        return search_action(arg("query")), arg("query")
    if name == "WebFetch":
        return web_fetch_action(arg("url")), arg("url")
    if name == "TodoWrite":
        todos = args.get("todos")
        items = [
            {
                "content": _text(todo.get("content")) or "",
                "status": _text(todo.get("status")) or "pending",
                "priority": _text(todo.get("priority")),
            }
            for todo in (todos if isinstance(todos, list) else [])
            if isinstance(todo, dict)
        ]
        return todo_action(items), "TODO list updated"
    content = arg("description") or name
    if name.startswith("mcp__"):
        content = "mcp: " + name.removeprefix("mcp__").replace("__", " / ", 1)
    return tool_action(name, arguments), content


def _tool_entry(call: _ToolCall, status: ToolStatus) -> NormalizedEntry:
    return tool_use_entry(
        call.tool_name,
        call.action,
        status,
        call.content,
        metadata=call.metadata or None,
        timestamp=call.timestamp,
    )


def _completed_entry(call: _ToolCall, block: dict[str, Any]) -> NormalizedEntry:
    """The tool call's entry once its ``tool_result`` block has arrived."""
    failed = block.get("is_error") is True
    output = _result_text(block.get("content"))
    action = call.action
    metadata = dict(call.metadata)
    if action["action"] == "command_run":
        result = command_result({"type": "success", "success": not failed}, output)
        action = command_run_action(action["command"], result)
    elif action["action"] == "tool":
        result_value = tool_result(output, markdown=True)
        action = tool_action(action["tool_name"], action["arguments"], result_value)
    elif failed:
        metadata["error"] = output[:_MAX_ERROR_CHARS]
    finished = _ToolCall(call.tool_name, action, call.content, metadata, call.timestamp)
    return _tool_entry(finished, status_failed() if failed else status_success())


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for item in content:
            if isinstance(item, dict):
                text = item.get("text")
                parts.append(text if isinstance(text, str) else f"[{item.get('type', 'item')}]")
            elif isinstance(item, str):
                parts.append(item)
        return "\n".join(parts)
    return "" if content is None else describe_json(content)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
