"""ExeclogClient against a real server: tail walks across pages, streams that resume after an
index, sessions and stop, the token on HTTP and WebSocket, and errors carrying the server's
words."""

from __future__ import annotations

import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from execlog.client import (
    ApiError,
    ExeclogClient,
    LogEntry,
    ProcessInfo,
    ServerUnreachableError,
)
from tests.conftest import LiveServer

DEADLINE_SECONDS = 60.0
T = TypeVar("T")

# Prints 0..9, one stderr line, then waits for the file named by argv[1], then prints 10..19.
GATED_SCRIPT = """
import os, sys, time
for i in range(10):
    print(i, flush=True)
print("half", file=sys.stderr, flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.005)
for i in range(10, 20):
    print(i, flush=True)
"""


def wait_for(probe: Callable[[], T | None], what: str) -> T:
    """Poll ``probe`` until it returns something, bounded by a deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        value = probe()
        if value is not None:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def wait_for_end(client: ExeclogClient, process_id: str) -> ProcessInfo:
    def ended() -> ProcessInfo | None:
        process = client.get_process(process_id)
        return None if process.status == "running" else process

    return wait_for(ended, f"process {process_id} to end")


def wait_for_entries(client: ExeclogClient, process_id: str, count: int) -> None:
    """Until the raw channel holds at least ``count`` entries."""

    def enough() -> bool | None:
        newest = client.fetch_tail(process_id, "raw", 0).newest_index
        return True if newest is not None and newest + 1 >= count else None

    wait_for(enough, f"{count} entries of {process_id}")


def run_script(client: ExeclogClient, code: str, *args: str) -> str:
    """Start a ``python -c code`` session; the process id."""
    session = client.create_session("script", command=[sys.executable, "-c", code, *args])
    return session.processes[0].id


def free_port() -> int:
    """A port nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def client(live_server: Callable[..., LiveServer]) -> Iterator[ExeclogClient]:
    with ExeclogClient(live_server().url) as client:
        yield client


def _stdout(*lines: object) -> list[dict[str, str]]:
    return [{"type": "STDOUT", "content": str(line)} for line in lines]


def test_fetch_tail_walks_pages_back_without_overlap(client: ExeclogClient) -> None:
    pid = run_script(
        client, "import sys\nfor i in range(2500): print(i)\nprint('bye', file=sys.stderr)"
    )
    assert wait_for_end(client, pid).status == "completed"
    everything = client.fetch_tail(pid, "raw")
    assert [e.entry for e in everything.entries] == [
        *_stdout(*range(2500)),
        {"type": "STDERR", "content": "bye"},
    ]
    assert [e.entry_index for e in everything.entries] == list(range(2501))
    assert (everything.newest_index, everything.history_truncated) == (2500, False)
    # More than one page of 1000: the walk goes back twice and trims the oldest page.
    newest = client.fetch_tail(pid, "raw", 1500)
    assert [e.entry_index for e in newest.entries] == list(range(1001, 2501))
    assert client.fetch_tail(pid, "raw", 3).entries == [
        LogEntry(2498, _stdout(2498)[0]),
        LogEntry(2499, _stdout(2499)[0]),
        LogEntry(2500, {"type": "STDERR", "content": "bye"}),
    ]
    none = client.fetch_tail(pid, "raw", 0)
    assert (none.entries, none.newest_index) == ([], 2500)
    assert client.fetch_tail(pid, "raw", 5000).entries == everything.entries


def test_stream_of_an_ended_process_resumes_after_an_index(client: ExeclogClient) -> None:
    pid = run_script(client, "for i in range(30): print(i)")
    wait_for_end(client, pid)
    frames = list(client.iter_stream(pid, "raw", after=24))
    assert [(f.kind, f.entry_index, f.entry) for f in frames] == [
        ("append", i, _stdout(i)[0]) for i in range(25, 30)
    ]
    assert [f.entry_index for f in client.iter_stream(pid, "raw", after=-1)] == list(range(30))
    assert list(client.iter_stream(pid, "raw", after=29)) == []


def test_tail_then_stream_of_a_running_process_has_no_gap_and_no_duplicate(
    client: ExeclogClient, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    pid = run_script(client, GATED_SCRIPT, str(gate))
    wait_for_entries(client, pid, 11)
    tail = client.fetch_tail(pid, "raw", 4)
    assert [e.entry_index for e in tail.entries] == [7, 8, 9, 10]
    assert tail.newest_index == 10
    stream = client.iter_stream(pid, "raw", after=tail.newest_index)
    gate.touch()
    frames = list(stream)
    assert [f.entry for f in frames] == _stdout(*range(10, 20))
    assert [f.entry_index for f in frames] == list(range(11, 21))
    assert wait_for_end(client, pid).status == "completed"


def test_sessions_processes_and_stop(client: ExeclogClient, tmp_path: Path) -> None:
    session = client.create_session(
        "script",
        command=[sys.executable, "-c", "import time\nprint('up', flush=True)\ntime.sleep(120)"],
        working_dir=str(tmp_path),
    )
    assert (session.executor, session.working_dir) == ("script", str(tmp_path))
    [process] = session.processes
    assert (process.run_reason, process.status, process.session_id) == (
        "script",
        "running",
        session.id,
    )
    assert client.get_session(session.id).processes[0].id == process.id
    wait_for_entries(client, process.id, 1)
    stopped = client.stop(process.id)
    assert stopped.status == "killed"
    assert client.get_process(process.id).status == "killed"
    assert client.stop(process.id).status == "killed"


def test_errors_carry_the_servers_message(client: ExeclogClient) -> None:
    unknown = str(uuid.uuid4())
    with pytest.raises(ApiError) as missing:
        client.get_process(unknown)
    assert (missing.value.status, str(missing.value)) == (
        404,
        f"execution process {unknown} not found",
    )
    with pytest.raises(ApiError) as missing_logs:
        client.fetch_tail(unknown, "normalized", 5)
    assert missing_logs.value.status == 404
    with pytest.raises(ApiError) as malformed:
        client.fetch_tail("not-a-uuid", "raw")
    assert malformed.value.status == 400 and "'not-a-uuid'" in malformed.value.message
    with pytest.raises(ApiError) as bad_body:
        client.create_session("script")
    assert bad_body.value.status == 400 and "command" in bad_body.value.message


def test_stream_errors_unknown_and_malformed_ids(client: ExeclogClient) -> None:
    unknown = str(uuid.uuid4())
    with pytest.raises(ApiError) as missing:
        list(client.iter_stream(unknown, "raw", after=-1))
    assert (missing.value.status, missing.value.message) == (
        404,
        f"execution process {unknown} not found",
    )
    with pytest.raises(ApiError) as malformed:
        list(client.iter_stream("not-a-uuid", "normalized"))
    assert malformed.value.status == 400 and "not-a-uuid" in malformed.value.message


def test_unreachable_server_over_http_and_websocket() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with ExeclogClient(url, timeout=5) as client:
        with pytest.raises(ServerUnreachableError) as http:
            client.get_process(str(uuid.uuid4()))
        assert str(http.value).startswith(f"cannot reach execlog server at {url}: ")
        with pytest.raises(ServerUnreachableError) as ws:
            list(client.iter_stream(str(uuid.uuid4()), "raw"))
        assert str(ws.value).startswith(f"cannot reach execlog server at {url}: ")


def test_token_is_sent_on_http_and_websocket(live_server: Callable[..., LiveServer]) -> None:
    server = live_server(auth_token="s3cret-token-0123456789")
    with ExeclogClient(server.url) as anonymous:
        with pytest.raises(ApiError) as refused:
            anonymous.create_session("script", command=["true"])
        assert refused.value.status == 401 and "token" in refused.value.message
    with ExeclogClient(server.url, "s3cret-token-0123456789") as client:
        pid = run_script(client, "print('secret output')")
        wait_for_end(client, pid)
        assert [f.entry for f in client.iter_stream(pid, "raw", after=-1)] == _stdout(
            "secret output"
        )
    with ExeclogClient(server.url, "wrong") as wrong:
        with pytest.raises(ApiError) as ws_refused:
            list(wrong.iter_stream(pid, "raw", after=-1))
        assert ws_refused.value.status == 403
