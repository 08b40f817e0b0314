"""MsgStore: indexes, bounded eviction, replace, subscribe-then-snapshot, overflow/resync,
the finished event, and frames encoded at most once."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import execlog.live.msg_store as msg_store_module
from execlog.live.msg_store import (
    LiveEvent,
    MsgStore,
    Resync,
    Snapshot,
    StoreFinishedError,
    Subscription,
)
from execlog.protocol import (
    FINISHED_FRAME,
    StoredEntry,
    encode_append_frame,
    encode_replace_frame,
    payload_size,
)


def make_store(
    *,
    max_bytes: int = 1 << 20,
    max_entries: int = 1000,
    queue_capacity: int = 100,
    first_index: int = 0,
) -> MsgStore:
    return MsgStore(
        "11111111-1111-1111-1111-111111111111",
        "raw",
        max_bytes=max_bytes,
        max_entries=max_entries,
        queue_capacity=queue_capacity,
        first_index=first_index,
    )


def payload(text: str) -> str:
    return json.dumps({"type": "STDOUT", "content": text}, ensure_ascii=False)


async def read_events(subscription: Subscription) -> list[LiveEvent]:
    """next_events when events are known to be queued (never Resync here)."""
    result = await subscription.next_events()
    assert isinstance(result, list), result
    return result


# --- indexes and eviction -------------------------------------------------------------------


def test_indexes_continue_from_first_index() -> None:
    store = make_store(first_index=7)
    assert store.next_index == 7
    assert store.first_held_index is None
    assert [store.append(payload(str(i))) for i in range(3)] == [7, 8, 9]
    assert store.next_index == 10
    assert store.first_held_index == 7
    assert store.held_after(None) == [
        StoredEntry(7, payload("0")),
        StoredEntry(8, payload("1")),
        StoredEntry(9, payload("2")),
    ]
    assert store.held_count == 3
    assert store.held_bytes == sum(payload_size(payload(str(i))) for i in range(3))


def test_eviction_by_entries_keeps_the_newest() -> None:
    store = make_store(max_entries=3)
    for i in range(5):
        store.append(payload(str(i)))
    assert store.evicted
    assert store.first_held_index == 2
    assert [e.entry_index for e in store.held_after(None)] == [2, 3, 4]
    assert store.held_bytes == sum(payload_size(payload(str(i))) for i in (2, 3, 4))


def test_eviction_by_bytes_counts_utf8_bytes() -> None:
    store = make_store(max_bytes=10)
    store.append('"éé"')  # 6 bytes, 4 characters
    store.append('"a"')  # 3 bytes: 9 in all
    assert not store.evicted
    assert store.held_bytes == 9
    store.append('"b"')  # 12 > 10: the oldest goes
    assert store.evicted
    assert store.held_bytes == 6
    assert store.first_held_index == 1


def test_oversized_entry_is_held_alone_until_the_next_append() -> None:
    store = make_store(max_bytes=10)
    store.append('"a"')
    store.append('"' + "x" * 30 + '"')
    assert store.held_after(None) == [StoredEntry(1, '"' + "x" * 30 + '"')]
    assert store.held_bytes == 32
    store.append('"b"')
    assert store.held_after(None) == [StoredEntry(2, '"b"')]
    assert store.held_bytes == 3


def test_held_range_and_held_after_clamp_to_what_is_held() -> None:
    store = make_store(max_entries=4, first_index=10)
    for i in range(8):
        store.append(payload(str(i)))
    assert store.first_held_index == 14
    assert [e.entry_index for e in store.held_range(0, 100)] == [14, 15, 16, 17]
    assert [e.entry_index for e in store.held_range(15, 17)] == [15, 16]
    assert store.held_range(17, 15) == []
    assert store.held_range(0, 14) == []
    assert store.held_range(18, 30) == []
    assert [e.entry_index for e in store.held_after(15)] == [16, 17]
    assert [e.entry_index for e in store.held_after(3)] == [14, 15, 16, 17]
    assert store.held_after(17) == []


def test_long_stream_compacts_and_stays_correct() -> None:
    store = make_store(max_entries=100)
    for i in range(10_000):
        store.append(payload(str(i)))
    assert store.held_count == 100
    assert store.held_after(None) == [StoredEntry(i, payload(str(i))) for i in range(9900, 10_000)]
    # The dead prefix is compacted away instead of growing with the stream.
    assert len(store._jsons) <= 2 * 100 + 64


def test_evicted_payloads_are_freed_at_once() -> None:
    store = make_store(max_bytes=300_000)
    tracemalloc.start()
    try:
        for i in range(40):  # fewer evictions than it takes to compact the held list
            store.append('"' + str(i % 10) * 100_000 + '"')
        in_use, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert store.held_count == 2
    assert in_use < 1_000_000  # 40 payloads of 100 kB would be 4 MB


@dataclass
class HeldModel:
    """The test's own record of the whole history: index → newest payload."""

    first_index: int
    history: dict[int, str] = field(default_factory=dict)


@settings(max_examples=300, deadline=None)
@given(
    max_bytes=st.integers(1, 120),
    max_entries=st.integers(1, 8),
    first_index=st.integers(0, 5),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["append", "append", "replace"]), st.integers(0, 40), st.booleans()
        ),
        max_size=60,
    ),
    ranges=st.lists(st.tuples(st.integers(-2, 70), st.integers(-2, 70)), max_size=4),
)
def test_eviction_invariants(
    max_bytes: int,
    max_entries: int,
    first_index: int,
    ops: list[tuple[str, int, bool]],
    ranges: list[tuple[int, int]],
) -> None:
    store = make_store(max_bytes=max_bytes, max_entries=max_entries, first_index=first_index)
    model = HeldModel(first_index)
    ever_evicted = False
    for step, (op, size, wide) in enumerate(ops):
        text = ("é" if wide else "x") * size
        body = payload(f"{step}:{text}")
        before_first = store.first_held_index
        if op == "append":
            index = store.append(body)
            assert index == first_index + len(model.history)
            model.history[index] = body
        elif model.history:
            index = first_index + size % len(model.history)
            store.replace(index, body)
            model.history[index] = body
        else:
            continue
        held = store.held_after(None)
        indexes = [e.entry_index for e in held]
        # Contiguous, ending at the newest, and each in its newest form.
        assert indexes == list(range(store.next_index - len(held), store.next_index))
        assert all(model.history[e.entry_index] == e.entry_json for e in held)
        assert store.held_count == len(held) >= 1
        assert store.held_bytes == sum(payload_size(e.entry_json) for e in held)
        assert store.held_count <= max_entries
        assert store.held_bytes <= max_bytes or store.held_count == 1
        assert store.first_held_index == indexes[0]
        if op == "append" and before_first is not None and indexes[0] > before_first:
            # Only what had to go went: the next older entry would not have fit.
            older = model.history[indexes[0] - 1]
            assert (
                store.held_bytes + payload_size(older) > max_bytes
                or store.held_count + 1 > max_entries
            )
        ever_evicted = ever_evicted or indexes[0] > first_index
        assert store.evicted == ever_evicted  # sticky
    for start, stop in ranges:
        expected = [
            StoredEntry(i, model.history[i])
            for i in range(start, stop)
            if store.first_held_index is not None
            and i >= store.first_held_index
            and i < store.next_index
        ]
        assert store.held_range(start, stop) == expected


# --- replace ------------------------------------------------------------------------------


def test_replace_updates_a_held_entry_and_its_bytes() -> None:
    store = make_store()
    store.append('"a"')
    store.append('"b"')
    store.replace(0, '"longer"')
    assert store.held_after(None) == [StoredEntry(0, '"longer"'), StoredEntry(1, '"b"')]
    assert store.held_bytes == len('"longer"') + 3


def test_replace_that_grows_past_max_bytes_evicts_from_the_front() -> None:
    store = make_store(max_bytes=12)
    for text in ("a", "b", "c"):
        store.append(f'"{text}"')
    store.replace(1, '"bbbbbbb"')  # 3 + 9 + 3 = 15 > 12
    assert store.held_after(None) == [StoredEntry(1, '"bbbbbbb"'), StoredEntry(2, '"c"')]
    assert store.held_bytes == 12
    assert store.evicted


async def test_replace_of_an_evicted_entry_is_published_but_not_held() -> None:
    store = make_store(max_entries=2)
    with store.subscribe() as subscription:
        subscription.snapshot()
        for i in range(4):
            store.append(payload(str(i)))
        held_before = store.held_after(None)
        store.replace(0, payload("zero again"))
        assert store.held_after(None) == held_before
        events = await read_events(subscription)
    assert (events[-1].kind, events[-1].entry_index, events[-1].entry_json) == (
        "replace",
        0,
        payload("zero again"),
    )


def test_replace_of_a_future_or_negative_index_raises() -> None:
    store = make_store(first_index=3)
    store.append('"a"')
    with pytest.raises(ValueError, match="next index is 4"):
        store.replace(4, '"x"')
    with pytest.raises(ValueError):
        store.replace(-1, '"x"')
    # Below first_index is an earlier run's entry, in the database: allowed, not held.
    store.replace(1, '"old"')
    assert store.held_after(None) == [StoredEntry(3, '"a"')]


# --- subscribe, snapshot, events ------------------------------------------------------------


async def test_subscribe_then_snapshot_has_no_gap_and_no_duplicate() -> None:
    store = make_store()
    store.append(payload("0"))
    store.append(payload("1"))
    with store.subscribe() as subscription:
        store.append(payload("2"))  # after subscribe, before snapshot: in the snapshot only
        snapshot = subscription.snapshot()
        assert [e.entry_index for e in snapshot.entries] == [0, 1, 2]
        assert not snapshot.finished
        store.append(payload("3"))
        store.replace(1, payload("one"))
        events = await read_events(subscription)
    assert [(e.kind, e.entry_index) for e in events] == [("append", 3), ("replace", 1)]
    assert [e.seq for e in events] == [snapshot.seq + 1, snapshot.seq + 2]


async def test_events_before_snapshot_are_returned_when_no_snapshot_is_taken() -> None:
    store = make_store()
    with store.subscribe() as subscription:
        store.append(payload("0"))
        events = await read_events(subscription)
    assert [(e.kind, e.entry_index) for e in events] == [("append", 0)]


async def test_a_waiting_subscriber_is_woken_by_append() -> None:
    store = make_store()
    with store.subscribe() as subscription:
        subscription.snapshot()
        reader = asyncio.create_task(subscription.next_events())
        await asyncio.sleep(0)  # one loop turn: the reader runs until it waits for an event
        assert not reader.done()
        store.append(payload("0"))
        result = await reader
    assert isinstance(result, list)
    assert [e.entry_index for e in result] == [0]


async def test_close_wakes_a_waiting_reader_with_no_events() -> None:
    store = make_store()
    subscription = store.subscribe()
    reader = asyncio.create_task(subscription.next_events())
    await asyncio.sleep(0)  # let the reader start waiting
    subscription.close()
    assert await reader == []
    subscription.close()  # idempotent
    assert store.subscriber_count == 0
    assert await subscription.next_events() == []


async def test_cancelled_reader_leaves_the_subscription_usable() -> None:
    store = make_store()
    with store.subscribe() as subscription:
        reader = asyncio.create_task(subscription.next_events())
        await asyncio.sleep(0)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert store._waiters == []
        store.append(payload("0"))
        assert [e.entry_index for e in await read_events(subscription)] == [0]


def test_subscriber_count_follows_subscribe_and_close() -> None:
    store = make_store()
    first = store.subscribe()
    with store.subscribe():
        assert store.subscriber_count == 2
    assert store.subscriber_count == 1
    first.close()
    assert store.subscriber_count == 0


# --- overflow and resync ------------------------------------------------------------------


async def test_exactly_capacity_unread_events_are_delivered() -> None:
    store = make_store(queue_capacity=4)
    with store.subscribe() as subscription:
        subscription.snapshot()
        for i in range(4):
            store.append(payload(str(i)))
        assert not subscription.overflowed
        assert [e.entry_index for e in await read_events(subscription)] == [0, 1, 2, 3]


async def test_slow_subscriber_resyncs_while_others_get_every_event() -> None:
    store = make_store(max_entries=5, queue_capacity=3)
    fast = store.subscribe()
    slow = store.subscribe()
    fast.snapshot()
    slow_view = {e.entry_index: e.entry_json for e in slow.snapshot().entries}
    fast_seen: list[LiveEvent] = []
    history: dict[int, str] = {}
    for i in range(12):
        history[store.append(payload(str(i)))] = payload(str(i))
        if i % 3 == 2:
            store.replace(i - 1, payload(f"{i - 1} again"))
            history[i - 1] = payload(f"{i - 1} again")
        fast_seen.extend(await read_events(fast))
    # The producer never waited (append is synchronous) and the fast one missed nothing.
    assert [e.seq for e in fast_seen] == list(range(1, len(fast_seen) + 1))
    assert len(fast_seen) == 12 + 4
    assert not fast.overflowed

    assert slow.overflowed
    assert isinstance(await slow.next_events(), Resync)
    assert isinstance(await slow.next_events(), Resync)  # until it takes a snapshot
    snapshot = slow.snapshot()
    assert not slow.overflowed
    assert [e.entry_index for e in snapshot.entries] == [7, 8, 9, 10, 11]
    # What memory no longer holds comes from the database (here: the test's history).
    for index in range(max(slow_view, default=-1) + 1, snapshot.entries[0].entry_index):
        slow_view[index] = history[index]
    slow_view.update(dict(snapshot.entries))
    store.append(payload("12"))
    history[12] = payload("12")
    store.finish()
    events = await read_events(slow)
    assert [e.kind for e in events] == ["append", "finished"]
    for event in events[:-1]:
        slow_view[event.entry_index] = event.entry_json
    assert slow_view == history
    assert await slow.next_events() == []
    fast.close()
    slow.close()


async def test_overflowed_subscriber_learns_finished_from_its_snapshot() -> None:
    store = make_store(queue_capacity=2)
    with store.subscribe() as subscription:
        subscription.snapshot()
        for i in range(3):
            store.append(payload(str(i)))
        store.finish()
        assert isinstance(await subscription.next_events(), Resync)
        snapshot = subscription.snapshot()
        assert snapshot.finished
        assert [e.entry_index for e in snapshot.entries] == [0, 1, 2]
        # The finished event is part of the snapshot: the stream is over.
        assert await subscription.next_events() == []


# --- finished -------------------------------------------------------------------------------


async def test_finished_is_the_last_event_and_ends_the_stream() -> None:
    store = make_store()
    with store.subscribe() as subscription:
        subscription.snapshot()
        store.append(payload("0"))
        store.finish()
        store.finish()  # idempotent: no second event
        events = await read_events(subscription)
        assert [e.kind for e in events] == ["append", "finished"]
        assert events[-1].entry_index == -1 and events[-1].entry_json == ""
        assert await subscription.next_events() == []
    with pytest.raises(StoreFinishedError):
        store.append(payload("1"))
    with pytest.raises(StoreFinishedError):
        store.replace(0, payload("zero"))
    assert store.finished
    assert store.next_index == 1


async def test_a_waiting_reader_is_woken_by_finish() -> None:
    store = make_store()
    with store.subscribe() as subscription:
        reader = asyncio.create_task(subscription.next_events())
        await asyncio.sleep(0)
        store.finish()
        result = await reader
        assert isinstance(result, list) and [e.kind for e in result] == ["finished"]


async def test_subscribing_to_a_finished_store_ends_at_once() -> None:
    store = make_store()
    store.append(payload("0"))
    store.finish()
    with store.subscribe() as subscription:
        snapshot = subscription.snapshot()
        assert snapshot == Snapshot([StoredEntry(0, payload("0"))], snapshot.seq, True)
        assert await subscription.next_events() == []


# --- frames ---------------------------------------------------------------------------------


@pytest.fixture
def encode_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts real frame encodings (the real encoders still run)."""
    calls: list[str] = []

    def counting(kind: str, encode: Callable[[int, str], str]) -> Callable[[int, str], str]:
        def wrapper(entry_index: int, entry_json: str) -> str:
            calls.append(kind)
            return encode(entry_index, entry_json)

        return wrapper

    monkeypatch.setattr(
        msg_store_module, "encode_append_frame", counting("append", encode_append_frame)
    )
    monkeypatch.setattr(
        msg_store_module, "encode_replace_frame", counting("replace", encode_replace_frame)
    )
    return calls


def test_no_frame_is_encoded_without_subscribers(encode_calls: list[str]) -> None:
    store = make_store()
    store.append(payload("0"))
    store.replace(0, payload("zero"))
    store.finish()
    assert encode_calls == []
    assert store._events == []


async def test_frame_is_encoded_once_and_shared(encode_calls: list[str]) -> None:
    store = make_store()
    subscriptions = [store.subscribe() for _ in range(3)]
    for subscription in subscriptions:
        subscription.snapshot()
    store.append(payload("0"))
    store.replace(0, payload("zero"))
    store.finish()
    received = [await read_events(subscription) for subscription in subscriptions]
    assert encode_calls == []  # lazily: nobody asked for a frame yet
    frames = [[event.frame for event in events] for events in received]
    assert encode_calls == ["append", "replace"]
    for other in frames[1:]:
        assert all(a is b for a, b in zip(frames[0], other, strict=True))
    assert [e.frame for e in received[0]] == frames[0]  # cached: no new encoding
    assert encode_calls == ["append", "replace"]
    decoded: list[dict[str, Any]] = [json.loads(frame) for frame in frames[0]]
    assert decoded == [
        {"type": "append", "entry_index": 0, "entry": {"type": "STDOUT", "content": "0"}},
        {"type": "replace", "entry_index": 0, "entry": {"type": "STDOUT", "content": "zero"}},
        {"type": "finished"},
    ]
    assert frames[0][2] is FINISHED_FRAME
    for subscription in subscriptions:
        subscription.close()


# --- model-based: random interleavings of producers and subscribers ----------------------


@dataclass
class Reader:
    """A subscriber that rebuilds the history by upserting what it receives, as a client does."""

    subscription: Subscription
    capacity: int
    view: dict[int, str] = field(default_factory=dict)
    start: int = 0  # the lowest index it is responsible for (held at its first snapshot)
    newest: int = -1  # highest index delivered so far: new indexes must follow it exactly
    seq: int = 0
    done: bool = False
    resyncs: int = 0

    def take_snapshot(self, store: MsgStore, database: dict[int, str], first: bool) -> None:
        snapshot = self.subscription.snapshot()
        held_from = snapshot.entries[0].entry_index if snapshot.entries else store.next_index
        if first:
            self.start = held_from
            self.newest = held_from - 1
        else:
            # After a resync, what memory evicted comes from the database.
            for index in range(self.start, held_from):
                self.view[index] = database[index]
            self.newest = max(self.newest, held_from - 1)
        for index, entry_json in snapshot.entries:
            self.deliver(index, entry_json)
        self.seq = snapshot.seq
        self.done = snapshot.finished

    def deliver(self, index: int, entry_json: str) -> None:
        if index > self.newest:
            assert index == self.newest + 1, "gap or disorder"
            self.newest = index
        self.view[index] = entry_json

    async def read(self, store: MsgStore, database: dict[int, str], published: int) -> None:
        unread = published - self.seq
        result = await self.subscription.next_events()
        if isinstance(result, Resync):
            assert unread > self.capacity
            self.resyncs += 1
            self.take_snapshot(store, database, first=False)
            return
        assert unread <= self.capacity
        assert [e.seq for e in result] == list(range(self.seq + 1, published + 1))
        for event in result:
            assert not self.done, "event after finished"
            if event.kind == "append":
                assert event.entry_index == self.newest + 1, "append out of order or doubled"
                self.deliver(event.entry_index, event.entry_json)
            elif event.kind == "replace":
                if event.entry_index >= self.start:
                    assert event.entry_index <= self.newest
                    self.view[event.entry_index] = event.entry_json
            else:
                self.done = True
        self.seq = published


operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 30)),
        st.tuples(st.just("replace"), st.integers(0, 1000)),
        st.tuples(st.just("subscribe"), st.just(0)),
        st.tuples(st.just("read"), st.integers(0, 1000)),
        st.tuples(st.just("close"), st.integers(0, 1000)),
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(
    max_bytes=st.integers(1, 150),
    max_entries=st.integers(1, 10),
    queue_capacity=st.integers(1, 8),
    first_index=st.integers(0, 3),
    ops=operations,
)
def test_subscribers_rebuild_the_full_history(
    max_bytes: int, max_entries: int, queue_capacity: int, first_index: int, ops: list[Any]
) -> None:
    asyncio.run(
        run_interleaving(max_bytes, max_entries, queue_capacity, first_index, ops),
        debug=False,
    )


async def run_interleaving(
    max_bytes: int, max_entries: int, queue_capacity: int, first_index: int, ops: list[Any]
) -> None:
    store = make_store(
        max_bytes=max_bytes,
        max_entries=max_entries,
        queue_capacity=queue_capacity,
        first_index=first_index,
    )
    database: dict[int, str] = {}  # every entry in its newest form, as the writer stores it
    published = 0
    readers: list[Reader] = []
    closed: list[Reader] = []
    for step, (op, arg) in enumerate(ops):
        if op == "append":
            body = payload(f"{step}:" + "y" * arg)
            database[store.append(body)] = body
            published += 1
        elif op == "replace" and database:
            index = first_index + arg % len(database)
            body = payload(f"{step}: replaced")
            store.replace(index, body)
            database[index] = body
            published += 1
        elif op == "subscribe":
            reader = Reader(store.subscribe(), queue_capacity)
            reader.take_snapshot(store, database, first=True)
            readers.append(reader)
        elif op == "read" and readers:
            reader = readers[arg % len(readers)]
            if published > reader.seq:  # otherwise it would (rightly) wait
                await reader.read(store, database, published)
        elif op == "close" and readers:
            reader = readers.pop(arg % len(readers))
            reader.subscription.close()
            closed.append(reader)
    store.finish()
    published += 1
    for reader in readers:
        while not reader.done:
            await reader.read(store, database, published)
        assert await reader.subscription.next_events() == []
        expected = {i: database[i] for i in range(reader.start, store.next_index)}
        assert reader.view == expected
        reader.subscription.close()
    assert store.subscriber_count == 0
    assert store._events == []


# --- bounded in bytes; the replaced-index log (issue 9) ---------------------------------------


def byte_bounded_store(queue_bytes: int) -> MsgStore:
    return MsgStore(
        "11111111-1111-1111-1111-111111111111",
        "raw",
        max_bytes=1 << 30,
        max_entries=1_000_000,
        queue_capacity=1_000_000,
        queue_bytes=queue_bytes,
    )


async def test_a_subscriber_resyncs_once_it_is_behind_by_its_byte_bound() -> None:
    store = byte_bounded_store(10_000)
    with store.subscribe() as subscription:
        subscription.snapshot()
        for _ in range(3):
            store.append(json.dumps("x" * 3_000))
        # 9 KB unread: within the bound, delivered as events.
        assert len(await subscription.next_events()) == 3  # type: ignore[arg-type]
        for _ in range(4):
            store.append(json.dumps("x" * 3_000))
        # 12 KB unread: past the byte bound although far below the event capacity.
        assert subscription.overflowed
        assert isinstance(await subscription.next_events(), Resync)
        snapshot = subscription.snapshot()
        assert len(snapshot.entries) == 7 and not subscription.overflowed


def test_the_shared_event_buffer_is_bounded_in_bytes() -> None:
    store = byte_bounded_store(50_000)
    stalled = store.subscribe()
    stalled.snapshot()
    peak = 0
    for _ in range(2_000):
        store.append(json.dumps("y" * 1_000))
        peak = max(peak, store._events_bytes)
    # Trimmed at twice the bound, to the bound: never more than 2x plus one event.
    assert peak <= 2 * 50_000 + 1_010
    assert stalled.overflowed
    stalled.close()


def test_replaced_indexes_are_logged_and_the_log_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(msg_store_module, "REPLACED_LOG_CAPACITY", 8)
    store = make_store()
    for i in range(20):
        store.append(json.dumps(i))
    with store.subscribe() as subscription:
        subscription.snapshot()
        seen = subscription.cursor
        store.replace(3, '"three"')
        store.append('"new"')
        store.replace(7, '"seven"')
        store.replace(3, '"three again"')
        assert store.replaced_since(seen) == {3, 7}
        assert store.replaced_since(store._seq) == set()
    store2 = make_store()
    store2.append('"a"')
    start = store2._seq
    for i in range(8):
        store2.replace(0, json.dumps(i))
    assert store2.replaced_since(start) == {0}  # exactly the capacity: still known
    store2.replace(0, '"one more"')
    assert store2.replaced_since(start) is None  # the log forgot: ask the database
    assert store2.replaced_since(store2._seq - 1) == {0}
