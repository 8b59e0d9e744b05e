"""``database_pool_size``: a process opens no more PostgreSQL sessions than its pool allows
(plus its LISTEN connection), and a busy workload still completes inside that bound."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import pytest

from orchestrator import Orchestrator
from orchestrator.config import Settings
from orchestrator.types import WorkflowStatus

pytestmark = pytest.mark.postgres

APPLICATION = "pool-size-test"


async def _sessions(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APPLICATION,)
        )
        row = await cursor.fetchone()
        return int(row[0]) if row else 0


async def test_a_small_pool_bounds_the_sessions_and_the_work_completes(postgres_url: str) -> None:
    url = f"{postgres_url}?application_name={APPLICATION}"
    app = Orchestrator(
        "pool",
        url,
        executor_id="pool",
        app_version="t",
        settings=Settings(database_pool_size=3),
    )

    @app.step(name="echo")
    async def echo(x: int) -> int:
        return x

    @app.workflow(name="steps")
    async def steps(x: int) -> int:
        return await echo(x) + await echo(1)

    @app.workflow(name="waits")
    async def waits() -> object:
        return await app.recv(timeout=60)

    peak = 0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, await _sessions(postgres_url))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.02)

    async with app:
        sampler = asyncio.create_task(sample())
        waiting = [await app.start(waits) for _ in range(20)]
        handles = await asyncio.gather(*(app.start(steps, x) for x in range(200)))
        # Reads beside the writes: each holds a pooled connection while it runs.
        listings = await asyncio.gather(*(app.list_workflows(limit=50) for _ in range(100)))
        assert all(listings)
        for handle in waiting:
            await app.send(handle.workflow_id, "go")
        results = await asyncio.gather(*(handle.result(timeout=60) for handle in handles))
        woken = await asyncio.gather(*(handle.result(timeout=60) for handle in waiting))
        infos = await app.list_workflows(limit=500)
        stop.set()
        await sampler
    assert results == [x + 1 for x in range(200)]
    assert woken == ["go"] * 20
    assert {info.status for info in infos} == {WorkflowStatus.SUCCESS}
    assert 1 <= peak <= 3 + 1, f"{peak} sessions: the pool of 3 and the LISTEN connection at most"
