"""A worker that takes over a dead worker's queued workflows keeps its own queue limits: with
``worker_concurrency=2`` it never runs more than two of that queue's workflows at once."""

from __future__ import annotations

import signal
from collections import defaultdict

import pytest

from orchestrator import Orchestrator
from tests.workers import QUEUES, Fleet, Journal, max_overlap, until, wait_alive

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


async def test_takeover_respects_worker_concurrency(
    client: Orchestrator, fleet: Fleet, journal: Journal
) -> None:
    limit = QUEUES["limits"]["worker_concurrency"]
    fleet.start("w1")
    fleet.start("w2")
    await wait_alive(client, fleet, "w1", "w2")
    # Each workflow is one 4 s step: longer than the victim's lease, so the taken-over ones
    # would overlap the taker's own if it ignored its limit.
    handles = [await client.start("slow", "takeover", 4000, queue="limits") for _ in range(4)]

    async def both_full() -> bool:
        owners = sorted([(await h.status()).executor_id or "" for h in handles])
        return owners == ["w1", "w1", "w2", "w2"]

    await until(both_full, 20, "two workflows on each worker", fleet)
    fleet.signal("w2", signal.SIGKILL)
    for handle in handles:
        await handle.result(timeout=60)

    by_executor: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for span in journal.spans("takeover"):
        by_executor[span.executor].append((span.started, span.ended))
    assert len(by_executor["w1"]) == 4  # its own two, then the two taken over
    assert max_overlap(by_executor["w1"]) <= limit, by_executor
