"""A coding agent's conversation as it streams, into a pipe or onto a terminal (issue 13).

``PlainConversation`` (a pipe, a file, ``--plain``): a message or thinking block is printed once
it is complete (a later entry appeared, or the stream ended), never part of it; a tool call is
printed when it appears and again, as one short line, each time its status changes.

``LiveConversation`` (a terminal): what still grows or runs is drawn in a rich ``Live`` region
and redrawn in place - the streamed text, a spinner per running tool call; an entry is printed
for good above that region once it and every entry before it are complete, so the scrollback
reads in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Protocol, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from execlog.console import describe_tool_status, format_normalized_entry
from execlog.conversation import (
    entry_kind,
    entry_of_payload,
    is_open_tool_call,
    tool_name,
    tool_status_name,
    tool_subject,
)

__all__ = [
    "ConversationView",
    "EntryView",
    "LiveConversation",
    "PlainConversation",
    "open_view",
    "shorten",
    "view_entry",
]

_SHORT_SUBJECT_CHARS: Final = 80


@dataclass(frozen=True, slots=True)
class EntryView:
    """One normalized payload, read for display."""

    index: int
    kind: str  # the entry_type's type: assistant_message, thinking, tool_use, ...
    text: str  # the whole entry as `execlog logs --normalized` prints it
    content: str
    tool_name: str = ""
    subject: str = ""  # a tool call's command, path, query or URL
    status: str = ""  # a tool call's status name
    status_text: str = ""  # "success", "failed, exit code 1", "denied: not now", ...
    is_open_tool: bool = False  # a tool call whose result or decision is still to come

    @property
    def is_tool(self) -> bool:
        return self.kind == "tool_use"

    @property
    def short_subject(self) -> str:
        return shorten(self.subject, _SHORT_SUBJECT_CHARS)

    @property
    def status_line(self) -> str:
        """A tool call's status change as one short, grep-friendly line."""
        return f"[tool {self.tool_name}] {self.short_subject} ({self.status_text})"


def shorten(text: str, limit: int) -> str:
    """The first line of ``text``, cut to ``limit`` characters; ``…`` marks what was left out."""
    first = text.splitlines()[0] if text else ""
    if len(first) > limit or "\n" in text.rstrip("\n"):
        return first[: limit - 1] + "…"
    return first


def view_entry(index: int, payload: dict[str, Any]) -> EntryView:
    entry = entry_of_payload(payload)
    text = format_normalized_entry(payload)
    if entry is None:
        content = payload.get("content")
        if isinstance(content, dict):
            return EntryView(index, "entry", text, str(content.get("content") or ""))
        return EntryView(index, "entry", text, str(content or ""))
    kind = entry_kind(entry)
    if kind != "tool_use":
        return EntryView(index, kind, text, entry["content"])
    return EntryView(
        index,
        kind,
        text,
        entry["content"],
        tool_name=tool_name(entry) or "?",
        subject=tool_subject(entry),
        status=tool_status_name(entry) or "",
        status_text=describe_tool_status(entry),
        is_open_tool=is_open_tool_call(entry),
    )


class ConversationView(Protocol):
    """Where the frames of one process's normalized stream go."""

    def show(self, entry_index: int, payload: dict[str, Any]) -> None:
        """An ``append`` or ``replace``: the entry as it is now."""

    def finish(self) -> None:
        """The stream ended: whatever is still held is complete now."""

    def paused(self) -> Any:
        """A context manager: nothing is drawn inside it (a prompt is on screen)."""


class PlainConversation:
    """Complete entries only, each once per state; for pipes and ``--plain``."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._highest = -1
        self._held: dict[int, EntryView] = {}  # text entries that may still grow
        self._printed: dict[int, str] = {}  # text entry → the text printed for it
        self._tool_states: dict[int, str] = {}  # tool call → the status printed for it

    def show(self, entry_index: int, payload: dict[str, Any]) -> None:
        view = view_entry(entry_index, payload)
        if entry_index > self._highest:
            # A later entry: every text entry before it is complete.
            self._release(below=entry_index)
            self._highest = entry_index
        if view.is_tool:
            self._show_tool(view)
        elif entry_index in self._printed:
            if view.text != self._printed[entry_index]:  # changed after it was complete
                self._printed[entry_index] = view.text
                self._write(format_normalized_entry(payload, update=True))
        elif entry_index == self._highest:
            self._held[entry_index] = view
        else:
            self._print_text(view)
        self._out.flush()

    def finish(self) -> None:
        self._release(below=None)
        self._out.flush()

    @contextmanager
    def paused(self) -> Iterator[None]:
        yield  # plain output is never redrawn

    def _show_tool(self, view: EntryView) -> None:
        shown = self._tool_states.get(view.index)
        if shown == view.status_text:
            return
        self._tool_states[view.index] = view.status_text
        if shown is None:
            self._write(view.text)
        elif shown == "pending approval" and view.status == "created":
            # Approved: the call runs now (the server restates it as `created`).
            self._write(f"[tool {view.tool_name}] {view.short_subject} (approved)")
        else:
            self._write(view.status_line)

    def _release(self, *, below: int | None) -> None:
        for index in sorted(self._held):
            if below is None or index < below:
                self._print_text(self._held.pop(index))

    def _print_text(self, view: EntryView) -> None:
        self._printed[view.index] = view.text
        self._write(view.text)

    def _write(self, text: str) -> None:
        self._out.write(text + "\n")


# --- on a terminal ------------------------------------------------------------------------

_TEXT_STYLES: Final = {
    "user_message": ("> ", "bold"),
    "assistant_message": ("", ""),
    "thinking": ("✻ ", "dim italic"),
    "system_message": ("· ", "dim"),
    "error_message": ("✗ ", "bold red"),
}
_DONE_MARKS: Final = {
    "success": ("✓", "green"),
    "failed": ("✗", "red"),
    "denied": ("⊘", "yellow"),
    "timed_out": ("⏱", "yellow"),
}


def open_view(out: TextIO, *, plain: bool) -> ConversationView:
    """Live drawing on a terminal; plain records into a pipe, a file, or with ``--plain``."""
    if plain or not out.isatty():
        return PlainConversation(out)
    return LiveConversation(Console(file=out))


def _state_of(view: EntryView) -> str:
    return view.status_text if view.is_tool else view.text


def _text_block(view: EntryView) -> Text:
    prefix, style = _TEXT_STYLES.get(view.kind, ("", ""))
    if view.kind == "entry" or view.kind not in _TEXT_STYLES:
        return Text(view.text, style=style)
    body = view.content if view.kind != "error_message" else view.text.split("] ", 1)[-1]
    return Text(prefix + body, style=style)


def _tool_head(view: EntryView) -> Text:
    return Text.assemble((view.tool_name, "bold"), "  ", view.short_subject)


def _tool_done(view: EntryView) -> Text:
    mark, style = _DONE_MARKS.get(view.status, ("•", ""))
    line = Text.assemble((mark, style), " ", _tool_head(view))
    if view.status != "success":
        line.append(f"  {view.status_text}", style=style)
    return line


def _tool_open(view: EntryView) -> RenderableType:
    if view.status == "pending_approval":
        return Text.assemble(("?", "bold yellow"), " ", _tool_head(view), ("  waiting", "yellow"))
    grid = Table.grid(padding=(0, 1))
    grid.add_row(Spinner("dots", style="cyan"), _tool_head(view))
    return grid


class LiveConversation:
    """Redraws what still changes in place; prints what is complete, in order, for good."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live = Live(console=console, refresh_per_second=12, transient=True, auto_refresh=True)
        self._entries: dict[int, EntryView] = {}  # not yet printed for good
        self._printed: dict[int, str] = {}  # printed for good → the state printed
        self._highest = -1
        self._started = False

    def show(self, entry_index: int, payload: dict[str, Any]) -> None:
        view = view_entry(entry_index, payload)
        if entry_index in self._printed:
            # Already printed for good (a restatement, or a resumed stream): only a changed
            # state is printed again.
            if _state_of(view) != self._printed[entry_index]:
                self._printed[entry_index] = _state_of(view)
                self._print_for_good(_tool_done(view) if view.is_tool else _text_block(view))
            return
        self._entries[entry_index] = view
        self._highest = max(self._highest, entry_index)
        self._print_complete(final=False)
        self._redraw()

    def finish(self) -> None:
        self._print_complete(final=True)
        if self._started:
            self._live.stop()
            self._started = False

    @contextmanager
    def paused(self) -> Iterator[None]:
        running = self._started
        if running:
            self._live.stop()
            self._started = False
        try:
            yield
        finally:
            if running:
                self._redraw()

    def _complete(self, view: EntryView) -> bool:
        return not view.is_open_tool if view.is_tool else view.index < self._highest

    def _print_complete(self, *, final: bool) -> None:
        for index in sorted(self._entries):
            view = self._entries[index]
            if not (final or self._complete(view)):
                break  # keep the order: nothing is printed past an entry still changing
            del self._entries[index]
            self._printed[index] = _state_of(view)
            self._print_for_good(_tool_done(view) if view.is_tool else _text_block(view))

    def _print_for_good(self, renderable: RenderableType) -> None:
        if self._started:
            self._live.console.print(renderable)
        else:
            self._console.print(renderable)

    def _redraw(self) -> None:
        parts = [
            _tool_open(view)
            if view.is_open_tool
            else _tool_done(view)
            if view.is_tool
            else _text_block(view)
            for _, view in sorted(self._entries.items())
        ]
        self._live.update(Group(*parts), refresh=True)
        if parts and not self._started:
            self._live.start(refresh=True)
            self._started = True
