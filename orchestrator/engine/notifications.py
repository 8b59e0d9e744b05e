"""In-process fan-out of store notifications to the coroutines waiting on them."""

from __future__ import annotations

import asyncio
import functools

from orchestrator.clock import Clock, Timer
from orchestrator.store.base import NOTIFY_RECONNECTED


class Subscription:
    """Interest in some (kind, key) pairs, registered with ``Waiters`` while used as a context
    manager. A notification wakes the wait under way, or, when none is, is remembered so that
    the next wait returns at once: none is lost between a wake-up and the re-read that follows
    it. Slotted and closure-free: a workflow parked in recv holds one (see bench/README.md)."""

    __slots__ = ("_pending", "_timers", "_waiter", "_waiters", "keys")

    def __init__(self, keys: tuple[tuple[str, str], ...], waiters: Waiters | None = None) -> None:
        self.keys = keys
        self._waiters = waiters
        self._waiter: asyncio.Future[bool] | None = None
        self._pending = False
        self._timers: tuple[Timer | asyncio.TimerHandle, ...] = ()

    def __enter__(self) -> Subscription:
        if self._waiters is not None:
            self._waiters.add(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._cancel_timers()
        if self._waiters is not None:
            self._waiters.discard(self)

    def fire(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)
            self._waiter = None
        else:
            self._pending = True

    def next(
        self,
        deadline_ms: int | None = None,
        *,
        clock: Clock | None = None,
        poll_seconds: float | None = None,
    ) -> asyncio.Future[bool]:
        """A future of the next notification (True), or of ``deadline_ms`` passing on
        ``clock`` or ``poll_seconds`` of real time passing (False: look again; a store whose
        other processes cannot notify this one polls). A plain future, no task: a workflow
        parked in recv costs little, and cancelling it (a stop) is cancelling this future."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._cancel_timers()
        if self._pending:
            self._pending = False
            waiter.set_result(True)
            return waiter
        self._waiter = waiter
        timers: list[Timer | asyncio.TimerHandle] = []
        if deadline_ms is not None and clock is not None:
            timers.append(clock.call_at(deadline_ms, functools.partial(_expire, waiter)))
        if poll_seconds is not None:
            timers.append(loop.call_later(max(poll_seconds, 0), _expire, waiter))
        if timers:
            # Cancelled by the next wait, or as the subscription ends: not by a done callback
            # of the waiter, which cost every wake-up one more event-loop turn (a wake storm
            # wakes 100,000 recvs at once). A timer that fires meanwhile finds the waiter done.
            self._timers = tuple(timers)
        return waiter

    async def wait(
        self,
        deadline_ms: int | None = None,
        *,
        clock: Clock | None = None,
        poll_seconds: float | None = None,
    ) -> bool:
        """Wait for the next notification; True if notified, False at the deadline or poll."""
        try:
            return await self.next(deadline_ms, clock=clock, poll_seconds=poll_seconds)
        finally:
            self._cancel_timers()

    def _cancel_timers(self) -> None:
        timers, self._timers = self._timers, ()
        for timer in timers:
            timer.cancel()


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class Waiters:
    """Routes ``(kind, payload)`` notifications to subscriptions; no thread, no polling."""

    def __init__(self) -> None:
        # (a list, not a set: almost every key has one subscription, and a list is smaller)
        self._subscriptions: dict[tuple[str, str], list[Subscription]] = {}

    def subscribe(self, *keys: tuple[str, str]) -> Subscription:
        """A subscription to (kind, key) pairs, registered while its ``with`` block runs:
        subscribe before reading state, then wait, and no notification falls in between."""
        return Subscription(keys, self)

    def add(self, subscription: Subscription) -> None:
        for key in subscription.keys:
            self._subscriptions.setdefault(key, []).append(subscription)

    def discard(self, subscription: Subscription) -> None:
        for key in subscription.keys:
            bucket = self._subscriptions.get(key)
            if bucket is not None and subscription in bucket:
                bucket.remove(subscription)
                if not bucket:
                    del self._subscriptions[key]

    def notify(self, kind: str, payload: str) -> None:
        """Wake every subscription to (kind, payload); a reconnect wakes all of them."""
        if kind == NOTIFY_RECONNECTED:
            for bucket in list(self._subscriptions.values()):
                for subscription in list(bucket):
                    subscription.fire()
            return
        subscribed = self._subscriptions.get((kind, payload))
        if subscribed is not None:
            for subscription in list(subscribed):
                subscription.fire()

    @property
    def count(self) -> int:
        """How many subscriptions are waiting (for metrics)."""
        return sum(len(bucket) for bucket in self._subscriptions.values())

    def count_of(self, kind: str) -> int:
        """How many subscriptions wait for notifications of ``kind`` (e.g. recv waiters)."""
        return sum(len(b) for (k, _), b in self._subscriptions.items() if k == kind)
