"""Approvals end to end: the demo agent's hook asks a real server, a person decides over HTTP,
the tool call's entry is restated at its index, and the agent learns the decision."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import httpx
import pytest

from tests.api.helpers import create_session, wait_for_process_end, walk_history
from tests.conftest import LiveServer

pytestmark = pytest.mark.asyncio


async def _pending_approval(client: httpx.AsyncClient, process_id: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        listed = (
            await client.get("/api/approvals", params={"execution_process_id": process_id})
        ).json()["data"]
        pending = [a for a in listed if a["status"] == "pending"]
        if pending:
            return pending[0]
        assert loop.time() < deadline, "no approval was requested"
        await asyncio.sleep(0.02)


def _tool_entry(entries: list[dict[str, Any]], tool_use_id: str) -> dict[str, Any]:
    [entry] = [
        e
        for e in entries
        if e["entry"]["content"]["entry_type"]["type"] == "tool_use"
        and (e["entry"]["content"].get("metadata") or {}).get("tool_use_id") == tool_use_id
    ]
    return entry


async def _stored_tool_entry(
    client: httpx.AsyncClient, process_id: str, tool_use_id: str
) -> dict[str, Any]:
    return _tool_entry(await walk_history(client, process_id, "normalized", 50), tool_use_id)


async def _start_demo(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch, **overrides: Any
) -> tuple[httpx.AsyncClient, str]:
    monkeypatch.setenv("EXECLOG_DEMO_ARGS", "--pace 0 --seed 3")
    server = live_server(**overrides)
    client = httpx.AsyncClient(base_url=server.url, timeout=30)
    session = await create_session(client, {"executor": "demo", "prompt": "commit it"})
    return client, session["processes"][0]["id"]


async def test_approve_lets_the_tool_run(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, pid = await _start_demo(live_server, monkeypatch)
    async with aclosing(client):
        approval = await _pending_approval(client, pid)
        assert approval["execution_process_id"] == pid and approval["tool_name"]
        entries = await walk_history(client, pid, "normalized", 50)
        pending = _tool_entry(entries, approval["tool_use_id"])
        status = pending["entry"]["content"]["entry_type"]["status"]
        assert status["status"] == "pending_approval"
        assert status["approval_id"] == approval["id"]
        assert status["requested_at"] and status["timeout_at"]

        decided = await client.post(
            f"/api/approvals/{approval['id']}/respond", json={"approved": True}
        )
        assert decided.status_code == 200 and decided.json()["data"]["status"] == "approved"
        again = await client.post(
            f"/api/approvals/{approval['id']}/respond", json={"approved": False}
        )
        assert again.status_code == 409 and "already approved" in again.json()["message"]

        process = await wait_for_process_end(client, pid)
        assert process["status"] == "completed"
        final = await _stored_tool_entry(client, pid, approval["tool_use_id"])
        assert final["entry_index"] == pending["entry_index"]
        assert final["entry"]["content"]["entry_type"]["status"] == {"status": "success"}


async def test_deny_is_kept_and_the_agent_is_told(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, pid = await _start_demo(live_server, monkeypatch)
    async with aclosing(client):
        approval = await _pending_approval(client, pid)
        response = await client.post(
            f"/api/approvals/{approval['id']}/respond",
            json={"approved": False, "reason": "not on Fridays"},
        )
        assert response.json()["data"]["status"] == "denied"
        process = await wait_for_process_end(client, pid)
        assert process["status"] == "completed"
        entry = await _stored_tool_entry(client, pid, approval["tool_use_id"])
        entry_type = entry["entry"]["content"]["entry_type"]
        assert entry_type["status"] == {"status": "denied", "reason": "not on Fridays"}
        # The agent got the decision: its tool_result says so.
        raw = await walk_history(client, pid, "raw", 1000)
        assert any("denied by user: not on Fridays" in e["entry"]["content"] for e in raw)


async def test_no_decision_times_out(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, pid = await _start_demo(live_server, monkeypatch, approval_timeout_seconds=0.5)
    async with aclosing(client):
        approval = await _pending_approval(client, pid)
        process = await wait_for_process_end(client, pid)
        assert process["status"] == "completed"
        entry = await _stored_tool_entry(client, pid, approval["tool_use_id"])
        assert entry["entry"]["content"]["entry_type"]["status"] == {"status": "timed_out"}
        raw = await walk_history(client, pid, "raw", 1000)
        assert any("approval timed out" in e["entry"]["content"] for e in raw)


async def test_hook_authenticates_with_the_server_token(
    live_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With EXECLOG_AUTH_TOKEN set, the agent's hook sends it (and would be refused without)."""
    monkeypatch.delenv("EXECLOG_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("EXECLOG_DEMO_ARGS", "--pace 0 --seed 3")
    server = live_server(auth_token="s3cret-token-0123456789")
    headers = {"Authorization": "Bearer s3cret-token-0123456789"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=headers) as client:
        session = await create_session(client, {"executor": "demo", "prompt": "commit it"})
        pid = session["processes"][0]["id"]
        approval = await _pending_approval(client, pid)
        await client.post(f"/api/approvals/{approval['id']}/respond", json={"approved": True})
        process = await wait_for_process_end(client, pid)
        assert process["status"] == "completed"
        final = await _stored_tool_entry(client, pid, approval["tool_use_id"])
        assert final["entry"]["content"]["entry_type"]["status"] == {"status": "success"}


async def test_approval_errors(app_client: Callable[..., Any]) -> None:
    _app, client = await app_client()
    unknown = str(uuid.uuid4())
    assert (await client.get(f"/api/approvals/{unknown}")).status_code == 404
    assert (await client.get("/api/approvals/nope")).status_code == 400
    response = await client.post(
        "/api/approvals",
        json={"execution_process_id": unknown, "tool_use_id": "t", "tool_name": "Bash"},
    )
    assert response.status_code == 409 and "not running" in response.json()["message"]
    bad = await client.post(f"/api/approvals/{unknown}/respond", json={"approved": "maybe"})
    assert bad.status_code == 400 and bad.json()["success"] is False
