"""Import of a vibe-kanban SQLite database (``execlog import-vibe-kanban PATH [--assets DIR]``).

The source is opened read-only. Its schema, as vibe-kanban's migrations left it over time:

- ids are 16-byte BLOBs (UUIDs); timestamps are text, either SQLite's
  ``YYYY-MM-DD HH:MM:SS.fff`` (column defaults) or RFC 3339 with up to 9 fractional digits
  (written by the application);
- sessions are ``sessions`` (with ``coding_agent_turns``) in newer databases, ``task_attempts``
  (with ``executor_sessions``, whose ``session_id`` is the agent's) in older ones;
- ``execution_processes`` carry ``run_reason``, ``status``, ``exit_code``, times and the
  ``executor_action`` JSON (executor and prompt);
- legacy logs (``execution_process_logs``) come in two eras: one row per process holding every
  line (``execution_id`` was the primary key), then one row per pipe chunk; the newest
  versions write one JSONL file per process under the assets directory instead
  (``sessions/<2 chars>/<session id>/processes/<process id>.jsonl``).

Original ids are kept, so a re-import skips what is already there. Each process (row, turn and
JSONL) is imported in one transaction.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, insert, select

from execlog.errors import ExeclogError
from execlog.storage.legacy import LegacyLogStore
from execlog.storage.tables import coding_agent_turns, execution_processes, sessions

__all__ = ["ImportSummary", "VibeKanbanImportError", "import_vibe_kanban", "parse_timestamp"]

_LOG_ROWS_PER_INSERT: Final = 256
_ASSET_CHUNK_BYTES: Final = 1024 * 1024
_RUN_REASONS: Final = {
    "setupscript": "setupscript",
    "codingagent": "codingagent",
    "cleanupscript": "cleanupscript",
}
_STATUSES: Final = frozenset({"completed", "failed", "killed"})
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?"
)


class VibeKanbanImportError(ExeclogError):
    """The source is not a readable vibe-kanban database."""

    status = 400


@dataclass(slots=True)
class ImportSummary:
    sessions: int = 0
    processes: int = 0
    turns: int = 0
    log_rows: int = 0
    log_bytes: int = 0
    asset_files: int = 0
    imported_process_ids: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # reason → processes


def parse_timestamp(value: object) -> int | None:
    """Milliseconds since the epoch of either timestamp form (UTC when no offset is given)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    match = _TIMESTAMP.fullmatch(str(value).strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction = (match.group(7) or "").ljust(3, "0")[:3]
    moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    millis = int(moment.timestamp()) * 1000 + int(fraction)
    offset = match.group(8)
    if offset and offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        millis -= sign * (int(digits[:2]) * 60 + int(digits[2:])) * 60_000
    return millis


def _uuid_text(value: object) -> str | None:
    try:
        if isinstance(value, bytes | bytearray | memoryview):
            return str(uuid.UUID(bytes=bytes(value)))
        if isinstance(value, str):
            return str(uuid.UUID(value))
    except ValueError:
        return None
    return None


def _executor_name(value: object) -> str | None:
    """vibe-kanban's executor names (``CLAUDE_CODE``, ``claude-code``, ``ClaudeCode``) as
    execlog's (``claude-code``); others lower-case kebab (raw log only)."""
    if not isinstance(value, str) or not value:
        return None
    kebab = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", value).replace("_", "-").lower()
    return kebab[:32]


@dataclass(frozen=True, slots=True)
class _Action:
    executor: str | None
    prompt: str | None
    kind: str | None


def _parse_action(text: object) -> _Action:
    """Executor and prompt of an ``executor_action`` (``{"typ": {"type", "prompt", executor
    under executor_config / executor_profile_id / profile_variant_label / profile}}``)."""
    try:
        action = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        action = {}
    typ = action.get("typ") if isinstance(action, dict) else None
    if not isinstance(typ, dict):
        return _Action(None, None, None)
    kind = typ.get("type") if isinstance(typ.get("type"), str) else None
    executor: object = None
    for key in ("executor_config", "executor_profile_id", "profile_variant_label"):
        holder = typ.get(key)
        if isinstance(holder, dict):
            executor = holder.get("executor") or holder.get("profile")
            break
    if executor is None:
        executor = typ.get("profile") or typ.get("executor")
    if kind == "ScriptRequest":
        executor = "script"
    prompt = typ.get("prompt") if isinstance(typ.get("prompt"), str) else None
    return _Action(_executor_name(executor), prompt, kind)


class _Source:
    """The read-only vibe-kanban database and the shape of its schema."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise VibeKanbanImportError(f"{path}: no such database file")
        try:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as exc:
            raise VibeKanbanImportError(f"{path}: not a SQLite database ({exc})") from None
        if "execution_processes" not in tables:
            raise VibeKanbanImportError(
                f"{path}: not a vibe-kanban database (no execution_processes table)"
            )
        self.tables = tables
        self.process_columns = self._columns("execution_processes")
        self.session_era = "session_id" in self.process_columns and "sessions" in tables
        self.has_logs = "execution_process_logs" in tables

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}

    def sessions(self) -> dict[str, tuple[str | None, int | None, str | None]]:
        """session id → (executor, created_at, working dir)."""
        result: dict[str, tuple[str | None, int | None, str | None]] = {}
        if self.session_era:
            workspaces = "workspaces" in self.tables
            ref = "container_ref" in self._columns("workspaces") if workspaces else False
            query = (
                "SELECT s.id, s.executor, s.created_at, w.container_ref FROM sessions s "
                "LEFT JOIN workspaces w ON w.id = s.workspace_id"
                if ref
                else "SELECT id, executor, created_at, NULL FROM sessions"
            )
        elif "task_attempts" in self.tables:
            columns = self._columns("task_attempts")
            where = next((c for c in ("container_ref", "worktree_path") if c in columns), None)
            query = f"SELECT id, executor, created_at, {where or 'NULL'} FROM task_attempts"
        else:
            return result
        for raw_id, executor, created_at, working_dir in self.db.execute(query):
            session_id = _uuid_text(raw_id)
            if session_id is not None:
                result[session_id] = (
                    _executor_name(executor),
                    parse_timestamp(created_at),
                    working_dir if isinstance(working_dir, str) else None,
                )
        return result

    def turns(self) -> dict[str, tuple[str | None, str | None, str | None, str | None]]:
        """process id → (turn id, agent session id, prompt, summary)."""
        if "coding_agent_turns" in self.tables:
            query = (
                "SELECT id, execution_process_id, agent_session_id, prompt, summary "
                "FROM coding_agent_turns ORDER BY created_at"
            )
        elif "executor_sessions" in self.tables:
            summary = "summary" if "summary" in self._columns("executor_sessions") else "NULL"
            query = (
                f"SELECT id, execution_process_id, session_id, prompt, {summary} "
                "FROM executor_sessions ORDER BY created_at"
            )
        else:
            return {}
        result = {}
        for turn_id, process_id, agent_session_id, prompt, summary in self.db.execute(query):
            pid = _uuid_text(process_id)
            if pid is not None:
                result[pid] = (_uuid_text(turn_id), agent_session_id, prompt, summary)
        return result

    def count_processes(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM execution_processes").fetchone()[0])

    def processes(self) -> Iterator[dict[str, Any]]:
        session_column = "session_id" if self.session_era else "task_attempt_id"
        reason_column = "run_reason" if "run_reason" in self.process_columns else "process_type"
        action = "executor_action" if "executor_action" in self.process_columns else "NULL"
        cursor = self.db.execute(
            f"SELECT id, {session_column}, {reason_column}, {action}, status, exit_code, "
            "started_at, completed_at FROM execution_processes ORDER BY started_at, rowid"
        )
        names = (
            "id",
            "session_id",
            "run_reason",
            "executor_action",
            "status",
            "exit_code",
            "started_at",
            "completed_at",
        )
        for row in cursor:
            yield dict(zip(names, row, strict=True))

    def log_rows(self, raw_process_id: object) -> Iterator[tuple[str, object]]:
        """(logs, inserted_at) by insertion time, then row id - both eras alike."""
        if not self.has_logs:
            return
        cursor = self.db.execute(
            "SELECT logs, inserted_at FROM execution_process_logs WHERE execution_id = ? "
            "ORDER BY inserted_at, rowid",
            (raw_process_id,),
        )
        while rows := cursor.fetchmany(_LOG_ROWS_PER_INSERT):
            yield from rows


def _asset_chunks(path: Path) -> Iterator[str]:
    """A JSONL file in pieces of about 1 MiB cut after a newline (one row each)."""
    pending = b""
    with path.open("rb") as file:
        while block := file.read(_ASSET_CHUNK_BYTES):
            data = pending + block
            cut = data.rfind(b"\n")
            if cut < 0:
                pending = data
                continue
            pending = data[cut + 1 :]
            yield data[: cut + 1].decode("utf-8", "replace")
    if pending:
        yield pending.decode("utf-8", "replace")


def _asset_path(assets: Path, session_id: str, process_id: str) -> Path:
    return assets / "sessions" / session_id[:2] / session_id / "processes" / f"{process_id}.jsonl"


ProgressCallback = Callable[[str | None], None]


def import_vibe_kanban(
    engine: Engine,
    path: Path,
    *,
    assets: Path | None = None,
    on_total: Callable[[int], None] | None = None,
    on_process: ProgressCallback | None = None,
) -> ImportSummary:
    """Import sessions, processes, turns and legacy logs; a process already present is skipped.
    ``on_process`` is called after each source process (with its id when imported)."""
    source = _Source(path)
    summary = ImportSummary()
    legacy = LegacyLogStore(engine)
    try:
        if on_total is not None:
            on_total(source.count_processes())
        source_sessions = source.sessions()
        turns = source.turns()
        with engine.connect() as connection:
            known_sessions = set(connection.execute(select(sessions.c.id)).scalars())
            known_processes = set(connection.execute(select(execution_processes.c.id)).scalars())
        for row in source.processes():
            pid = _ProcessImport(source, legacy, summary, source_sessions, turns, assets).run(
                engine, row, known_sessions, known_processes
            )
            if on_process is not None:
                on_process(pid)
    finally:
        source.db.close()
    return summary


class _ProcessImport:
    """One source process: its session (first time), the process row, its turn, its logs."""

    def __init__(
        self,
        source: _Source,
        legacy: LegacyLogStore,
        summary: ImportSummary,
        source_sessions: dict[str, tuple[str | None, int | None, str | None]],
        turns: dict[str, tuple[str | None, str | None, str | None, str | None]],
        assets: Path | None,
    ) -> None:
        self._source = source
        self._legacy = legacy
        self._summary = summary
        self._sessions = source_sessions
        self._turns = turns
        self._assets = assets

    def run(
        self,
        engine: Engine,
        row: dict[str, Any],
        known_sessions: set[str],
        known_processes: set[str],
    ) -> str | None:
        skipped = self._summary.skipped
        pid = _uuid_text(row["id"])
        session_id = _uuid_text(row["session_id"])
        if pid is None:
            skipped["malformed process id"] += 1
            return None
        if pid in known_processes:
            skipped["already imported"] += 1
            return None
        if session_id is None or session_id not in self._sessions:
            skipped["its session is missing"] += 1
            return None
        started_at = parse_timestamp(row["started_at"])
        if started_at is None:
            skipped["unreadable started_at"] += 1
            return None
        action = _parse_action(row["executor_action"])
        session_executor, created_at, working_dir = self._sessions[session_id]
        executor = action.executor or session_executor or "script"
        run_reason = _RUN_REASONS.get(str(row["run_reason"]).lower(), "script")
        status = str(row["status"]).lower()
        completed_at = parse_timestamp(row["completed_at"])
        if status not in _STATUSES:
            # A process vibe-kanban still ran cannot be running here: it ended for execlog.
            status = "killed"
            completed_at = completed_at or started_at
        with engine.begin() as connection:
            if session_id not in known_sessions:
                connection.execute(
                    insert(sessions).values(
                        id=session_id,
                        executor=session_executor or executor,
                        working_dir=working_dir,
                        setup_script=None,
                        cleanup_script=None,
                        created_at=created_at if created_at is not None else started_at,
                    )
                )
                known_sessions.add(session_id)
                self._summary.sessions += 1
            connection.execute(
                insert(execution_processes).values(
                    id=pid,
                    session_id=session_id,
                    run_reason=run_reason,
                    executor_action=json.dumps(
                        {
                            "executor": executor,
                            "argv": [],
                            "imported_from": "vibe-kanban",
                            "vibe_kanban_run_reason": row["run_reason"],
                            "vibe_kanban_action": action.kind,
                        }
                    ),
                    status=status,
                    exit_code=row["exit_code"],
                    started_at=started_at,
                    completed_at=completed_at,
                )
            )
            self._import_turn(connection, pid, run_reason, action, started_at)
            self._import_logs(connection, row["id"], pid, session_id, started_at)
        known_processes.add(pid)
        self._summary.processes += 1
        self._summary.imported_process_ids.append(pid)
        return pid

    def _import_turn(
        self, connection: Connection, pid: str, run_reason: str, action: _Action, started_at: int
    ) -> None:
        turn = self._turns.get(pid)
        if turn is None and run_reason != "codingagent":
            return
        turn_id, agent_session_id, prompt, summary = turn or (None, None, None, None)
        connection.execute(
            insert(coding_agent_turns).values(
                id=turn_id or pid,
                execution_process_id=pid,
                agent_session_id=agent_session_id,
                prompt=prompt if prompt is not None else action.prompt,
                summary=summary,
                created_at=started_at,
                updated_at=started_at,
            )
        )
        self._summary.turns += 1

    def _import_logs(
        self, connection: Connection, raw_id: object, pid: str, session_id: str, started_at: int
    ) -> None:
        batch: list[tuple[str, int]] = []
        found = False
        for logs, inserted_at in self._source.log_rows(raw_id):
            found = True
            batch.append((logs, parse_timestamp(inserted_at) or started_at))
            if len(batch) >= _LOG_ROWS_PER_INSERT:
                self._append(connection, pid, batch)
                batch = []
        if batch:
            self._append(connection, pid, batch)
        if found or self._assets is None:
            return
        path = _asset_path(self._assets, session_id, pid)
        if not path.is_file():
            return
        self._summary.asset_files += 1
        for chunk in _asset_chunks(path):
            self._append(connection, pid, [(chunk, started_at)])

    def _append(self, connection: Connection, pid: str, rows: list[tuple[str, int]]) -> None:
        self._summary.log_bytes += self._legacy.append_rows(connection, pid, rows)
        self._summary.log_rows += len(rows)
