"""Operator actions in Python (#18): the audit log, keyset pages and counts, the rollback
plan, bulk actions with a dry run, a cancel that reaches child workflows, schedule triggers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator import (
    Actor,
    InvalidArgumentError,
    Retry,
    WorkflowFailedError,
    WorkflowFilter,
    WorkflowStatus,
    acting_as,
)
from tests.conftest import AppFactory

FAST = Retry(max_attempts=2, base_interval=0.01)


def shop(app: Any, broken: dict[str, bool], gate: asyncio.Event | None = None) -> dict[str, Any]:
    """A saga of three steps (reserve, charge, ship as the pivot) whose undo of ``charge``
    fails while ``broken["refund"]``; it waits on ``gate`` after charging when given."""

    @app.step(name="reserve")
    async def reserve(sku: str) -> dict[str, str]:
        return {"reservation": f"r-{sku}"}

    @reserve.compensation(retry=FAST)
    async def release(result: dict[str, str], sku: str) -> None:
        return None

    @app.step(name="charge")
    async def charge(amount: int) -> dict[str, int]:
        return {"charged": amount}

    @charge.compensation(retry=FAST)
    async def refund(result: dict[str, int], amount: int) -> None:
        if broken["refund"]:
            raise ConnectionError("the payment provider is down")

    @app.step(name="ship", pivot=True)
    async def ship() -> str:
        return "shipped"

    @app.workflow(name="checkout")
    async def checkout(sku: str, amount: int, fail: bool = False, ship_it: bool = False) -> str:
        await reserve(sku)
        await charge(amount)
        if gate is not None:
            await app.recv("go", timeout=60)
        if ship_it:
            await ship()
        if fail:
            raise ValueError("out of stock")
        return "ok"

    return {"checkout": checkout}


async def test_skip_compensation_is_audited_with_who_and_why(make_app: AppFactory) -> None:
    app = make_app()
    broken = {"refund": True}
    checkout = shop(app, broken)["checkout"]
    async with app:
        handle = await app.start(checkout, "book", 25, fail=True, workflow_id="order-1")
        with pytest.raises(WorkflowFailedError):
            await handle.result()
        assert (await handle.status()).status is WorkflowStatus.COMPENSATION_FAILED
        with pytest.raises(InvalidArgumentError, match="reason is required"):
            await app.skip_compensation("order-1", step=2, reason="  ")
        for unstorable in ("refunded\x00", "refunded \ud800"):  # no database text holds them
            with pytest.raises(InvalidArgumentError, match="NUL characters or lone surrogates"):
                await app.skip_compensation("order-1", step=2, reason=unstorable)
        with acting_as(Actor("alice", role="operator", surface="console")):
            skipped = await app.skip_compensation("order-1", step=2, reason="refunded by hand")
        with pytest.raises(WorkflowFailedError, match="COMPENSATED"):
            await skipped.result()
        entries, cursor = await app.list_audit(workflow_id="order-1")
        assert cursor is None
        assert [(e.action, e.actor, e.role, e.surface, e.reason, e.detail) for e in entries] == [
            ("skip_compensation", "alice", "operator", "console", "refunded by hand", {"step": 2})
        ]
        history = await app.list_steps("order-1")
        skip = next(s for s in history if s.compensates_step == 2 and s.output)
        assert skip.output["by"] == "alice"  # the saga's own history says who, too


async def test_rollback_plan_lists_what_would_be_undone_in_order(make_app: AppFactory) -> None:
    app = make_app()
    gate = asyncio.Event()
    checkout = shop(app, {"refund": False}, gate)["checkout"]
    async with app:
        handle = await app.start(checkout, "book", 25, workflow_id="order-2")
        for _ in range(200):
            if len(await app.list_steps("order-2")) >= 2:
                break
            await asyncio.sleep(0.02)
        plan = await app.rollback_plan("order-2")
        assert plan.applies and not plan.past_pivot
        assert [(c.order, c.step_number, c.compensation) for c in plan.compensations] == [
            (1, 2, "charge.compensation"),
            (2, 1, "reserve.compensation"),
        ]
        assert plan.compensations[0].input["result"] == {"charged": 25}
        assert plan.compensations[1].input["result"] == {"reservation": "r-book"}
        await app.send("order-2", "go", topic="go")
        assert await handle.result() == "ok"
        ended = await app.rollback_plan("order-2")
        assert not ended.applies and ended.status is WorkflowStatus.SUCCESS


async def test_keyset_pages_counts_and_id_prefix(make_app: AppFactory) -> None:
    app = make_app()
    checkout = shop(app, {"refund": False})["checkout"]
    async with app:
        for i in range(7):
            await (await app.start(checkout, "pen", i, workflow_id=f"page-{i}")).result()
        await (await app.start(checkout, "pen", 1, workflow_id="other-1")).result()
        seen: list[str] = []
        cursor = None
        while True:
            page = await app.list_workflows_page(
                WorkflowFilter(id_prefix="page-"), cursor=cursor, limit=3
            )
            seen.extend(info.workflow_id for info in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == [f"page-{i}" for i in reversed(range(7))]
        counts = await app.count_workflows(WorkflowFilter(name="checkout"))
        assert counts[WorkflowStatus.SUCCESS] == 8 and counts[WorkflowStatus.ERROR] == 0
        with pytest.raises(InvalidArgumentError, match="cursor"):
            await app.list_workflows_page(cursor="not-a-cursor!")


async def test_bulk_cancel_dry_run_then_act(make_app: AppFactory) -> None:
    app = make_app()
    checkout = shop(app, {"refund": False}, asyncio.Event())["checkout"]
    async with app:
        for i in range(12):
            await app.start(checkout, "mug", i, workflow_id=f"bulk-{i}")
        dry = await app.bulk_cancel(WorkflowFilter(id_prefix="bulk-"), dry_run=True)
        assert dry.dry_run and dry.matched == 12 and not dry.done
        assert {s.status for s in await app.list_workflows(id_prefix="bulk-")} == {
            WorkflowStatus.PENDING
        }
        done = await app.bulk_cancel(
            WorkflowFilter(id_prefix="bulk-"), compensate=True, reason="provider outage", by="bob"
        )
        assert done.matched == 12 and len(done.done) == 12 and not done.failed
        for i in range(12):
            with pytest.raises(WorkflowFailedError):
                await app.retrieve(f"bulk-{i}").result()
        statuses = {s.status for s in await app.list_workflows(id_prefix="bulk-")}
        assert statuses == {WorkflowStatus.COMPENSATED}
        entries, _ = await app.list_audit(action="bulk_cancel")
        assert entries[0].actor == "bob" and entries[0].detail["done"] == 12
        per_saga, _ = await app.list_audit(workflow_id="bulk-3")
        assert [e.action for e in per_saga] == ["cancel"]
        again = await app.bulk_cancel(WorkflowFilter(id_prefix="bulk-"), dry_run=True)
        assert again.matched == 0


async def test_cancel_reaches_child_workflows_unless_told_not_to(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow(name="child")
    async def child() -> str:
        await app.recv("never", timeout=120)
        return "done"

    @app.workflow(name="parent")
    async def parent(me: str) -> str:
        handle = await app.start(child, workflow_id=f"{me}-child")
        return str(await handle.result())

    async with app:
        for name, children in (("p1", True), ("p2", False)):
            await app.start(parent, name, workflow_id=name)
            for _ in range(200):
                if await app.list_workflows(parent_workflow_id=name):
                    break
                await asyncio.sleep(0.02)
            await app.cancel(name, children=children)
        for _ in range(200):
            if (await app.retrieve("p1-child").status()).status is WorkflowStatus.CANCELLED:
                break
            await asyncio.sleep(0.02)
        assert (await app.retrieve("p1-child").status()).status is WorkflowStatus.CANCELLED
        assert (await app.retrieve("p2-child").status()).status is WorkflowStatus.PENDING
        entries, _ = await app.list_audit(workflow_id="p1")
        assert entries[0].detail == {"compensate": False, "children": ["p1-child"]}
        await app.cancel("p2-child")
