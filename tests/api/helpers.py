"""Shared steps of the API tests: create sessions, wait for processes to end, walk pages."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

DEADLINE_SECONDS = 60.0


def script_body(code: str, **extra: Any) -> dict[str, Any]:
    """A `script` session running ``python -c code``."""
    return {"executor": "script", "command": [sys.executable, "-c", code], **extra}


async def create_session(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/sessions", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def wait_for_process_end(
    client: httpx.AsyncClient, process_id: str, timeout: float = DEADLINE_SECONDS
) -> dict[str, Any]:
    """Poll the process until it leaves `running` (bounded by a deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await client.get(f"/api/execution-processes/{process_id}")
        assert response.status_code == 200, response.text
        process: dict[str, Any] = response.json()["data"]
        if process["status"] != "running":
            return process
        assert loop.time() < deadline, f"process {process_id} still running"
        await asyncio.sleep(0.02)


async def wait_for_session_processes(
    client: httpx.AsyncClient, session_id: str, count: int, timeout: float = DEADLINE_SECONDS
) -> list[dict[str, Any]]:
    """Poll the session until it has ``count`` processes, all ended."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        session = (await client.get(f"/api/sessions/{session_id}")).json()["data"]
        processes: list[dict[str, Any]] = session["processes"]
        if len(processes) >= count and all(p["status"] != "running" for p in processes):
            return processes
        assert loop.time() < deadline, f"session {session_id}: {processes}"
        await asyncio.sleep(0.02)


async def walk_history(
    client: httpx.AsyncClient, process_id: str, channel: str, limit: int
) -> list[dict[str, Any]]:
    """Every entry, by walking the cursor from the tail; asserts pages are ascending."""
    entries: list[dict[str, Any]] = []
    cursor: int | None = None
    while True:
        params: dict[str, int] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get(
            f"/api/execution-processes/{process_id}/{channel}-logs/v2", params=params
        )
        assert response.status_code == 200, response.text
        page = response.json()["data"]
        indexes = [e["entry_index"] for e in page["entries"]]
        assert indexes == sorted(indexes)
        entries = page["entries"] + entries
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return entries
        assert page["next_cursor"] == indexes[0]
        cursor = page["next_cursor"]


@asynccontextmanager
async def serve_process(env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """A real ``execlog serve`` child with ``env``; its stdout is piped; terminated at exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "execlog",
        "serve",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.communicate(), DEADLINE_SECONDS)


async def get_once_listening(url: str, timeout: float = DEADLINE_SECONDS) -> httpx.Response:
    """GET ``url``, retrying while nothing listens yet (``serve`` prints its URL before start-up
    completes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient(timeout=DEADLINE_SECONDS) as client:
        while True:
            try:
                return await client.get(url)
            except httpx.ConnectError:
                assert loop.time() < deadline, f"nothing answered at {url}"
                await asyncio.sleep(0.05)


async def assert_bad_request(
    base_url: str, path: str, params: dict[str, str], mentions: str
) -> None:
    """GET ``path`` (its ``{pid}`` a new script process's id) answers 400 with an envelope whose
    message names ``mentions``."""
    async with httpx.AsyncClient(base_url=base_url, timeout=DEADLINE_SECONDS) as client:
        session = await create_session(client, script_body("print('x')"))
        response = await client.get(path.format(pid=session["processes"][0]["id"]), params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False and body["data"] is None and mentions in body["message"]
