"""The one registry of running processes: a ``RunningProcess`` per process id holds everything a
running process has (its record, child, pipeline, two MsgStores, pending approvals, done
signal), created in one operation when the process opens and removed in one when it ends.

The supervisor owns it. Readers get narrower views: history reads a process's stores through
``store(process_id, channel)``; approvals look a process up with ``get`` and hear about its end
through ``on_close``, so the runner never imports what sits above it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from execlog.config import Settings
from execlog.live.msg_store import DEFAULT_QUEUE_BYTES, MsgStore
from execlog.protocol import Channel
from execlog.runner.child import ChildProcess
from execlog.runner.pipeline import ProcessPipeline
from execlog.storage.processes import ProcessRecord

__all__ = ["CloseListener", "PipelineFactory", "ProcessRegistry", "RunningProcess"]

PipelineFactory = Callable[[MsgStore, MsgStore], ProcessPipeline]


@dataclass(eq=False, slots=True, weakref_slot=True)
class RunningProcess:
    """One running process. ``record`` is the live view (its agent session id may not be
    stored yet); ``approval_ids`` are its pending approvals (the approval service owns them)."""

    record: ProcessRecord
    raw: MsgStore
    normalized: MsgStore
    pipeline: ProcessPipeline
    child: ChildProcess | None = None
    stop_requested: bool = False
    approval_ids: set[str] = field(default_factory=set)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None

    @property
    def process_id(self) -> str:
        return self.record.id

    def store(self, channel: Channel) -> MsgStore:
        return self.raw if channel == "raw" else self.normalized


CloseListener = Callable[[RunningProcess], None]


class ProcessRegistry:
    """Process id → RunningProcess; every process's stores have the same limits."""

    __slots__ = (
        "_close_listeners",
        "_max_bytes",
        "_max_entries",
        "_processes",
        "_queue_bytes",
        "_queue_capacity",
    )

    def __init__(
        self,
        max_bytes: int,
        max_entries: int,
        queue_capacity: int,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
    ) -> None:
        if min(max_bytes, max_entries, queue_capacity, queue_bytes) < 1:
            raise ValueError(
                "max_bytes, max_entries, queue_capacity and queue_bytes must be at least 1"
            )
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._queue_capacity = queue_capacity
        self._queue_bytes = queue_bytes
        self._processes: dict[str, RunningProcess] = {}
        self._close_listeners: list[CloseListener] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> ProcessRegistry:
        """Limits from ``EXECLOG_LOG_HISTORY_MAX_BYTES`` / ``_MAX_ENTRIES``,
        ``EXECLOG_WS_QUEUE_CAPACITY`` and ``EXECLOG_SUBSCRIBER_QUEUE_BYTES``."""
        return cls(
            settings.log_history_max_bytes,
            settings.log_history_max_entries,
            settings.ws_queue_capacity,
            settings.subscriber_queue_bytes,
        )

    # --- the two operations -------------------------------------------------------------------

    def open(
        self,
        record: ProcessRecord,
        build_pipeline: PipelineFactory,
        *,
        first_index_raw: int = 0,
        first_index_normalized: int = 0,
    ) -> RunningProcess:
        """Create a process's stores and pipeline and register them; ValueError if the id is
        already running (two stores for one channel would hand out the same indexes)."""
        if record.id in self._processes:
            raise ValueError(f"execution process {record.id} is already running")
        raw = self._create_store(record.id, "raw", first_index_raw)
        normalized = self._create_store(record.id, "normalized", first_index_normalized)
        running = RunningProcess(record, raw, normalized, build_pipeline(raw, normalized))
        self._processes[record.id] = running
        return running

    def close(self, process_id: str) -> RunningProcess | None:
        """Forget a process (idempotent) and tell the close listeners; its open subscriptions
        keep working. Its ``done`` signal is the caller's to set, once its status is stored."""
        running = self._processes.pop(process_id, None)
        if running is not None:
            for listener in self._close_listeners:
                listener(running)
        return running

    def on_close(self, listener: CloseListener) -> None:
        """Call ``listener`` with each process as it is removed (approvals settle theirs)."""
        self._close_listeners.append(listener)

    # --- lookups ------------------------------------------------------------------------------

    def get(self, process_id: str) -> RunningProcess | None:
        return self._processes.get(process_id)

    def store(self, process_id: str, channel: Channel) -> MsgStore | None:
        """The read-only view history uses: a running process's store of one channel."""
        running = self._processes.get(process_id)
        return None if running is None else running.store(channel)

    def __iter__(self) -> Iterator[RunningProcess]:
        return iter(list(self._processes.values()))

    def __len__(self) -> int:
        return len(self._processes)

    def __contains__(self, process_id: object) -> bool:
        return process_id in self._processes

    def _create_store(self, process_id: str, channel: Channel, first_index: int) -> MsgStore:
        return MsgStore(
            process_id,
            channel,
            max_bytes=self._max_bytes,
            max_entries=self._max_entries,
            queue_capacity=self._queue_capacity,
            queue_bytes=self._queue_bytes,
            first_index=first_index,
        )
