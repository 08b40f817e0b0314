"""WebSocket streams against a real server: catch-up after ``after`` (memory and database), live
appends, resync of a slow client, close codes (CONTRACT.md, "WebSocket streams")."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.api.helpers import create_session, script_body, wait_for_process_end, walk_history
from tests.conftest import LiveServer

pytestmark = pytest.mark.asyncio

FRAME_TIMEOUT_SECONDS = 30.0
FINISHED = {"type": "finished"}


# --- helpers (also used by test_gapless.py) ---------------------------------------------------


def stream_url(server: LiveServer, process_id: str, channel: str = "raw", **params: Any) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    url = f"{server.ws_url}/api/execution-processes/{process_id}/{channel}-logs/v2/ws"
    return f"{url}?{query}" if query else url


@dataclass
class StreamResult:
    """The frames of one connection, decoded, and how the server closed it."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None

    @property
    def entry_frames(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] != "finished"]

    def indexes(self, kind: str = "append") -> list[int]:
        return [f["entry_index"] for f in self.frames if f["type"] == kind]


async def receive_frame(ws: ClientConnection) -> dict[str, Any] | None:
    """The next frame, or None once the server has closed; bounded in time."""
    try:
        message = await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_SECONDS)
    except ConnectionClosed:
        return None
    frame: dict[str, Any] = json.loads(message)
    return frame


async def read_until_closed(
    ws: ClientConnection, result: StreamResult, *, max_frames: int
) -> StreamResult:
    """Append frames to ``result`` until the server closes; more than ``max_frames`` fails."""
    for _ in range(max_frames + 1):
        frame = await receive_frame(ws)
        if frame is None:
            result.close_code = ws.close_code
            result.close_reason = ws.close_reason
            return result
        result.frames.append(frame)
    raise AssertionError(f"more than {max_frames} frames and still open")


async def read_stream(url: str, *, max_frames: int) -> StreamResult:
    async with connect(url, open_timeout=FRAME_TIMEOUT_SECONDS) as ws:
        return await read_until_closed(ws, StreamResult(), max_frames=max_frames)


def append(index: int, content: str, stream: str = "STDOUT") -> dict[str, Any]:
    return {"type": "append", "entry_index": index, "entry": {"type": stream, "content": content}}


def assert_upserts_match(frames: list[dict[str, Any]], expected: dict[int, Any]) -> None:
    """Upserting every entry frame by index gives exactly ``expected`` (index → payload)."""
    upserted: dict[int, Any] = {}
    for frame in frames:
        if frame["type"] in ("append", "replace"):
            upserted[frame["entry_index"]] = frame["entry"]
    assert upserted.keys() == expected.keys()
    assert upserted == expected


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll a condition on the server's state (bounded by a deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


# --- processes the tests stream ---------------------------------------------------------------


def gated_script(first: int, then: int, gate: Path) -> dict[str, Any]:
    """Prints 0..first-1, waits for ``gate`` to exist (at most 60 s), prints up to then-1."""
    code = (
        "import os, sys, time\n"
        f"for i in range({first}): print(i)\n"
        "sys.stdout.flush()\n"
        "deadline = time.monotonic() + 60\n"
        f"while not os.path.exists({str(gate)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.005)\n"
        f"for i in range({first}, {then}): print(i)\n"
    )
    return script_body(code)


@asynccontextmanager
async def http_client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


async def start_held_process(
    server: LiveServer, client: httpx.AsyncClient, first: int, then: int, gate: Path
) -> str:
    """A running process that has printed ``first`` lines and waits for ``gate``."""
    session = await create_session(client, gated_script(first, then, gate))
    pid: str = session["processes"][0]["id"]
    await wait_until(
        lambda: (
            (store := server.services.registry.store(pid, "raw")) is not None
            and store.next_index == first
        ),
        f"{first} lines of {pid}",
    )
    return pid


# --- ended processes --------------------------------------------------------------------------


async def test_ended_process_streams_entries_after_n_then_finished(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server()
    async with http_client(server) as client:
        session = await create_session(client, script_body("for i in range(50): print(i)"))
        pid = session["processes"][0]["id"]
        assert (await wait_for_process_end(client, pid))["status"] == "completed"
    for after in (-1, 0, 20, 48, 49, 500):
        result = await read_stream(stream_url(server, pid, after=after), max_frames=60)
        assert result.frames == [append(i, str(i)) for i in range(after + 1, 50)] + [FINISHED]
        assert result.close_code == 1000, after
    # Without `after`: nothing is held in memory any more, so only the end.
    for channel in ("raw", "normalized"):
        result = await read_stream(stream_url(server, pid, channel), max_frames=5)
        assert result.frames == [FINISHED] and result.close_code == 1000
    empty = await read_stream(stream_url(server, pid, "normalized", after=-1), max_frames=5)
    assert empty.frames == [FINISHED] and empty.close_code == 1000


async def test_unknown_process_closes_4404(live_server: Callable[..., LiveServer]) -> None:
    server = live_server()
    for channel in ("raw", "normalized"):
        for params in ({}, {"after": 3}):
            result = await read_stream(
                stream_url(server, str(uuid.uuid4()), channel, **params), max_frames=0
            )
            assert result.frames == []
            assert (result.close_code, result.close_reason) == (
                4404,
                "execution_process_not_found",
            )


@pytest.mark.parametrize(
    ("process_id", "after", "mentions"),
    [
        ("not-a-uuid", None, "id"),
        ("1234", "3", "id"),
        (None, "-5", "after"),
        (None, "x", "after"),
        (None, "1.5", "after"),
        (None, "", "after"),
        (None, "1_0", "after"),
        (None, "\u0663", "after"),  # a non-ASCII digit
        # A long non-ASCII value: the close reason must still fit in 123 bytes.
        ("%C3%A4" * 100, None, "id"),
        (None, "%C3%A4" * 100, "after"),
    ],
)
async def test_malformed_id_or_after_closes_4400(
    live_server: Callable[..., LiveServer], process_id: str | None, after: str | None, mentions: str
) -> None:
    server = live_server()
    pid = process_id or str(uuid.uuid4())
    params = {} if after is None else {"after": after}
    result = await read_stream(stream_url(server, pid, **params), max_frames=0)
    assert result.frames == []
    assert result.close_code == 4400
    assert result.close_reason is not None and mentions in result.close_reason


# --- running processes ------------------------------------------------------------------------


async def test_running_process_without_after_sends_memory_then_live(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server(log_history_max_entries=10)
    gate = tmp_path / "gate"
    async with http_client(server) as client:
        pid = await start_held_process(server, client, 100, 130, gate)
        async with connect(stream_url(server, pid)) as ws:
            # Memory holds the newest 10: exactly those come first, as appends.
            held = [await receive_frame(ws) for _ in range(10)]
            assert held == [append(i, str(i)) for i in range(90, 100)]
            gate.touch()
            result = await read_until_closed(ws, StreamResult(), max_frames=100)
        assert result.frames == [append(i, str(i)) for i in range(100, 130)] + [FINISHED]
        assert result.close_code == 1000
        assert (await wait_for_process_end(client, pid))["status"] == "completed"


async def test_after_zero_catches_up_evicted_entries_from_database(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """Memory holds the newest 10 of 300 entries: ``after=0`` gets 1..289 from the database and
    the rest from memory, then live entries, with no gap and no duplicate."""
    server = live_server(log_history_max_entries=10)
    gate = tmp_path / "gate"
    async with http_client(server) as client:
        pid = await start_held_process(server, client, 300, 350, gate)
        store = server.services.registry.store(pid, "raw")
        assert store is not None and store.first_held_index == 290
        # HTTP pages over the evicted part are complete, and not truncated (the database has it).
        cursor: int | None = None
        collected: list[int] = []
        for _ in range(300 // 7 + 2):
            params = {"limit": 7} if cursor is None else {"limit": 7, "cursor": cursor}
            response = await client.get(
                f"/api/execution-processes/{pid}/raw-logs/v2", params=params
            )
            page = response.json()["data"]
            assert page["history_truncated"] is False
            assert [e["entry"]["content"] for e in page["entries"]] == [
                str(e["entry_index"]) for e in page["entries"]
            ]
            collected[:0] = [e["entry_index"] for e in page["entries"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert collected == list(range(300))

        async with connect(stream_url(server, pid, after=0)) as ws:
            caught_up = [await receive_frame(ws) for _ in range(299)]
            assert caught_up == [append(i, str(i)) for i in range(1, 300)]
            gate.touch()
            result = await read_until_closed(ws, StreamResult(), max_frames=100)
        assert result.frames == [append(i, str(i)) for i in range(300, 350)] + [FINISHED]
        assert result.close_code == 1000
        # Every subscription of the closed streams is gone.
        assert store.subscriber_count == 0


async def test_client_disconnect_releases_its_subscription(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server()
    gate = tmp_path / "gate"
    async with http_client(server) as client:
        pid = await start_held_process(server, client, 5, 6, gate)
        store = server.services.registry.store(pid, "raw")
        assert store is not None
        async with connect(stream_url(server, pid, after=2)) as ws:
            assert [await receive_frame(ws) for _ in range(2)] == [append(3, "3"), append(4, "4")]
            assert store.subscriber_count == 1
        await wait_until(lambda: store.subscriber_count == 0, "the subscription to close")
        gate.touch()
        assert (await wait_for_process_end(client, pid))["status"] == "completed"


# --- a slow client next to a fast one ---------------------------------------------------------

# Lines of ~1 KB: a burst the pipeline appends in one go (at most the ~192 KB a pipe read and the
# stream reader's buffer hold) is ~200 entries, below the queue capacity, so a client that keeps
# reading never resyncs; the slow client stops reading and falls thousands of entries behind.
# The producer writes bursts of 200 lines, at most ~20k lines/s: the fast client, parsing every
# frame in Python in this process beside the server's thread, must be faster than the producer
# even on a loaded machine (unpaced, it fell 512 events behind there and was rightly resynced).
OVERFLOW_LINES = 20_000
OVERFLOW_QUEUE_CAPACITY = 512
OVERFLOW_PAD = 1000
OVERFLOW_BURST = 200


def overflow_line(i: int) -> str:
    return f"{i} " + "x" * OVERFLOW_PAD


def small_receive_buffer_socket(server: LiveServer) -> socket.socket:
    """A client socket with a small receive window, so the server's sends back up sooner."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = server.url.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


@pytest.mark.timeout(120)  # seconds alone; up to ~50 s measured on a loaded machine
async def test_slow_client_resyncs_without_slowing_the_process_or_a_fast_client(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server(ws_queue_capacity=OVERFLOW_QUEUE_CAPACITY, log_history_max_entries=2000)
    gate = tmp_path / "gate"
    process_ended = asyncio.Event()
    slow = StreamResult()
    fast = StreamResult()
    slow_frames_at_end: list[int] = []

    async def read_slowly(url: str) -> None:
        # compression off and a one-frame client queue: nothing buffers the backlog client-side.
        async with connect(
            url, compression=None, max_queue=1, sock=small_receive_buffer_socket(server)
        ) as ws:
            first = await receive_frame(ws)
            assert first is not None
            slow.frames.append(first)
            await asyncio.wait_for(process_ended.wait(), 60)
            slow_frames_at_end.append(len(slow.frames))
            await read_until_closed(ws, slow, max_frames=OVERFLOW_LINES * 3)

    async def read_fast(url: str) -> None:
        async with connect(url, compression=None, max_queue=None) as ws:
            await read_until_closed(ws, fast, max_frames=OVERFLOW_LINES + 1)

    async with http_client(server) as client:
        code = (
            "import os, sys, time\n"
            "deadline = time.monotonic() + 60\n"
            f"while not os.path.exists({str(gate)!r}) and time.monotonic() < deadline:\n"
            "    time.sleep(0.005)\n"
            f"for i in range({OVERFLOW_LINES}):\n"
            f"    print(f'{{i}} ' + 'x' * {OVERFLOW_PAD})\n"
            f"    if i % {OVERFLOW_BURST} == {OVERFLOW_BURST - 1}:\n"
            "        sys.stdout.flush(); time.sleep(0.01)\n"
        )
        session = await create_session(client, script_body(code))
        pid = session["processes"][0]["id"]
        store = server.services.registry.store(pid, "raw")
        assert store is not None
        url = stream_url(server, pid, after=-1)
        readers = [
            asyncio.create_task(read_slowly(url)),
            asyncio.create_task(read_fast(url)),
        ]
        await wait_until(lambda: store.subscriber_count == 2, "both streams to subscribe")
        gate.touch()
        ended = await wait_for_process_end(client, pid)
        assert ended["status"] == "completed"
        # The process ran to its end while the slow client sat on its first frame: nobody
        # waited for it.
        process_ended.set()
        await asyncio.wait_for(asyncio.gather(*readers), 60)
        history = await walk_history(client, pid, "raw", 1000)

    assert slow_frames_at_end == [1]
    expected = {e["entry_index"]: e["entry"] for e in history}
    assert expected == {i: {"type": "STDOUT", "content": overflow_line(i)} for i in range(20_000)}

    # The fast client: every append in order, never a resync, then the end.
    assert fast.frames[-1] == FINISHED and fast.close_code == 1000
    assert fast.indexes("replace") == []
    assert fast.indexes() == list(range(OVERFLOW_LINES))
    assert_upserts_match(fast.frames, expected)

    # The slow client resynced (replace frames) and, upserting by index, holds all of it.
    assert slow.frames[-1] == FINISHED and slow.close_code == 1000
    assert [f for f in slow.frames[:-1] if f["type"] == "finished"] == []
    replaced = slow.indexes("replace")
    assert replaced, "the slow client never overflowed"
    assert len(slow.frames) < 3 * OVERFLOW_LINES
    assert_upserts_match(slow.frames, expected)
    assert_no_gaps(slow.entry_frames, after=-1)


def assert_no_gaps(frames: list[dict[str, Any]], *, after: int) -> None:
    """Within one connection: an ``append`` is always the next index after the highest one
    received; a ``replace`` (resync) never jumps past it."""
    highest = after
    for position, frame in enumerate(frames):
        index = frame["entry_index"]
        if frame["type"] == "append":
            assert index == highest + 1, (position, frame["type"], index, highest)
        else:
            assert frame["type"] == "replace"
            assert index <= highest + 1, (position, frame["type"], index, highest)
        highest = max(highest, index)


# --- the normalized channel -------------------------------------------------------------------


async def test_normalized_stream_upserts_to_the_stored_conversation(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tool calls that complete and messages that grow are ``replace`` frames at their index;
    upserting the whole stream gives exactly the stored conversation."""
    monkeypatch.setenv("EXECLOG_DEMO_ARGS", "--pace 0 --seed 5 --turns 3 --no-approval")
    server = live_server()
    async with http_client(server) as client:
        session = await create_session(client, {"executor": "demo", "prompt": "tidy up"})
        pid = session["processes"][0]["id"]
        streams = await asyncio.gather(
            read_stream(stream_url(server, pid, "normalized", after=-1), max_frames=5000),
            read_stream(stream_url(server, pid, "raw", after=-1), max_frames=5000),
        )
        assert (await wait_for_process_end(client, pid))["status"] == "completed"
        conversation = await walk_history(client, pid, "normalized", 20)
        raw = await walk_history(client, pid, "raw", 1000)
    normalized_stream, raw_stream = streams
    for result, history in ((normalized_stream, conversation), (raw_stream, raw)):
        assert result.frames[-1] == FINISHED and result.close_code == 1000
        assert_no_gaps(result.entry_frames, after=-1)
        assert_upserts_match(result.frames, {e["entry_index"]: e["entry"] for e in history})
    assert normalized_stream.indexes("replace"), "the demo's tool calls never completed"
    assert raw_stream.indexes("replace") == []
