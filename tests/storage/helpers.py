"""Shared steps of the storage tests: fresh process ids, rows of numbered lines, row counts, the
query plan of a tail page."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, event, func, select

from execlog.protocol import Channel, encode_raw_entry
from execlog.storage.entries import EntryRow, EntryStore

__all__ = ["ENTRIES_KEY_INDEX", "count_rows", "explain_tail_page", "new_process_id", "rows_for"]

# The SQLite index of the entries table's primary key (a rowid table since migration 0004).
ENTRIES_KEY_INDEX = "sqlite_autoindex_execution_process_log_entries_1"


def new_process_id() -> str:
    return str(uuid.uuid4())


def rows_for(
    process_id: str, indexes: range | list[int], channel: Channel = "raw"
) -> list[EntryRow]:
    """Entry rows whose payload is the raw line ``line <index>``."""
    return [
        EntryRow(process_id, channel, i, encode_raw_entry("stdout", f"line {i}")) for i in indexes
    ]


def count_rows(engine: Engine, table: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def explain_tail_page(engine: Engine, process_id: str, cursor: int | None) -> tuple[list[int], str]:
    """A tail page of 5 of ``process_id``'s raw entries below ``cursor``: its indexes, and the
    SQLite query plan of the statement EntryStore really ran (captured from the driver,
    parameters and all)."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        page = EntryStore(engine).fetch_tail_page(process_id, "raw", 5, cursor)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    [(statement, parameters)] = captured
    with engine.connect() as connection:
        plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
    return [e.entry_index for e in page], " ".join(str(row[-1]) for row in plan)
