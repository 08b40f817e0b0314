"""Shared by the normalizer tests: a conversation that applies events as the pipeline does."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from execlog.protocol import OutputStream
from execlog.runner.normalizers.base import (
    EntryPatch,
    Normalizer,
    NormalizerEvent,
    SessionIdSeen,
    SummarySeen,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "agents"


class Conversation:
    """Entries by index: a patch with a known key replaces, anything else appends."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.index_by_key: dict[str, int] = {}
        self.session_ids: list[str] = []
        self.summaries: list[str] = []
        self.replacements = 0

    def apply(self, events: list[NormalizerEvent]) -> None:
        for event in events:
            if isinstance(event, SessionIdSeen):
                self.session_ids.append(event.agent_session_id)
            elif isinstance(event, SummarySeen):
                self.summaries.append(event.summary)
            else:
                assert isinstance(event, EntryPatch)
                self._apply_patch(event)

    def _apply_patch(self, patch: EntryPatch) -> None:
        if patch.key is not None and patch.key in self.index_by_key:
            self.entries[self.index_by_key[patch.key]] = patch.entry
            self.replacements += 1
            return
        if patch.key is not None:
            self.index_by_key[patch.key] = len(self.entries)
        self.entries.append(patch.entry)

    def feed_lines(
        self, normalizer: Normalizer, lines: list[str], stream: OutputStream = "stdout"
    ) -> None:
        for line in lines:
            self.apply(normalizer.feed(stream, line))

    def types(self) -> Counter[str]:
        return Counter(entry["entry_type"]["type"] for entry in self.entries)

    def tool_calls(self) -> list[dict[str, Any]]:
        return [entry for entry in self.entries if entry["entry_type"]["type"] == "tool_use"]

    def by_type(self, entry_type: str) -> list[dict[str, Any]]:
        return [entry for entry in self.entries if entry["entry_type"]["type"] == entry_type]


def read_fixture(name: str) -> list[str]:
    return (FIXTURES / name).read_text(encoding="utf-8").splitlines()


def assert_entry_shape(entry: dict[str, Any]) -> None:
    """The NormalizedEntry shape of CONTRACT.md."""
    assert set(entry) <= {"timestamp", "entry_type", "content", "metadata"}
    assert entry["timestamp"] is None or isinstance(entry["timestamp"], str)
    assert isinstance(entry["content"], str)
    entry_type = entry["entry_type"]
    kind = entry_type["type"]
    assert kind in {
        "user_message",
        "assistant_message",
        "thinking",
        "system_message",
        "error_message",
        "tool_use",
    }
    if kind == "error_message":
        assert entry_type["error_type"]["type"] in {"other", "setup_required"}
    if kind == "tool_use":
        assert isinstance(entry_type["tool_name"], str)
        assert entry_type["status"]["status"] in {
            "created",
            "success",
            "failed",
            "timed_out",
            "denied",
            "pending_approval",
        }
        action = entry_type["action_type"]
        assert action["action"] in {
            "file_read",
            "file_edit",
            "command_run",
            "search",
            "web_fetch",
            "tool",
            "todo_management",
            "other",
        }


def agent_output_lines(
    line_types: Sequence[str], top_level_keys: Sequence[str], nested_keys: Sequence[str]
) -> st.SearchStrategy[list[str]]:
    """The one hypothesis strategy for every normalizer: a few output lines, each an
    agent-shaped JSON object (a known ``type``, any JSON under the agent's keys), arbitrary
    JSON, or plain text. Only the agent's vocabulary differs between normalizers."""
    json_values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.sampled_from(list(nested_keys)), children, max_size=6)
        ),
        max_leaves=20,
    )
    shaped = st.fixed_dictionaries(
        {"type": st.sampled_from(list(line_types))},
        optional={key: json_values for key in top_level_keys},
    ).map(json.dumps)
    return st.lists(shaped | st.text(max_size=40) | json_values.map(json.dumps), max_size=12)
