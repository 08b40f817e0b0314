"""LegacyLogStore and LegacyReader on real SQLite files: rows of JSONL lines in, messages out."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, event, select

from execlog.protocol import (
    LEGACY_FINISHED_LINE,
    OutputStream,
    encode_legacy_patch_line,
    encode_legacy_session_id_line,
    encode_legacy_stream_line,
    encode_raw_entry,
)
from execlog.storage.legacy import (
    FinishedMessage,
    JsonPatchMessage,
    LegacyLogStore,
    PatchOperation,
    SessionIdMessage,
    StderrMessage,
    StdoutMessage,
)
from execlog.storage.tables import execution_process_logs as logs_table
from tests.storage.helpers import new_process_id


def test_append_lines_writes_one_row_with_utf8_size(any_engine: Engine) -> None:
    store = LegacyLogStore(any_engine)
    process_id = new_process_id()
    lines = [encode_legacy_stream_line("stdout", "héllo"), LEGACY_FINISHED_LINE]

    store.append_lines_now(process_id, lines)

    with any_engine.connect() as connection:
        rows = connection.execute(
            select(logs_table).where(logs_table.c.execution_id == process_id)
        ).all()
    assert len(rows) == 1
    assert rows[0].logs == "\n".join(lines)
    assert rows[0].byte_size == len("\n".join(lines).encode())
    assert store.read_messages(process_id).total_bytes() == rows[0].byte_size


def test_rows_with_several_lines_read_back_in_order(any_engine: Engine) -> None:
    store = LegacyLogStore(any_engine)
    process_id = new_process_id()
    other = new_process_id()
    patch_value = encode_raw_entry("stderr", "boom")
    store.append_lines_now(
        process_id,
        [encode_legacy_stream_line("stdout", "one"), encode_legacy_session_id_line("sess-1")],
    )
    store.append_lines_now(other, [encode_legacy_stream_line("stdout", "not mine")])
    store.append_lines_now(
        process_id,
        [
            encode_legacy_stream_line("stderr", "two"),
            encode_legacy_patch_line("add", 0, patch_value),
            encode_legacy_patch_line("replace", 12, '{"type":"STDOUT","content":"x"}'),
            LEGACY_FINISHED_LINE,
        ],
    )

    reader = store.read_messages(process_id)
    messages = list(reader)

    assert messages == [
        StdoutMessage("one\n"),
        SessionIdMessage("sess-1"),
        StderrMessage("two\n"),
        JsonPatchMessage([PatchOperation("add", 0, patch_value)]),
        JsonPatchMessage([PatchOperation("replace", 12, '{"type":"STDOUT","content":"x"}')]),
        FinishedMessage(),
    ]
    assert reader.malformed_lines == 0
    assert reader.bytes_read == reader.total_bytes()


def test_vibe_kanban_patch_with_several_operations_and_spacing(any_engine: Engine) -> None:
    store = LegacyLogStore(any_engine)
    process_id = new_process_id()
    line = (
        '{"JsonPatch": [{"op": "add", "path": "/entries/3", "value": {"type": "NORMALIZED_ENTRY",'
        ' "content": {"entry_type": {"type": "thinking"}, "content": "hm", "timestamp": null}}},'
        ' {"op": "replace", "path": "/entries/4", "value": {"type": "STDOUT", "content": "é"}}]}'
    )
    store.append_lines_now(process_id, [line])

    (message,) = list(store.read_messages(process_id))

    assert isinstance(message, JsonPatchMessage)
    assert [(op.op, op.entry_index) for op in message.operations] == [("add", 3), ("replace", 4)]
    # The payload is the value's JSON text: it decodes to the same value.
    assert message.operations[1].value_json == '{"type": "STDOUT", "content": "é"}'


def test_malformed_lines_are_skipped_and_counted(any_engine: Engine) -> None:
    store = LegacyLogStore(any_engine)
    process_id = new_process_id()
    store.append_lines_now(
        process_id,
        [
            "not json at all",
            encode_legacy_stream_line("stdout", "kept"),
            '{"Unknown": 1}',
            '{"Stdout": 42}',
            '"SomethingElse"',
            '{"JsonPatch": [{"op": "remove", "path": "/entries/1"}]}',
            '{"JsonPatch": [{"op": "add", "path": "/other/1", "value": {}}]}',
            '{"Stdout": "trunc',
            LEGACY_FINISHED_LINE,
        ],
    )

    reader = store.read_messages(process_id)
    messages = list(reader)

    assert messages == [StdoutMessage("kept\n"), FinishedMessage()]
    assert reader.malformed_lines == 7


def test_message_id_ready_and_blank_lines_are_skipped_silently(any_engine: Engine) -> None:
    store = LegacyLogStore(any_engine)
    process_id = new_process_id()
    store.append_lines_now(
        process_id,
        [
            '{"MessageId": 17}',
            '"Ready"',
            "",
            "   ",
            encode_legacy_stream_line("stdout", "only this"),
            '{"MessageId": "abc"}',
        ],
    )

    reader = store.read_messages(process_id)

    assert list(reader) == [StdoutMessage("only this\n")]
    assert reader.malformed_lines == 0


def test_large_log_is_streamed_by_keyset_pages(engine: Engine) -> None:
    store = LegacyLogStore(engine)
    process_id = new_process_id()
    lines_per_row, row_count = 50, 1000  # 50k lines
    with engine.begin() as connection:
        for row in range(row_count):
            store.append_lines(
                connection,
                process_id,
                [
                    encode_legacy_stream_line("stdout", f"line {row * lines_per_row + i}")
                    for i in range(lines_per_row)
                ],
                now_ms=1,
            )

    page_rows = 37
    page_queries: list[tuple[Any, ...]] = []

    def record_page_query(*args: Any) -> None:
        statement, parameters = args[2], args[3]
        if "FROM execution_process_logs" in statement:
            page_queries.append(tuple(parameters))

    event.listen(engine, "before_cursor_execute", record_page_query)
    try:
        reader = store.read_messages(process_id, page_rows=page_rows)
        iterator = iter(reader)
        first = next(iterator)
        # After the first message only the first page has been fetched, not the whole log.
        assert first == StdoutMessage("line 0\n")
        assert reader.pages_read == 1
        assert len(page_queries) == 1
        rest = list(iterator)
    finally:
        event.remove(engine, "before_cursor_execute", record_page_query)

    texts = [first, *rest]
    assert len(texts) == lines_per_row * row_count
    assert texts[-1] == StdoutMessage(f"line {lines_per_row * row_count - 1}\n")
    assert all(
        isinstance(m, StdoutMessage) and m.text == f"line {n}\n" for n, m in enumerate(texts)
    )
    expected_pages = -(-row_count // page_rows)  # 1000 rows / 37: the last page is short
    assert reader.pages_read == expected_pages
    assert len(page_queries) == expected_pages
    assert all(page_rows in parameters for parameters in page_queries)  # LIMIT page_rows
    assert reader.bytes_read == reader.total_bytes()


def test_unknown_process_reads_nothing(any_engine: Engine) -> None:
    reader = LegacyLogStore(any_engine).read_messages(new_process_id())

    assert list(reader) == []
    assert reader.total_bytes() == 0
    assert reader.bytes_read == 0


# --- any encoder's lines (vibe-kanban's serde_json, the standard library, execlog's own) -----

_KEYS: dict[OutputStream, str] = {"stdout": "Stdout", "stderr": "Stderr"}
LineEncoder = Callable[[OutputStream, str], str]


def _compact_stdlib(stream: OutputStream, text: str) -> str:
    return json.dumps({_KEYS[stream]: text}, ensure_ascii=False, separators=(",", ":"))


def _ascii_stdlib(stream: OutputStream, text: str) -> str:
    return json.dumps({_KEYS[stream]: text}, separators=(",", ":"))  # non-ASCII as \\uXXXX


def _escaped_slashes(stream: OutputStream, text: str) -> str:
    return _compact_stdlib(stream, text).replace("/", "\\/")  # valid JSON, not our encoding


def _spaced(stream: OutputStream, text: str) -> str:
    return json.dumps({_KEYS[stream]: text}, ensure_ascii=False)  # CONTRACT.md's spacing


def _ours(stream: OutputStream, text: str) -> str:
    return (
        encode_legacy_stream_line(stream, text[:-1])
        if text.endswith("\n")
        else ('{"' + _KEYS[stream] + '":' + json.dumps(text, ensure_ascii=False) + "}")
    )


_LINE_ENCODERS: tuple[LineEncoder, ...] = (
    _ours,
    _compact_stdlib,
    _ascii_stdlib,
    _escaped_slashes,
    _spaced,
)
_TRICKY = st.sampled_from(list('"\\/\n\r\t\b\f\x00\x1f\x7fu\u2028\u00e9\U0001f600'))
_TEXTS = st.text(alphabet=st.one_of(_TRICKY, st.characters(exclude_categories=("Cs",))))
_READER_ENGINE = create_engine("sqlite://")


def _read_one(line: str) -> list[Any]:
    reader = LegacyLogStore(_READER_ENGINE).read_messages("p", rows=[(line, len(line.encode()))])
    return list(reader)


@settings(max_examples=400, deadline=None)
@given(
    text=_TEXTS,
    newline=st.booleans(),
    stream=st.sampled_from(["stdout", "stderr"]),
    encode_line=st.sampled_from(_LINE_ENCODERS),
)
@example(text="a\\", newline=True, stream="stdout", encode_line=_ours)
@example(text="\\u00e9 \\/", newline=True, stream="stderr", encode_line=_compact_stdlib)
@example(text="a/", newline=False, stream="stdout", encode_line=_escaped_slashes)
def test_a_line_of_any_encoder_reads_as_its_text(
    text: str, newline: bool, stream: OutputStream, encode_line: LineEncoder
) -> None:
    """Whoever wrote the line (any valid JSON quoting: ``\\u``, ``\\/``, spacing), the message
    carries the text exactly (the backfill encodes each line's payload from it)."""
    text += "\n" if newline else ""

    (message,) = _read_one(encode_line(stream, text))

    assert message == (StdoutMessage(text) if stream == "stdout" else StderrMessage(text))


def test_a_line_with_another_key_after_the_text_reads_its_text() -> None:
    assert _read_one('{"Stdout":"a\\n","MessageId":"b\\n"}') == [StdoutMessage("a\n")]
    assert _read_one('{"Stdout":"a\\\\n"}') == [StdoutMessage("a\\n")]  # backslash, n
    assert _read_one('{"Stdout":"a\\n"') == []  # malformed: counted
