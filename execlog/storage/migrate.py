"""Apply Alembic migrations programmatically: at start-up and from ``execlog migrate``."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from execlog.storage.database import run_in_thread

__all__ = ["arun_migrations", "run_migrations", "current_revision", "head_revision"]


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "execlog.storage:migrations")
    return config


def run_migrations(engine: Engine) -> None:
    """Upgrade the database to the newest revision; a no-op when it is already there."""
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


async def arun_migrations(engine: Engine) -> None:
    """``run_migrations`` off the event loop (the app's start-up)."""
    await run_in_thread(run_migrations, engine)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()
