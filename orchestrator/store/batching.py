"""Group commit: checkpoints of concurrent workflows share one statement and one commit.

Callers ``submit`` a write and wait. A few writer tasks each take what is waiting at that moment
(up to ``max_batch`` writes), hand it to ``flush`` (one multi-row statement per kind of write, a
batch of one using the plain single-row statement), and release each waiter only after that
statement committed: durability is unchanged, a waiter never resumes before its write is safe.
Alone, a write costs one round trip; under load many writes share one. Batches are capped so
the writers keep alternating with the database instead of falling into lockstep.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("orchestrator.store.batching")

MAX_BATCH = 256  # writes in one flush; larger batches fall into lockstep with the database
WRITERS = 2  # concurrent flushes: one runs in the database while the next is gathered


@dataclass(slots=True)
class Write:
    """One pending write: its kind (which statement), its parameters, and its waiter."""

    kind: str
    params: Any
    future: asyncio.Future[Any] = field(repr=False)


Flush = Callable[[str, list[Write]], Awaitable[list[Any]]]


class GroupCommit:
    """Gathers concurrent writes into batches; ``flush(kind, writes)`` returns one result per
    write, in order, after its commit (or raises, failing every write of that flush)."""

    def __init__(self, flush: Flush, *, writers: int = WRITERS, max_batch: int = MAX_BATCH) -> None:
        self._flush = flush
        self._writers = writers
        self._max_batch = max_batch
        self._pending: deque[Write] = deque()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._busy = 0  # flushes in progress (writers and inline)
        self.flushes = 0  # counters for tests and metrics
        self.writes = 0

    def start(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._writer()) for _ in range(self._writers)]

    async def stop(self) -> None:
        """Flush what is pending, then stop the writers."""
        for _ in range(1000):  # the writers drain the queue; give them up to ~1 s
            if not self._pending:
                break
            await asyncio.sleep(0.001)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def submit(self, kind: str, params: Any) -> Any:
        """Queue a write and wait until it is committed; return its result."""
        if not self._tasks:
            raise RuntimeError("GroupCommit.submit before start()")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        write = Write(kind, params, future)
        if not self._pending and self._busy == 0:
            # Idle: flush this write from the caller's task, saving the hand-off to a writer
            # (two event-loop turns). Writes arriving meanwhile queue up for the writers.
            self._busy += 1
            try:
                await self._flush_kind(kind, [write])
            finally:
                self._busy -= 1
            return await future
        self._pending.append(write)
        self._wakeup.set()
        return await future

    def _take(self) -> list[Write]:
        batch: list[Write] = []
        while self._pending and len(batch) < self._max_batch:
            write = self._pending.popleft()
            if not write.future.cancelled():
                batch.append(write)
        if not self._pending:
            self._wakeup.clear()
        return batch

    async def _writer(self) -> None:
        while True:
            await self._wakeup.wait()
            batch = self._take()
            if not batch:
                continue
            by_kind: dict[str, list[Write]] = {}
            for write in batch:
                by_kind.setdefault(write.kind, []).append(write)
            self._busy += 1
            try:
                for kind, writes in by_kind.items():
                    await self._flush_kind(kind, writes)
            finally:
                self._busy -= 1

    async def _flush_kind(self, kind: str, writes: list[Write]) -> None:
        try:
            results = await self._flush(kind, writes)
        except asyncio.CancelledError:
            for write in writes:
                if not write.future.done():
                    write.future.cancel()
            raise
        except BaseException as error:  # every waiter of this flush learns it failed
            for write in writes:
                if not write.future.done():
                    write.future.set_exception(error)
            return
        self.flushes += 1
        self.writes += len(writes)
        for write, result in zip(writes, results, strict=True):
            if write.future.done():
                continue
            if isinstance(result, BaseException):  # this write's own failure
                write.future.set_exception(result)
            else:
                write.future.set_result(result)
