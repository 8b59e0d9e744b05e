"""In-process fan-out of store notifications to the coroutines waiting on them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.clock import Clock
from orchestrator.store.base import NOTIFY_RECONNECTED


class Subscription:
    """Interest in some (kind, key) pairs. A notification wakes the wait under way, or, when
    none is, is remembered so that the next wait returns at once: none is lost between a
    wake-up and the re-read that follows it."""

    __slots__ = ("_pending", "_waiter", "keys")

    def __init__(self, keys: tuple[tuple[str, str], ...]) -> None:
        self.keys = keys
        self._waiter: asyncio.Future[bool] | None = None
        self._pending = False

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
        if self._pending:
            self._pending = False
            waiter.set_result(True)
            return waiter
        self._waiter = waiter
        if deadline_ms is not None and clock is not None:
            timer = clock.call_at(deadline_ms, lambda: _expire(waiter))
            waiter.add_done_callback(lambda _: timer.cancel())
        if poll_seconds is not None:
            poll = loop.call_later(max(poll_seconds, 0), _expire, waiter)
            waiter.add_done_callback(lambda _: poll.cancel())
        return waiter

    async def wait(
        self,
        deadline_ms: int | None = None,
        *,
        clock: Clock | None = None,
        poll_seconds: float | None = None,
    ) -> bool:
        """Wait for the next notification; True if notified, False at the deadline or poll."""
        return await self.next(deadline_ms, clock=clock, poll_seconds=poll_seconds)


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class Waiters:
    """Routes ``(kind, payload)`` notifications to subscriptions; no thread, no polling."""

    def __init__(self) -> None:
        self._subscriptions: dict[tuple[str, str], set[Subscription]] = {}

    @contextmanager
    def subscribe(self, *keys: tuple[str, str]) -> Iterator[Subscription]:
        """Subscribe to (kind, key) pairs before reading state, then wait: no notification
        falls in between."""
        subscription = Subscription(keys)
        for key in keys:
            self._subscriptions.setdefault(key, set()).add(subscription)
        try:
            yield subscription
        finally:
            for key in keys:
                bucket = self._subscriptions.get(key)
                if bucket is not None:
                    bucket.discard(subscription)
                    if not bucket:
                        del self._subscriptions[key]

    def notify(self, kind: str, payload: str) -> None:
        """Wake every subscription to (kind, payload); a reconnect wakes all of them."""
        if kind == NOTIFY_RECONNECTED:
            for bucket in list(self._subscriptions.values()):
                for subscription in list(bucket):
                    subscription.fire()
            return
        for subscription in list(self._subscriptions.get((kind, payload), ())):
            subscription.fire()

    @property
    def count(self) -> int:
        """How many subscriptions are waiting (for metrics)."""
        return sum(len(bucket) for bucket in self._subscriptions.values())

    def count_of(self, kind: str) -> int:
        """How many subscriptions wait for notifications of ``kind`` (e.g. recv waiters)."""
        return sum(len(b) for (k, _), b in self._subscriptions.items() if k == kind)
