"""Shared steps of the tests at every level: waiting on a condition with a bounded deadline
(never a sleep that hopes the race is over)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["wait_until"]


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, *, message: str = ""
) -> None:
    """Poll ``predicate`` until it holds; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message or "condition not reached before the deadline")
        await asyncio.sleep(0.002)
