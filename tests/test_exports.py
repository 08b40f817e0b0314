"""The public surface is pinned (as httpx's test_exported_members does): a name added to or
dropped from ``execlog.client`` or the error tree is a decision, made here on purpose."""

from __future__ import annotations

import execlog.client
import execlog.errors

CLIENT_NAMES = {
    "ApiError",
    "ApprovalInfo",
    "ClientError",
    "ExeclogClient",
    "LogEntry",
    "LogTail",
    "MAX_PAGE_SIZE",
    "ProcessInfo",
    "ServerEvent",
    "ServerUnreachableError",
    "SessionInfo",
    "StreamClosedError",
    "StreamFrame",
}

# Each error and its parent: the HTTP handler and the CLI rely on the tree, not only the names.
ERROR_TREE = {
    "ExeclogError": "Exception",
    "ConfigError": "ExeclogError",
    "NotFoundError": "ExeclogError",
    "ProcessNotFoundError": "NotFoundError",
    "SessionNotFoundError": "NotFoundError",
    "ApprovalNotFoundError": "NotFoundError",
    "InvalidRequestError": "ExeclogError",
    "InvalidCursorError": "InvalidRequestError",
    "ConflictError": "ExeclogError",
    "BackfillError": "ExeclogError",
    "DatabaseUnavailableError": "ExeclogError",
}
CLIENT_ERROR_TREE = {
    "ClientError": "Exception",
    "ServerUnreachableError": "ClientError",
    "ApiError": "ClientError",
    "StreamClosedError": "ClientError",
}


def test_client_exports_exactly_its_public_names() -> None:
    assert set(execlog.client.__all__) == CLIENT_NAMES
    for name in CLIENT_NAMES:
        assert hasattr(execlog.client, name), name


def test_error_tree_is_pinned() -> None:
    assert set(execlog.errors.__all__) == set(ERROR_TREE)
    for name, parent in ERROR_TREE.items():
        assert getattr(execlog.errors, name).__bases__[0].__name__ == parent, name
    for name, parent in CLIENT_ERROR_TREE.items():
        assert getattr(execlog.client, name).__bases__[0].__name__ == parent, name


def test_http_statuses_of_the_error_tree() -> None:
    statuses = {name: getattr(execlog.errors, name).status for name in ERROR_TREE}
    assert statuses == {
        "ExeclogError": 500,
        "ConfigError": 500,
        "NotFoundError": 404,
        "ProcessNotFoundError": 404,
        "SessionNotFoundError": 404,
        "ApprovalNotFoundError": 404,
        "InvalidRequestError": 400,
        "InvalidCursorError": 400,
        "ConflictError": 409,
        "BackfillError": 500,
        "DatabaseUnavailableError": 503,
    }
