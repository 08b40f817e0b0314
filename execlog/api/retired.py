"""The v1 log paths, retired (CONTRACT.md, "Log history"): ``GET .../raw-logs``,
``.../normalized-logs`` and their ``/ws`` forms answer ``410 Gone`` with a message naming the v2
path, and so does a WebSocket handshake on them - as an HTTP response, so that a client does
not mistake it for the 403 of an Origin refusal."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, WebSocket
from starlette.responses import Response

from execlog.api.envelope import error_response

__all__ = ["CLOSE_GONE", "router"]

router = APIRouter(prefix="/api/execution-processes", tags=["retired"])

# For servers without the WebSocket denial-response extension: a close before accept (the
# server turns it into HTTP 403) carrying this code where the server passes it on.
CLOSE_GONE: Final = 4410
_GONE: Final[dict[int | str, dict[str, Any]]] = {
    410: {"description": "retired; the message names the v2 path"}
}


def _message(process_id: str, channel: str, websocket: bool) -> str:
    if websocket:
        return (
            f"the v1 path is gone: stream WS /api/execution-processes/{process_id}/"
            f"{channel}-logs/v2/ws?after=N instead"
        )
    return (
        f"the v1 path is gone: use GET /api/execution-processes/{process_id}/{channel}-logs/v2"
        "?limit=L&cursor=C instead"
    )


def _gone(process_id: str, channel: str, websocket: bool = False) -> Response:
    return error_response(410, _message(process_id, channel, websocket))


async def _deny(websocket: WebSocket, process_id: str, channel: str) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(_gone(process_id, channel, websocket=True))
    else:
        await websocket.close(CLOSE_GONE)


@router.get("/{process_id}/raw-logs", responses=_GONE, deprecated=True)
async def get_raw_logs_v1(process_id: str) -> Response:
    """Retired: answers 410; use `GET .../raw-logs/v2`."""
    return _gone(process_id, "raw")


@router.get("/{process_id}/normalized-logs", responses=_GONE, deprecated=True)
async def get_normalized_logs_v1(process_id: str) -> Response:
    """Retired: answers 410; use `GET .../normalized-logs/v2`."""
    return _gone(process_id, "normalized")


@router.get("/{process_id}/raw-logs/ws", responses=_GONE, deprecated=True)
async def get_raw_logs_ws_v1(process_id: str) -> Response:
    """Retired: answers 410; stream `WS .../raw-logs/v2/ws`."""
    return _gone(process_id, "raw", websocket=True)


@router.get("/{process_id}/normalized-logs/ws", responses=_GONE, deprecated=True)
async def get_normalized_logs_ws_v1(process_id: str) -> Response:
    """Retired: answers 410; stream `WS .../normalized-logs/v2/ws`."""
    return _gone(process_id, "normalized", websocket=True)


@router.websocket("/{process_id}/raw-logs/ws")
async def stream_raw_logs_v1(websocket: WebSocket, process_id: str) -> None:
    await _deny(websocket, process_id, "raw")


@router.websocket("/{process_id}/normalized-logs/ws")
async def stream_normalized_logs_v1(websocket: WebSocket, process_id: str) -> None:
    await _deny(websocket, process_id, "normalized")
