"""Shared steps of the storage tests: fresh process ids, rows of numbered lines, row counts."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, func, select

from execlog.protocol import Channel, encode_raw_entry
from execlog.storage.entries import EntryRow

__all__ = ["count_rows", "new_process_id", "rows_for"]


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
