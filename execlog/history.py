"""The one reader of log history: tail-first pages (HTTP) and frame streams (WebSocket), from a
running process's MsgStore, falling back to the database for what memory has evicted; from the
database for ended processes, after an on-demand backfill (a hook the legacy-import job
installs).

Pages never overlap and never skip (CONTRACT.md, "Log history"): a page is the index range
``[max(0, upper - limit), upper)`` where ``upper`` is the cursor (or the next index). Streams
are gapless and duplicate-free (CONTRACT.md, "WebSocket streams"); see ``LogStream``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from enum import StrEnum
from typing import Final

from execlog.errors import DatabaseUnavailableError, ProcessNotFoundError
from execlog.live.msg_store import Checkpoint, LiveEvent, MsgStore, Resync, Subscription
from execlog.protocol import (
    FINISHED_FRAME,
    Channel,
    HistoryPage,
    StoredEntry,
    encode_append_frame,
    encode_replace_frame,
)
from execlog.storage.entries import EntryStore
from execlog.storage.processes import ProcessRepository
from execlog.storage.writer import LogWriter

__all__ = [
    "BackfillHook",
    "CATCH_UP_CHUNK",
    "CATCH_UP_SHARE",
    "CatchUpPacer",
    "cursor_around",
    "FLUSH_DEADLINE_SECONDS",
    "HistoryService",
    "LogStream",
    "StoreView",
    "StreamPhase",
]

BackfillHook = Callable[[str], Awaitable[None]]
# The read-only view of the running processes history needs: one channel's store, or None.
StoreView = Callable[[str, Channel], MsgStore | None]

CATCH_UP_CHUNK: Final = 1000
# While its producer is busy, the catch-up of lagging streams (CATCH_UP, RESYNC) takes at most
# this share of the server's time, all streams together; the rest waits until the producer is
# quiet. A frame costs the server ~12 us to send (one socket write each), as much as ingesting
# a line: unpaced, one slow subscriber made a 30k-line flood 1.8-2.5x slower (issue 9).
CATCH_UP_SHARE: Final = 0.02
# Frames sent between two pacing decisions: under a millisecond of sending.
PACE_FRAMES: Final = 64
# A producer is busy until its store has not moved for this long. A flood's output arrives in
# bursts (a 64 KiB pipe read is ~300 lines) a few milliseconds apart.
BUSY_WINDOW_SECONDS: Final = 0.05
# A read that needs entries still queued for the writer waits at most this long for them
# (the server passes EXECLOG_DB_TIMEOUT_SECONDS), then answers 503.
FLUSH_DEADLINE_SECONDS: Final = 5.0
_KNOWN_IDS_CAPACITY: Final = 4096
# updated_at is a commit time on the wall clock: a resync that asks the database what changed
# since a moment looks a second further back, in case the clock stepped.
_CLOCK_SLACK_MS: Final = 1000

_FrameEncoder = Callable[[int, str], str]


def cursor_around(index: int, limit: int) -> int:
    """The cursor of the page of ``limit`` entries centred on ``index`` (``around=N``): the page
    ``[index - limit // 2, ... + limit)``, moved up to start at 0 near the beginning. Near the
    end, the cursor's usual clamp to the next index makes it the tail page."""
    return max(0, index - limit // 2) + limit


class HistoryService:
    def __init__(
        self,
        entries: EntryStore,
        stores: StoreView,
        writer: LogWriter,
        repository: ProcessRepository,
        *,
        flush_deadline_seconds: float = FLUSH_DEADLINE_SECONDS,
    ) -> None:
        self._entries = entries
        self._stores = stores
        self._writer = writer
        self._repository = repository
        self.flush_deadline_seconds = flush_deadline_seconds
        self._known_ids: OrderedDict[str, None] = OrderedDict()
        self.backfill: BackfillHook | None = None
        self.pacer = CatchUpPacer()

    # --- pages ------------------------------------------------------------------------------

    async def fetch_page(
        self, process_id: str, channel: Channel, limit: int, cursor: int | None
    ) -> HistoryPage:
        store = self._stores(process_id, channel)
        if store is None:
            return await self._fetch_stored_page(process_id, channel, limit, cursor)
        upper = store.next_index if cursor is None else min(cursor, store.next_index)
        low = max(0, upper - limit)
        first_held = store.first_held_index
        memory_start = upper if first_held is None else min(max(first_held, low), upper)
        # Take the memory part now, synchronously: the store moves on while we await the DB.
        held = store.held_range(memory_start, upper)
        if low >= memory_start:
            return HistoryPage(held, has_more=low > 0, history_truncated=False)
        await self.flush_writes()  # evicted entries may still sit in the writer's queue
        stored = await self._entries.afetch_range(process_id, channel, low, memory_start)
        truncated = len(stored) < memory_start - low
        has_more = low > 0
        if truncated and has_more:
            has_more = await self._entries.ahas_entries_before(process_id, channel, low)
        return HistoryPage(stored + held, has_more=has_more, history_truncated=truncated)

    async def _fetch_stored_page(
        self, process_id: str, channel: Channel, limit: int, cursor: int | None
    ) -> HistoryPage:
        await self.prepare_stored_read(process_id)
        rows = await self._entries.afetch_tail_page(process_id, channel, limit + 1, cursor)
        if not rows:
            await self.ensure_process(process_id)
        has_more = len(rows) > limit
        return HistoryPage(rows[1:] if has_more else rows, has_more, history_truncated=False)

    # --- streams ----------------------------------------------------------------------------

    def stream(self, process_id: str, channel: Channel, after: int | None) -> LogStream:
        """The frames of one WebSocket subscriber (``async for frame in stream``)."""
        return LogStream(self, process_id, channel, after)

    async def iter_stored_after(
        self, process_id: str, channel: Channel, after: int, stop: int | None = None
    ) -> AsyncIterator[list[StoredEntry]]:
        """Stored entries with ``after < index < stop``, ascending, in chunks."""
        position = after
        while stop is None or position + 1 < stop:
            batch = await self._entries.afetch_entries_after(
                process_id, channel, position, CATCH_UP_CHUNK
            )
            if stop is not None:
                batch = [entry for entry in batch if entry.entry_index < stop]
            if not batch:
                return
            yield batch
            position = batch[-1].entry_index
            if len(batch) < CATCH_UP_CHUNK:
                return

    # --- shared steps -----------------------------------------------------------------------

    async def prepare_stored_read(self, process_id: str) -> None:
        """Before reading an ended process from the database: backfill it if needed."""
        if self.backfill is not None:
            await self.backfill(process_id)

    async def flush_writes(self) -> None:
        """Wait until what the writer has queued is committed, never longer than the deadline
        (``EXECLOG_DB_TIMEOUT_SECONDS``): a global flush behind a locked or unreachable database
        must not hang a read; it answers 503 instead (issue 9)."""
        try:
            async with asyncio.timeout(self.flush_deadline_seconds):
                await self._writer.flush()
        except TimeoutError:
            raise DatabaseUnavailableError(
                f"queued writes not committed within {self.flush_deadline_seconds:g} s"
            ) from None

    async def ensure_process(self, process_id: str) -> None:
        """404 unless the process exists (a small cache spares the lookup on repeat calls)."""
        if process_id in self._known_ids:
            self._known_ids.move_to_end(process_id)
            return
        if self._stores(process_id, "raw") is None:
            record = await self._repository.afetch_process(process_id)
            if record is None:
                raise ProcessNotFoundError(process_id)
        self._known_ids[process_id] = None
        if len(self._known_ids) > _KNOWN_IDS_CAPACITY:
            self._known_ids.popitem(last=False)


class CatchUpPacer:
    """The one budget of catch-up sending, shared by every stream of a server (issue 9: a slow
    subscriber never slows the producer). A chunk of catch-up frames sent while its producer is
    busy is charged, and the next such chunk of any stream starts no sooner than the budget
    allows: at most ``share`` of the time in all. While the producer is quiet, catch-ups go at
    full speed and are not charged."""

    def __init__(self, share: float = CATCH_UP_SHARE) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self._share = share
        self._next_start = 0.0

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    async def pace(self, started: float, busy: bool) -> None:
        """After a chunk sent since ``started`` (``now()``): while the producer is ``busy``,
        charge it and wait for the budget. Always yield: sending does not, and the producer's
        output is read on the same loop."""
        delay = 0.0
        if busy:
            now = self.now()
            self._next_start = max(self._next_start, started) + (now - started) / self._share
            delay = max(0.0, self._next_start - now)
        await asyncio.sleep(delay)


class StreamPhase(StrEnum):
    """Where a stream is. CATCH_UP: what the client lacks, from the database (below memory),
    then memory. LIVE: the store's events as they happen. RESYNC: the subscriber overflowed;
    send what it lacks as ``replace`` frames, then LIVE again. ENDED: ``finished`` is next."""

    CATCH_UP = "catch_up"
    LIVE = "live"
    RESYNC = "resync"
    ENDED = "ended"


class LogStream:
    """One subscriber's frames: ``append``/``replace`` frames, then ``finished`` last.

    Gapless: the stream subscribes before it takes a checkpoint (a per-store sequence number
    drops the overlap), and reads from the database only below the first index memory holds,
    after flushing the writer. Duplicate-free: ``_last_sent`` is the highest index the client
    holds (or asked to start after); an ``append`` at or below it is never sent again.

    Catch-ups (CATCH_UP, RESYNC) read the entries as they send them, a chunk at a time, and are
    paced by the server's ``CatchUpPacer`` while the producer is busy.
    """

    def __init__(
        self, history: HistoryService, process_id: str, channel: Channel, after: int | None
    ) -> None:
        self._history = history
        self._process_id = process_id
        self._channel = channel
        self._after = after
        self._last_sent = -1 if after is None else after
        # The store's seq when last looked at, and when it was last seen to move.
        self._seen_seq = 0
        self._moved_at = -BUSY_WINDOW_SECONDS
        self.phase = StreamPhase.CATCH_UP

    def __aiter__(self) -> AsyncIterator[str]:
        return self.frames()

    async def frames(self) -> AsyncGenerator[str, None]:
        """The frames, as one async generator: close it (``contextlib.aclosing``) to release
        the subscription at once when the client goes away."""
        store = self._history._stores(self._process_id, self._channel)
        if store is None:
            async for frame in self._ended_process_frames():
                yield frame
        else:
            self._seen_seq = store.seq
            with store.subscribe() as subscription:
                while self.phase is not StreamPhase.ENDED:
                    async for frame in self._run_phase(store, subscription):
                        yield frame
        yield FINISHED_FRAME

    def _run_phase(self, store: MsgStore, subscription: Subscription) -> AsyncIterator[str]:
        if self.phase is StreamPhase.CATCH_UP:
            return self._catch_up(store, subscription)
        if self.phase is StreamPhase.LIVE:
            return self._live(subscription)
        return self._resync(store, subscription)

    # --- phases -----------------------------------------------------------------------------

    async def _ended_process_frames(self) -> AsyncIterator[str]:
        """An ended process: the stored entries after ``after`` (if given)."""
        if self._after is not None:
            await self._history.prepare_stored_read(self._process_id)
            async for batch in self._history.iter_stored_after(
                self._process_id, self._channel, self._after
            ):
                for frame in self._frames(batch, encode_append_frame):
                    yield frame
        self.phase = StreamPhase.ENDED

    async def _catch_up(self, store: MsgStore, subscription: Subscription) -> AsyncIterator[str]:
        """With ``after``: every entry above it, from the database up to memory, then memory.
        Without: what memory holds."""
        point = subscription.checkpoint()
        after = point.first_held - 1 if self._after is None else self._after
        async for frame in self._entries_between(store, after, point, encode_append_frame):
            yield frame
        self.phase = StreamPhase.ENDED if point.finished else StreamPhase.LIVE

    async def _live(self, subscription: Subscription) -> AsyncIterator[str]:
        while True:
            events = await subscription.next_events()
            if isinstance(events, Resync):
                self.phase = StreamPhase.RESYNC
                return
            if not events:  # the subscription was closed under us: nothing more will come
                self.phase = StreamPhase.ENDED
                return
            for event in events:
                if event.kind == "finished":
                    self.phase = StreamPhase.ENDED
                    return
                if self._is_duplicate(event):
                    continue
                yield event.frame

    async def _resync(self, store: MsgStore, subscription: Subscription) -> AsyncIterator[str]:
        """Only what the client lacks (issue 9), ascending, as ``replace`` frames: every entry
        at or below the last index sent that was replaced after it was sent (memory's log of
        replaced indexes; the database's ``updated_at`` once that log has forgotten), then
        every entry above it (database below memory, then memory). A client that upserts by
        index is then complete, and a slow one receives each entry about once."""
        since_seq = subscription.cursor
        since_ms = subscription.cursor_time_ms
        point = subscription.checkpoint()
        last_sent = self._last_sent
        stale = await self._replaced_entries(store, since_seq, since_ms)
        async for frame in self._paced(store, self._frames(stale, encode_replace_frame)):
            yield frame
        async for frame in self._entries_between(store, last_sent, point, encode_replace_frame):
            yield frame
        self.phase = StreamPhase.ENDED if point.finished else StreamPhase.LIVE

    async def _replaced_entries(
        self, store: MsgStore, since_seq: int, since_ms: int
    ) -> list[StoredEntry]:
        """Entries at or below the last index sent that were replaced after it was sent, in
        their newest form, ascending."""
        last_sent = self._last_sent
        if last_sent < 0:
            return []
        history = self._history
        replaced = store.replaced_since(since_seq)
        if replaced is None:
            # The log no longer reaches back: the database knows what was updated since (its
            # stamps are commit times, later than the change), memory has the newest held form.
            await history.flush_writes()
            stored = await history._entries.afetch_updated_since(
                self._process_id, self._channel, last_sent, since_ms - _CLOCK_SLACK_MS
            )
            replaced = {entry.entry_index for entry in stored}
        indexes = sorted(index for index in replaced if index <= last_sent)
        # Memory's part now, synchronously: it may evict while the database answers.
        first_held = _first_held(store)
        held = [
            entry
            for index in indexes
            if index >= first_held
            for entry in store.held_range(index, index + 1)
        ]
        evicted = [index for index in indexes if index < first_held]
        if not evicted:
            return held
        await history.flush_writes()
        entries = await history._entries.afetch_indexes(self._process_id, self._channel, evicted)
        return entries + held

    # --- steps ------------------------------------------------------------------------------

    async def _entries_between(
        self, store: MsgStore, after: int, point: Checkpoint, encode: _FrameEncoder
    ) -> AsyncIterator[str]:
        """Frames of the entries ``after < index < point.next_index``, read as they are sent:
        from memory while it holds them, else from the database (after flushing the writer),
        paced."""
        position = after
        stop = point.next_index
        while position + 1 < stop:
            first_held = _first_held(store)
            if position + 1 >= first_held:
                batch = store.held_range(position + 1, min(stop, position + 1 + PACE_FRAMES))
            else:
                # The read is charged to the budget like the sending: it takes the writer's
                # flush and a database thread while the producer is busy.
                started = self._history.pacer.now()
                await self._history.flush_writes()
                batch = await self._history._entries.afetch_entries_after(
                    self._process_id, self._channel, position, CATCH_UP_CHUNK
                )
                await self._history.pacer.pace(started, self._producer_busy(store))
                # Memory has the newest form of what it still holds.
                batch = [entry for entry in batch if entry.entry_index < first_held]
                if not batch:  # the database lacks them (truncated history): on to memory
                    position = first_held - 1
                    continue
            async for frame in self._paced(store, self._frames(batch, encode)):
                yield frame
            position = batch[-1].entry_index

    async def _paced(self, store: MsgStore, frames: list[str]) -> AsyncIterator[str]:
        """``frames``, a chunk at a time; after each, the pacer decides, told whether the
        producer is busy."""
        pacer = self._history.pacer
        for start in range(0, len(frames), PACE_FRAMES):
            started = pacer.now()
            for frame in frames[start : start + PACE_FRAMES]:
                yield frame
            busy = self._producer_busy(store)
            await pacer.pace(started, busy)

    def _producer_busy(self, store: MsgStore) -> bool:
        """Whether the store has moved within ``BUSY_WINDOW_SECONDS`` and is not finished."""
        now = self._history.pacer.now()
        seq = store.seq
        if seq != self._seen_seq:
            self._seen_seq = seq
            self._moved_at = now
        return not store.finished and now - self._moved_at < BUSY_WINDOW_SECONDS

    def _frames(self, entries: list[StoredEntry], encode: _FrameEncoder) -> list[str]:
        frames = [encode(index, entry_json) for index, entry_json in entries]
        if entries and entries[-1].entry_index > self._last_sent:
            self._last_sent = entries[-1].entry_index
        return frames

    def _is_duplicate(self, event: LiveEvent) -> bool:
        if event.kind != "append":
            return False
        if event.entry_index <= self._last_sent:
            return True
        self._last_sent = event.entry_index
        return False


def _first_held(store: MsgStore) -> int:
    """Where memory begins now: indexes below it come from the database."""
    first_held = store.first_held_index
    return store.next_index if first_held is None else first_held
