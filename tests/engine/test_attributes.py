"""Workflow attributes (#20): business keys set at start and from inside a workflow (recorded
once: a replay does not write them again), listed and counted by attribute, deleted with the
workflow, validated; and app.start's options kept apart from a workflow's own ``queue``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator import (
    InvalidArgumentError,
    Orchestrator,
    StartOptions,
    StepKind,
    WorkflowFilter,
    WorkflowStatus,
)
from tests.conftest import AppFactory


def flows(app: Orchestrator, gate: asyncio.Event | None = None) -> dict[str, Any]:
    @app.workflow(name="checkout")
    async def checkout(order: str) -> str:
        await app.set_attributes({"order_id": order, "amount": 42})
        if gate is not None:
            await gate.wait()
        await app.set_attributes({"provider": "stripe"})
        return order

    @app.workflow(name="ship")
    async def ship(queue: str, timeout: int = 1) -> str:
        return f"{queue}/{timeout}"

    return {"checkout": checkout, "ship": ship}


async def test_attributes_at_start_and_inside_survive_a_replay(make_app: AppFactory) -> None:
    gate = asyncio.Event()
    first = make_app(executor_id="worker-a")
    checkout = flows(first, gate)["checkout"]
    async with first:
        handle = await first.start(
            checkout, "o-42", workflow_id="c1", attributes={"customer_id": "c-7"}
        )
        assert handle.info is not None and handle.info.attributes == {"customer_id": "c-7"}
        while (await handle.status()).attributes.get("order_id") is None:
            await asyncio.sleep(0.01)
        await first.shutdown(timeout=0)  # "crash" while it waits on the gate

    second = make_app(executor_id="worker-a")
    checkout = flows(second)["checkout"]  # no gate: it goes on at once
    writes: list[Any] = []
    store_write = second.engine.attributes.store.set_attributes

    async def counted(workflow_id: str, attributes: Any, step: Any, *, limit: int) -> None:
        writes.append(dict(attributes))
        await store_write(workflow_id, attributes, step, limit=limit)

    second.engine.attributes.store.set_attributes = counted  # type: ignore[method-assign]
    async with second:  # same executor id: recovers c1 at launch and replays the first set
        assert await second.retrieve("c1").result(timeout=10) == "o-42"
        info = await second.retrieve("c1").status()
        assert info.attributes == {
            "amount": "42",
            "customer_id": "c-7",
            "order_id": "o-42",
            "provider": "stripe",
        }
        assert writes == [{"provider": "stripe"}]  # the recorded set was not repeated
        kinds = [s.kind for s in await second.list_steps("c1")]
        assert kinds.count(StepKind.SET_ATTRIBUTES) == 2


async def test_listing_counting_bulk_and_deleting_by_attribute(make_app: AppFactory) -> None:
    app = make_app()
    checkout = flows(app)["checkout"]
    async with app:
        for n in range(5):
            customer = "c-7" if n % 2 == 0 else "c-8"
            handle = await app.start(
                checkout, f"o-{n}", workflow_id=f"w{n}", attributes={"customer_id": customer}
            )
            await handle.result(timeout=10)
        mine = await app.list_workflows(attributes={"customer_id": "c-7"})
        assert [w.workflow_id for w in mine] == ["w4", "w2", "w0"]
        assert mine[0].attributes["order_id"] == "o-4"
        both = WorkflowFilter(attributes={"customer_id": "c-7", "order_id": "o-2"})
        assert [w.workflow_id for w in await app.list_workflows(attributes=both.attributes)] == [
            "w2"
        ]
        assert (await app.list_workflows(attributes={"amount": 42}))[-1].workflow_id == "w0"

        wanted = WorkflowFilter(attributes={"customer_id": "c-7"})
        page = await app.list_workflows_page(wanted, limit=2)
        assert [w.workflow_id for w in page.items] == ["w4", "w2"]
        assert page.items[1].attributes["provider"] == "stripe"
        rest = await app.list_workflows_page(wanted, cursor=page.next_cursor, limit=2)
        assert [w.workflow_id for w in rest.items] == ["w0"] and rest.next_cursor is None
        assert (await app.count_workflows(wanted))[WorkflowStatus.SUCCESS] == 3
        none = WorkflowFilter(attributes={"customer_id": "c-9"})
        assert sum((await app.count_workflows(none)).values()) == 0

        dry = await app.bulk_delete(wanted, dry_run=True)
        assert dry.matched == 3
        done = await app.bulk_delete(wanted, reason="test")
        assert sorted(done.done) == ["w0", "w2", "w4"]
        assert await app.list_workflows(attributes={"customer_id": "c-7"}) == []
        # The id used again, without attributes: none of the deleted ones are left behind.
        again = await app.start("ship", "box", workflow_id="w0")
        await again.result(timeout=10)
        assert (await again.status()).attributes == {}


@pytest.mark.parametrize(
    ("attributes", "match"),
    [
        ({"Customer": "c"}, "invalid attribute name"),
        ({"9lives": "c"}, "invalid attribute name"),
        ({"a" * 64: "c"}, "invalid attribute name"),
        ({"note": "x" * 257}, "at most 256"),
        ({"flag": True}, "string or a number"),
        ({f"k{n}": "v" for n in range(21)}, "at most 20"),
    ],
)
async def test_invalid_attributes_are_rejected(
    make_app: AppFactory, attributes: dict[str, Any], match: str
) -> None:
    app = make_app()
    checkout = flows(app)["checkout"]
    async with app:
        with pytest.raises(InvalidArgumentError, match=match):
            await app.start(checkout, "o", attributes=attributes)
        with pytest.raises(InvalidArgumentError, match=match):
            await app.list_workflows(attributes=attributes)
        assert await app.list_workflows() == []


async def test_set_attributes_beyond_the_limit_fails_the_call(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow(name="greedy")
    async def greedy() -> str:
        await app.set_attributes({f"a{n}": n for n in range(15)})
        try:
            await app.set_attributes({f"b{n}": n for n in range(6)})
        except InvalidArgumentError as error:
            return str(error)
        return "stored"

    async with app:
        handle = await app.start(greedy, workflow_id="g")
        assert "at most 20" in await handle.result(timeout=10)
        assert len((await handle.status()).attributes) == 15


async def test_a_workflow_parameter_named_like_an_option(make_app: AppFactory) -> None:
    app = make_app()
    ship = flows(app)["ship"]
    async with app:
        with pytest.raises(InvalidArgumentError, match=r"'queue'.*start_with"):
            await app.start(ship, queue="fragile")
        with pytest.raises(InvalidArgumentError, match=r"'queue', 'timeout'"):
            await app.start(ship, queue="fragile", timeout=5)
        # Not passed by name: no ambiguity.
        assert await (await app.start(ship, "fragile")).result(timeout=10) == "fragile/1"
        handle = await app.start_with(
            ship, (), {"queue": "fragile", "timeout": 3}, StartOptions(workflow_id="s1")
        )
        assert await handle.result(timeout=10) == "fragile/3"
