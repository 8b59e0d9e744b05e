"""Clocks: database time for timers and leases in production, a controllable fake in tests.

Every wait of the engine goes through its Clock: durable sleeps, recv and get_event timeouts,
result waits, deadlines, retry backoff, step timeouts, cron ticks, queue delays and rate
windows, lease renewals. So a FakeClock moved forward makes each of them happen at once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Timer(Protocol):
    """A callback scheduled on a clock; ``cancel`` unschedules it."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Epoch milliseconds, and callbacks and waits at given moments of that time."""

    def now_ms(self) -> int:
        """The current time, epoch milliseconds."""

    def call_at(self, deadline_ms: int, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` (on the event loop) once ``now_ms() >= deadline_ms``."""

    async def sleep_until(self, deadline_ms: int) -> None:
        """Return once ``now_ms() >= deadline_ms``."""

    async def wait_until(
        self, awaitable: Awaitable[T], deadline_ms: int | None
    ) -> tuple[bool, T | None]:
        """Await ``awaitable`` until ``deadline_ms`` (None: no deadline): (True, its value),
        or (False, None) once the deadline passed first (the awaitable is then cancelled)."""


Schedule = Callable[[int, Callable[[], None]], Timer]


async def _sleep_until(call_at: Schedule, deadline_ms: int) -> None:
    """sleep_until for a clock, built on its ``call_at``."""
    ring: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    timer = call_at(deadline_ms, lambda: _set(ring))
    try:
        await ring
    finally:
        timer.cancel()


async def _wait_until(
    call_at: Schedule, awaitable: Awaitable[T], deadline_ms: int | None
) -> tuple[bool, T | None]:
    """wait_until for a clock, built on its ``call_at``."""
    if deadline_ms is None:
        return True, await awaitable
    work = asyncio.ensure_future(awaitable)
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        work.cancel()

    timer = call_at(deadline_ms, expire)
    try:
        return True, await work
    except asyncio.CancelledError:
        if expired:
            return False, None
        raise
    finally:
        timer.cancel()
        if not work.done():
            work.cancel()


def _set(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


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

    def call_at(self, deadline_ms: int, callback: Callable[[], None]) -> Timer:
        delay = max(deadline_ms - self.now_ms(), 0) / 1000
        return asyncio.get_running_loop().call_later(delay, callback)

    async def sleep_until(self, deadline_ms: int) -> None:
        await _sleep_until(self.call_at, deadline_ms)

    async def wait_until(
        self, awaitable: Awaitable[T], deadline_ms: int | None
    ) -> tuple[bool, T | None]:
        return await _wait_until(self.call_at, awaitable, deadline_ms)


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "deadline_ms")

    def __init__(self, deadline_ms: int, callback: Callable[[], None]) -> None:
        self.deadline_ms = deadline_ms
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that only moves when told to: ``advance(seconds)`` (or ``set(ms)``) fires the
    timers that came due, in order, so every wait on this clock ends at once."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = start_ms
        self._timers: list[tuple[int, int, _FakeTimer]] = []
        self._order = itertools.count()

    def now_ms(self) -> int:
        return self._now_ms

    def call_at(self, deadline_ms: int, callback: Callable[[], None]) -> Timer:
        timer = _FakeTimer(deadline_ms, callback)
        if deadline_ms <= self._now_ms:
            asyncio.get_running_loop().call_soon(self._fire, timer)
        else:
            heapq.heappush(self._timers, (deadline_ms, next(self._order), timer))
        return timer

    async def sleep_until(self, deadline_ms: int) -> None:
        await _sleep_until(self.call_at, deadline_ms)

    async def wait_until(
        self, awaitable: Awaitable[T], deadline_ms: int | None
    ) -> tuple[bool, T | None]:
        return await _wait_until(self.call_at, awaitable, deadline_ms)

    @staticmethod
    def _fire(timer: _FakeTimer) -> None:
        if not timer.cancelled:
            timer.cancelled = True
            timer.callback()

    def next_deadline(self) -> int | None:
        """When the earliest pending timer is due (None: none is pending)."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    async def advance(self, seconds: float) -> None:
        """Move time forward, firing every timer that came due (then let them run)."""
        await self.set(self._now_ms + int(seconds * 1000))

    async def set(self, now_ms: int) -> None:
        """Move time to ``now_ms`` (never back), firing the timers due by then in order."""
        self._now_ms = max(self._now_ms, now_ms)
        while self._timers and self._timers[0][0] <= self._now_ms:
            _, _, timer = heapq.heappop(self._timers)
            self._fire(timer)
        for _ in range(3):  # let the woken coroutines run a little
            await asyncio.sleep(0)

    def pending(self) -> int:
        """How many timers wait for time to move."""
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)

    def deadlines(self) -> list[int]:
        """When each pending timer is due (epoch ms, earliest first): what waits on this
        clock, for a test to wait until the wait it means to end has begun."""
        return sorted(deadline for deadline, _, timer in self._timers if not timer.cancelled)
