"""Rollbacks resumed from their records, and runs that lost their workflow, on both stores
(issue #15): an operator's retry of a rollback that followed a durable sleep or a child
workflow, and a worker whose lease was registered afresh after its workflow was taken over."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator import (
    NonRetryableError,
    WorkflowFailedError,
    WorkflowStatus,
)
from tests.conftest import AppFactory


class OutOfStock(NonRetryableError):
    pass


@pytest.mark.parametrize("before_failure", ["sleep", "child"])
async def test_retry_compensation_after_a_sleep_or_a_child_resumes_the_rollback(
    make_app: AppFactory, before_failure: str
) -> None:
    """The first compensation fails (COMPENSATION_FAILED); retried, the rollback resumes at the
    step numbers it had, though a sleep or a child workflow came before the failure."""
    app = make_app()
    undone: list[str] = []
    refund_down = True

    @app.step(name="book")
    async def book() -> str:
        return "b-1"

    @book.compensation
    async def release(booking: str) -> None:
        undone.append(booking)

    @app.step(name="charge")
    async def charge() -> str:
        return "ch-1"

    @charge.compensation
    async def refund(charge_id: str) -> None:
        if refund_down:
            raise NonRetryableError("the refund API is down")
        undone.append(charge_id)

    @app.workflow(name="noop")
    async def noop() -> int:
        return 1

    @app.step(name="fail")
    async def fail() -> None:
        raise OutOfStock("out of stock")

    @app.workflow(name="checkout")
    async def checkout() -> None:
        await book()
        await charge()
        if before_failure == "sleep":
            await app.sleep(0.01)
        else:
            await (await app.start(noop)).result()
        await fail()

    async with app:
        with pytest.raises(WorkflowFailedError, match="COMPENSATION_FAILED"):
            await (await app.start(checkout, workflow_id="c")).result(timeout=10)
        assert undone == []
        refund_down = False
        retried = await app.retry_compensation("c")
        with pytest.raises(WorkflowFailedError) as failed:
            await retried.result(timeout=10)
        assert failed.value.status == "COMPENSATED"
        assert failed.value.error_type.endswith("OutOfStock")
        assert undone == ["ch-1", "b-1"]
        steps = [(s.kind.value, s.name, s.status) for s in await app.list_steps("c")]
        assert steps[-2:] == [
            ("compensation", "charge.compensation", "SUCCESS"),
            ("compensation", "book.compensation", "SUCCESS"),
        ]


async def test_a_worker_whose_lease_was_registered_afresh_checks_before_its_next_step(
    make_app: AppFactory,
) -> None:
    """Paused past its lease, the worker's workflow was taken over and rolled back by another
    worker. On waking its heartbeat registers a fresh lease; even if nothing told the run it
    lost the workflow, the run checks before its next checkpoint and step: it records nothing
    into the finished history and starts no further step."""
    app = make_app()
    entered, release = asyncio.Event(), asyncio.Event()
    effects: list[str] = []

    @app.step(name="hold")
    async def hold() -> str:
        entered.set()
        await release.wait()
        effects.append("hold")
        return "held"

    @app.step(name="charge")
    async def charge(x: str) -> str:
        effects.append("charge")
        return "ch-1"

    @app.workflow(name="pay")
    async def pay() -> str:
        return await charge(await hold())

    async with app:
        handle = await app.start(pay, workflow_id="p")
        await entered.wait()
        lease = app.engine.lease
        assert lease is not None
        lease.lost = lambda workflow_id: None  # nothing tells the run (the worst case)
        # The pause: the lease lapsed, another worker took the workflow over and ended it.
        lease.valid_until = 0.0
        await app.store.release_worker(app.engine.executor_id)
        (taken,) = await app.store.take_over("other", "test", 10)
        assert await app.store.finish_workflow(
            "p", WorkflowStatus.COMPENSATED, error='{"type": "X"}', epoch=taken.owner_epoch
        )
        await lease.renew()  # the heartbeat on waking: a fresh lease, a new generation
        assert lease.valid_until > 0
        release.set()
        for _ in range(500):  # the run stops
            if "p" not in app.engine.runs:
                break
            await asyncio.sleep(0.01)
        assert "p" not in app.engine.runs
        await asyncio.sleep(0.2)  # time for a misbehaving run to start charge
        assert effects == ["hold"]  # the step in flight finished; charge never started
        assert await app.list_steps("p") == []  # and nothing was recorded after the end
        assert (await handle.status()).status is WorkflowStatus.COMPENSATED


async def test_a_cancel_with_rollback_of_a_requeued_saga_undoes_what_it_did(
    make_app: AppFactory,
) -> None:
    """A queued saga ran two compensable steps on a worker that then died; the takeover put it
    back on its queue (ENQUEUED, its history kept). A cancel with rollback arriving now must
    not just mark it CANCELLED (found by the chaos run: the steps stayed done): a worker takes
    the rollback over and undoes both."""
    undone: list[str] = []

    def build(executor_id: str, *, dequeue: bool = True) -> tuple[Any, Any]:
        app = make_app(executor_id=executor_id, lease_seconds=30)
        app.queue("orders", dequeue=dequeue)

        @app.step(name="book")
        async def book() -> str:
            return "b-1"

        @book.compensation
        async def release(booking: str) -> None:
            undone.append(booking)

        @app.step(name="charge")
        async def charge() -> str:
            return "ch-1"

        @charge.compensation
        async def refund(charged: str) -> None:
            undone.append(charged)

        @app.workflow(name="checkout")
        async def checkout() -> None:
            await book()
            await charge()
            await app.recv("payment", timeout=3600)

        return app, checkout

    first, checkout = build("first")
    async with first:
        await first.start(checkout, workflow_id="o", queue="orders")
        while len(await first.list_steps("o")) < 3:  # book, charge, the recv's deadline
            await asyncio.sleep(0.01)
    # "first" is gone (its lease released); the next process's takeover, at its launch, puts
    # the saga back on its queue (this one does not dequeue).
    client, _ = build("client", dequeue=False)
    async with client:
        requeued = await client.retrieve("o").status()
        assert requeued.status is WorkflowStatus.ENQUEUED and requeued.executor_id is None
        await client.cancel("o", compensate=True)
        info = await client.retrieve("o").status()
        assert info.status is WorkflowStatus.COMPENSATING, info
    worker, _ = build("worker")
    async with worker:  # its launch takes the orphaned rollback over
        with pytest.raises(WorkflowFailedError) as failed:
            await worker.retrieve("o").result(timeout=10)
        assert failed.value.status == "COMPENSATED"
    assert undone == ["ch-1", "b-1"]
