"""`around=N` on the history endpoints (CONTRACT.md, "Log history"), on a real server: the page
of `limit` entries centred on N, moved inside the log at its edges, with `has_more` and
`next_cursor` as for any page, from the database and from memory; `around` with `cursor`, or
not a whole number >= 0, is a 400 with a message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from execlog.history import cursor_around
from execlog.protocol import encode_normalized_entry
from execlog.storage.entries import EntryRow
from tests.api.helpers import (
    assert_bad_request,
    create_session,
    script_body,
    wait_for_process_end,
)
from tests.api.test_raw_search import held_producer, wait_for_entries
from tests.conftest import LiveServer

LINES = 1000


async def page(
    client: httpx.AsyncClient, process_id: str, channel: str = "raw", **params: Any
) -> dict[str, Any]:
    response = await client.get(
        f"/api/execution-processes/{process_id}/{channel}-logs/v2", params=params
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def indexes(data: dict[str, Any]) -> list[int]:
    return [entry["entry_index"] for entry in data["entries"]]


def test_cursor_around_centres_and_moves_inside_at_the_start() -> None:
    assert cursor_around(500, 10) == 505  # page 495..504: 500 at offset 5
    assert cursor_around(500, 11) == 506  # page 495..505: 500 in the middle
    assert cursor_around(500, 1) == 501
    assert cursor_around(3, 10) == 10  # page 0..9
    assert cursor_around(0, 1000) == 1000


async def test_around_pages_of_an_ended_process(live_server: Callable[..., LiveServer]) -> None:
    server = live_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        session = await create_session(client, script_body(f"for i in range({LINES}): print(i)"))
        pid = session["processes"][0]["id"]
        await wait_for_process_end(client, pid)
        middle = await page(client, pid, around=500, limit=10)
        start = await page(client, pid, around=3, limit=10)
        end = await page(client, pid, around=LINES - 2, limit=10)
        beyond = await page(client, pid, around=10 * LINES, limit=10)
        one = await page(client, pid, around=0, limit=1)
        default_limit = await page(client, pid, around=500)
        older = await page(client, pid, cursor=middle["next_cursor"], limit=10)
    assert indexes(middle) == list(range(495, 505))
    assert [e["entry"]["content"] for e in middle["entries"]] == [str(i) for i in range(495, 505)]
    assert middle["has_more"] is True and middle["next_cursor"] == 495
    assert indexes(older) == list(range(485, 495))  # walking on from it: no gap, no overlap
    assert indexes(start) == list(range(10))
    assert start["has_more"] is False and start["next_cursor"] is None
    assert indexes(end) == indexes(beyond) == list(range(LINES - 10, LINES))  # the tail
    assert end["has_more"] is True and end["next_cursor"] == LINES - 10
    assert indexes(one) == [0] and one["has_more"] is False
    assert indexes(default_limit) == list(range(400, 600))  # EXECLOG_RAW_PAGE_SIZE = 200


async def test_around_on_the_normalized_channel(live_server: Callable[..., LiveServer]) -> None:
    # Entries persistence: no legacy JSONL, so the rows written below are the whole history.
    server = live_server(log_persistence="entries")
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        session = await create_session(client, script_body("print('x')"))
        pid = session["processes"][0]["id"]
        await wait_for_process_end(client, pid)
        server.services.entries.upsert_entries_now(
            [
                EntryRow(pid, "normalized", i, encode_normalized_entry({"content": f"m{i}"}))
                for i in range(100)
            ]
        )
        data = await page(client, pid, "normalized", around=50)  # default limit 20
    assert indexes(data) == list(range(40, 60))
    assert data["entries"][10]["entry"]["content"]["content"] == "m50"
    assert data["has_more"] is True and data["next_cursor"] == 40


@pytest.mark.timeout(120)
async def test_around_while_running_joins_database_and_memory(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server(log_history_max_entries=100)
    release = tmp_path / "release"
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        body = f"for i in range({LINES}): print(i)"
        session = await create_session(client, script_body(held_producer(release, body)))
        pid = session["processes"][0]["id"]
        await wait_for_entries(client, pid, LINES)
        store = server.services.registry.store(pid, "raw")
        assert store is not None and store.first_held_index == LINES - 100
        evicted = await page(client, pid, around=200, limit=10)
        across = await page(client, pid, around=LINES - 100, limit=10)
        held = await page(client, pid, around=LINES - 5, limit=10)
        release.touch()
        await wait_for_process_end(client, pid)
    assert indexes(evicted) == list(range(195, 205)) and evicted["history_truncated"] is False
    assert indexes(across) == list(range(LINES - 105, LINES - 95))
    assert [e["entry"]["content"] for e in across["entries"]] == [
        str(i) for i in range(LINES - 105, LINES - 95)
    ]
    assert indexes(held) == list(range(LINES - 10, LINES)) and held["has_more"] is True


@pytest.mark.parametrize("channel", ["raw", "normalized"])
@pytest.mark.parametrize(
    ("params", "mentions"),
    [
        ({"around": "5", "cursor": "10"}, "around"),
        ({"around": "-1"}, "around"),
        ({"around": "1.5"}, "around"),
        ({"around": "five"}, "around"),
        ({"around": "5", "limit": "0"}, "limit"),
    ],
)
async def test_bad_around_is_400_with_a_message(
    live_server: Callable[..., LiveServer], channel: str, params: dict[str, str], mentions: str
) -> None:
    path = f"/api/execution-processes/{{pid}}/{channel}-logs/v2"
    await assert_bad_request(live_server().url, path, params, mentions)
