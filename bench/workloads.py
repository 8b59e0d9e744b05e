"""The workloads: their shape and sizes, the Driver they need, and the benchmark families.

The families are written once against the Driver protocol; drivers.py implements it for our
engine and for DBOS with workflows of the same shape:

- ``steps(n, x)``: n sequential steps, each a trivial async function returning its input;
- ``wait_message()``: counts itself as parked, then ``recv(TOPIC)``; returns
  ``[message, perf_counter()]`` read right after recv returned;
- ``publish(x)``: one step, then ``set_event(EVENT_KEY, x)``; returns x.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")
Metrics = dict[str, float]
MIB = 1024 * 1024

FAMILIES: tuple[str, ...] = ("latency", "throughput", "queue", "messaging", "commits", "parked")
TOPIC = "bench"
EVENT_KEY = "ready"
QUEUE_NAME = "bench"
RECV_TIMEOUT_SECONDS = 600.0
EVENT_TIMEOUT_SECONDS = 60.0
EXECUTOR_ID = "bench"
APP_VERSION = "bench"
# DBOS's default queue polling interval is 1 s; 0.1 s keeps its queue figures from being
# dominated by the poll period.
DBOS_QUEUE_POLLING_INTERVAL_SECONDS = 0.1


@dataclass(frozen=True)
class Sizes:
    """How many workflows each benchmark runs (the defaults are the full run)."""

    latency_warmup: int = 30
    latency_runs: int = 300  # each of the 5-, 3- and 0-step workflows, interleaved
    throughput: int = 5_000  # concurrent 3-step workflows
    queue: int = 5_000  # the same through a queue
    messaging_runs: int = 200  # send->recv, and start->get_event, each
    messaging_batch: int = 50  # recv workflows parked before a round of sends
    commits_sequential: int = 200  # idle: one at a time
    commits_concurrent: int = 1_000  # under load: started together
    inflight: int = 500  # throughput, queue, commits under load: workflows in flight (0: all)
    parked: int = 10_000  # workflows waiting in recv in one process
    window: int = 100  # in-flight start/send calls when parking and waking
    pg_reference_seconds: float = 2.0  # the single-connection INSERT commit loop

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sizes:
        return cls(**data)


class Parked:
    """How many wait_message workflows have reached their recv() in this process."""

    count = 0


class Driver(Protocol):
    """One workflow system, launched in this process, running the workloads above.

    Handles are opaque to the benchmarks: only ``workflow_id`` and ``result`` look inside.
    """

    name: str

    async def launch(self) -> None: ...

    async def shutdown(self) -> None: ...

    @property
    def queue_unavailable(self) -> str | None:
        """None when ``enqueue`` works, else why it does not (printed instead of a figure)."""
        ...

    async def start(self, n_steps: int, x: int) -> Any: ...

    async def enqueue(self, n_steps: int, x: int) -> Any: ...

    async def start_wait_message(self) -> Any: ...

    async def start_publish(self, x: int) -> Any: ...

    def workflow_id(self, handle: Any) -> str: ...

    async def result(self, handle: Any) -> Any: ...

    async def send(self, workflow_id: str, message: Any) -> None: ...

    async def get_event(self, workflow_id: str) -> Any: ...


@runtime_checkable
class ProbedDriver(Protocol):
    """A driver that can time its own checkpoint statement, outside its engine."""

    async def checkpoint_probe(self) -> Callable[[], Awaitable[float]]:
        """A callable running the step checkpoint statement once; the seconds it took."""
        ...


# -- measuring --------------------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100), nearest-rank: a value that was actually observed."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: list[float], prefix: str) -> Metrics:
    """``<prefix>_median_ms`` and ``<prefix>_p99_ms`` of durations given in seconds."""
    return {
        f"{prefix}_median_ms": statistics.median(seconds) * 1000,
        f"{prefix}_p99_ms": percentile(seconds, 99) * 1000,
    }


def rss_bytes() -> int:
    """This process's resident set size, from /proc/self/status (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


async def settled_rss(pause: float = 0.5) -> int:
    """RSS after letting pending callbacks run and collecting garbage."""
    await asyncio.sleep(pause)
    gc.collect()
    await asyncio.sleep(0)
    return rss_bytes()


async def bounded(
    window: int, items: Iterable[T], call: Callable[[T], Awaitable[object]]
) -> list[object]:
    """``call`` on every item, at most ``window`` awaiting at once; results in order.

    ``window`` tasks take the items in turn, as a service's ``window`` concurrent callers would:
    a task per item waiting on a semaphore cost this process 16 µs an item (100,000 tasks
    created at once, each woken in turn), which the benchmarks then counted as the engine's.
    """
    todo = list(items)
    results: list[object] = [None] * len(todo)
    indexes = iter(range(len(todo)))

    async def caller() -> None:
        for index in indexes:  # one shared iterator: each index taken by exactly one caller
            results[index] = await call(todo[index])

    await asyncio.gather(*(caller() for _ in range(max(1, min(window, len(todo))))))
    return results


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 10 ms; raise TimeoutError naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.01)


# -- the families -----------------------------------------------------------------------------
async def _run(driver: Driver, n_steps: int, x: int) -> float:
    """Start one workflow and wait for its result; the seconds it took."""
    began = time.perf_counter()
    handle = await driver.start(n_steps, x)
    result = await driver.result(handle)
    elapsed = time.perf_counter() - began
    if result != x:
        raise AssertionError(f"steps({n_steps}, {x}) returned {result!r}")
    return elapsed


async def latency(driver: Driver, sizes: Sizes) -> Metrics:
    """Sequential 5-, 3- and 0-step workflows, interleaved, one at a time on an idle system."""
    for i in range(sizes.latency_warmup):
        for n in (5, 3, 0):
            await _run(driver, n, i)
    # Ours also times its checkpoint statement alone (raw psycopg, same database, same moment):
    # the floor under the per-step overhead, so the report can say what is ours above it.
    probe = await driver.checkpoint_probe() if isinstance(driver, ProbedDriver) else None
    five: list[float] = []
    three: list[float] = []
    zero: list[float] = []
    statement: list[float] = []
    for i in range(sizes.latency_runs):
        five.append(await _run(driver, 5, i))
        three.append(await _run(driver, 3, i))
        zero.append(await _run(driver, 0, i))
        if probe is not None:  # three in a row, as a 3-step workflow's checkpoints come
            statement.extend([await probe(), await probe(), await probe()])
    metrics = (
        latency_summary(five, "seq5")
        | latency_summary(three, "seq3")
        | latency_summary(zero, "seq0")
    )
    metrics["per_step_ms"] = (metrics["seq3_median_ms"] - metrics["seq0_median_ms"]) / 3
    # A step followed by more durable calls: the last step of a workflow shares the final
    # status's commit (ours; docs/concepts.md), the ones before it do not.
    metrics["marginal_step_ms"] = (metrics["seq5_median_ms"] - metrics["seq3_median_ms"]) / 2
    if statement:
        metrics["checkpoint_statement_ms"] = statistics.median(statement) * 1000
        metrics["per_step_above_statement_ms"] = (
            metrics["marginal_step_ms"] - metrics["checkpoint_statement_ms"]
        )
    return metrics


async def _concurrent(driver: Driver, count: int, inflight: int, *, via_queue: bool) -> float:
    """Start ``count`` 3-step workflows (directly or enqueued) and await them all, at most
    ``inflight`` started and not yet finished at any moment (0: all at once)."""
    start = driver.enqueue if via_queue else driver.start

    async def one(x: int) -> object:
        return await driver.result(await start(3, x))

    began = time.perf_counter()
    results = await bounded(inflight if inflight > 0 else count, range(count), one)
    elapsed = time.perf_counter() - began
    if list(results) != list(range(count)):
        raise AssertionError("a concurrent workflow returned the wrong value")
    return elapsed


async def throughput(driver: Driver, sizes: Sizes, *, via_queue: bool = False) -> Metrics:
    """Workflows/s and steps/s for N 3-step workflows in one process, ``inflight`` at a time."""
    count = sizes.queue if via_queue else sizes.throughput
    await _concurrent(driver, min(100, count), sizes.inflight, via_queue=via_queue)  # warm-up
    elapsed = await _concurrent(driver, count, sizes.inflight, via_queue=via_queue)
    return {
        "workflows_per_s": count / elapsed,
        "steps_per_s": 3 * count / elapsed,
        "elapsed_s": elapsed,
        "workflows": float(count),
    }


async def queue(driver: Driver, sizes: Sizes) -> Metrics:
    return await throughput(driver, sizes, via_queue=True)


async def _park(driver: Driver, count: int, window: int) -> list[Any]:
    """Start ``count`` wait_message workflows and return once all have reached recv()."""
    target = Parked.count + count
    handles = await bounded(window, range(count), lambda _: driver.start_wait_message())
    await wait_until(
        lambda: Parked.count >= target, max(120.0, count / 20), f"{count} workflows to park"
    )
    return handles


async def _send_recv_round(driver: Driver, count: int) -> tuple[list[float], list[float]]:
    """Park ``count`` workflows, then wake them one at a time: send() call -> recv() return,
    and send() call -> send() return (ours returns once the recipient's write that records
    the message has committed, which since 8196ca6 comes after the recv returned)."""
    handles = await _park(driver, count, count)
    await asyncio.sleep(0.2)  # let every recv() register its wait before the first send
    latencies: list[float] = []
    returns: list[float] = []
    for handle in handles:
        sent = time.perf_counter()
        await driver.send(driver.workflow_id(handle), "ping")
        returns.append(time.perf_counter() - sent)
        message, received = await driver.result(handle)
        if message != "ping":
            raise AssertionError(f"recv() returned {message!r}")
        latencies.append(received - sent)
    return latencies, returns


async def _start_get_event(driver: Driver, x: int) -> float:
    """start() of a one-step workflow that then sets an event -> get_event() returning it."""
    began = time.perf_counter()
    handle = await driver.start_publish(x)
    value = await driver.get_event(driver.workflow_id(handle))
    elapsed = time.perf_counter() - began
    if value != x:
        raise AssertionError(f"get_event returned {value!r}, expected {x!r}")
    await driver.result(handle)
    return elapsed


async def messaging(driver: Driver, sizes: Sizes) -> Metrics:
    """send -> recv and start -> get_event latencies, one message in flight at a time."""
    await _send_recv_round(driver, min(10, sizes.messaging_batch))  # warm-up
    recv_latencies: list[float] = []
    send_returns: list[float] = []
    while len(recv_latencies) < sizes.messaging_runs:
        batch = min(sizes.messaging_batch, sizes.messaging_runs - len(recv_latencies))
        latencies, returns = await _send_recv_round(driver, batch)
        recv_latencies += latencies
        send_returns += returns
    for x in range(10):  # warm-up
        await _start_get_event(driver, x)
    event_latencies = [await _start_get_event(driver, x) for x in range(sizes.messaging_runs)]
    return (
        latency_summary(recv_latencies, "send_recv")
        | latency_summary(send_returns, "send_return")
        | latency_summary(event_latencies, "start_get_event")
    )


COMMITS_MODES: tuple[str, ...] = ("prime", "baseline", "idle", "load")


async def commits_cycle(driver: Driver, sizes: Sizes, mode: str) -> Metrics:
    """One launched lifetime for the commit counter read around it by the parent process.

    ``prime`` runs a few workflows (migrations, first-use work), ``baseline`` none, ``idle``
    N sequential workflows, ``load`` N concurrent ones.
    """
    began = time.perf_counter()
    if mode == "prime":
        for x in range(5):
            await _run(driver, 3, x)
        count = 0
    elif mode == "baseline":
        count = 0
    elif mode == "idle":
        count = sizes.commits_sequential
        for x in range(count):
            await _run(driver, 3, x)
    elif mode == "load":
        count = sizes.commits_concurrent
        await _concurrent(driver, count, sizes.inflight, via_queue=False)
    else:
        raise ValueError(f"unknown commits mode {mode!r}")
    return {"workflows": float(count), "elapsed_s": time.perf_counter() - began}


async def parked(driver: Driver, sizes: Sizes) -> Metrics:
    """Memory per workflow parked in recv(), and the time to wake them all.

    Run in a fresh process per system. A warm-up parks and wakes ``window`` workflows first,
    so pools, thread pools and caches are at size before the RSS baseline.
    """
    count, window = sizes.parked, sizes.window
    await _wake_all(driver, await _park(driver, min(window, count), window), window)
    await _run(driver, 3, 0)
    rss_before = await settled_rss()
    began = time.perf_counter()
    handles = await _park(driver, count, window)
    park_s = time.perf_counter() - began
    rss_parked = await settled_rss(1.0)
    wake_s = await _wake_all(driver, handles, window)
    return {
        "kib_per_workflow": (rss_parked - rss_before) / count / 1024,
        "rss_before_mib": rss_before / MIB,
        "rss_parked_mib": rss_parked / MIB,
        "park_s": park_s,
        "wake_s": wake_s,
        "wake_per_s": count / wake_s,
        "workflows": float(count),
    }


async def _wake_all(driver: Driver, handles: list[Any], window: int) -> float:
    """Send to every parked workflow (``window`` sends in flight) and await every result."""
    began = time.perf_counter()
    results = asyncio.gather(*(driver.result(handle) for handle in handles))
    ids = [driver.workflow_id(handle) for handle in handles]
    await bounded(window, ids, lambda workflow_id: driver.send(workflow_id, "wake"))
    woken = await results
    elapsed = time.perf_counter() - began
    if any(message != "wake" for message, _ in woken):
        raise AssertionError("a parked workflow received the wrong message")
    return elapsed


FAMILY_RUNNERS = {
    "latency": latency,
    "throughput": throughput,
    "queue": queue,
    "messaging": messaging,
    "parked": parked,
}
