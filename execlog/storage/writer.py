"""The batched writer: one task per database turns submitted entry and legacy-line writes into
group commits (batch_rows rows or max_delay, whichever first), run in a thread of its own.

Producers never wait for a commit, only for queue space (back-pressure). Memory is bounded in
bytes end to end (issue 9): the queue holds at most ``queue_bytes`` (and ``queue_rows``), a
commit group at most ``group_rows`` and ``group_bytes``, a legacy JSONL row at most
``LEGACY_ROW_BYTES``, and nothing references a group once it is committed.

The writer never wedges: a transient error (locked, busy, disk full, connection lost) is retried
with back-off while producers wait, losing nothing; a permanent one (a value too big, a
constraint) is narrowed down by bisection to the offending write, which is dropped, logged and
reported to its process (``on_rejected``), while every other write goes on.

The persistence mode (``EXECLOG_LOG_PERSISTENCE``) is decided here and nowhere else: producers
submit entry writes and legacy-only lines; the writer upserts entries, derives their legacy
JSONL lines (quoted once: sliced from the payloads), or both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from execlog.allocator import release_free_memory
from execlog.config import LogPersistence
from execlog.errors import ExeclogError
from execlog.protocol import legacy_line_from_entry, now_ms
from execlog.storage.database import describe_database_error
from execlog.storage.entries import EntryRow, EntryStore
from execlog.storage.legacy import LegacyLogStore

__all__ = [
    "EntryWrite",
    "LEGACY_ROW_BYTES",
    "LegacyLineWrite",
    "LogWriter",
    "RejectedWriteHandler",
    "WriteOp",
    "WriterClosedError",
    "WriterHealth",
]

logger = logging.getLogger(__name__)

# A failing commit is retried with exponential backoff up to this pause; on close only
# CLOSE_ATTEMPTS more times, so that shutting down always ends.
RETRY_FIRST_DELAY: Final = 0.05
RETRY_MAX_DELAY: Final = 2.0
CLOSE_ATTEMPTS: Final = 5
# A retried error is logged when it starts and then at most this often (not on every attempt).
RETRY_LOG_INTERVAL: Final = 30.0
# Legacy JSONL lines of one process in one group are joined into rows of at most this size (a
# longer single line is a row of its own): one row per group reached SQLite's 1e9-byte limit.
LEGACY_ROW_BYTES: Final = 1 << 20
# After this many bytes committed, the writer returns free heap memory to the OS once it has
# been idle for IDLE_TRIM_SECONDS (a flood is over).
TRIM_AFTER_BYTES: Final = 64 << 20
IDLE_TRIM_SECONDS: Final = 1.0

# (process id, reason): a write of that process was dropped after a permanent error.
RejectedWriteHandler = Callable[[str, str], None]


@dataclass(slots=True)
class EntryWrite(EntryRow):
    """One entry added (or, with ``replace``, restated at its index). It *is* an EntryRow, so a
    group goes to the entry store unconverted; its legacy JSONL line is derived from it, unless
    it is ``partial`` (a line still being written: JSONL gets it once, when it ends). Not
    ``frozen``, for speed, as EntryRow: nothing changes one once made."""

    replace: bool = False
    partial: bool = False

    @property
    def may_be_stored(self) -> bool:
        """A new entry's key is new (indexes are never reused); a replace or a growing
        partial line restates one that may be stored."""
        return self.replace or self.partial


@dataclass(frozen=True, slots=True)
class LegacyLineWrite:
    """A legacy-only JSONL line (``SessionId``, ``Finished``): no entry stands for it."""

    process_id: str
    line: str


WriteOp = EntryWrite | LegacyLineWrite


def _op_size(op: WriteOp) -> int:
    """Characters of the write's text: its memory, and its share of a commit, within a few %."""
    return len(op.entry_json) if type(op) is EntryWrite else len(op.line)  # type: ignore[union-attr]


@dataclass(frozen=True, slots=True)
class WriterHealth:
    """What ``GET /api/health`` reports of the writer."""

    queue_rows: int
    queue_bytes: int
    last_error: str | None  # the error being retried now, None when writes go through
    disk_full: bool
    rejected_writes: int


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
        entries: EntryStore,
        legacy: LegacyLogStore,
        persistence: LogPersistence,
        *,
        batch_rows: int = 2000,
        max_delay: float = 0.05,
        queue_rows: int = 20000,
        queue_bytes: int = 32 << 20,
        group_rows: int = 20_000,
        group_bytes: int | None = None,
    ) -> None:
        if min(batch_rows, queue_rows, queue_bytes, group_rows) < 1 or max_delay < 0:
            raise ValueError("row and byte bounds must be >= 1, max_delay >= 0")
        self._engine = entries.engine
        self._persistence = LogPersistence(persistence)
        self._entry_store = entries
        self._legacy_store = legacy
        self._batch_rows = batch_rows
        self._max_delay = max_delay
        self._queue_rows = queue_rows
        self._queue_bytes = queue_bytes
        self._group_rows = max(group_rows, batch_rows)
        # A quarter of the queue: producers keep filling the rest while a group commits.
        self._group_bytes = group_bytes if group_bytes is not None else max(1, queue_bytes // 4)
        self.on_rejected: RejectedWriteHandler | None = None
        # Legacy-only lines are dropped unless JSONL is written; entry writes always count.
        self._accepted: tuple[type, ...] = (
            (EntryWrite, LegacyLineWrite) if self.writes_legacy else (EntryWrite,)
        )

        self._pending: list[WriteOp] = []
        self._pending_bytes = 0
        self._inflight_rows = 0  # the group being committed
        self._inflight_bytes = 0
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
        self.rejected_writes = 0  # writes dropped after a permanent error (and reported)
        self.largest_group_bytes = 0
        self._last_error: str | None = None
        self._disk_full = False
        self._bytes_since_trim = 0

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

    @property
    def pending_bytes(self) -> int:
        """Bytes (characters) of the writes queued and not yet taken into a commit."""
        return self._pending_bytes

    def health(self) -> WriterHealth:
        """Rows and bytes not yet committed: queued, and in the group being committed."""
        return WriterHealth(
            len(self._pending) + self._inflight_rows,
            self._pending_bytes + self._inflight_bytes,
            self._last_error,
            self._disk_full,
            self.rejected_writes,
        )

    def _queue_full(self) -> bool:
        return len(self._pending) >= self._queue_rows or self._pending_bytes >= self._queue_bytes

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
        """Queue one write; waits while the queue is full. Legacy-only lines are ignored when
        JSONL is not written, so producers need not know the mode."""
        # Inlined checks and sizes: this runs once per line of output (issue 9's 1 KB ingest).
        if type(op) is EntryWrite:
            size = len(op.entry_json)
        elif isinstance(op, self._accepted):
            size = _op_size(op)
        else:
            return
        if self._closing:
            raise WriterClosedError("log writer is closed")
        pending = self._pending
        if len(pending) >= self._queue_rows or self._pending_bytes >= self._queue_bytes:
            await self._wait_for_space()
            pending = self._pending  # the writer took a group meanwhile
        pending.append(op)
        pending_bytes = self._pending_bytes = self._pending_bytes + size
        self._submitted += 1
        queued = len(pending)
        if queued == 1:
            self._first_queued_at = time.monotonic()
            self._wake.set()
        elif queued == self._batch_rows or pending_bytes >= self._group_bytes:
            self._wake.set()

    async def submit_many(self, ops: Sequence[WriteOp]) -> None:
        """Queue several writes in order, all at once, then wait while the queue is over its
        bound. Queuing before waiting matters: the pipeline has already put these entries in
        memory (which may evict them), and a reader that flushes the writer must find every
        one of them either in memory or in the writer's queue. The queue can exceed its bounds
        by one batch (one pipe read's lines), so it stays bounded."""
        accepted = self._accepted
        wanted = [op for op in ops if isinstance(op, accepted)]
        if not wanted:
            return
        if self._closing:
            raise WriterClosedError("log writer is closed")
        pending = self._pending
        before = len(pending)
        pending.extend(wanted)
        self._pending_bytes += sum(map(_op_size, wanted))
        self._submitted += len(wanted)
        if before == 0:
            self._first_queued_at = time.monotonic()
            self._wake.set()
        elif before < self._batch_rows <= len(pending) or self._pending_bytes >= self._group_bytes:
            self._wake.set()
        if self._queue_full():
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
            await self._space.wait_for(lambda: not self._queue_full() or self._stopped)
        if self._stopped:
            raise WriterClosedError("log writer stopped")

    # --- the writer task -------------------------------------------------------------------

    def _commit_due(self) -> bool:
        return (
            len(self._pending) >= self._batch_rows
            or self._pending_bytes >= self._group_bytes
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
                    if self._bytes_since_trim >= TRIM_AFTER_BYTES:
                        await self._trim_when_idle()
                    else:
                        await self._wake.wait()
                    continue
                await self._wait_until_due()
                group = self._take_group()
                async with self._space:
                    self._space.notify_all()
                await self._commit_with_retry(group)
                self._inflight_rows = self._inflight_bytes = 0
                self._committed += len(group)
                self.committed_groups += 1
                self.committed_rows += len(group)
                # Drop the group now: the loop would otherwise hold its payloads until the next
                # group replaced it (issue 9: gigabytes held after a flood of large lines).
                del group
                async with self._progress:
                    self._progress.notify_all()
        finally:
            self._stopped = True
            async with self._space:
                self._space.notify_all()
            async with self._progress:
                self._progress.notify_all()

    def _take_group(self) -> list[WriteOp]:
        """The oldest writes, at most group_rows and group_bytes of them (at least one)."""
        pending = self._pending
        limit = min(len(pending), self._group_rows)
        budget = self._group_bytes
        taken = 0
        count = 0
        while count < limit:
            size = _op_size(pending[count])
            if count and taken + size > budget:
                break
            taken += size
            count += 1
        if count == len(pending):
            group, self._pending = pending, []
        else:
            group = pending[:count]
            del pending[:count]
            self._first_queued_at = time.monotonic()  # the rest is due after max_delay too
        self._pending_bytes -= taken
        self._inflight_rows = count
        self._inflight_bytes = taken
        self._bytes_since_trim += taken
        self.largest_group_bytes = max(self.largest_group_bytes, taken)
        return group

    async def _trim_when_idle(self) -> None:
        """After a large volume: once idle for IDLE_TRIM_SECONDS, give freed memory back."""
        try:
            async with asyncio.timeout(IDLE_TRIM_SECONDS):
                await self._wake.wait()
            return
        except TimeoutError:
            pass
        self._bytes_since_trim = 0
        await asyncio.get_running_loop().run_in_executor(self._executor, release_free_memory)

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
        """Commit ``group``: transient errors are retried (producers wait meanwhile), permanent
        ones narrowed down to the offending writes, which are dropped and reported."""
        loop = asyncio.get_running_loop()
        delay = RETRY_FIRST_DELAY
        attempts_while_closing = 0
        failing_since: float | None = None
        last_logged = 0.0
        while True:
            try:
                await loop.run_in_executor(self._executor, self._commit_group, group)
            except Exception as exc:
                if _is_permanent(exc):
                    await self._isolate_rejected(group, exc)
                    return
                self.failed_commits += 1
                self._note_transient_error(exc)
                if self._closing:
                    attempts_while_closing += 1
                    if attempts_while_closing >= CLOSE_ATTEMPTS:
                        logger.error(
                            "log writer: giving up on close after %d failed commits of %d rows",
                            attempts_while_closing,
                            len(group),
                        )
                        raise
                now = time.monotonic()
                failing_since = failing_since or now
                if self._disk_full:
                    pass  # reported once, when the episode began
                elif last_logged == 0.0 or now - last_logged >= RETRY_LOG_INTERVAL:
                    # Once when an episode starts, then now and then: not on every attempt.
                    logger.warning(
                        "log writer: commit of %d rows failed (%s); retrying with back-off, "
                        "producers wait",
                        len(group),
                        self._last_error,
                    )
                    last_logged = now
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY)
                continue
            if failing_since is not None or self._disk_full:
                logger.warning(
                    "log writer: writes resumed after %.1fs of failures",
                    time.monotonic() - (failing_since or time.monotonic()),
                )
            self._last_error = None
            self._disk_full = False
            return

    def _note_transient_error(self, exc: Exception) -> None:
        self._last_error = describe_database_error(exc)
        if _is_disk_full(exc) and not self._disk_full:
            self._disk_full = True
            logger.error(
                "log writer: the database disk is full (%s); writes are held until space "
                "returns, nothing is dropped",
                self._last_error,
            )

    async def _isolate_rejected(self, group: list[WriteOp], exc: Exception) -> None:
        """Bisect a group that failed permanently: the halves commit (or fail) on their own, so
        only the offending writes are dropped, in log2(rows) rounds."""
        if len(group) > 1:
            middle = len(group) // 2
            await self._commit_with_retry(group[:middle])
            await self._commit_with_retry(group[middle:])
            return
        (op,) = group
        if isinstance(op, LegacyLineWrite) and "\n" in op.line:
            # One chunk's legacy lines travel as one write: only the offending line is dropped.
            await self._commit_with_retry(
                [LegacyLineWrite(op.process_id, line) for line in op.line.split("\n")]
            )
            return
        reason = describe_database_error(exc)
        self.rejected_writes += 1
        what = (
            f"entry {op.channel} #{op.entry_index}"
            if isinstance(op, EntryWrite)
            else "legacy JSONL line"
        )
        logger.error(
            "log writer: dropped %s of process %s (%d bytes): %s",
            what,
            op.process_id,
            _op_size(op),
            reason,
        )
        if self.on_rejected is not None:
            try:
                self.on_rejected(op.process_id, f"could not store {what}: {reason}")
            except Exception:
                logger.exception("log writer: reporting a dropped write failed")

    def _commit_group(self, group: list[WriteOp]) -> None:
        """One transaction: the group's entry upserts and the legacy rows of each process."""
        entries: list[EntryRow] = []
        legacy: dict[str, list[str]] = {}
        if not self.writes_legacy:
            entries = group  # type: ignore[assignment]  # only EntryWrite is accepted
        else:
            keep_entries = self.writes_entries
            for op in group:
                if isinstance(op, EntryWrite):
                    if keep_entries:
                        entries.append(op)
                    if op.partial:
                        continue
                    line = legacy_line_from_entry(
                        op.channel, op.entry_index, op.entry_json, replace=op.replace
                    )
                else:
                    line = op.line
                lines = legacy.get(op.process_id)
                if lines is None:
                    legacy[op.process_id] = [line]
                else:
                    lines.append(line)
        stamp = now_ms()
        with self._engine.begin() as connection:
            if entries:
                self._entry_store.upsert_entries(connection, entries, stamp)
            for process_id, lines in legacy.items():
                for row in _legacy_rows(lines):
                    self._legacy_store.append_lines(connection, process_id, row, stamp)


def _legacy_rows(lines: list[str]) -> list[list[str]]:
    """``lines`` cut into consecutive runs of at most LEGACY_ROW_BYTES (characters) each."""
    rows: list[list[str]] = []
    current: list[str] = []
    size = 0
    for line in lines:
        if current and size + len(line) > LEGACY_ROW_BYTES:
            rows.append(current)
            current = []
            size = 0
        current.append(line)
        size += len(line) + 1
    if current:
        rows.append(current)
    return rows


def _is_permanent(exc: Exception) -> bool:
    """Errors that the same write will hit again however often it is retried: a value too big
    for the database (SQLite's "string or blob too big" is a DataError), a constraint, or an
    error of our own code on the write (a payload it cannot turn into legacy JSONL, say). Any
    other database error (locked, busy, full, gone, a table missing) may pass: retried."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    return not isinstance(exc, SQLAlchemyError)


def _is_disk_full(exc: Exception) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    # SQLite: SQLITE_FULL; PostgreSQL: SQLSTATE 53100 disk_full ("No space left on device").
    return "disk is full" in text or "no space left" in text or "53100" in text
