"""Log history (tail-first pages) and live WebSocket streams of a process's two channels
(CONTRACT.md, "Log history" and "WebSocket streams"). The reading is ``history.py``'s; this
module accepts, parses parameters, sends and closes."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket
from starlette.responses import Response
from starlette.websockets import WebSocketDisconnect

from execlog.api.dependencies import ServicesDep, get_services, parse_id
from execlog.api.page_params import AroundQuery, CursorQuery, LimitQuery, page_cursor
from execlog.errors import InvalidRequestError, ProcessNotFoundError
from execlog.history import LogStream
from execlog.protocol import (
    AFTER_MIN,
    CLOSE_INVALID_REQUEST,
    CLOSE_NORMAL,
    CLOSE_NOT_FOUND,
    CLOSE_TRY_AGAIN_LATER,
    NOT_FOUND_CLOSE_REASON,
    Channel,
    encode_history_page,
    fit_close_reason,
    parse_whole_number,
)
from execlog.services import Services
from execlog.storage.database import DATABASE_UNAVAILABLE_ERRORS, describe_database_error

__all__ = ["router"]

router = APIRouter(prefix="/api/execution-processes", tags=["logs"])

_PAGE_RESPONSES: dict[int | str, dict[str, str]] = {
    400: {"description": "bad limit, cursor, around or id; cursor with around"},
    404: {"description": "unknown process"},
}


async def _history(
    services: Services,
    channel: Channel,
    process_id: str,
    limit: int | None,
    cursor: int | None,
    around: int | None,
) -> Response:
    pid = parse_id(process_id, "execution process")
    size = limit if limit is not None else services.settings.page_size(channel)
    page = await services.history.fetch_page(pid, channel, size, page_cursor(size, cursor, around))
    return Response(encode_history_page(page), media_type="application/json")


@router.get("/{process_id}/raw-logs/v2", responses=_PAGE_RESPONSES)
async def get_raw_logs(
    process_id: str,
    services: ServicesDep,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
    around: AroundQuery = None,
) -> Response:
    """Raw output lines, newest page first (`entries`, `next_cursor`, `has_more`, ...)."""
    return await _history(services, "raw", process_id, limit, cursor, around)


@router.get("/{process_id}/normalized-logs/v2", responses=_PAGE_RESPONSES)
async def get_normalized_logs(
    process_id: str,
    services: ServicesDep,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
    around: AroundQuery = None,
) -> Response:
    """The conversation parsed from the agent's output, newest page first."""
    return await _history(services, "normalized", process_id, limit, cursor, around)


@router.websocket("/{process_id}/raw-logs/v2/ws")
async def stream_raw_logs(websocket: WebSocket, process_id: str) -> None:
    """Live raw entries: `append` / `replace` / `finished` frames; `?after=N` resumes."""
    await _serve_stream(websocket, process_id, "raw")


@router.websocket("/{process_id}/normalized-logs/v2/ws")
async def stream_normalized_logs(websocket: WebSocket, process_id: str) -> None:
    """Live conversation entries; `?after=N` resumes."""
    await _serve_stream(websocket, process_id, "normalized")


async def _serve_stream(websocket: WebSocket, process_id: str, channel: Channel) -> None:
    services = get_services(websocket)
    await websocket.accept()
    try:
        pid = parse_id(process_id, "execution process")
        raw_after = websocket.query_params.get("after")
        after = (
            None if raw_after is None else parse_whole_number("after", raw_after, minimum=AFTER_MIN)
        )
        await services.history.ensure_process(pid)
    except ProcessNotFoundError:
        await websocket.close(CLOSE_NOT_FOUND, NOT_FOUND_CLOSE_REASON)
        return
    except InvalidRequestError as exc:
        await websocket.close(CLOSE_INVALID_REQUEST, fit_close_reason(str(exc)))
        return
    sender = asyncio.create_task(_send(websocket, services.history.stream(pid, channel, after)))
    receiver = asyncio.create_task(_drain_client(websocket))
    done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in done | pending:
        if not task.cancelled():
            with contextlib.suppress(WebSocketDisconnect):  # the client went away: that's all
                task.result()


async def _send(websocket: WebSocket, stream: LogStream) -> None:
    """Every frame of the stream (``finished`` last), then close 1000; close 1013 (try again
    later) when the database does not answer within its deadline."""
    try:
        async with contextlib.aclosing(stream.frames()) as frames:
            async for frame in frames:
                await websocket.send_text(frame)
    except DATABASE_UNAVAILABLE_ERRORS as exc:
        await websocket.close(
            CLOSE_TRY_AGAIN_LATER,
            fit_close_reason(f"database unavailable: {describe_database_error(exc)}"),
        )
        return
    await websocket.close(CLOSE_NORMAL)


async def _drain_client(websocket: WebSocket) -> None:
    """Client messages are ignored; reading them is how a disconnect is noticed."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
