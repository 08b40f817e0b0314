"""Apply Alembic migrations programmatically: at start-up and from ``execlog migrate``."""

from __future__ import annotations

import logging

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from execlog.storage.database import (
    SQLITE_PAGE_SIZE,
    fetch_sqlite_page_size,
    is_sqlite,
    run_in_thread,
)

__all__ = ["arun_migrations", "run_migrations", "current_revision", "head_revision"]

logger = logging.getLogger(__name__)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "execlog.storage:migrations")
    return config


def run_migrations(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (the newest by default); a no-op when it is there."""
    config = _alembic_config()
    with engine.begin() as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        if not is_sqlite(engine):
            # A migration may rewrite a large table: the server's statement deadline is for
            # requests, not for this (issue 9).
            connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        upgraded = MigrationContext.configure(connection).get_current_revision() != before
    if upgraded and is_sqlite(engine):
        # A migration that rewrote the entries table (0004) left a WAL the size of the new
        # table: copy it into the file and cut the WAL back to nothing, not to a 1 GB file.
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    if is_sqlite(engine) and (page_size := fetch_sqlite_page_size(engine)) < SQLITE_PAGE_SIZE:
        # A file made before issue 9 keeps its pages: say once per start how to convert it.
        logger.warning(
            "SQLite file has %d-byte pages (new files: %d); long lines ingest several times "
            "slower. With the server stopped, `execlog migrate --convert-page-size` rewrites it",
            page_size,
            SQLITE_PAGE_SIZE,
        )


async def arun_migrations(engine: Engine) -> None:
    """``run_migrations`` off the event loop (the app's start-up)."""
    await run_in_thread(run_migrations, engine)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()
