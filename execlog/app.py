"""ASGI application factory and start-up order: migrations, the writer, orphan marking, the
backfill of legacy JSONL (``EXECLOG_BACKFILL_MODE``); then requests, with the hourly retention
cleanup beside them. Shutdown stops processes, then flushes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from execlog import __version__
from execlog.api import (
    approvals,
    downloads,
    events,
    health,
    logs,
    raw_search,
    retired,
    sessions,
    webui,
)
from execlog.api.envelope import install_error_handlers
from execlog.api.security import SecurityMiddleware
from execlog.api.webui import DEFAULT_STATIC_DIR, install_web_ui
from execlog.config import BackfillMode, Settings
from execlog.jobs.orphans import mark_orphans
from execlog.protocol import (
    CLOSE_INVALID_REQUEST,
    CLOSE_NORMAL,
    CLOSE_NOT_FOUND,
    NOT_FOUND_CLOSE_REASON,
)
from execlog.runner.child import ChildProcess
from execlog.runner.descendants import is_child_subreaper, reap_orphans_periodically
from execlog.services import Services
from execlog.storage.backfills import BackfillLedger
from execlog.storage.migrate import arun_migrations

__all__ = ["create_app"]

# FastAPI's OpenAPI page lists HTTP routes only; the streams are listed here so /docs names
# every endpoint (CONTRACT.md, "Approvals, the session event stream ... list every endpoint").
API_DESCRIPTION = f"""
Every JSON body is an envelope: `{{"success": true, "data": ..., "message": null}}`, or with a
4xx/5xx status `{{"success": false, "data": null, "message": "<what was wrong>"}}`.

**WebSocket streams** (not shown as operations below):

- `WS /api/execution-processes/{{id}}/raw-logs/v2/ws?after=N`
- `WS /api/execution-processes/{{id}}/normalized-logs/v2/ws?after=N`

Frames: `{{"type": "append" | "replace", "entry_index": N, "entry": <payload>}}`, then
`{{"type": "finished"}}` and close {CLOSE_NORMAL}. `after=N` replays every entry with index > N
(memory or database) before live events. Unknown process: close {CLOSE_NOT_FOUND}
`{NOT_FOUND_CLOSE_REASON}`; malformed id or `after`: close {CLOSE_INVALID_REQUEST}. A subscriber
that falls behind is resynced with `replace` frames without closing.

**Raw log search and download**: `GET …/raw-logs/v2/search?q=` (entry indexes newest first,
bounded in time: `truncated`, `next_cursor`) and `GET …/raw-logs/v2/download?format=text|ndjson`
(streamed attachment).

**Server-sent events**: `GET /api/events` (`session_created`, `process_updated`,
`approval_updated`, `resync`).

With `EXECLOG_AUTH_TOKEN` set, send `Authorization: Bearer <token>` (or `?token=`, or the
`execlog_token` cookie; a valid `?token=` sets that cookie). WebSocket handshakes and POST
requests from a foreign `Origin` get 403.

**Web UI**: every other `GET` outside `/api/` (`/`, `/sessions/{id}`, `/processes/{id}`) is
the single-page app.
"""

logger = logging.getLogger("execlog")
backfill_logger = logging.getLogger("execlog.backfill")


def _start_legacy_jobs(services: Services) -> list[asyncio.Task[object]]:
    """The background backfill (``EXECLOG_BACKFILL_MODE=background``) and the hourly retention
    cleanup (unless ``EXECLOG_LEGACY_JSONL_RETENTION_DAYS=0``)."""
    tasks: list[asyncio.Task[object]] = []
    if services.settings.backfill_mode is BackfillMode.BACKGROUND:
        run = services.backfiller.run_pending(BackfillMode.BACKGROUND, backfill_logger.info)
        tasks.append(asyncio.create_task(run))
    if services.settings.legacy_jsonl_retention_days > 0:
        cleanup = services.retention.run_hourly(logging.getLogger("execlog.retention").info)
        tasks.append(asyncio.create_task(cleanup))
    return tasks


def create_app(
    settings: Settings, *, server_url: str | None = None, static_dir: Path = DEFAULT_STATIC_DIR
) -> FastAPI:
    """The app; ``server_url`` is where children reach the API (approval hooks); ``static_dir``
    holds the web UI's build."""
    services = Services.build(settings)
    services.supervisor.server_url = server_url

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await arun_migrations(services.engine)
        await services.writer.start()
        await services.lease.renew()
        await mark_orphans(
            services.ownership,
            services.entries,
            services.writer,
            BackfillLedger(services.engine),
            settings.stop_grace_seconds,
        )
        if settings.backfill_mode is BackfillMode.STARTUP:
            await services.backfiller.run_pending(BackfillMode.STARTUP, backfill_logger.info)
        tasks = _start_legacy_jobs(services)
        tasks.append(asyncio.create_task(services.lease.keep_renewing()))
        if is_child_subreaper():  # `execlog serve` made it one: collect the orphans that end
            tasks.append(
                asyncio.create_task(reap_orphans_periodically(ChildProcess.live_pids.copy))
            )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await services.supervisor.shutdown()
            await services.writer.close()
            try:
                await services.lease.release()
            except Exception as exc:  # it expires on its own; the shutdown goes on
                logger.warning("server lease: release failed: %s", exc)
            services.engine.dispose()
            services.maintenance_engine.dispose()

    app = FastAPI(
        title="execlog",
        version=__version__,
        summary="Run coding agents; their logs tail-first over HTTP and live over WebSockets.",
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    for module in (sessions, logs, raw_search, downloads, approvals, events, retired, health):
        app.include_router(module.router)
    app.include_router(webui.config_router)
    install_web_ui(app, static_dir)
    app.add_middleware(SecurityMiddleware, settings=settings)
    return app
