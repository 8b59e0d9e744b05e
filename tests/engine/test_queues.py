"""Queues and schedules in one process, on both stores (many workers: tests/workers)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable

import pytest

from orchestrator import (
    ConfigurationError,
    DuplicateWorkflowError,
    FakeClock,
    InvalidArgumentError,
    NotRegisteredError,
    WorkflowStatus,
)
from tests.clocks import armed_at, until, waiting_on_clock
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
    clock = FakeClock()
    app = make_app(clock=clock)
    app.queue("rated", rate_limit=(4, 30.0))

    @app.workflow(name="rated_wf")
    async def rated_wf() -> None:
        return None

    async def finished() -> int:
        infos = [await h.status() for h in handles]
        return sum(1 for info in infos if info.status is WorkflowStatus.SUCCESS)

    async with app:
        handles = [await app.start(rated_wf, queue="rated") for _ in range(10)]
        for window, done in enumerate((4, 8, 10)):  # 4 starts per 30 s window, no more
            await until(lambda done=done: _equals(finished(), done))
            if window < 2:
                await waiting_on_clock(clock, after=30, slack_ms=1)  # the window reopens
                assert await finished() == done
                await clock.advance(30.001)
        infos = [await h.status() for h in handles]
    starts = sorted(info.started_at.timestamp() for info in infos if info.started_at)
    first = starts[0]
    assert [round(start - first) for start in starts] == [0] * 4 + [30] * 4 + [60] * 2


async def _equals(count: Awaitable[int], expected: int) -> bool:
    return await count == expected


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
    clock = FakeClock(start_ms=1_700_000_000_500)  # half a second before a tick
    app = make_app(clock=clock)
    ticks: list[tuple[str, dt.datetime]] = []

    @app.workflow(name="every_second", schedule="* * * * * *")
    async def every_second(scheduled: dt.datetime) -> None:
        ticks.append(("declared", scheduled))

    @app.workflow(name="report")
    async def report(scheduled: dt.datetime, region: str) -> None:
        ticks.append((region, scheduled))

    with pytest.raises(InvalidArgumentError, match="six cron fields"):
        app.workflow(name="bad", schedule="* * * * *")

    def count(kind: str) -> int:
        return sum(1 for ticked, _ in ticks if ticked == kind)

    async with app:
        created = await app.create_schedule("eu-report", report, "* * * * * *", args=["eu"])
        assert created.workflow_name == "report"
        with pytest.raises(Exception, match="exists already"):
            await app.create_schedule("eu-report", report, "* * * * * *", args=["eu"])
        await next_second(clock)
        await until(lambda: count("declared") == 1 and count("eu") == 1)
        for second in (2, 3):
            await next_second(clock)
            await until(lambda second=second: count("declared") == count("eu") == second)
        await app.pause_schedule("eu-report")
        await next_second(clock)
        await until(lambda: count("declared") == 4)
        assert count("eu") == 3  # paused: no tick
        names = {s.name: s for s in await app.list_schedules()}
        assert names["eu-report"].paused and names["every_second"].declared
        assert names["eu-report"].last_tick == dt.datetime.fromtimestamp(1_700_000_003, dt.UTC)
        await app.delete_schedule("eu-report")
        with pytest.raises(NotRegisteredError):
            await app.delete_schedule("eu-report")
        runs = await app.list_workflows(name="every_second", limit=100)
    declared = sorted(t for kind, t in ticks if kind == "declared")
    assert [t.timestamp() for t in declared] == [1_700_000_001 + n for n in range(4)]
    assert {r.workflow_id for r in runs} == {
        f"every_second@{t.strftime('%Y-%m-%dT%H:%M:%SZ')}" for t in declared
    }


async def next_second(clock: FakeClock) -> None:
    """Move a FakeClock to the next whole second once the scheduler waits for it."""
    due = clock.now_ms() // 1000 * 1000 + 1000
    await armed_at(clock, due)
    await clock.set(due)


async def test_a_resumed_schedule_does_not_run_the_ticks_missed_while_paused(
    make_app: AppFactory,
) -> None:
    clock = FakeClock(start_ms=1_700_000_000_500)
    app = make_app(clock=clock)
    runs: list[dt.datetime] = []

    @app.workflow(name="ticker")
    async def ticker(scheduled: dt.datetime) -> None:
        runs.append(scheduled)

    async with app:
        await app.create_schedule("tick", ticker, "* * * * * *")
        await next_second(clock)
        await until(lambda: len(runs) == 1)
        await app.pause_schedule("tick")
        # The scheduler has seen the pause once it waits for no tick.
        await until(lambda: 1_700_000_002_000 not in clock.deadlines())
        await clock.advance(3.5)  # three ticks pass while paused
        await app.resume_schedule("tick")
        await next_second(clock)  # from now on: the next tick only
        await until(lambda: len(runs) == 2)
    assert [t.timestamp() for t in runs] == [1_700_000_001, 1_700_000_005]
