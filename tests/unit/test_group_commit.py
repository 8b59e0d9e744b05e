"""GroupCommit (store/batching.py): how concurrent writes are shared out between the writers,
and what each waiter learns. The flush here is the test's own: it records each batch and
holds it until the test lets it commit, so the batches can be seen as the writers take them.
(The statements themselves run against PostgreSQL in tests/store.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orchestrator.store.batching import SPLIT_MIN, GroupCommit, Write


class HeldFlush:
    """A flush that records each batch's size and keeps it open until ``commit()`` (the
    batches open now) or ``open()`` (those, and every later one at once)."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.written: list[list[Any]] = []
        self._gates: list[asyncio.Event] = []
        self._open = False

    async def __call__(self, kind: str, writes: list[Write]) -> list[Any]:
        gate = asyncio.Event()
        self.batches.append(len(writes))
        self.written.append([write.params for write in writes])
        self._gates.append(gate)
        if not self._open:
            await gate.wait()
        return [f"{kind}:{write.params}" for write in writes]

    def commit(self) -> None:
        for gate in self._gates:
            gate.set()

    def open(self) -> None:
        self._open = True
        self.commit()


async def answers(tasks: list[asyncio.Task[Any]]) -> list[Any]:
    return await asyncio.wait_for(asyncio.gather(*tasks), 10)


def by_number(write: Write) -> Any:
    """The split key of the writes here: kind "w" by their number; any other kind keeps
    its order (None)."""
    return write.params if write.kind == "w" else None


async def settle() -> None:
    """Let every task that can run, run (writers take batches, flushes start)."""
    for _ in range(10):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def running(flush: HeldFlush, **options: Any) -> AsyncIterator[GroupCommit]:
    """A started GroupCommit over ``flush``; at the end every flush is let through and the
    writers stop."""
    batcher = GroupCommit(flush, **options)
    batcher.start()
    try:
        yield batcher
    finally:
        flush.open()
        await batcher.stop()


async def submit(
    batcher: GroupCommit, first: int, count: int, kind: str = "w"
) -> list[asyncio.Task[Any]]:
    tasks = [asyncio.create_task(batcher.submit(kind, n)) for n in range(first, first + count)]
    await settle()
    return tasks


async def test_with_a_writer_idle_a_batch_is_shared_between_the_two() -> None:
    flush = HeldFlush()
    async with running(flush, split_key=by_number) as batcher:
        alone = await submit(batcher, 0, 1)  # idle: flushed from its caller, held open
        queued = await submit(batcher, 1, 100)  # both writers idle when these arrive
        assert flush.batches == [1, 50, 50]
        flush.open()
        results = await answers(alone + queued)
        assert results == [f"w:{n}" for n in range(101)]  # each its own answer, in order


async def test_with_the_other_writer_busy_a_writer_takes_all_that_waits() -> None:
    flush = HeldFlush()
    async with running(flush, split_key=by_number) as batcher:
        tasks = await submit(batcher, 0, 1)  # the caller's own flush, held open
        tasks += await submit(batcher, 1, 10)  # under SPLIT_MIN: one writer takes all ten
        assert flush.batches == [1, 10]
        tasks += await submit(batcher, 11, 100)  # the other writer is busy: no split
        assert flush.batches == [1, 10, 100]
        flush.open()
        await answers(tasks)


async def test_a_small_batch_is_not_split_and_a_large_one_stays_capped() -> None:
    flush = HeldFlush()
    async with running(flush, max_batch=64, split_key=by_number) as batcher:
        tasks = await submit(batcher, 0, 1)
        tasks += await submit(batcher, 1, SPLIT_MIN + 4)  # half would be under SPLIT_MIN
        assert flush.batches == [1, SPLIT_MIN, 4]
        flush.commit()
        await answers(tasks)
        flush.batches.clear()
        tasks = await submit(batcher, 100, 1)
        tasks += await submit(batcher, 101, 300)  # half is 150: capped at max_batch
        assert flush.batches == [1, 64, 64]
        flush.open()  # the rest are taken as the first two commit
        await answers(tasks)
        assert sum(flush.batches) == 301
        assert max(flush.batches) == 64


async def test_a_batch_holding_a_kind_of_write_that_keeps_its_order_is_not_split() -> None:
    flush = HeldFlush()
    async with running(flush, split_key=by_number) as batcher:
        tasks = await submit(batcher, 0, 1)
        arriving = [(n, "w") for n in range(1, 51)] + [(51, "send"), (52, "send")]
        arriving += [(n, "w") for n in range(53, 103)]
        tasks += [asyncio.create_task(batcher.submit(kind, n)) for n, kind in arriving]
        await settle()
        assert flush.batches == [1, 100]  # one writer took all: its kinds flush in turn
        flush.open()
        await answers(tasks)
        assert flush.batches == [1, 100, 2]


async def test_a_split_keeps_each_key_s_writes_in_one_flush_in_order() -> None:
    flush = HeldFlush()
    async with running(flush, split_key=lambda write: write.params[0]) as batcher:
        tasks = [asyncio.create_task(batcher.submit("w", ("alone", 0)))]
        await settle()
        arriving = [(f"k{n}", n) for n in range(40)] + [(f"k{n}", 40 + n) for n in range(20)]
        tasks += [asyncio.create_task(batcher.submit("w", params)) for params in arriving]
        await settle()
        first, second = flush.written[1], flush.written[2]
        assert len(first) == 30 + 20  # half, and the later writes of the keys it took
        assert second == [(f"k{n}", n) for n in range(30, 40)]
        assert {key for key, _ in first}.isdisjoint(key for key, _ in second)
        for batch in (first, second):
            assert [n for _, n in batch] == sorted(n for _, n in batch)
        flush.open()
        await answers(tasks)


async def test_a_failed_flush_fails_each_of_its_writes_and_only_those() -> None:
    async def failing(kind: str, writes: list[Write]) -> list[Any]:
        if any(write.params == "bad" for write in writes):
            raise ConnectionError("the database went away")
        return [None if write.params != "refused" else ValueError("refused") for write in writes]

    batcher = GroupCommit(failing)
    batcher.start()
    try:
        with pytest.raises(ConnectionError, match="went away"):
            await batcher.submit("w", "bad")
        assert await batcher.submit("w", "fine") is None
        with pytest.raises(ValueError, match="refused"):
            await batcher.submit("w", "refused")  # a write's own failure, as its result
    finally:
        await batcher.stop()
