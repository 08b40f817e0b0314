"""``GET /api/health`` (CONTRACT.md): database reachability, the writer's queue in rows and
bytes, running processes, history bytes held in memory and live subscribers. A full disk or a
write error being retried shows here too (issue 9), so an operator sees why output waits."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from sqlalchemy import Engine, text
from starlette.responses import Response

from execlog.api.dependencies import ServicesDep
from execlog.api.envelope import success_response
from execlog.protocol import CHANNELS
from execlog.storage.database import describe_database_error, run_in_thread

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/health")
async def get_health(services: ServicesDep) -> Response:
    """Database reachability (`ok` or the error), writer queue rows and bytes, running
    processes, history bytes held in memory, WebSocket subscribers; `writer_error`,
    `disk_full` and `rejected_writes` say why output may be waiting."""
    database = await _check_database(services.engine, services.settings.db_timeout_seconds)
    writer = services.writer.health()
    if database == "ok" and writer.disk_full:
        database = f"disk full: {writer.last_error}"
    running = list(services.registry)
    stores = [process.store(channel) for process in running for channel in CHANNELS]
    return success_response(
        {
            "database": database,
            "writer_queue_rows": writer.queue_rows,
            "writer_queue_bytes": writer.queue_bytes,
            "running_processes": len(running),
            "history_bytes": sum(store.held_bytes for store in stores),
            "subscribers": sum(store.subscriber_count for store in stores),
            "writer_error": writer.last_error,
            "disk_full": writer.disk_full,
            "rejected_writes": writer.rejected_writes,
        }
    )


async def _check_database(engine: Engine, timeout: float) -> str:
    """``ok`` when a trivial query answers within the deadline, else what went wrong."""

    def ping() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    try:
        async with asyncio.timeout(timeout):
            await run_in_thread(ping)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as exc:  # any failure is the answer here, reported, not raised
        return describe_database_error(exc)
    return "ok"
