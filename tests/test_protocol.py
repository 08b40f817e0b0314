"""Wire encoders: spliced JSON text must equal what a JSON encoder would produce."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from execlog.protocol import (
    FINISHED_FRAME,
    HistoryPage,
    StoredEntry,
    encode_append_frame,
    encode_history_page,
    encode_legacy_patch_line,
    encode_legacy_session_id_line,
    encode_legacy_stream_line,
    encode_normalized_entry,
    encode_raw_entry,
    encode_replace_frame,
    legacy_line_from_entry,
)


@given(stream=st.sampled_from(["stdout", "stderr"]), line=st.text())
@settings(max_examples=300)
def test_legacy_line_sliced_from_a_raw_payload_equals_the_line_encoded_anew(
    stream: str, line: str
) -> None:
    payload = encode_raw_entry(stream, line)  # type: ignore[arg-type]
    legacy = legacy_line_from_entry("raw", 0, payload)
    assert legacy == encode_legacy_stream_line(stream, line)  # type: ignore[arg-type]
    key = "Stdout" if stream == "stdout" else "Stderr"
    assert json.loads(payload) == {"type": stream.upper(), "content": line}
    assert json.loads(legacy) == {key: line + "\n"}


def test_legacy_line_of_a_normalized_entry_is_its_json_patch() -> None:
    entry = encode_normalized_entry({"timestamp": None, "entry_type": {"type": "thinking"}})
    assert legacy_line_from_entry("normalized", 4, entry) == encode_legacy_patch_line(
        "add", 4, entry
    )
    assert legacy_line_from_entry("normalized", 4, entry, replace=True) == (
        encode_legacy_patch_line("replace", 4, entry)
    )


def test_frames_pages_and_legacy_lines_are_valid_json() -> None:
    entry = encode_normalized_entry(
        {"timestamp": None, "entry_type": {"type": "thinking"}, "content": "hm"}
    )
    assert json.loads(encode_append_frame(3, entry)) == {
        "type": "append",
        "entry_index": 3,
        "entry": json.loads(entry),
    }
    assert json.loads(encode_replace_frame(3, entry))["type"] == "replace"
    assert json.loads(FINISHED_FRAME) == {"type": "finished"}
    page = HistoryPage([StoredEntry(7, entry), StoredEntry(8, entry)], True, False)
    assert json.loads(encode_history_page(page)) == {
        "success": True,
        "data": {
            "entries": [
                {"entry_index": 7, "entry": json.loads(entry)},
                {"entry_index": 8, "entry": json.loads(entry)},
            ],
            "next_cursor": 7,
            "has_more": True,
            "history_truncated": False,
        },
        "message": None,
    }
    last = HistoryPage([StoredEntry(0, entry)], False, True)
    assert json.loads(encode_history_page(last))["data"]["next_cursor"] is None
    assert json.loads(encode_legacy_patch_line("replace", 4, entry)) == {
        "JsonPatch": [{"op": "replace", "path": "/entries/4", "value": json.loads(entry)}]
    }
    assert json.loads(encode_legacy_session_id_line("abc")) == {"SessionId": "abc"}
