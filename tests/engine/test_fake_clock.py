"""Every wait is on the Clock (#16): with a FakeClock, moving time makes each wait happen at
once, on both stores — durable sleeps, recv/get_event/result timeouts, workflow deadlines, step
timeouts, retry backoff (with Retry-After), cron ticks, queue delays and rate windows, lease
expiry. Hours of waiting take a fraction of a second of real time; nothing here sleeps for a
fixed time, it waits (briefly, bounded) for the state the clock's move must produce."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from orchestrator import (
    FakeClock,
    Orchestrator,
    Retry,
    RetryLaterError,
    WorkflowStatus,
    WorkflowTimeoutError,
)
from tests.clocks import armed_at, in_real_time, status_is, until, waiting_on_clock
from tests.conftest import AppFactory

HOUR = 3600.0
DAY = 86400.0


async def steps_recorded(app: Orchestrator, workflow_id: str, count: int) -> None:
    async def recorded() -> bool:
        return len(await app.list_steps(workflow_id)) >= count

    await until(recorded)


async def test_sleep_recv_and_get_event_waits_end_when_the_clock_moves(
    make_app: AppFactory,
) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)

    @app.workflow(name="patient")
    async def patient() -> list[Any]:
        await app.sleep(HOUR)
        message = await app.recv("never", timeout=DAY)
        event = await app.get_event("patient", "never", timeout=DAY)
        return [message, event, (await app.now()).timestamp()]

    async with app:
        started = clock.now_ms()
        handle = await app.start(patient, workflow_id="patient")
        await waiting_on_clock(clock, after=HOUR)  # the sleep
        await clock.advance(HOUR)
        await waiting_on_clock(clock, after=DAY)  # then the recv
        await clock.advance(DAY)
        await waiting_on_clock(clock, after=DAY)  # then the get_event
        await clock.advance(DAY)
        message, event, now = await in_real_time(handle.result())
    assert message is None and event is None
    assert now * 1000 == started + (HOUR + 2 * DAY) * 1000


async def test_recv_without_timeout_waits_past_any_time(make_app: AppFactory) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)

    @app.workflow(name="listener")
    async def listener() -> Any:
        return await app.recv("answer", timeout=None)

    async with app:
        handle = await app.start(listener, workflow_id="listener")
        await status_is(handle, WorkflowStatus.PENDING)
        await clock.advance(365 * DAY)
        assert (await handle.status()).status is WorkflowStatus.PENDING
        await app.send("listener", "yes", topic="answer")
        assert await in_real_time(handle.result()) == "yes"


async def test_result_timeout_and_workflow_deadline_are_on_the_clock(make_app: AppFactory) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)

    @app.workflow(name="stuck")
    async def stuck() -> Any:
        return await app.recv("never", timeout=None)

    async with app:
        handle = await app.start(stuck, workflow_id="stuck", timeout=2 * HOUR)
        waiter = asyncio.create_task(handle.result(timeout=HOUR))
        await waiting_on_clock(clock, after=2 * HOUR)  # the workflow's deadline
        await waiting_on_clock(clock, after=HOUR)  # the result wait
        await clock.advance(HOUR)
        with pytest.raises(WorkflowTimeoutError):
            await asyncio.wait_for(waiter, 5)
        assert (await handle.status()).status is WorkflowStatus.PENDING
        await clock.advance(HOUR)  # the workflow's own deadline
        await status_is(handle, WorkflowStatus.CANCELLED)


async def test_step_timeout_backoff_and_retry_after_are_on_the_clock(
    make_app: AppFactory,
) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)
    calls: list[str] = []
    hang = asyncio.Event()

    @app.step(
        retry=Retry(max_attempts=2, base_interval=HOUR, max_interval=HOUR, jitter=0), timeout=60
    )
    async def slow_then_quick() -> str:
        calls.append("slow" if not calls else "quick")
        if len(calls) == 1:
            await hang.wait()  # cancelled by the step timeout
        return "done"

    @app.step(retry=Retry(max_attempts=2, base_interval=1, jitter=0))
    async def rate_limited() -> str:
        calls.append("429" if "429" not in calls else "ok")
        if calls[-1] == "429":
            raise RetryLaterError("the provider answered 429", retry_after=1800)
        return "charged"

    @app.workflow(name="retrying")
    async def retrying() -> list[str]:
        return [await slow_then_quick(), await rate_limited()]

    async with app:
        handle = await app.start(retrying, workflow_id="retrying")
        await waiting_on_clock(clock, after=60)  # the first attempt's timeout
        await clock.advance(60)  # the attempt times out ...
        await waiting_on_clock(clock, after=HOUR)
        await clock.advance(HOUR)  # ... and the backoff ends
        await waiting_on_clock(clock, after=1800)  # a 429's Retry-After (half an hour)
        await clock.advance(1)  # not the policy's 1 s backoff
        assert calls == ["slow", "quick", "429"]
        await clock.advance(1799)
        assert await in_real_time(handle.result()) == ["done", "charged"]
    assert calls == ["slow", "quick", "429", "ok"]
    assert not hang.is_set()


async def test_an_hourly_schedule_ticks_when_an_hour_passes(make_app: AppFactory) -> None:
    clock = FakeClock(start_ms=1_700_000_000_000 - 1_700_000_000_000 % 3_600_000 + 1000)
    app = make_app(clock=clock)
    ticks: list[dt.datetime] = []

    @app.workflow(name="hourly", schedule="0 0 * * * *")
    async def hourly(scheduled: dt.datetime) -> None:
        ticks.append(scheduled)

    top = clock.now_ms() - 1000
    async with app:
        await armed_at(clock, top + 3_600_000)  # the next tick
        assert ticks == []
        await clock.advance(HOUR)
        await until(lambda: len(ticks) == 1)
        await armed_at(clock, top + 2 * 3_600_000)
        await clock.advance(HOUR)
        await until(lambda: len(ticks) == 2)
    assert [tick.timestamp() * 1000 for tick in ticks] == [top + 3_600_000, top + 7_200_000]


async def test_queue_delays_and_rate_windows_open_when_the_clock_moves(
    make_app: AppFactory,
) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)
    app.queue("slow", rate_limit=(1, HOUR))
    app.queue("later")

    @app.workflow(name="job")
    async def job(n: int) -> int:
        return n

    async with app:
        first = await app.start(job, 1, queue="slow")
        second = await app.start(job, 2, queue="slow")
        delayed = await app.start(job, 3, queue="later", delay=DAY)
        assert await in_real_time(first.result()) == 1
        await waiting_on_clock(clock, after=HOUR, slack_ms=1)  # the rate window
        await waiting_on_clock(clock, after=DAY)  # the delay
        assert (await second.status()).status is WorkflowStatus.ENQUEUED
        await clock.advance(HOUR + 0.001)  # the rate window reopens
        assert await in_real_time(second.result()) == 2
        assert (await delayed.status()).status is WorkflowStatus.ENQUEUED
        await clock.advance(DAY - HOUR - 0.001)  # the delay is over
        assert await in_real_time(delayed.result()) == 3


async def test_a_workers_lease_expires_when_the_clock_moves_past_it(
    make_app: AppFactory,
) -> None:
    """Worker a's clock stands still (it is paused: no heartbeat); worker b's moves past a's
    lease, so b takes a's workflow over, and a, waking, writes nothing more of it."""
    paused, moving = FakeClock(), FakeClock()
    a = make_app(clock=paused, executor_id="a", lease_seconds=30)
    b = make_app(clock=moving, executor_id="b", lease_seconds=30)
    for app in (a, b):
        declare_handover(app)

    await a.launch()
    await b.launch()
    handle = await a.start("handover", workflow_id="handover")
    await steps_recorded(a, "handover", 1)
    await moving.advance(31)  # b's heartbeat: a's lease ended; b takes over

    async def taken_over() -> bool:
        return (await handle.status()).executor_id == "b"

    await until(taken_over)
    await b.send("handover", "now", topic="go")
    assert await in_real_time(b.retrieve("handover").result()) == ["prepared", "now"]
    steps = await b.list_steps("handover")
    assert [(step.name, step.status) for step in steps] == [
        ("prepare", "SUCCESS"),
        ("recv", "SUCCESS"),
    ]


def declare_handover(app: Orchestrator) -> None:
    @app.step(name="prepare")
    async def prepare() -> str:
        return "prepared"

    @app.workflow(name="handover")
    async def handover() -> list[Any]:
        return [await prepare(), await app.recv("go", timeout=None)]
