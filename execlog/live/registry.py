"""MsgStoreRegistry: the MsgStores of every running process, one per channel, by process id.

The supervisor creates a process's pair when it starts and removes it once its entries are in the
database; history pages and WebSocket streams look them up here while it runs.
"""

from __future__ import annotations

from execlog.config import Settings
from execlog.live.msg_store import MsgStore
from execlog.protocol import Channel

__all__ = ["MsgStoreRegistry"]


class MsgStoreRegistry:
    """Process id → (raw store, normalized store), all with the same limits."""

    __slots__ = ("_max_bytes", "_max_entries", "_queue_capacity", "_stores")

    def __init__(self, max_bytes: int, max_entries: int, queue_capacity: int) -> None:
        if max_bytes < 1 or max_entries < 1 or queue_capacity < 1:
            raise ValueError("max_bytes, max_entries and queue_capacity must be at least 1")
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._queue_capacity = queue_capacity
        self._stores: dict[str, tuple[MsgStore, MsgStore]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> MsgStoreRegistry:
        """Limits from ``EXECLOG_LOG_HISTORY_MAX_BYTES`` / ``_MAX_ENTRIES`` and
        ``EXECLOG_WS_QUEUE_CAPACITY``."""
        return cls(
            settings.log_history_max_bytes,
            settings.log_history_max_entries,
            settings.ws_queue_capacity,
        )

    def create(
        self, process_id: str, *, first_index_raw: int, first_index_normalized: int
    ) -> tuple[MsgStore, MsgStore]:
        """Create and register the (raw, normalized) stores of a process; ValueError if it
        already has them (two stores for one channel would hand out the same indexes)."""
        if process_id in self._stores:
            raise ValueError(f"execution process {process_id} already has live stores")
        pair = (
            self._create_store(process_id, "raw", first_index_raw),
            self._create_store(process_id, "normalized", first_index_normalized),
        )
        self._stores[process_id] = pair
        return pair

    def get(self, process_id: str, channel: Channel) -> MsgStore | None:
        pair = self._stores.get(process_id)
        if pair is None:
            return None
        return pair[0] if channel == "raw" else pair[1]

    def remove(self, process_id: str) -> None:
        """Forget a process's stores (idempotent); its open subscriptions keep working."""
        self._stores.pop(process_id, None)

    def __len__(self) -> int:
        return len(self._stores)

    def __contains__(self, process_id: object) -> bool:
        return process_id in self._stores

    def _create_store(self, process_id: str, channel: Channel, first_index: int) -> MsgStore:
        return MsgStore(
            process_id,
            channel,
            max_bytes=self._max_bytes,
            max_entries=self._max_entries,
            queue_capacity=self._queue_capacity,
            first_index=first_index,
        )
