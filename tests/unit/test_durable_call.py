"""``WorkflowRun.call``, the durable-call primitive, on its own: a run over a real SQLite store
(in memory) and a FakeClock, with hand-made ``Call`` specs. Replay and the name check, the stop
check, the lease guard, retries with backoff, jitter and Retry-After on the clock, the
per-attempt timeout, and deferred checkpoints; every durable call of the engine is one of
these specs (tests/engine covers them through the public API)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry

from orchestrator import FakeClock, Orchestrator, Retry
from orchestrator.engine.run import Attempt, Call, WorkflowRun
from orchestrator.errors import (
    LeaseLostError,
    NonDeterministicWorkflowError,
    RetryLaterError,
    WorkflowCancelledError,
)
from orchestrator.metrics import Metrics
from orchestrator.store.base import NewWorkflow, StepRecord
from orchestrator.tracing import Tracing
from orchestrator.types import StepKind, WorkflowStatus
from tests.clocks import until, waiting_on_clock


@dataclass
class RecordingLease:
    """A lease that never trusts without asking: records each guard, confirms everything
    (``lost``: every guard raises LeaseLostError)."""

    guarded: list[tuple[str, int]]
    lost: bool = False

    def trusts(self, workflow_id: str, epoch: int, step: bool) -> bool:
        return False

    async def guard(self, workflow_id: str, epoch: int) -> None:
        if self.lost:
            raise LeaseLostError("taken over", workflow_id=workflow_id)
        self.guarded.append((workflow_id, epoch))

    async def confirm(self, workflow_id: str, epoch: int) -> None:
        return None


@dataclass
class Harness:
    """A workflow row in a real store, and runs of it built by hand."""

    app: Orchestrator
    clock: FakeClock
    guarded: list[tuple[str, int]] = field(default_factory=list)

    async def run(self, recorded: list[StepRecord] | None = None) -> WorkflowRun:
        record = await self.app.store.get_workflow("wf")
        assert record is not None

        return WorkflowRun(
            record,
            self.app.workflows["wf"],
            recorded or [],
            store=self.app.store,
            clock=self.clock,
            tracing=Tracing(None, executor_id="unit"),
            metrics=Metrics(CollectorRegistry()),
            lease=RecordingLease(self.guarded),
        )

    async def steps(self) -> list[tuple[int, str, str | None]]:
        return [
            (step.step_number, step.name, step.output)
            for step in await self.app.store.load_steps("wf")
        ]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    clock = FakeClock()
    app = Orchestrator("unit", "sqlite:///:memory:", clock=clock, app_version="unit")

    @app.workflow(name="wf")
    async def wf() -> None:
        return None

    await app.store.open()
    await app.store.create_workflow(
        NewWorkflow("wf", "wf", WorkflowStatus.PENDING, '{"args":[],"kwargs":{}}', "unit", "unit")
    )
    try:
        yield Harness(app, clock)
    finally:
        await app.store.close()


def recording(run: WorkflowRun, name: str, answers: list[object], **spec: object) -> Call[object]:
    """A step-like call: each attempt takes the next answer (raising it if it is an error) and
    the success is recorded with its value as output."""
    attempts: list[Attempt] = []

    async def perform(attempt: Attempt) -> object:
        attempts.append(attempt)
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        await run.record_step(
            run.step_record(attempt.number, name, StepKind.STEP, output=str(answer))
        )
        return answer

    return Call(
        name,
        StepKind.STEP,
        perform=perform,
        replay=lambda recorded: f"replayed {recorded.output}",
        **spec,  # type: ignore[arg-type]
    )


async def test_a_new_call_takes_the_next_number_runs_once_and_is_recorded(
    harness: Harness,
) -> None:
    run = await harness.run()
    assert await run.call(recording(run, "charge", ["ok"])) == "ok"
    assert await run.call(recording(run, "ship", ["sent"])) == "sent"
    assert run.counter == 2
    assert await harness.steps() == [(1, "charge", "ok"), (2, "ship", "sent")]


async def test_a_recorded_call_is_replayed_not_performed(harness: Harness) -> None:
    recorded = [StepRecord("wf", 1, "charge", StepKind.STEP, output="earlier")]
    run = await harness.run(recorded)
    answers: list[object] = ["must not run"]
    assert await run.call(recording(run, "charge", answers)) == "replayed earlier"
    assert answers == ["must not run"] and not run.replaying
    assert await run.call(recording(run, "ship", ["sent"])) == "sent"  # then live again


async def test_a_recorded_call_under_another_name_is_non_determinism(harness: Harness) -> None:
    recorded = [StepRecord("wf", 1, "charge", StepKind.STEP, output="earlier")]
    run = await harness.run(recorded)
    with pytest.raises(NonDeterministicWorkflowError, match="recorded as 'charge'") as raised:
        await run.call(recording(run, "refund", ["x"]))
    assert raised.value.detail["step_number"] == 1
    assert raised.value.detail["called_name"] == "refund"


async def test_a_stopped_run_raises_its_reason_before_the_work(harness: Harness) -> None:
    run = await harness.run()
    run.stop(WorkflowCancelledError("cancelled by an operator", workflow_id="wf"))
    answers: list[object] = ["must not run"]
    with pytest.raises(WorkflowCancelledError, match="operator"):
        await run.call(recording(run, "charge", answers))
    assert answers == ["must not run"] and await harness.steps() == []


async def test_a_guarded_call_confirms_the_lease_first_and_a_lost_lease_stops_it(
    harness: Harness,
) -> None:
    run = await harness.run()
    await run.call(recording(run, "charge", ["ok"], guarded=True))
    assert harness.guarded == [("wf", run.epoch)]

    assert isinstance(run.lease, RecordingLease)
    run.lease.lost = True
    answers: list[object] = ["must not run"]
    with pytest.raises(LeaseLostError):
        await run.call(recording(run, "ship", answers, guarded=True))
    assert answers == ["must not run"]


async def test_failed_attempts_are_retried_after_the_backoff_on_the_clock(
    harness: Harness,
) -> None:
    run = await harness.run()
    policy = Retry(max_attempts=3, base_interval=10, backoff=3, jitter=0)
    answers: list[object] = [OSError("down"), OSError("still down"), "ok"]
    call = asyncio.create_task(run.call(recording(run, "charge", answers, retry=policy)))
    await waiting_on_clock(harness.clock, after=10)  # after attempt 1: 10 s
    await harness.clock.advance(10)
    await waiting_on_clock(harness.clock, after=30)  # after attempt 2: 10 * 3
    assert not call.done()
    await harness.clock.advance(30)
    assert await asyncio.wait_for(call, 5) == "ok"
    assert answers == [] and await harness.steps() == [(1, "charge", "ok")]


async def test_the_last_error_is_raised_once_the_attempts_are_spent(harness: Harness) -> None:
    run = await harness.run()
    answers: list[object] = [OSError("one"), OSError("two")]
    call = asyncio.create_task(
        run.call(recording(run, "charge", answers, retry=Retry(max_attempts=2, jitter=0)))
    )
    await waiting_on_clock(harness.clock, after=1)
    await harness.clock.advance(1)
    with pytest.raises(OSError, match="two"):
        await asyncio.wait_for(call, 5)


@pytest.mark.parametrize(("draw", "wait_ms"), [(0.0, 8000), (1.0, 12000), (0.5, 10000)])
async def test_jitter_varies_the_backoff_within_its_fraction(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, draw: float, wait_ms: int
) -> None:
    monkeypatch.setattr("orchestrator.engine.run.random.random", lambda: draw)
    run = await harness.run()
    policy = Retry(max_attempts=2, base_interval=10, jitter=0.2)
    call = asyncio.create_task(
        run.call(recording(run, "charge", [OSError("down"), "ok"], retry=policy))
    )
    await waiting_on_clock(harness.clock, after=wait_ms / 1000)  # 10 s, ±20%
    await harness.clock.advance(wait_ms / 1000)
    assert await asyncio.wait_for(call, 5) == "ok"


async def test_an_errors_retry_after_replaces_the_backoff(harness: Harness) -> None:
    run = await harness.run()
    policy = Retry(max_attempts=2, base_interval=1, jitter=0.5)
    answers: list[object] = [RetryLaterError("429", retry_after=120), "ok"]
    call = asyncio.create_task(run.call(recording(run, "charge", answers, retry=policy)))
    await waiting_on_clock(harness.clock, after=120)  # exactly: no jitter on a Retry-After
    await harness.clock.advance(120)
    assert await asyncio.wait_for(call, 5) == "ok"


async def test_an_attempt_past_its_timeout_is_cancelled_and_fails(harness: Harness) -> None:
    run = await harness.run()
    cancelled = asyncio.Event()

    async def hang(attempt: Attempt) -> object:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return None

    call = asyncio.create_task(
        run.call(Call("slow", StepKind.STEP, perform=hang, replay=lambda _: None, timeout=5))
    )
    await waiting_on_clock(harness.clock, after=5)
    await harness.clock.advance(5)
    with pytest.raises(TimeoutError, match=r"step 'slow' of workflow wf .* timeout of 5 s"):
        await asyncio.wait_for(call, 5)
    assert cancelled.is_set()


async def test_a_deferred_checkpoint_is_written_before_the_next_call_does_anything(
    harness: Harness,
) -> None:
    run = await harness.run()
    seen: list[list[tuple[int, str, str | None]]] = []

    async def deferring(attempt: Attempt) -> object:
        await run.record_step(
            run.step_record(attempt.number, "quick", StepKind.STEP, output="1"), defer=True
        )
        return 1

    async def looking(attempt: Attempt) -> object:
        seen.append(await harness.steps())
        return None

    await run.call(Call("quick", StepKind.STEP, perform=deferring, replay=lambda _: None))
    assert run.deferred is not None and await harness.steps() == []  # not written yet
    await run.call(Call("next", StepKind.NOW, perform=looking, replay=lambda _: None))
    assert seen == [[(1, "quick", "1")]]  # written before the next call's work began
    assert run.deferred is None


async def test_a_stop_interrupts_a_durable_wait_at_once(harness: Harness) -> None:
    run = await harness.run()

    async def park(attempt: Attempt) -> object:
        await run.wait(harness.clock.sleep_until(harness.clock.now_ms() + 3_600_000))
        return None

    call = asyncio.create_task(
        run.call(Call("sleep", StepKind.SLEEP, perform=park, replay=lambda _: None))
    )
    await waiting_on_clock(harness.clock, after=3600)
    run.stop(WorkflowCancelledError("cancelled", workflow_id="wf"))
    with pytest.raises(WorkflowCancelledError):
        await asyncio.wait_for(call, 5)
    await until(lambda: harness.clock.pending() == 0)  # the sleep's timer is gone too
