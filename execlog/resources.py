"""JSON shapes of sessions and processes as the API and the event stream show them
(CONTRACT.md, "Sessions and processes"); timestamps as RFC 3339 UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from execlog.storage.processes import ProcessRecord, SessionRecord

__all__ = ["format_ms", "process_to_json", "session_to_json"]


def format_ms(value: int | None) -> str | None:
    if value is None:
        return None
    moment = datetime.fromtimestamp(value / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def process_to_json(process: ProcessRecord) -> dict[str, Any]:
    """Besides the contract's keys: ``prompt`` (a coding-agent turn's) and ``command`` (the argv
    of any other process), so that a listing can say what each process is."""
    argv = process.action.get("argv") if process.run_reason != "codingagent" else None
    return {
        "id": process.id,
        "session_id": process.session_id,
        "run_reason": process.run_reason,
        "status": process.status,
        "exit_code": process.exit_code,
        "started_at": format_ms(process.started_at),
        "completed_at": format_ms(process.completed_at),
        "agent_session_id": process.agent_session_id,
        "prompt": process.prompt,
        "command": argv,
    }


def session_to_json(session: SessionRecord) -> dict[str, Any]:
    """Besides the contract's keys: ``active``, true while the server's chain of processes for
    the session (setup, agent or command, cleanup) is underway - a client follows the chain by
    it instead of knowing its rules."""
    return {
        "id": session.id,
        "executor": session.executor,
        "working_dir": session.working_dir,
        "created_at": format_ms(session.created_at),
        "active": session.active,
        "processes": [process_to_json(p) for p in session.processes],
    }
