"""The legacy JSONL history in execution_process_logs (CONTRACT.md, "Legacy JSONL log format").

Rows hold one or more LogMsg lines; they are appended one row per call and read back as typed
messages in insertion order (``inserted_at``, then row id: imported rows keep their original
times), streamed by keyset pages so that a log of any size is never held in memory at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final, Literal

import msgspec
from sqlalchemy import Engine, bindparam, delete, func, insert, select
from sqlalchemy.engine import Connection

from execlog.protocol import now_ms
from execlog.storage.database import pin_index_plans
from execlog.storage.tables import execution_process_logs as logs_table

__all__ = [
    "DEFAULT_PAGE_ROWS",
    "FinishedMessage",
    "JsonPatchMessage",
    "LegacyLogStore",
    "LegacyMessage",
    "LegacyReader",
    "PatchOperation",
    "SessionIdMessage",
    "StderrMessage",
    "StdoutMessage",
]

# Rows per keyset page. Rows written by vibe-kanban hold a pipe chunk or a few lines each, ours
# one writer group; a few hundred rows keep a page in the tens or hundreds of kilobytes.
DEFAULT_PAGE_ROWS: Final = 256


class StdoutMessage(msgspec.Struct, frozen=True, gc=False):
    text: str


class StderrMessage(msgspec.Struct, frozen=True, gc=False):
    text: str


class SessionIdMessage(msgspec.Struct, frozen=True, gc=False):
    agent_session_id: str


class PatchOperation(msgspec.Struct, frozen=True, gc=False):
    """One ``add``/``replace`` of ``/entries/<entry_index>``; ``value_json`` is the payload text."""

    op: Literal["add", "replace"]
    entry_index: int
    value_json: str


class JsonPatchMessage(msgspec.Struct, frozen=True, gc=False):
    operations: list[PatchOperation]


class FinishedMessage(msgspec.Struct, frozen=True, gc=False):
    """The process ended; nothing follows."""


LegacyMessage = (
    StdoutMessage | StderrMessage | SessionIdMessage | JsonPatchMessage | FinishedMessage
)

_FINISHED: Final = FinishedMessage()


# --- line decoding ----------------------------------------------------------------------------
# A line is a JSON string ("Finished", "Ready") or an object with one known key. One struct with
# every key optional decodes all object shapes in a single pass; patch values stay Raw, so the
# payload text is sliced out of the line instead of being decoded and encoded again.


_ABSENT: Final = msgspec.Raw()


class _RawPatchOperation(msgspec.Struct, gc=False):
    # Only the operations vibe-kanban writes for the entry list; any other (remove, move) fails
    # validation, which makes the line malformed: it is not a shape we can replay.
    op: Literal["add", "replace"]
    path: str
    value: msgspec.Raw = _ABSENT  # Raw can't be unioned with None; empty means absent


class _LineObject(
    msgspec.Struct,
    gc=False,
    rename={
        "stdout": "Stdout",
        "stderr": "Stderr",
        "session_id": "SessionId",
        "json_patch": "JsonPatch",
        "message_id": "MessageId",
    },
):
    stdout: str | None = None
    stderr: str | None = None
    session_id: str | None = None
    json_patch: list[_RawPatchOperation] | None = None
    message_id: msgspec.Raw = _ABSENT


_decode_line = msgspec.json.Decoder(_LineObject | str).decode
_ENTRIES_PREFIX: Final = "/entries/"
# An entry index of more than 9 digits (a billion entries) is no real log: such a line is
# malformed, rather than a row the database or the backfill's index bitmap cannot hold.
_MAX_INDEX_DIGITS: Final = 9


class _SkipLine(Exception):
    """A well-formed line that carries no log message (MessageId, Ready)."""


def _parse_line(line: str) -> LegacyMessage:
    """Decode one line; raises _SkipLine for known non-messages, ValueError for malformed ones."""
    try:
        decoded = _decode_line(line)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError too
        if "\\u" in line:
            return _parse_line_with_surrogates(line, exc)
        raise ValueError(str(exc)) from None
    if isinstance(decoded, str):
        if decoded == "Finished":
            return _FINISHED
        if decoded == "Ready":
            raise _SkipLine
        raise ValueError("unknown message")
    if decoded.stdout is not None:
        return StdoutMessage(decoded.stdout)
    if decoded.stderr is not None:
        return StderrMessage(decoded.stderr)
    if decoded.json_patch is not None:
        return JsonPatchMessage(_convert_patch(decoded.json_patch))
    if decoded.session_id is not None:
        return SessionIdMessage(decoded.session_id)
    if decoded.message_id:
        raise _SkipLine
    raise ValueError("unknown message")


def _parse_line_with_surrogates(line: str, error: msgspec.DecodeError) -> LegacyMessage:
    """A pipe chunk cut inside a character that was escaped as half a UTF-16 surrogate pair
    (``{"Stdout": "\\ud83d"}``): msgspec refuses lone surrogates, the standard library keeps
    them, and the backfill joins the halves again."""
    try:
        value = json.loads(line)
    except ValueError:
        raise ValueError(str(error)) from None
    if isinstance(value, dict) and len(value) == 1:
        ((key, text),) = value.items()
        if isinstance(text, str) and key == "Stdout":
            return StdoutMessage(text)
        if isinstance(text, str) and key == "Stderr":
            return StderrMessage(text)
    raise ValueError(str(error))


def _convert_patch(raw_operations: list[_RawPatchOperation]) -> list[PatchOperation]:
    operations = []
    for raw in raw_operations:
        path = raw.path
        number = path[len(_ENTRIES_PREFIX) :]
        if (
            not path.startswith(_ENTRIES_PREFIX)
            or not number.isdigit()
            or not number.isascii()
            or len(number) > _MAX_INDEX_DIGITS
        ):
            raise ValueError(f"unsupported patch path {path!r}")
        value_json = bytes(raw.value).decode()
        if not value_json or value_json == "null":
            raise ValueError(f"patch of {path!r} has no value")
        operations.append(PatchOperation(raw.op, int(number), value_json))
    return operations


# --- store ------------------------------------------------------------------------------------

_c = logs_table.c
# Keyset on (inserted_at, id): a range seek in ix_execution_process_logs_execution_time.
_PAGE = (
    select(_c.id, _c.logs, _c.byte_size, _c.inserted_at)
    .where(
        (_c.execution_id == bindparam("pid"))
        & (_c.inserted_at >= bindparam("at"))
        & ((_c.inserted_at > bindparam("at")) | (_c.id > bindparam("after")))
    )
    .order_by(_c.inserted_at, _c.id)
    .limit(bindparam("limit"))
)
_ROWS_OF_PROCESSES = (
    select(_c.execution_id, _c.logs, _c.byte_size)
    .where(_c.execution_id.in_(bindparam("pids", expanding=True)))
    .order_by(_c.execution_id, _c.inserted_at, _c.id)
)
_WITH_PATCHES = (
    select(_c.execution_id)
    .distinct()
    .where(_c.execution_id.in_(bindparam("pids", expanding=True)) & _c.logs.like('%{"JsonPatch":%'))
)
_BEFORE_EVERY_ROW: Final = -(2**62)
_TOTAL_BYTES = select(func.coalesce(func.sum(_c.byte_size), 0)).where(
    _c.execution_id == bindparam("pid")
)
_INSERT = insert(logs_table)
_DELETE = delete(logs_table).where(_c.execution_id == bindparam("pid"))
_ANY_ROW = select(_c.id).where(_c.execution_id == bindparam("pid")).limit(1)


class LegacyLogStore:
    """Appends JSONL rows and reads them back as messages."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def append_lines(
        self, connection: Connection, process_id: str, lines: Sequence[str], now_ms: int
    ) -> None:
        """One row holding ``lines`` joined by newlines, inside the caller's transaction."""
        if not lines:
            return
        logs = "\n".join(lines)
        byte_size = len(logs) if logs.isascii() else len(logs.encode())
        connection.execute(
            _INSERT,
            {
                "execution_id": process_id,
                "logs": logs,
                "byte_size": byte_size,
                "inserted_at": now_ms,
            },
        )

    def append_lines_now(self, process_id: str, lines: Sequence[str]) -> None:
        with self._engine.begin() as connection:
            self.append_lines(connection, process_id, lines, now_ms())

    def append_rows(
        self, connection: Connection, process_id: str, rows: Iterable[tuple[str, int]]
    ) -> int:
        """Rows of JSONL text with their own insertion times (an import); returns their bytes."""
        params = []
        total = 0
        for logs, inserted_at in rows:
            byte_size = len(logs) if logs.isascii() else len(logs.encode())
            total += byte_size
            params.append(
                {
                    "execution_id": process_id,
                    "logs": logs,
                    "byte_size": byte_size,
                    "inserted_at": inserted_at,
                }
            )
        if params:
            connection.execute(_INSERT, params)
        return total

    def has_rows(self, process_id: str) -> bool:
        with self._engine.connect() as connection:
            return connection.execute(_ANY_ROW, {"pid": process_id}).first() is not None

    def delete_rows(self, connection: Connection, process_id: str) -> int:
        """Delete every JSONL row of the process inside the caller's transaction; the count."""
        return int(connection.execute(_DELETE, {"pid": process_id}).rowcount or 0)

    def read_messages(
        self,
        process_id: str,
        *,
        page_rows: int = DEFAULT_PAGE_ROWS,
        rows: Sequence[tuple[str, int]] | None = None,
    ) -> LegacyReader:
        """A reader that streams the process's messages in insertion order (from ``rows`` when
        the caller already read them)."""
        return LegacyReader(self._engine, process_id, page_rows=page_rows, rows=rows)

    def read_rows_of_processes(
        self, process_ids: Sequence[str]
    ) -> dict[str, list[tuple[str, int]]]:
        """The ``(logs, byte_size)`` rows of many small processes in insertion order, in one
        query: the backfill's groups (issue 11), whose size the caller bounds."""
        rows_of: dict[str, list[tuple[str, int]]] = {pid: [] for pid in process_ids}
        if not process_ids:
            return rows_of
        with self._engine.connect() as connection:
            result = connection.execute(_ROWS_OF_PROCESSES, {"pids": list(process_ids)})
            for pid, logs, byte_size in result:
                rows_of[pid].append((logs, byte_size))
        return rows_of

    def processes_with_patches(self, process_ids: Sequence[str]) -> set[str]:
        """Which of the processes have a ``JsonPatch`` line, in one scan (a line starts with
        it; inside a Stdout text its quotes are escaped, so the pattern cannot match there)."""
        if not process_ids:
            return set()
        with self._engine.connect() as connection:
            rows = connection.execute(_WITH_PATCHES, {"pids": list(process_ids)}).all()
        return {pid for (pid,) in rows}


class LegacyReader:
    """Iterates a process's legacy messages, fetching ``page_rows`` rows per query (id > last).

    Lines that are not valid JSON or not a known shape are skipped and counted in
    ``malformed_lines``; ``bytes_read`` sums the ``byte_size`` of the rows read so far.
    """

    def __init__(
        self,
        engine: Engine,
        process_id: str,
        *,
        page_rows: int,
        rows: Sequence[tuple[str, int]] | None = None,
    ) -> None:
        if page_rows < 1:
            raise ValueError("page_rows must be at least 1")
        self._engine = engine
        self._process_id = process_id
        self._page_rows = page_rows
        # Rows already read (``read_rows_of_processes``): iterated instead of queried.
        self._rows = rows
        self.malformed_lines = 0
        self.bytes_read = 0
        self.rows_read = 0
        self.pages_read = 0

    def total_bytes(self) -> int:
        """The size of the whole log (sum of ``byte_size``), in one query."""
        with self._engine.connect() as connection:
            return int(connection.execute(_TOTAL_BYTES, {"pid": self._process_id}).scalar_one())

    def __iter__(self) -> Iterator[LegacyMessage]:
        for logs in self._iterate_rows():
            for line in logs.split("\n"):
                if not line or line.isspace():
                    continue
                try:
                    yield _parse_line(line)
                except _SkipLine:
                    continue
                except ValueError:
                    self.malformed_lines += 1

    def _iterate_rows(self) -> Iterator[str]:
        if self._rows is not None:
            for logs, byte_size in self._rows:
                self.rows_read += 1
                self.bytes_read += byte_size
                yield logs
            return
        params: dict[str, Any] = {
            "pid": self._process_id,
            "limit": self._page_rows,
            "at": _BEFORE_EVERY_ROW,
            "after": -1,
        }
        while True:
            # A short connection per page: no read transaction stays open while the consumer
            # works through the page, so the writer and WAL checkpoints are never held up.
            with self._engine.connect() as connection:
                pin_index_plans(connection)  # an imported log's id has no statistics yet
                rows = connection.execute(_PAGE, params).all()
            self.pages_read += 1
            if not rows:
                return
            params["after"] = rows[-1][0]
            params["at"] = rows[-1][3]
            for _row_id, logs, byte_size, _inserted_at in rows:
                self.rows_read += 1
                self.bytes_read += byte_size
                yield logs
            if len(rows) < self._page_rows:
                return
