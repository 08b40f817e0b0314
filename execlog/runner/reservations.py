"""Durable bounds of entry indexes (CONTRACT.md, "entry index": an index is never given to a
different entry, not even one that reached a client but was never committed before a crash).

Before a channel's store publishes index ``i``, ``i`` lies below a bound committed to the
database (``execution_processes.*_index_reserved``). After a kill -9 the next server puts the
process's note entry at that bound or above, so an index a client may have seen is never
reused; the gap between what was stored and the bound is explained by the note. Bounds grow
ahead of the output in doubling blocks (1024 up to 65536 indexes), extended in the storage
thread once half a block is used, so the event loop blocks on the database only when output
outruns an extension. docs/api.md, "Entry indexes after a crash".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from execlog.protocol import Channel
from execlog.storage.ownership import OwnershipStore

__all__ = ["FIRST_BLOCK", "IndexReservation"]

logger = logging.getLogger(__name__)

FIRST_BLOCK: Final = 1024
MAX_BLOCK: Final = 65_536


class IndexReservation:
    """One channel's bound; ``admit`` is the store's hook before it publishes an index."""

    def __init__(
        self, ownership: OwnershipStore, process_id: str, channel: Channel, reserved_below: int
    ) -> None:
        self._ownership = ownership
        self._process_id = process_id
        self._channel: Channel = channel
        self.reserved_below = reserved_below
        self._extending: asyncio.Future[None] | None = None
        self._warned = False

    def admit(self, index: int) -> None:
        if index < self.reserved_below:
            if self._extending is None and index >= self.reserved_below - self._block() // 2:
                self._extend_in_background(self._target(self.reserved_below))
            return
        # Output outran the extension: block until the bound is committed (rare: a few times
        # in a process's life, each one commit).
        target = self._target(index)
        try:
            self._ownership.reserve_indexes(self._process_id, self._channel, target)
        except Exception as exc:  # the database is down: keep serving, say what is at risk
            if not self._warned:
                self._warned = True
                logger.warning(
                    "process %s/%s: cannot reserve indexes (%s); a crash now may reuse some",
                    self._process_id,
                    self._channel,
                    exc,
                )
            return
        self.reserved_below = max(self.reserved_below, target)

    def _block(self) -> int:
        return min(MAX_BLOCK, max(FIRST_BLOCK, self.reserved_below))

    def _target(self, index: int) -> int:
        return index + self._block()

    def _extend_in_background(self, target: int) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            None, self._ownership.reserve_indexes, self._process_id, self._channel, target
        )
        self._extending = future

        def done(finished: asyncio.Future[None]) -> None:
            self._extending = None
            if not finished.cancelled() and finished.exception() is None:
                self.reserved_below = max(self.reserved_below, target)

        future.add_done_callback(done)
