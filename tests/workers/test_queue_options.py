"""Queue options with real worker processes: rate limits across workers, priority order,
deduplication ids, partitions, delays, and a poison workflow that no worker can run."""

from __future__ import annotations

import asyncio
import os
import random
from collections import defaultdict

import pytest

from orchestrator import DuplicateWorkflowError, Orchestrator, WorkflowStatus
from tests.workers import POISON, Fleet, Journal, max_overlap, until, wait_alive

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SEED = int(os.environ.get("WORKERS_SEED", random.randrange(1 << 30)))


async def wait_status(
    client: Orchestrator, workflow_id: str, status: WorkflowStatus, fleet: Fleet
) -> None:
    async def reached() -> bool:
        return (await client.retrieve(workflow_id).status()).status is status

    await until(reached, 30, f"{workflow_id} {status}", fleet)


async def test_rate_limit_holds_across_two_workers(client: Orchestrator, fleet: Fleet) -> None:
    for executor_id in ("w1", "w2"):
        fleet.start(executor_id)
    await wait_alive(client, fleet, "w1", "w2")
    handles = [await client.start("quick", "rated", queue="rated") for _ in range(25)]
    for handle in handles:
        await handle.result(timeout=30)

    infos = [await handle.status() for handle in handles]
    starts = sorted(info.started_at.timestamp() for info in infos if info.started_at)
    assert len(starts) == 25
    # Starts (database clock, ms) in any window [t, t + 1 s): at most 10.
    per_window = [sum(1 for s in starts if t <= s < t + 1.0) for t in starts]
    assert max(per_window) <= 10, per_window
    assert max(per_window) == 10, per_window  # the limit, not something slower, paced them
    assert starts[-1] - starts[0] >= 2.0, starts
    assert {info.executor_id for info in infos} == {"w1", "w2"}


async def test_priority_order_and_dedup(
    client: Orchestrator, fleet: Fleet, journal: Journal
) -> None:
    print(f"seed {SEED} (WORKERS_SEED={SEED} reproduces)")
    rng = random.Random(SEED)

    # Dedup while the first is ENQUEUED (no worker yet) ...
    first = await client.start("held", "one", queue="dedup", dedup_id="d1")
    with pytest.raises(DuplicateWorkflowError):
        await client.start("held", "two", queue="dedup", dedup_id="d1")
    returned = await client.start(
        "held", "two", queue="dedup", dedup_id="d1", if_duplicate="return"
    )
    assert returned.workflow_id == first.workflow_id

    fleet.start("w1")
    await wait_alive(client, fleet, "w1")
    # ... and while it is PENDING on the worker.
    await wait_status(client, first.workflow_id, WorkflowStatus.PENDING, fleet)
    with pytest.raises(DuplicateWorkflowError):
        await client.start("held", "two", queue="dedup", dedup_id="d1")
    returned = await client.start(
        "held", "two", queue="dedup", dedup_id="d1", if_duplicate="return"
    )
    assert returned.workflow_id == first.workflow_id

    # Priorities: the blocker holds the only slot while 20 wait with random priorities.
    blocker = await client.start("blocker", queue="prio")
    await wait_status(client, blocker.workflow_id, WorkflowStatus.PENDING, fleet)
    waiting = []
    for index in range(20):
        priority = rng.randrange(4)
        handle = await client.start("quick", "prio", queue="prio", priority=priority)
        waiting.append((priority, index, handle.workflow_id))
    assert len(await client.list_queued("prio")) == 20
    await client.send(blocker.workflow_id, "go", topic="go")
    await client.send(first.workflow_id, "go", topic="go")
    for _, _, workflow_id in waiting:
        await client.retrieve(workflow_id).result(timeout=30)

    ran = [span.workflow_id for span in journal.spans("prio")]
    assert ran[0] == blocker.workflow_id
    expected = [workflow_id for _, _, workflow_id in sorted(waiting)]
    assert ran[1:] == expected, {
        "ran (priority, enqueue index)": [
            next((p, i) for p, i, w in waiting if w == workflow_id) for workflow_id in ran[1:]
        ]
    }

    # Once the first has finished, its dedup id is free again.
    assert await first.result(timeout=30) == "one"
    again = await client.start("held", "three", queue="dedup", dedup_id="d1")
    assert again.workflow_id != first.workflow_id
    await client.send(again.workflow_id, "go", topic="go")
    assert await again.result(timeout=30) == "three"


async def test_partitions_run_in_parallel_and_delay_holds(
    client: Orchestrator, fleet: Fleet, journal: Journal
) -> None:
    for executor_id in ("w1", "w2"):
        fleet.start(executor_id)
    await wait_alive(client, fleet, "w1", "w2")

    delayed = await client.start("quick", "delayed", queue="delayed", delay=1.0)
    handles = []
    for _ in range(5):
        for partition in ("a", "b"):
            handles.append(
                await client.start(
                    "slow", f"part-{partition}", 200, queue="parts", partition_key=partition
                )
            )
    for handle in handles:
        await handle.result(timeout=30)

    spans = [span for span in journal.spans() if span.label.startswith("part-")]
    by_partition: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for span in spans:
        by_partition[span.label].append((span.started, span.ended))
    assert {label: len(v) for label, v in by_partition.items()} == {"part-a": 5, "part-b": 5}
    assert max_overlap(by_partition["part-a"]) == 1
    assert max_overlap(by_partition["part-b"]) == 1
    assert max_overlap([(s.started, s.ended) for s in spans]) == 2  # the partitions overlapped

    await delayed.result(timeout=30)
    info = await delayed.status()
    assert info.started_at is not None
    waited = (info.started_at - info.created_at).total_seconds()
    assert 1.0 <= waited < 2.5, waited
    (span,) = journal.spans("delayed")
    assert span.started - info.created_at.timestamp() >= 1.0


async def test_poison_workflow_does_not_block_the_queue(client: Orchestrator, fleet: Fleet) -> None:
    poison = await client.start(POISON, queue="poison")
    handles = [await client.start("quick", "poison-q", queue="poison") for _ in range(10)]
    fleet.start("w1")
    await wait_alive(client, fleet, "w1")
    results = await asyncio.gather(*(h.result(timeout=30) for h in handles))
    assert len(results) == 10

    info = await poison.status()
    assert info.status is WorkflowStatus.ERROR
    assert info.error is not None and POISON in info.error, info.error
    statuses = {(await h.status()).status for h in handles}
    assert statuses == {WorkflowStatus.SUCCESS}
