"""What a normalizer emits (entry patches, the agent's session id, the turn summary), and the
first steps every JSON-lines normalizer shares. The entries themselves are built with the
constructors of ``execlog.conversation``.

A consumer applies an ``EntryPatch`` whose key it has seen before as a replacement of that
entry (same index) and appends every other one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import msgspec

from execlog.conversation import NormalizedEntry, error_message_entry, system_message_entry
from execlog.protocol import OutputStream

__all__ = [
    "EntryPatch",
    "Normalizer",
    "NormalizerEvent",
    "SessionIdSeen",
    "SummarySeen",
    "decode_agent_line",
    "describe_json",
    "normalize_stderr_line",
]


@dataclass(frozen=True, slots=True)
class EntryPatch:
    """A NormalizedEntry to append, or to put in place of the earlier entry with the same key."""

    key: str | None
    entry: NormalizedEntry


@dataclass(frozen=True, slots=True)
class SessionIdSeen:
    agent_session_id: str


@dataclass(frozen=True, slots=True)
class SummarySeen:
    summary: str


NormalizerEvent: TypeAlias = EntryPatch | SessionIdSeen | SummarySeen


class Normalizer(Protocol):
    def feed(self, stream: OutputStream, line: str) -> list[NormalizerEvent]: ...

    def finish(self) -> list[NormalizerEvent]: ...


# --- stderr -----------------------------------------------------------------------------------


def normalize_stderr_line(line: str) -> list[NormalizerEvent]:
    """An agent's stderr line is an error message in the conversation (blank lines are not)."""
    if not line.strip():
        return []
    return [EntryPatch(None, error_message_entry(line))]


_line_decoder = msgspec.json.Decoder()


def decode_agent_line(stream: OutputStream, line: str) -> dict[str, Any] | list[NormalizerEvent]:
    """The first step of every JSON-lines normalizer: the decoded object, or the events that
    stand for a line that is not one (stderr → error entry, blank → none, anything that is not
    a JSON object → a system message with the text)."""
    if stream == "stderr":
        return normalize_stderr_line(line)
    if not line.strip():
        return []
    try:
        value = _line_decoder.decode(line)
    except msgspec.DecodeError:
        return [EntryPatch(None, system_message_entry(line))]
    if not isinstance(value, dict):
        return [EntryPatch(None, system_message_entry(line))]
    return value


def describe_json(value: Any) -> str:
    """Compact JSON text of a value, for entries that show what the agent sent as is."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)
