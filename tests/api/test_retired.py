"""The v1 log paths answer 410 Gone naming the v2 path: over HTTP and as the answer to a
WebSocket handshake (CONTRACT.md, "Log history")."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import LiveServer

PID = str(uuid.uuid4())


@pytest.mark.parametrize("channel", ["raw", "normalized"])
@pytest.mark.parametrize("suffix", ["", "/ws"])
async def test_v1_http_paths_answer_410_naming_v2(
    app_client: Callable[..., Any], channel: str, suffix: str
) -> None:
    _app, client = await app_client()
    response = await client.get(f"/api/execution-processes/{PID}/{channel}-logs{suffix}")
    assert response.status_code == 410
    body = response.json()
    assert body["success"] is False and body["data"] is None
    assert f"/api/execution-processes/{PID}/{channel}-logs/v2" in body["message"]


@pytest.mark.parametrize("channel", ["raw", "normalized"])
async def test_v1_websocket_handshake_answers_410(
    live_server: Callable[..., LiveServer], channel: str
) -> None:
    server = live_server()
    url = f"{server.ws_url}/api/execution-processes/{PID}/{channel}-logs/ws"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, open_timeout=30):
            pass
    response = refused.value.response
    assert response.status_code == 410
    message = json.loads(response.body or b"{}")["message"]
    assert f"WS /api/execution-processes/{PID}/{channel}-logs/v2/ws" in message


async def test_v2_paths_are_unaffected(app_client: Callable[..., Any]) -> None:
    _app, client = await app_client()
    response = await client.get(f"/api/execution-processes/{PID}/raw-logs/v2")
    assert response.status_code == 404
    assert isinstance(response, httpx.Response)
