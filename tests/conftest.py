"""Shared fixtures: real SQLite files (and PostgreSQL when EXECLOG_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from execlog.storage.database import create_database_engine
from execlog.storage.migrate import run_migrations


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    """Factory: a migrated engine on a fresh SQLite file (or a named one, to reopen it)."""
    engines: list[Engine] = []

    def factory(name: str = "execlog.db", *, migrate: bool = True) -> Engine:
        engine = create_database_engine(f"sqlite:///{tmp_path / name}")
        if migrate:
            run_migrations(engine)
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        engine.dispose()


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    return make_engine()
