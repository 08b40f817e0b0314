"""Search in a process's whole raw log (CONTRACT.md, "Log history":
``GET …/raw-logs/v2/search?q=TEXT&limit=L`` → matching entry indexes, newest first).

The newest entries are searched first: those still in memory (a running process's MsgStore),
then the database in descending windows of indexes, so the first hits come back fast and the
time budget (``EXECLOG_RAW_SEARCH_SECONDS``) is checked between windows. A search that stops
before the oldest entry, at ``limit`` hits or out of time, says ``truncated: true`` and gives
``next_cursor``: search again with ``cursor=next_cursor`` to go on below it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Final

from fastapi import APIRouter, Query
from starlette.responses import Response

from execlog.api.dependencies import ServicesDep, parse_id
from execlog.api.envelope import success_response
from execlog.api.page_params import CursorQuery, LimitQuery
from execlog.services import Services
from execlog.storage.entries import ContentQuery

__all__ = ["SEARCH_WINDOW_ENTRIES", "RawSearchResult", "router", "search_raw_log"]

router = APIRouter(prefix="/api/execution-processes", tags=["logs"])

# Indexes per database query: small enough that one query stays well inside the time budget
# (about 10-30 ms on SQLite), large enough that a million-line log takes ~50 queries.
SEARCH_WINDOW_ENTRIES: Final = 20_000
MAX_QUERY_CHARS: Final = 1000


@dataclass(slots=True)
class RawSearchResult:
    matches: list[int] = field(default_factory=list)
    truncated: bool = False
    # Where to go on (``cursor=``) when truncated: every index at or above it was searched.
    next_cursor: int | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "matches": self.matches,
            "truncated": self.truncated,
            "next_cursor": self.next_cursor,
        }


async def search_raw_log(
    services: Services, process_id: str, text: str, limit: int, cursor: int | None
) -> RawSearchResult:
    """Indexes of the raw entries below ``cursor`` whose line contains ``text`` (ASCII letters
    in any case), newest first; at most ``limit``, within the configured time budget."""
    query = ContentQuery.of(text)
    result = RawSearchResult()
    store = services.registry.store(process_id, "raw")
    if store is None:
        await services.history.ensure_process(process_id)
        # A one-time backfill from legacy JSONL (any read of the process waits for it).
        await services.history.prepare_stored_read(process_id)
        stored_top = await services.entries.anext_index(process_id, "raw")
        if cursor is not None:
            stored_top = min(stored_top, cursor)
    else:
        top = store.next_index if cursor is None else min(cursor, store.next_index)
        first_held = store.first_held_index
        stored_top = top if first_held is None else min(first_held, top)
        # Synchronously, in one go: the store moves on while we await the database.
        for index, entry_json in reversed(store.held_range(stored_top, top)):
            if query.matches(entry_json):
                result.matches.append(index)
                if len(result.matches) == limit:
                    return _stopped_at(result, index)
        if stored_top > 0:
            await services.history.flush_writes()  # evicted entries may still be queued
    # The budget bounds the database scan, the part that grows with the log.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + services.settings.raw_search_seconds
    oldest = await services.entries.afirst_index(process_id, "raw")
    high = stored_top
    while oldest is not None and high > oldest:
        low = max(oldest, high - SEARCH_WINDOW_ENTRIES)
        wanted = limit - len(result.matches)
        found = await services.entries.asearch_raw(process_id, query, low, high, wanted)
        result.matches.extend(found)
        if len(found) == wanted:
            return _stopped_at(result, found[-1], oldest)
        high = low
        # Checked after a window, not before: every request gets at least one window further,
        # so walking with next_cursor always ends, whatever the budget.
        if loop.time() >= deadline:
            return _stopped_at(result, high, oldest)
    return result


def _stopped_at(result: RawSearchResult, below: int, oldest: int = 0) -> RawSearchResult:
    """The search covered every index >= ``below``; older ones are left if ``below`` is above
    the oldest stored index (unknown while still in memory: 0)."""
    if below > oldest:
        result.truncated = True
        result.next_cursor = below
    return result


@router.get(
    "/{process_id}/raw-logs/v2/search",
    responses={
        400: {"description": "bad q, limit, cursor or id"},
        404: {"description": "unknown process"},
    },
)
async def search_raw_logs(
    process_id: str,
    services: ServicesDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            description="Text to find in the lines (ASCII letters in any case).",
        ),
    ],
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> Response:
    """Entry indexes of the raw lines containing `q`, newest first: `{"matches", "truncated",
    "next_cursor"}`. Bounded in time by EXECLOG_RAW_SEARCH_SECONDS; `truncated` when the search
    stopped early (limit or time), `next_cursor` to go on below it."""
    pid = parse_id(process_id, "execution process")
    chosen = limit if limit is not None else services.settings.raw_page_size
    result = await search_raw_log(services, pid, q, chosen, cursor)
    return success_response(result.to_json())
