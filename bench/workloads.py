"""The benchmark families, written once against the Driver protocol and run on each system."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.config import Sizes
from bench.driver import Driver, Parked
from bench.measure import bounded, latency_summary, settled_rss, wait_until

Metrics = dict[str, float]
MIB = 1024 * 1024


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
    """Sequential 3-step and 0-step workflows, interleaved, one at a time on an idle system."""
    for i in range(sizes.latency_warmup):
        await _run(driver, 3, i)
        await _run(driver, 0, i)
    three: list[float] = []
    zero: list[float] = []
    for i in range(sizes.latency_runs):
        three.append(await _run(driver, 3, i))
        zero.append(await _run(driver, 0, i))
    metrics = latency_summary(three, "seq3") | latency_summary(zero, "seq0")
    metrics["per_step_ms"] = (metrics["seq3_median_ms"] - metrics["seq0_median_ms"]) / 3
    return metrics


async def _concurrent(driver: Driver, count: int, *, via_queue: bool) -> float:
    """Start ``count`` 3-step workflows at once (directly or enqueued), await them all."""
    start = driver.enqueue if via_queue else driver.start

    async def one(x: int) -> Any:
        return await driver.result(await start(3, x))

    began = time.perf_counter()
    results = await asyncio.gather(*(one(x) for x in range(count)))
    elapsed = time.perf_counter() - began
    if list(results) != list(range(count)):
        raise AssertionError("a concurrent workflow returned the wrong value")
    return elapsed


async def throughput(driver: Driver, sizes: Sizes, *, via_queue: bool = False) -> Metrics:
    """Workflows/s and steps/s for N concurrent 3-step workflows in one process."""
    count = sizes.queue if via_queue else sizes.throughput
    await _concurrent(driver, min(100, count), via_queue=via_queue)  # warm-up
    elapsed = await _concurrent(driver, count, via_queue=via_queue)
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


async def _send_recv_round(driver: Driver, count: int) -> list[float]:
    """Park ``count`` workflows, then wake them one at a time: send() call -> recv() return."""
    handles = await _park(driver, count, count)
    await asyncio.sleep(0.2)  # let every recv() register its wait before the first send
    latencies: list[float] = []
    for handle in handles:
        sent = time.perf_counter()
        await driver.send(driver.workflow_id(handle), "ping")
        message, received = await driver.result(handle)
        if message != "ping":
            raise AssertionError(f"recv() returned {message!r}")
        latencies.append(received - sent)
    return latencies


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
    while len(recv_latencies) < sizes.messaging_runs:
        batch = min(sizes.messaging_batch, sizes.messaging_runs - len(recv_latencies))
        recv_latencies += await _send_recv_round(driver, batch)
    for x in range(10):  # warm-up
        await _start_get_event(driver, x)
    event_latencies = [await _start_get_event(driver, x) for x in range(sizes.messaging_runs)]
    return latency_summary(recv_latencies, "send_recv") | latency_summary(
        event_latencies, "start_get_event"
    )


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
        await _concurrent(driver, count, via_queue=False)
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
