"""MsgStore: the bounded in-memory history of one process channel, and its live subscribers.

Producers append and replace synchronously on the event loop; WebSocket handlers subscribe, take
a snapshot, then read events. A slow subscriber is told to resync instead of slowing anyone down:
once it is more than ``queue_capacity`` events or ``queue_bytes`` bytes behind (issue 9: bounded
in bytes, not only in events). A bounded log of replaced indexes lets a resync send only what the
subscriber lacks.
"""

from __future__ import annotations

import asyncio
from collections import deque
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
    now_ms,
)

__all__ = [
    "Checkpoint",
    "DEFAULT_QUEUE_BYTES",
    "REPLACED_LOG_CAPACITY",
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
# Bytes of payload a subscriber may fall behind before it resyncs: with 1 MiB lines, 1,024
# queued events would be a gigabyte per store. EXECLOG_SUBSCRIBER_QUEUE_BYTES sets it.
DEFAULT_QUEUE_BYTES: Final = 4 << 20
# Replaces remembered for resyncs (seq and index, ~100 bytes each). A resync that reaches past
# them asks the database which entries were updated since (updated_at).
REPLACED_LOG_CAPACITY: Final = 4096


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
class Checkpoint:
    """Where a subscriber restarts, without copying what memory holds: as of event ``seq``,
    memory held the indexes ``first_held <= index < next_index`` (none when they are equal)
    and ``finished`` was known. A stream reads them as it sends them (issue 9: a lagging
    subscriber holds no copy of the history while it catches up)."""

    first_held: int
    next_index: int
    seq: int
    finished: bool


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

    __slots__ = (
        "_store",
        "_cursor",
        "_cursor_bytes",
        "_cursor_time_ms",
        "_resync",
        "_closed",
        "_waiter",
        "__weakref__",
    )

    def __init__(self, store: MsgStore) -> None:
        self._store = store
        # seq of the last event this subscriber has received (in events or in a snapshot), the
        # store's published byte count then, and the wall-clock time (for updated_at).
        self._cursor = store._seq
        self._cursor_bytes = store._published_bytes
        self._cursor_time_ms = now_ms()
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
        return self._store._behind(self._cursor, self._cursor_bytes)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def cursor(self) -> int:
        """seq of the last event received (in events or in a snapshot)."""
        return self._cursor

    @property
    def cursor_time_ms(self) -> int:
        """Wall-clock milliseconds when the cursor last moved: every change after it has a
        later ``updated_at`` in the database."""
        return self._cursor_time_ms

    def snapshot(self) -> Snapshot:
        """The held entries now; later ``next_events`` calls return only newer events."""
        point = self.checkpoint()
        return Snapshot(self._store.held_after(None), point.seq, point.finished)

    def checkpoint(self) -> Checkpoint:
        """Like ``snapshot()``, without the entries: later ``next_events`` calls return only
        events after it."""
        self._advance()
        self._resync = False
        store = self._store
        store._buffer_events()
        first_held = store.first_held_index
        next_index = store._next_index
        return Checkpoint(
            next_index if first_held is None else first_held,
            next_index,
            store._seq,
            store._finished,
        )

    def _advance(self) -> None:
        store = self._store
        self._cursor = store._seq
        self._cursor_bytes = store._published_bytes
        self._cursor_time_ms = now_ms()

    async def next_events(self) -> list[LiveEvent] | Resync:
        """Wait for at least one event and return every unread one, ascending by ``seq``.

        Returns ``Resync`` (on every call, until ``snapshot()`` is taken) once the subscriber has
        overflowed, and ``[]`` at once when the end was already delivered or it is closed.
        """
        store = self._store
        while True:
            if self._closed:
                return []
            if self._resync or store._behind(self._cursor, self._cursor_bytes):
                self._resync = True
                return _RESYNC
            if store._seq > self._cursor:
                events = store._events_after(self._cursor)
                self._advance()
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
        "_queue_bytes",
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
        "_events_bytes",
        "_published_bytes",
        "_buffering",
        "_replaced",
        "_replaced_forgotten",
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
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        first_index: int = 0,
    ) -> None:
        if min(max_bytes, max_entries, queue_capacity, queue_bytes) < 1:
            raise ValueError("max_bytes, max_entries and the queue bounds must be at least 1")
        if first_index < 0:
            raise ValueError(f"first_index must be >= 0, got {first_index}")
        self.process_id = process_id
        self.channel: Channel = channel
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._queue_capacity = queue_capacity
        self._queue_bytes = queue_bytes
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
        self._events_bytes = 0  # payload bytes of _events
        self._published_bytes = 0  # payload bytes of every event published so far
        # False while every subscriber has overflowed: none will read an event published now
        # (each takes a checkpoint first), so none is buffered (see _trim_events).
        self._buffering = True
        # (seq, index) of recent replaces; seq of the newest one this log has forgotten.
        self._replaced: deque[tuple[int, int]] = deque(maxlen=REPLACED_LOG_CAPACITY)
        self._replaced_forgotten = 0
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
            if self._buffering or self._waiters:
                self._publish("append", index, entry_json)
            else:
                # Every subscriber has overflowed and none waits: only the byte count moves
                # (the producer's hot path while a slow subscriber catches up, issue 9).
                self._published_bytes += len(entry_json)
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
        replaced = self._replaced
        if len(replaced) == REPLACED_LOG_CAPACITY:
            self._replaced_forgotten = replaced[0][0]
        replaced.append((self._seq, entry_index))
        if self._subscribers:
            self._publish("replace", entry_index, entry_json)

    def finish(self) -> None:
        """Publish ``finished``, the last event; idempotent."""
        if self._finished:
            return
        self._finished = True
        self._seq += 1
        if self._subscribers:
            self._publish("finished", -1, "")

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

    def _publish(self, kind: EventKind, entry_index: int, entry_json: str) -> None:
        size = len(entry_json)
        self._published_bytes += size
        if self._buffering:
            events = self._events
            if not events:
                self._events_base = self._seq
            events.append(LiveEvent(self._seq, kind, entry_index, entry_json))
            self._events_bytes += size
            if len(events) > 2 * self._queue_capacity or self._events_bytes > 2 * self._queue_bytes:
                self._trim_events()
        if self._waiters:
            self._wake_waiters()

    def _trim_events(self) -> None:
        """Keep the longest suffix within both bounds: a subscriber further behind resyncs
        anyway. Trimmed only at twice the bounds, so the shift is amortised O(1) per event."""
        events = self._events
        count = len(events)
        held_bytes = self._events_bytes
        drop = 0
        while drop < count and (
            count - drop > self._queue_capacity or held_bytes > self._queue_bytes
        ):
            held_bytes -= len(events[drop].entry_json)
            drop += 1
        del events[:drop]
        self._events_base += drop
        self._events_bytes = held_bytes
        # Checked here, once per queue's worth of events: when every subscriber has overflowed,
        # stop buffering until one takes a checkpoint. A subscriber slower than its producer
        # is overflowed most of the time, and the producer then pays nothing for it (issue 9).
        behind = self._behind
        if all(sub._resync or behind(sub._cursor, sub._cursor_bytes) for sub in self._subscribers):
            self._buffering = False
            events.clear()
            self._events_bytes = 0

    def _buffer_events(self) -> None:
        """A subscriber restarts from the current seq: buffer events from the next one on."""
        if not self._buffering:
            self._buffering = True
            self._events.clear()
            self._events_bytes = 0

    def _behind(self, cursor: int, cursor_bytes: int) -> bool:
        """A subscriber at ``cursor`` has more unread than its queue may hold."""
        return (
            self._seq - cursor > self._queue_capacity
            or self._published_bytes - cursor_bytes > self._queue_bytes
        )

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
        self._buffer_events()
        return subscription

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
        if not self._subscribers:
            # Nothing is buffered while nobody subscribes, so the buffer never has a gap.
            self._events.clear()
            self._events_bytes = 0

    def _discard_waiter(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def _events_after(self, seq: int) -> list[LiveEvent]:
        # Caller guarantees seq >= self._seq - queue_capacity, so they are all still buffered.
        return self._events[seq + 1 - self._events_base :]

    def replaced_since(self, seq: int) -> set[int] | None:
        """Indexes replaced by events after ``seq``; None when the bounded log no longer
        reaches back that far (the caller then asks the database for ``updated_at``)."""
        if seq < self._replaced_forgotten:
            return None
        return {index for event_seq, index in self._replaced if event_seq > seq}

    # --- reading held entries ---------------------------------------------------------------

    @property
    def next_index(self) -> int:
        return self._next_index

    @property
    def seq(self) -> int:
        """How many events (appends, replaces, the end) the store has published: it moves
        while the producer is busy."""
        return self._seq

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
