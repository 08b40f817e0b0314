"""MsgStoreRegistry: one store per process and channel with the registry's limits, and stores
released once removed."""

from __future__ import annotations

import gc
import weakref

import pytest

from execlog.config import load_settings
from execlog.live.msg_store import MsgStore
from execlog.live.registry import MsgStoreRegistry

PROCESS_ID = "22222222-2222-2222-2222-222222222222"
OTHER_ID = "33333333-3333-3333-3333-333333333333"


def test_create_gives_a_raw_and_a_normalized_store_with_the_limits() -> None:
    registry = MsgStoreRegistry(max_bytes=100, max_entries=2, queue_capacity=1)
    raw, normalized = registry.create(PROCESS_ID, first_index_raw=5, first_index_normalized=9)
    assert (raw.process_id, raw.channel, raw.next_index) == (PROCESS_ID, "raw", 5)
    assert (normalized.process_id, normalized.channel, normalized.next_index) == (
        PROCESS_ID,
        "normalized",
        9,
    )
    assert registry.get(PROCESS_ID, "raw") is raw
    assert registry.get(PROCESS_ID, "normalized") is normalized
    assert registry.get(OTHER_ID, "raw") is None
    assert len(registry) == 1 and PROCESS_ID in registry
    for i in range(3):
        raw.append(f'"{i}"')
    assert raw.held_count == 2  # max_entries came from the registry
    raw.append('"' + "x" * 200 + '"')
    assert raw.held_count == 1  # and max_bytes too


def test_create_twice_for_one_process_is_refused() -> None:
    registry = MsgStoreRegistry(100, 10, 10)
    raw, _ = registry.create(PROCESS_ID, first_index_raw=0, first_index_normalized=0)
    with pytest.raises(ValueError, match="already has live stores"):
        registry.create(PROCESS_ID, first_index_raw=0, first_index_normalized=0)
    assert registry.get(PROCESS_ID, "raw") is raw


def test_remove_forgets_the_process_and_is_idempotent() -> None:
    registry = MsgStoreRegistry(100, 10, 10)
    registry.create(PROCESS_ID, first_index_raw=0, first_index_normalized=0)
    registry.create(OTHER_ID, first_index_raw=0, first_index_normalized=0)
    registry.remove(PROCESS_ID)
    registry.remove(PROCESS_ID)
    assert len(registry) == 1
    assert registry.get(PROCESS_ID, "raw") is None
    assert registry.get(OTHER_ID, "normalized") is not None


def test_limits_come_from_settings() -> None:
    settings = load_settings(
        log_history_max_bytes=64, log_history_max_entries=3, ws_queue_capacity=2
    )
    registry = MsgStoreRegistry.from_settings(settings)
    raw, _ = registry.create(PROCESS_ID, first_index_raw=0, first_index_normalized=0)
    for i in range(5):
        raw.append(f'"{i}"')
    assert raw.held_count == 3


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        MsgStoreRegistry(0, 10, 10)


async def test_removed_stores_are_released() -> None:
    registry = MsgStoreRegistry(1000, 10, 64)
    raw, normalized = registry.create(PROCESS_ID, first_index_raw=0, first_index_normalized=0)
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
    registry.remove(PROCESS_ID)
    refs: list[weakref.ref[MsgStore]] = [weakref.ref(raw), weakref.ref(normalized)]
    del raw, normalized, subscription, events
    gc.collect()
    assert [ref() for ref in refs] == [None, None]
    assert len(registry) == 0
