"""history.py without a server: a real MsgStore and a real writer on a SQLite file. Pages across
memory and database, truncation, the stream's phases (catch-up, live, resync, ended), gapless
and duplicate-free, and the deadline on the writer flush."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Engine

from execlog.config import LogPersistence
from execlog.errors import DatabaseUnavailableError, ProcessNotFoundError
from execlog.history import HistoryService, LogStream, StreamPhase
from execlog.live.msg_store import MsgStore
from execlog.protocol import Channel, encode_raw_entry
from execlog.storage.entries import EntryStore
from execlog.storage.legacy import LegacyLogStore
from execlog.storage.processes import ProcessRepository
from execlog.storage.writer import EntryWrite, LogWriter
from tests.helpers import wait_until

pytestmark = pytest.mark.asyncio


class Running:
    """One running process's raw channel: the store, and the writer behind it (as the pipeline
    does it: append to memory, then queue the row)."""

    def __init__(self, writer: LogWriter, *, max_entries: int, queue_capacity: int = 64) -> None:
        self.process_id = str(uuid.uuid4())
        self.writer = writer
        self.store = MsgStore(
            self.process_id,
            "raw",
            max_bytes=1 << 20,
            max_entries=max_entries,
            queue_capacity=queue_capacity,
        )

    async def append(self, count: int, *, persist: bool = True) -> None:
        ops = []
        for _ in range(count):
            payload = encode_raw_entry("stdout", f"line {self.store.next_index}")
            index = self.store.append(payload)
            ops.append(EntryWrite(self.process_id, "raw", index, payload))
        if persist:
            await self.writer.submit_many(ops)

    async def replace(self, index: int, text: str) -> None:
        payload = encode_raw_entry("stdout", text)
        self.store.replace(index, payload)
        await self.writer.submit(EntryWrite(self.process_id, "raw", index, payload, True))


@pytest.fixture
async def writer(engine: Engine) -> AsyncIterator[LogWriter]:
    log_writer = LogWriter(EntryStore(engine), LegacyLogStore(engine), LogPersistence.ENTRIES)
    await log_writer.start()
    yield log_writer
    await log_writer.close()


def make_history(
    engine: Engine, writer: LogWriter, *running: Running, **options: Any
) -> HistoryService:
    stores = {r.process_id: r.store for r in running}

    def store(process_id: str, channel: Channel) -> MsgStore | None:
        return stores.get(process_id) if channel == "raw" else None

    return HistoryService(EntryStore(engine), store, writer, ProcessRepository(engine), **options)


def texts(entries: list[Any]) -> list[str]:
    return [json.loads(entry_json)["content"] for _index, entry_json in entries]


def frame_texts(frames: list[str]) -> list[tuple[str, int, str]]:
    decoded = [json.loads(frame) for frame in frames]
    return [
        (f["type"], f.get("entry_index", -1), (f.get("entry") or {}).get("content"))
        for f in decoded
    ]


# --- pages ------------------------------------------------------------------------------------


async def test_pages_walk_memory_then_database_without_overlap_or_gap(
    engine: Engine, writer: LogWriter
) -> None:
    running = Running(writer, max_entries=5)
    await running.append(23)  # 18 evicted, some still in the writer's queue
    history = make_history(engine, writer, running)

    seen: list[int] = []
    cursor: int | None = None
    while True:
        page = await history.fetch_page(running.process_id, "raw", 4, cursor)
        indexes = [entry.entry_index for entry in page.entries]
        assert indexes == sorted(indexes) and len(indexes) <= 4
        seen = indexes + seen
        assert not page.history_truncated
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
    assert seen == list(range(23))


async def test_evicted_entries_in_neither_place_are_reported_truncated(
    engine: Engine, writer: LogWriter
) -> None:
    running = Running(writer, max_entries=3)
    await running.append(10, persist=False)  # 0..6 evicted and never stored
    history = make_history(engine, writer, running)

    page = await history.fetch_page(running.process_id, "raw", 5, None)

    assert [entry.entry_index for entry in page.entries] == [7, 8, 9]  # only what memory holds
    assert texts(page.entries) == ["line 7", "line 8", "line 9"]
    assert page.history_truncated is True
    assert page.has_more is False and page.next_cursor is None


async def test_an_unknown_process_is_not_found(engine: Engine, writer: LogWriter) -> None:
    history = make_history(engine, writer)
    with pytest.raises(ProcessNotFoundError):
        await history.fetch_page(str(uuid.uuid4()), "raw", 10, None)


async def test_a_read_never_waits_on_the_writer_beyond_the_deadline(
    engine: Engine, writer: LogWriter
) -> None:
    running = Running(writer, max_entries=2)
    history = make_history(engine, writer, running, flush_deadline_seconds=0.3)
    database = engine.url.database
    assert database is not None
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the writer's commit now waits on SQLite's lock
    try:
        await running.append(6)
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError):  # a 503 at the edge
            await history.fetch_page(running.process_id, "raw", 6, None)
        assert time.monotonic() - started < 5
    finally:
        blocker.rollback()
        blocker.close()
    page = await history.fetch_page(running.process_id, "raw", 6, None)
    assert [entry.entry_index for entry in page.entries] == list(range(6))


# --- streams ----------------------------------------------------------------------------------


async def collect(stream: LogStream, frames: list[str]) -> None:
    async for frame in stream:
        frames.append(frame)


async def test_stream_with_after_catches_up_from_database_and_memory_then_goes_live(
    engine: Engine, writer: LogWriter
) -> None:
    running = Running(writer, max_entries=4)
    await running.append(12)  # 0..7 only in the database (or the writer's queue)
    history = make_history(engine, writer, running)
    stream = history.stream(running.process_id, "raw", 2)
    assert stream.phase is StreamPhase.CATCH_UP
    frames: list[str] = []
    reader = asyncio.create_task(collect(stream, frames))

    await wait_until(lambda: len(frames) == 9)
    assert stream.phase is StreamPhase.LIVE
    await running.append(3)
    await running.replace(13, "line 13 grew")
    running.store.finish()
    await asyncio.wait_for(reader, 10)

    assert stream.phase is StreamPhase.ENDED
    received = frame_texts(frames)
    assert [index for kind, index, _ in received if kind == "append"] == list(range(3, 15))
    assert ("replace", 13, "line 13 grew") in received
    assert received[-1][0] == "finished"


async def test_stream_without_after_sends_memory_then_live(
    engine: Engine, writer: LogWriter
) -> None:
    running = Running(writer, max_entries=4)
    await running.append(10)
    history = make_history(engine, writer, running)
    frames: list[str] = []
    reader = asyncio.create_task(collect(history.stream(running.process_id, "raw", None), frames))
    await wait_until(lambda: len(frames) == 4)
    await running.append(1)
    running.store.finish()
    await asyncio.wait_for(reader, 10)
    assert [index for _, index, _ in frame_texts(frames)] == [6, 7, 8, 9, 10, -1]


async def test_a_slow_subscriber_is_resynced_with_replace_frames_and_ends_complete(
    engine: Engine, writer: LogWriter
) -> None:
    """The producer never waits: a subscriber that falls more than queue_capacity events
    behind gets what it lacks as replace frames (database, then memory), then live again."""
    running = Running(writer, max_entries=8, queue_capacity=4)
    await running.append(3)
    history = make_history(engine, writer, running)
    stream = history.stream(running.process_id, "raw", None)
    client: dict[int, str] = {}
    phases: set[StreamPhase] = set()
    frames = stream.frames()

    async def take() -> dict[str, Any]:
        frame = json.loads(await anext(frames))
        phases.add(stream.phase)
        if frame["type"] != "finished":
            client[frame["entry_index"]] = frame["entry"]["content"]
        return frame

    for _ in range(3):
        await take()
    await running.append(30)  # far more than the queue: the next read resyncs
    await running.replace(30, "line 30 changed")  # sent before? no matter: memory holds it
    running.store.finish()
    received = []
    while (frame := await take())["type"] != "finished":
        received.append(frame)
    await frames.aclose()

    assert StreamPhase.RESYNC in phases
    assert {frame["type"] for frame in received} == {"replace"}
    indexes = [frame["entry_index"] for frame in received]
    assert indexes == sorted(indexes)  # ascending, each sent once
    assert client == {i: f"line {i}" for i in range(33)} | {30: "line 30 changed"}
    assert stream.phase is StreamPhase.ENDED


async def test_stream_of_an_ended_process_sends_stored_entries_then_finished(
    engine: Engine, writer: LogWriter
) -> None:
    running = Running(writer, max_entries=100)
    await running.append(5)
    await writer.flush()
    history = make_history(engine, writer)  # no longer running: its store is gone
    frames: list[str] = []
    await collect(history.stream(running.process_id, "raw", 1), frames)
    assert [index for _, index, _ in frame_texts(frames)] == [2, 3, 4, -1]
    frames.clear()
    await collect(history.stream(running.process_id, "raw", None), frames)
    assert frame_texts(frames) == [("finished", -1, None)]


async def test_closing_the_stream_releases_its_subscription(
    engine: Engine, writer: LogWriter
) -> None:
    running = Running(writer, max_entries=10)
    await running.append(2)
    history = make_history(engine, writer, running)
    frames = history.stream(running.process_id, "raw", None).frames()
    await anext(frames)
    assert running.store.subscriber_count == 1
    await frames.aclose()
    assert running.store.subscriber_count == 0
