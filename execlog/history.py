"""Tail-first history pages and catch-up reads: from a running process's MsgStore, falling back
to the database for what memory has evicted; from the database for ended processes, after an
on-demand backfill (a hook the legacy-import job installs).

Pages never overlap and never skip (CONTRACT.md, "Log history"): a page is the index range
``[max(0, upper - limit), upper)`` where ``upper`` is the cursor (or the next index).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable

from execlog.errors import ProcessNotFoundError
from execlog.live.registry import MsgStoreRegistry
from execlog.protocol import Channel, HistoryPage, StoredEntry
from execlog.storage.entries import EntryStore
from execlog.storage.processes import ProcessRepository
from execlog.storage.writer import LogWriter

__all__ = ["BackfillHook", "HistoryService", "CATCH_UP_CHUNK"]

BackfillHook = Callable[[str], Awaitable[None]]
CATCH_UP_CHUNK = 1000
_KNOWN_IDS_CAPACITY = 4096


class HistoryService:
    def __init__(
        self,
        entries: EntryStore,
        registry: MsgStoreRegistry,
        writer: LogWriter,
        repository: ProcessRepository,
    ) -> None:
        self._entries = entries
        self._registry = registry
        self._writer = writer
        self._repository = repository
        self._known_ids: OrderedDict[str, None] = OrderedDict()
        self.backfill: BackfillHook | None = None

    async def fetch_page(
        self, process_id: str, channel: Channel, limit: int, cursor: int | None
    ) -> HistoryPage:
        store = self._registry.get(process_id, channel)
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
        await self._writer.flush()  # evicted entries may still sit in the writer's queue
        stored = await asyncio.to_thread(
            self._entries.fetch_range, process_id, channel, low, memory_start
        )
        truncated = len(stored) < memory_start - low
        has_more = low > 0
        if truncated and has_more:
            has_more = await asyncio.to_thread(
                self._entries.has_entries_before, process_id, channel, low
            )
        return HistoryPage(stored + held, has_more=has_more, history_truncated=truncated)

    async def _fetch_stored_page(
        self, process_id: str, channel: Channel, limit: int, cursor: int | None
    ) -> HistoryPage:
        await self.prepare_stored_read(process_id)
        rows = await asyncio.to_thread(
            self._entries.fetch_tail_page, process_id, channel, limit + 1, cursor
        )
        if not rows:
            await self.ensure_process(process_id)
        has_more = len(rows) > limit
        return HistoryPage(rows[1:] if has_more else rows, has_more, history_truncated=False)

    async def iter_stored_after(
        self, process_id: str, channel: Channel, after: int, stop: int | None = None
    ) -> AsyncIterator[list[StoredEntry]]:
        """Stored entries with ``after < index < stop``, ascending, in chunks."""
        position = after
        while stop is None or position + 1 < stop:
            batch = await asyncio.to_thread(
                self._entries.fetch_entries_after, process_id, channel, position, CATCH_UP_CHUNK
            )
            if stop is not None:
                batch = [entry for entry in batch if entry.entry_index < stop]
            if not batch:
                return
            yield batch
            position = batch[-1].entry_index
            if len(batch) < CATCH_UP_CHUNK:
                return

    async def prepare_stored_read(self, process_id: str) -> None:
        """Before reading an ended process from the database: backfill it if needed."""
        if self.backfill is not None:
            await self.backfill(process_id)

    async def flush_writes(self) -> None:
        await self._writer.flush()

    async def ensure_process(self, process_id: str) -> None:
        """404 unless the process exists (a small cache spares the lookup on repeat calls)."""
        if process_id in self._known_ids:
            self._known_ids.move_to_end(process_id)
            return
        if self._registry.get(process_id, "raw") is None:
            record = await asyncio.to_thread(self._repository.fetch_process, process_id)
            if record is None:
                raise ProcessNotFoundError(process_id)
        self._known_ids[process_id] = None
        if len(self._known_ids) > _KNOWN_IDS_CAPACITY:
            self._known_ids.popitem(last=False)
