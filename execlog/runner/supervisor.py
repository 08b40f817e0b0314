"""Runs sessions: each session is a chain of processes (setup script → agent or command →
cleanup script); follow-ups resume the agent; stop kills a process group; orphans of a previous
server are marked ``killed`` at start-up.

A process leaves ``running`` only after its pipeline has committed every entry and sent
``finished`` on both channels (CONTRACT.md, "Concepts").
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field

from execlog.approvals import ApprovalService
from execlog.config import Settings
from execlog.errors import (
    ConflictError,
    InvalidRequestError,
    ProcessNotFoundError,
    SessionNotFoundError,
)
from execlog.events import EventBus
from execlog.live.registry import MsgStoreRegistry
from execlog.protocol import (
    encode_legacy_stream_line,
    encode_normalized_entry,
    encode_raw_entry,
    now_ms,
)
from execlog.resources import process_to_json, session_to_json
from execlog.runner.child import ChildProcess, ChildStartError
from execlog.runner.executors import build_argv, create_normalizer
from execlog.runner.normalizers.base import error_message_entry, system_message_entry
from execlog.runner.pipeline import ProcessPipeline
from execlog.storage.entries import EntryRow, EntryStore
from execlog.storage.legacy import LegacyLogStore
from execlog.storage.processes import (
    ProcessRecord,
    ProcessRepository,
    ProcessStatus,
    RunReason,
    SessionRecord,
)
from execlog.storage.writer import LogWriter

__all__ = ["SessionSpec", "Supervisor"]

logger = logging.getLogger(__name__)

ORPHAN_NOTE = "execlog: the server stopped while this process was running; marked killed"


@dataclass(frozen=True, slots=True)
class SessionSpec:
    executor: str
    prompt: str | None = None
    command: list[str] | None = None
    working_dir: str | None = None
    setup_script: str | None = None
    cleanup_script: str | None = None


@dataclass(frozen=True, slots=True)
class _Step:
    run_reason: RunReason
    argv: list[str]
    prompt: str | None = None


@dataclass(slots=True)
class _Running:
    record: ProcessRecord
    pipeline: ProcessPipeline
    child: ChildProcess | None = None
    stop_requested: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        repository: ProcessRepository,
        registry: MsgStoreRegistry,
        writer: LogWriter,
        bus: EventBus,
        approvals: ApprovalService,
    ) -> None:
        self._settings = settings
        self._repository = repository
        self._registry = registry
        self._writer = writer
        self._bus = bus
        self._approvals = approvals
        self._running: dict[str, _Running] = {}
        self._chains: dict[str, asyncio.Task[None]] = {}
        self.server_url: str | None = None

    # --- sessions ---------------------------------------------------------------------------

    async def create_session(self, spec: SessionSpec) -> SessionRecord:
        if spec.working_dir is not None and not os.path.isdir(spec.working_dir):
            raise InvalidRequestError(f"working_dir {spec.working_dir!r} is not a directory")
        main_step = self._agent_step(spec.executor, spec.prompt, spec.command, resume=None)
        session = SessionRecord(
            id=str(uuid.uuid4()),
            executor=spec.executor,
            working_dir=spec.working_dir,
            created_at=now_ms(),
            setup_script=spec.setup_script,
            cleanup_script=spec.cleanup_script,
        )
        await asyncio.to_thread(self._repository.insert_session, session)
        steps = []
        if spec.setup_script:
            steps.append(_Step("setupscript", _shell_argv(spec.setup_script)))
        steps.append(main_step)
        steps.extend(self._cleanup_steps(session))
        first = await self._start_step(session, steps[0])
        session.processes.append(first)
        session.active = True
        self._bus.publish("session_created", session=session_to_json(session))
        self._chains[session.id] = asyncio.create_task(self._run_chain(session, first, steps[1:]))
        return session

    async def follow_up(self, session_id: str, prompt: str) -> ProcessRecord:
        session = await asyncio.to_thread(self._repository.fetch_session, session_id)
        if session is None:
            raise SessionNotFoundError(session_id)
        if session.executor == "script":
            raise InvalidRequestError("a script session has no agent to follow up")
        if any(p.status == "running" for p in session.processes) or self._chain_active(session_id):
            raise ConflictError(f"session {session_id} has a process running; wait or stop it")
        resume = await asyncio.to_thread(self._repository.fetch_latest_agent_session_id, session_id)
        step = self._agent_step(session.executor, prompt, None, resume=resume)
        first = await self._start_step(session, step)
        self._chains[session_id] = asyncio.create_task(
            self._run_chain(session, first, self._cleanup_steps(session))
        )
        return first

    async def list_sessions(self) -> list[SessionRecord]:
        sessions = await asyncio.to_thread(self._repository.list_sessions)
        for session in sessions:
            session.processes = [self._live_view(p) for p in session.processes]
            session.active = self._chain_active(session.id)
        return sessions

    async def get_session(self, session_id: str) -> SessionRecord:
        session = await asyncio.to_thread(self._repository.fetch_session, session_id)
        if session is None:
            raise SessionNotFoundError(session_id)
        session.processes = [self._live_view(p) for p in session.processes]
        session.active = self._chain_active(session.id)
        return session

    def _live_view(self, record: ProcessRecord) -> ProcessRecord:
        """A running process's in-memory record (its agent session id may not be stored yet)."""
        running = self._running.get(record.id)
        return record if running is None else running.record

    async def get_process(self, process_id: str) -> ProcessRecord:
        running = self._running.get(process_id)
        if running is not None:
            return running.record
        record = await asyncio.to_thread(self._repository.fetch_process, process_id)
        if record is None:
            raise ProcessNotFoundError(process_id)
        return record

    def is_running(self, process_id: str) -> bool:
        return process_id in self._running

    def report_write_error(self, process_id: str, reason: str) -> None:
        """The writer's ``on_rejected``: a write of this process could not be stored."""
        running = self._running.get(process_id)
        if running is not None:
            running.pipeline.report_write_error(reason)

    async def stop(self, process_id: str) -> ProcessRecord:
        """SIGTERM to the process group, SIGKILL after the grace period; the chain ends here."""
        running = self._running.get(process_id)
        if running is None:
            return await self.get_process(process_id)
        running.stop_requested = True
        if running.child is not None:
            await running.child.stop(self._settings.stop_grace_seconds)
        await running.done.wait()
        return running.record

    async def shutdown(self) -> None:
        """Stop every running process (they end ``killed``) and let chains finish."""
        await asyncio.gather(*(self.stop(pid) for pid in list(self._running)))
        chains = [task for task in self._chains.values() if not task.done()]
        for task in chains:
            task.cancel()
        await asyncio.gather(*chains, return_exceptions=True)

    # --- orphans ----------------------------------------------------------------------------

    def mark_orphans(self, entries: EntryStore, legacy: LegacyLogStore) -> list[str]:
        """Start-up (sync): processes left ``running`` by a crash become ``killed``, each with a
        system entry saying why, at the next index of each channel."""
        ids = self._repository.mark_running_as_killed(now_ms())
        for process_id in ids:
            rows = [
                EntryRow(
                    process_id,
                    "raw",
                    entries.next_index(process_id, "raw"),
                    encode_raw_entry("stderr", ORPHAN_NOTE),
                ),
                EntryRow(
                    process_id,
                    "normalized",
                    entries.next_index(process_id, "normalized"),
                    encode_normalized_entry(system_message_entry(ORPHAN_NOTE)),
                ),
            ]
            if self._writer.writes_entries:
                entries.upsert_entries_now(rows)
            if self._writer.writes_legacy:
                legacy.append_lines_now(
                    process_id, [encode_legacy_stream_line("stderr", ORPHAN_NOTE)]
                )
        return ids

    # --- internals --------------------------------------------------------------------------

    def _agent_step(
        self, executor: str, prompt: str | None, command: list[str] | None, *, resume: str | None
    ) -> _Step:
        argv = build_argv(
            executor, self._settings, prompt=prompt, command=command, resume_session_id=resume
        )
        run_reason: RunReason = "script" if executor == "script" else "codingagent"
        return _Step(run_reason, argv, prompt)

    def _cleanup_steps(self, session: SessionRecord) -> list[_Step]:
        if not session.cleanup_script:
            return []
        return [_Step("cleanupscript", _shell_argv(session.cleanup_script))]

    def _chain_active(self, session_id: str) -> bool:
        task = self._chains.get(session_id)
        return task is not None and not task.done()

    async def _run_chain(
        self, session: SessionRecord, first: ProcessRecord, rest: list[_Step]
    ) -> None:
        """Setup must succeed for the agent to run; cleanup runs after the agent whatever its
        result, unless the agent was stopped. Its end is published (``session_updated``,
        ``active`` false) so that clients follow the chain without knowing these rules."""
        try:
            current = first
            for step in rest:
                await self._wait_done(current)
                if current.status == "killed":
                    return
                if current.run_reason == "setupscript" and current.status != "completed":
                    return
                current = await self._start_step(session, step)
            await self._wait_done(current)
        finally:
            await self._publish_chain_end(session.id)

    async def _publish_chain_end(self, session_id: str) -> None:
        try:
            record = await asyncio.to_thread(self._repository.fetch_session, session_id)
        except Exception:  # the database is down: clients still learn that the chain ended
            logger.warning("session %s: could not read it for its end event", session_id)
            record = None
        shown = session_to_json(record) if record is not None else {"id": session_id}
        # This task is still running, so _chain_active would still say True.
        self._bus.publish("session_updated", session={**shown, "active": False})

    async def _wait_done(self, record: ProcessRecord) -> None:
        running = self._running.get(record.id)
        if running is not None:
            await running.done.wait()

    async def _start_step(self, session: SessionRecord, step: _Step) -> ProcessRecord:
        process_id = str(uuid.uuid4())
        record = ProcessRecord(
            id=process_id,
            session_id=session.id,
            run_reason=step.run_reason,
            status="running",
            exit_code=None,
            started_at=now_ms(),
            completed_at=None,
            agent_session_id=None,
            action={"executor": session.executor, "argv": step.argv},
            prompt=step.prompt,
        )
        # Stores first: once the row is visible as running, its streams must be live.
        raw, normalized = self._registry.create(
            process_id, first_index_raw=0, first_index_normalized=0
        )
        try:
            await asyncio.to_thread(self._repository.insert_process, record, prompt=step.prompt)
        except BaseException:
            self._registry.remove(process_id)
            raise
        normalizer = (
            create_normalizer(session.executor) if step.run_reason == "codingagent" else None
        )
        pipeline = ProcessPipeline(
            process_id,
            raw,
            normalized,
            self._writer,
            normalizer,
            on_session_id=lambda sid: self._record_agent_session_id(record, sid),
            on_summary=lambda text: asyncio.to_thread(
                self._repository.set_summary, process_id, text, now_ms()
            ),
        )
        running = _Running(record, pipeline)
        self._running[process_id] = running
        self._approvals.attach(pipeline)
        self._bus.publish("process_updated", process=process_to_json(record))
        try:
            running.child = await ChildProcess.start(
                step.argv,
                cwd=session.working_dir,
                env=self._child_env(session, process_id),
                on_output=pipeline.handle_output,
                on_partial_line=pipeline.handle_partial_line,
                max_line_bytes=self._settings.max_line_bytes,
            )
        except ChildStartError as exc:
            await pipeline.add_entry(error_message_entry(str(exc)), raw_line=f"execlog: {exc}")
            await self._complete(running, "failed", None)
            return record
        if step.run_reason == "codingagent" and running.child.stdin is not None:
            # Agents run with -p/exec read a piped stdin to EOF before they start: give them EOF.
            running.child.stdin.close()
        running.watcher = asyncio.create_task(self._watch(running))
        return record

    async def _watch(self, running: _Running) -> None:
        assert running.child is not None
        try:
            exit_ = await running.child.wait()
            status: ProcessStatus = "killed" if running.stop_requested else exit_.status
            await self._complete(running, status, exit_.exit_code)
        except Exception:  # never leave a process "running" because bookkeeping failed
            logger.exception("process %s: completion failed", running.record.id)
            if not running.done.is_set():
                await self._complete(running, "failed", None)

    async def _complete(
        self, running: _Running, status: ProcessStatus, exit_code: int | None
    ) -> None:
        record = running.record
        try:
            await running.pipeline.finish()
        finally:
            record.status = status
            record.exit_code = exit_code
            record.completed_at = now_ms()
            await asyncio.to_thread(
                self._repository.update_process_status,
                record.id,
                status,
                exit_code,
                record.completed_at,
            )
            self._approvals.detach(record.id)
            self._registry.remove(record.id)
            self._running.pop(record.id, None)
            running.done.set()
            self._bus.publish("process_updated", process=process_to_json(record))

    async def _record_agent_session_id(self, record: ProcessRecord, agent_session_id: str) -> None:
        record.agent_session_id = agent_session_id
        await asyncio.to_thread(
            self._repository.set_agent_session_id, record.id, agent_session_id, now_ms()
        )
        self._bus.publish("process_updated", process=process_to_json(record))

    def _child_env(self, session: SessionRecord, process_id: str) -> dict[str, str]:
        env = dict(os.environ)
        env["EXECLOG_PROCESS_ID"] = process_id
        env["EXECLOG_SESSION_ID"] = session.id
        if self.server_url is not None:
            env["EXECLOG_SERVER_URL"] = self.server_url
        if self._settings.auth_token is not None:
            env["EXECLOG_AUTH_TOKEN"] = self._settings.auth_token  # the approval hook needs it
        return env


def _shell_argv(script: str) -> list[str]:
    shell = shutil.which("bash") or "/bin/sh"
    return [shell, "-c", script]
