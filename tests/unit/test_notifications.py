"""The in-process fan-out of notifications: a wake-up is never lost, a deadline (on the clock)
or a re-read is a plain False, a stopped wait is a cancelled future."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.clock import FakeClock
from orchestrator.engine.notifications import Waiters
from orchestrator.store.base import NOTIFY_MESSAGE, NOTIFY_RECONNECTED


async def test_a_notification_wakes_the_wait_under_way() -> None:
    waiters = Waiters()
    with waiters.subscribe((NOTIFY_MESSAGE, "w")) as subscription:
        waiting = asyncio.ensure_future(subscription.wait())
        await asyncio.sleep(0)
        waiters.notify(NOTIFY_MESSAGE, "other")  # not this key
        await asyncio.sleep(0)
        assert not waiting.done()
        waiters.notify(NOTIFY_MESSAGE, "w")
        assert await waiting is True


async def test_a_notification_between_two_waits_is_kept_for_the_next() -> None:
    """Woken, the caller re-reads its table; a change committed meanwhile must not be
    slept through."""
    waiters = Waiters()
    with waiters.subscribe((NOTIFY_MESSAGE, "w")) as subscription:
        waiters.notify(NOTIFY_MESSAGE, "w")  # nobody waiting yet (the re-read is under way)
        assert await asyncio.wait_for(subscription.wait(), 1) is True
        assert await subscription.wait(poll_seconds=0.01) is False  # consumed once: a re-read


async def test_the_deadline_is_on_the_clock() -> None:
    waiters = Waiters()
    clock = FakeClock()
    with waiters.subscribe((NOTIFY_MESSAGE, "w")) as subscription:
        waiting = asyncio.ensure_future(subscription.wait(clock.now_ms() + 60_000, clock=clock))
        await asyncio.sleep(0.05)  # real time passes: nothing happens
        assert not waiting.done()
        await clock.advance(60)  # the clock reaches the deadline: the wait ends at once
        assert await asyncio.wait_for(waiting, 1) is False
        waiters.notify(NOTIFY_MESSAGE, "w")
        assert await subscription.next(clock.now_ms() + 5000, clock=clock) is True  # at once


async def test_a_cancelled_wait_is_a_cancelled_future_and_loses_nothing() -> None:
    waiters = Waiters()
    with waiters.subscribe((NOTIFY_MESSAGE, "w")) as subscription:
        waiter = subscription.next()
        waiter.cancel()  # what WorkflowRun.stop does to a parked recv
        with pytest.raises(asyncio.CancelledError):
            await waiter
        waiters.notify(NOTIFY_MESSAGE, "w")
        assert await subscription.next() is True


async def test_a_reconnect_wakes_every_subscription() -> None:
    waiters = Waiters()
    with (
        waiters.subscribe((NOTIFY_MESSAGE, "a")) as a,
        waiters.subscribe((NOTIFY_MESSAGE, "b")) as b,
    ):
        waits = [asyncio.ensure_future(s.wait()) for s in (a, b)]
        await asyncio.sleep(0)
        assert waiters.count == 2
        waiters.notify(NOTIFY_RECONNECTED, "")
        assert await asyncio.gather(*waits) == [True, True]
    assert waiters.count == 0


async def test_a_wait_s_timers_end_with_the_wait_and_with_the_subscription() -> None:
    """A deadline and a poll timer are cancelled once the wait is over (wait()), by the next
    wait, and when the subscription ends (a parked recv's, woken and returning): a wake-up
    leaves no timer to fire later, and costs no event-loop turn of its own to cancel them."""
    clock = FakeClock()
    waiters = Waiters()
    with waiters.subscribe((NOTIFY_MESSAGE, "w")) as subscription:
        waiting = asyncio.ensure_future(
            subscription.wait(clock.now_ms() + 60_000, clock=clock, poll_seconds=3600)
        )
        await asyncio.sleep(0)
        assert clock.next_deadline() is not None
        waiters.notify(NOTIFY_MESSAGE, "w")
        assert await waiting is True
        assert clock.next_deadline() is None  # wait() cancelled its deadline
        first = subscription.next(clock.now_ms() + 60_000, clock=clock)
        waiters.notify(NOTIFY_MESSAGE, "w")
        assert await first is True
        assert clock.next_deadline() is not None  # next() alone leaves it to the next wait...
        second = subscription.next(clock.now_ms() + 120_000, clock=clock)
        assert clock.next_deadline() == clock.now_ms() + 120_000  # ...which cancels it
        second.cancel()
    assert clock.next_deadline() is None  # and the subscription's end cancels the last
