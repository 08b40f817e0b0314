"""A small synchronous client of the execlog HTTP and WebSocket API (CONTRACT.md): tail-first
history walks, live log streams, sessions and processes. Server answers become typed values;
failures become ``ClientError`` subclasses that carry the server's own message.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal
from urllib.parse import quote

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from execlog.protocol import CLOSE_INVALID_REQUEST, CLOSE_NOT_FOUND, LIMIT_MAX, Channel

__all__ = [
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
]

MAX_PAGE_SIZE: Final = LIMIT_MAX  # the contract's upper bound on `limit`
# One frame carries one entry; a split output line is at most EXECLOG_MAX_LINE_BYTES, but a
# normalized entry (a tool call with its output) can be larger, so allow generous frames.
_MAX_FRAME_BYTES: Final = 64 * 1024 * 1024


class ClientError(Exception):
    """Base of the client's errors; ``str()`` is a message fit for a person."""


class ServerUnreachableError(ClientError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach execlog server at {url}: {reason} (is it running? `execlog serve`)"
        )
        self.url = url
        self.reason = reason


class ApiError(ClientError):
    """The server refused a request; ``message`` is the envelope's own words."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class StreamClosedError(ClientError):
    """A log stream ended without its ``finished`` frame (server gone, connection lost)."""

    def __init__(self, code: int | None, reason: str) -> None:
        shown = f"code {code}" if code is not None else "no close frame"
        detail = f"{shown}: {reason}" if reason else shown
        super().__init__(f"log stream closed before it finished ({detail})")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of a channel: its index and its decoded payload."""

    entry_index: int
    entry: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LogTail:
    """The newest entries of a channel, ascending.

    ``newest_index`` is the highest index the server had, also when no entry was asked for
    (``count=0``); ``history_truncated`` is set when the walk reached the oldest entry the
    server has and older ones were lost (evicted from memory, never stored).
    """

    entries: list[LogEntry]
    newest_index: int | None
    history_truncated: bool = False


@dataclass(frozen=True, slots=True)
class StreamFrame:
    """An ``append`` or ``replace`` frame of a log stream (``finished`` ends the iteration)."""

    kind: Literal["append", "replace"]
    entry_index: int
    entry: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    id: str
    session_id: str
    run_reason: str
    status: str
    exit_code: int | None
    agent_session_id: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    prompt: str | None = None
    command: list[str] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessInfo:
        return cls(
            id=data["id"],
            session_id=data["session_id"],
            run_reason=data["run_reason"],
            status=data["status"],
            exit_code=data.get("exit_code"),
            agent_session_id=data.get("agent_session_id"),
            started_at=data.get("started_at"),
            completed_at=data.get("completed_at"),
            prompt=data.get("prompt"),
            command=data.get("command"),
        )


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    executor: str
    working_dir: str | None
    processes: list[ProcessInfo] = field(default_factory=list)
    created_at: str | None = None
    active: bool = False  # the server's chain of processes for it is underway

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionInfo:
        return cls(
            id=data["id"],
            executor=data["executor"],
            working_dir=data.get("working_dir"),
            processes=[ProcessInfo.from_json(p) for p in data.get("processes", [])],
            created_at=data.get("created_at"),
            active=bool(data.get("active", False)),
        )


@dataclass(frozen=True, slots=True)
class ApprovalInfo:
    """A tool call's request to run (``GET /api/approvals``); ``status`` is ``pending``,
    ``approved``, ``denied`` or ``timed_out``."""

    id: str
    execution_process_id: str
    tool_name: str
    tool_input: Any
    status: str
    reason: str | None = None
    timeout_at: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApprovalInfo:
        return cls(
            id=data["id"],
            execution_process_id=data["execution_process_id"],
            tool_name=data["tool_name"],
            tool_input=data.get("tool_input"),
            status=data["status"],
            reason=data.get("reason"),
            timeout_at=data.get("timeout_at"),
        )


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One event of ``GET /api/events``: ``kind`` is its ``type`` (``session_created``,
    ``session_updated``, ``process_updated``, ``approval_updated``, ``resync``), ``data`` the
    whole decoded event. The stream's first item is ``connected``: from then on nothing is
    missed."""

    kind: str
    data: dict[str, Any]


class ExeclogClient:
    """Talks to one server. ``token`` goes out as ``Authorization: Bearer`` on HTTP requests
    and on WebSocket handshakes alike."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=timeout)
        self._timeout = timeout

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ExeclogClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- log history ----------------------------------------------------------------------

    def fetch_page(
        self, process_id: str, channel: Channel, *, limit: int, cursor: int | None = None
    ) -> dict[str, Any]:
        """One history page as the server sends it (``entries``, ``next_cursor``, ...)."""
        params: dict[str, int] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        page: dict[str, Any] = self._request(
            "GET", f"{_process_path(process_id)}/{channel}-logs/v2", params=params
        )
        return page

    def fetch_tail(self, process_id: str, channel: Channel, count: int | None = None) -> LogTail:
        """The newest ``count`` entries (every entry when ``None``), walking the cursor back a
        page of at most ``MAX_PAGE_SIZE`` at a time; pages never overlap or skip, so neither
        does this."""
        if count is not None and count < 0:
            raise ValueError("count must be >= 0 or None")
        pages: list[list[dict[str, Any]]] = []
        newest: int | None = None
        remaining = count
        cursor: int | None = None
        truncated = False
        while True:
            # count=0 still asks for one entry: the follow-up stream needs the newest index.
            limit = MAX_PAGE_SIZE if remaining is None else max(1, min(MAX_PAGE_SIZE, remaining))
            page = self.fetch_page(process_id, channel, limit=limit, cursor=cursor)
            entries: list[dict[str, Any]] = page["entries"]
            if newest is None and entries:
                newest = entries[-1]["entry_index"]
            if remaining is not None:
                entries = entries[len(entries) - min(remaining, len(entries)) :]
                remaining -= len(entries)
            pages.append(entries)
            next_cursor = page["next_cursor"]
            if not page["has_more"]:
                truncated = bool(page["history_truncated"])
                break
            if (remaining is not None and remaining <= 0) or next_cursor is None:
                break
            cursor = next_cursor
        ordered = [
            LogEntry(item["entry_index"], item["entry"])
            for chunk in reversed(pages)
            for item in chunk
        ]
        return LogTail(ordered, newest, truncated)

    # --- live streams ---------------------------------------------------------------------

    def iter_stream(
        self, process_id: str, channel: Channel, *, after: int | None = None
    ) -> Generator[StreamFrame, None, None]:
        """The frames of ``WS …/{channel}-logs/v2/ws?after=N`` until ``finished``.

        Raises ``ApiError`` (404) for an unknown process, ``StreamClosedError`` when the stream
        ends without ``finished``; leaving the iteration early closes the connection.
        """
        url = f"{_ws_base(self.base_url)}{_process_path(process_id)}/{channel}-logs/v2/ws"
        if after is not None:
            url += f"?after={after}"
        try:
            websocket = connect(
                url,
                additional_headers=self._headers,
                open_timeout=self._timeout,
                max_size=_MAX_FRAME_BYTES,
            )
        except InvalidStatus as exc:
            raise _error_from_handshake(exc.response.status_code, exc.response.body) from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise ServerUnreachableError(self.base_url, _describe(exc)) from None
        with websocket:
            while True:
                try:
                    message = websocket.recv()
                except ConnectionClosed as exc:
                    raise _error_from_close(exc, process_id) from None
                frame = json.loads(message)
                kind = frame.get("type")
                if kind == "finished":
                    return
                if kind in ("append", "replace"):
                    yield StreamFrame(kind, frame["entry_index"], frame["entry"])

    # --- sessions and processes -----------------------------------------------------------

    def create_session(
        self,
        executor: str,
        *,
        prompt: str | None = None,
        command: Sequence[str] | None = None,
        working_dir: str | None = None,
        setup_script: str | None = None,
        cleanup_script: str | None = None,
    ) -> SessionInfo:
        """``POST /api/sessions``: the session, its first process already started."""
        body: dict[str, Any] = {"executor": executor}
        optional = {
            "prompt": prompt,
            "command": list(command) if command is not None else None,
            "working_dir": working_dir,
            "setup_script": setup_script,
            "cleanup_script": cleanup_script,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return SessionInfo.from_json(self._request("POST", "/api/sessions", json=body))

    def get_session(self, session_id: str) -> SessionInfo:
        return SessionInfo.from_json(self.get_session_data(session_id))

    def get_session_data(self, session_id: str) -> dict[str, Any]:
        """``GET /api/sessions/{id}`` as the server sends it."""
        session: dict[str, Any] = self._request(
            "GET", f"/api/sessions/{quote(session_id, safe='')}"
        )
        return session

    def get_process(self, process_id: str) -> ProcessInfo:
        return ProcessInfo.from_json(self._request("GET", _process_path(process_id)))

    def stop(self, process_id: str) -> ProcessInfo:
        """Stop a running process; returns it ended (``killed``), or as it was if it had ended."""
        return ProcessInfo.from_json(self._request("POST", f"{_process_path(process_id)}/stop"))

    def list_sessions(self) -> list[dict[str, Any]]:
        """``GET /api/sessions`` as the server sends it (newest first), for listings and JSON."""
        sessions: list[dict[str, Any]] = self._request("GET", "/api/sessions")
        return sessions

    def follow_up(self, session_id: str, prompt: str) -> ProcessInfo:
        """A new agent turn that resumes the agent's session; returns its process (running)."""
        path = f"/api/sessions/{quote(session_id, safe='')}/follow-up"
        return ProcessInfo.from_json(self._request("POST", path, json={"prompt": prompt}))

    # --- approvals ------------------------------------------------------------------------

    def list_approvals(self, process_id: str | None = None) -> list[ApprovalInfo]:
        params = {} if process_id is None else {"execution_process_id": process_id}
        data = self._request("GET", "/api/approvals", params=params)
        return [ApprovalInfo.from_json(item) for item in data]

    def respond_approval(
        self, approval_id: str, *, approved: bool, reason: str | None = None
    ) -> ApprovalInfo:
        """Approve or deny; ``ApiError`` 409 when it was already decided (or timed out)."""
        path = f"/api/approvals/{quote(approval_id, safe='')}/respond"
        body = {"approved": approved, "reason": reason}
        return ApprovalInfo.from_json(self._request("POST", path, json=body))

    # --- session events -------------------------------------------------------------------

    def iter_events(self) -> Generator[ServerEvent, None, None]:
        """``GET /api/events`` (server-sent events) until the caller stops or the server goes;
        the first item, ``connected``, says the subscription is live."""
        # The server sends a keep-alive comment every 15 s: a read timeout well above it.
        timeout = httpx.Timeout(self._timeout, read=max(self._timeout, 60.0))
        try:
            with self._http.stream("GET", "/api/events", timeout=timeout) as response:
                if response.status_code >= 400:
                    raise _error_from_handshake(response.status_code, response.read())
                for line in response.iter_lines():
                    if line.startswith(": connected"):
                        yield ServerEvent("connected", {})
                    elif line.startswith("data:"):
                        event = json.loads(line[len("data:") :])
                        yield ServerEvent(str(event.get("type")), event)
        except httpx.TransportError as exc:
            raise ServerUnreachableError(self.base_url, _describe(exc)) from None

    # --- plumbing -------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachableError(self.base_url, _describe(exc)) from None
        if response.status_code >= 400:
            raise _error_from_handshake(response.status_code, response.content)
        try:
            envelope = response.json()
        except ValueError:
            raise ApiError(response.status_code, "the server's answer is not JSON") from None
        return envelope["data"]


def _process_path(process_id: str) -> str:
    # The id goes into the path as given (escaped): the server judges malformed ids (400).
    return f"/api/execution-processes/{quote(process_id, safe='')}"


def _ws_base(base_url: str) -> str:
    if base_url.startswith("https://"):
        return "wss://" + base_url[len("https://") :]
    if base_url.startswith("http://"):
        return "ws://" + base_url[len("http://") :]
    return base_url


def _error_from_handshake(status: int, body: bytes | bytearray | None) -> ApiError:
    """An error envelope's message, or the bare status when the body is not one."""
    message = f"HTTP {status}"
    try:
        envelope = json.loads(body or b"")
        if isinstance(envelope, dict) and isinstance(envelope.get("message"), str):
            message = envelope["message"]
    except ValueError:
        pass
    if status == 403 and message == f"HTTP {status}":
        message = "the server refused the connection (403: token or origin not allowed)"
    return ApiError(status, message)


def _error_from_close(exc: ConnectionClosed, process_id: str) -> ClientError:
    received = exc.rcvd
    if received is None:
        return StreamClosedError(None, "")
    if received.code == CLOSE_NOT_FOUND:
        return ApiError(404, f"execution process {process_id} not found")
    if received.code == CLOSE_INVALID_REQUEST:
        return ApiError(400, received.reason)
    return StreamClosedError(received.code, received.reason)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__
