"""Small measuring helpers: percentiles, resident memory, bounded concurrency."""

from __future__ import annotations

import asyncio
import gc
import math
import statistics
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100), nearest-rank: a value that was actually observed."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: list[float], prefix: str) -> dict[str, float]:
    """``<prefix>_median_ms`` and ``<prefix>_p99_ms`` of durations given in seconds."""
    return {
        f"{prefix}_median_ms": median(seconds) * 1000,
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
    """``call`` on every item, at most ``window`` awaiting at once; results in order."""
    semaphore = asyncio.Semaphore(window)

    async def one(item: T) -> object:
        async with semaphore:
            return await call(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 10 ms; raise TimeoutError naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.01)
