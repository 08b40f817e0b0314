"""MsgStore: the bounded in-memory history of one process channel, and its live subscribers.

Producers append and replace synchronously on the event loop; WebSocket handlers subscribe, take
a snapshot, then read events. A slow subscriber is told to resync instead of slowing anyone down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Literal

from execlog.protocol import (
    FINISHED_FRAME,
    Channel,
    StoredEntry,
    encode_append_frame,
    encode_replace_frame,
)

__all__ = [
    "LiveEvent",
    "MsgStore",
    "Resync",
    "Snapshot",
    "StoreFinishedError",
    "Subscription",
]

EventKind = Literal["append", "replace", "finished"]

# Below this many dead slots the held list is never compacted: shifting a short list costs more
# in call overhead than the slots it frees.
_MIN_COMPACT: Final = 64


class StoreFinishedError(RuntimeError):
    """``append`` or ``replace`` after ``finish``: ``finished`` must stay the last event."""


@dataclass(slots=True)
class LiveEvent:
    """One change of a store, shared by every subscriber that receives it.

    ``frame`` is the contract's WebSocket frame text, encoded on first access and cached, so an
    event is encoded at most once however many subscribers send it (and never when none does).
    """

    seq: int
    kind: EventKind
    entry_index: int
    entry_json: str
    _frame: str | None = field(default=None, repr=False, compare=False)

    @property
    def frame(self) -> str:
        frame = self._frame
        if frame is None:
            if self.kind == "append":
                frame = encode_append_frame(self.entry_index, self.entry_json)
            elif self.kind == "replace":
                frame = encode_replace_frame(self.entry_index, self.entry_json)
            else:
                frame = FINISHED_FRAME
            self._frame = frame
        return frame


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every held entry (ascending, newest form) as of event ``seq``; ``finished`` at that point."""

    entries: list[StoredEntry]
    seq: int
    finished: bool


class Resync:
    """Returned by ``Subscription.next_events`` after the subscriber fell more than the queue
    capacity behind: events were dropped, so it must take a new ``snapshot()``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Resync()"


_RESYNC: Final = Resync()


class Subscription:
    """One subscriber's view of a store's events.

    The flow: ``subscribe()``, then ``snapshot()``, then ``next_events()`` in a loop. Events
    reflected in the latest snapshot (``seq <= snapshot.seq``) are never returned, so snapshot plus
    events cover every change exactly once.

    The end of the stream is delivered exactly once, either as the ``finished`` event from
    ``next_events`` or as ``Snapshot.finished`` (the ``finished`` event is then part of the
    snapshot and not returned again). After either, and after ``close()``, ``next_events`` returns
    ``[]`` at once. Use it as a (synchronous) context manager to close it on exit:
    ``with store.subscribe() as sub: ...``.
    """

    __slots__ = ("_store", "_cursor", "_resync", "_closed", "_waiter", "__weakref__")

    def __init__(self, store: MsgStore) -> None:
        self._store = store
        # seq of the last event this subscriber has received (in events or in a snapshot).
        self._cursor = store._seq
        self._resync = False
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None

    @property
    def overflowed(self) -> bool:
        """True while a resync is due: more than ``queue_capacity`` events are unread."""
        if self._resync:
            return True
        if self._closed:
            return False
        store = self._store
        return store._seq - self._cursor > store._queue_capacity

    @property
    def closed(self) -> bool:
        return self._closed

    def snapshot(self) -> Snapshot:
        """The held entries now; later ``next_events`` calls return only newer events."""
        store = self._store
        self._cursor = store._seq
        self._resync = False
        return Snapshot(store.held_after(None), store._seq, store._finished)

    async def next_events(self) -> list[LiveEvent] | Resync:
        """Wait for at least one event and return every unread one, ascending by ``seq``.

        Returns ``Resync`` (on every call, until ``snapshot()`` is taken) once the subscriber has
        overflowed, and ``[]`` at once when the end was already delivered or it is closed.
        """
        store = self._store
        while True:
            if self._closed:
                return []
            unread = store._seq - self._cursor
            if self._resync or unread > store._queue_capacity:
                self._resync = True
                return _RESYNC
            if unread > 0:
                events = store._events_after(self._cursor)
                self._cursor = store._seq
                return events
            if store._finished:
                return []
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            store._waiters.append(waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if waiter.cancelled() or not waiter.done():
                    # The reader was cancelled: do not leave its waiter for the next publish.
                    store._discard_waiter(waiter)

    def close(self) -> None:
        """Unsubscribe (idempotent); a pending ``next_events`` returns ``[]``."""
        if self._closed:
            return
        self._closed = True
        self._resync = False
        waiter = self._waiter
        if waiter is not None:
            self._store._discard_waiter(waiter)
            if not waiter.done():
                waiter.set_result(None)
        self._store._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class MsgStore:
    """The newest entries of one process channel, bounded by bytes and count, plus live events.

    Indexes are consecutive from ``first_index``; eviction drops the oldest, so the held entries
    are always one contiguous index range ending at ``next_index - 1``. The newest entry is never
    evicted: a single entry larger than ``max_bytes`` is held alone until the next append.
    """

    __slots__ = (
        "process_id",
        "channel",
        "_max_bytes",
        "_max_entries",
        "_queue_capacity",
        "_jsons",
        "_sizes",
        "_offset",
        "_head",
        "_next_index",
        "_held_bytes",
        "_evicted",
        "_finished",
        "_seq",
        "_subscribers",
        "_events",
        "_events_base",
        "_waiters",
        "admit",
        "__weakref__",
    )

    def __init__(
        self,
        process_id: str,
        channel: Channel,
        *,
        max_bytes: int,
        max_entries: int,
        queue_capacity: int,
        first_index: int = 0,
    ) -> None:
        if max_bytes < 1 or max_entries < 1 or queue_capacity < 1:
            raise ValueError("max_bytes, max_entries and queue_capacity must be at least 1")
        if first_index < 0:
            raise ValueError(f"first_index must be >= 0, got {first_index}")
        self.process_id = process_id
        self.channel: Channel = channel
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._queue_capacity = queue_capacity
        # Held entries: _jsons[_head:] are indexes _offset + _head, ...; the slots before _head
        # are evicted (cleared to "" so the payload is freed) until an occasional compaction.
        self._jsons: list[str] = []
        self._sizes: list[int] = []
        self._offset = first_index
        self._head = 0
        self._next_index = first_index
        self._held_bytes = 0
        self._evicted = False
        self._finished = False
        self._seq = 0
        self._subscribers: set[Subscription] = set()
        # Events of the last queue_capacity..2*queue_capacity seqs, kept only while anyone
        # subscribes: one shared buffer instead of a queue per subscriber, so publishing costs
        # the same for one subscriber as for ten. _events[0].seq == _events_base.
        self._events: list[LiveEvent] = []
        self._events_base = 1
        self._waiters: list[asyncio.Future[None]] = []
        # Called with each new index before it is held or published: the durable index
        # reservation (runner/reservations.py) hooks in here.
        self.admit: Callable[[int], None] | None = None

    # --- producer side ----------------------------------------------------------------------

    def append(self, entry_json: str) -> int:
        """Hold a new entry under the next index, evict what no longer fits, publish it."""
        if self._finished:
            raise StoreFinishedError(f"{self.process_id}/{self.channel}: append after finish")
        index = self._next_index
        if self.admit is not None:
            self.admit(index)
        self._next_index = index + 1
        # payload_size inlined: this is the per-line hot path.
        size = len(entry_json) if entry_json.isascii() else len(entry_json.encode())
        self._jsons.append(entry_json)
        self._sizes.append(size)
        self._held_bytes += size
        if self._held_bytes > self._max_bytes or len(self._jsons) - self._head > self._max_entries:
            self._evict()
        self._seq += 1
        if self._subscribers:
            self._publish(LiveEvent(self._seq, "append", index, entry_json))
        return index

    def replace(self, entry_index: int, entry_json: str) -> None:
        """Update an entry: the held copy if still in memory, and always publish the change
        (an evicted entry is in the database, which its readers consult)."""
        if self._finished:
            raise StoreFinishedError(f"{self.process_id}/{self.channel}: replace after finish")
        if not 0 <= entry_index < self._next_index:
            raise ValueError(
                f"{self.process_id}/{self.channel}: cannot replace entry {entry_index}, "
                f"next index is {self._next_index}"
            )
        position = entry_index - self._offset
        if position >= self._head:
            size = len(entry_json) if entry_json.isascii() else len(entry_json.encode())
            self._held_bytes += size - self._sizes[position]
            self._sizes[position] = size
            self._jsons[position] = entry_json
            if self._held_bytes > self._max_bytes:
                self._evict()
        self._seq += 1
        if self._subscribers:
            self._publish(LiveEvent(self._seq, "replace", entry_index, entry_json))

    def finish(self) -> None:
        """Publish ``finished``, the last event; idempotent."""
        if self._finished:
            return
        self._finished = True
        self._seq += 1
        if self._subscribers:
            self._publish(LiveEvent(self._seq, "finished", -1, ""))

    def _evict(self) -> None:
        jsons = self._jsons
        sizes = self._sizes
        head = self._head
        end = len(jsons)
        held_bytes = self._held_bytes
        # end - head > 1: the newest entry stays, whatever its size.
        while end - head > 1 and (held_bytes > self._max_bytes or end - head > self._max_entries):
            held_bytes -= sizes[head]
            jsons[head] = ""
            head += 1
        if head != self._head:
            self._evicted = True
        self._held_bytes = held_bytes
        # Compact once the dead prefix outgrows the live part: amortised O(1) per eviction.
        if head >= _MIN_COMPACT and head * 2 >= end:
            del jsons[:head]
            del sizes[:head]
            self._offset += head
            head = 0
        self._head = head

    def _publish(self, event: LiveEvent) -> None:
        events = self._events
        if not events:
            self._events_base = event.seq
        events.append(event)
        capacity = self._queue_capacity
        if len(events) > 2 * capacity:
            # A subscriber more than `capacity` events behind resyncs anyway.
            drop = len(events) - capacity
            del events[:drop]
            self._events_base += drop
        if self._waiters:
            self._wake_waiters()

    def _wake_waiters(self) -> None:
        waiters = self._waiters
        self._waiters = []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # --- subscriber side --------------------------------------------------------------------

    def subscribe(self) -> Subscription:
        """A new subscription; take its ``snapshot()`` next, then read ``next_events()``."""
        subscription = Subscription(self)
        self._subscribers.add(subscription)
        return subscription

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
        if not self._subscribers:
            # Nothing is buffered while nobody subscribes, so the buffer never has a gap.
            self._events.clear()

    def _discard_waiter(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def _events_after(self, seq: int) -> list[LiveEvent]:
        # Caller guarantees seq >= self._seq - queue_capacity, so they are all still buffered.
        return self._events[seq + 1 - self._events_base :]

    # --- reading held entries ---------------------------------------------------------------

    @property
    def next_index(self) -> int:
        return self._next_index

    @property
    def first_held_index(self) -> int | None:
        """Lowest index still in memory; None when nothing is held."""
        return self._offset + self._head if len(self._jsons) > self._head else None

    @property
    def evicted(self) -> bool:
        """Sticky: True once any entry has been evicted from memory."""
        return self._evicted

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def held_bytes(self) -> int:
        return self._held_bytes

    @property
    def held_count(self) -> int:
        return len(self._jsons) - self._head

    def held_range(self, start: int, stop: int) -> list[StoredEntry]:
        """Held entries with ``start <= index < stop``, ascending; O(k)."""
        low = max(start, self._offset + self._head)
        high = min(stop, self._next_index)
        if low >= high:
            return []
        base = self._offset
        return list(map(StoredEntry, range(low, high), self._jsons[low - base : high - base]))

    def held_after(self, after: int | None) -> list[StoredEntry]:
        """Held entries with ``index > after`` (all of them when ``after`` is None)."""
        start = self._offset + self._head if after is None else after + 1
        return self.held_range(start, self._next_index)

    def __repr__(self) -> str:
        return (
            f"MsgStore({self.process_id!r}, {self.channel!r}, next_index={self._next_index}, "
            f"held={self.held_count}, held_bytes={self._held_bytes}, "
            f"finished={self._finished}, subscribers={len(self._subscribers)})"
        )
