"""Three worker processes drain one queue: its global and per-worker concurrency limits hold at
every instant (sampled from queue_stats and measured from the steps' recorded intervals), and
every workflow runs exactly once."""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict

import pytest

from orchestrator import Orchestrator, WorkflowStatus
from tests.workers import Fleet, Journal, max_overlap, wait_alive

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

COUNT = int(os.environ.get("WORKERS_LIMITS_COUNT", "2000"))
CONCURRENCY, WORKER_CONCURRENCY = 5, 2  # QUEUES["limits"]
WORKERS = ("w1", "w2", "w3")


async def test_queue_limits_with_three_workers(
    client: Orchestrator, fleet: Fleet, journal: Journal
) -> None:
    for executor_id in WORKERS:
        fleet.start(executor_id)
    await wait_alive(client, fleet, *WORKERS)

    samples: list[int] = []
    enqueued = asyncio.Event()

    async def sample() -> None:
        while True:
            stats = await client.queue_stats("limits")
            samples.append(stats[0].running if stats else 0)
            if enqueued.is_set() and (not stats or stats[0].depth + stats[0].running == 0):
                return
            await asyncio.sleep(0.05)

    began = time.monotonic()
    sampler = asyncio.create_task(sample())
    ids: list[str] = []
    for first in range(0, COUNT, 50):
        handles = await asyncio.gather(
            *(
                client.start("short", n, workflow_id=f"short-{n:05}", queue="limits")
                for n in range(first, min(first + 50, COUNT))
            )
        )
        ids += [h.workflow_id for h in handles]
    enqueued.set()
    await asyncio.wait_for(sampler, timeout=300)
    elapsed = time.monotonic() - began
    print(f"{COUNT} workflows drained by {len(WORKERS)} workers in {elapsed:.1f} s")

    finished = await client.list_workflows(queue="limits", limit=10_000)
    taken_over = [info.workflow_id for info in finished if info.recovery_attempts]
    assert not taken_over, "live workers were declared dead (lease too short for this load?)"
    assert max(samples) <= CONCURRENCY, samples
    spans = journal.spans("limits")
    overall = max_overlap([(s.started, s.ended) for s in spans])
    assert overall <= CONCURRENCY
    by_executor: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for span in spans:
        by_executor[span.executor].append((span.started, span.ended))
    overlaps = {executor: max_overlap(v) for executor, v in by_executor.items()}
    assert all(most <= WORKER_CONCURRENCY for most in overlaps.values()), overlaps
    # The limits were reached, so they were what held the workers back (sampled, or seen in
    # the steps' intervals: on a loaded machine the 50 ms samples can miss the busiest moment).
    assert set(by_executor) == set(WORKERS), {e: len(v) for e, v in by_executor.items()}
    assert max(overlaps.values()) == WORKER_CONCURRENCY, overlaps
    assert max(*samples, overall) >= CONCURRENCY - 1, (max(samples), overall)

    assert len(finished) == COUNT
    assert {info.status for info in finished} == {WorkflowStatus.SUCCESS}
    snapshot = journal.ledger.snapshot()
    snapshot.check_balanced({f"{workflow_id}:1" for workflow_id in ids}, crashes=0)
