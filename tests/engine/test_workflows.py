"""Workflows and steps on both stores: results, idempotent starts, replay, children, types."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest
from pydantic import BaseModel

from orchestrator import (
    ConfigurationError,
    InvalidArgumentError,
    NonDeterministicWorkflowError,
    NotInWorkflowError,
    NotRegisteredError,
    SerializationError,
    StepKind,
    WorkflowConflictError,
    WorkflowNotFoundError,
    WorkflowStatus,
)
from tests.conftest import AppFactory


class Order(BaseModel):
    order_id: str
    amount: int


class Receipt(BaseModel):
    order_id: str
    total: int
    at: dt.datetime


async def test_workflow_runs_steps_and_returns_result(make_app: AppFactory) -> None:
    app = make_app()
    thread_ids: list[int] = []

    @app.step()
    async def double(x: int) -> int:
        return x * 2

    @app.step()
    def add_one(x: int) -> int:  # sync: runs in a worker thread
        thread_ids.append(threading.get_ident())
        return x + 1

    @app.workflow()
    async def compute(x: int) -> int:
        return await add_one(await double(x))

    async with app:
        handle = await app.start(compute, 20, workflow_id="wf-1")
        assert await handle.result(timeout=10) == 41
        info = await handle.status()
        assert info.status is WorkflowStatus.SUCCESS
        assert info.name == "test_workflow_runs_steps_and_returns_result.<locals>.compute"
        assert info.output == 41 and info.input == {"args": [20], "kwargs": {}}
        steps = await app.list_steps("wf-1")
        assert [(s.step_number, s.name.rsplit(".", 1)[-1], s.output) for s in steps] == [
            (1, "double", 40),
            (2, "add_one", 41),
        ]
        assert thread_ids and thread_ids[0] != threading.get_ident()
        assert await compute(1) == 3  # calling the workflow function runs it durably


async def test_pydantic_models_round_trip_to_the_same_type(make_app: AppFactory) -> None:
    app = make_app()

    @app.step()
    async def price(order: Order) -> Receipt:
        return Receipt(order_id=order.order_id, total=order.amount * 2, at=dt.datetime.now(dt.UTC))

    @app.workflow(name="checkout")
    async def checkout(order: Order) -> Receipt:
        receipt = await price(order)
        assert isinstance(receipt, Receipt)
        return receipt

    async with app:
        handle = await app.start(checkout, Order(order_id="o1", amount=5), workflow_id="o1")
        receipt = await handle.result()
        assert isinstance(receipt, Receipt) and receipt.total == 10

    reader = make_app()  # another process reading the stored output decodes the same type
    reader.workflow(name="checkout")(checkout.fn)
    async with reader:
        again = await reader.retrieve("o1").result()
        assert isinstance(again, Receipt) and again == receipt


async def test_same_workflow_id_runs_once_and_conflicts_on_other_input(
    make_app: AppFactory,
) -> None:
    app = make_app()
    runs: list[int] = []

    @app.workflow()
    async def once(x: int) -> int:
        runs.append(x)
        return x

    @app.workflow()
    async def other(x: int) -> int:
        return x

    async with app:
        first = await app.start(once, 1, workflow_id="same")
        second = await app.start(once, 1, workflow_id="same")
        assert await first.result() == await second.result() == 1
        with pytest.raises(WorkflowConflictError, match="different input"):
            await app.start(once, 2, workflow_id="same")
        with pytest.raises(WorkflowConflictError, match="already belongs"):
            await app.start(other, 1, workflow_id="same")
        assert runs == [1]


async def test_one_hundred_racing_starts_run_the_workflow_once(make_app: AppFactory) -> None:
    app = make_app()
    runs: list[str] = []

    @app.step()
    async def effect() -> None:
        runs.append(app.step_context().idempotency_key)

    @app.workflow()
    async def racy() -> str:
        await effect()
        return "done"

    async with app:
        handles = await asyncio.gather(*(app.start(racy, workflow_id="race") for _ in range(100)))
        results = await asyncio.gather(*(h.result(timeout=10) for h in handles))
        assert set(results) == {"done"}
        assert runs == ["race:1"]
        assert len(await app.list_workflows(name=racy.name)) == 1


async def test_replay_returns_recorded_steps_without_running_them(make_app: AppFactory) -> None:
    executed: list[str] = []
    release = asyncio.Event()

    def define(app_factory: AppFactory) -> tuple[object, object]:
        app = app_factory(executor_id="worker-a")

        @app.step(name="one")
        async def one() -> str:
            executed.append("one")
            return "1"

        @app.step(name="two")
        async def two() -> str:
            executed.append("two")
            await release.wait()
            return "2"

        @app.workflow(name="replayed")
        async def replayed() -> str:
            return await one() + await two()

        return app, replayed

    first, workflow = define(make_app)
    async with first:
        await first.start(workflow, workflow_id="r1")  # type: ignore[arg-type]
        while executed != ["one", "two"]:
            await asyncio.sleep(0.01)
        await first.shutdown(timeout=0)  # "crash" while step two runs: it stays PENDING

    release.set()
    executed.clear()
    second, _ = define(make_app)
    async with second:  # same executor id: recovers r1 at launch
        assert await second.retrieve("r1").result(timeout=10) == "12"
        assert executed == ["two"]
        info = await second.retrieve("r1").status()
        assert info.recovery_attempts == 1


async def test_changed_step_order_is_reported_as_non_determinism(make_app: AppFactory) -> None:
    gate = asyncio.Event()
    first = make_app(executor_id="w")

    @first.step(name="a")
    async def a() -> None:
        await gate.wait()

    @first.workflow(name="flow")
    async def flow() -> None:
        await a()

    async with first:
        await first.start(flow, workflow_id="nd")
        await asyncio.sleep(0.05)
        gate.set()
        await first.retrieve("nd").result()

    second = make_app(executor_id="w")

    @second.step(name="b")
    async def b() -> None:
        return None

    @second.workflow(name="flow")
    async def flow2() -> None:
        await b()

    async with second:
        handle = await second.fork("nd", from_step=2)
        with pytest.raises(NonDeterministicWorkflowError) as info:
            await handle.result(timeout=10)
        assert "step 1 was recorded as 'a' but the code now calls 'b'" in str(info.value)
        assert (await handle.status()).status is WorkflowStatus.ERROR


async def test_child_workflow_is_durable_and_recorded(make_app: AppFactory) -> None:
    app = make_app()
    child_runs: list[int] = []

    @app.workflow(name="child")
    async def child(x: int) -> int:
        child_runs.append(x)
        return x * 10

    @app.workflow(name="parent")
    async def parent(x: int) -> int:
        handle = await app.start(child, x)
        direct = await child(x + 1)
        return await handle.result() + direct

    async with app:
        assert (
            await parent(
                1,
            )
            == 30
        )
        parents = await app.list_workflows(name="parent")
        children = await app.list_workflows(name="child", ascending=True)
        parent_id = parents[0].workflow_id
        assert [c.workflow_id for c in children] == [f"{parent_id}-1", f"{parent_id}-2"]
        assert {c.parent_workflow_id for c in children} == {parent_id}
        steps = await app.list_steps(parent_id)
        assert [s.kind for s in steps] == [StepKind.CHILD, StepKind.CHILD]
        assert steps[0].child_workflow_id == f"{parent_id}-1"
        fork = await app.fork(parent_id, from_step=2)  # step 1 reused: the child is reattached
        assert await fork.result() == 30
        assert sorted(child_runs) == [1, 2, 2]


async def test_bad_input_is_refused_before_anything_is_stored(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow()
    async def takes_int(x: int) -> int:
        return x

    @app.step()
    async def returns_object() -> object:
        return object()

    @app.workflow()
    async def bad_output() -> object:
        return await returns_object()

    async with app:
        with pytest.raises(SerializationError, match="cannot be serialized"):
            await app.start(takes_int, threading.Lock(), workflow_id="unserializable")
        with pytest.raises(InvalidArgumentError, match="missing a required argument"):
            await app.start(takes_int, workflow_id="missing")
        with pytest.raises(WorkflowNotFoundError):
            await app.retrieve("unserializable").status()
        with pytest.raises(NotRegisteredError, match="no workflow named 'nope'"):
            await app.start("nope")
        with pytest.raises(SerializationError):
            await bad_output()
        steps = await app.list_steps(
            (await app.list_workflows(name=bad_output.name))[0].workflow_id
        )
        assert steps[0].status == "ERROR" and steps[0].error_type.endswith("SerializationError")
        with pytest.raises(NotInWorkflowError):
            app.step_context()
        with pytest.raises(ConfigurationError, match="after launch"):

            @app.workflow()
            async def late() -> None:
                return None


async def test_workflow_must_be_async(make_app: AppFactory) -> None:
    app = make_app()
    with pytest.raises(ConfigurationError, match="async def"):

        @app.workflow()
        def not_async() -> None:  # type: ignore[type-var]
            return None


async def test_now_random_and_idempotency_keys_are_stable_across_replays(
    make_app: AppFactory,
) -> None:
    app = make_app()
    seen: list[tuple[str, int]] = []

    @app.step(name="keyed")
    async def keyed() -> str:
        ctx = app.step_context()
        seen.append((ctx.idempotency_key, ctx.attempt))
        return ctx.idempotency_key

    @app.workflow(name="stable")
    async def stable() -> tuple[str, float, str]:
        when = await app.now()
        number = await app.random()
        key = await keyed()
        return when.isoformat(), number, key

    async with app:
        first = await app.start(stable, workflow_id="s1")
        original = await first.result()
        forked = await app.fork("s1", from_step=4)  # replays now/random/keyed, nothing re-run
        assert await forked.result() == original
        assert seen == [("s1:3", 1)]
        assert original[2] == "s1:3"
