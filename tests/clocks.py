"""Waiting in tests without fixed sleeps: for a state to be reached (polling, bounded), or for a
wait to be on a FakeClock before moving it (so the move ends that wait, not an earlier one)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from orchestrator import FakeClock, WorkflowHandle, WorkflowStatus

T = TypeVar("T")


async def until(
    predicate: Callable[[], Awaitable[bool] | bool],
    *,
    within: float = 10.0,
    what: Callable[[], str] = lambda: "",
) -> None:
    """Wait (real time, polling) until ``predicate()`` (sync or async) holds; fail after
    ``within`` seconds, saying ``what()``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        held = predicate()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        assert loop.time() < deadline, f"the awaited state never came{what()}"
        await asyncio.sleep(0.02)


async def in_real_time(awaitable: Awaitable[T], seconds: float = 10.0) -> T:
    """Await with a real-time limit: a timeout passed to a wait on a FakeClock ends only when
    the test moves that clock, so a test that never does would hang instead of failing."""
    return await asyncio.wait_for(awaitable, seconds)


async def status_is(handle: WorkflowHandle[Any], *statuses: WorkflowStatus) -> None:
    async def reached() -> bool:
        return (await handle.status()).status in statuses

    await until(reached)


async def waiting_on_clock(clock: FakeClock, *, after: float, slack_ms: int = 0) -> None:
    """Until a wait that ends ``after`` seconds from now (to ``slack_ms`` later) is on the
    clock: the wait has begun."""
    await armed_at(clock, clock.now_ms() + int(after * 1000), slack_ms=slack_ms)


async def armed_at(clock: FakeClock, due_ms: int, *, slack_ms: int = 0) -> None:
    """Until a wait that ends at ``due_ms`` (to ``slack_ms`` later) is on the clock."""

    async def armed() -> bool:
        return any(due_ms <= deadline <= due_ms + slack_ms for deadline in clock.deadlines())

    def waiting() -> str:
        now = clock.now_ms()
        pending = [(deadline - now) / 1000 for deadline in clock.deadlines()]
        return f": the clock's waits end in {pending} s, none in {(due_ms - now) / 1000} s"

    await until(armed, what=waiting)
