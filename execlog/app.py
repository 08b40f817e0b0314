"""ASGI application factory and start-up order: migrations, backfill of legacy JSONL (a later
job), orphan marking, the writer; then requests. Shutdown stops processes, then flushes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from execlog import __version__
from execlog.api import approvals, events, logs, sessions
from execlog.api.envelope import install_error_handlers
from execlog.api.security import SecurityMiddleware
from execlog.config import Settings
from execlog.services import Services
from execlog.storage.migrate import run_migrations

__all__ = ["create_app"]

logger = logging.getLogger("execlog")


def create_app(settings: Settings, *, server_url: str | None = None) -> FastAPI:
    """The app; ``server_url`` is where children reach the API (approval hooks)."""
    services = Services.build(settings)
    services.supervisor.server_url = server_url

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(run_migrations, services.engine)
        orphans = await asyncio.to_thread(
            services.supervisor.mark_orphans, services.entries, services.legacy
        )
        if orphans:
            logger.warning("marked %d orphaned process(es) killed", len(orphans))
        await services.writer.start()
        try:
            yield
        finally:
            await services.supervisor.shutdown()
            await services.writer.close()
            services.engine.dispose()

    app = FastAPI(
        title="execlog",
        version=__version__,
        summary="Run coding agents; their logs tail-first over HTTP and live over WebSockets.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    for module in (sessions, logs, approvals, events):
        app.include_router(module.router)
    app.add_middleware(SecurityMiddleware, settings=settings)
    return app
