"""Import of vibe-kanban databases of both eras (ids as BLOBs, both timestamp forms, one log row
per process or per pipe chunk, per-process asset files), re-import, and the imported history
served after the backfill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from execlog.config import BackfillMode
from execlog.jobs.backfill import LegacyBackfiller
from execlog.jobs.vibe_kanban import VibeKanbanImportError, import_vibe_kanban, parse_timestamp
from execlog.storage.database import create_database_engine
from execlog.storage.entries import EntryStore
from execlog.storage.migrate import run_migrations
from execlog.storage.processes import ProcessRepository
from execlog.storage.tables import execution_process_logs

from .legacy_data import patch, stderr, stdout
from .vibe_kanban_schema import ATTEMPTS_ERA, SESSIONS_ERA, add_logs, create_database, new_id

FIXTURE = Path(__file__).parents[1] / "fixtures" / "agents" / "claude-code-build-session.jsonl"
CLAUDE_SESSION = "a2566954-4e4c-4265-b0b2-0e42f2a13909"
HELLO = {
    "type": "NORMALIZED_ENTRY",
    "content": {"timestamp": None, "entry_type": {"type": "assistant_message"}, "content": "hi"},
}


def test_both_timestamp_forms() -> None:
    assert parse_timestamp("2025-08-01 10:00:00.123") == 1754042400123
    assert parse_timestamp("2025-08-01T10:00:00.123456789Z") == 1754042400123
    assert parse_timestamp("2025-08-01T12:00:00.1+02:00") == 1754042400100
    assert parse_timestamp("2025-08-01 10:00:00") == 1754042400000
    assert parse_timestamp("yesterday") is None


def build_attempts_era(path: Path) -> dict[str, uuid.UUID]:
    """Older schema: task_attempts, executor_sessions, one log row per process."""
    db = create_database(path, ATTEMPTS_ERA)
    attempt, agent, setup = new_id(), new_id(), new_id()
    db.execute(
        "INSERT INTO task_attempts (id, task_id, container_ref, executor, created_at) "
        "VALUES (?, ?, '/work/repo', 'CLAUDE_CODE', '2025-08-01 09:59:59.500')",
        (attempt.bytes, new_id().bytes),
    )
    action = {
        "typ": {
            "type": "CodingAgentInitialRequest",
            "prompt": "fix the bug",
            "profile_variant_label": {"profile": "claude-code", "variant": None},
        },
        "next_action": None,
    }
    script = {
        "typ": {
            "type": "ScriptRequest",
            "script": "npm i",
            "language": "Bash",
            "context": "SetupScript",
        },
        "next_action": None,
    }
    db.executemany(
        "INSERT INTO execution_processes (id, task_attempt_id, run_reason, executor_action, "
        "status, exit_code, started_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                setup.bytes,
                attempt.bytes,
                "setupscript",
                json.dumps(script),
                "failed",
                1,
                "2025-08-01 10:00:00.000",
                "2025-08-01 10:00:01.000",
            ),
            (
                agent.bytes,
                attempt.bytes,
                "codingagent",
                json.dumps(action),
                "completed",
                0,
                "2025-08-01 10:00:02.123",
                "2025-08-01 10:05:00.456",
            ),
        ],
    )
    db.execute(
        "INSERT INTO executor_sessions (id, task_attempt_id, execution_process_id, session_id, "
        "prompt) VALUES (?, ?, ?, 'agent-abc', 'fix the bug')",
        (new_id().bytes, attempt.bytes, agent.bytes),
    )
    # One row per process, every line in it (execution_id was the primary key).
    add_logs(
        db,
        setup,
        [
            (
                "\n".join([stdout("setting up\n"), stderr("npm ERR!\n"), '"Finished"']) + "\n",
                "2025-08-01 10:00:01.000",
            )
        ],
    )
    add_logs(
        db,
        agent,
        [
            (
                "\n".join(
                    [
                        stdout("hello\n"),
                        patch("add", 0, HELLO),
                        '{"SessionId":"agent-abc"}',
                        '"Finished"',
                    ]
                ),
                "2025-08-01 10:05:00.456",
            )
        ],
    )
    db.commit()
    db.close()
    return {"attempt": attempt, "agent": agent, "setup": setup}


def build_sessions_era(path: Path, assets: Path) -> dict[str, uuid.UUID]:
    """Newer schema: sessions, coding_agent_turns, one log row per pipe chunk, asset files."""
    db = create_database(path, SESSIONS_ERA)
    workspace, session = new_id(), new_id()
    claude, from_file, running, orphan, devserver = (new_id() for _ in range(5))
    db.execute(
        "INSERT INTO workspaces (id, container_ref) VALUES (?, '/work/other')", (workspace.bytes,)
    )
    db.execute(
        "INSERT INTO sessions (id, workspace_id, executor, created_at) "
        "VALUES (?, ?, 'CLAUDE_CODE', '2025-12-20T08:00:00.123456789Z')",
        (session.bytes, workspace.bytes),
    )
    action = {
        "typ": {
            "type": "CodingAgentInitialRequest",
            "prompt": "build it",
            "executor_config": {"executor": "CLAUDE_CODE"},
        },
        "next_action": None,
    }
    rows = [
        (
            claude,
            session,
            "codingagent",
            json.dumps(action),
            "completed",
            0,
            "2025-12-20T08:00:01.000000001+00:00",
            "2025-12-20T08:09:00.5Z",
        ),
        (
            from_file,
            session,
            "setupscript",
            "{}",
            "completed",
            0,
            "2025-12-20T08:00:00.2Z",
            "2025-12-20T08:00:00.9Z",
        ),
        (
            running,
            session,
            "codingagent",
            json.dumps(action),
            "running",
            None,
            "2025-12-20T09:00:00Z",
            None,
        ),
        (orphan, new_id(), "setupscript", "{}", "completed", 0, "2025-12-20T09:00:00Z", None),
        (
            devserver,
            session,
            "devserver",
            "{}",
            "killed",
            None,
            "2025-12-20T10:00:00Z",
            "2025-12-20T10:30:00Z",
        ),
    ]
    db.executemany(
        "INSERT INTO execution_processes (id, session_id, run_reason, executor_action, status, "
        "exit_code, started_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(r[0].bytes, r[1].bytes, *r[2:]) for r in rows],
    )
    db.execute(
        "INSERT INTO coding_agent_turns (id, execution_process_id, agent_session_id, prompt) "
        "VALUES (?, ?, NULL, 'build it')",
        (new_id().bytes, claude.bytes),
    )
    # The Claude output in 4 KiB pipe chunks, no patches stored.
    data = FIXTURE.read_text(encoding="utf-8")
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    add_logs(
        db,
        claude,
        [(stdout(chunk), f"2025-12-20T08:00:{n:02d}.{n:09d}Z") for n, chunk in enumerate(chunks)],
    )
    db.commit()
    db.close()
    folder = assets / "sessions" / str(session)[:2] / str(session) / "processes"
    folder.mkdir(parents=True)
    (folder / f"{from_file}.jsonl").write_text(
        "\n".join([stdout("from the asset file\n"), stdout("second line\n"), '"Finished"']) + "\n"
    )
    return {
        "session": session,
        "claude": claude,
        "from_file": from_file,
        "running": running,
        "orphan": orphan,
        "devserver": devserver,
    }


def raw_contents(engine: Engine, pid: uuid.UUID) -> list[str]:
    rows = EntryStore(engine).fetch_entries_after(str(pid), "raw", None)
    return [json.loads(row.entry_json)["content"] for row in rows]


async def test_import_of_the_older_era(tmp_path: Path, engine: Engine) -> None:
    ids = build_attempts_era(tmp_path / "vk.sqlite")
    summary = import_vibe_kanban(engine, tmp_path / "vk.sqlite")

    assert (summary.sessions, summary.processes, summary.turns) == (1, 2, 1)
    assert summary.log_rows == 2 and not summary.skipped
    repository = ProcessRepository(engine)
    session = repository.fetch_session(str(ids["attempt"]))
    assert session is not None
    assert session.executor == "claude-code" and session.working_dir == "/work/repo"
    assert session.created_at == 1754042399500
    agent = repository.fetch_process(str(ids["agent"]))
    assert agent is not None
    assert (agent.run_reason, agent.status, agent.exit_code) == ("codingagent", "completed", 0)
    assert (agent.started_at, agent.completed_at) == (1754042402123, 1754042700456)
    assert agent.action["executor"] == "claude-code"
    turn = repository.fetch_turn(str(ids["agent"]))
    assert turn is not None
    assert (turn["agent_session_id"], turn["prompt"]) == ("agent-abc", "fix the bug")
    setup = repository.fetch_process(str(ids["setup"]))
    assert setup is not None and (setup.status, setup.exit_code) == ("failed", 1)

    backfiller = LegacyBackfiller.create(engine, max_line_bytes=1_048_576)
    await backfiller.run_pending(BackfillMode.STARTUP, lambda _line: None)
    assert raw_contents(engine, ids["setup"]) == ["setting up", "npm ERR!"]
    conversation = EntryStore(engine).fetch_entries_after(str(ids["agent"]), "normalized", None)
    assert [json.loads(e.entry_json) for e in conversation] == [HELLO]


async def test_import_of_the_newer_era_with_assets(tmp_path: Path, engine: Engine) -> None:
    assets = tmp_path / "assets"
    ids = build_sessions_era(tmp_path / "vk.sqlite", assets)
    summary = import_vibe_kanban(engine, tmp_path / "vk.sqlite", assets=assets)

    assert (summary.sessions, summary.processes, summary.asset_files) == (1, 4, 1)
    assert dict(summary.skipped) == {"its session is missing": 1}
    repository = ProcessRepository(engine)
    running = repository.fetch_process(str(ids["running"]))
    assert running is not None and running.status == "killed"
    assert running.completed_at == running.started_at
    devserver = repository.fetch_process(str(ids["devserver"]))
    assert devserver is not None and devserver.run_reason == "script"
    claude = repository.fetch_process(str(ids["claude"]))
    assert claude is not None and claude.started_at == 1766217601000
    assert claude.completed_at == 1766218140500

    backfiller = LegacyBackfiller.create(engine, max_line_bytes=1_048_576)
    run = await backfiller.run_pending(BackfillMode.STARTUP, lambda _line: None)
    assert run.errors == 0
    assert raw_contents(engine, ids["from_file"]) == ["from the asset file", "second line"]
    # A Claude process from a database without patches: its conversation, each tool call
    # matched to its result, and the agent's session id captured into the turn.
    entries = EntryStore(engine).fetch_entries_after(str(ids["claude"]), "normalized", None)
    conversation = [json.loads(e.entry_json)["content"] for e in entries]
    calls = [c for c in conversation if c["entry_type"]["type"] == "tool_use"]
    assert len(calls) == 20
    assert all(c["entry_type"]["status"]["status"] in ("success", "failed") for c in calls)
    turn = repository.fetch_turn(str(ids["claude"]))
    assert turn is not None and turn["agent_session_id"] == CLAUDE_SESSION


def test_reimport_is_idempotent(tmp_path: Path, engine: Engine) -> None:
    assets = tmp_path / "assets"
    build_sessions_era(tmp_path / "vk.sqlite", assets)
    first = import_vibe_kanban(engine, tmp_path / "vk.sqlite", assets=assets)
    with engine.connect() as connection:
        rows = connection.execute(select(func.count()).select_from(execution_process_logs))
        log_rows = rows.scalar_one()

    again = import_vibe_kanban(engine, tmp_path / "vk.sqlite", assets=assets)

    assert (again.sessions, again.processes, again.log_rows) == (0, 0, 0)
    assert again.skipped["already imported"] == first.processes
    with engine.connect() as connection:
        rows = connection.execute(select(func.count()).select_from(execution_process_logs))
        assert rows.scalar_one() == log_rows


def test_not_a_vibe_kanban_database(tmp_path: Path, engine: Engine) -> None:
    with pytest.raises(VibeKanbanImportError, match="no such database file"):
        import_vibe_kanban(engine, tmp_path / "missing.sqlite")
    (tmp_path / "text.sqlite").write_text("hello")
    with pytest.raises(VibeKanbanImportError, match="not a SQLite database"):
        import_vibe_kanban(engine, tmp_path / "text.sqlite")


def test_import_command_prints_a_summary_and_backfills(tmp_path: Path) -> None:
    ids = build_attempts_era(tmp_path / "vk.sqlite")
    database = tmp_path / "execlog.db"
    env = {**os.environ, "EXECLOG_DATABASE_URL": f"sqlite:///{database}"}
    command = [sys.executable, "-m", "execlog", "import-vibe-kanban", str(tmp_path / "vk.sqlite")]

    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("imported 1 sessions, 2 execution processes, 1 coding-agent turns")
    assert lines[1].startswith("log-history backfill starting: processes=2, ")
    assert lines[2].startswith("log-history backfill complete: processes=2, ")

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "skipped 2 execution processes: already imported" in again.stdout
    engine = create_database_engine(f"sqlite:///{database}")
    run_migrations(engine)
    assert raw_contents(engine, ids["setup"]) == ["setting up", "npm ERR!"]
    engine.dispose()

    missing = subprocess.run(
        [*command[:-1], str(tmp_path / "nope.sqlite")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert missing.returncode == 1 and "no such database file" in missing.stderr
