"""Who owns a running process, and what must survive a crash of its owner (issue 10):

- each server holds a lease (``server_leases``) that its heartbeat renews; a process belongs to
  the server that started it (``server_id``), so at start-up a server claims only the processes
  of servers whose lease expired, never those of another live server on the same database;
- the child's pid, process group and ``/proc`` start time, stored at spawn, let the claiming
  server stop an orphan safely (a reused pid never matches the start time);
- each channel's ``*_index_reserved`` is the durable bound below which indexes may have been
  published: a restart puts the note entry at or above it, so no index is ever given to
  different content (CONTRACT.md, "entry index").

Blocking Core statements; the ``a``-prefixed forms run them in the storage thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, and_, delete, func, insert, not_, or_, select, update

from execlog.protocol import Channel
from execlog.storage.database import run_in_thread
from execlog.storage.tables import execution_processes, server_leases

__all__ = ["LeaseHolder", "OrphanRecord", "OwnershipStore"]


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """A server as its lease row names it."""

    server_id: str
    hostname: str
    boot_id: str
    pid: int


@dataclass(frozen=True, slots=True)
class OrphanRecord:
    """A process claimed from a server whose lease expired (or that had none)."""

    process_id: str
    pid: int | None
    pgid: int | None
    pid_start_time: int | None
    raw_index_reserved: int
    normalized_index_reserved: int
    owner_boot_id: str | None  # None: the owner's lease row is gone or there was no owner

    def index_reserved(self, channel: Channel) -> int:
        return self.raw_index_reserved if channel == "raw" else self.normalized_index_reserved


_RESERVED = {
    "raw": execution_processes.c.raw_index_reserved,
    "normalized": execution_processes.c.normalized_index_reserved,
}


class OwnershipStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- leases ---------------------------------------------------------------------------

    def renew_lease(self, holder: LeaseHolder, now: int, expires_at: int) -> None:
        """Create or extend ``holder``'s lease."""
        with self._engine.begin() as connection:
            renewed = connection.execute(
                update(server_leases)
                .where(server_leases.c.server_id == holder.server_id)
                .values(expires_at=expires_at)
            ).rowcount
            if not renewed:
                connection.execute(
                    insert(server_leases).values(
                        server_id=holder.server_id,
                        hostname=holder.hostname,
                        boot_id=holder.boot_id,
                        pid=holder.pid,
                        started_at=now,
                        expires_at=expires_at,
                    )
                )

    def release_lease(self, server_id: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(delete(server_leases).where(server_leases.c.server_id == server_id))

    # --- processes ------------------------------------------------------------------------

    def record_spawn(self, process_id: str, pid: int, pgid: int, start_time: int | None) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(execution_processes)
                .where(execution_processes.c.id == process_id)
                .values(pid=pid, pgid=pgid, pid_start_time=start_time)
            )

    def reserve_indexes(self, process_id: str, channel: Channel, below: int) -> None:
        """Durably allow indexes ``< below`` on ``channel`` (never lowers the bound)."""
        column = _RESERVED[channel]
        with self._engine.begin() as connection:
            connection.execute(
                update(execution_processes)
                .where(and_(execution_processes.c.id == process_id, column < below))
                .values({column.key: below})
            )

    def claim_orphans(self, now: int) -> list[OrphanRecord]:
        """Mark ``killed`` every running process whose server holds no live lease (or that has
        no server: rows from before leases); return them."""
        live = select(server_leases.c.server_id).where(server_leases.c.expires_at > now)
        orphaned = and_(
            execution_processes.c.status == "running",
            or_(
                execution_processes.c.server_id.is_(None),
                not_(execution_processes.c.server_id.in_(live)),
            ),
        )
        query = (
            select(
                execution_processes.c.id,
                execution_processes.c.pid,
                execution_processes.c.pgid,
                execution_processes.c.pid_start_time,
                execution_processes.c.raw_index_reserved,
                execution_processes.c.normalized_index_reserved,
                server_leases.c.boot_id,
            )
            .select_from(
                execution_processes.outerjoin(
                    server_leases, server_leases.c.server_id == execution_processes.c.server_id
                )
            )
            .where(orphaned)
        )
        with self._engine.begin() as connection:
            rows = connection.execute(query).all()
            records = [OrphanRecord(*row) for row in rows]
            if records:
                connection.execute(
                    update(execution_processes)
                    .where(execution_processes.c.id.in_([r.process_id for r in records]))
                    .values(status="killed", completed_at=now)
                )
            # Expired leases whose processes are all claimed now serve no one.
            connection.execute(
                delete(server_leases).where(
                    and_(
                        server_leases.c.expires_at <= now,
                        not_(
                            server_leases.c.server_id.in_(
                                select(func.coalesce(execution_processes.c.server_id, "")).where(
                                    execution_processes.c.status == "running"
                                )
                            )
                        ),
                    )
                )
            )
        return records

    # --- awaitable forms ------------------------------------------------------------------

    async def arenew_lease(self, holder: LeaseHolder, now: int, expires_at: int) -> None:
        await run_in_thread(self.renew_lease, holder, now, expires_at)

    async def arelease_lease(self, server_id: str) -> None:
        await run_in_thread(self.release_lease, server_id)

    async def arecord_spawn(
        self, process_id: str, pid: int, pgid: int, start_time: int | None
    ) -> None:
        await run_in_thread(self.record_spawn, process_id, pid, pgid, start_time)

    async def aclaim_orphans(self, now: int) -> list[OrphanRecord]:
        return await run_in_thread(self.claim_orphans, now)

    async def areserve_indexes(self, process_id: str, channel: Channel, below: int) -> None:
        await run_in_thread(self.reserve_indexes, process_id, channel, below)
