"""Log entries as text: raw lines go to stdout or stderr as they were written (``LogPrinter``
prints a history tail and then a live stream, each line once); a normalized entry becomes one
record (``[assistant] text``, ``[tool Bash] ls (success)``), continuation lines indented.
"""

from __future__ import annotations

from typing import Any, Final, TextIO

from execlog.client import LogEntry, LogTail, StreamFrame
from execlog.conversation import (
    NormalizedEntry,
    denial_reason,
    entry_kind,
    entry_of_payload,
    error_kind,
    failed_exit_code,
    tool_name,
    tool_status_name,
    tool_subject,
)

__all__ = [
    "UPDATE_MARK",
    "LogPrinter",
    "describe_tool_status",
    "format_normalized_entry",
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


def format_normalized_entry(payload: dict[str, Any], *, update: bool = False) -> str:
    """One normalized payload (``{"type": "NORMALIZED_ENTRY", "content": …}``) as text; an
    ``update`` is an entry shown before whose text has changed."""
    entry = entry_of_payload(payload)
    if entry is None:
        content = payload.get("content")
        body = (
            str(content.get("content") or "") if isinstance(content, dict) else str(content or "")
        )
        label = "entry" if isinstance(content, dict) else str(payload.get("type", "entry")).lower()
        return _with_label(label, body, update)
    kind = entry_kind(entry)
    if kind == "tool_use":
        return _with_label(f"tool {tool_name(entry)}", _describe_tool(entry), update)
    if kind == "error_message":
        error = error_kind(entry)
        label = "error" if error in (None, "other") else f"error {error}"
        return _with_label(label, entry["content"], update)
    return _with_label(_LABELS.get(kind, kind), entry["content"], update)


def _with_label(label: str, body: str, update: bool) -> str:
    head = f"[{label}] {UPDATE_MARK}" if update else f"[{label}]"
    lines = body.splitlines() or [""]
    first = f"{head} {lines[0]}" if lines[0] else head
    return "\n".join([first, *(_INDENT + line for line in lines[1:])])


def _describe_tool(entry: NormalizedEntry) -> str:
    return f"{tool_subject(entry)} ({describe_tool_status(entry)})".lstrip()


def describe_tool_status(entry: NormalizedEntry) -> str:
    """``success``, ``failed, exit code 1``, ``denied: <reason>``, ``pending approval``, ..."""
    reason = denial_reason(entry)
    if reason:
        return f"denied: {reason}"
    code = failed_exit_code(entry)
    if code is not None:
        return f"failed, exit code {code}"
    return (tool_status_name(entry) or "unknown").replace("_", " ")


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
