"""PlainConversation and LiveConversation fed with frames as a stream sends them: streamed text
is printed once complete, a tool call once per status, in place on a terminal."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from execlog.terminal.conversation import LiveConversation, PlainConversation, shorten


def message(text: str, kind: str = "assistant_message") -> dict[str, Any]:
    return {
        "type": "NORMALIZED_ENTRY",
        "content": {"timestamp": None, "entry_type": {"type": kind}, "content": text},
    }


def tool(command: str, status: str, **extra: Any) -> dict[str, Any]:
    entry_type = {
        "type": "tool_use",
        "tool_name": "Bash",
        "action_type": {"action": "command_run", "command": command, "result": None},
        "status": {"status": status, **extra},
    }
    return {
        "type": "NORMALIZED_ENTRY",
        "content": {"timestamp": None, "entry_type": entry_type, "content": command},
    }


def test_streamed_text_is_printed_once_when_a_later_entry_appears() -> None:
    out = io.StringIO()
    view = PlainConversation(out)
    for grown in ("The", "The retry", "The retry module is broken."):
        view.show(0, message(grown, "thinking"))
    assert out.getvalue() == ""  # still growing: nothing partial is printed
    view.show(1, message("Let me"))
    view.show(1, message("Let me look."))
    assert out.getvalue() == "[thinking] The retry module is broken.\n"
    view.finish()
    assert out.getvalue().splitlines() == [
        "[thinking] The retry module is broken.",
        "[assistant] Let me look.",
    ]


def test_a_tool_call_is_one_line_per_status() -> None:
    out = io.StringIO()
    view = PlainConversation(out)
    view.show(0, tool("ls src", "created"))
    view.show(0, tool("ls src", "created"))  # a restatement without a new status
    view.show(1, tool("git commit", "created"))
    view.show(1, tool("git commit", "pending_approval", approval_id="a", requested_at="t"))
    view.show(0, tool("ls src", "success"))
    view.show(1, tool("git commit", "denied", reason="not now"))
    view.finish()
    assert out.getvalue().splitlines() == [
        "[tool Bash] ls src (created)",
        "[tool Bash] git commit (created)",
        "[tool Bash] git commit (pending approval)",
        "[tool Bash] ls src (success)",
        "[tool Bash] git commit (denied: not now)",
    ]


def test_a_long_command_changes_status_on_one_short_line() -> None:
    out = io.StringIO()
    view = PlainConversation(out)
    command = "python - <<'EOF'\n" + "print(1)\n" * 3 + "EOF"
    view.show(0, tool(command, "created"))
    view.show(0, tool(command, "success"))
    lines = out.getvalue().splitlines()
    assert lines[-1] == "[tool Bash] python - <<'EOF'… (success)"
    assert len(lines) == 6  # the first print shows the whole command, indented


def test_text_that_changes_after_it_was_complete_is_printed_again_as_an_update() -> None:
    out = io.StringIO()
    view = PlainConversation(out)
    view.show(0, message("Done."))
    view.show(1, message("next"))
    view.show(0, message("Done."))  # the same text again: nothing
    view.show(0, message("Done, really."))
    assert out.getvalue().splitlines() == [
        "[assistant] Done.",
        "[assistant] (update) Done, really.",
    ]


def test_live_view_prints_complete_entries_in_order_and_clears_its_region() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, color_system=None)
    view = LiveConversation(console)
    view.show(0, tool("ls src", "created"))
    view.show(1, message("Reading"))
    view.show(1, message("Reading the listing."))
    view.show(2, tool("pytest -q", "created"))
    view.show(2, tool("pytest -q", "success"))
    before = out.getvalue()
    assert "✓ Bash  pytest -q" not in before.split("Reading the listing.")[0]
    view.show(0, tool("ls src", "success"))
    view.finish()
    printed = out.getvalue()
    # Printed for good (after the last redraw of the region): each entry, in index order.
    shown = ("✓ Bash  ls src", "Reading the listing.", "✓ Bash  pytest -q")
    order = [printed.rfind(text) for text in shown]
    assert order == sorted(order) and -1 not in order


def test_shorten_keeps_one_line() -> None:
    assert shorten("short", 10) == "short"
    assert shorten("a\nb", 10) == "a…"
    assert shorten("x" * 20, 10) == "x" * 9 + "…"


def test_live_view_prints_an_entry_again_only_when_its_state_changes() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=80, color_system=None)
    view = LiveConversation(console)
    view.show(0, message("Hello."))
    view.show(1, tool("ls", "success"))
    # A resumed stream restates what was printed for good: nothing new.
    view.show(0, message("Hello."))
    view.show(1, tool("ls", "success"))
    view.show(1, tool("ls", "failed"))
    view.finish()
    assert out.getvalue().splitlines() == ["Hello.", "✓ Bash  ls", "✗ Bash  ls  failed"]
