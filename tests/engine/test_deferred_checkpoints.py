"""Deferred checkpoints on both stores: a step's record is written before the next durable call
goes on, or with the final status in one statement, and never lost on the way out."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from orchestrator import Orchestrator, StepKind, WorkflowCancelledError, WorkflowStatus
from orchestrator.errors import WorkflowFailedError, WorkflowTimeoutError
from orchestrator.serialization import encode_error
from orchestrator.store import StepRecord
from tests.conftest import AppFactory


def count_writes(app: Orchestrator) -> Counter[str]:
    """Count the store's checkpoint writes (a spy around the real store: the calls still go
    through to the database)."""
    calls: Counter[str] = Counter()
    store: Any = app.store
    for name in ("record_step", "finish_workflow", "finish_after_step"):
        original: Callable[..., Awaitable[Any]] = getattr(store, name)

        async def spy(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            calls[_name] += 1
            return await _original(*args, **kw)

        setattr(store, name, spy)
    return calls


async def test_the_last_step_is_written_with_the_final_status(make_app: AppFactory) -> None:
    app = make_app()

    @app.step()
    async def echo(x: int) -> int:
        return x

    @app.workflow()
    async def three(x: int) -> int:
        for _ in range(3):
            x = await echo(x)
        return x + 1

    async with app:
        calls = count_writes(app)
        assert await (await app.start(three, 5, workflow_id="w")).result(timeout=10) == 6
        assert calls == {"record_step": 2, "finish_after_step": 1}
        steps = await app.list_steps("w")
        assert [(s.step_number, s.output) for s in steps] == [(1, 5), (2, 5), (3, 5)]
        assert (await app.retrieve("w").status()).status is WorkflowStatus.SUCCESS


async def test_a_step_starts_only_after_the_previous_one_is_recorded(
    make_app: AppFactory,
) -> None:
    app = make_app()
    seen: dict[str, list[int]] = {}

    @app.step()
    async def first() -> int:
        return 1

    @app.step()
    async def look(label: str) -> int:
        seen[label] = [s.step_number for s in await app.list_steps("w")]
        return 2

    @app.workflow()
    async def flow() -> int:
        await first()
        await asyncio.gather(look("a"), look("b"))  # both wait for the one write of step 1
        return await first()

    async with app:
        assert await (await app.start(flow, workflow_id="w")).result(timeout=10) == 1
    assert seen["a"][:1] == [1] and seen["b"][:1] == [1]


async def test_a_failure_after_the_last_step_compensates_it(make_app: AppFactory) -> None:
    app = make_app()
    undone: list[int] = []

    @app.step()
    async def reserve(x: int) -> int:
        return x

    @reserve.compensation
    async def release(x: int, reserved: int) -> None:
        undone.append(reserved)

    @app.workflow()
    async def flow(x: int) -> int:
        await reserve(x)
        raise ValueError("no stock")  # no durable call between the step and the failure

    async with app:
        with pytest.raises(WorkflowFailedError) as failed:
            await (await app.start(flow, 7, workflow_id="w")).result(timeout=10)
        assert failed.value.status == WorkflowStatus.COMPENSATED
        assert undone == [7]
        kinds = [(s.step_number, s.kind.value) for s in await app.list_steps("w")]
        assert kinds[0] == (1, "step") and kinds[-1][1] == "compensation"


@pytest.mark.parametrize("elsewhere", [False, True], ids=["here", "elsewhere"])
@pytest.mark.parametrize("compensate", [True, False], ids=["rollback", "no-rollback"])
async def test_a_cancel_while_the_last_step_runs_wins_over_success(
    make_app: AppFactory, compensate: bool, elsewhere: bool
) -> None:
    """Cancelled here (the run is told at once) or elsewhere (another process changed the row
    and this run learns it only from the statement that writes the last step)."""
    app = make_app()
    entered = asyncio.Event()
    proceed = asyncio.Event()
    undone: list[str] = []

    @app.step()
    async def charge() -> str:
        entered.set()
        await proceed.wait()
        return "ch-1"

    @charge.compensation
    async def refund(charged: str) -> None:
        undone.append(charged)

    @app.workflow()
    async def pay() -> str:
        return await charge()

    async with app:
        handle = await app.start(pay, workflow_id="w")
        await entered.wait()
        if elsewhere:
            error = WorkflowCancelledError("cancelled elsewhere", compensate=compensate)
            to = WorkflowStatus.COMPENSATING if compensate else WorkflowStatus.CANCELLED
            moved = await app.store.transition_workflow(
                "w", to, from_statuses={WorkflowStatus.PENDING}, error=encode_error(error)
            )
            assert moved is not None
        else:
            await app.cancel("w", compensate=compensate)
        proceed.set()
        with pytest.raises((WorkflowCancelledError, WorkflowFailedError)):
            await handle.result(timeout=10)
        info = await handle.status()
        steps = await app.list_steps("w")
    if compensate:  # recorded (its effect happened), then compensated
        assert steps[0].step_number == 1 and steps[0].output == "ch-1"
        assert info.status is WorkflowStatus.COMPENSATED
        assert undone == ["ch-1"]
    else:  # a CANCELLED workflow takes no record: a resume runs the step again (same key)
        assert steps == []
        assert info.status is WorkflowStatus.CANCELLED
        assert undone == []


async def test_a_last_step_recorded_by_another_executor_stops_this_run(
    make_app: AppFactory,
) -> None:
    """Another worker took the workflow over and recorded the same step number: this run
    neither overwrites that record nor finishes the workflow."""
    app = make_app()

    @app.step(name="charge")
    async def charge() -> str:
        pending = {WorkflowStatus.PENDING}
        taken = await app.store.resume_workflow("w", "other", None, from_statuses=pending)
        assert taken is not None
        theirs = StepRecord(
            "w",
            1,
            "charge",
            StepKind.STEP,
            output='"theirs"',
            started_at=1,
            epoch=taken.owner_epoch,
        )
        assert await app.store.record_step(theirs) is WorkflowStatus.PENDING
        return "ours"

    @app.workflow()
    async def pay() -> str:
        return await charge()

    async with app:
        # The waiter here follows the workflow to its end on the other worker: still running.
        with pytest.raises(WorkflowTimeoutError):
            await (await app.start(pay, workflow_id="w")).result(timeout=1)
        assert (await app.retrieve("w").status()).status is WorkflowStatus.PENDING
        assert [s.output for s in await app.list_steps("w")] == ["theirs"]


def gated_two_steps(app: Orchestrator) -> tuple[Any, asyncio.Event, asyncio.Event]:
    """A workflow of two steps, ``first`` (which sets ``entered``, waits for ``release`` and
    returns "ours") and ``second`` (its input with "!"); and the two events."""
    entered, release = asyncio.Event(), asyncio.Event()

    @app.step(name="first")
    async def first() -> str:
        entered.set()
        await release.wait()
        return "ours"

    @app.step(name="second")
    async def second(x: str) -> str:
        return f"{x}!"

    @app.workflow()
    async def flow() -> str:
        return await second(await first())

    return flow, entered, release


async def test_a_step_written_by_a_worker_that_lost_the_workflow_is_refused(
    make_app: AppFactory,
) -> None:
    """A worker paused mid-step wakes after its workflow was taken over and tries to record
    that step first. It writes with the epoch it was given, an earlier one than the owner's
    (epochs only grow): the store refuses it, and the owner records its own step and goes on."""
    app = make_app()
    flow, entered, release = gated_two_steps(app)

    async with app:
        handle = await app.start(flow, workflow_id="z")
        await entered.wait()
        owner = (await app.store.get_workflow("z")).owner_epoch  # type: ignore[union-attr]
        woken = StepRecord(
            "z", 1, "first", StepKind.STEP, output='"theirs"', started_at=1, epoch=owner - 1
        )
        assert await app.store.record_step(woken) is None
        release.set()
        assert await handle.result(timeout=10) == "ours!"
        steps = await app.list_steps("z")
        assert [(s.step_number, s.output) for s in steps] == [(1, "ours"), (2, "ours!")]


async def test_a_worker_whose_workflow_was_taken_over_during_a_pause_records_nothing(
    make_app: AppFactory,
) -> None:
    """The lease lapsed during a pause (its validity is in the past) and another worker took
    the workflow over meanwhile: the step that was running finishes, but its checkpoint is not
    written, and the run stops; the new owner records that step itself."""
    app = make_app()
    flow, entered, release = gated_two_steps(app)

    async with app:
        handle = await app.start(flow, workflow_id="p")
        await entered.wait()
        lease = app.engine.lease
        assert lease is not None
        lease.valid_until = 0.0  # as after a pause longer than the lease
        pending = {WorkflowStatus.PENDING}
        assert await app.store.resume_workflow("p", "other", None, from_statuses=pending)
        release.set()
        with pytest.raises(WorkflowTimeoutError):
            await handle.result(timeout=1)
        assert "p" not in app.engine.runs
        assert await app.list_steps("p") == []
        assert (await app.retrieve("p").status()).executor_id == "other"
