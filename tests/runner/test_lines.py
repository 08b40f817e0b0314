"""LineSplitter: line endings, decoding, long lines, and independence from chunk boundaries."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execlog.runner.lines import LineSplitter


def split_in_chunks(data: bytes, cuts: list[int], limit: int) -> list[str]:
    splitter = LineSplitter(limit)
    lines: list[str] = []
    previous = 0
    for cut in sorted(set(cuts)):
        lines.extend(splitter.feed(data[previous:cut]))
        previous = cut
    lines.extend(splitter.feed(data[previous:]))
    lines.extend(splitter.finish())
    return lines


def split_at_once(data: bytes, limit: int) -> list[str]:
    splitter = LineSplitter(limit)
    return splitter.feed(data) + splitter.finish()


def test_lines_lose_newline_and_crlf() -> None:
    splitter = LineSplitter(1024)
    assert splitter.feed(b"one\ntwo\r\nthr") == ["one", "two"]
    assert splitter.feed(b"ee\r") == []
    assert splitter.feed(b"\n\n") == ["three", ""]
    assert splitter.finish() == []


def test_carriage_return_inside_a_line_is_kept() -> None:
    splitter = LineSplitter(1024)
    assert splitter.feed(b"progress 1\rprogress 2\n") == ["progress 1\rprogress 2"]


def test_finish_returns_the_unterminated_tail() -> None:
    splitter = LineSplitter(1024)
    assert splitter.feed(b"a\nb") == ["a"]
    assert splitter.finish() == ["b"]
    assert splitter.finish() == []


def test_invalid_utf8_becomes_replacement_character() -> None:
    splitter = LineSplitter(1024)
    assert splitter.feed(b"ok \xff\xfe end\n") == ["ok \ufffd\ufffd end"]


def test_multibyte_character_split_across_chunks_decodes() -> None:
    data = "naïve → 日本\n".encode()
    for cut in range(1, len(data)):
        splitter = LineSplitter(1024)
        assert splitter.feed(data[:cut]) + splitter.feed(data[cut:]) == ["naïve → 日本"]


def test_long_line_is_cut_into_pieces_never_dropped() -> None:
    splitter = LineSplitter(10)
    pieces = splitter.feed(b"x" * 25 + b"\nshort\n")
    assert pieces == ["x" * 10, "x" * 10, "x" * 5, "short"]


def test_pending_buffer_stays_bounded_without_newlines() -> None:
    splitter = LineSplitter(100)
    emitted: list[str] = []
    for _ in range(1000):
        emitted.extend(splitter.feed(b"y" * 37))
        assert len(splitter._pending) <= 101
    emitted.extend(splitter.finish())
    assert "".join(emitted) == "y" * 37_000
    assert all(len(piece) <= 100 for piece in emitted)


def test_cut_never_splits_a_character() -> None:
    splitter = LineSplitter(10)
    pieces = splitter.feed(("é" * 12 + "\n").encode())
    assert pieces == ["é" * 5, "é" * 5, "é" * 2]


def test_limit_below_one_character_is_refused() -> None:
    with pytest.raises(ValueError):
        LineSplitter(3)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=400).map(lambda b: b.replace(b"\x00", b"\n")),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    limit=st.integers(min_value=4, max_value=40),
)
def test_chunking_does_not_change_the_lines(data: bytes, cuts: list[int], limit: int) -> None:
    assert split_in_chunks(data, cuts, limit) == split_at_once(data, limit)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(["a", "b", "é", "→", "😀", "\n", "\r", " "]), max_size=300
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=1200), max_size=12),
    limit=st.integers(min_value=4, max_value=30),
)
def test_pieces_are_bounded_and_join_to_the_input(text: str, cuts: list[int], limit: int) -> None:
    data = text.encode()
    pieces = split_in_chunks(data, cuts, limit)
    assert all(len(piece.encode()) <= limit for piece in pieces)
    # Every line's pieces, concatenated, give back the line (ending aside).
    expected_lines = text.split("\n")
    if expected_lines[-1] == "":
        expected_lines.pop()
    expected = "".join(line[:-1] if line.endswith("\r") else line for line in expected_lines)
    assert "".join(pieces) == expected


def test_splitting_is_fast() -> None:
    line = b'{"type":"assistant","message":{"content":[{"type":"text","text":"' + b"z" * 120
    data = (line + b'"}]}}\n') * 20_000
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    splitter = LineSplitter(1_048_576)
    started = time.perf_counter()
    count = sum(len(splitter.feed(chunk)) for chunk in chunks)
    elapsed = time.perf_counter() - started
    assert count == 20_000
    # Far above the pipeline's 200k lines/s target, with room for a slow CI machine.
    assert count / elapsed > 400_000


def test_pending_text_previews_the_unterminated_line() -> None:
    splitter = LineSplitter(1024)
    assert splitter.feed(b"done\n 10%\r 20%\r") == ["done"]
    # The trailing \r may be half of \r\n: not shown; the inner one is part of the line.
    assert splitter.pending_text() == " 10%\r 20%"
    # An incomplete UTF-8 character at the end waits for its remaining bytes.
    splitter.feed(" ä".encode()[:2])
    assert splitter.pending_text() == " 10%\r 20%\r "
    splitter.feed(" ä".encode()[2:])
    assert splitter.pending_text() == " 10%\r 20%\r ä"
    assert splitter.feed(b"\n") == [" 10%\r 20%\r ä"]
    assert splitter.pending_text() == "" and splitter.pending_bytes == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=30))
def test_pending_stays_within_the_line_limit(chunks: list[bytes]) -> None:
    limit = 16
    splitter = LineSplitter(limit)
    for chunk in chunks:
        splitter.feed(chunk)
        # limit bytes of content plus a \r that may turn out to be half of a \r\n.
        assert splitter.pending_bytes <= limit + 1
        assert len(splitter.pending_text().encode()) <= limit * 3  # U+FFFD for bad bytes
