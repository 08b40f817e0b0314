"""WAL checkpoints beside a bulk writer (issue 11, the backfill): the writer's transactions
commit without checkpointing, and a thread of its own copies the WAL into the database file and
syncs it while the writer goes on with its next batch. SQLite only; elsewhere a plain
transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Final

from sqlalchemy import Connection, Engine

from execlog.storage.database import driver_errors_wrapped

__all__ = ["BackgroundCheckpoints"]

# SQLite restarts the WAL from its start only when a write begins after a checkpoint has copied
# every frame; with checkpoints running beside a writer that never pauses, it would grow with
# every write. Every this many writes the writer waits for the running checkpoint and copies the
# rest itself (the last write or two): the WAL holds at most about this many writes (the
# backfill's are bounded: 16 MiB of payloads, or a group of 8 MiB of JSONL).
_RESTART_WRITES: Final = 4


class BackgroundCheckpoints:
    """Use as a context manager around a run of bulk writes; ``writing()`` for each write
    transaction. On leaving, what the checkpoints have not copied yet is copied, so the run
    leaves no more in the WAL than before it."""

    def __init__(self, engine: Engine, *, restart_writes: int = _RESTART_WRITES) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._restart_writes = restart_writes
        self._pool: ThreadPoolExecutor | None = None
        self._running: Future[None] | None = None
        self._started = False  # the first write is done (it is a plain one)
        self._writes = 0  # since the writer last copied everything itself
        self._uncopied = False  # a write committed since the last checkpoint started

    def __enter__(self) -> BackgroundCheckpoints:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_rest: object) -> None:
        self.close(copy_rest=exc_type is None)

    def close(self, *, copy_rest: bool = True) -> None:
        """Wait for the running checkpoint and (``copy_rest``) copy what no checkpoint has
        copied yet. Blocks: from the event loop, in a thread."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            if copy_rest:
                self._collect()
                if self._uncopied:
                    self._checkpoint()
        finally:
            pool.shutdown(wait=copy_rest)

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction (committed on leaving) whose commit does not checkpoint; a
        checkpoint starts after it unless one is running. The run's first write is a plain one
        (SQLite's automatic checkpoint, as everywhere else): a run of one write, such as the
        on-demand backfill of a small log before a read, costs what it did, and closing has
        nothing to copy (a PASSIVE checkpoint copies every writer's frames)."""
        if not self._sqlite or not self._started:
            self._started = True
            with self._engine.begin() as connection:
                yield connection
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="execlog-checkpoint")
        if self._writes >= self._restart_writes:
            self._collect()
            self._checkpoint()  # all copied: this write starts the WAL over
            self._writes = 0
        with self._engine.connect() as connection:
            driver = connection.connection.dbapi_connection
            assert driver is not None
            with driver_errors_wrapped(connection):
                automatic = driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
                driver.execute("PRAGMA wal_autocheckpoint=0")
            try:
                with connection.begin():
                    yield connection
            finally:
                with driver_errors_wrapped(connection):
                    driver.execute(f"PRAGMA wal_autocheckpoint={int(automatic)}")
        self._writes += 1
        self._uncopied = True
        if self._running is None or self._running.done():
            self._collect()
            self._running = self._pool.submit(self._checkpoint)

    def _collect(self) -> None:
        if self._running is not None:
            self._running.result()
            self._running = None

    def _checkpoint(self) -> None:
        """``PRAGMA wal_checkpoint(PASSIVE)``: never waits for readers or writers."""
        self._uncopied = False
        with self._engine.connect() as connection:
            driver = connection.connection.dbapi_connection
            assert driver is not None
            with driver_errors_wrapped(connection):
                driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
