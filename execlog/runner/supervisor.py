"""Runs sessions: each session is a chain of processes (setup script → agent or command →
cleanup script); follow-ups resume the agent; stop kills a process group. Each running process
lives in the runner's one ``ProcessRegistry``.

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
from typing import Final

from execlog.config import Settings
from execlog.conversation import (
    error_message_entry,
)
from execlog.errors import (
    ConflictError,
    InvalidRequestError,
    ProcessNotFoundError,
    SessionNotFoundError,
)
from execlog.events import EventBus, ProcessUpdated, SessionCreated, SessionEvent, SessionUpdated
from execlog.live.msg_store import MsgStore
from execlog.protocol import (
    Channel,
    now_ms,
)
from execlog.runner.child import ChildProcess, ChildStartError
from execlog.runner.executors import build_argv, create_normalizer
from execlog.runner.pipeline import ProcessPipeline
from execlog.runner.registry import ProcessRegistry, RunningProcess
from execlog.runner.reservations import FIRST_BLOCK, IndexReservation
from execlog.storage.backfills import BackfillLedger, LedgerRow
from execlog.storage.database import DATABASE_UNAVAILABLE_ERRORS, run_in_thread
from execlog.storage.ownership import OwnershipStore
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

# Back-off of storing a process's end while the database is unavailable.
_END_RETRY_FIRST_SECONDS: Final = 0.05
_END_RETRY_MAX_SECONDS: Final = 2.0


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


@dataclass(eq=False, slots=True)
class _Chain:
    """One session's chain of processes, run by ``task``. ``current`` is the in-memory record
    of the process it waits on (None while a follow-up starts its first one): it leaves
    ``running`` before the chain has recorded and published that. ``moved`` is set, and
    replaced, each time the chain starts a process or ends."""

    current: ProcessRecord | None = None
    task: asyncio.Task[None] | None = None
    ended: bool = False
    moved: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def running_process(self) -> bool:
        return self.current is None or self.current.status == "running"

    def move(self, current: ProcessRecord | None) -> None:
        if current is not None:
            self.current = current
        else:
            self.ended = True
        self.moved.set()
        self.moved = asyncio.Event()


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        repository: ProcessRepository,
        registry: ProcessRegistry,
        writer: LogWriter,
        bus: EventBus[SessionEvent],
        ownership: OwnershipStore,
        server_id: str,
        ledger: BackfillLedger,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._ownership = ownership
        self._server_id = server_id
        self._repository = repository
        self._registry = registry
        self._writer = writer
        self._bus = bus
        # The sessions whose chain has not ended (a chain removes itself when it ends).
        self._chains: dict[str, _Chain] = {}
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
        await self._repository.ainsert_session(session)
        steps = []
        if spec.setup_script:
            steps.append(_Step("setupscript", _shell_argv(spec.setup_script)))
        steps.append(main_step)
        steps.extend(self._cleanup_steps(session))
        first = await self._start_step(session, steps[0])
        session.processes.append(first)
        session.active = True
        self._bus.publish(SessionCreated.of(session))
        chain = _Chain(first)
        self._chains[session.id] = chain
        chain.task = asyncio.create_task(self._run_chain(session, chain, steps[1:]))
        return session

    async def follow_up(self, session_id: str, prompt: str) -> ProcessRecord:
        session = await self._repository.afetch_session(session_id)
        if session is None:
            raise SessionNotFoundError(session_id)
        if session.executor == "script":
            raise InvalidRequestError("a script session has no agent to follow up")
        if session_id in self._chains:
            if not await self._wait_for_chain_end(session_id):
                raise ConflictError(f"session {session_id} has a process running; wait or stop it")
            # Re-read: the processes' stored statuses are those of before the chain ended.
            session = await self._repository.afetch_session(session_id)
            if session is None:
                raise SessionNotFoundError(session_id)
        if session_id in self._chains or any(
            self._live_view(p).status == "running" for p in session.processes
        ):
            raise ConflictError(f"session {session_id} has a process running; wait or stop it")
        # Claimed before the first await: a second follow-up sent meanwhile gets 409.
        chain = _Chain()
        self._chains[session_id] = chain
        try:
            resume = await self._repository.afetch_latest_agent_session_id(session_id)
            step = self._agent_step(session.executor, prompt, None, resume=resume)
            first = await self._start_step(session, step)
        except BaseException:
            self._end_chain(session_id, chain)
            raise
        chain.move(first)
        chain.task = asyncio.create_task(
            self._run_chain(session, chain, self._cleanup_steps(session))
        )
        return first

    async def list_sessions(self) -> list[SessionRecord]:
        sessions = await self._repository.alist_sessions()
        for session in sessions:
            session.processes = [self._live_view(p) for p in session.processes]
            session.active = self._chain_active(session.id)
        return sessions

    async def get_session(self, session_id: str) -> SessionRecord:
        session = await self._repository.afetch_session(session_id)
        if session is None:
            raise SessionNotFoundError(session_id)
        session.processes = [self._live_view(p) for p in session.processes]
        session.active = self._chain_active(session.id)
        return session

    def _live_view(self, record: ProcessRecord) -> ProcessRecord:
        """A running process's in-memory record (its agent session id may not be stored yet)."""
        running = self._registry.get(record.id)
        return record if running is None else running.record

    async def get_process(self, process_id: str) -> ProcessRecord:
        running = self._registry.get(process_id)
        if running is not None:
            return running.record
        record = await self._repository.afetch_process(process_id)
        if record is None:
            raise ProcessNotFoundError(process_id)
        return record

    def is_running(self, process_id: str) -> bool:
        return process_id in self._registry

    def report_write_error(self, process_id: str, reason: str) -> None:
        """The writer's ``on_rejected``: a write of this process could not be stored."""
        running = self._registry.get(process_id)
        if running is not None:
            running.pipeline.report_write_error(reason)

    async def stop(self, process_id: str) -> ProcessRecord:
        """SIGTERM to the process group, SIGKILL after the grace period; the chain ends here."""
        running = self._registry.get(process_id)
        if running is None:
            return await self.get_process(process_id)
        running.stop_requested = True
        if running.child is not None:
            await running.child.stop(self._settings.stop_grace_seconds)
        await running.done.wait()
        return running.record

    async def shutdown(self) -> None:
        """Stop every running process (they end ``killed``) and let chains finish."""
        await asyncio.gather(*(self.stop(running.process_id) for running in self._registry))
        chains = [c.task for c in self._chains.values() if c.task is not None and not c.task.done()]
        for task in chains:
            task.cancel()
        await asyncio.gather(*chains, return_exceptions=True)

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
        return session_id in self._chains

    async def _wait_for_chain_end(self, session_id: str) -> bool:
        """Whether the session's chain has ended, waiting while it only settles: its process
        is reported ended (the in-memory record leaves ``running`` first) while the chain
        still stores that and publishes its end. A follow-up sent then got 409 (a flaky test).
        No wait for a process the chain runs or starts (a cleanup script), nor longer than the
        database deadline, which bounds each step of settling."""
        chain = self._chains.get(session_id)
        if chain is None:
            return True
        try:
            async with asyncio.timeout(self._settings.db_timeout_seconds):
                while not chain.ended:
                    if chain.running_process:
                        return False
                    logger.debug("session %s: a follow-up waits for its chain to end", session_id)
                    await chain.moved.wait()
        except TimeoutError:
            return False
        return True

    def _end_chain(self, session_id: str, chain: _Chain) -> None:
        if self._chains.get(session_id) is chain:
            del self._chains[session_id]
        chain.move(None)

    async def _run_chain(self, session: SessionRecord, chain: _Chain, rest: list[_Step]) -> None:
        """Setup must succeed for the agent to run; cleanup runs after the agent whatever its
        result, unless the agent was stopped. Its end is published (``session_updated``,
        ``active`` false) so that clients follow the chain without knowing these rules."""
        try:
            assert chain.current is not None
            current = chain.current
            for step in rest:
                await self._wait_done(current)
                if current.status == "killed":
                    return
                if current.run_reason == "setupscript" and current.status != "completed":
                    return
                current = await self._start_step(session, step)
                chain.move(current)
            await self._wait_done(current)
        finally:
            try:
                await self._publish_chain_end(session.id)
            finally:
                self._end_chain(session.id, chain)

    async def _publish_chain_end(self, session_id: str) -> None:
        try:
            record = await self._repository.afetch_session(session_id)
        except Exception:  # the database is down: clients still learn that the chain ended
            logger.warning("session %s: could not read it for its end event", session_id)
            record = None
        # The chain is still registered, so _chain_active would still say True.
        self._bus.publish(SessionUpdated.ended(session_id, record))

    async def _wait_done(self, record: ProcessRecord) -> None:
        running = self._registry.get(record.id)
        if running is not None:
            await running.done.wait()

    async def _start_step(self, session: SessionRecord, step: _Step) -> ProcessRecord:
        running = await self._open_process(session, step)
        await self._spawn_child(session, step, running)
        return running.record

    async def _open_process(self, session: SessionRecord, step: _Step) -> RunningProcess:
        """Register the process (stores, pipeline) and store its row as ``running``."""
        record = ProcessRecord(
            id=str(uuid.uuid4()),
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
        normalizer = (
            create_normalizer(session.executor) if step.run_reason == "codingagent" else None
        )

        def build_pipeline(raw: MsgStore, normalized: MsgStore) -> ProcessPipeline:
            return ProcessPipeline(
                record.id,
                raw,
                normalized,
                self._writer,
                normalizer,
                on_session_id=lambda sid: self._record_agent_session_id(record, sid),
                on_summary=lambda text: self._repository.aset_summary(record.id, text, now_ms()),
            )

        # Registered first: once the row is visible as running, its streams must be live.
        running = self._registry.open(record, build_pipeline)
        stores: tuple[tuple[Channel, MsgStore], ...] = (
            ("raw", running.raw),
            ("normalized", running.normalized),
        )
        for channel, store in stores:
            reservation = IndexReservation(self._ownership, record.id, channel, FIRST_BLOCK)
            store.admit = reservation.admit
        try:
            await self._repository.ainsert_process(
                record, prompt=step.prompt, server_id=self._server_id, index_reserved=FIRST_BLOCK
            )
        except BaseException:
            self._registry.close(record.id)
            raise
        self._bus.publish(ProcessUpdated.of(record))
        return running

    async def _spawn_child(
        self, session: SessionRecord, step: _Step, running: RunningProcess
    ) -> None:
        """Start the child with the pipeline as its output sink, and watch it to its end."""
        try:
            running.child = await ChildProcess.start(
                step.argv,
                cwd=session.working_dir,
                env=self._child_env(session, running.process_id),
                on_output=running.pipeline.handle_output,
                on_partial_line=running.pipeline.handle_partial_line,
                max_line_bytes=self._settings.max_line_bytes,
            )
        except ChildStartError as exc:
            await running.pipeline.add_entry(
                error_message_entry(str(exc)), raw_line=f"execlog: {exc}"
            )
            await self._complete(running, "failed", None)
            return
        child = running.child
        # Its pid, group and start time: a server claiming it after a crash can stop it safely.
        try:
            await self._ownership.arecord_spawn(
                running.process_id, child.pid, child.pid, child.start_time
            )
        except Exception as exc:  # bookkeeping for a crash: never fail the process over it
            logger.warning("process %s: pid not stored: %s", running.process_id, exc)
        if step.run_reason == "codingagent" and running.child.stdin is not None:
            # Agents run with -p/exec read a piped stdin to EOF before they start: give them EOF.
            running.child.stdin.close()
        running.watcher = asyncio.create_task(self._watch(running))

    async def _watch(self, running: RunningProcess) -> None:
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
        self, running: RunningProcess, status: ProcessStatus, exit_code: int | None
    ) -> None:
        record = running.record
        try:
            await running.pipeline.finish()
            await self._record_complete_history(running)
        finally:
            record.status = status
            record.exit_code = exit_code
            record.completed_at = completed_at = now_ms()
            try:
                await self._store_end(record, completed_at)
            finally:
                self._registry.close(record.id)
                running.done.set()
                self._bus.publish(ProcessUpdated.of(record))

    async def _store_end(self, record: ProcessRecord, completed_at: int) -> None:
        """Store how the process ended, whatever the database does meanwhile: an unavailable
        database (locked past its deadline, down) is retried with back-off, so an exit is never
        turned into "failed" nor left "running" in the database."""
        delay = _END_RETRY_FIRST_SECONDS
        while True:
            try:
                await self._repository.aupdate_process_status(
                    record.id, record.status, record.exit_code, completed_at
                )
                return
            except DATABASE_UNAVAILABLE_ERRORS as exc:
                logger.warning(
                    "process %s: its end (%s) is not stored yet, retrying in %.2fs: %s",
                    record.id,
                    record.status,
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _END_RETRY_MAX_SECONDS)

    async def _record_complete_history(self, running: RunningProcess) -> None:
        """In ``dual`` mode the entry rows and the JSONL were committed together: tell the
        backfill ledger so, or the first read (and every start-up) of this process would replay
        its whole JSONL to find nothing to do, and retention would never clean it."""
        if not (self._writer.writes_entries and self._writer.writes_legacy):
            return
        raw_count, normalized_count = running.raw.next_index, running.normalized.next_index
        row = LedgerRow(running.process_id, raw_count, normalized_count, 0, 0, now_ms())
        try:
            await run_in_thread(self._ledger.record, row)
        except Exception as exc:  # the backfill then checks the process itself: never fatal
            logger.warning("process %s: backfill ledger not recorded: %s", running.process_id, exc)

    async def _record_agent_session_id(self, record: ProcessRecord, agent_session_id: str) -> None:
        record.agent_session_id = agent_session_id
        await self._repository.aset_agent_session_id(record.id, agent_session_id, now_ms())
        self._bus.publish(ProcessUpdated.of(record))

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
