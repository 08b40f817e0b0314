"""Session event stream (server-sent events): `session_created`, `process_updated`,
`approval_updated`, and `resync` when a slow client missed events (refetch, then go on)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from execlog.api.dependencies import ServicesDep
from execlog.api.resources import event_to_json

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["events"])

KEEPALIVE_SECONDS = 15.0


@router.get("/events", response_class=StreamingResponse)
async def stream_events(request: Request, services: ServicesDep) -> StreamingResponse:
    """`text/event-stream`; each `data:` line is one JSON event."""
    subscription = services.bus.subscribe()

    async def generate() -> AsyncIterator[str]:
        try:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(subscription.next_event(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield f"data: {event_to_json(event)}\n\n"
        finally:
            subscription.close()

    return StreamingResponse(
        generate(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
