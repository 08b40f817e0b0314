"""Sessions, execution processes and coding-agent turns: the rows the API shows.

Low-rate bookkeeping (one write per process start, status change or captured session id), so
plain synchronous Core statements; the ``a``-prefixed methods are their awaitable forms, which
run them in a thread (callers never do).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Row, and_, bindparam, select, update

from execlog.storage.database import run_in_thread
from execlog.storage.tables import coding_agent_turns, execution_processes, sessions

__all__ = [
    "ProcessRecord",
    "ProcessRepository",
    "ProcessStatus",
    "RunReason",
    "SessionRecord",
]

ProcessStatus = Literal["running", "completed", "failed", "killed"]
RunReason = Literal["setupscript", "codingagent", "cleanupscript", "script"]


@dataclass(slots=True)
class ProcessRecord:
    id: str
    session_id: str
    run_reason: RunReason
    status: ProcessStatus
    exit_code: int | None
    started_at: int
    completed_at: int | None
    agent_session_id: str | None
    action: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None  # a coding-agent turn's prompt


@dataclass(slots=True)
class SessionRecord:
    id: str
    executor: str
    working_dir: str | None
    created_at: int
    setup_script: str | None = None
    cleanup_script: str | None = None
    processes: list[ProcessRecord] = field(default_factory=list)
    # Not stored: the supervisor sets it while the session's chain of processes is underway.
    active: bool = False


_PROCESS_COLUMNS = (
    execution_processes.c.id,
    execution_processes.c.session_id,
    execution_processes.c.run_reason,
    execution_processes.c.status,
    execution_processes.c.exit_code,
    execution_processes.c.started_at,
    execution_processes.c.completed_at,
    execution_processes.c.executor_action,
    coding_agent_turns.c.agent_session_id,
    coding_agent_turns.c.prompt,
)
_PROCESS_FROM = execution_processes.outerjoin(
    coding_agent_turns, coding_agent_turns.c.execution_process_id == execution_processes.c.id
)


def _process_from_row(row: Any) -> ProcessRecord:
    return ProcessRecord(
        id=row.id,
        session_id=row.session_id,
        run_reason=row.run_reason,
        status=row.status,
        exit_code=row.exit_code,
        started_at=row.started_at,
        completed_at=row.completed_at,
        agent_session_id=row.agent_session_id,
        action=json.loads(row.executor_action),
        prompt=row.prompt,
    )


class ProcessRepository:
    """CRUD for sessions, processes and turns; every method is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- sessions ---------------------------------------------------------------------------

    def insert_session(self, record: SessionRecord) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                sessions.insert().values(
                    id=record.id,
                    executor=record.executor,
                    working_dir=record.working_dir,
                    setup_script=record.setup_script,
                    cleanup_script=record.cleanup_script,
                    created_at=record.created_at,
                )
            )

    def fetch_session(self, session_id: str) -> SessionRecord | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(sessions).where(sessions.c.id == session_id)).first()
            if row is None:
                return None
            record = _session_from_row(row)
            record.processes = self._fetch_processes(connection, [session_id])
            return record

    def list_sessions(self, limit: int = 200) -> list[SessionRecord]:
        """Newest first, each with its processes in start order."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(sessions).order_by(sessions.c.created_at.desc(), sessions.c.id).limit(limit)
            ).all()
            records = [_session_from_row(row) for row in rows]
            by_id = {record.id: record for record in records}
            for process in self._fetch_processes(connection, list(by_id)):
                by_id[process.session_id].processes.append(process)
            return records

    def _fetch_processes(self, connection: Any, session_ids: Sequence[str]) -> list[ProcessRecord]:
        if not session_ids:
            return []
        rows = connection.execute(
            select(*_PROCESS_COLUMNS)
            .select_from(_PROCESS_FROM)
            .where(execution_processes.c.session_id.in_(session_ids))
            .order_by(execution_processes.c.started_at, execution_processes.c.id)
        ).all()
        return [_process_from_row(row) for row in rows]

    # --- processes --------------------------------------------------------------------------

    def insert_process(
        self,
        record: ProcessRecord,
        *,
        prompt: str | None,
        server_id: str | None = None,
        index_reserved: int = 0,
    ) -> None:
        """The process row and, for a coding-agent turn, its turn row (with the prompt);
        ``server_id`` owns it, indexes below ``index_reserved`` may be published on each
        channel (storage/ownership.py)."""
        with self._engine.begin() as connection:
            connection.execute(
                execution_processes.insert().values(
                    id=record.id,
                    session_id=record.session_id,
                    run_reason=record.run_reason,
                    executor_action=json.dumps(record.action),
                    status=record.status,
                    exit_code=record.exit_code,
                    started_at=record.started_at,
                    completed_at=record.completed_at,
                    server_id=server_id,
                    raw_index_reserved=index_reserved,
                    normalized_index_reserved=index_reserved,
                )
            )
            if record.run_reason == "codingagent":
                connection.execute(
                    coding_agent_turns.insert().values(
                        id=record.id,
                        execution_process_id=record.id,
                        agent_session_id=None,
                        prompt=prompt,
                        summary=None,
                        created_at=record.started_at,
                        updated_at=record.started_at,
                    )
                )

    def fetch_process(self, process_id: str) -> ProcessRecord | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(*_PROCESS_COLUMNS)
                .select_from(_PROCESS_FROM)
                .where(execution_processes.c.id == process_id)
            ).first()
            return None if row is None else _process_from_row(row)

    def fetch_processes_by_id(
        self, process_ids: Sequence[str]
    ) -> dict[str, ProcessRecord | ValueError]:
        """The processes of ``process_ids`` in one query (the backfill's groups, issue 11); a
        row whose ``executor_action`` does not parse is its error, so that one bad row does not
        hide the others. Unknown ids are absent."""
        if not process_ids:
            return {}
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(*_PROCESS_COLUMNS)
                .select_from(_PROCESS_FROM)
                .where(execution_processes.c.id.in_(process_ids))
            ).all()
        records: dict[str, ProcessRecord | ValueError] = {}
        for row in rows:
            try:
                records[row.id] = _process_from_row(row)
            except ValueError as exc:
                records[row.id] = exc
        return records

    def update_process_status(
        self, process_id: str, status: ProcessStatus, exit_code: int | None, completed_at: int
    ) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(execution_processes)
                .where(execution_processes.c.id == process_id)
                .values(status=status, exit_code=exit_code, completed_at=completed_at)
            )

    def mark_running_as_killed(self, completed_at: int) -> list[str]:
        """Processes a previous server left ``running``: now ``killed``. Returns their ids."""
        with self._engine.begin() as connection:
            ids = list(
                connection.execute(
                    select(execution_processes.c.id).where(
                        execution_processes.c.status == "running"
                    )
                ).scalars()
            )
            if ids:
                connection.execute(
                    update(execution_processes)
                    .where(execution_processes.c.id.in_(ids))
                    .values(status="killed", completed_at=completed_at)
                )
            return ids

    # --- turns ------------------------------------------------------------------------------

    def set_agent_session_id(self, process_id: str, agent_session_id: str, now: int) -> None:
        self._update_turn(process_id, now, agent_session_id=agent_session_id)

    def set_missing_agent_session_id(
        self, process_id: str, agent_session_id: str, now: int
    ) -> bool:
        """The turn's ``agent_session_id`` unless it has one (a backfill found it in the JSONL);
        True when it was set."""
        with self._engine.begin() as connection:
            result = connection.execute(
                update(coding_agent_turns)
                .where(
                    (coding_agent_turns.c.execution_process_id == process_id)
                    & coding_agent_turns.c.agent_session_id.is_(None)
                )
                .values(updated_at=now, agent_session_id=agent_session_id)
            )
            return bool(result.rowcount)

    def set_missing_agent_session_ids(
        self, connection: Connection, found: Sequence[tuple[str, str]], now: int
    ) -> None:
        """``set_missing_agent_session_id`` of many ``(process id, agent session id)`` pairs,
        inside the caller's transaction (the backfill's groups)."""
        if not found:
            return
        turns = coding_agent_turns.c
        connection.execute(
            update(coding_agent_turns)
            .where(
                (turns.execution_process_id == bindparam("pid")) & turns.agent_session_id.is_(None)
            )
            .values(updated_at=now, agent_session_id=bindparam("sid")),
            [{"pid": pid, "sid": sid} for pid, sid in found],
        )

    def set_summary(self, process_id: str, summary: str, now: int) -> None:
        self._update_turn(process_id, now, summary=summary)

    def _update_turn(self, process_id: str, now: int, **values: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(coding_agent_turns)
                .where(coding_agent_turns.c.execution_process_id == process_id)
                .values(updated_at=now, **values)
            )

    def fetch_latest_agent_session_id(self, session_id: str) -> str | None:
        """The newest non-null ``agent_session_id`` of the session's turns (follow-up resume)."""
        with self._engine.connect() as connection:
            return connection.execute(
                select(coding_agent_turns.c.agent_session_id)
                .select_from(_PROCESS_FROM)
                .where(
                    and_(
                        execution_processes.c.session_id == session_id,
                        coding_agent_turns.c.agent_session_id.is_not(None),
                    )
                )
                .order_by(
                    execution_processes.c.started_at.desc(), coding_agent_turns.c.updated_at.desc()
                )
                .limit(1)
            ).scalar()

    def fetch_turn(self, process_id: str) -> dict[str, Any] | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(coding_agent_turns).where(
                    coding_agent_turns.c.execution_process_id == process_id
                )
            ).first()
            return None if row is None else dict(row._mapping)

    # --- awaitable forms (the thread boundary is here, not in callers) ----------------------

    async def ainsert_session(self, record: SessionRecord) -> None:
        await run_in_thread(self.insert_session, record)

    async def afetch_session(self, session_id: str) -> SessionRecord | None:
        return await run_in_thread(self.fetch_session, session_id)

    async def alist_sessions(self, limit: int = 200) -> list[SessionRecord]:
        return await run_in_thread(self.list_sessions, limit)

    async def ainsert_process(
        self,
        record: ProcessRecord,
        *,
        prompt: str | None,
        server_id: str | None = None,
        index_reserved: int = 0,
    ) -> None:
        await run_in_thread(
            self.insert_process,
            record,
            prompt=prompt,
            server_id=server_id,
            index_reserved=index_reserved,
        )

    async def afetch_process(self, process_id: str) -> ProcessRecord | None:
        return await run_in_thread(self.fetch_process, process_id)

    async def aupdate_process_status(
        self, process_id: str, status: ProcessStatus, exit_code: int | None, completed_at: int
    ) -> None:
        await run_in_thread(self.update_process_status, process_id, status, exit_code, completed_at)

    async def amark_running_as_killed(self, completed_at: int) -> list[str]:
        return await run_in_thread(self.mark_running_as_killed, completed_at)

    async def aset_agent_session_id(self, process_id: str, agent_session_id: str, now: int) -> None:
        await run_in_thread(self.set_agent_session_id, process_id, agent_session_id, now)

    async def aset_summary(self, process_id: str, summary: str, now: int) -> None:
        await run_in_thread(self.set_summary, process_id, summary, now)

    async def afetch_latest_agent_session_id(self, session_id: str) -> str | None:
        return await run_in_thread(self.fetch_latest_agent_session_id, session_id)


def _session_from_row(row: Row[Any]) -> SessionRecord:
    return SessionRecord(
        id=row.id,
        executor=row.executor,
        working_dir=row.working_dir,
        created_at=row.created_at,
        setup_script=row.setup_script,
        cleanup_script=row.cleanup_script,
    )
