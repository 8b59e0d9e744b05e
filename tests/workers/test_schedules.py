"""An every-second schedule ticked by three worker processes: one workflow per tick, named
``<schedule>@<UTC time>``, each tick's effect applied once, no tick skipped."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections import Counter

import pytest

from orchestrator import Orchestrator, WorkflowStatus
from tests.workers import SCHEDULED, Fleet, Journal, until, wait_alive

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WORKERS = ("w1", "w2", "w3")
TICK_ID = re.compile(rf"^{SCHEDULED}@(\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$")


async def test_schedule_runs_once_per_tick_across_three_workers(
    client: Orchestrator, fleet: Fleet, journal: Journal
) -> None:
    for executor_id in WORKERS:
        fleet.start(executor_id, schedule=True)
    await wait_alive(client, fleet, *WORKERS)

    async def ticked() -> bool:
        return len(await client.list_workflows(name=SCHEDULED, limit=1000)) >= 8

    await until(ticked, 20, "eight ticks started", fleet)
    started = await client.list_workflows(name=SCHEDULED, limit=1000)

    async def all_finished() -> bool:
        infos = [await client.retrieve(info.workflow_id).status() for info in started]
        return all(info.status is WorkflowStatus.SUCCESS for info in infos)

    await until(all_finished, 10, "the ticks started so far finished", fleet)

    ticks: list[dt.datetime] = []
    for info in started:
        match = TICK_ID.match(info.workflow_id)
        assert match, info.workflow_id
        tick = dt.datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        assert dt.datetime.fromisoformat(info.input["args"][0]) == tick, info.input
        ticks.append(tick)
    ticks.sort()
    assert len(ticks) >= 8, ticks
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(ticks)]
    assert set(gaps) == {1.0}, gaps  # one workflow per tick, none skipped

    snapshot = journal.ledger.snapshot()
    recorded = {
        dt.datetime.fromisoformat(key.removeprefix("tick:")): count
        for key, count in snapshot.attempts.items()
    }
    assert set(ticks) <= set(recorded), sorted(set(ticks) - set(recorded))
    assert all(count == 1 for count in recorded.values()), recorded  # no tick ran twice
    in_ledger = sorted(tick for tick in recorded if tick <= ticks[-1])  # later ones may run
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(in_ledger)} == {1.0}
    print("ticks per worker:", Counter(info.executor_id for info in started))
