"""Executors: how each kind of process is started (its argv) and how its output is read (its
normalizer). ``script`` runs a given argv; ``claude-code`` and ``codex`` run the agents the
settings name; ``demo`` runs the built-in agent (execlog.runner.demo_agent).

Load and demo runs can tune the demo agent without a new executor: the ``EXECLOG_DEMO_ARGS``
setting (split like a shell line) is appended to its argv, e.g.
``EXECLOG_DEMO_ARGS="--seed 7 --pace 0 --bulk-bytes 100000000 --line-bytes 400 --no-approval"``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Final

from execlog.config import Settings
from execlog.errors import InvalidRequestError
from execlog.runner.normalizers.base import Normalizer
from execlog.runner.normalizers.claude import ClaudeNormalizer
from execlog.runner.normalizers.codex import CodexNormalizer

__all__ = ["EXECUTORS", "build_argv", "create_normalizer"]

EXECUTORS: Final[tuple[str, ...]] = ("script", "claude-code", "codex", "demo")
_STREAM_JSON: Final = ["--output-format", "stream-json", "--verbose"]


def build_argv(
    executor: str,
    settings: Settings,
    *,
    prompt: str | None,
    command: Sequence[str] | None,
    resume_session_id: str | None,
) -> list[str]:
    """The child's argv; ``InvalidRequestError`` when the request does not fit the executor."""
    if executor == "script":
        if not command or not all(isinstance(part, str) for part in command) or not command[0]:
            raise InvalidRequestError("executor 'script' needs a non-empty command (an argv list)")
        return list(command)
    if executor not in EXECUTORS:
        known = ", ".join(EXECUTORS)
        raise InvalidRequestError(f"unknown executor {executor!r} (known: {known})")
    if not prompt:
        raise InvalidRequestError(f"executor {executor!r} needs a prompt")
    if executor == "claude-code":
        resume = ["--resume", resume_session_id] if resume_session_id else []
        return [*settings.claude_argv, "-p", prompt, *_STREAM_JSON, *resume]
    if executor == "codex":
        if resume_session_id:
            return [*settings.codex_argv, "exec", "--json", "resume", resume_session_id, prompt]
        return [*settings.codex_argv, "exec", "--json", prompt]
    resume = ["--resume", resume_session_id] if resume_session_id else []
    demo = [sys.executable, "-m", "execlog.runner.demo_agent", "-p", prompt, *_STREAM_JSON]
    return [*demo, *resume, *settings.demo_argv]


def create_normalizer(executor: str) -> Normalizer | None:
    """A fresh normalizer for one process, or None when the output is raw only (``script``)."""
    if executor in ("claude-code", "demo"):
        return ClaudeNormalizer()
    if executor == "codex":
        return CodexNormalizer()
    if executor == "script":
        return None
    raise InvalidRequestError(f"unknown executor {executor!r}")
