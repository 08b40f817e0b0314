"""The batched writer: one task per database turns submitted entry and legacy-line writes into
group commits (batch_rows rows or max_delay, whichever first), run in a thread of its own.

Producers never wait for a commit, only for queue space (back-pressure); nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Engine

from execlog.config import LogPersistence
from execlog.errors import ExeclogError
from execlog.protocol import now_ms
from execlog.storage.entries import EntryRow, EntryStore
from execlog.storage.legacy import LegacyLogStore

__all__ = ["EntryWrite", "LegacyLineWrite", "LogWriter", "WriteOp", "WriterClosedError"]

logger = logging.getLogger(__name__)

# A failing commit is retried with exponential backoff up to this pause; on close only
# CLOSE_ATTEMPTS more times, so that shutting down always ends.
RETRY_FIRST_DELAY: Final = 0.05
RETRY_MAX_DELAY: Final = 2.0
CLOSE_ATTEMPTS: Final = 5


@dataclass(frozen=True, slots=True)
class EntryWrite(EntryRow):
    """Upsert of one entry row. It *is* an EntryRow, so a group goes to the store unconverted."""


@dataclass(frozen=True, slots=True)
class LegacyLineWrite:
    """One JSONL line appended to a process's legacy log."""

    process_id: str
    line: str


WriteOp = EntryWrite | LegacyLineWrite


class WriterClosedError(ExeclogError):
    """The writer was closed (or stopped on a failure) before the write could be accepted."""


class LogWriter:
    """Queues writes and commits them in groups, one transaction per group.

    Accounting is by sequence numbers instead of per-op futures: ``submit`` counts accepted ops,
    each commit publishes the count it covered, and ``flush`` waits until the committed count
    reaches the count at its call.
    """

    def __init__(
        self,
        engine: Engine,
        persistence: LogPersistence,
        *,
        batch_rows: int = 2000,
        max_delay: float = 0.05,
        queue_rows: int = 20000,
    ) -> None:
        if batch_rows < 1 or queue_rows < 1 or max_delay < 0:
            raise ValueError("batch_rows and queue_rows must be >= 1, max_delay >= 0")
        self._engine = engine
        self._persistence = LogPersistence(persistence)
        self._entry_store = EntryStore(engine)
        self._legacy_store = LegacyLogStore(engine)
        self._batch_rows = batch_rows
        self._max_delay = max_delay
        self._queue_rows = queue_rows
        accepted: list[type] = []
        if self.writes_entries:
            accepted.append(EntryWrite)
        if self.writes_legacy:
            accepted.append(LegacyLineWrite)
        self._accepted = tuple(accepted)

        self._pending: list[WriteOp] = []
        self._first_queued_at = 0.0
        self._submitted = 0  # ops accepted so far
        self._committed = 0  # ops covered by committed groups
        self._flush_target = 0
        self._wake = asyncio.Event()
        self._space = asyncio.Condition()
        self._progress = asyncio.Condition()
        self._closing = False
        self._stopped = False
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

        self.committed_groups = 0
        self.committed_rows = 0
        self.failed_commits = 0
        self.producer_waits = 0  # submits that had to wait for queue space

    # --- mode ------------------------------------------------------------------------------

    @property
    def persistence(self) -> LogPersistence:
        return self._persistence

    @property
    def writes_entries(self) -> bool:
        return self._persistence in (LogPersistence.DUAL, LogPersistence.ENTRIES)

    @property
    def writes_legacy(self) -> bool:
        return self._persistence in (LogPersistence.DUAL, LogPersistence.LEGACY_JSONL)

    @property
    def pending_rows(self) -> int:
        """Rows queued and not yet taken into a commit."""
        return len(self._pending)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        if self._closing:
            raise WriterClosedError("log writer is closed")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="execlog-writer")
        self._task = asyncio.create_task(self._run(), name="execlog-log-writer")

    async def close(self) -> None:
        """Commit everything queued, then stop. Raises if the last commits keep failing."""
        if self._task is None:
            if self._pending and not self._closing:
                await self.start()
            else:
                self._closing = True
                self._stopped = True
                return
        self._closing = True
        self._wake.set()
        assert self._task is not None
        try:
            await asyncio.shield(self._task)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=False)

    # --- producers -------------------------------------------------------------------------

    async def submit(self, op: WriteOp) -> None:
        """Queue one write; waits while the queue is full. Ops this mode does not write are
        ignored, so producers need not know the mode."""
        if not isinstance(op, self._accepted):
            return
        if self._closing:
            raise WriterClosedError("log writer is closed")
        if len(self._pending) >= self._queue_rows:
            await self._wait_for_space()
        pending = self._pending
        pending.append(op)
        self._submitted += 1
        queued = len(pending)
        if queued == 1:
            self._first_queued_at = time.monotonic()
            self._wake.set()
        elif queued == self._batch_rows:
            self._wake.set()

    async def submit_many(self, ops: Sequence[WriteOp]) -> None:
        """Queue several writes in order, all at once, then wait while the queue is over its
        bound. Queuing before waiting matters: the pipeline has already put these entries in
        memory (which may evict them), and a reader that flushes the writer must find every
        one of them either in memory or in the writer's queue. The queue can exceed
        ``queue_rows`` by one batch (one pipe read's lines), so it stays bounded."""
        accepted = self._accepted
        wanted = [op for op in ops if isinstance(op, accepted)]
        if not wanted:
            return
        if self._closing:
            raise WriterClosedError("log writer is closed")
        pending = self._pending
        before = len(pending)
        pending.extend(wanted)
        self._submitted += len(wanted)
        if before == 0:
            self._first_queued_at = time.monotonic()
            self._wake.set()
        elif before < self._batch_rows <= len(pending):
            self._wake.set()
        if len(self._pending) >= self._queue_rows:
            await self._wait_for_space()

    async def flush(self) -> None:
        """Return once every op submitted before this call is committed."""
        target = self._submitted
        if self._committed >= target:
            return
        if self._task is None or self._stopped:
            raise WriterClosedError("log writer is not running")
        self._flush_target = max(self._flush_target, target)
        self._wake.set()
        async with self._progress:
            await self._progress.wait_for(lambda: self._committed >= target or self._stopped)
        if self._committed < target:
            raise WriterClosedError("log writer stopped before the flush completed")

    async def _wait_for_space(self) -> None:
        self.producer_waits += 1
        async with self._space:
            await self._space.wait_for(
                lambda: len(self._pending) < self._queue_rows or self._stopped
            )
        if self._stopped:
            raise WriterClosedError("log writer stopped")

    # --- the writer task -------------------------------------------------------------------

    def _commit_due(self) -> bool:
        return (
            len(self._pending) >= self._batch_rows
            or self._closing
            or self._flush_target > self._committed
        )

    async def _run(self) -> None:
        try:
            while True:
                if not self._pending:
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._wait_until_due()
                group, self._pending = self._pending, []
                covered = self._submitted
                async with self._space:
                    self._space.notify_all()
                await self._commit_with_retry(group)
                self._committed = covered
                self.committed_groups += 1
                self.committed_rows += len(group)
                async with self._progress:
                    self._progress.notify_all()
        finally:
            self._stopped = True
            async with self._space:
                self._space.notify_all()
            async with self._progress:
                self._progress.notify_all()

    async def _wait_until_due(self) -> None:
        """Until batch_rows are queued, max_delay has passed since the first one, or a flush or
        close asks for a commit now."""
        deadline = self._first_queued_at + self._max_delay
        while not self._commit_due():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                return

    async def _commit_with_retry(self, group: list[WriteOp]) -> None:
        loop = asyncio.get_running_loop()
        delay = RETRY_FIRST_DELAY
        attempts_while_closing = 0
        while True:
            try:
                await loop.run_in_executor(self._executor, self._commit_group, group)
                return
            except Exception:
                self.failed_commits += 1
                if self._closing:
                    attempts_while_closing += 1
                    if attempts_while_closing >= CLOSE_ATTEMPTS:
                        logger.error(
                            "log writer: giving up on close after %d failed commits of %d rows",
                            attempts_while_closing,
                            len(group),
                        )
                        raise
                logger.exception(
                    "log writer: commit of %d rows failed; retrying in %.2fs", len(group), delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY)

    def _commit_group(self, group: list[WriteOp]) -> None:
        """One transaction: the group's entry upserts and one legacy row per process."""
        entries: list[EntryRow] = []
        legacy: dict[str, list[str]] = {}
        if not self.writes_legacy:
            entries = group  # type: ignore[assignment]  # only EntryWrite is accepted
        else:
            for op in group:
                if isinstance(op, EntryWrite):
                    entries.append(op)
                else:
                    lines = legacy.get(op.process_id)
                    if lines is None:
                        legacy[op.process_id] = [op.line]
                    else:
                        lines.append(op.line)
        stamp = now_ms()
        with self._engine.begin() as connection:
            if entries:
                self._entry_store.upsert_entries(connection, entries, stamp)
            for process_id, lines in legacy.items():
                self._legacy_store.append_lines(connection, process_id, lines, stamp)
