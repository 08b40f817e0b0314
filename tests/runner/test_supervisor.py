"""Supervisor end to end: orphans after a real crash, persistence modes, the legacy JSONL."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from execlog.jobs.orphans import ORPHAN_NOTE, orphan_note
from execlog.protocol import encode_json
from execlog.runner.reservations import FIRST_BLOCK
from execlog.storage.backfills import BackfillLedger
from execlog.storage.legacy import (
    FinishedMessage,
    JsonPatchMessage,
    LegacyLogStore,
    PatchOperation,
    SessionIdMessage,
    StderrMessage,
    StdoutMessage,
)
from execlog.storage.tables import execution_process_log_entries, execution_process_logs
from tests.api.helpers import (
    create_session,
    script_body,
    wait_for_process_end,
    wait_for_session_processes,
    walk_history,
)
from tests.helpers import wait_until
from tests.reliability.serve import (
    kill_if_running,
    process_running,
    wait_until_leases_expired,
)

pytestmark = pytest.mark.asyncio


def _start_server_process(database: Path) -> tuple[subprocess.Popen[str], str]:
    env = dict(
        os.environ,
        EXECLOG_PORT="0",
        EXECLOG_DATABASE_URL=f"sqlite:///{database}",
        # Its lease expires 0.6 s after a crash, so the next server may claim its processes.
        EXECLOG_LEASE_HEARTBEAT_SECONDS="0.2",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "execlog", "serve", "--no-auth"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert server.stdout is not None
    for line in server.stdout:  # the contract's start-up line names the URL
        if line.startswith("execlog listening on "):
            return server, line.split()[-1]
    raise AssertionError("server exited before listening")


async def _wait_until_committed(database: Path, process_id: str) -> None:
    """Poll the SQLite file (read-only) until the batched writer has committed a row."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    query = "SELECT count(*) FROM execution_process_log_entries WHERE execution_process_id = ?"
    while True:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
            if connection.execute(query, (process_id,)).fetchone()[0] > 0:
                return
        assert loop.time() < deadline, "nothing committed"
        await asyncio.sleep(0.02)


async def test_processes_left_running_by_a_crash_are_marked_killed(
    tmp_path: Path, app_client: Callable[..., Any]
) -> None:
    database = tmp_path / "server.db"
    server, url = _start_server_process(database)
    child_pid: int | None = None
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            code = "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(120)"
            session = await create_session(client, script_body(code))
            pid = session["processes"][0]["id"]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while True:  # wait until the first line is committed to the database
                page = (await client.get(f"/api/execution-processes/{pid}/raw-logs/v2")).json()
                if page["data"]["entries"]:
                    child_pid = int(page["data"]["entries"][0]["entry"]["content"])
                    break
                assert loop.time() < deadline
                await asyncio.sleep(0.02)
        await _wait_until_committed(database, pid)
        server.send_signal(signal.SIGKILL)  # a crash: no shutdown, the process stays "running"
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
        assert server.stdout is not None
        server.stdout.close()
    try:
        wait_until_leases_expired(database)
        _app, client = await app_client()  # a new server on the same database
        process = (await client.get(f"/api/execution-processes/{pid}")).json()["data"]
        assert process["status"] == "killed" and process["completed_at"] is not None
        # The note goes above the indexes reserved for output that may have been shown live.
        raw = await walk_history(client, pid, "raw", 50)
        assert [e["entry_index"] for e in raw] == [0, FIRST_BLOCK]
        note = orphan_note({"raw": (1, FIRST_BLOCK), "normalized": (0, FIRST_BLOCK)})
        assert note.startswith(ORPHAN_NOTE) and f"raw entries 1 to {FIRST_BLOCK - 1}" in note
        assert raw[1]["entry"] == {"type": "STDERR", "content": note}
        normalized = await walk_history(client, pid, "normalized", 50)
        assert normalized[-1]["entry"]["content"]["content"] == note
        assert normalized[-1]["entry"]["content"]["entry_type"] == {"type": "system_message"}
        # The note's legacy JSONL is what any note of the pipeline gets: the raw line and the
        # normalized entry's JsonPatch at its index.
        messages = list(LegacyLogStore(_app.state.services.engine).read_messages(pid))
        assert messages[-2:] == [
            StderrMessage(note + "\n"),
            JsonPatchMessage(
                [
                    PatchOperation(
                        "add",
                        normalized[-1]["entry_index"],
                        encode_json(normalized[-1]["entry"]),
                    )
                ]
            ),
        ]
        # Stopped: it ran here, its pid still named it (same start time).
        assert child_pid is not None and not process_running(child_pid)
    finally:
        if child_pid is not None:
            kill_if_running(child_pid)


async def _run_demo(app_client: Callable[..., Any], persistence: str) -> tuple[Any, str]:
    app, client = await app_client(log_persistence=persistence)
    session = await create_session(client, {"executor": "demo", "prompt": "go"})
    process = await wait_for_process_end(client, session["processes"][0]["id"])
    assert process["status"] == "completed"
    assert process["agent_session_id"]
    return app, process["id"]


def _count_rows(app: Any, table: Any, column: Any, process_id: str) -> int:
    with app.state.services.engine.connect() as connection:
        count: int = connection.execute(
            select(func.count()).select_from(table).where(column == process_id)
        ).scalar_one()
        return count


@pytest.fixture(autouse=True)
def fast_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECLOG_DEMO_ARGS", "--pace 0 --no-approval --seed 11")


async def test_dual_mode_writes_entries_and_legacy_jsonl(app_client: Callable[..., Any]) -> None:
    app, pid = await _run_demo(app_client, "dual")
    entries = _count_rows(
        app,
        execution_process_log_entries,
        execution_process_log_entries.c.execution_process_id,
        pid,
    )
    assert entries > 0
    messages = list(LegacyLogStore(app.state.services.engine).read_messages(pid))
    stdout = [m for m in messages if isinstance(m, StdoutMessage)]
    patches = [m for m in messages if isinstance(m, JsonPatchMessage)]
    session_ids = [m for m in messages if isinstance(m, SessionIdMessage)]
    assert isinstance(messages[-1], FinishedMessage)
    process = app.state.services.repository.fetch_process(pid)
    assert [m.agent_session_id for m in session_ids] == [process.agent_session_id]
    raw_count = app.state.services.entries.fetch_stats(pid, "raw").count
    normalized_count = app.state.services.entries.fetch_stats(pid, "normalized").count
    assert len(stdout) == raw_count
    assert all(m.text.endswith("\n") for m in stdout)
    # Every normalized entry was added once, and tool calls were replaced at their index.
    operations = [op for m in patches for op in m.operations]
    assert sorted({op.entry_index for op in operations if op.op == "add"}) == list(
        range(normalized_count)
    )
    assert any(op.op == "replace" for op in operations)


async def test_entries_mode_writes_no_legacy_rows(app_client: Callable[..., Any]) -> None:
    app, pid = await _run_demo(app_client, "entries")
    assert _count_rows(app, execution_process_logs, execution_process_logs.c.execution_id, pid) == 0
    assert app.state.services.entries.fetch_stats(pid, "raw").count > 0
    turn = app.state.services.repository.fetch_turn(pid)
    assert turn["agent_session_id"] and turn["prompt"] == "go" and turn["summary"]


async def test_legacy_mode_writes_no_entry_rows_but_keeps_the_session_id(
    app_client: Callable[..., Any],
) -> None:
    app, pid = await _run_demo(app_client, "legacy_jsonl")
    entries = _count_rows(
        app,
        execution_process_log_entries,
        execution_process_log_entries.c.execution_process_id,
        pid,
    )
    assert entries == 0
    messages = list(LegacyLogStore(app.state.services.engine).read_messages(pid))
    assert any(isinstance(m, SessionIdMessage) for m in messages)
    assert app.state.services.repository.fetch_turn(pid)["agent_session_id"]


async def test_dual_mode_records_complete_history_for_the_backfill(
    app_client: Callable[..., Any],
) -> None:
    """A process whose entries and JSONL were committed together is never replayed: its first
    read (and every start-up) finds it checked, and retention may clean its JSONL."""
    app, pid = await _run_demo(app_client, "dual")
    services = app.state.services
    row = BackfillLedger(services.engine).fetch(pid)
    assert row is not None
    assert row.raw_entries == services.entries.fetch_stats(pid, "raw").count > 0
    assert row.normalized_entries == services.entries.fetch_stats(pid, "normalized").count > 0
    assert pid not in {p.process_id for p in BackfillLedger(services.engine).fetch_pending()}


async def test_entries_mode_records_nothing_for_the_backfill(
    app_client: Callable[..., Any],
) -> None:
    app, pid = await _run_demo(app_client, "entries")
    assert BackfillLedger(app.state.services.engine).fetch(pid) is None


def _gated_agent(tmp_path: Path, gate: Path) -> str:
    """An EXECLOG_CLAUDE_COMMAND whose agent announces session ``sess-1`` and runs until
    ``gate`` exists."""
    agent = tmp_path / "agent.py"
    agent.write_text(
        "import os, sys, time\n"
        'print(\'{"type":"system","subtype":"init","session_id":"sess-1"}\', flush=True)\n'
        "deadline = time.monotonic() + 30\n"
        f"while not os.path.exists({str(gate)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.005)\n"
    )
    return f"{sys.executable} {agent}"


async def _follow_up(client: httpx.AsyncClient, session_id: str) -> httpx.Response:
    return await client.post(f"/api/sessions/{session_id}/follow-up", json={"prompt": "more"})


async def _gated_agent_session(
    app_client: Callable[..., Any], tmp_path: Path, gate: Path, **overrides: Any
) -> tuple[Any, httpx.AsyncClient, dict[str, Any], str]:
    """An app whose gated agent has announced ``sess-1``, with every line committed (nothing
    then waits on a write lock but the process's end): services, client, session, process id."""
    app, client = await app_client(
        claude_command=_gated_agent(tmp_path, gate), log_persistence="entries", **overrides
    )
    services = app.state.services
    session = await create_session(client, {"executor": "claude-code", "prompt": "first"})
    first_id: str = session["processes"][0]["id"]

    def session_id_committed() -> bool:
        return services.repository.fetch_process(first_id).agent_session_id == "sess-1"

    await wait_until(session_id_committed, 30, message="the agent's session id stored")
    await services.writer.flush()
    return services, client, session, first_id


async def test_a_follow_up_sent_as_soon_as_the_process_is_reported_ended_is_accepted(
    app_client: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The race behind a flaky follow-up test: the process is reported ended (its in-memory
    record leaves ``running`` first) while its chain still records the end and publishes it. A
    write lock on the SQLite file holds the chain there, deterministically; a follow-up sent in
    that window waits for the chain instead of answering 409."""
    gate = tmp_path / "gate"
    services, client, session, first_id = await _gated_agent_session(app_client, tmp_path, gate)
    caplog.set_level(logging.DEBUG, logger="execlog.runner.supervisor")
    blocker = sqlite3.connect(services.engine.url.database, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # the status update, hence the chain's end, waits
        gate.touch()
        assert (await wait_for_process_end(client, first_id))["status"] == "completed"
        follow = asyncio.create_task(_follow_up(client, session["id"]))

        def follow_up_waits() -> bool:
            return follow.done() or "waits for its chain to end" in caplog.text

        await wait_until(follow_up_waits, 30, message="the follow-up to answer or wait")
        assert not follow.done(), follow.result().text
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    response = await follow
    assert response.status_code == 201, response.text
    second = await wait_for_process_end(client, response.json()["data"]["id"])
    assert second["status"] == "completed"
    argv = services.repository.fetch_process(second["id"]).action["argv"]
    assert argv[argv.index("--resume") + 1] == "sess-1"


async def test_an_end_the_database_cannot_take_in_time_is_stored_once_it_can(
    app_client: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A write lock held past the database deadline while the process ends: its end is stored
    as it happened (completed, exit code 0) once the lock goes, never turned into "failed" nor
    left "running", and the session's chain ends, so a follow-up is accepted."""
    gate = tmp_path / "gate"
    services, client, session, first_id = await _gated_agent_session(
        app_client, tmp_path, gate, db_timeout_seconds=0.3
    )
    caplog.set_level(logging.WARNING, logger="execlog.runner.supervisor")
    blocker = sqlite3.connect(services.engine.url.database, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        gate.touch()

        def end_not_stored() -> bool:
            return any(
                first_id in r.getMessage() and r.name == "execlog.runner.supervisor"
                for r in caplog.records
            )

        await wait_until(end_not_stored, 30, message="the end's update to miss its deadline")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    def end_stored() -> bool:
        return services.repository.fetch_process(first_id).status != "running"

    await wait_until(end_stored, 30, message="the process's end stored")
    stored = services.repository.fetch_process(first_id)
    assert (stored.status, stored.exit_code) == ("completed", 0)
    response = await _follow_up(client, session["id"])
    assert response.status_code == 201, response.text
    assert (await wait_for_process_end(client, response.json()["data"]["id"]))["status"] == (
        "completed"
    )


async def test_a_follow_up_is_refused_while_a_process_of_the_chain_runs_and_only_one_starts(
    app_client: Callable[..., Any], tmp_path: Path
) -> None:
    """409 at once while the agent runs and while its cleanup script runs (no wait for them);
    once the chain has ended, of two follow-ups sent together one starts and one is refused."""
    gate, cleanup_gate = tmp_path / "gate", tmp_path / "cleanup-gate"
    _app, client = await app_client(claude_command=_gated_agent(tmp_path, gate))
    cleanup = f"for i in $(seq 3000); do [ -e {cleanup_gate} ] && break; sleep 0.01; done"
    session = await create_session(
        client, {"executor": "claude-code", "prompt": "first", "cleanup_script": cleanup}
    )
    session_id = session["id"]
    refused = await _follow_up(client, session_id)
    assert refused.status_code == 409, refused.text
    gate.touch()

    async def cleanup_running() -> dict[str, Any]:
        processes = (await client.get(f"/api/sessions/{session_id}")).json()["data"]["processes"]
        return processes[-1]

    deadline = asyncio.get_running_loop().time() + 30
    while (await cleanup_running())["run_reason"] != "cleanupscript":
        assert asyncio.get_running_loop().time() < deadline, "the cleanup script never started"
        await asyncio.sleep(0.02)
    started = asyncio.get_running_loop().time()
    refused = await _follow_up(client, session_id)
    assert refused.status_code == 409, refused.text
    # Refused without waiting for the cleanup script: it is still running.
    assert (await cleanup_running())["status"] == "running"
    assert asyncio.get_running_loop().time() - started < 5
    cleanup_gate.touch()
    await wait_for_session_processes(client, session_id, 2)
    await wait_until_inactive(client, session_id)
    answers = await asyncio.gather(_follow_up(client, session_id), _follow_up(client, session_id))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    [accepted] = [a for a in answers if a.status_code == 201]
    ended = await wait_for_process_end(client, accepted.json()["data"]["id"])
    assert ended["status"] == "completed"


async def wait_until_inactive(client: httpx.AsyncClient, session_id: str) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while (await client.get(f"/api/sessions/{session_id}")).json()["data"]["active"]:
        assert asyncio.get_running_loop().time() < deadline, "the chain never ended"
        await asyncio.sleep(0.02)
