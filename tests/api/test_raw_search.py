"""`GET …/raw-logs/v2/search` on a real server with real child processes: hits far back in the
database and in memory, newest first, `limit` and `cursor`, the time budget (`truncated`,
`next_cursor`), and 400s for bad parameters."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from execlog.api.raw_search import SEARCH_WINDOW_ENTRIES
from tests.api.helpers import (
    DEADLINE_SECONDS,
    assert_bad_request,
    create_session,
    script_body,
    wait_for_process_end,
)
from tests.conftest import LiveServer

pytestmark = pytest.mark.asyncio

FILLER = 100_000


def search_path(process_id: str) -> str:
    return f"/api/execution-processes/{process_id}/raw-logs/v2/search"


async def search(client: httpx.AsyncClient, process_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(search_path(process_id), params=params)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def held_producer(release: Path, body: str) -> str:
    """Python code that runs ``body``, then stays running until ``release`` exists (at most
    the test deadline)."""
    return (
        f"import os, sys, time\n{body}\nsys.stdout.flush()\n"
        f"deadline = time.time() + {DEADLINE_SECONDS}\n"
        f"while not os.path.exists({str(release)!r}) and time.time() < deadline:\n"
        "    time.sleep(0.005)\n"
    )


async def wait_for_entries(client: httpx.AsyncClient, process_id: str, count: int) -> None:
    """Until the raw channel holds ``count`` entries (bounded by the test deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while True:
        response = await client.get(
            f"/api/execution-processes/{process_id}/raw-logs/v2", params={"limit": 1}
        )
        entries = response.json()["data"]["entries"]
        if entries and entries[-1]["entry_index"] >= count - 1:
            return
        assert loop.time() < deadline, f"only {entries} after the deadline"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(120)
async def test_finds_a_line_printed_100k_lines_earlier_while_running_and_after(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server(log_history_max_entries=1000)
    release = tmp_path / "release"
    body = (
        "print('the Needle in the haystack')\n"
        f"for i in range({FILLER}): print('filler line', i)\n"
        "print('needle again, newest')"
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        session = await create_session(client, script_body(held_producer(release, body)))
        pid = session["processes"][0]["id"]
        await wait_for_entries(client, pid, FILLER + 2)
        # Running: the newest hit is in memory, the oldest only in the database.
        assert server.services.registry.store(pid, "raw") is not None
        running = await search(client, pid, q="NEEDLE")
        assert running == {"matches": [FILLER + 1, 0], "truncated": False, "next_cursor": None}
        release.touch()
        await wait_for_process_end(client, pid)
        ended = await search(client, pid, q="needle")
        numbered = await search(client, pid, q="filler line 5000", limit=1000)
    assert ended == running
    # "filler line 5000" and 50000..50009: newest first.
    assert numbered["matches"] == [50010 + 1 - k for k in range(1, 11)] + [5001]
    assert numbered["truncated"] is False


@pytest.mark.timeout(120)
async def test_a_search_stays_within_its_time_budget_and_goes_on_from_next_cursor(
    live_server: Callable[..., LiveServer],
) -> None:
    budget = 0.001
    server = live_server(raw_search_seconds=budget)
    # Three database windows' worth: the first request cannot cover them within 1 ms.
    code = f"print('needle')\nfor i in range({3 * SEARCH_WINDOW_ENTRIES}): print('filler', i)"
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        session = await create_session(client, script_body(code))
        pid = session["processes"][0]["id"]
        await wait_for_process_end(client, pid)
        found: list[int] = []
        cursor: int | None = None
        requests = 0
        while True:
            params: dict[str, Any] = {"q": "needle"}
            if cursor is not None:
                params["cursor"] = cursor
            started = time.monotonic()
            data = await search(client, pid, **params)
            elapsed = time.monotonic() - started
            requests += 1
            # One database window at most past the budget (a window is a few ms to tens of ms;
            # a generous bound for a loaded machine).
            assert elapsed < 5.0
            found += data["matches"]
            if not data["truncated"]:
                assert data["next_cursor"] is None
                break
            assert data["next_cursor"] is not None and data["next_cursor"] > 0
            assert cursor is None or data["next_cursor"] < cursor  # always moves on
            cursor = data["next_cursor"]
            assert requests < 100
    assert found == [0]
    assert requests > 1  # the budget did stop the first request early


async def test_limit_and_cursor_page_through_the_hits(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server()
    code = "for i in range(30): print('hit' if i % 3 == 0 else 'miss', i)"
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        session = await create_session(client, script_body(code))
        pid = session["processes"][0]["id"]
        await wait_for_process_end(client, pid)
        first = await search(client, pid, q="hit", limit=4)
        rest = await search(client, pid, q="hit", limit=100, cursor=first["next_cursor"])
        none = await search(client, pid, q="no such text")
        last_one = await search(client, pid, q="hit 0", limit=1)
    assert first == {"matches": [27, 24, 21, 18], "truncated": True, "next_cursor": 18}
    assert rest == {"matches": [15, 12, 9, 6, 3, 0], "truncated": False, "next_cursor": None}
    assert none == {"matches": [], "truncated": False, "next_cursor": None}
    # The limit reached at the oldest entry: nothing is left, so not truncated.
    assert last_one == {"matches": [0], "truncated": False, "next_cursor": None}


@pytest.mark.parametrize(
    ("endpoint", "params", "mentions"),
    [
        ("search", {}, "q"),
        ("search", {"q": ""}, "q"),
        ("search", {"q": "x" * 1001}, "q"),
        ("search", {"q": "x", "limit": "0"}, "limit"),
        ("search", {"q": "x", "limit": "1001"}, "limit"),
        ("search", {"q": "x", "limit": "1.0"}, "limit"),
        ("search", {"q": "x", "cursor": "-1"}, "cursor"),
        ("search", {"q": "x", "cursor": "ten"}, "cursor"),
        ("download", {"format": "xml"}, "format"),
        ("download", {"format": ""}, "format"),
    ],
)
async def test_bad_parameters_are_400_with_a_message(
    live_server: Callable[..., LiveServer], endpoint: str, params: dict[str, str], mentions: str
) -> None:
    """Both raw-log tools (search, and download of test_downloads.py)."""
    path = "/api/execution-processes/{pid}/raw-logs/v2/" + endpoint
    await assert_bad_request(live_server().url, path, params, mentions)


@pytest.mark.parametrize("endpoint", ["search?q=x", "download"])
async def test_unknown_and_malformed_process_ids(
    live_server: Callable[..., LiveServer], endpoint: str
) -> None:
    """Both raw-log tools (search, and download in test_downloads.py): 404 and 400."""
    server = live_server()
    base = "/api/execution-processes/{}/raw-logs/v2/" + endpoint
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        unknown = await client.get(base.format(uuid.uuid4()))
        malformed = await client.get(base.format("not-a-uuid"))
    assert unknown.status_code == 404 and unknown.json()["success"] is False
    assert malformed.status_code == 400 and "not-a-uuid" in malformed.json()["message"]
