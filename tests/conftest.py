"""Shared fixtures: real SQLite files (and PostgreSQL when EXECLOG_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from execlog.storage.database import create_database_engine, normalize_database_url
from execlog.storage.migrate import run_migrations


@pytest.fixture(autouse=True)
def user_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test (and every `execlog` it starts) gets its own user data directory, so a
    generated token or default database never lands in the real one (execlog.auth)."""
    directory = tmp_path / "user-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(directory))
    return directory / "execlog"


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


POSTGRES_URL = os.environ.get("EXECLOG_TEST_POSTGRES_URL")


@pytest.fixture
def postgres_engine() -> Iterator[Engine]:
    """A migrated engine on a schema of its own, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("EXECLOG_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    url = normalize_database_url(POSTGRES_URL)
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        run_migrations(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_engine(request: pytest.FixtureRequest, make_engine: Callable[..., Engine]) -> Engine:
    """A migrated engine on each database execlog supports: the storage tests run on both
    (PostgreSQL is skipped, with the reason shown, when EXECLOG_TEST_POSTGRES_URL is unset)."""
    if request.param == "sqlite":
        return make_engine()
    postgres: Engine = request.getfixturevalue("postgres_engine")
    return postgres


# --- servers ----------------------------------------------------------------------------------

import threading  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import pytest_asyncio  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from execlog.app import create_app  # noqa: E402
from execlog.config import Settings  # noqa: E402
from execlog.server import bind_socket, build_server, server_url  # noqa: E402
from execlog.services import Services  # noqa: E402


@dataclass
class LiveServer:
    """A real uvicorn server on 127.0.0.1 (port 0) in a background thread."""

    url: str
    app: FastAPI
    settings: Settings

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http") :]

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{tmp_path / 'server.db'}",
            "port": 0,
            "stop_grace_seconds": 2.0,
        }
        values.update(overrides)
        return Settings(**values)

    return factory


@pytest.fixture
def live_server(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., LiveServer]]:
    """Factory: start a server with settings overrides; all are stopped at teardown."""
    running: list[tuple[Any, threading.Thread]] = []

    def start(*, static_dir: Path | None = None, **overrides: Any) -> LiveServer:
        """``static_dir``: the web UI build to serve (default: the package's)."""
        settings = make_settings(**overrides)
        sock = bind_socket("127.0.0.1", 0)
        options: dict[str, Any] = {} if static_dir is None else {"static_dir": static_dir}
        server = build_server(settings, sock, log_level="warning", **options)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = threading.Event()
        for _ in range(600):
            if server.started or not thread.is_alive():
                break
            deadline.wait(0.05)
        assert server.started, "server did not start"
        return LiveServer(url=server_url(sock), app=server.config.app, settings=settings)

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=30)


@pytest_asyncio.fixture
async def app_client(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[..., Any]]:
    """Factory: an in-process app (lifespan run) and an httpx client on it."""
    stack: list[Any] = []

    async def start(**overrides: Any) -> tuple[FastAPI, httpx.AsyncClient]:
        app = create_app(make_settings(**overrides))
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8787"
        )
        stack.append((lifespan, client))
        return app, client

    yield start
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
