"""Text formatting of normalized entries, and LogPrinter's print-once rule for raw lines (by
index)."""

from __future__ import annotations

import io
from typing import Any

from execlog.client import LogEntry, LogTail, StreamFrame
from execlog.console import LogPrinter, format_normalized_entry
from execlog.conversation import (
    assistant_message_entry,
    command_result,
    command_run_action,
    error_message_entry,
    file_read_action,
    search_action,
    status_created,
    status_denied,
    status_failed,
    status_pending_approval,
    status_success,
    system_message_entry,
    thinking_entry,
    tool_use_entry,
    user_message_entry,
    web_fetch_action,
)


def _payload(entry: dict[str, Any]) -> dict[str, Any]:
    return {"type": "NORMALIZED_ENTRY", "content": entry}


def _raw(stream: str, text: str) -> dict[str, Any]:
    return {"type": stream, "content": text}


def _bash(status: dict[str, Any], result: dict[str, Any] | None = None) -> dict[str, Any]:
    action = command_run_action("pytest -q", result)
    return _payload(tool_use_entry("Bash", action, status, "pytest -q"))


def test_message_kinds_have_their_labels() -> None:
    cases = {
        "[user] fix it": user_message_entry("fix it"),
        "[assistant] done": assistant_message_entry("done"),
        "[thinking] hmm": thinking_entry("hmm"),
        "[system] model x": system_message_entry("model x"),
        "[error] boom": error_message_entry("boom"),
        "[error setup_required] log in": error_message_entry("log in", error_type="setup_required"),
    }
    for expected, entry in cases.items():
        assert format_normalized_entry(_payload(entry)) == expected


def test_tool_calls_show_subject_and_status() -> None:
    assert format_normalized_entry(_bash(status_created())) == "[tool Bash] pytest -q (created)"
    assert format_normalized_entry(_bash(status_success())) == "[tool Bash] pytest -q (success)"
    failed = _bash(status_failed(), command_result({"type": "exit_code", "code": 2}, "E"))
    assert format_normalized_entry(failed) == "[tool Bash] pytest -q (failed, exit code 2)"
    denied = format_normalized_entry(_bash(status_denied("not now")))
    assert denied == "[tool Bash] pytest -q (denied: not now)"
    pending = _bash(status_pending_approval("a1", "2024-01-01T00:00:00Z", None))
    assert format_normalized_entry(pending) == "[tool Bash] pytest -q (pending approval)"
    # Without content of its own, the action names the subject.
    grep = _payload(tool_use_entry("Grep", search_action("TODO"), status_success(), ""))
    assert format_normalized_entry(grep) == "[tool Grep] TODO (success)"


def test_multi_line_content_is_indented_and_updates_are_marked() -> None:
    entry = _payload(assistant_message_entry("first\nsecond\n\nfourth"))
    assert format_normalized_entry(entry) == "[assistant] first\n  second\n  \n  fourth"
    assert format_normalized_entry(entry, update=True).startswith("[assistant] (update) first\n")


def test_raw_lines_go_to_their_stream_once() -> None:
    out, err = io.StringIO(), io.StringIO()
    printer = LogPrinter(out, err)
    printer.print_tail(
        LogTail([LogEntry(0, _raw("STDOUT", "a")), LogEntry(1, _raw("STDERR", "b"))], 1)
    )
    assert printer.stream_after == 1
    frames = [
        StreamFrame("append", 1, _raw("STDERR", "b")),  # already printed from history
        StreamFrame("append", 2, _raw("STDOUT", "\x1b[31mred\x1b[0m")),
        StreamFrame("replace", 0, _raw("STDOUT", "a")),  # a resync re-sends held entries
        StreamFrame("replace", 2, _raw("STDOUT", "\x1b[31mred\x1b[0m")),
        StreamFrame("replace", 3, _raw("STDOUT", "c")),  # resync: above the last, so new
    ]
    for frame in frames:
        printer.print_frame(frame)
    assert out.getvalue() == "a\n\x1b[31mred\x1b[0m\nc\n"
    assert err.getvalue() == "b\n"


def test_a_tail_of_nothing_still_resumes_after_the_newest_index() -> None:
    out, err = io.StringIO(), io.StringIO()
    printer = LogPrinter(out, err)
    printer.print_tail(LogTail([], newest_index=41))
    assert printer.stream_after == 41
    printer.print_frame(StreamFrame("replace", 40, _raw("STDOUT", "old")))
    printer.print_frame(StreamFrame("append", 42, _raw("STDOUT", "new")))
    assert out.getvalue() == "new\n"
    assert printer.last_index == 42


def test_payloads_without_an_entry_shape_are_shown_as_they_are() -> None:
    # The wire may carry anything: a text, or a dict that is not an entry; neither is dropped.
    assert format_normalized_entry({"type": "STDOUT", "content": "hi"}) == "[stdout] hi"
    assert format_normalized_entry(_payload({"content": "bare"})) == "[entry] bare"
    broken_tool = {"timestamp": None, "entry_type": {"type": "tool_use"}, "content": "x"}
    assert format_normalized_entry(_payload(broken_tool)) == "[entry] x"


def test_tool_subject_comes_from_the_action_when_content_is_empty() -> None:
    read = _payload(tool_use_entry("Read", file_read_action("a.py"), status_success(), ""))
    assert format_normalized_entry(read) == "[tool Read] a.py (success)"
    fetch = _payload(tool_use_entry("Fetch", web_fetch_action("http://x"), status_failed(), ""))
    assert format_normalized_entry(fetch) == "[tool Fetch] http://x (failed)"
