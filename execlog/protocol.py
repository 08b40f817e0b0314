"""Wire formats of CONTRACT.md: entry payloads, WebSocket frames, history pages, legacy lines,
and the contract's numbers: the bounds of ``limit``/``cursor``/``after``, the whole-number rule
they share, and the WebSocket close codes. Every other module imports them from here.

An entry's payload is encoded to JSON text exactly once, when it is produced; the same string is
stored in memory, written to the database and spliced into every page and frame that carries it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, NamedTuple

import msgspec

from execlog.errors import InvalidRequestError

__all__ = [
    "AFTER_MIN",
    "CHANNELS",
    "CLOSE_INVALID_REQUEST",
    "CLOSE_NORMAL",
    "CLOSE_TRY_AGAIN_LATER",
    "CLOSE_NOT_FOUND",
    "CURSOR_MIN",
    "INDEX_MAX",
    "QUOTED_VALUE_MAX_CHARS",
    "LIMIT_MAX",
    "LIMIT_MIN",
    "MAX_CLOSE_REASON_BYTES",
    "NOT_FOUND_CLOSE_REASON",
    "fit_close_reason",
    "is_whole_number",
    "parse_whole_number",
    "quote_value",
    "require_whole_number",
    "Channel",
    "FINISHED_FRAME",
    "HistoryPage",
    "LEGACY_FINISHED_LINE",
    "OutputStream",
    "StoredEntry",
    "decode_raw_content",
    "encode_append_frame",
    "encode_history_page",
    "encode_json",
    "encode_legacy_patch_line",
    "encode_legacy_session_id_line",
    "encode_legacy_stream_line",
    "encode_normalized_entry",
    "encode_raw_entry",
    "encode_replace_frame",
    "legacy_line_from_entry",
    "format_timestamp",
    "now_ms",
    "now_rfc3339",
    "payload_size",
]

Channel = Literal["raw", "normalized"]
CHANNELS: Final[tuple[Channel, Channel]] = ("raw", "normalized")
OutputStream = Literal["stdout", "stderr"]

_encoder = msgspec.json.Encoder()


def encode_json(value: Any) -> str:
    return _encoder.encode(value).decode()


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch: the stored form of entry timestamps."""
    return time.time_ns() // 1_000_000


def format_timestamp(ms: int) -> str:
    """Milliseconds since the epoch as RFC 3339 UTC with milliseconds (``...T12:00:00.123Z``):
    the one form of every timestamp execlog shows (entries, processes, approvals)."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_clock_cache: list[Any] = [-1, ""]


def now_rfc3339() -> str:
    """``format_timestamp`` of now; formatted once per millisecond since every entry of a fast
    stream asks for it."""
    ms = now_ms()
    if ms != _clock_cache[0]:
        _clock_cache[0] = ms
        _clock_cache[1] = format_timestamp(ms)
    text: str = _clock_cache[1]
    return text


def payload_size(entry_json: str) -> int:
    """UTF-8 size of an encoded payload; ``isascii`` is O(1) on CPython, so ASCII costs nothing."""
    return len(entry_json) if entry_json.isascii() else len(entry_json.encode())


class StoredEntry(NamedTuple):
    """One entry of a channel: its index and its payload as JSON text."""

    entry_index: int
    entry_json: str


# --- the contract's numbers ------------------------------------------------------------------

# "1 ≤ L ≤ 1000; C ≥ 0" (CONTRACT.md, "Log history"); ``after=-1`` means "from the first entry".
LIMIT_MIN: Final = 1
LIMIT_MAX: Final = 1000
CURSOR_MIN: Final = 0
AFTER_MIN: Final = -1
# Indexes are 64-bit in the database: a cursor, after or around past this is out of range
# (issue 9: 2^63 was an integer overflow, 500; a WebSocket dropped with 1006).
INDEX_MAX: Final = 2**63 - 1
# Error messages quote at most this much of a bad value (a 50 MB field was echoed whole).
QUOTED_VALUE_MAX_CHARS: Final = 200

# WebSocket close codes (CONTRACT.md, "WebSocket streams").
CLOSE_NORMAL: Final = 1000
# RFC 6455 / IANA "Try Again Later": the database did not answer within its deadline.
CLOSE_TRY_AGAIN_LATER: Final = 1013
CLOSE_INVALID_REQUEST: Final = 4400
CLOSE_NOT_FOUND: Final = 4404
NOT_FOUND_CLOSE_REASON: Final = "execution_process_not_found"
MAX_CLOSE_REASON_BYTES: Final = 123


def fit_close_reason(text: str) -> str:
    """A close reason is at most 123 bytes of UTF-8 (RFC 6455 5.5); a longer one makes the close
    itself fail (the client would see 1006). Cut on a character boundary."""
    return text.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")


# Digits only, one rule for limit, cursor and after on HTTP and WebSocket alike: pydantic's lax
# int also takes "1.0", "1_000" and non-ASCII digits, which the contract counts as "not an
# integer" (→ 400 / close 4400).
_WHOLE_NUMBER: Final = re.compile(r"\s*[+-]?[0-9]+\s*")


def is_whole_number(text: str) -> bool:
    """Digits with an optional sign, and at most 19 significant ones: every number the contract
    takes is below 2^63, and longer text is never converted (``int()`` of over 4,300 digits
    raises, and a long one costs quadratic time)."""
    return (
        _WHOLE_NUMBER.fullmatch(text) is not None
        and len(text.strip().lstrip("+-").lstrip("0")) <= 19
    )


def require_whole_number(value: object) -> object:
    """The rule as a pydantic ``BeforeValidator`` for query parameters (HTTP ``limit``,
    ``cursor``): text that is not a whole number below 2^63 is refused before conversion."""
    if isinstance(value, str) and not is_whole_number(value):
        raise ValueError("must be a whole number below 2^63")
    return value


def parse_whole_number(name: str, text: str, *, minimum: int, maximum: int = INDEX_MAX) -> int:
    """``text`` as an int within the bounds (at most ``INDEX_MAX`` unless told otherwise), or
    InvalidRequestError naming the parameter and quoting at most 200 characters of it."""
    if is_whole_number(text):
        value = int(text)
        if minimum <= value <= maximum:
            return value
    raise InvalidRequestError(
        f"{name} must be an integer between {minimum} and {maximum}, got {quote_value(text)}"
    )


def quote_value(value: object) -> str:
    """``repr`` of a bad value for an error message, cut to ``QUOTED_VALUE_MAX_CHARS``."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= QUOTED_VALUE_MAX_CHARS:
        return repr(text) if isinstance(value, str) else text
    shown = text[:QUOTED_VALUE_MAX_CHARS]
    return f"{shown!r}... ({len(text)} characters)" if isinstance(value, str) else shown + "..."


# --- entry payloads -------------------------------------------------------------------------

_RAW_PREFIX: Final = {
    "stdout": '{"type":"STDOUT","content":',
    "stderr": '{"type":"STDERR","content":',
}


def encode_raw_entry(stream: OutputStream, line: str) -> str:
    """``{"type": "STDOUT" | "STDERR", "content": line}``."""
    return _RAW_PREFIX[stream] + _encoder.encode(line).decode() + "}"


class _RawPayload(msgspec.Struct, frozen=True, gc=False):
    type: str
    content: str


_raw_payload_decoder = msgspec.json.Decoder(_RawPayload)


def decode_raw_content(entry_json: str) -> str:
    """The line of a raw payload (``content``); "" for a payload that is not a raw entry."""
    try:
        return _raw_payload_decoder.decode(entry_json).content
    except msgspec.DecodeError:  # includes ValidationError (valid JSON, another shape)
        return ""


def encode_normalized_entry(entry: Mapping[str, Any]) -> str:
    """``{"type": "NORMALIZED_ENTRY", "content": NormalizedEntry}``."""
    return '{"type":"NORMALIZED_ENTRY","content":' + _encoder.encode(entry).decode() + "}"


# --- WebSocket frames -----------------------------------------------------------------------

FINISHED_FRAME: Final = '{"type":"finished"}'


def encode_append_frame(entry_index: int, entry_json: str) -> str:
    return f'{{"type":"append","entry_index":{entry_index},"entry":{entry_json}}}'


def encode_replace_frame(entry_index: int, entry_json: str) -> str:
    return f'{{"type":"replace","entry_index":{entry_index},"entry":{entry_json}}}'


# --- history pages --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A tail-first page: ``entries`` ascending; ``next_cursor`` is the first index when
    ``has_more``."""

    entries: list[StoredEntry]
    has_more: bool
    history_truncated: bool

    @property
    def next_cursor(self) -> int | None:
        return self.entries[0].entry_index if self.has_more and self.entries else None


def encode_history_page(page: HistoryPage) -> bytes:
    """The success envelope around a page, spliced from the pre-encoded payloads."""
    items = ",".join(f'{{"entry_index":{i},"entry":{j}}}' for i, j in page.entries)
    cursor = "null" if page.next_cursor is None else str(page.next_cursor)
    return (
        f'{{"success":true,"data":{{"entries":[{items}],"next_cursor":{cursor},'
        f'"has_more":{_bool(page.has_more)},"history_truncated":{_bool(page.history_truncated)}}},'
        f'"message":null}}'
    ).encode()


def _bool(value: bool) -> str:
    return "true" if value else "false"


# --- legacy JSONL (execution_process_logs) --------------------------------------------------

LEGACY_FINISHED_LINE: Final = '"Finished"'
_LEGACY_STREAM_KEY: Final = {"stdout": "Stdout", "stderr": "Stderr"}
_LEGACY_STREAM_PREFIX: Final = {"stdout": '{"Stdout":', "stderr": '{"Stderr":'}


def encode_legacy_stream_line(stream: OutputStream, line: str) -> str:
    """``{"Stdout": "line\\n"}``: the text keeps its newline, as vibe-kanban's chunks do."""
    return '{"' + _LEGACY_STREAM_KEY[stream] + '":' + _encoder.encode(line + "\n").decode() + "}"


def encode_legacy_session_id_line(agent_session_id: str) -> str:
    return '{"SessionId":' + _encoder.encode(agent_session_id).decode() + "}"


def legacy_line_from_entry(
    channel: Channel, entry_index: int, entry_json: str, *, replace: bool = False
) -> str:
    """The legacy JSONL line of an entry write (the writer derives them, so producers need not
    know the persistence mode). Quote once: a raw line's text is sliced out of the payload,
    already JSON-quoted; a normalized entry is spliced into a ``JsonPatch`` as is."""
    if channel == "normalized":
        return encode_legacy_patch_line("replace" if replace else "add", entry_index, entry_json)
    for stream, prefix in _RAW_PREFIX.items():
        if entry_json.startswith(prefix):
            quoted = entry_json[len(prefix) : -1]
            # quoted ends with '"': the legacy text keeps the line's newline, escaped inside.
            return _LEGACY_STREAM_PREFIX[stream] + quoted[:-1] + '\\n"}'
    raise ValueError(f"not a raw entry payload: {entry_json[:80]!r}")


def encode_legacy_patch_line(
    op: Literal["add", "replace"], entry_index: int, entry_json: str
) -> str:
    """``{"JsonPatch": [{"op", "path": "/entries/N", "value": <payload>}]}``."""
    return f'{{"JsonPatch":[{{"op":"{op}","path":"/entries/{entry_index}","value":{entry_json}}}]}}'
