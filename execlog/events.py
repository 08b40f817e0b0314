"""Session event bus: sessions created, processes changing status, approvals - what a UI
follows without polling (``GET /api/events``, server-sent events).

The bus carries records (snapshots taken when published); the API renders them. Each
subscriber has a bounded queue; one that falls behind gets a single ``EVENTS_MISSED`` marker
(refetch the sessions list) instead of slowing the publisher.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final, Generic, TypeAlias, TypeVar

from execlog.storage.processes import ProcessRecord, SessionRecord

if TYPE_CHECKING:  # approvals publish on the bus, so the bus cannot import them at run time
    from execlog.approvals import Approval

__all__ = [
    "EVENTS_MISSED",
    "ApprovalUpdated",
    "EventBus",
    "EventSubscription",
    "EventsMissed",
    "ProcessUpdated",
    "SessionCreated",
    "SessionEvent",
    "SessionUpdated",
]

_E = TypeVar("_E")


@dataclass(frozen=True, slots=True)
class SessionCreated:
    session: SessionRecord

    @classmethod
    def of(cls, session: SessionRecord) -> SessionCreated:
        processes = [replace(process) for process in session.processes]
        return cls(replace(session, processes=processes))


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """A session's chain of processes ended (``active`` false). ``session`` is None when it
    could not be read (the database is down): clients still learn of the end by its id."""

    session_id: str
    session: SessionRecord | None

    @classmethod
    def ended(cls, session_id: str, session: SessionRecord | None) -> SessionUpdated:
        if session is None:
            return cls(session_id, None)
        processes = [replace(process) for process in session.processes]
        return cls(session_id, replace(session, processes=processes, active=False))


@dataclass(frozen=True, slots=True)
class ProcessUpdated:
    process: ProcessRecord

    @classmethod
    def of(cls, process: ProcessRecord) -> ProcessUpdated:
        return cls(replace(process))


@dataclass(frozen=True, slots=True)
class ApprovalUpdated:
    approval: Approval

    @classmethod
    def of(cls, approval: Approval) -> ApprovalUpdated:
        return cls(copy.copy(approval))


SessionEvent: TypeAlias = SessionCreated | SessionUpdated | ProcessUpdated | ApprovalUpdated


class EventsMissed:
    """The subscriber's queue overflowed: events were dropped; refetch, then go on."""

    __slots__ = ()


EVENTS_MISSED: Final = EventsMissed()


class EventSubscription(Generic[_E]):
    def __init__(self, bus: EventBus[_E], capacity: int) -> None:
        self._bus = bus
        self._capacity = capacity
        self._queue: deque[_E] = deque()
        self._wakeup = asyncio.Event()
        self._overflowed = False

    def _push(self, event: _E) -> None:
        if self._overflowed:
            return
        if len(self._queue) >= self._capacity:
            self._queue.clear()
            self._overflowed = True
        else:
            self._queue.append(event)
        self._wakeup.set()

    async def next_event(self) -> _E | EventsMissed:
        """The next event; ``EVENTS_MISSED`` after an overflow."""
        while not self._queue and not self._overflowed:
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._overflowed:
            self._overflowed = False
            return EVENTS_MISSED
        return self._queue.popleft()

    def close(self) -> None:
        self._bus._subscribers.discard(self)


class EventBus(Generic[_E]):
    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._subscribers: set[EventSubscription[_E]] = set()

    def publish(self, event: _E) -> None:
        """Queue for every subscriber; never waits."""
        for subscription in list(self._subscribers):
            subscription._push(event)

    def subscribe(self) -> EventSubscription[_E]:
        subscription = EventSubscription(self, self._capacity)
        self._subscribers.add(subscription)
        return subscription

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
