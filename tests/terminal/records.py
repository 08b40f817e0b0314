"""What plain (piped) conversation output must hold, given the entries as finally stored: each
message once and whole, and each tool call once per state it was seen in.

A stream that catches up sends an entry's current state, so a state the client never saw (a
tool call that completed before the stream reached it) is not printed: states in between may
be missing, but none is printed twice and every final state is there."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from execlog.client import LogEntry
from execlog.console import format_normalized_entry

__all__ = ["assert_each_state_once"]

PASSING_STATES = frozenset({"created", "pending approval", "approved"})


def assert_each_state_once(
    records: Sequence[str], final: Sequence[LogEntry], *, after: int = -1
) -> None:
    """``records``: the output split into records; ``final``: the stored entries; only entries
    above ``after`` are expected."""
    texts: list[str] = []
    final_states: dict[str, Counter[str]] = defaultdict(Counter)
    for item in final:
        if item.entry_index <= after:
            continue
        text = format_normalized_entry(item.entry)
        if text.startswith("[tool "):
            head, _, state = text.rpartition(" (")
            final_states[head][state.removesuffix(")")] += 1
        else:
            texts.append(text)
    # Every message and thinking block once, whole, in order: no partial text, no updates.
    assert [r for r in records if not r.startswith("[tool ")] == texts
    seen: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        if record.startswith("[tool "):
            head, _, state = record.rpartition(" (")
            seen[head][state.removesuffix(")")] += 1
    assert set(seen) == set(final_states)
    for head, states in seen.items():
        calls = sum(final_states[head].values())
        for state, count in states.items():
            if state in final_states[head]:
                assert count == final_states[head][state], (head, states)
            else:
                assert state in PASSING_STATES and count <= calls, (head, states)
