"""Deciding a tool call's approval from the terminal (issue 13).

On a terminal the person is asked, one approval at a time: the tool, what it would run or touch,
and ``Allow? [y/N]``; a denial asks for an optional reason. Off a terminal one line says how to
decide with ``execlog approve`` / ``execlog deny``. ``--approve-all`` / ``--deny-all`` decide
without asking. The answer goes to ``POST /api/approvals/{id}/respond``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Final, Literal, TextIO

from execlog.client import ApiError, ApprovalInfo, ExeclogClient

__all__ = ["ApprovalDesk", "ApprovalPolicy", "describe_tool_input"]

ApprovalPolicy = Literal["ask", "explain", "approve-all", "deny-all"]

# What a tool call acts on, by the agent's own input keys (Claude Code's tool inputs).
_SUBJECT_KEYS: Final = ("command", "file_path", "path", "url", "pattern", "query", "description")
_MAX_SUBJECT_CHARS: Final = 300
_YES: Final = frozenset({"y", "yes"})


def describe_tool_input(tool_input: Any) -> str:
    """The command, file, URL or pattern a tool call would act on; else its input as JSON."""
    if isinstance(tool_input, dict):
        for key in _SUBJECT_KEYS:
            value = tool_input.get(key)
            if isinstance(value, str) and value:
                return _cut(value)
    if tool_input is None:
        return ""
    return _cut(json.dumps(tool_input, ensure_ascii=False))


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_SUBJECT_CHARS else text[: _MAX_SUBJECT_CHARS - 1] + "…"


class ApprovalDesk:
    """Handles each pending approval once, in the order they are offered."""

    def __init__(
        self,
        client: ExeclogClient,
        policy: ApprovalPolicy,
        *,
        err: TextIO,
        answers: TextIO,
        pause: Callable[[], AbstractContextManager[Any]],
    ) -> None:
        self._client = client
        self._policy = policy
        self._err = err
        self._answers = answers
        self._pause = pause  # stops live drawing while a question is on screen
        self._handled: set[str] = set()

    def offer(self, approval: ApprovalInfo) -> None:
        if approval.status != "pending" or approval.id in self._handled:
            return
        self._handled.add(approval.id)
        what = f"{approval.tool_name}: {describe_tool_input(approval.tool_input)}".rstrip(": ")
        if self._policy == "explain":
            self._say(
                f"execlog: {what} waits for approval; decide with `execlog approve {approval.id}`"
                f" or `execlog deny {approval.id} [--reason R]`"
            )
        elif self._policy == "approve-all":
            self._decide(approval, True, None, f"approved {what} (--approve-all)")
        elif self._policy == "deny-all":
            self._decide(approval, False, "denied with --deny-all", f"denied {what} (--deny-all)")
        else:
            with self._pause():
                self._ask(approval)

    def _ask(self, approval: ApprovalInfo) -> None:
        subject = describe_tool_input(approval.tool_input)
        self._say(f"\n{approval.tool_name} wants to run: {subject}")
        if self._read("Allow? [y/N] ").strip().lower() in _YES:
            self._decide(approval, True, None, "approved")
            return
        reason = self._read("Reason (optional, Enter to skip): ").strip()
        self._decide(approval, False, reason or None, "denied")

    def _decide(
        self, approval: ApprovalInfo, approved: bool, reason: str | None, note: str
    ) -> None:
        try:
            self._client.respond_approval(approval.id, approved=approved, reason=reason)
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
            # Decided elsewhere, timed out, or its process ended meanwhile: say so, go on.
            self._say(f"execlog: approval {approval.id} not decided here: {exc.message}")
            return
        self._say(f"execlog: {note}")

    def _read(self, prompt: str) -> str:
        """One answer line; end of input counts as no (the default)."""
        self._err.write(prompt)
        self._err.flush()
        return self._answers.readline()

    def _say(self, text: str) -> None:
        self._err.write(text + "\n")
        self._err.flush()
