"""Session event bus: processes starting, finishing, changing status, approvals - what a UI
follows without polling (``GET /api/events``, server-sent events).

Each subscriber has a bounded queue; one that falls behind gets a single ``resync`` event
(refetch the sessions list) instead of slowing the publisher.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Final

from execlog.protocol import encode_json

__all__ = ["EventBus", "EventSubscription", "RESYNC_EVENT"]

RESYNC_EVENT: Final = '{"type":"resync"}'


class EventSubscription:
    def __init__(self, bus: EventBus, capacity: int) -> None:
        self._bus = bus
        self._capacity = capacity
        self._queue: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self._overflowed = False

    def _push(self, text: str) -> None:
        if self._overflowed:
            return
        if len(self._queue) >= self._capacity:
            self._queue.clear()
            self._overflowed = True
        else:
            self._queue.append(text)
        self._wakeup.set()

    async def next_event(self) -> str:
        """The next encoded event (JSON text); ``RESYNC_EVENT`` after an overflow."""
        while not self._queue and not self._overflowed:
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._overflowed:
            self._overflowed = False
            return RESYNC_EVENT
        return self._queue.popleft()

    def close(self) -> None:
        self._bus._subscribers.discard(self)


class EventBus:
    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._subscribers: set[EventSubscription] = set()

    def publish(self, event_type: str, **payload: Any) -> None:
        """Encode once, queue for every subscriber; never waits."""
        if not self._subscribers:
            return
        text = encode_json({"type": event_type, **payload})
        for subscription in list(self._subscribers):
            subscription._push(text)

    def subscribe(self) -> EventSubscription:
        subscription = EventSubscription(self, self._capacity)
        self._subscribers.add(subscription)
        return subscription

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
