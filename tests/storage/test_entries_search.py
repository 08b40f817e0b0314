"""Raw line search in the entry store (``EntryStore.search_raw`` and ``ContentQuery``) on a real
SQLite file and, when EXECLOG_TEST_POSTGRES_URL is set, on PostgreSQL: the database and the
in-memory matcher give the same answers, escapes and the payload's own keys never match."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from execlog.protocol import encode_normalized_entry, encode_raw_entry
from execlog.storage.entries import ContentQuery, EntryRow, EntryStore
from tests.storage.helpers import new_process_id

LINES = [
    ("stdout", "Hello World"),
    ("stderr", "hello there"),
    ("stdout", "ERROR: disk full"),
    ("stdout", 'she said "quoted" twice'),
    ("stdout", "C:\\path\\to\\file"),
    ("stdout", "\x1b[31mred\x1b[0m and plain"),
    ("stdout", "café au lait"),
    ("stdout", "tab\tseparated"),
    ("stdout", "progress 10%\rprogress 100%"),
    ("stdout", "100% done_ok"),
    ("stdout", "STDOUT appears literally"),
    ("stdout", "</script> & more"),
    ("stdout", "a/b/c"),
    ("stdout", "ÉCOLE normale"),
]

# query → indexes expected, newest first
CASES = {
    "hello": [1, 0],
    "HELLO": [1, 0],
    "error: disk": [2],
    '"quoted"': [3],
    "C:\\path": [4],
    "31mred": [5],
    "u001b": [],  # the JSON escape of ESC is not part of the line
    "b[31m": [],
    "café": [6],
    "CAFÉ": [],  # only ASCII letters fold
    "CAFé": [6],
    "tab\tsep": [7],
    "10%\rprog": [8],
    "100%": [9, 8],
    "_ok": [9],
    "stdout": [10],  # the payload's "type" never matches
    "content": [],
    "</script> &": [11],
    "a/b": [12],
    "\\": [4],
    "École": [13],
    "école": [],  # PostgreSQL's lower() would fold É: the exact rule still says no
}


def seed(store: EntryStore) -> str:
    process_id = new_process_id()
    rows = [
        EntryRow(process_id, "raw", index, encode_raw_entry(stream, line))  # type: ignore[arg-type]
        for index, (stream, line) in enumerate(LINES)
    ]
    # Same text on the other channel and in another process: never found.
    rows.append(
        EntryRow(process_id, "normalized", 0, encode_normalized_entry({"content": "hello"}))
    )
    rows.append(EntryRow(new_process_id(), "raw", 0, encode_raw_entry("stdout", "hello")))
    store.upsert_entries_now(rows)
    return process_id


def check_search(store: EntryStore) -> None:
    process_id = seed(store)
    payloads = [encode_raw_entry(stream, line) for stream, line in LINES]  # type: ignore[arg-type]
    for text, expected in CASES.items():
        query = ContentQuery.of(text)
        assert store.search_raw(process_id, query, 0, len(LINES), 100) == expected, text
        in_memory = [i for i in reversed(range(len(LINES))) if query.matches(payloads[i])]
        assert in_memory == expected, text
    # The range and the limit.
    hello = ContentQuery.of("hello")
    assert store.search_raw(process_id, hello, 1, 2, 100) == [1]
    assert store.search_raw(process_id, hello, 0, 1, 100) == [0]
    assert store.search_raw(process_id, hello, 0, 100, 1) == [1]
    assert store.first_index(process_id, "raw") == 0
    assert store.first_index(new_process_id(), "raw") is None


def test_search_raw_on_sqlite(engine: Engine) -> None:
    check_search(EntryStore(engine))


def test_a_plain_query_tests_the_stored_text_first() -> None:
    assert ContentQuery.of("Hello World").prefilter == "hello world"
    # Characters some encoders escape: only the extracted line is compared.
    for text in ('"q"', "a/b", "<b>", "tab\t", "é"):
        assert ContentQuery.of(text).prefilter is None, text


def test_a_payload_that_is_not_a_raw_entry_matches_nothing() -> None:
    query = ContentQuery.of("x")
    assert not query.matches('{"type":"NORMALIZED_ENTRY","content":{"content":"x"}}')
    assert not query.matches("not json x")


@pytest.mark.postgres
def test_search_raw_on_postgres(postgres_engine: Engine) -> None:
    check_search(EntryStore(postgres_engine))
