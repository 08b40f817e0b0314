"""Download of a process's whole raw log (CONTRACT.md, "Log history":
``GET …/raw-logs/v2/download?format=text|ndjson``), streamed with flat memory.

Entries come from the database in keyset pages of ``CATCH_UP_CHUNK`` (ascending index), and for
a running process from its MsgStore once the reader reaches what memory holds, up to the last
entry that existed when the request came in. Each page is sent before the next is read, and the
server's send waits while the client is slow, so memory holds about one page whatever the log's
size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from typing import Annotated, Final

from fastapi import APIRouter, Query
from starlette.responses import StreamingResponse

from execlog.api.dependencies import ServicesDep, parse_id
from execlog.history import CATCH_UP_CHUNK
from execlog.protocol import StoredEntry, decode_raw_content
from execlog.services import Services

__all__ = ["DownloadFormat", "iter_raw_log", "router"]

router = APIRouter(prefix="/api/execution-processes", tags=["logs"])


class DownloadFormat(StrEnum):
    TEXT = "text"
    NDJSON = "ndjson"


def _encode_text(entries: list[StoredEntry]) -> bytes:
    # Lines are stored decoded (invalid UTF-8 already replaced); a lone surrogate from imported
    # JSON becomes "?" rather than failing the whole download.
    text = "".join([decode_raw_content(entry_json) + "\n" for _, entry_json in entries])
    return text.encode("utf-8", "replace")


def _encode_ndjson(entries: list[StoredEntry]) -> bytes:
    text = "".join([f'{{"entry_index":{i},"entry":{j}}}\n' for i, j in entries])
    return text.encode("utf-8", "replace")


_ENCODERS: Final[dict[DownloadFormat, Callable[[list[StoredEntry]], bytes]]] = {
    DownloadFormat.TEXT: _encode_text,
    DownloadFormat.NDJSON: _encode_ndjson,
}
_MEDIA_TYPES: Final = {
    DownloadFormat.TEXT: "text/plain; charset=utf-8",
    DownloadFormat.NDJSON: "application/x-ndjson",
}
_SUFFIXES: Final = {DownloadFormat.TEXT: "log", DownloadFormat.NDJSON: "ndjson"}


async def iter_raw_log(services: Services, process_id: str) -> AsyncIterator[list[StoredEntry]]:
    """Every raw entry, ascending, in pages: the database, then memory for a running process
    (only entries that existed when called; a live log is followed by the streams)."""
    entries = services.entries
    store = services.registry.store(process_id, "raw")
    position = -1
    if store is None:
        await services.history.prepare_stored_read(process_id)
        while True:
            batch = await entries.afetch_entries_after(process_id, "raw", position, CATCH_UP_CHUNK)
            if batch:
                yield batch
            if len(batch) < CATCH_UP_CHUNK:
                return
            position = batch[-1].entry_index
    upper = store.next_index
    committed_below = 0  # every index below it is known to be in the database
    while position + 1 < upper:
        start = position + 1
        first_held = store.first_held_index
        if first_held is not None and start >= first_held:
            # Synchronous: the slice is taken before the store can evict any of it.
            held = store.held_range(start, min(upper, start + CATCH_UP_CHUNK))
            if not held:  # pragma: no cover - start < upper <= next_index, so never empty
                return
            yield held
            position = held[-1].entry_index
            continue
        if start >= committed_below:
            # Entries evicted so far are in the database or the writer's queue: read where
            # memory starts now, then flush, and all below it is committed.
            committed_below = min(upper, store.next_index if first_held is None else first_held)
            await services.history.flush_writes()
        batch = await entries.afetch_entries_after(process_id, "raw", position, CATCH_UP_CHUNK)
        batch = [entry for entry in batch if entry.entry_index < committed_below]
        if batch:
            yield batch
            position = batch[-1].entry_index
        else:
            position = committed_below - 1  # a gap nobody stored (history truncated)


@router.get(
    "/{process_id}/raw-logs/v2/download",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/plain": {}, "application/x-ndjson": {}}},
        400: {"description": "bad format or id"},
        404: {"description": "unknown process"},
    },
)
async def download_raw_log(
    process_id: str,
    services: ServicesDep,
    format: Annotated[
        DownloadFormat,
        Query(
            description="`text`: one line per entry; `ndjson`: one {entry_index, entry} per line."
        ),
    ] = DownloadFormat.TEXT,
) -> StreamingResponse:
    """The whole raw log as an attachment, streamed (flat memory whatever its size)."""
    pid = parse_id(process_id, "execution process")
    await services.history.ensure_process(pid)  # 404 before the 200 is sent
    encode = _ENCODERS[format]

    async def body() -> AsyncIterator[bytes]:
        async for batch in iter_raw_log(services, pid):
            yield encode(batch)

    filename = f"execlog-{pid}-raw.{_SUFFIXES[format]}"
    return StreamingResponse(
        body(),
        media_type=_MEDIA_TYPES[format],
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
