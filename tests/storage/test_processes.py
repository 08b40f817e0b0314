"""ProcessRepository on SQLite and PostgreSQL: sessions with their processes, coding-agent
turns, status changes, start-up orphans, and the awaitable forms the event loop uses."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from execlog.storage.processes import ProcessRecord, ProcessRepository, RunReason, SessionRecord
from tests.storage.helpers import new_process_id


def session_at(created_at: int, executor: str = "demo") -> SessionRecord:
    return SessionRecord(new_process_id(), executor, "/tmp", created_at, setup_script="make")


def process_of(
    session: SessionRecord, started_at: int, run_reason: RunReason = "codingagent"
) -> ProcessRecord:
    return ProcessRecord(
        id=new_process_id(),
        session_id=session.id,
        run_reason=run_reason,
        status="running",
        exit_code=None,
        started_at=started_at,
        completed_at=None,
        agent_session_id=None,
        action={"executor": session.executor, "argv": ["agent", "-p", "go"]},
    )


def test_a_session_reads_back_with_its_processes_in_start_order(any_engine: Engine) -> None:
    repository = ProcessRepository(any_engine)
    session = session_at(1_000)
    repository.insert_session(session)
    setup = process_of(session, 2_000, "setupscript")
    agent = process_of(session, 3_000)
    repository.insert_process(agent, prompt="fix it")
    repository.insert_process(setup, prompt=None)

    stored = repository.fetch_session(session.id)

    assert stored is not None
    assert (stored.executor, stored.working_dir, stored.created_at) == ("demo", "/tmp", 1_000)
    assert stored.setup_script == "make" and stored.cleanup_script is None
    assert [p.id for p in stored.processes] == [setup.id, agent.id]
    assert stored.processes[1].action == agent.action
    assert stored.processes[1].prompt == "fix it" and stored.processes[0].prompt is None
    assert repository.fetch_session(new_process_id()) is None


def test_sessions_are_listed_newest_first(any_engine: Engine) -> None:
    repository = ProcessRepository(any_engine)
    sessions = [session_at(t) for t in (5_000, 7_000, 6_000)]
    for session in sessions:
        repository.insert_session(session)
        repository.insert_process(process_of(session, session.created_at + 1), prompt="p")
    listed = repository.list_sessions()
    assert [s.created_at for s in listed] == [7_000, 6_000, 5_000]
    assert all(len(s.processes) == 1 for s in listed)
    assert [s.created_at for s in repository.list_sessions(limit=2)] == [7_000, 6_000]


def test_status_changes_and_turn_updates(any_engine: Engine) -> None:
    repository = ProcessRepository(any_engine)
    session = session_at(1_000)
    repository.insert_session(session)
    first, second = process_of(session, 2_000), process_of(session, 3_000)
    repository.insert_process(first, prompt="one")
    repository.insert_process(second, prompt="two")

    repository.update_process_status(first.id, "completed", 0, 2_500)
    repository.set_agent_session_id(first.id, "agent-1", 2_400)
    repository.set_summary(first.id, "did one", 2_450)
    repository.set_agent_session_id(second.id, "agent-2", 3_100)

    stored = repository.fetch_process(first.id)
    assert stored is not None
    assert (stored.status, stored.exit_code, stored.completed_at) == ("completed", 0, 2_500)
    assert stored.agent_session_id == "agent-1"
    turn = repository.fetch_turn(first.id)
    assert turn is not None and (turn["prompt"], turn["summary"]) == ("one", "did one")
    # A follow-up resumes the newest turn's agent session.
    assert repository.fetch_latest_agent_session_id(session.id) == "agent-2"
    assert not repository.set_missing_agent_session_id(first.id, "other", 2_600)
    assert repository.fetch_process(new_process_id()) is None


def test_a_script_process_has_no_turn(any_engine: Engine) -> None:
    repository = ProcessRepository(any_engine)
    session = session_at(1_000, executor="script")
    repository.insert_session(session)
    script = process_of(session, 2_000, "script")
    repository.insert_process(script, prompt=None)
    assert repository.fetch_turn(script.id) is None
    assert repository.fetch_latest_agent_session_id(session.id) is None


def test_processes_left_running_are_marked_killed_once(any_engine: Engine) -> None:
    repository = ProcessRepository(any_engine)
    session = session_at(1_000)
    repository.insert_session(session)
    running, done = process_of(session, 2_000), process_of(session, 3_000)
    repository.insert_process(running, prompt="a")
    repository.insert_process(done, prompt="b")
    repository.update_process_status(done.id, "failed", 1, 3_500)

    assert repository.mark_running_as_killed(9_000) == [running.id]
    assert repository.mark_running_as_killed(9_500) == []
    killed = repository.fetch_process(running.id)
    assert killed is not None and (killed.status, killed.completed_at) == ("killed", 9_000)
    untouched = repository.fetch_process(done.id)
    assert untouched is not None and untouched.status == "failed"


@pytest.mark.asyncio
async def test_awaitable_forms_read_and_write_the_same_rows(any_engine: Engine) -> None:
    repository = ProcessRepository(any_engine)
    session = session_at(1_000)
    await repository.ainsert_session(session)
    process = process_of(session, 2_000)
    await repository.ainsert_process(process, prompt="go")
    await repository.aset_agent_session_id(process.id, "agent-9", 2_100)
    await repository.aset_summary(process.id, "done", 2_200)
    await repository.aupdate_process_status(process.id, "completed", 0, 2_300)

    stored = await repository.afetch_process(process.id)
    assert stored is not None and (stored.status, stored.agent_session_id) == (
        "completed",
        "agent-9",
    )
    fetched = await repository.afetch_session(session.id)
    assert fetched is not None and [p.id for p in fetched.processes] == [process.id]
    assert [s.id for s in await repository.alist_sessions()] == [session.id]
    assert await repository.afetch_latest_agent_session_id(session.id) == "agent-9"
    assert await repository.amark_running_as_killed(3_000) == []
