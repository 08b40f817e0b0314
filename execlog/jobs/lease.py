"""This server's lease (issue 10, "one owner per process"): an id of its own, a row in
``server_leases`` renewed every ``EXECLOG_LEASE_HEARTBEAT_SECONDS`` and valid for three
heartbeats. At start-up a server claims only the processes of servers whose lease expired, so
two servers on one database never mark each other's running processes ``killed``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from typing import Final

from execlog.protocol import now_ms
from execlog.runner.descendants import read_boot_id
from execlog.storage.ownership import LeaseHolder, OwnershipStore

__all__ = ["LEASE_HEARTBEATS", "ServerLease"]

logger = logging.getLogger(__name__)

# A lease outlives this many missed heartbeats: a loaded machine may be late once or twice.
LEASE_HEARTBEATS: Final = 3


class ServerLease:
    def __init__(self, ownership: OwnershipStore, heartbeat_seconds: float) -> None:
        self.server_id = str(uuid.uuid4())
        self.boot_id = read_boot_id()
        self._ownership = ownership
        self._heartbeat_seconds = heartbeat_seconds
        self._holder = LeaseHolder(self.server_id, socket.gethostname(), self.boot_id, os.getpid())

    @property
    def ttl_ms(self) -> int:
        return int(self._heartbeat_seconds * LEASE_HEARTBEATS * 1000)

    async def renew(self) -> None:
        now = now_ms()
        await self._ownership.arenew_lease(self._holder, now, now + self.ttl_ms)

    async def keep_renewing(self) -> None:
        """The heartbeat, until cancelled; a failed renewal is logged and retried."""
        while True:
            await asyncio.sleep(self._heartbeat_seconds)
            try:
                await self.renew()
            except Exception as exc:  # the database may be down for a while: keep beating
                logger.warning("server lease %s: renewal failed: %s", self.server_id, exc)

    async def release(self) -> None:
        """A clean shutdown: its processes are ended already, nothing to claim."""
        await self._ownership.arelease_lease(self.server_id)
