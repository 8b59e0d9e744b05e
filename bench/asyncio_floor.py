"""What the wake storm's shape costs asyncio alone, with no engine and no database (#21 item 5):

    python -m bench.asyncio_floor [--workflows 100000] [--window 100] [--rounds 3]

``python -m bench --only parked`` parks ``--workflows`` workflows in ``recv``, then ``--window``
callers send to them one after another while every result is awaited. This runs the same
shape with nothing but tasks and futures: a task per workflow parked on a future; callers that
hand it a message and wait for the acknowledgement; the workflow's task queuing a write and
waiting for it; two writer tasks that take what is queued and "commit" it in one event-loop
turn; the workflow's task then acknowledging the send and returning the message. The park is
the same: callers each queue a write (the new workflow's row), wait for it, and start the
workflow's task, which runs up to its future.

The figures are a floor under any engine of this design on this interpreter and machine: no
statement is built, no value encoded, no row read. Two ways of awaiting the results are
timed, because they differ by more than the engine's own costs: a task per result (as
``asyncio.gather`` over coroutines makes, and as the benchmark does with ``handle.result()``),
and the workflows' own tasks gathered directly (no waiter). The cyclic garbage collector runs
as it does in the engine's process; ``--no-gc`` shows its share.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

Ack = asyncio.Future[None]


class Skeleton:
    """The park and the wake of ``count`` workflows, as futures and tasks only."""

    def __init__(self, count: int, window: int) -> None:
        self.count = count
        self.window = window
        self.parked: dict[int, asyncio.Future[tuple[str, Ack]]] = {}
        self.queue: deque[asyncio.Future[None]] = deque()
        self.wakeup = asyncio.Event()
        self.tasks: list[asyncio.Task[str]] = []

    def write(self) -> asyncio.Future[None]:
        """Queue a write; the future resolves once a writer has "committed" it."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.append(done)
        self.wakeup.set()
        return done

    async def writer(self) -> None:
        while True:
            await self.wakeup.wait()
            batch = [self.queue.popleft() for _ in range(min(256, len(self.queue)))]
            if not self.queue:
                self.wakeup.clear()
            await asyncio.sleep(0)  # the statement's round trip, at no cost
            for done in batch:
                done.set_result(None)

    async def workflow(self, index: int) -> str:
        inbox: asyncio.Future[tuple[str, Ack]] = asyncio.get_running_loop().create_future()
        self.parked[index] = inbox
        message, ack = await inbox
        await self.write()  # the recv's step and the final status
        ack.set_result(None)
        return message

    async def callers(self, call: Callable[[int], Awaitable[None]]) -> None:
        indexes = iter(range(self.count))

        async def caller() -> None:
            for index in indexes:
                await call(index)

        await asyncio.gather(*(caller() for _ in range(self.window)))

    async def start(self, index: int) -> None:
        await self.write()  # the workflow's row
        self.tasks.append(asyncio.get_running_loop().create_task(self.workflow(index)))

    async def send(self, index: int) -> None:
        ack: Ack = asyncio.get_running_loop().create_future()
        self.parked.pop(index).set_result(("wake", ack))
        await ack


async def waiter(task: asyncio.Task[str]) -> str:
    """A result waiter of its own, as ``handle.result()`` is when gathered."""
    return await task


async def one_round(count: int, window: int, *, waiters: bool) -> dict[str, float]:
    skeleton = Skeleton(count, window)
    writers = [asyncio.get_running_loop().create_task(skeleton.writer()) for _ in range(2)]
    figures: dict[str, float] = {}
    began, cpu = time.perf_counter(), time.process_time()
    await skeleton.callers(skeleton.start)
    while len(skeleton.parked) < count:
        await asyncio.sleep(0)
    figures["park_s"] = time.perf_counter() - began
    figures["park_cpu_us"] = (time.process_time() - cpu) / count * 1e6
    began, cpu = time.perf_counter(), time.process_time()
    if waiters:
        results: Any = asyncio.gather(*(waiter(task) for task in skeleton.tasks))
    else:
        results = asyncio.gather(*skeleton.tasks)
    await skeleton.callers(skeleton.send)
    woken = await results
    figures["wake_s"] = time.perf_counter() - began
    figures["wake_cpu_us"] = (time.process_time() - cpu) / count * 1e6
    for task in writers:
        task.cancel()
    await asyncio.gather(*writers, return_exceptions=True)
    if woken != ["wake"] * count:
        raise AssertionError("a workflow of the skeleton received the wrong message")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflows", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-gc", action="store_true", help="disable the cyclic collector")
    options = parser.parse_args()
    if options.no_gc:
        gc.disable()
    print(
        f"{options.workflows:,} workflows, {options.window} callers; "
        f"garbage collector {'off' if options.no_gc else 'on'}"
    )
    print(
        f"{'results awaited':<24}  {'park s':>7}  {'CPU us/wf':>9}  {'wake s':>7}  {'CPU us/wf':>9}"
    )
    for _ in range(options.rounds):
        for waiters, label in ((True, "a task per result"), (False, "the workflows' tasks")):
            figures = asyncio.run(one_round(options.workflows, options.window, waiters=waiters))
            print(
                f"{label:<24}  {figures['park_s']:>7.2f}  {figures['park_cpu_us']:>9.1f}  "
                f"{figures['wake_s']:>7.2f}  {figures['wake_cpu_us']:>9.1f}"
            )


if __name__ == "__main__":
    main()
