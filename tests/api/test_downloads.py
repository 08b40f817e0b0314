"""`GET …/raw-logs/v2/download` on a real server: the download equals the stored log in both
formats (ended and running processes, memory and database), headers name the file, and a real
`execlog serve` keeps its memory flat while streaming a log much larger than the growth
allowed. Bad parameters and unknown ids: test_raw_search.py, for both tools."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bench.serverproc import run_server
from execlog.protocol import StoredEntry, encode_raw_entry
from execlog.storage.database import create_database_engine
from execlog.storage.entries import EntryRow, EntryStore
from tests.api.helpers import create_session, script_body, wait_for_process_end
from tests.api.test_raw_search import held_producer, wait_for_entries
from tests.conftest import LiveServer

VARIED_OUTPUT = r"""
import sys
print("plain line")
print("\x1b[32mgreen\x1b[0m and café")
sys.stderr.write("to stderr\n"); sys.stderr.flush()
print("")
print("tab\tand \"quotes\" and \\ backslash")
print("progress 1%\rprogress 50%\rprogress 100%")
print("last line")
"""


def download_path(process_id: str) -> str:
    return f"/api/execution-processes/{process_id}/raw-logs/v2/download"


def as_text(entries: list[StoredEntry]) -> str:
    return "".join(json.loads(entry_json)["content"] + "\n" for _, entry_json in entries)


def as_ndjson(entries: list[StoredEntry]) -> list[dict[str, object]]:
    return [{"entry_index": i, "entry": json.loads(j)} for i, j in entries]


async def test_download_equals_the_stored_log_in_both_formats(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        session = await create_session(client, script_body(VARIED_OUTPUT))
        pid = session["processes"][0]["id"]
        await wait_for_process_end(client, pid)
        text = await client.get(download_path(pid), params={"format": "text"})
        default = await client.get(download_path(pid))
        ndjson = await client.get(download_path(pid), params={"format": "ndjson"})
    stored = server.services.entries.fetch_entries_after(pid, "raw", None)
    assert len(stored) == 7
    assert text.status_code == 200 and text.text == as_text(stored)
    assert "progress 1%\rprogress 50%\rprogress 100%\n" in text.text  # the bytes, every \r
    assert default.text == text.text
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.headers["content-disposition"] == f'attachment; filename="execlog-{pid}-raw.log"'
    assert ndjson.status_code == 200
    assert ndjson.headers["content-type"] == "application/x-ndjson"
    assert ndjson.headers["content-disposition"].endswith(f'"execlog-{pid}-raw.ndjson"')
    assert [json.loads(line) for line in ndjson.text.splitlines()] == as_ndjson(stored)
    assert {"type": "STDERR", "content": "to stderr"} in [e["entry"] for e in as_ndjson(stored)]


@pytest.mark.timeout(120)
async def test_download_of_a_running_process_joins_database_and_memory(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    lines = 3000
    # A small memory budget: most of the log is only in the database (or the writer's queue).
    server = live_server(log_history_max_entries=100)
    release = tmp_path / "release"
    body = f"for i in range({lines}): print('line', i)"
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        session = await create_session(client, script_body(held_producer(release, body)))
        pid = session["processes"][0]["id"]
        await wait_for_entries(client, pid, lines)
        store = server.services.registry.store(pid, "raw")
        assert store is not None and store.first_held_index is not None
        assert store.first_held_index > 0
        running = await client.get(download_path(pid), params={"format": "ndjson"})
        release.touch()
        await wait_for_process_end(client, pid)
        ended = await client.get(download_path(pid), params={"format": "ndjson"})
    records = [json.loads(line) for line in running.text.splitlines()]
    assert [r["entry_index"] for r in records] == list(range(lines))
    assert [r["entry"]["content"] for r in records] == [f"line {i}" for i in range(lines)]
    assert ended.text == running.text


# --- flat memory ------------------------------------------------------------------------------

LARGE_ENTRIES = 250_000
LINE_FILLER = "x" * 350
MAX_RSS_GROWTH = 32 * 1024 * 1024
SAMPLE_EVERY_BYTES = 2 * 1024 * 1024


@pytest.mark.timeout(240)
def test_server_memory_stays_flat_while_downloading_a_large_log(tmp_path: Path) -> None:
    with run_server(tmp_path) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        response = client.post("/api/sessions", json=script_body("print('first')"))
        pid = response.json()["data"]["processes"][0]["id"]
        deadline = time.monotonic() + 60
        while (
            status := client.get(f"/api/execution-processes/{pid}").json()["data"]["status"]
        ) == "running":
            assert time.monotonic() < deadline, "the seed process never ended"
            time.sleep(0.02)
        assert status == "completed"
        # Warm-up on the one-line log: code paths loaded, nothing large touched yet.
        client.get(download_path(pid), params={"format": "ndjson"}).raise_for_status()
        # A log of ~90 MB, written straight into the server's database file.
        engine = create_database_engine(f"sqlite:///{tmp_path / 'execlog.db'}")
        store = EntryStore(engine)
        for start in range(1, LARGE_ENTRIES, 20_000):
            stop = min(LARGE_ENTRIES, start + 20_000)
            store.upsert_entries_now(
                [
                    EntryRow(pid, "raw", i, encode_raw_entry("stdout", f"{i:08d} {LINE_FILLER}"))
                    for i in range(start, stop)
                ]
            )
        engine.dispose()
        baseline = server.rss_bytes()
        peak = baseline
        total = lines = 0
        ending = b""
        next_sample = SAMPLE_EVERY_BYTES
        with client.stream("GET", download_path(pid), params={"format": "ndjson"}) as stream:
            assert stream.status_code == 200
            for chunk in stream.iter_bytes():
                total += len(chunk)
                lines += chunk.count(b"\n")
                ending = (ending + chunk)[-1000:]
                if total >= next_sample:
                    peak = max(peak, server.rss_bytes())
                    next_sample += SAMPLE_EVERY_BYTES
    assert lines == LARGE_ENTRIES
    last_line = ending.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    assert json.loads(last_line)["entry_index"] == LARGE_ENTRIES - 1
    assert total > 3 * MAX_RSS_GROWTH  # the log is far larger than the growth allowed
    assert peak - baseline < MAX_RSS_GROWTH, f"server RSS grew by {(peak - baseline) >> 20} MiB"
