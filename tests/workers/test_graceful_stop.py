"""`saga worker` on SIGTERM (what Docker and Kubernetes send): it stops taking work, lets the
step in flight finish and be checkpointed, releases its lease, and exits 0; another worker
takes the rest over at once, and no step runs twice."""

from __future__ import annotations

import time

import pytest

from orchestrator import Orchestrator, WorkflowStatus
from tests.workers import LEASE_SECONDS, Fleet, Journal, until, wait_alive

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


async def test_sigterm_finishes_the_step_in_flight_and_hands_the_rest_over(
    client: Orchestrator, fleet: Fleet, journal: Journal
) -> None:
    fleet.start("wa")
    await wait_alive(client, fleet, "wa")
    # Each step applies its effect first, then works for 1.5 s.
    handle = await client.start("long_run", 4, 1500, workflow_id="g", queue="takeover")

    async def wa_began_step_1() -> bool:
        return len(journal.spans("paced")) >= 1

    await until(wa_began_step_1, 30, "wa began step 1", fleet)
    stopped = time.monotonic()
    assert fleet.stop("wa") == 0, fleet.logs()  # SIGTERM: exit code 0
    took = time.monotonic() - stopped
    assert 0.5 < took < 12, took  # it waited for the step (1.5 s), within the grace period
    steps = await client.list_steps("g")
    assert [(s.step_number, s.status) for s in steps] == [(1, "SUCCESS")]  # checkpointed
    assert (await handle.status()).status is WorkflowStatus.PENDING
    workers = {w.executor_id: w for w in await client.list_workers()}
    assert not workers["wa"].alive  # the lease was released: no need to wait for expiry

    fleet.start("wb")
    assert await handle.result(timeout=60) == 4
    # Not a lease's wait first: wb began its first step within a lease of registering (its
    # start-up, slow on a loaded machine, is not counted).
    registered = {w.executor_id: w for w in await client.list_workers()}["wb"].started_at
    first = min(span.started for span in journal.spans("paced") if span.executor == "wb")
    assert first - registered.timestamp() < LEASE_SECONDS, first - registered.timestamp()
    snapshot = journal.ledger.snapshot()
    assert snapshot.attempts["g:1"] == 1  # step 1 was not run again
    snapshot.check_balanced({f"g:{n}" for n in range(1, 5)}, crashes=0)
