"""The client flow of CONTRACT.md ("WebSocket streams"): tail page over HTTP, then the stream with
``after`` = the newest index held, disconnect, resume - against a real server while a process
writes 100k lines at full speed and memory evicts. The union must be every line, exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.api.helpers import create_session, script_body
from tests.api.test_logs_ws import (
    FINISHED,
    StreamResult,
    assert_no_gaps,
    http_client,
    read_until_closed,
    receive_frame,
    stream_url,
)
from tests.conftest import LiveServer

pytestmark = pytest.mark.asyncio

LINES = 100_000
MAX_ROUNDS = 400
DEADLINE_SECONDS = 90.0
# Varied on purpose: tiny pages and short connections resume often, long ones cross resyncs.
PAGE_LIMITS = (1000, 37, 200, 1, 999)
FRAMES_PER_CONNECTION = (250, 3000, 40, 1200, 7000, 1)


async def fetch_page(
    client: httpx.AsyncClient, process_id: str, limit: int, cursor: int | None
) -> dict[str, Any]:
    """One history page; asserts it is contiguous, full unless it is the oldest, and not
    truncated, and that every entry is the line its index names."""
    params = {"limit": limit} if cursor is None else {"limit": limit, "cursor": cursor}
    response = await client.get(f"/api/execution-processes/{process_id}/raw-logs/v2", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()["data"]
    assert page["history_truncated"] is False
    indexes = [e["entry_index"] for e in page["entries"]]
    if indexes:
        assert indexes == list(range(indexes[0], indexes[0] + len(indexes)))
    if cursor is not None:
        assert indexes and indexes[-1] == cursor - 1, (cursor, indexes[-3:])
    if page["has_more"]:
        assert len(indexes) == limit and page["next_cursor"] == indexes[0]
    else:
        assert page["next_cursor"] is None and (not indexes or indexes[0] == 0)
    for entry in page["entries"]:
        assert entry["entry"] == {"type": "STDOUT", "content": str(entry["entry_index"])}
    return page


class Holdings:
    """What the client holds (index → line). The gaps are what a tail page skipped over (below
    it, down to what was held before); they are filled by walking pages backwards."""

    def __init__(self) -> None:
        self.lines: dict[int, str] = {}

    def upsert(self, index: int, line: str) -> None:
        self.lines[index] = line

    def newest(self) -> int:
        return max(self.lines, default=-1)

    def gaps(self) -> list[tuple[int, int]]:
        """Missing ``[low, high)`` ranges below the newest held index, ascending."""
        gaps: list[tuple[int, int]] = []
        expected = 0
        for index in sorted(self.lines):
            if index > expected:
                gaps.append((expected, index))
            expected = index + 1
        return gaps

    def add_tail_page(self, page: dict[str, Any]) -> int | None:
        """Upsert a tail page; returns its newest index (None if empty)."""
        for entry in page["entries"]:
            self.upsert(entry["entry_index"], entry["entry"]["content"])
        if not page["entries"]:
            return None
        newest: int = page["entries"][-1]["entry_index"]
        return newest

    async def fill_gaps(
        self, client: httpx.AsyncClient, process_id: str, *, max_pages: int
    ) -> None:
        """Walk pages of up to 1000 backwards from the top of the newest gap (bounded)."""
        for _ in range(max_pages):
            gaps = self.gaps()
            if not gaps:
                return
            low, high = gaps[-1]
            page = await fetch_page(client, process_id, min(1000, high - low), high)
            for entry in page["entries"]:
                self.upsert(entry["entry_index"], entry["entry"]["content"])


@pytest.mark.parametrize("queue_capacity", [1024, 16])
@pytest.mark.timeout(120)  # seconds alone; up to ~50 s measured on a loaded machine
async def test_tail_page_then_resumed_streams_are_gapless(
    live_server: Callable[..., LiveServer], queue_capacity: int, tmp_path: Path
) -> None:
    server = live_server(log_history_max_entries=2000, ws_queue_capacity=queue_capacity)
    held = Holdings()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    connections_while_running = 0
    resynced_connections = 0
    last: StreamResult | None = None
    async with http_client(server) as client:
        # All lines in bursts, then the process stays running until the test releases it:
        # at least three connections happen while it runs, however fast the machine is.
        release = tmp_path / "release"
        producer = (
            # Bursts of 1000 lines 50 ms apart: still producing while the first rounds stream
            # (a burst overflows a 16-frame queue: resync), however fast the pipes are.
            f"import os, sys, time\nfor i in range({LINES}):\n    print(i)\n"
            "    if i % 1000 == 999: sys.stdout.flush(); time.sleep(0.05)\n"
            "sys.stdout.flush()\n"
            f"while not os.path.exists({str(release)!r}): time.sleep(0.005)\n"
        )
        session = await create_session(client, script_body(producer))
        pid = session["processes"][0]["id"]
        for round_number in range(MAX_ROUNDS):
            assert loop.time() < deadline, f"not finished after {round_number} rounds"
            limit = PAGE_LIMITS[round_number % len(PAGE_LIMITS)]
            newest = held.add_tail_page(await fetch_page(client, pid, limit, None))
            after = held.newest() if newest is None else newest
            if server.services.registry.store(pid, "raw") is not None:
                connections_while_running += 1
            if connections_while_running >= 3:
                release.touch()  # from here on the stream ends with finished
            wanted = FRAMES_PER_CONNECTION[round_number % len(FRAMES_PER_CONNECTION)]
            if after >= LINES - 1 and not release.exists():
                # Every line is out already (child pipes are fast) and nothing comes before the
                # release: connect and leave, so three connections still happen while it runs.
                wanted = 0
            result = StreamResult()
            # max_queue=None: the client keeps reading while it closes, so the server's close
            # reply is not stuck behind frames it has no room for.
            async with connect(stream_url(server, pid, after=after), max_queue=None) as ws:
                for _ in range(wanted):
                    frame = await receive_frame(ws)
                    assert frame is not None, "closed before finished"
                    result.frames.append(frame)
                    if frame == FINISHED:
                        await read_until_closed(ws, result, max_frames=0)
                        break
                    if frame.get("entry_index") == LINES - 1 and not release.exists():
                        break  # nothing more comes until the release: reconnect
            # Closed cleanly either way: by the server after finished, or by us (echoed).
            assert ws.close_code == 1000, (ws.close_code, ws.close_reason)
            frames = result.entry_frames
            # Per connection: the first entry is after+1 (or a resync at or below it), appends
            # follow one by one - no gap, no duplicate.
            assert_no_gaps(frames, after=after)
            appended = result.indexes()
            assert len(appended) == len(set(appended))
            if result.indexes("replace"):
                resynced_connections += 1
            for frame in frames:
                assert frame["entry"] == {"type": "STDOUT", "content": str(frame["entry_index"])}
                held.upsert(frame["entry_index"], frame["entry"]["content"])
            # The stream leaves no gap: whatever is missing lies below where it started.
            assert all(high <= after + 1 for _low, high in held.gaps()), (after, held.gaps()[-1])
            # Older pages while the process runs (memory and database), a few per round.
            await held.fill_gaps(client, pid, max_pages=2)
            if result.frames and result.frames[-1] == FINISHED:
                last = result
                break
        else:
            raise AssertionError(f"no finished frame in {MAX_ROUNDS} rounds")

        assert last is not None and last.close_code == 1000
        assert [f for f in last.frames[:-1] if f["type"] == "finished"] == []
        await held.fill_gaps(client, pid, max_pages=LINES // 1000 + 10)
        assert held.gaps() == []
        assert held.lines == {i: str(i) for i in range(LINES)}
        assert connections_while_running >= 3, connections_while_running

        # Resuming an ended process from its newest index: nothing more, then the end.
        tail = await fetch_page(client, pid, 10, None)
        assert [e["entry_index"] for e in tail["entries"]] == list(range(LINES - 10, LINES))
        async with connect(stream_url(server, pid, after=LINES - 1)) as ws:
            ended = await read_until_closed(ws, StreamResult(), max_frames=1)
        assert ended.frames == [FINISHED] and ended.close_code == 1000
        process = (await client.get(f"/api/execution-processes/{pid}")).json()["data"]
        assert process["status"] == "completed"
    if queue_capacity < 100:
        # A queue this small overflows on every pipe read: the resync path was taken.
        assert resynced_connections > 0


async def test_entries_in_flight_to_the_writer_are_never_missed(
    live_server: Callable[..., LiveServer],
) -> None:
    """A writer queue far smaller than one pipe read's lines keeps the pipeline waiting for
    queue space with most of a read already appended (and evicted): pages and catch-up must
    still find every entry."""
    lines = 5_000
    server = live_server(log_history_max_entries=10, writer_queue_rows=1000)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    async with http_client(server) as client:
        session = await create_session(client, script_body(f"for i in range({lines}): print(i)"))
        pid = session["processes"][0]["id"]
        catch_up = StreamResult()
        async with connect(stream_url(server, pid, after=-1), max_queue=None) as ws:
            for _ in range(200):  # pages while it runs
                assert loop.time() < deadline
                if server.services.registry.store(pid, "raw") is None:
                    break
                await fetch_page(client, pid, 1000, None)  # asserts: full, contiguous, kept
            # A loaded machine may leave a line unterminated for 250 ms: it is then shown
            # and replaced (partial lines), so allow a replace per line on top.
            await read_until_closed(ws, catch_up, max_frames=2 * lines + 1)
        assert catch_up.frames[-1] == FINISHED and catch_up.close_code == 1000
        assert_no_gaps(catch_up.entry_frames, after=-1)
        assert {f["entry_index"] for f in catch_up.entry_frames} == set(range(lines))
