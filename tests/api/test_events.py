"""Session event stream: a UI follows process starts and ends without polling."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from execlog.api.resources import event_to_json, process_to_json
from execlog.events import EVENTS_MISSED, EventBus, EventsMissed, ProcessUpdated
from execlog.storage.processes import ProcessRecord
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


async def test_a_slow_subscriber_gets_events_missed_not_a_blocked_publisher() -> None:
    bus: EventBus[int] = EventBus(capacity=3)
    slow = bus.subscribe()
    fast = bus.subscribe()
    received: list[int | EventsMissed] = []
    for i in range(5):
        bus.publish(i)
        received.append(await fast.next_event())
    assert received == list(range(5))
    assert await slow.next_event() is EVENTS_MISSED
    bus.publish(5)
    assert await slow.next_event() == 5
    slow.close()
    fast.close()
    assert bus.subscriber_count == 0


async def test_events_are_snapshots_rendered_by_the_api() -> None:
    """The bus carries a copy of the record as it was when published; the API renders it."""
    record = ProcessRecord(
        "p", "s", "script", "running", None, started_at=0, completed_at=None, agent_session_id=None
    )
    event = ProcessUpdated.of(record)
    record.status = "completed"
    rendered = json.loads(event_to_json(event))
    assert rendered == {"type": "process_updated", "process": process_to_json(event.process)}
    assert rendered["process"]["status"] == "running"
    assert rendered["process"]["started_at"] == "1970-01-01T00:00:00.000Z"
    assert json.loads(event_to_json(EVENTS_MISSED)) == {"type": "resync"}
