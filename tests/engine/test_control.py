"""Retries, durable sleep, deadlines, cancel / resume / fork and recovery limits on both stores."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator import (
    FakeClock,
    InvalidArgumentError,
    MaxRecoveryAttemptsExceededError,
    NonRetryableError,
    Retry,
    StepKind,
    WorkflowCancelledError,
    WorkflowFinishedError,
    WorkflowStatus,
    WorkflowTimeoutError,
)
from tests.conftest import AppFactory


class Flaky(Exception):
    pass


async def test_retries_back_off_then_succeed(make_app: AppFactory) -> None:
    app = make_app()
    attempts: list[int] = []

    @app.step(retry=Retry(max_attempts=4, base_interval=0.01, backoff=2))
    async def flaky() -> str:
        attempts.append(app.step_context().attempt)
        if len(attempts) < 3:
            raise Flaky("not yet")
        return "ok"

    @app.workflow()
    async def retried() -> str:
        return await flaky()

    async with app:
        handle = await app.start(retried, workflow_id="retry")
        assert await handle.result(timeout=10) == "ok"
        assert attempts == [1, 2, 3]
        [step] = await app.list_steps("retry")
        assert step.attempts == 3 and step.status == "SUCCESS"


async def test_non_retryable_and_exhausted_retries_fail_the_workflow(make_app: AppFactory) -> None:
    app = make_app()
    calls: dict[str, int] = {"hard": 0, "soft": 0}

    @app.step(retry=Retry(max_attempts=5, base_interval=0.01))
    async def hard() -> None:
        calls["hard"] += 1
        raise NonRetryableError("card declined")

    @app.step(retry=Retry(max_attempts=3, base_interval=0.01, non_retryable=(KeyError,)))
    async def soft() -> None:
        calls["soft"] += 1
        raise Flaky("still down")

    @app.workflow()
    async def fails_hard() -> None:
        await hard()

    @app.workflow()
    async def fails_soft() -> None:
        await soft()

    async with app:
        with pytest.raises(NonRetryableError, match="card declined"):
            await (await app.start(fails_hard, workflow_id="hard")).result()
        with pytest.raises(Flaky, match="still down"):  # the original type, rebuilt
            await (await app.start(fails_soft, workflow_id="soft")).result()
        assert calls == {"hard": 1, "soft": 3}
        info = await app.retrieve("soft").status()
        assert info.status is WorkflowStatus.ERROR
        assert info.error == "still down" and info.error_type.endswith("Flaky")
        [step] = await app.list_steps("soft")
        assert step.attempts == 3 and step.status == "ERROR"


async def test_caught_step_error_is_replayed_not_rerun(make_app: AppFactory) -> None:
    app = make_app()
    calls: list[str] = []

    @app.step(name="boom")
    async def boom() -> None:
        calls.append("boom")
        raise Flaky("boom")

    @app.workflow(name="catcher")
    async def catcher() -> str:
        try:
            await boom()
        except Flaky as exc:
            return f"caught {exc}"
        return "no"

    async with app:
        assert await catcher() == "caught boom"
        [info] = await app.list_workflows(name="catcher")
        forked = await app.fork(info.workflow_id, from_step=2)
        assert await forked.result() == "caught boom"
        assert calls == ["boom"]


async def test_durable_sleep_records_wake_time_and_recovery_sleeps_the_rest(
    make_app: AppFactory,
) -> None:
    clock = FakeClock()
    first = make_app(clock=clock, executor_id="sleeper")

    @first.workflow(name="napper")
    async def napper() -> str:
        await first.sleep(10)
        return "awake"

    async with first:
        await first.start(napper, workflow_id="nap")
        await asyncio.sleep(0.1)
        [step] = await first.list_steps("nap")
        assert step.kind is StepKind.SLEEP and step.output == clock.now_ms() + 10_000
        await clock.advance(4)
        await first.shutdown(timeout=0)  # crash 4 s into a 10 s sleep

    second = make_app(clock=clock, executor_id="sleeper")
    second.workflow(name="napper")(napper.fn)
    async with second:
        handle = second.retrieve("nap")
        await asyncio.sleep(0.1)
        assert (await handle.status()).status is WorkflowStatus.PENDING
        await clock.advance(5.9)
        assert (await handle.status()).status is WorkflowStatus.PENDING  # 0.1 s left
        with pytest.raises(WorkflowTimeoutError):  # a result wait's timeout is on the clock too
            await asyncio.gather(handle.result(timeout=0.05), clock.advance(0.05))
        await clock.advance(0.05)
        assert await handle.result(timeout=5) == "awake"


async def test_cancel_stops_at_the_next_durable_call_and_resume_continues(
    make_app: AppFactory,
) -> None:
    app = make_app()
    gate = asyncio.Event()
    ran: list[str] = []

    @app.step(name="slow")
    async def slow() -> None:
        ran.append("slow")
        await gate.wait()

    @app.step(name="after")
    async def after() -> None:
        ran.append("after")

    @app.workflow(name="cancellable")
    async def cancellable() -> str:
        await slow()
        await after()
        return "finished"

    async with app:
        handle = await app.start(cancellable, workflow_id="c1")
        while ran != ["slow"]:
            await asyncio.sleep(0.01)
        await app.cancel("c1")
        assert (await handle.status()).status is WorkflowStatus.CANCELLED
        gate.set()
        with pytest.raises(WorkflowCancelledError):
            await handle.result(timeout=5)
        assert ran == ["slow"]  # `after` never ran
        await app.cancel("c1")  # cancelling twice is harmless

        resumed = await app.resume("c1")
        assert await resumed.result(timeout=5) == "finished"
        # slow finished after the cancel: a CANCELLED workflow takes no more records, so the
        # resume runs it again (with the same idempotency key: its effect applies once)
        assert ran == ["slow", "slow", "after"]
        with pytest.raises(WorkflowFinishedError):
            await app.cancel("c1")
        with pytest.raises(WorkflowFinishedError):
            await app.resume("c1")


async def test_cancel_interrupts_a_durable_sleep(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow()
    async def long_nap() -> None:
        await app.sleep(3600)

    async with app:
        handle = await app.start(long_nap, workflow_id="nap")
        await asyncio.sleep(0.05)
        await app.cancel("nap")
        with pytest.raises(WorkflowCancelledError):
            await handle.result(timeout=2)


async def test_resume_of_a_failed_workflow_retries_the_failed_step(make_app: AppFactory) -> None:
    app = make_app()
    healthy = {"value": False}
    calls: list[str] = []

    @app.step(name="first")
    async def first() -> int:
        calls.append("first")
        return 1

    @app.step(name="fragile")
    async def fragile() -> int:
        calls.append("fragile")
        if not healthy["value"]:
            raise Flaky("downstream down")
        return 2

    @app.workflow(name="resumable")
    async def resumable() -> int:
        return await first() + await fragile()

    async with app:
        with pytest.raises(Flaky):
            await (await app.start(resumable, workflow_id="f1")).result()
        healthy["value"] = True
        assert await (await app.resume("f1")).result(timeout=5) == 3
        assert calls == ["first", "fragile", "fragile"]
        steps = await app.list_steps("f1")
        assert [(s.name, s.status) for s in steps] == [("first", "SUCCESS"), ("fragile", "SUCCESS")]


async def test_fork_reuses_steps_before_from_step(make_app: AppFactory) -> None:
    app = make_app()
    calls: list[str] = []

    @app.step(name="s")
    async def s(tag: str) -> str:
        calls.append(tag)
        return tag

    @app.workflow(name="three")
    async def three() -> str:
        return await s("a") + await s("b") + await s("c")

    async with app:
        assert await (await app.start(three, workflow_id="orig")).result() == "abc"
        forked = await app.fork("orig", from_step=3, new_workflow_id="copy")
        assert forked.workflow_id == "copy"
        assert await forked.result() == "abc"
        assert calls == ["a", "b", "c", "c"]
        with pytest.raises(InvalidArgumentError):
            await app.fork("orig", from_step=0)


async def test_workflow_timeout_cancels_it_at_its_deadline(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow(timeout=0.3)
    async def too_slow() -> None:
        await app.sleep(60)

    async with app:
        handle = await app.start(too_slow, workflow_id="late")
        with pytest.raises(WorkflowCancelledError, match="deadline"):
            await handle.result(timeout=5)
        info = await handle.status()
        assert info.status is WorkflowStatus.CANCELLED and info.deadline is not None


async def test_max_recovery_attempts_ends_a_crash_looping_workflow(make_app: AppFactory) -> None:
    for attempt in range(3):
        app = make_app(executor_id="looper")
        stuck = asyncio.Event()

        @app.workflow(name="crashy", max_recovery_attempts=1)
        async def crashy(stuck: asyncio.Event = stuck) -> None:
            stuck.set()
            await asyncio.Event().wait()  # never finishes: simulates a crash every time

        async with app:
            if attempt == 0:
                await app.start(crashy, workflow_id="loop")
            if attempt < 2:
                await asyncio.wait_for(stuck.wait(), 5)
            else:
                with pytest.raises(MaxRecoveryAttemptsExceededError):
                    await app.retrieve("loop").result(timeout=5)
            await app.shutdown(timeout=0)
    # attempt 0 ran it, attempt 1 recovered it once (allowed), attempt 2 exceeded the limit
