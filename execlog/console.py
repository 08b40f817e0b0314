"""Log entries as text: raw lines go to stdout or stderr as they were written (``LogPrinter``
prints a history tail and then a live stream, each line once); a normalized entry becomes one
record (``[assistant] text``, ``[tool Bash] ls (success)``), continuation lines indented.
"""

from __future__ import annotations

from typing import Any, Final, TextIO

from execlog.client import LogEntry, LogTail, StreamFrame

__all__ = [
    "UPDATE_MARK",
    "LogPrinter",
    "describe_tool_status",
    "format_normalized_entry",
    "tool_subject",
]

UPDATE_MARK: Final = "(update)"
_INDENT: Final = "  "
_LABELS: Final = {
    "user_message": "user",
    "assistant_message": "assistant",
    "thinking": "thinking",
    "system_message": "system",
    "error_message": "error",
}
# What a tool call is about, per action, when the entry's own content is empty.
_ACTION_SUBJECTS: Final = {
    "command_run": "command",
    "file_read": "path",
    "file_edit": "path",
    "search": "query",
    "web_fetch": "url",
    "other": "description",
}


def format_normalized_entry(payload: dict[str, Any], *, update: bool = False) -> str:
    """One normalized payload (``{"type": "NORMALIZED_ENTRY", "content": …}``) as text; an
    ``update`` is an entry shown before whose text has changed."""
    entry = payload.get("content")
    if not isinstance(entry, dict):
        return _with_label(str(payload.get("type", "entry")).lower(), str(entry or ""), update)
    entry_type = entry.get("entry_type") or {}
    kind = str(entry_type.get("type", "entry"))
    content = str(entry.get("content") or "")
    if kind == "tool_use":
        return _with_label(
            f"tool {entry_type.get('tool_name', '?')}", _describe_tool(entry_type, content), update
        )
    if kind == "error_message":
        error_kind = (entry_type.get("error_type") or {}).get("type")
        label = "error" if error_kind in (None, "other") else f"error {error_kind}"
        return _with_label(label, content, update)
    return _with_label(_LABELS.get(kind, kind), content, update)


def _with_label(label: str, body: str, update: bool) -> str:
    head = f"[{label}] {UPDATE_MARK}" if update else f"[{label}]"
    lines = body.splitlines() or [""]
    first = f"{head} {lines[0]}" if lines[0] else head
    return "\n".join([first, *(_INDENT + line for line in lines[1:])])


def _describe_tool(entry_type: dict[str, Any], content: str) -> str:
    subject = tool_subject(entry_type, content)
    return f"{subject} ({describe_tool_status(entry_type)})".lstrip()


def tool_subject(entry_type: dict[str, Any], content: str) -> str:
    """What a tool call acts on: the entry's own text, else its command, path, query or URL."""
    action = entry_type.get("action_type") or {}
    return content or str(action.get(_ACTION_SUBJECTS.get(action.get("action", ""), ""), ""))


def describe_tool_status(entry_type: dict[str, Any]) -> str:
    """``success``, ``failed, exit code 1``, ``denied: <reason>``, ``pending approval``, ..."""
    status: dict[str, Any] = entry_type.get("status") or {}
    action: dict[str, Any] = entry_type.get("action_type") or {}
    name = str(status.get("status", "unknown"))
    if name == "denied" and status.get("reason"):
        return f"denied: {status['reason']}"
    if name == "failed" and action.get("action") == "command_run":
        exit_status = (action.get("result") or {}).get("exit_status") or {}
        if exit_status.get("type") == "exit_code":
            return f"failed, exit code {exit_status.get('code')}"
    return name.replace("_", " ")


class LogPrinter:
    """Prints the raw channel of one process, each line once, to the stream it was written to.

    An entry is printed when its index is above every index printed so far, so resync
    ``replace`` frames and entries the tail already showed are never printed twice. (The
    normalized channel is drawn by ``execlog.terminal.conversation``.)
    """

    channel: Final = "raw"

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self._out = out
        self._err = err
        self._last = -1  # the highest index printed, or known to exist (a tail of 0)

    @property
    def last_index(self) -> int:
        return self._last

    @property
    def stream_after(self) -> int:
        """The ``after`` for the live stream that continues what was printed."""
        return self._last

    def print_tail(self, tail: LogTail) -> None:
        for item in tail.entries:
            self._print_new(item)
        if tail.newest_index is not None and tail.newest_index > self._last:
            self._last = tail.newest_index
        self._out.flush()
        self._err.flush()

    def print_frame(self, frame: StreamFrame) -> None:
        """One stream frame; flushed at once, since a person or a pipe is watching live."""
        if frame.entry_index <= self._last:
            return
        self._print_new(LogEntry(frame.entry_index, frame.entry))
        self._out.flush()
        self._err.flush()

    def _print_new(self, item: LogEntry) -> None:
        self._last = max(self._last, item.entry_index)
        target = self._err if item.entry.get("type") == "STDERR" else self._out
        target.write(str(item.entry.get("content", "")) + "\n")
