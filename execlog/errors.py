"""The exception tree. Raised inside, translated once at the edges: the HTTP handler renders
the contract's error envelope, the CLI prints a message and exits non-zero."""

from __future__ import annotations

__all__ = [
    "ExeclogError",
    "ConfigError",
    "NotFoundError",
    "ProcessNotFoundError",
    "SessionNotFoundError",
    "ApprovalNotFoundError",
    "InvalidRequestError",
    "InvalidCursorError",
    "ConflictError",
    "BackfillError",
    "DatabaseUnavailableError",
]


class ExeclogError(Exception):
    """Base of every error execlog raises on purpose. ``status`` is the HTTP status at the edge."""

    status = 500


class ConfigError(ExeclogError):
    """A setting has a bad value; the message names the variable and the value."""


class NotFoundError(ExeclogError):
    status = 404


class ProcessNotFoundError(NotFoundError):
    def __init__(self, process_id: object) -> None:
        super().__init__(f"execution process {process_id} not found")


class SessionNotFoundError(NotFoundError):
    def __init__(self, session_id: object) -> None:
        super().__init__(f"session {session_id} not found")


class ApprovalNotFoundError(NotFoundError):
    def __init__(self, approval_id: object) -> None:
        super().__init__(f"approval {approval_id} not found")


class InvalidRequestError(ExeclogError):
    status = 400


class InvalidCursorError(InvalidRequestError):
    pass


class ConflictError(ExeclogError):
    """The request is well-formed but the target's state does not allow it (409)."""

    status = 409


class BackfillError(ExeclogError):
    """Legacy JSONL could not be turned into entries; the history is not served half-empty."""

    status = 500


class DatabaseUnavailableError(ExeclogError):
    """The database did not answer within ``EXECLOG_DB_TIMEOUT_SECONDS`` (locked, unreachable,
    disk full): 503, never 500 (issue 9)."""

    status = 503
