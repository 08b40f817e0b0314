"""ProcessRegistry: one RunningProcess per process id, opened and closed in one operation each;
stores with the registry's limits, the read-only ``store`` view, close listeners, and stores
released once closed."""

from __future__ import annotations

import gc
import weakref

import pytest
from sqlalchemy import Engine

from execlog.config import LogPersistence, load_settings
from execlog.live.msg_store import MsgStore
from execlog.runner.pipeline import ProcessPipeline
from execlog.runner.registry import ProcessRegistry, RunningProcess
from execlog.storage.entries import EntryStore
from execlog.storage.legacy import LegacyLogStore
from execlog.storage.processes import ProcessRecord
from execlog.storage.writer import LogWriter

PROCESS_ID = "22222222-2222-2222-2222-222222222222"
OTHER_ID = "33333333-3333-3333-3333-333333333333"


def _record(process_id: str) -> ProcessRecord:
    return ProcessRecord(process_id, "s", "script", "running", None, 0, None, None)


async def _nothing(_value: str) -> None:
    return None


@pytest.fixture
def open_process(engine: Engine):  # type: ignore[no-untyped-def]
    writer = LogWriter(EntryStore(engine), LegacyLogStore(engine), LogPersistence.ENTRIES)

    def open_(registry: ProcessRegistry, process_id: str, **indexes: int) -> RunningProcess:
        def build(raw: MsgStore, normalized: MsgStore) -> ProcessPipeline:
            return ProcessPipeline(
                process_id,
                raw,
                normalized,
                writer,
                None,
                on_session_id=_nothing,
                on_summary=_nothing,
            )

        return registry.open(_record(process_id), build, **indexes)

    return open_


def test_open_gives_a_process_with_both_stores_and_the_limits(open_process) -> None:  # type: ignore[no-untyped-def]
    registry = ProcessRegistry(max_bytes=100, max_entries=2, queue_capacity=1)
    running = open_process(registry, PROCESS_ID, first_index_raw=5, first_index_normalized=9)
    raw, normalized = running.raw, running.normalized
    assert (raw.process_id, raw.channel, raw.next_index) == (PROCESS_ID, "raw", 5)
    assert (normalized.channel, normalized.next_index) == ("normalized", 9)
    assert running.pipeline.raw is raw and running.pipeline.normalized is normalized
    assert registry.get(PROCESS_ID) is running
    assert registry.store(PROCESS_ID, "raw") is raw
    assert registry.store(PROCESS_ID, "normalized") is normalized
    assert registry.store(OTHER_ID, "raw") is None
    assert len(registry) == 1 and PROCESS_ID in registry and list(registry) == [running]
    for i in range(3):
        raw.append(f'"{i}"')
    assert raw.held_count == 2  # max_entries came from the registry
    raw.append('"' + "x" * 200 + '"')
    assert raw.held_count == 1  # and max_bytes too


def test_opening_a_running_process_again_is_refused(open_process) -> None:  # type: ignore[no-untyped-def]
    registry = ProcessRegistry(100, 10, 10)
    running = open_process(registry, PROCESS_ID)
    with pytest.raises(ValueError, match="already running"):
        open_process(registry, PROCESS_ID)
    assert registry.get(PROCESS_ID) is running


def test_close_forgets_the_process_tells_listeners_once_and_is_idempotent(open_process) -> None:  # type: ignore[no-untyped-def]
    registry = ProcessRegistry(100, 10, 10)
    closed: list[str] = []
    registry.on_close(lambda running: closed.append(running.process_id))
    running = open_process(registry, PROCESS_ID)
    open_process(registry, OTHER_ID)
    assert registry.close(PROCESS_ID) is running
    assert registry.close(PROCESS_ID) is None
    assert closed == [PROCESS_ID]
    assert len(registry) == 1
    assert registry.get(PROCESS_ID) is None and registry.store(PROCESS_ID, "raw") is None
    assert registry.store(OTHER_ID, "normalized") is not None


def test_limits_come_from_settings(open_process) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(
        log_history_max_bytes=64, log_history_max_entries=3, ws_queue_capacity=2
    )
    registry = ProcessRegistry.from_settings(settings)
    raw = open_process(registry, PROCESS_ID).raw
    for i in range(5):
        raw.append(f'"{i}"')
    assert raw.held_count == 3


def test_the_subscriber_byte_bound_comes_from_settings(open_process) -> None:  # type: ignore[no-untyped-def]
    # EXECLOG_SUBSCRIBER_QUEUE_BYTES: three 30 KB entries unread pass 64 KiB long before the
    # 1,000-event capacity, so the subscriber is told to resync.
    settings = load_settings(subscriber_queue_bytes=65_536, ws_queue_capacity=1000)
    raw = open_process(ProcessRegistry.from_settings(settings), PROCESS_ID).raw
    with raw.subscribe() as subscription:
        subscription.snapshot()
        line = '"' + "x" * 30_000 + '"'
        raw.append(line)
        raw.append(line)
        assert not subscription.overflowed
        raw.append(line)
        assert subscription.overflowed


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        ProcessRegistry(0, 10, 10)
    with pytest.raises(ValueError):
        ProcessRegistry(10, 10, 10, queue_bytes=0)


async def test_closed_processes_are_released(open_process) -> None:  # type: ignore[no-untyped-def]
    registry = ProcessRegistry(1000, 10, 64)
    running = open_process(registry, PROCESS_ID)
    raw, normalized = running.raw, running.normalized
    subscription = raw.subscribe()
    subscription.snapshot()
    for i in range(20):
        raw.append(f'"{i}"')
    normalized.append('"n"')
    raw.finish()
    normalized.finish()
    events = await subscription.next_events()
    assert isinstance(events, list) and events[-1].kind == "finished"
    subscription.close()
    registry.close(PROCESS_ID)
    refs: list[weakref.ref[object]] = [
        weakref.ref(raw),
        weakref.ref(normalized),
        weakref.ref(running),
    ]
    del raw, normalized, subscription, events, running
    gc.collect()
    assert [ref() for ref in refs] == [None, None, None]
    assert len(registry) == 0
