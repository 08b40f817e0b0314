"""Sessions at a glance (`execlog sessions`, `execlog show`): aligned plain-text columns, like
`kubectl get`, so that they read well on a terminal and stay easy to `grep` and `awk`."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from execlog.client import ApprovalInfo
from execlog.terminal.approvals import describe_tool_input
from execlog.terminal.conversation import shorten
from execlog.terminal.follower import STEP_NAMES

__all__ = ["format_duration", "render_session", "render_sessions", "session_status"]

_WHAT_CHARS: Final = 60


def session_status(session: dict[str, Any]) -> str:
    """``running`` while any process runs, else the status of its newest process."""
    processes: list[dict[str, Any]] = session.get("processes") or []
    if any(p["status"] == "running" for p in processes):
        return "running"
    return str(processes[-1]["status"]) if processes else "-"


def session_subject(session: dict[str, Any]) -> str:
    """What the session does: its first agent turn's prompt, else its command."""
    processes: list[dict[str, Any]] = session.get("processes") or []
    for process in processes:
        if process.get("prompt"):
            return str(process["prompt"])
    for process in processes:
        if process["run_reason"] == "script" and process.get("command"):
            return shlex.join(process["command"])
    return ""


def render_sessions(sessions: Sequence[dict[str, Any]], now: datetime | None = None) -> str:
    """One row per session: id, status, executor, age, duration, prompt or command."""
    moment = now or datetime.now(UTC)
    rows = [["SESSION", "STATUS", "EXECUTOR", "AGE", "DURATION", "PROMPT / COMMAND"]]
    for session in sessions:
        processes = session.get("processes") or []
        rows.append(
            [
                session["id"],
                session_status(session),
                session["executor"],
                format_duration(_since(session.get("created_at"), moment)),
                _span(processes, moment),
                shorten(session_subject(session), _WHAT_CHARS),
            ]
        )
    return _columns(rows)


def render_session(
    session: dict[str, Any], approvals: Sequence[ApprovalInfo], now: datetime | None = None
) -> str:
    """A session, its processes in start order, and the approvals its processes wait for."""
    moment = now or datetime.now(UTC)
    processes: list[dict[str, Any]] = session.get("processes") or []
    head = [
        f"session    {session['id']}",
        f"status     {session_status(session)}",
        f"executor   {session['executor']}",
        f"directory  {session.get('working_dir') or '-'}",
        f"created    {session.get('created_at') or '-'}"
        f" ({format_duration(_since(session.get('created_at'), moment))} ago)",
    ]
    rows = [["PROCESS", "STEP", "STATUS", "EXIT", "STARTED", "DURATION", "PROMPT / COMMAND"]]
    for process in processes:
        subject = process.get("prompt") or shlex.join(process.get("command") or [])
        rows.append(
            [
                process["id"],
                STEP_NAMES.get(process["run_reason"], process["run_reason"]),
                process["status"],
                "-" if process.get("exit_code") is None else str(process["exit_code"]),
                process.get("started_at") or "-",
                _span([process], moment),
                shorten(subject, _WHAT_CHARS),
            ]
        )
    parts = ["\n".join(head), _columns(rows)]
    ids = {p["id"] for p in processes}
    waiting = [a for a in approvals if a.status == "pending" and a.execution_process_id in ids]
    if waiting:
        lines = ["waiting for approval:"]
        for approval in waiting:
            subject = shorten(describe_tool_input(approval.tool_input), _WHAT_CHARS)
            lines.append(f"  {approval.id}  {approval.tool_name}  {subject}")
        lines.append("  decide with `execlog approve ID` or `execlog deny ID [--reason R]`")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def format_duration(seconds: float | None) -> str:
    """``45s``, ``3m12s``, ``2h5m``, ``4d3h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60}s"
    if total < 86400:
        return f"{total // 3600}h{total % 3600 // 60}m"
    return f"{total // 86400}d{total % 86400 // 3600}h"


def _span(processes: Sequence[dict[str, Any]], moment: datetime) -> str:
    """From the first start to the last end (to now while one runs)."""
    if not processes:
        return "-"
    start = _parse(processes[0].get("started_at"))
    running = any(p["status"] == "running" for p in processes)
    end = moment if running else _parse(processes[-1].get("completed_at"))
    if start is None or end is None:
        return "-"
    return format_duration((end - start).total_seconds())


def _since(stamp: str | None, moment: datetime) -> float | None:
    start = _parse(stamp)
    return None if start is None else (moment - start).total_seconds()


def _parse(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        return None


def _columns(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
