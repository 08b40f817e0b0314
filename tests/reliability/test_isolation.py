"""Agents isolated from a real ``execlog serve`` (issue 10): a child holds its three pipes and
nothing else of the server's, so a restart after kill -9 gets the port back while the orphan
runs; stop ends every descendant, also one that called ``setsid()``, within the grace period
plus one second."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import script_body
from tests.reliability.serve import (
    kill_if_running,
    process_running,
    serving,
    start_serve,
    wait_until_gone,
)

pytestmark = pytest.mark.asyncio

GRACE_SECONDS = 1.0  # serve.py starts servers with EXECLOG_STOP_GRACE_SECONDS=1
SLEEPER = "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(120)\n"


async def start_script(client: httpx.AsyncClient, code: str) -> str:
    response = await client.post("/api/sessions", json=script_body(code))
    assert response.status_code == 201, response.text
    process_id: str = response.json()["data"]["processes"][0]["id"]
    return process_id


async def wait_for_lines(
    client: httpx.AsyncClient, process_id: str, count: int, timeout: float = 30.0
) -> list[str]:
    """The first ``count`` raw lines, polling the history (bounded by ``timeout``)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get(
            f"/api/execution-processes/{process_id}/raw-logs/v2", params={"limit": 1000}
        )
        assert response.status_code == 200, response.text
        lines = [e["entry"]["content"] for e in response.json()["data"]["entries"]]
        if len(lines) >= count:
            return lines
        assert asyncio.get_running_loop().time() < deadline, f"only {lines}"
        await asyncio.sleep(0.02)


def open_descriptors(pid: int) -> dict[int, str]:
    fd_dir = f"/proc/{pid}/fd"
    return {int(fd): os.readlink(f"{fd_dir}/{fd}") for fd in os.listdir(fd_dir)}


async def test_a_child_holds_its_three_pipes_and_nothing_else(tmp_path: Path) -> None:
    child_pid: int | None = None
    server = start_serve(tmp_path)
    try:
        async with server.client() as client:
            process_id = await start_script(client, SLEEPER)
            child_pid = int((await wait_for_lines(client, process_id, 1))[0])
        descriptors = open_descriptors(child_pid)
        assert sorted(descriptors) == [0, 1, 2], descriptors
        assert all(target.startswith("pipe:") for target in descriptors.values()), descriptors

        # A crash leaves the child behind; the port is free for the next server all the same.
        port = server.port
        server.kill9()
        assert process_running(child_pid)
        restarted = start_serve(tmp_path, port=port, name="restarted")
        try:
            assert restarted.port == port
        finally:
            restarted.stop()
    finally:
        server.stop()
        if child_pid is not None:
            kill_if_running(child_pid)


# The grandchild leaves the child's session and process group, ignores SIGTERM and writes ten
# lines a second into the child's stdout forever; "exit" makes the child leave it orphaned.
SETSID_GRANDCHILD = r"""
import os, signal, sys, time
if os.fork() == 0:
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.write(1, f"grandchild {os.getpid()}\n".encode())
    while True:
        os.write(1, b"tick\n")
        time.sleep(0.1)
os.write(1, f"child {os.getpid()}\n".encode())
if sys.argv[1] == "exit":
    os._exit(0)
time.sleep(3600)
"""


@pytest.mark.parametrize("child", ["stays", "exits"])
async def test_stop_ends_a_setsid_grandchild_within_grace_plus_one_second(
    tmp_path: Path, child: str
) -> None:
    pids: list[int] = []
    with serving(tmp_path) as server:
        try:
            async with server.client() as client:
                body: dict[str, Any] = {
                    "executor": "script",
                    "command": [sys.executable, "-c", SETSID_GRANDCHILD, child],
                }
                response = await client.post("/api/sessions", json=body)
                assert response.status_code == 201, response.text
                process_id = response.json()["data"]["processes"][0]["id"]
                lines = await wait_for_lines(client, process_id, 4)
                pids = [int(line.split()[1]) for line in lines if " " in line]
                grandchild = next(
                    int(line.split()[1]) for line in lines if line.startswith("grandchild")
                )
                assert process_running(grandchild)

                started = time.monotonic()
                stopped = await client.post(f"/api/execution-processes/{process_id}/stop")
                elapsed = time.monotonic() - started
                assert stopped.status_code == 200, stopped.text
                assert stopped.json()["data"]["status"] == "killed"
                assert elapsed <= GRACE_SECONDS + 1.0, f"stop took {elapsed:.2f} s"
                wait_until_gone(grandchild, timeout=5)
                # Left `running` with its output committed: the history holds the ticks.
                process = await client.get(f"/api/execution-processes/{process_id}")
                assert process.json()["data"]["status"] == "killed"
                assert "tick" in await wait_for_lines(client, process_id, 4)
        finally:
            for pid in pids:
                kill_if_running(pid)
