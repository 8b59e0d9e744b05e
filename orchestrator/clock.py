"""Clocks: database time for timers and leases in production, a controllable fake in tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol


class Clock(Protocol):
    """Epoch milliseconds and a way to wait until a given moment."""

    def now_ms(self) -> int:
        """The current time, epoch milliseconds."""

    async def sleep_until(self, deadline_ms: int) -> None:
        """Return once ``now_ms() >= deadline_ms``."""


class DatabaseClock:
    """The database's clock, read through an offset measured against the local clock.

    Every worker agrees on the database's time, so sleeps, deadlines and leases do not depend on
    a worker's skewed clock. ``sync()`` re-measures the offset (at launch and on heartbeats).
    """

    def __init__(self, read_database_ms: Callable[[], Awaitable[int]]) -> None:
        self._read = read_database_ms
        self._offset_ms = 0.0

    async def sync(self) -> None:
        before = time.time() * 1000
        database_ms = await self._read()
        after = time.time() * 1000
        self._offset_ms = database_ms - (before + after) / 2

    def now_ms(self) -> int:
        return int(time.time() * 1000 + self._offset_ms)

    async def sleep_until(self, deadline_ms: int) -> None:
        remaining = deadline_ms - self.now_ms()
        while remaining > 0:
            await asyncio.sleep(remaining / 1000)
            remaining = deadline_ms - self.now_ms()


class FakeClock:
    """A clock that only moves when told to: ``advance(seconds)`` wakes due sleepers."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = start_ms
        self._changed = asyncio.Condition()

    def now_ms(self) -> int:
        return self._now_ms

    async def sleep_until(self, deadline_ms: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._now_ms >= deadline_ms)

    async def advance(self, seconds: float) -> None:
        self._now_ms += int(seconds * 1000)
        async with self._changed:
            self._changed.notify_all()
        await asyncio.sleep(0)
