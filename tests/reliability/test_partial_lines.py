"""Live partial lines (issue 9, item 6) end to end on a real server: a progress bar without a
newline is visible on the WebSocket within the partial-line delay, is replaced in place as it
grows and when it ends, and the stored history matches what the client saw."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from execlog.runner.child import PARTIAL_LINE_DELAY
from execlog.storage.legacy import LegacyLogStore, StdoutMessage
from tests.api.helpers import create_session, script_body, wait_for_process_end, walk_history
from tests.api.test_logs_ws import http_client, receive_frame, stream_url
from tests.conftest import LiveServer

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

# Scheduling slack on a loaded 2-core machine, on top of the contract's 250 ms.
LATENCY_SLACK_SECONDS = 0.5


def progress_script(gate: Path) -> dict[str, Any]:
    """Prints a line, then a \\r progress bar stamped with the time each step was written; each
    step waits for the gate file of its number (at most 30 s)."""
    code = (
        "import os, sys, time\n"
        "print('start', flush=True)\n"
        "def wait(n):\n"
        "    deadline = time.monotonic() + 30\n"
        f"    while not os.path.exists({str(gate)!r} + str(n)) and time.monotonic() < deadline:\n"
        "        time.sleep(0.005)\n"
        "for step in range(3):\n"
        "    sys.stdout.write(f'\\r{step * 50}% @{time.time()}'); sys.stdout.flush()\n"
        "    wait(step)\n"
        "print(' done', flush=True)\n"
        "print('after', flush=True)\n"
    )
    return script_body(code)


async def test_progress_bar_is_visible_live_and_stored_as_seen(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server()
    gate = tmp_path / "gate"
    async with http_client(server) as client:
        session = await create_session(client, progress_script(gate))
        pid = session["processes"][0]["id"]
        frames: list[dict[str, Any]] = []
        async with connect(stream_url(server, pid)) as ws:
            for step in range(3):
                frame = await receive_frame(ws)
                while frame is not None and frame["entry"]["content"] == "start":
                    frames.append(frame)
                    frame = await receive_frame(ws)
                assert frame is not None
                received = time.time()
                frames.append(frame)
                assert frame["entry_index"] == 1
                assert frame["type"] == ("append" if step == 0 else "replace")
                content = frame["entry"]["content"]
                written = float(content.rsplit("@", 1)[1])
                assert content.endswith(f"{step * 50}% @{written}")
                delay = received - written
                assert delay < PARTIAL_LINE_DELAY + LATENCY_SLACK_SECONDS, (step, delay)
                (tmp_path / f"gate{step}").touch()
            while (frame := await receive_frame(ws)) is not None:
                frames.append(frame)
        assert (await wait_for_process_end(client, pid))["status"] == "completed"
        seen: dict[int, Any] = {}
        for frame in frames:
            if frame["type"] != "finished":
                seen[frame["entry_index"]] = frame["entry"]
        # One index for the whole bar; its end replaced it in place.
        assert sorted(seen) == [0, 1, 2]
        assert seen[1]["content"].startswith("\r0% @") and seen[1]["content"].endswith(" done")
        assert seen[2]["content"] == "after"
        stored = await walk_history(client, pid, "raw", 100)
        assert {e["entry_index"]: e["entry"] for e in stored} == seen
    # The legacy JSONL (dual mode) holds each line once, whole: a backfill gives the same.
    legacy = LegacyLogStore(server.services.engine)
    text = "".join(m.text for m in legacy.read_messages(pid) if isinstance(m, StdoutMessage)).split(
        "\n"
    )
    assert text == ["start", seen[1]["content"], "after", ""]
