"""History endpoints: tail-first pages from memory and database, bad input → 4xx envelope."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import create_session, script_body, wait_for_process_end, walk_history

pytestmark = pytest.mark.asyncio


async def test_default_limits_and_page_shape(app_client: Callable[..., Any]) -> None:
    _app, client = await app_client()
    session = await create_session(client, script_body("for i in range(450): print(i)"))
    pid = (await wait_for_process_end(client, session["processes"][0]["id"]))["id"]
    page = (await client.get(f"/api/execution-processes/{pid}/raw-logs/v2")).json()
    assert page["success"] is True and page["message"] is None
    data = page["data"]
    assert set(data) == {"entries", "next_cursor", "has_more", "history_truncated"}
    assert [e["entry_index"] for e in data["entries"]] == list(range(250, 450))
    assert data["next_cursor"] == 250 and data["has_more"] is True
    assert data["history_truncated"] is False
    older = (
        await client.get(f"/api/execution-processes/{pid}/raw-logs/v2", params={"cursor": 250})
    ).json()["data"]
    assert [e["entry_index"] for e in older["entries"]] == list(range(50, 250))
    oldest = (
        await client.get(f"/api/execution-processes/{pid}/raw-logs/v2", params={"cursor": 50})
    ).json()["data"]
    assert [e["entry_index"] for e in oldest["entries"]] == list(range(50))
    assert oldest["has_more"] is False and oldest["next_cursor"] is None
    normalized = (await client.get(f"/api/execution-processes/{pid}/normalized-logs/v2")).json()
    assert normalized["data"]["entries"] == [] and normalized["data"]["has_more"] is False


async def test_running_process_served_from_memory_and_database(
    app_client: Callable[..., Any],
) -> None:
    """A tiny memory budget evicts most of the history; the database still has it, so pages
    are complete and history_truncated stays false."""
    app, client = await app_client(log_history_max_entries=50)
    code = (
        "import sys\n"
        "for i in range(3000): print(i)\n"
        "sys.stdout.flush()\n"
        "sys.stdin.readline()\n"  # keep running until the test says so
    )
    session = await create_session(client, script_body(code))
    pid = session["processes"][0]["id"]
    services = app.state.services
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        store = services.registry.store(pid, "raw")
        if store is not None and store.next_index == 3000:
            break
        assert loop.time() < deadline
        await asyncio.sleep(0.01)
    assert store.evicted and store.held_count <= 50
    entries = await walk_history(client, pid, "raw", 170)
    assert [e["entry"]["content"] for e in entries] == [str(i) for i in range(3000)]
    page = (
        await client.get(f"/api/execution-processes/{pid}/raw-logs/v2", params={"cursor": 100})
    ).json()["data"]
    assert page["history_truncated"] is False
    assert [e["entry_index"] for e in page["entries"]] == list(range(100))
    running = services.supervisor
    assert running.is_running(pid)
    await running.stop(pid)


async def test_truncated_when_evicted_entries_were_never_stored(
    app_client: Callable[..., Any],
) -> None:
    """With legacy_jsonl persistence no entry rows exist: evicted history is truncated."""
    app, client = await app_client(log_history_max_entries=10, log_persistence="legacy_jsonl")
    code = "import sys\nfor i in range(100): print(i)\nsys.stdout.flush()\nsys.stdin.readline()\n"
    session = await create_session(client, script_body(code))
    pid = session["processes"][0]["id"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while (
        store := app.state.services.registry.store(pid, "raw")
    ) is None or store.next_index < 100:
        assert loop.time() < deadline
        await asyncio.sleep(0.01)
    tail = (
        await client.get(f"/api/execution-processes/{pid}/raw-logs/v2", params={"limit": 10})
    ).json()["data"]
    assert [e["entry_index"] for e in tail["entries"]] == list(range(90, 100))
    assert tail["history_truncated"] is False and tail["has_more"] is True
    older = (
        await client.get(f"/api/execution-processes/{pid}/raw-logs/v2", params={"cursor": 90})
    ).json()["data"]
    # Entries 0..89 were evicted and are stored nowhere: the page has nothing to show for
    # them, says so, and there is nothing older to ask for.
    assert older["history_truncated"] is True
    assert older["entries"] == []
    assert older["has_more"] is False and older["next_cursor"] is None
    await app.state.services.supervisor.stop(pid)


_bad_limit = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=1001),
    st.text(min_size=1).filter(lambda s: not s.strip().lstrip("+").isdigit()),
    st.floats(allow_nan=True).map(str),
)


def _parses_as_cursor(text: str) -> bool:
    """Python's own reading says it is an integer >= 0 ("-0", " 7 ", "+3"): not a bad cursor.
    ("1_000" and non-ASCII digits parse too; the server refuses them, listed below.)"""
    try:
        return int(text) >= 0
    except ValueError:
        return False


_bad_cursor = st.one_of(
    st.integers(max_value=-1),
    st.text(min_size=1).filter(lambda s: not _parses_as_cursor(s)),
    st.sampled_from(["1.5", "1_000", "\u0663", "1e3", "0x10"]),
)


@given(channel=st.sampled_from(["raw", "normalized"]), limit=_bad_limit)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
async def test_bad_limit_is_400_with_envelope(
    shared_client: Any, channel: str, limit: object
) -> None:
    response = await shared_client.get(
        f"/api/execution-processes/{uuid.uuid4()}/{channel}-logs/v2", params={"limit": str(limit)}
    )
    assert response.status_code == 400, (limit, response.text)
    body = response.json()
    assert body["success"] is False and body["data"] is None and "limit" in body["message"]


@given(channel=st.sampled_from(["raw", "normalized"]), cursor=_bad_cursor)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
async def test_bad_cursor_is_400_with_envelope(
    shared_client: Any, channel: str, cursor: object
) -> None:
    response = await shared_client.get(
        f"/api/execution-processes/{uuid.uuid4()}/{channel}-logs/v2", params={"cursor": str(cursor)}
    )
    assert response.status_code == 400, (cursor, response.text)
    assert "cursor" in response.json()["message"]


async def test_minus_zero_is_the_cursor_zero(shared_client: Any) -> None:
    """ "-0" is a whole number >= 0 (the strategy above once drew it as "bad" and flaked)."""
    response = await shared_client.get(
        f"/api/execution-processes/{uuid.uuid4()}/raw-logs/v2", params={"cursor": "-0"}
    )
    assert response.status_code == 404  # well-formed: the unknown process is the only fault


@given(process_id=st.text(min_size=1, max_size=60))
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
async def test_any_id_is_4xx_never_5xx(shared_client: Any, process_id: str) -> None:
    response = await shared_client.get(
        "/api/execution-processes/" + uuid_quote(process_id) + "/raw-logs/v2"
    )
    assert 400 <= response.status_code < 500, (process_id, response.text)
    assert response.json()["success"] is False


def uuid_quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


@pytest.fixture
async def shared_client(app_client: Callable[..., Any]) -> Any:
    _app, client = await app_client()
    return client
