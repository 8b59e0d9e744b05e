"""In-process fan-out of store notifications to the coroutines waiting on them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.store.base import NOTIFY_RECONNECTED


class Subscription:
    """Interest in some (kind, key) pairs; ``wait`` returns when one was notified (or on
    timeout)."""

    __slots__ = ("_future", "keys")

    def __init__(self, keys: tuple[tuple[str, str], ...]) -> None:
        self.keys = keys
        self._future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def fire(self) -> None:
        if not self._future.done():
            self._future.set_result(None)

    async def wait(self, timeout: float | None) -> bool:
        """Wait for the next notification; True if notified, False on timeout."""
        try:
            if timeout is None:
                await asyncio.shield(self._future)
            else:
                await asyncio.wait_for(asyncio.shield(self._future), max(timeout, 0))
            notified = True
        except TimeoutError:
            notified = False
        if self._future.done():
            self._future = asyncio.get_running_loop().create_future()
        return notified


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
