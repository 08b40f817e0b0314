"""Answers during a database outage (issue 9, item 4), on a real server. SQLite: a real file
whose write lock another connection holds for 10 s. PostgreSQL: the service's tables locked
(ACCESS EXCLUSIVE) by another session for 10 s, so reads wait as well, until
``statement_timeout`` (EXECLOG_DB_TIMEOUT_SECONDS) cancels them. Every request answers within
the deadline (plus scheduling slack) with its page or a 503 and a message; writes answer 503,
never 500; nothing is lost once the lock is gone."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from websockets.asyncio.client import connect

from execlog.config import LogPersistence
from execlog.storage.database import create_database_engine, normalize_database_url
from execlog.storage.entries import EntryRow, EntryStats, EntryStore
from execlog.storage.legacy import LegacyLogStore
from execlog.storage.migrate import run_migrations
from execlog.storage.writer import EntryWrite, LogWriter
from tests.api.helpers import create_session, script_body, wait_for_process_end, walk_history
from tests.api.test_logs_ws import (
    http_client,
    receive_frame,
    start_held_process,
    stream_url,
    wait_until,
)
from tests.conftest import POSTGRES_URL, LiveServer

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]

DB_TIMEOUT = 5.0
LOCK_SECONDS = 10.0
SLACK = 2.5  # a loaded 2-core machine


async def timed(request: asyncio.Future[httpx.Response] | object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request  # type: ignore[misc]
    return response, time.monotonic() - started


@contextmanager
def sqlite_write_lock(server: LiveServer) -> Iterator[None]:
    """Another connection holds the file's write lock; readers go on."""
    database = server.services.engine.url.database
    assert database is not None
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        blocker.rollback()
        blocker.close()


# The tables a request or the writer touches, in the order the writer takes them (entries, then
# legacy rows); server_leases stays free (the lease heartbeat).
LOCKED_TABLES = (
    "execution_process_log_entries, execution_process_logs, sessions, execution_processes, "
    "coding_agent_turns, legacy_backfills"
)
LOCK_ATTEMPTS = 5


@contextmanager
def postgres_table_lock(conninfo: str) -> Iterator[None]:
    """Another session holds ACCESS EXCLUSIVE locks: reads wait as well as writes. LOCK TABLE
    takes them one by one, so a server transaction in flight may deadlock with it; PostgreSQL
    then cancels the LOCK, and it is taken again (bounded)."""
    with psycopg.connect(conninfo) as blocker:
        for attempt in range(LOCK_ATTEMPTS):
            try:
                blocker.execute(f"LOCK TABLE {LOCKED_TABLES} IN ACCESS EXCLUSIVE MODE")
                break
            except psycopg.errors.DeadlockDetected:
                blocker.rollback()
                if attempt == LOCK_ATTEMPTS - 1:
                    raise
        try:
            yield
        finally:
            blocker.rollback()


async def test_requests_answer_within_the_deadline_during_a_write_lock(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server(db_timeout_seconds=DB_TIMEOUT, log_history_max_entries=50)
    await check_answers_during_outage(server, tmp_path, lambda: sqlite_write_lock(server))


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL (for the server and for psycopg) whose sessions use a schema of their own, dropped
    afterwards; skipped, visibly, without EXECLOG_TEST_POSTGRES_URL."""
    if not POSTGRES_URL:
        pytest.skip("EXECLOG_TEST_POSTGRES_URL is not set: PostgreSQL outage test skipped")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_database_url(POSTGRES_URL))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.postgres
async def test_requests_answer_within_the_deadline_while_postgres_tables_are_locked(
    postgres_schema_url: str, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    # The schema fixture comes first: torn down last, after the server has stopped.
    url = postgres_schema_url
    server = live_server(
        database_url=url, db_timeout_seconds=DB_TIMEOUT, log_history_max_entries=50
    )
    await check_answers_during_outage(
        server, tmp_path, lambda: postgres_table_lock(url), reads_wait=True
    )


async def check_answers_during_outage(
    server: LiveServer,
    tmp_path: Path,
    lock: Callable[[], AbstractContextManager[None]],
    *,
    reads_wait: bool = False,
) -> None:
    """The checks of both databases. ``reads_wait``: the lock blocks reads too, so a page that
    needs the database must be cut off by the deadline (503), not served."""
    gate = tmp_path / "gate"
    async with http_client(server) as client:
        ended = await create_session(client, script_body("for i in range(300): print(i)"))
        ended_id = ended["processes"][0]["id"]
        assert (await wait_for_process_end(client, ended_id))["status"] == "completed"
        running_id = await start_held_process(server, client, 400, 500, gate)
        writer = server.services.writer
        await wait_until(lambda: writer.pending_rows == 0, "the writer's queue to drain")
        with lock():
            lock_started = time.monotonic()
            gate.touch()  # the running process writes 100 more lines behind the lock
            base = "/api/execution-processes"
            checks = {
                "memory tail": client.get(f"{base}/{running_id}/raw-logs/v2", params={"limit": 20}),
                # Evicted entries of a running process: the writer's queue must be flushed first.
                "evicted page": client.get(
                    f"{base}/{running_id}/raw-logs/v2", params={"limit": 50, "cursor": 100}
                ),
                "health": client.get("/api/health"),
                "stored page": client.get(f"{base}/{ended_id}/raw-logs/v2", params={"limit": 50}),
                "new session": client.post("/api/sessions", json=script_body("print(1)")),
                "process": client.get(f"{base}/{ended_id}"),
            }
            results = dict(
                zip(checks, await asyncio.gather(*(timed(c) for c in checks.values())), strict=True)
            )
            for name, (response, elapsed) in results.items():
                assert elapsed < DB_TIMEOUT + SLACK, (name, elapsed, response.text[:200])
                assert response.status_code in (200, 201, 503), (name, response.text[:200])
                if response.status_code == 503:
                    assert "database" in response.json()["message"], name
            assert results["memory tail"][0].status_code == 200
            if reads_wait:
                assert results["stored page"][0].status_code == 503
            health = results["health"][0].json()["data"]
            assert health["writer_queue_rows"] > 0 and health["running_processes"] == 1
            # A stream that needs the database: within the deadline, entries or close 1013.
            stream_started = time.monotonic()
            async with connect(stream_url(server, running_id, after=10)) as ws:
                while (frame := await receive_frame(ws)) is not None:
                    assert frame["type"] != "finished" or frame
            assert time.monotonic() - stream_started < DB_TIMEOUT + SLACK
            assert ws.close_code in (1000, 1013), ws.close_code
            assert results["new session"][0].status_code == 503
            assert server.services.writer.health().queue_rows > 0  # still held back
            remaining = LOCK_SECONDS - (time.monotonic() - lock_started)
            await asyncio.sleep(max(0.0, remaining))
        # Once the database is back, everything the running process wrote is there.
        assert (await wait_for_process_end(client, running_id))["status"] == "completed"
        entries = await walk_history(client, running_id, "raw", 200)
        assert [e["entry"]["content"] for e in entries] == [str(i) for i in range(500)]
        session = await create_session(client, script_body("print(1)"))
        assert session["processes"]


@pytest.mark.postgres
async def test_writes_cancelled_by_the_postgres_deadline_are_retried_not_dropped(
    postgres_schema_url: str,
) -> None:
    """PostgreSQL's entry writes COPY through the raw driver. A COPY that waits on a locked
    table past ``statement_timeout`` is cancelled with psycopg's own ``QueryCanceled``, which
    the writer took for a permanent error: it dropped the writes. It is raised as SQLAlchemy's
    ``OperationalError`` now: retried with back-off, and every write lands once the lock goes."""
    url = postgres_schema_url
    engine = create_database_engine(url, timeout_seconds=0.2)
    run_migrations(engine)
    entries = EntryStore(engine)
    process_id = str(uuid.uuid4())
    rows = [EntryRow(process_id, "raw", i, '{"type":"STDOUT","content":"x"}') for i in range(50)]
    try:
        with postgres_table_lock(url):
            with pytest.raises(OperationalError, match="statement timeout"):
                entries.upsert_entries_now(rows)

        writer = LogWriter(entries, LegacyLogStore(engine), LogPersistence.ENTRIES)
        await writer.start()
        try:
            with postgres_table_lock(url):
                for row in rows:
                    await writer.submit(
                        EntryWrite(row.process_id, row.channel, row.entry_index, row.entry_json)
                    )
                deadline = time.monotonic() + 30
                while writer.failed_commits < 2:  # cancelled at least twice behind the lock
                    assert time.monotonic() < deadline, "the commit was never cancelled"
                    await asyncio.sleep(0.02)
            await writer.flush()
        finally:
            await writer.close()
        assert writer.rejected_writes == 0
        assert entries.fetch_stats(process_id, "raw") == EntryStats(50, 0, 49)
    finally:
        engine.dispose()
