"""Engine creation for the configured URL: SQLite (WAL, synchronous=NORMAL, busy timeout) or
PostgreSQL through psycopg 3. All SQL goes through SQLAlchemy Core so both dialects run it."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from execlog.errors import ConfigError, DatabaseUnavailableError

__all__ = [
    "DATABASE_UNAVAILABLE_ERRORS",
    "SQLITE_PAGE_SIZE",
    "convert_sqlite_page_size",
    "fetch_sqlite_page_size",
    "describe_database_error",
    "driver_errors_wrapped",
    "create_database_engine",
    "normalize_database_url",
    "is_sqlite",
    "pin_index_plans",
    "run_in_thread",
]

SQLITE_BUSY_TIMEOUT_MS = 10_000

# The page size of a new SQLite file; an existing one keeps its own until
# ``execlog migrate --convert-page-size`` rewrites it (docs/performance.md). Entries then lived
# in a WITHOUT ROWID b-tree, whose cells hold at most about a quarter of a page before spilling
# into an overflow page: at SQLite's default 4 KiB a 1 KB line took a 4 KiB overflow page of its
# own (a 936 MB file for 200 MB of rows) and ingested at 5-35 MB/s. At 64 KiB lines up to ~16 KB
# stayed in their leaf; measured for 1 KB lines, plain executemany ran 113-136 MB/s and the
# writer 95-117 MB/s, against 89-129 and 52-95 at 16 KiB (issue 9; docs/performance.md). The
# rowid table of migration 0004 keeps lines up to ~64 KB in their leaf at this size.
SQLITE_PAGE_SIZE = 65_536

# What a database that is locked, busy, unreachable, out of space or out of pooled connections
# raises: the request may succeed later (503 at the edge, retry in the writer), never a 500.
DATABASE_UNAVAILABLE_ERRORS = (OperationalError, PoolTimeoutError, DatabaseUnavailableError)

# The most of a database error message that is logged, reported or answered.
_ERROR_TEXT_CHARS = 200


def describe_database_error(exc: BaseException) -> str:
    """The driver's own message, first line, cut: SQLAlchemy's wrapper text would carry the SQL
    and its parameters, i.e. payloads. SQLite's extended code follows it when it says more
    (``disk I/O error (SQLITE_IOERR_SHORT_READ)``): its messages name only the primary code."""
    error = getattr(exc, "orig", None) or exc
    lines = str(error).strip().splitlines()
    text = lines[0][:_ERROR_TEXT_CHARS] if lines else type(exc).__name__
    code = getattr(error, "sqlite_errorname", None)
    return f"{text} ({code})" if isinstance(code, str) and code not in text else text


_P = ParamSpec("_P")
_R = TypeVar("_R")


async def run_in_thread(function: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """The thread boundary of storage (as datasette's ``Database.execute_fn``): the stores'
    async methods run their blocking statements here, so callers just ``await`` them and the
    event loop never blocks on the database. One place to add a deadline or a thread pool."""
    return await asyncio.to_thread(function, *args, **kwargs)


def normalize_database_url(url: str) -> str:
    """Map the contract's ``postgresql://`` to the psycopg 3 driver we ship."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def fetch_sqlite_page_size(engine: Engine) -> int:
    """The page size of the engine's SQLite file."""
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA page_size").scalar_one())


def convert_sqlite_page_size(engine: Engine) -> tuple[int, int]:
    """Rewrite the SQLite file at SQLITE_PAGE_SIZE: ``(before, after)``. A WAL file cannot change
    its page size, so it leaves WAL, VACUUMs and returns to WAL. The VACUUM needs the file to
    itself (no server running) and free disk space for a full copy."""
    engine.dispose()  # every pooled connection closed: leaving WAL needs the only one
    connection = engine.raw_connection()
    try:
        driver = connection.driver_connection
        assert driver is not None
        before = int(driver.execute("PRAGMA page_size").fetchone()[0])
        if before != SQLITE_PAGE_SIZE:
            try:
                mode = driver.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
                if str(mode).lower() != "delete":  # another connection holds the file
                    raise sqlite3.OperationalError("the database is in use")
                driver.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
                driver.execute("VACUUM")
            except sqlite3.OperationalError as exc:
                raise DatabaseUnavailableError(
                    f"cannot convert the SQLite file ({exc}); stop the server and retry"
                ) from None
            finally:
                driver.execute("PRAGMA journal_mode=WAL")
        after = int(driver.execute("PRAGMA page_size").fetchone()[0])
    finally:
        connection.close()
    engine.dispose()
    return before, after


@contextmanager
def driver_errors_wrapped(connection: Connection) -> Iterator[None]:
    """Around work on the raw driver connection (PostgreSQL's COPY): its errors are raised as
    SQLAlchemy's, as every other statement's are, so that the writer tells a transient error
    (``OperationalError``: a cancelled statement, a lost connection; retried, nothing lost) from
    a permanent one, and a request answers 503. Unwrapped, psycopg's ``QueryCanceled`` during a
    locked table looked permanent, and the writer would have dropped the write."""
    base = connection.dialect.loaded_dbapi.Error
    try:
        yield
    except base as exc:
        raise DBAPIError.instance(None, None, exc, base, dialect=connection.dialect) from exc


# PostgreSQL plans a read from statistics, and a process's id is new and hot (a running one's
# entries, a just-imported one's JSONL): before an ANALYZE sees it, the planner estimates ~25
# rows for it and picks a bitmap heap scan of every row plus a top-N sort (1.8 s for a tail page
# at 1M entries here, 60-80 ms for each 256-row JSONL page at 300k rows, so a backfill went
# quadratic), against 0.1 ms by index scan. The reads that walk an index in its order take the
# alternatives away for their transaction: the plan is the index scan whatever the statistics.
_PIN_INDEX_PLANS = text(
    "SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true)"
)


def pin_index_plans(connection: Connection) -> None:
    """For the rest of the caller's transaction on PostgreSQL: no bitmap scans and no sorts, so
    a keyset read by an index's order is an index scan however stale the statistics (issue 9,
    item 8). Nothing on SQLite, whose planner does not guess from row counts."""
    if connection.dialect.name == "postgresql":
        connection.execute(_PIN_INDEX_PLANS)


def create_database_engine(
    url: str, *, timeout_seconds: float | None = None, maintenance: bool = False
) -> Engine:
    """An engine with the pragmas and pool that this service needs. ``timeout_seconds``
    (``EXECLOG_DB_TIMEOUT_SECONDS`` in the server) bounds every wait on the database: SQLite's
    busy handler, PostgreSQL's connect and each of its statements (``statement_timeout``, set
    only when given), and the wait for a pooled connection.

    ``maintenance``: the server's engine for the legacy jobs (backfill, cleanup), with a smaller
    pool. Their scans and deletes (every JSONL row, a 1 GB log) may run longer than a request's
    deadline and must not be cancelled by it, so on PostgreSQL ``timeout_seconds`` bounds each
    wait on a lock (``lock_timeout``) instead of each statement: a locked table still fails the
    work within the deadline rather than hanging it. SQLite's busy timeout bounds only lock
    waits anyway."""
    pool_size = 4 if maintenance else 8
    timeout = SQLITE_BUSY_TIMEOUT_MS / 1000 if timeout_seconds is None else timeout_seconds
    try:
        parsed = make_url(normalize_database_url(url))
    except Exception as exc:  # sqlalchemy raises ArgumentError with the URL in the text
        raise ConfigError(f"EXECLOG_DATABASE_URL={url!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise ConfigError(
                f"EXECLOG_DATABASE_URL={url!r}: an in-memory SQLite database cannot be shared "
                "between the writer and readers; name a file"
            )
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": timeout},
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=timeout,
        )
        busy_timeout_ms = int(timeout * 1000)

        def configure(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # First: only a file that has no page yet takes it; WAL mode then fixes it for good.
            cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        event.listen(engine, "connect", configure)
        return engine
    engine = create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=timeout,
        connect_args={"connect_timeout": max(1, math.ceil(timeout))},
    )
    if timeout_seconds is not None:
        # The server's deadline (issue 9, item 4) for a statement too: one that waits on a
        # locked table is cancelled, so a request answers 503 (WebSocket 1013) instead of
        # hanging, and the writer retries with back-off. Migrations lift it for themselves.
        timeout_ms = max(1, int(timeout * 1000))
        settings = (
            ("SET statement_timeout = 0", f"SET lock_timeout = {timeout_ms}")
            if maintenance
            else (f"SET statement_timeout = {timeout_ms}",)
        )

        def configure_postgres(dbapi_connection: Any, _record: Any) -> None:
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            try:
                for statement in settings:
                    dbapi_connection.execute(statement)
            finally:
                dbapi_connection.autocommit = autocommit

        event.listen(engine, "connect", configure_postgres)
    return engine
