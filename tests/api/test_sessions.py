"""Sessions and processes API: create with each executor, list, get, follow-up, stop, errors."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api.helpers import (
    create_session,
    script_body,
    wait_for_process_end,
    wait_for_session_processes,
    walk_history,
)

pytestmark = pytest.mark.asyncio


async def test_script_session_runs_and_stores_every_line(app_client: Callable[..., Any]) -> None:
    _app, client = await app_client()
    session = await create_session(
        client, script_body("import sys\nfor i in range(500): print(i)\nsys.exit(3)")
    )
    assert session["executor"] == "script"
    [process] = session["processes"]
    assert process["run_reason"] == "script"
    assert process["status"] == "running"
    ended = await wait_for_process_end(client, process["id"])
    assert (ended["status"], ended["exit_code"]) == ("failed", 3)
    assert ended["completed_at"] is not None
    entries = await walk_history(client, process["id"], "raw", 64)
    assert [e["entry"] for e in entries] == [
        {"type": "STDOUT", "content": str(i)} for i in range(500)
    ]
    assert [e["entry_index"] for e in entries] == list(range(500))


async def test_setup_agent_cleanup_chain(app_client: Callable[..., Any], tmp_path: Path) -> None:
    _app, client = await app_client()
    body = script_body(
        "import os; print(open('marker').read())",
        working_dir=str(tmp_path),
        setup_script="echo setup-ran > marker",
        cleanup_script="echo cleaning; rm marker",
    )
    session = await create_session(client, body)
    assert session["processes"][0]["run_reason"] == "setupscript"
    processes = await wait_for_session_processes(client, session["id"], 3)
    assert [p["run_reason"] for p in processes] == ["setupscript", "script", "cleanupscript"]
    assert [p["status"] for p in processes] == ["completed"] * 3
    main_lines = await walk_history(client, processes[1]["id"], "raw", 200)
    assert main_lines[0]["entry"]["content"] == "setup-ran"
    assert not (tmp_path / "marker").exists()


async def test_failed_setup_skips_the_agent(app_client: Callable[..., Any]) -> None:
    _app, client = await app_client()
    session = await create_session(
        client, script_body("print('never')", setup_script="echo broken >&2; exit 7")
    )
    [setup] = session["processes"]
    ended = await wait_for_process_end(client, setup["id"])
    assert (ended["status"], ended["exit_code"]) == ("failed", 7)
    lines = await walk_history(client, setup["id"], "raw", 10)
    assert lines[-1]["entry"] == {"type": "STDERR", "content": "broken"}
    listed = (await client.get(f"/api/sessions/{session['id']}")).json()["data"]
    assert len(listed["processes"]) == 1


async def test_command_that_cannot_start_is_a_failed_process(
    app_client: Callable[..., Any],
) -> None:
    _app, client = await app_client()
    session = await create_session(
        client, {"executor": "script", "command": ["/nonexistent/execlog-no-such-command"]}
    )
    ended = await wait_for_process_end(client, session["processes"][0]["id"])
    assert ended["status"] == "failed"
    raw = await walk_history(client, ended["id"], "raw", 10)
    assert "/nonexistent/execlog-no-such-command" in raw[-1]["entry"]["content"]
    normalized = await walk_history(client, ended["id"], "normalized", 10)
    assert normalized[-1]["entry"]["content"]["entry_type"]["type"] == "error_message"


async def test_list_is_newest_first_and_get_matches(app_client: Callable[..., Any]) -> None:
    _app, client = await app_client()
    first = await create_session(client, script_body("print(1)"))
    second = await create_session(client, script_body("print(2)"))
    listed = (await client.get("/api/sessions")).json()["data"]
    assert [s["id"] for s in listed[:2]] == [second["id"], first["id"]]
    got = (await client.get(f"/api/sessions/{first['id']}")).json()
    assert got["success"] is True and got["message"] is None
    assert got["data"]["id"] == first["id"]
    # The contract's keys, plus `active` (docs/api.md).
    assert set(got["data"]) == {
        "id",
        "executor",
        "working_dir",
        "created_at",
        "processes",
        "active",
    }
    process = got["data"]["processes"][0]
    assert set(process) == {
        "id",
        "session_id",
        "run_reason",
        "status",
        "exit_code",
        "started_at",
        "completed_at",
        "agent_session_id",
        "prompt",
        "command",
    }
    assert process["command"] == first["processes"][0]["command"]
    assert process["command"][-1] == "print(1)" and process["prompt"] is None


async def test_stop_kills_a_running_process(app_client: Callable[..., Any]) -> None:
    _app, client = await app_client()
    session = await create_session(
        client,
        script_body("import time\nprint('started', flush=True)\ntime.sleep(120)"),
    )
    process_id = session["processes"][0]["id"]
    response = await client.post(f"/api/execution-processes/{process_id}/stop")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "killed"
    again = await client.post(f"/api/execution-processes/{process_id}/stop")
    assert again.json()["data"]["status"] == "killed"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"executor": "nope"}, "unknown executor"),
        ({"executor": "script"}, "command"),
        ({"executor": "claude-code"}, "prompt"),
        ({"executor": "script", "command": []}, "command"),
        ({"executor": "script", "command": ["true"], "working_dir": "/no/such/dir"}, "working_dir"),
        ({"executor": "script", "command": ["true"], "surprise": 1}, "surprise"),
        ({"command": ["true"]}, "executor"),
    ],
)
async def test_bad_session_bodies_are_400_with_a_message(
    app_client: Callable[..., Any], body: dict[str, Any], fragment: str
) -> None:
    _app, client = await app_client()
    response = await client.post("/api/sessions", json=body)
    assert response.status_code == 400, response.text
    envelope = response.json()
    assert envelope["success"] is False and envelope["data"] is None
    assert fragment in envelope["message"]


async def test_ids_malformed_400_unknown_404(app_client: Callable[..., Any]) -> None:
    _app, client = await app_client()
    unknown = str(uuid.uuid4())
    for path in (
        "/api/sessions/{}",
        "/api/execution-processes/{}",
        "/api/execution-processes/{}/raw-logs/v2",
        "/api/execution-processes/{}/normalized-logs/v2",
    ):
        bad = await client.get(path.format("not-a-uuid"))
        assert bad.status_code == 400 and "not-a-uuid" in bad.json()["message"]
        missing = await client.get(path.format(unknown))
        assert missing.status_code == 404 and unknown in missing.json()["message"]
    follow = await client.post(f"/api/sessions/{unknown}/follow-up", json={"prompt": "hi"})
    assert follow.status_code == 404
    stop = await client.post(f"/api/execution-processes/{unknown}/stop")
    assert stop.status_code == 404


async def test_follow_up_of_a_script_session_is_refused(app_client: Callable[..., Any]) -> None:
    _app, client = await app_client()
    session = await create_session(client, script_body("print(1)"))
    await wait_for_process_end(client, session["processes"][0]["id"])
    response = await client.post(
        f"/api/sessions/{session['id']}/follow-up", json={"prompt": "more"}
    )
    assert response.status_code == 400
    assert "script" in response.json()["message"]


async def test_demo_session_captures_agent_session_id_and_follow_up_resumes(
    app_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXECLOG_DEMO_ARGS", "--pace 0 --no-approval --seed 7")
    app, client = await app_client()
    session = await create_session(client, {"executor": "demo", "prompt": "fix the bug"})
    first = await wait_for_process_end(client, session["processes"][0]["id"])
    assert first["status"] == "completed", first
    assert first["agent_session_id"]
    follow = await client.post(
        f"/api/sessions/{session['id']}/follow-up", json={"prompt": "and add a test"}
    )
    assert follow.status_code == 201, follow.text
    second = await wait_for_process_end(client, follow.json()["data"]["id"])
    assert second["status"] == "completed"
    assert second["agent_session_id"] == first["agent_session_id"]
    record = app.state.services.repository.fetch_process(second["id"])
    argv = record.action["argv"]
    assert argv[argv.index("--resume") + 1] == first["agent_session_id"]
    first_argv = app.state.services.repository.fetch_process(first["id"]).action["argv"]
    assert "--resume" not in first_argv
    normalized = await walk_history(client, second["id"], "normalized", 100)
    kinds = {e["entry"]["content"]["entry_type"]["type"] for e in normalized}
    assert {"assistant_message", "tool_use"} <= kinds
    tools = [
        e["entry"]["content"]["entry_type"]
        for e in normalized
        if e["entry"]["content"]["entry_type"]["type"] == "tool_use"
    ]
    assert tools and all(t["status"]["status"] != "created" for t in tools)


async def test_claude_command_replaying_a_fixture(
    app_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """EXECLOG_CLAUDE_COMMAND points at a script that prints a recorded Claude Code session."""
    fixture = (
        Path(__file__).resolve().parent.parent / "fixtures/agents/claude-code-build-session.jsonl"
    )
    replay = f"{sys.executable} -c \"import sys; sys.stdout.write(open('{fixture}').read())\""
    _app, client = await app_client(claude_command=replay)
    session = await create_session(client, {"executor": "claude-code", "prompt": "build it"})
    process = await wait_for_process_end(client, session["processes"][0]["id"])
    assert process["status"] == "completed"
    assert process["agent_session_id"] == "a2566954-4e4c-4265-b0b2-0e42f2a13909"
    normalized = await walk_history(client, process["id"], "normalized", 7)
    tools = [
        e["entry"]["content"]["entry_type"]
        for e in normalized
        if e["entry"]["content"]["entry_type"]["type"] == "tool_use"
    ]
    assert len(tools) == 20
    statuses = [t["status"]["status"] for t in tools]
    assert statuses.count("failed") == 1 and statuses.count("success") == 19
    # The normalized default page size is 20 (CONTRACT.md), not the raw 200: 28 entries give
    # a first page of the newest 20 and a cursor for the 8 before them.
    assert len(normalized) == 28
    tail = (
        await client.get(f"/api/execution-processes/{process['id']}/normalized-logs/v2")
    ).json()["data"]
    assert [e["entry_index"] for e in tail["entries"]] == list(range(8, 28))
    assert tail["has_more"] is True and tail["next_cursor"] == 8


async def test_openapi_page_lists_every_endpoint(app_client: Callable[..., Any]) -> None:
    _app, client = await app_client()
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = (await client.get("/openapi.json")).json()
    paths = set(spec["paths"])
    assert {
        "/api/sessions",
        "/api/sessions/{session_id}",
        "/api/sessions/{session_id}/follow-up",
        "/api/execution-processes/{process_id}",
        "/api/execution-processes/{process_id}/stop",
        "/api/execution-processes/{process_id}/raw-logs/v2",
        "/api/execution-processes/{process_id}/normalized-logs/v2",
        "/api/approvals",
        "/api/approvals/{approval_id}",
        "/api/approvals/{approval_id}/wait",
        "/api/approvals/{approval_id}/respond",
        "/api/events",
    } <= paths
    description = spec["info"]["description"]
    assert "/api/execution-processes/{id}/raw-logs/v2/ws" in description
    assert "/api/execution-processes/{id}/normalized-logs/v2/ws" in description


async def test_an_ended_process_leaves_no_memory_behind(app_client: Callable[..., Any]) -> None:
    """Its MsgStores are flushed, dropped from the registry and collected."""
    import gc
    import weakref

    app, client = await app_client()
    session = await create_session(
        client, script_body("import sys\nprint('ready', flush=True)\nsys.stdin.readline()")
    )
    pid = session["processes"][0]["id"]
    registry = app.state.services.registry
    stores = [
        weakref.ref(registry.store(pid, "raw")),
        weakref.ref(registry.store(pid, "normalized")),
    ]
    deadline = asyncio.get_running_loop().time() + 30
    while registry.store(pid, "raw").next_index == 0:  # until 'ready' was read
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    await client.post(f"/api/execution-processes/{pid}/stop")
    assert registry.store(pid, "raw") is None
    gc.collect()
    assert [ref() for ref in stores] == [None, None]
    raw = await walk_history(client, pid, "raw", 10)
    assert raw[0]["entry"]["content"] == "ready"
