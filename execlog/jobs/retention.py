"""Retention of legacy JSONL (``EXECLOG_LEGACY_JSONL_RETENTION_DAYS``; issue 11).

The JSONL rows of a process that ended more than the retention period ago are deleted once its
entries are complete in both channels: a backfill has checked them (the ledger) and the entry
rows are all still there. The history stays fully retrievable from the entries. A process
whose entries are incomplete is never cleaned. Hourly in the server; once with
``execlog cleanup-legacy [--dry-run]``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import Engine

from execlog.jobs.backfill import LegacyBackfiller, describe_error
from execlog.protocol import CHANNELS, now_ms
from execlog.storage.backfills import BackfillLedger, LedgerRow, LegacyProcess
from execlog.storage.database import run_in_thread
from execlog.storage.entries import EntryStore
from execlog.storage.legacy import LegacyLogStore

__all__ = ["RETENTION_INTERVAL_SECONDS", "LegacyRetention", "RetentionReport"]

logger = logging.getLogger("execlog.retention")

RETENTION_INTERVAL_SECONDS: Final = 3600.0
_DAY_MS: Final = 86_400_000


@dataclass(slots=True)
class RetentionReport:
    """What one cleanup deleted (or, in a dry run, would delete), and what it kept and why."""

    dry_run: bool
    deleted: list[LegacyProcess] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (process id, reason)

    @property
    def deleted_rows(self) -> int:
        return sum(p.rows for p in self.deleted)

    @property
    def deleted_bytes(self) -> int:
        return sum(p.total_bytes for p in self.deleted)


class LegacyRetention:
    def __init__(
        self,
        engine: Engine,
        entries: EntryStore,
        legacy: LegacyLogStore,
        ledger: BackfillLedger,
        backfiller: LegacyBackfiller,
        retention_days: int,
    ) -> None:
        self._engine = engine
        self._entries = entries
        self._legacy = legacy
        self._ledger = ledger
        self._backfiller = backfiller
        self.retention_days = retention_days

    @classmethod
    def create(
        cls, engine: Engine, backfiller: LegacyBackfiller, retention_days: int
    ) -> LegacyRetention:
        return cls(
            engine,
            EntryStore(engine),
            LegacyLogStore(engine),
            backfiller.ledger,
            backfiller,
            retention_days,
        )

    async def clean(self, *, dry_run: bool = False, now: int | None = None) -> RetentionReport:
        """One cleanup. Expired processes no backfill has checked yet are backfilled first
        (not in a dry run, which only lists them as skipped)."""
        report = RetentionReport(dry_run)
        if self.retention_days <= 0:
            return report
        cutoff = (now_ms() if now is None else now) - self.retention_days * _DAY_MS
        for process in await run_in_thread(self._ledger.fetch_expired, cutoff):
            pid = process.process_id
            ledger = await run_in_thread(self._ledger.fetch, pid)
            if ledger is None:
                if dry_run:
                    report.skipped.append((pid, "not backfilled yet (run `execlog backfill`)"))
                    continue
                try:
                    await self._backfiller.backfill_process(pid)
                except Exception as exc:
                    report.skipped.append((pid, f"backfill failed: {describe_error(exc)}"))
                    continue
                ledger = await run_in_thread(self._ledger.fetch, pid)
                if ledger is None:
                    report.skipped.append((pid, "not backfilled"))
                    continue
            missing = await run_in_thread(self._missing_channel, ledger)
            if missing is not None:
                report.skipped.append((pid, f"{missing} entries incomplete"))
                continue
            if not dry_run:
                await run_in_thread(self._delete, pid)
            report.deleted.append(process)
        return report

    def _missing_channel(self, ledger: LedgerRow) -> str | None:
        """The first channel whose stored entries are fewer than the backfill counted."""
        expected = {"raw": ledger.raw_entries, "normalized": ledger.normalized_entries}
        for channel in CHANNELS:
            if self._entries.fetch_stats(ledger.process_id, channel).count < expected[channel]:
                return channel
        return None

    def _delete(self, process_id: str) -> None:
        with self._engine.begin() as connection:
            self._legacy.delete_rows(connection, process_id)

    async def run_hourly(self, report: Callable[[str], None]) -> None:
        """The server's task: a cleanup every hour until cancelled; errors are logged."""
        while True:
            try:
                result = await self.clean()
            except Exception as exc:
                report(f"legacy JSONL cleanup failed: {describe_error(exc)}")
            else:
                if result.deleted:
                    report(
                        f"legacy JSONL cleanup: deleted {result.deleted_rows} rows "
                        f"({result.deleted_bytes} bytes) of {len(result.deleted)} processes"
                    )
            await asyncio.sleep(RETENTION_INTERVAL_SECONDS)
