"""JSON views of the API: sessions and processes (CONTRACT.md, "Sessions and processes"),
approvals, and the session events the bus carries; timestamps as RFC 3339 UTC."""

from __future__ import annotations

from typing import Any

from execlog.approvals import Approval
from execlog.events import (
    ApprovalUpdated,
    EventsMissed,
    ProcessUpdated,
    SessionCreated,
    SessionEvent,
    SessionUpdated,
)
from execlog.protocol import encode_json, format_timestamp
from execlog.storage.processes import ProcessRecord, SessionRecord

__all__ = [
    "EVENTS_MISSED_JSON",
    "approval_to_json",
    "event_to_json",
    "format_ms",
    "process_to_json",
    "session_to_json",
]

EVENTS_MISSED_JSON = '{"type":"resync"}'


def format_ms(value: int | None) -> str | None:
    return None if value is None else format_timestamp(value)


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


def approval_to_json(approval: Approval) -> dict[str, Any]:
    return {
        "id": approval.id,
        "execution_process_id": approval.execution_process_id,
        "tool_use_id": approval.tool_use_id,
        "tool_name": approval.tool_name,
        "tool_input": approval.tool_input,
        "status": approval.status,
        "reason": approval.reason,
        "requested_at": approval.requested_at,
        "timeout_at": approval.timeout_at,
    }


def event_to_json(event: SessionEvent | EventsMissed) -> str:
    """One event of ``GET /api/events`` as JSON text: ``{"type": ..., <record>: {...}}``."""
    if isinstance(event, SessionCreated):
        return encode_json({"type": "session_created", "session": session_to_json(event.session)})
    if isinstance(event, SessionUpdated):
        shown = (
            {"id": event.session_id} if event.session is None else session_to_json(event.session)
        )
        return encode_json({"type": "session_updated", "session": {**shown, "active": False}})
    if isinstance(event, ProcessUpdated):
        return encode_json({"type": "process_updated", "process": process_to_json(event.process)})
    if isinstance(event, ApprovalUpdated):
        body = approval_to_json(event.approval)
        return encode_json({"type": "approval_updated", "approval": body})
    return EVENTS_MISSED_JSON
