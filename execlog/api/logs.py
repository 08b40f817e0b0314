"""Log history (tail-first pages) and live WebSocket streams of a process's two channels
(CONTRACT.md, "Log history" and "WebSocket streams")."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket
from pydantic import BeforeValidator
from starlette.responses import Response
from starlette.websockets import WebSocketDisconnect

from execlog.api.dependencies import ServicesDep, get_services, parse_id
from execlog.errors import InvalidRequestError, ProcessNotFoundError
from execlog.live.msg_store import MsgStore, Resync, Snapshot
from execlog.protocol import (
    FINISHED_FRAME,
    Channel,
    StoredEntry,
    encode_append_frame,
    encode_history_page,
    encode_replace_frame,
)
from execlog.services import Services

__all__ = ["router"]

router = APIRouter(prefix="/api/execution-processes", tags=["logs"])

_FrameEncoder = Callable[[int, str], str]

CLOSE_NORMAL = 1000
CLOSE_INVALID = 4400
CLOSE_NOT_FOUND = 4404
MAX_CLOSE_REASON_BYTES = 123

_PAGE_RESPONSES: dict[int | str, dict[str, str]] = {
    400: {"description": "bad limit, cursor or id"},
    404: {"description": "unknown process"},
}


async def _history(
    services: Services, channel: Channel, process_id: str, limit: int | None, cursor: int | None
) -> Response:
    pid = parse_id(process_id, "execution process")
    page = await services.history.fetch_page(
        pid, channel, limit if limit is not None else services.settings.page_size(channel), cursor
    )
    return Response(encode_history_page(page), media_type="application/json")


# Digits only: pydantic's lax int also takes "1.0", "1_000" and non-ASCII digits, which the
# contract counts as "not an integer" (→ 400).
_WHOLE_NUMBER = re.compile(r"\s*[+-]?[0-9]+\s*")


def _require_whole_number(value: object) -> object:
    if isinstance(value, str) and not _WHOLE_NUMBER.fullmatch(value):
        raise ValueError("must be a whole number")
    return value


LimitQuery = Annotated[
    int | None,
    Query(ge=1, le=1000, description="Entries per page (default 200 raw, 20 normalized)."),
    BeforeValidator(_require_whole_number),
]
CursorQuery = Annotated[
    int | None,
    Query(ge=0, description="Return the newest entries whose index is below this."),
    BeforeValidator(_require_whole_number),
]


@router.get("/{process_id}/raw-logs/v2", responses=_PAGE_RESPONSES)
async def get_raw_logs(
    process_id: str, services: ServicesDep, limit: LimitQuery = None, cursor: CursorQuery = None
) -> Response:
    """Raw output lines, newest page first (`entries`, `next_cursor`, `has_more`, ...)."""
    return await _history(services, "raw", process_id, limit, cursor)


@router.get("/{process_id}/normalized-logs/v2", responses=_PAGE_RESPONSES)
async def get_normalized_logs(
    process_id: str, services: ServicesDep, limit: LimitQuery = None, cursor: CursorQuery = None
) -> Response:
    """The conversation parsed from the agent's output, newest page first."""
    return await _history(services, "normalized", process_id, limit, cursor)


@router.websocket("/{process_id}/raw-logs/v2/ws")
async def stream_raw_logs(websocket: WebSocket, process_id: str) -> None:
    """Live raw entries: `append` / `replace` / `finished` frames; `?after=N` resumes."""
    await _serve_stream(websocket, process_id, "raw")


@router.websocket("/{process_id}/normalized-logs/v2/ws")
async def stream_normalized_logs(websocket: WebSocket, process_id: str) -> None:
    """Live conversation entries; `?after=N` resumes."""
    await _serve_stream(websocket, process_id, "normalized")


def _parse_after(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not _WHOLE_NUMBER.fullmatch(raw):
        raise InvalidRequestError(f"after must be an integer >= -1, got {raw!r}")
    value = int(raw)
    if value < -1:
        raise InvalidRequestError(f"after must be an integer >= -1, got {raw!r}")
    return value


async def _serve_stream(websocket: WebSocket, process_id: str, channel: Channel) -> None:
    services = get_services(websocket)
    await websocket.accept()
    try:
        pid = parse_id(process_id, "execution process")
        after = _parse_after(websocket.query_params.get("after"))
        await services.history.ensure_process(pid)
    except ProcessNotFoundError:
        await websocket.close(CLOSE_NOT_FOUND, "execution_process_not_found")
        return
    except InvalidRequestError as exc:
        await websocket.close(CLOSE_INVALID, _fit_close_reason(str(exc)))
        return
    stream = _LogStream(websocket, services, pid, channel, after)
    sender = asyncio.create_task(stream.run())
    receiver = asyncio.create_task(_drain_client(websocket))
    done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await task
    for task in done:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            task.result()


def _fit_close_reason(text: str) -> str:
    """A close reason is at most 123 bytes of UTF-8 (RFC 6455 5.5); a longer one makes the close
    itself fail (the client would see 1006). Cut on a character boundary."""
    return text.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")


async def _drain_client(websocket: WebSocket) -> None:
    """Client messages are ignored; reading them is how a disconnect is noticed."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


class _LogStream:
    """One subscriber: catch-up (database, then memory), then live events; resync on overflow."""

    def __init__(
        self,
        websocket: WebSocket,
        services: Services,
        process_id: str,
        channel: Channel,
        after: int | None,
    ) -> None:
        self._ws = websocket
        self._history = services.history
        self._registry = services.registry
        self._pid = process_id
        self._channel = channel
        self._after = after
        # The highest index the client holds (or asked to start after): appends at or below it
        # are never sent twice.
        self._last_sent = -1 if after is None else after

    async def run(self) -> None:
        store = self._registry.get(self._pid, self._channel)
        if store is None:
            await self._send_ended()
            return
        subscription = store.subscribe()
        try:
            snapshot = subscription.snapshot()
            upper = _first_held(snapshot, store)
            if self._after is not None:
                await self._send_stored(self._after, upper, encode_append_frame)
                await self._send_entries(
                    [e for e in snapshot.entries if e.entry_index > self._after],
                    encode_append_frame,
                )
            else:
                await self._send_entries(snapshot.entries, encode_append_frame)
            if snapshot.finished:
                await self._finish()
                return
            while True:
                events = await subscription.next_events()
                if isinstance(events, Resync):
                    snapshot = subscription.snapshot()
                    await self._send_stored(
                        self._last_sent, _first_held(snapshot, store), encode_replace_frame
                    )
                    await self._send_entries(snapshot.entries, encode_replace_frame)
                    if snapshot.finished:
                        await self._finish()
                        return
                    continue
                if not events:
                    await self._finish()
                    return
                for event in events:
                    if event.kind == "finished":
                        await self._finish()
                        return
                    if event.kind == "append":
                        if event.entry_index <= self._last_sent:
                            continue
                        self._last_sent = event.entry_index
                    await self._ws.send_text(event.frame)
        finally:
            subscription.close()

    async def _send_ended(self) -> None:
        """An ended process: the stored entries after ``after`` (if given), then finished."""
        if self._after is not None:
            await self._history.prepare_stored_read(self._pid)
            async for batch in self._history.iter_stored_after(
                self._pid, self._channel, self._after
            ):
                await self._send_entries(batch, encode_append_frame)
        await self._finish()

    async def _send_stored(self, after: int, stop: int, encode: _FrameEncoder) -> None:
        if after + 1 >= stop:
            return
        await self._history.flush_writes()
        async for batch in self._history.iter_stored_after(self._pid, self._channel, after, stop):
            await self._send_entries(batch, encode)

    async def _send_entries(self, entries: list[StoredEntry], encode: _FrameEncoder) -> None:
        for index, entry_json in entries:
            await self._ws.send_text(encode(index, entry_json))
            if index > self._last_sent:
                self._last_sent = index

    async def _finish(self) -> None:
        await self._ws.send_text(FINISHED_FRAME)
        await self._ws.close(CLOSE_NORMAL)


def _first_held(snapshot: Snapshot, store: MsgStore) -> int:
    """Where memory begins: indexes below it come from the database. Read in the same tick as
    the snapshot, so no event can fall in between."""
    return snapshot.entries[0].entry_index if snapshot.entries else store.next_index
