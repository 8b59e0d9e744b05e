"""Queues and schedules in one process, on both stores (many workers: tests/workers)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools

import pytest

from orchestrator import (
    ConfigurationError,
    DuplicateWorkflowError,
    InvalidArgumentError,
    NotRegisteredError,
    WorkflowStatus,
)
from tests.conftest import AppFactory


async def test_concurrency_and_worker_concurrency_are_never_exceeded(make_app: AppFactory) -> None:
    app = make_app()
    app.queue("limited", concurrency=3)
    app.queue("per_worker", worker_concurrency=2)
    running = {"limited": 0, "per_worker": 0}
    peak = {"limited": 0, "per_worker": 0}

    @app.step()
    async def work(queue: str) -> None:
        running[queue] += 1
        peak[queue] = max(peak[queue], running[queue])
        await asyncio.sleep(0.02)
        running[queue] -= 1

    @app.workflow(name="queued")
    async def queued(queue: str) -> str:
        await work(queue)
        return queue

    async with app:
        handles = [await app.start(queued, q, queue=q) for q in ("limited", "per_worker") * 12]
        assert (await handles[0].status()).queue_name == "limited"
        results = await asyncio.gather(*(h.result(timeout=30) for h in handles))
        assert sorted(results) == sorted(["limited", "per_worker"] * 12)
        assert 2 <= peak["limited"] <= 3 and 1 <= peak["per_worker"] <= 2  # never exceeded
        stats = {s.queue_name: s for s in await app.queue_stats()}
        assert stats["limited"].depth == 0 and stats["limited"].running == 0
        assert stats["limited"].started_last_minute == 12


async def test_rate_limit_spreads_starts_over_windows(make_app: AppFactory) -> None:
    app = make_app()
    app.queue("rated", rate_limit=(4, 0.5))

    @app.workflow(name="rated_wf")
    async def rated_wf() -> None:
        return None

    async with app:
        handles = [await app.start(rated_wf, queue="rated") for _ in range(10)]
        await asyncio.gather(*(h.result(timeout=30) for h in handles))
        infos = [await h.status() for h in handles]
    starts = sorted(info.started_at.timestamp() for info in infos if info.started_at)
    assert len(starts) == 10
    for index, start in enumerate(starts):  # any 0.5 s window holds at most 4 starts
        assert sum(1 for other in starts[index:] if other - start < 0.5) <= 4
    assert starts[-1] - starts[0] >= 1.0  # 10 starts at 4 per 0.5 s need at least 3 windows


async def test_priority_dedup_delay_and_listing(make_app: AppFactory) -> None:
    app = make_app()
    app.queue("urgent", concurrency=1, priority=True)
    gate = asyncio.Event()
    order: list[int] = []

    @app.step()
    async def hold() -> None:
        await gate.wait()

    @app.workflow(name="prioritized")
    async def prioritized(tag: int) -> None:
        if tag < 0:
            await hold()
        order.append(tag)

    async with app:
        blocker = await app.start(prioritized, -1, queue="urgent")
        while (await blocker.status()).status is not WorkflowStatus.PENDING:
            await asyncio.sleep(0.01)
        handles = [
            await app.start(prioritized, tag, queue="urgent", priority=priority)
            for tag, priority in [(1, 5), (2, 1), (3, 5), (4, 0), (5, 1)]
        ]
        queued = await app.list_queued("urgent")
        assert [q.workflow_id for q in queued] == [h.workflow_id for h in handles]
        gate.set()
        await asyncio.gather(*(h.result(timeout=10) for h in [blocker, *handles]))
        assert order == [-1, 4, 2, 5, 1, 3]  # lower number first, FIFO within a priority

        first = await app.start(prioritized, -1, queue="urgent", dedup_id="order-7")
        gate.clear()
        with pytest.raises(DuplicateWorkflowError, match="order-7"):
            await app.start(prioritized, 9, queue="urgent", dedup_id="order-7")
        same = await app.start(
            prioritized, 9, queue="urgent", dedup_id="order-7", if_duplicate="return"
        )
        assert same.workflow_id == first.workflow_id
        gate.set()
        await first.result(timeout=10)
        again = await app.start(prioritized, 8, queue="urgent", dedup_id="order-7")
        await again.result(timeout=10)  # the id is free again once the first finished

        delayed = await app.start(prioritized, 10, queue="urgent", delay=0.5)
        await delayed.result(timeout=10)
        info = await delayed.status()
        assert info.started_at is not None
        assert (info.started_at - info.created_at).total_seconds() >= 0.5


async def test_partitions_limit_each_partition_separately(make_app: AppFactory) -> None:
    app = make_app()
    app.queue("tenants", concurrency=1, partitioned=True)
    running: dict[str, int] = {}
    peak: dict[str, int] = {}
    overall = {"now": 0, "peak": 0}

    @app.step()
    async def work(tenant: str) -> None:
        running[tenant] = running.get(tenant, 0) + 1
        overall["now"] += 1
        peak[tenant] = max(peak.get(tenant, 0), running[tenant])
        overall["peak"] = max(overall["peak"], overall["now"])
        await asyncio.sleep(0.05)
        running[tenant] -= 1
        overall["now"] -= 1

    @app.workflow(name="tenant_job")
    async def tenant_job(tenant: str) -> None:
        await work(tenant)

    async with app:
        handles = [
            await app.start(tenant_job, t, queue="tenants", partition_key=t)
            for t in ["a", "b", "a", "b", "a", "b"]
        ]
        await asyncio.gather(*(h.result(timeout=30) for h in handles))
        with pytest.raises(InvalidArgumentError, match="partition_key"):
            await app.start(tenant_job, "c", queue="tenants")
    assert peak == {"a": 1, "b": 1} and overall["peak"] == 2


async def test_poison_workflow_ends_in_error_without_blocking_its_queue(
    make_app: AppFactory,
) -> None:
    client = make_app(executor_id="client")
    client.queue("shared", concurrency=1, dequeue=False)  # it only enqueues

    @client.workflow(name="only_the_client_knows")
    async def only_the_client_knows() -> None:
        return None

    @client.workflow(name="normal")
    async def normal_for_client(n: int) -> int:
        return n

    worker = make_app(executor_id="worker")
    worker.queue("shared", concurrency=1)

    @worker.workflow(name="normal")
    async def normal(n: int) -> int:
        return n

    async with client:
        poison = await client.start(only_the_client_knows, queue="shared")
        handles = [await client.start(normal_for_client, n, queue="shared") for n in range(5)]
        assert len(await client.list_queued("shared")) == 6
    async with worker:
        with pytest.raises(NotRegisteredError, match="only_the_client_knows"):
            await worker.retrieve(poison.workflow_id).result(timeout=10)
        results = [await worker.retrieve(h.workflow_id).result(timeout=10) for h in handles]
        assert results == list(range(5))


async def test_queue_configuration_errors(make_app: AppFactory) -> None:
    app = make_app()
    with pytest.raises(InvalidArgumentError):
        app.queue("bad", concurrency=0)
    with pytest.raises(InvalidArgumentError):
        app.queue("bad", rate_limit=(0, 1.0))
    app.queue("ok")
    with pytest.raises(ConfigurationError):
        app.queue("ok")

    @app.workflow()
    async def anything() -> None:
        return None

    async with app:
        with pytest.raises(NotRegisteredError, match="unknown queue 'missing'"):
            await app.start(anything, queue="missing")
        with pytest.raises(InvalidArgumentError, match="queue="):
            await app.start(anything, dedup_id="x")
        with pytest.raises(ConfigurationError, match="after launch"):
            app.queue("late")


async def test_declared_and_created_schedules_run_once_per_tick(make_app: AppFactory) -> None:
    app = make_app()
    ticks: list[tuple[str, dt.datetime]] = []

    @app.workflow(name="every_second", schedule="* * * * * *")
    async def every_second(scheduled: dt.datetime) -> None:
        ticks.append(("declared", scheduled))

    @app.workflow(name="report")
    async def report(scheduled: dt.datetime, region: str) -> None:
        ticks.append((region, scheduled))

    with pytest.raises(InvalidArgumentError, match="six cron fields"):
        app.workflow(name="bad", schedule="* * * * *")

    async with app:
        created = await app.create_schedule("eu-report", report, "* * * * * *", args=["eu"])
        assert created.workflow_name == "report"
        with pytest.raises(Exception, match="exists already"):
            await app.create_schedule("eu-report", report, "* * * * * *", args=["eu"])
        await asyncio.sleep(2.6)
        await app.pause_schedule("eu-report")
        paused_count = sum(1 for kind, _ in ticks if kind == "eu")
        await asyncio.sleep(1.2)
        assert sum(1 for kind, _ in ticks if kind == "eu") <= paused_count + 1
        names = {s.name: s for s in await app.list_schedules()}
        assert names["eu-report"].paused and names["every_second"].declared
        await app.delete_schedule("eu-report")
        with pytest.raises(NotRegisteredError):
            await app.delete_schedule("eu-report")
        runs = await app.list_workflows(name="every_second", limit=100)
    declared = sorted(t for kind, t in ticks if kind == "declared")
    assert len(declared) >= 3 and len(set(declared)) == len(declared)
    assert all(b - a == dt.timedelta(seconds=1) for a, b in itertools.pairwise(declared))
    assert {r.workflow_id for r in runs} >= {
        f"every_second@{t.strftime('%Y-%m-%dT%H:%M:%SZ')}" for t in declared
    }


async def test_a_resumed_schedule_does_not_run_the_ticks_missed_while_paused(
    make_app: AppFactory,
) -> None:
    app = make_app()
    runs: list[dt.datetime] = []

    @app.workflow(name="ticker")
    async def ticker(scheduled: dt.datetime) -> None:
        runs.append(scheduled)

    async with app:
        await app.create_schedule("tick", ticker, "* * * * * *")
        await asyncio.sleep(1.5)
        await app.pause_schedule("tick")
        await asyncio.sleep(0.3)
        paused_at = len(runs)
        await asyncio.sleep(2.5)
        await app.resume_schedule("tick")
        await asyncio.sleep(1.2)
    assert paused_at >= 1
    assert len(runs) - paused_at <= 2  # one or two new ticks, not the ~3 missed ones
