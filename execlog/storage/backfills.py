"""The backfill ledger (``legacy_backfills``) and the queries that pick processes for the
backfill and retention jobs.

A ledger row says the process's entries were checked against, or rebuilt from, its legacy
JSONL: start-up does each process once, and retention deletes JSONL only of listed processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, and_, bindparam, delete, exists, func, insert, select

from execlog.storage.tables import execution_process_logs as logs_table
from execlog.storage.tables import execution_processes as processes_table
from execlog.storage.tables import legacy_backfills as ledger_table

__all__ = ["BackfillLedger", "LedgerRow", "LegacyProcess"]


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """What a finished backfill of one process found (entry counts of the rebuilt channels)."""

    process_id: str
    raw_entries: int
    normalized_entries: int
    source_bytes: int
    malformed_lines: int
    checked_at: int


@dataclass(frozen=True, slots=True)
class LegacyProcess:
    """A process that has legacy JSONL: its id and the JSONL's size."""

    process_id: str
    total_bytes: int
    rows: int


_l = logs_table.c
_p = processes_table.c
_b = ledger_table.c
_ENDED = _p.status != "running"
_NOT_RECORDED = ~exists().where(_b.execution_process_id == _l.execution_id)
_SIZE = (func.coalesce(func.sum(_l.byte_size), 0), func.count(_l.id))
_PENDING = (
    select(_l.execution_id, *_SIZE)
    .select_from(logs_table.join(processes_table, _p.id == _l.execution_id))
    .where(_ENDED & _NOT_RECORDED)
    .group_by(_l.execution_id, _p.started_at)
    .order_by(_p.started_at, _l.execution_id)
)
_EXPIRED = (
    select(_l.execution_id, *_SIZE)
    .select_from(logs_table.join(processes_table, _p.id == _l.execution_id))
    .where(and_(_ENDED, _p.completed_at.is_not(None), _p.completed_at < bindparam("cutoff")))
    .group_by(_l.execution_id, _p.completed_at)
    .order_by(_p.completed_at, _l.execution_id)
)
_FETCH = select(ledger_table).where(_b.execution_process_id == bindparam("pid"))
_INSERT = insert(ledger_table)
_DELETE = delete(ledger_table).where(_b.execution_process_id == bindparam("pid"))
_DELETE_MANY = delete(ledger_table).where(
    _b.execution_process_id.in_(bindparam("pids", expanding=True))
)


class BackfillLedger:
    """Reads and writes ``legacy_backfills``; every method is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def fetch_pending(self) -> list[LegacyProcess]:
        """Ended processes with JSONL that no backfill has checked yet, oldest first."""
        with self._engine.connect() as connection:
            rows = connection.execute(_PENDING).all()
        return [LegacyProcess(pid, int(size), int(count)) for pid, size, count in rows]

    def fetch_expired(self, cutoff_ms: int) -> list[LegacyProcess]:
        """Ended processes with JSONL that completed before ``cutoff_ms``, oldest first."""
        with self._engine.connect() as connection:
            rows = connection.execute(_EXPIRED, {"cutoff": cutoff_ms}).all()
        return [LegacyProcess(pid, int(size), int(count)) for pid, size, count in rows]

    def fetch(self, process_id: str) -> LedgerRow | None:
        with self._engine.connect() as connection:
            row = connection.execute(_FETCH, {"pid": process_id}).first()
        if row is None:
            return None
        return LedgerRow(
            row.execution_process_id,
            row.raw_entries,
            row.normalized_entries,
            row.source_bytes,
            row.malformed_lines,
            row.checked_at,
        )

    def record(self, row: LedgerRow) -> None:
        """Replace the process's ledger row (a re-check after an import records again)."""
        with self._engine.begin() as connection:
            self.record_many(connection, [row])

    def record_many(self, connection: Connection, rows: Sequence[LedgerRow]) -> None:
        """Replace the ledger rows of many processes inside the caller's transaction (the
        backfill's groups record theirs with their entries)."""
        if not rows:
            return
        connection.execute(_DELETE_MANY, {"pids": [row.process_id for row in rows]})
        connection.execute(
            _INSERT,
            [
                {
                    "execution_process_id": row.process_id,
                    "raw_entries": row.raw_entries,
                    "normalized_entries": row.normalized_entries,
                    "source_bytes": row.source_bytes,
                    "malformed_lines": row.malformed_lines,
                    "checked_at": row.checked_at,
                }
                for row in rows
            ],
        )

    def forget(self, process_id: str) -> None:
        """The process's JSONL changed (an import): the next backfill checks it again."""
        with self._engine.begin() as connection:
            connection.execute(_DELETE, {"pid": process_id})
