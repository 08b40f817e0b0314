"""Session event stream: a UI follows process starts and ends without polling."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from execlog.events import RESYNC_EVENT, EventBus
from tests.api.helpers import script_body
from tests.conftest import LiveServer

pytestmark = pytest.mark.asyncio


async def test_events_follow_a_session_from_start_to_end(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async with client.stream("GET", "/api/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            assert await anext(lines) == ": connected"
            response = await client.post("/api/sessions", json=script_body("print('hi')"))
            session = response.json()["data"]
            pid = session["processes"][0]["id"]
            seen: list[dict[str, Any]] = []

            async def read_until_completed() -> None:
                async for line in lines:
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line[len("data: ") :])
                    seen.append(event)
                    process = event.get("process") or {}
                    if process.get("id") == pid and process.get("status") != "running":
                        return

            await asyncio.wait_for(read_until_completed(), 30)
    kinds = [(e["type"], (e.get("process") or {}).get("status")) for e in seen]
    assert ("process_updated", "running") in kinds
    assert ("session_created", None) in kinds
    assert kinds[-1] == ("process_updated", "completed")
    created = next(e for e in seen if e["type"] == "session_created")
    assert created["session"]["id"] == session["id"]


async def test_a_slow_subscriber_gets_resync_not_a_blocked_publisher() -> None:
    bus = EventBus(capacity=3)
    slow = bus.subscribe()
    fast = bus.subscribe()
    received: list[str] = []
    for i in range(5):
        bus.publish("tick", n=i)
        received.append(await fast.next_event())
    assert [json.loads(text)["n"] for text in received] == list(range(5))
    assert await slow.next_event() == RESYNC_EVENT
    bus.publish("tick", n=5)
    assert json.loads(await slow.next_event())["n"] == 5
    slow.close()
    fast.close()
    assert bus.subscriber_count == 0
