"""kill -9 of a real ``execlog serve`` while an agent prints and a WebSocket client reads
(issue 10): no index is ever given to different content, the orphan is stopped, the port is
free and a new session works; two servers on one database leave each other's processes be."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.api.helpers import script_body, walk_history
from tests.reliability.serve import (
    ServeProcess,
    kill_if_running,
    start_serve,
    wait_until_gone,
    wait_until_leases_expired,
)

pytestmark = pytest.mark.asyncio

CYCLES = 10
FRAMES_PER_CYCLE = 40
# Its pid first, then a numbered line every millisecond until it is stopped.
PRODUCER = (
    "import os, sys, time\nprint(os.getpid(), flush=True)\ni = 0\n"
    "while True:\n    print(f'line {i}', flush=True)\n    i += 1\n    time.sleep(0.001)\n"
)


async def start_producer(client: httpx.AsyncClient) -> str:
    response = await client.post("/api/sessions", json=script_body(PRODUCER))
    assert response.status_code == 201, response.text
    process_id: str = response.json()["data"]["processes"][0]["id"]
    return process_id


async def read_frames(ws: ClientConnection, count: int) -> dict[int, Any]:
    """Index -> entry of ``count`` append/replace frames (the newest content per index)."""
    seen: dict[int, Any] = {}
    received = 0
    async with asyncio.timeout(30):
        while received < count:
            frame = json.loads(await ws.recv())
            if frame["type"] in ("append", "replace"):
                seen[frame["entry_index"]] = frame["entry"]
                received += 1
    return seen


@pytest.mark.timeout(240)
async def test_kill9_cycles_never_reuse_an_index(tmp_path: Path) -> None:
    database = tmp_path / "execlog.db"
    server = start_serve(tmp_path)
    port = server.port
    leftovers: list[int] = []
    try:
        for cycle in range(CYCLES):
            async with server.client() as client:
                process_id = await start_producer(client)
            url = f"{server.url.replace('http', 'ws', 1)}/api/execution-processes/{process_id}"
            ws = await connect(f"{url}/raw-logs/v2/ws", additional_headers=server.headers)
            try:
                seen = await read_frames(ws, FRAMES_PER_CYCLE)
                server.kill9()  # while the client reads live frames
                with pytest.raises(ConnectionClosed):
                    async with asyncio.timeout(30):
                        while True:
                            frame = json.loads(await ws.recv())
                            seen[frame["entry_index"]] = frame["entry"]
            finally:
                await ws.close()
            child_pid = int(seen[0]["content"])
            leftovers.append(child_pid)  # it may die of SIGPIPE: the server held its stdout

            wait_until_leases_expired(database)
            server = start_serve(tmp_path, port=port, name=f"server-{cycle + 1}")
            assert server.port == port  # nothing of the crashed server holds it

            async with server.client() as client:
                history = await walk_history(client, process_id, "raw", 1000)
                process = (await client.get(f"/api/execution-processes/{process_id}")).json()
            assert process["data"]["status"] == "killed"
            stored = {e["entry_index"]: e["entry"] for e in history}
            note_index, note = history[-1]["entry_index"], history[-1]["entry"]
            assert "marked killed" in note["content"]
            # What the client saw is what is stored, or lost - never something else.
            for index, entry in seen.items():
                assert stored.get(index, entry) == entry, (cycle, index)
            assert note_index > max(seen), (cycle, note_index, max(seen))
            wait_until_gone(child_pid)  # no orphan left running
    finally:
        server.stop()
        for pid in leftovers:
            kill_if_running(pid)
    # And a new session works on the last server.
    with_new = start_serve(tmp_path, port=port, name="final")
    try:
        async with with_new.client() as client:
            response = await client.post("/api/sessions", json=script_body("print('ok')"))
            assert response.status_code == 201, response.text
            process_id = response.json()["data"]["processes"][0]["id"]
            async with asyncio.timeout(30):
                while True:
                    got = (await client.get(f"/api/execution-processes/{process_id}")).json()
                    if got["data"]["status"] != "running":
                        break
                    await asyncio.sleep(0.02)
            assert got["data"]["status"] == "completed"
    finally:
        with_new.stop()


async def get_status(server: ServeProcess, process_id: str) -> str:
    async with server.client() as client:
        response = await client.get(f"/api/execution-processes/{process_id}")
    assert response.status_code == 200, response.text
    status: str = response.json()["data"]["status"]
    return status


@pytest.mark.timeout(120)
async def test_two_servers_on_one_database_leave_each_others_processes_be(
    tmp_path: Path,
) -> None:
    sleeper = "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(120)\n"
    first = start_serve(tmp_path, name="first")
    second: ServeProcess | None = None
    pids: list[int] = []
    try:
        async with first.client() as client:
            response = await client.post("/api/sessions", json=script_body(sleeper))
            first_process = response.json()["data"]["processes"][0]["id"]
        second = start_serve(tmp_path, name="second")
        async with second.client() as client:
            response = await client.post("/api/sessions", json=script_body(sleeper))
            second_process = response.json()["data"]["processes"][0]["id"]
        # A third start-up on the same database, while both run: it claims neither.
        start_serve(tmp_path, name="third").stop()
        assert await get_status(second, first_process) == "running"
        assert await get_status(first, second_process) == "running"
        async with first.client() as client:
            lines = await walk_history(client, first_process, "raw", 10)
        pids.append(int(lines[0]["entry"]["content"]))

        # Once the first one crashed and its lease expired, the next start-up claims its
        # process - and only its.
        first.kill9()
        wait_until_leases_expired(tmp_path / "execlog.db", alive=second)
        start_serve(tmp_path, name="fourth").stop()
        assert await get_status(second, first_process) == "killed"
        assert await get_status(second, second_process) == "running"
        wait_until_gone(pids[0])
    finally:
        first.stop()
        if second is not None:
            second.stop()
        for pid in pids:
            kill_if_running(pid)
