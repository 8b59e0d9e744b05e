"""Group commit: checkpoints of concurrent workflows share one statement and one commit.

Callers ``submit`` a write and wait. A few writer tasks each take what is waiting at that moment
(up to ``max_batch`` writes), hand it to ``flush`` (one multi-row statement per kind of write, a
batch of one using the plain single-row statement), and release each waiter only after that
statement committed: durability is unchanged, a waiter never resumes before its write is safe.
Alone, a write costs one round trip; under load many writes share one. Batches are capped so
the writers keep alternating with the database instead of falling into lockstep.

A writer that finds another writer idle takes only half of what waits (at least
``SPLIT_MIN``), and the idle one takes the rest. When every caller waits on its own write (a
wake storm: a hundred sends, each answered once the woken workflow's last write committed),
one writer taking all of them would leave this process nothing to do until that one batch
commits, then the database nothing until the next one is gathered: the two would take turns.
Split, the first half's answers come back while the database still works on the second, and
both stay busy. Under heavy load the other writer is rarely idle and batches stay large.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("orchestrator.store.batching")

MAX_BATCH = 256  # writes in one flush; larger batches fall into lockstep with the database
WRITERS = 2  # concurrent flushes: one runs in the database while the next is gathered
SPLIT_MIN = 16  # a batch shared with an idle writer keeps at least this many writes


@dataclass(slots=True)
class Write:
    """One pending write: its kind (which statement), its parameters, and its waiter."""

    kind: str
    params: Any
    future: asyncio.Future[Any] = field(repr=False)


Flush = Callable[[str, list[Write]], Awaitable[list[Any]]]
SplitKey = Callable[[Write], Hashable | None]


class GroupCommit:
    """Gathers concurrent writes into batches; ``flush(kind, writes)`` returns one result per
    write, in order, after its commit (or raises, failing every write of that flush).

    ``split_key`` tells which writes may be shared out between two flushes at once: it
    gives a write's key (the workflow it writes), or None for a write whose order between
    callers matters (a mailbox's sends, first sent first received; starts of one id, the
    first one wins). While such a write waits, what arrived together stays in one flush, in
    order; and a split keeps every write of one key in the same flush, in order."""

    def __init__(
        self,
        flush: Flush,
        *,
        writers: int = WRITERS,
        max_batch: int = MAX_BATCH,
        split_key: SplitKey | None = None,
    ) -> None:
        self._flush = flush
        self._writers = writers
        self._max_batch = max_batch
        self._split_key = split_key
        self._pending: deque[Write] = deque()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._busy = 0  # flushes in progress (writers and inline)
        self._flushing = 0  # writers flushing now
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
        """The next batch for a writer: what waits, up to ``max_batch``, or, while another
        writer is idle to take the rest, only about half of it (``_split``)."""
        if self._flushing < self._writers - 1 and len(self._pending) > SPLIT_MIN:
            keys = self._split_keys()
            if keys is not None:
                return self._split(keys)
        batch: list[Write] = []
        while self._pending and len(batch) < self._max_batch:
            write = self._pending.popleft()
            if not write.future.cancelled():
                batch.append(write)
        if not self._pending:
            self._wakeup.clear()
        return batch

    def _split_keys(self) -> list[Hashable] | None:
        """Each waiting write's split key, or None if one of them may not be split."""
        if self._split_key is None:
            return None
        keys = []
        for write in self._pending:
            key = self._split_key(write)
            if key is None:
                return None
            keys.append(key)
        return keys

    def _split(self, keys: list[Hashable]) -> list[Write]:
        """The first half of what waits (at least ``SPLIT_MIN``, at most ``max_batch``), with
        every later write of a key it holds (beyond ``max_batch`` if need be: a split never
        puts one key's waiting writes in two flushes); the rest waits for the idle writer."""
        limit = min(self._max_batch, max(SPLIT_MIN, (len(keys) + 1) // 2))
        taken: set[Hashable] = set(keys[:limit])
        batch: list[Write] = []
        rest: deque[Write] = deque()
        for write, key in zip(self._pending, keys, strict=True):
            if write.future.cancelled():
                continue
            if key in taken:
                batch.append(write)
            else:
                rest.append(write)
        self._pending = rest
        if not rest:
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
            self._flushing += 1
            try:
                for kind, writes in by_kind.items():
                    await self._flush_kind(kind, writes)
            finally:
                self._busy -= 1
                self._flushing -= 1

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
