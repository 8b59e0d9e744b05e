"""Fencing (migration 0004), on both stores: a workflow's history takes writes only from the run
that owns it now (its ownership epoch) and nothing at all once the workflow has finished."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from orchestrator.errors import StoreBusyError, WorkflowStateError
from orchestrator.store import PostgresStore, Store
from orchestrator.store.base import DequeueRequest
from orchestrator.store.sql import SQLStore
from orchestrator.types import StepKind, WorkflowStatus
from tests.store.test_conformance import created, new_workflow, step

PENDING = WorkflowStatus.PENDING


async def test_each_claim_starts_a_new_epoch(store: Store) -> None:
    record = await created(store, "w")
    assert record.owner_epoch == 0
    (recovered,) = await store.claim_for_recovery("exec-1", None)
    assert recovered.owner_epoch == 1
    await store.transition_workflow("w", WorkflowStatus.ERROR, from_statuses=[PENDING])
    resumed = await store.resume_workflow("w", "exec-2", "v1", from_statuses=[WorkflowStatus.ERROR])
    assert resumed is not None and resumed.owner_epoch == 2

    await created(store, "q", status=WorkflowStatus.ENQUEUED, queue_name="orders")
    request = DequeueRequest(
        queue_name="orders", executor_id="exec-1", app_version="v1", max_count=1
    )
    (dequeued,) = (await store.dequeue(request)).started
    assert dequeued.owner_epoch == 1

    await store.register_worker("dead", "v1", 1, "host", 1)
    await created(store, "orphan", executor_id="dead")
    await asyncio.sleep(0.01)  # the dead worker's 1 ms lease expires
    (taken,) = await store.take_over("alive", "v1", 10)
    assert taken.workflow_id == "orphan" and taken.owner_epoch == 1


async def test_a_stale_epoch_writes_nothing(store: Store) -> None:
    """After a takeover, the former owner's step, final status, move to COMPENSATING,
    message consumption, event, stream value, send and child start are all refused."""
    await created(store, "w")
    await created(store, "other", executor_id="exec-2")
    await store.send_message("w", "t", '"m"', None)
    (claimed,) = await store.claim_for_recovery("exec-1", None)  # epoch 0 -> 1
    stale = 0
    assert claimed.owner_epoch == stale + 1

    assert await store.record_step(step("w", 1, epoch=stale)) is None
    assert await store.finish_after_step(step("w", 1, epoch=stale), "1") is None
    assert not await store.finish_workflow("w", WorkflowStatus.SUCCESS, epoch=stale)
    moved = await store.transition_workflow(
        "w", WorkflowStatus.COMPENSATING, from_statuses=[PENDING], epoch=stale
    )
    assert moved is None
    with pytest.raises(WorkflowStateError):
        await store.recv_message("w", "t", step("w", 1, kind=StepKind.RECV, epoch=stale))
    with pytest.raises(WorkflowStateError):
        await store.set_event("w", "k", '"v"', step("w", 1, kind=StepKind.SET_EVENT, epoch=stale))
    with pytest.raises(WorkflowStateError):
        await store.write_stream(
            "w", "s", '"v"', closed=False, step=step("w", 1, kind=StepKind.STREAM, epoch=stale)
        )
    with pytest.raises(WorkflowStateError):
        await store.send_message("other", "t", '"x"', "k1", step("w", 1, epoch=stale))
    with pytest.raises(WorkflowStateError):
        await store.start_child(
            new_workflow("child", parent_workflow_id="w"),
            step("w", 1, kind=StepKind.CHILD, epoch=stale),
        )

    assert await store.load_steps("w") == []
    assert await store.get_event("w", "k") is None
    assert await store.read_stream("w", "s", 0) == []
    assert await store.get_workflow("child") is None
    record = await store.get_workflow("w")
    assert record is not None and record.status is PENDING
    # The message was not consumed: the owner receives it.
    owner = step("w", 1, kind=StepKind.RECV, epoch=claimed.owner_epoch)
    assert await store.recv_message("w", "t", owner) == '"m"'
    assert await store.recv_message("other", "t", step("other", 1, kind=StepKind.RECV)) is None


async def test_a_finished_workflow_takes_no_record(store: Store) -> None:
    for status in (WorkflowStatus.SUCCESS, WorkflowStatus.CANCELLED, WorkflowStatus.COMPENSATED):
        workflow_id = f"done-{status.value}"
        await created(store, workflow_id)
        await store.send_message(workflow_id, "t", '"m"', None)
        assert await store.finish_workflow(workflow_id, status, epoch=0)
        assert await store.record_step(step(workflow_id, 1)) is None
        with pytest.raises(WorkflowStateError):
            await store.set_event(workflow_id, "k", '"v"', step(workflow_id, 1))
        with pytest.raises(WorkflowStateError):
            await store.recv_message(workflow_id, "t", step(workflow_id, 1, kind=StepKind.RECV))
        assert await store.load_steps(workflow_id) == []
        assert await store.get_event(workflow_id, "k") is None


@pytest.mark.postgres
async def test_a_step_racing_a_final_status_lands_before_it_or_not_at_all(
    postgres_url: str,
) -> None:
    """The fence locks the workflow row: an insert that meets an uncommitted cancel waits for
    it and is then refused, so no step is ever committed after the final status."""
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        await created(store, "w")
        async with await psycopg.AsyncConnection.connect(
            postgres_url, options="-c search_path=orchestrator"
        ) as other:
            await other.execute(
                "UPDATE workflows SET status = 'CANCELLED' WHERE workflow_id = 'w'"
            )  # a transaction left open: the cancel is not committed yet
            insert = asyncio.create_task(store.record_step(step("w", 1)))
            await asyncio.sleep(0.3)
            assert not insert.done()  # waiting for the cancel's row lock
            await other.commit()
        assert await insert is None
        assert await store.load_steps("w") == []
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def holding_oldest_message(
    postgres_url: str, workflow_id: str
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A transaction left open that holds the oldest message sent to ``workflow_id`` (as a
    fenced-off executor's recv of that mailbox does for a moment); rolled back on exit unless
    the caller ends it first."""
    async with await psycopg.AsyncConnection.connect(
        postgres_url, options="-c search_path=orchestrator"
    ) as other:
        await other.execute(
            "SELECT 1 FROM messages WHERE destination_id = %s ORDER BY message_id LIMIT 1"
            " FOR UPDATE",
            (workflow_id,),
        )
        yield other


@pytest.mark.postgres
async def test_a_recv_takes_nothing_while_another_transaction_holds_the_oldest_message(
    postgres_url: str,
) -> None:
    """Another executor's recv of the same mailbox (a fenced-off one) holds the oldest
    message: a recv, alone or in a shared statement, takes nothing and says busy (never the
    newer message first, never a wait on the lock); once it lets go, each in order."""
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        for workflow_id in ("w", *(f"o{i}" for i in range(8))):
            await created(store, workflow_id)
            await store.send_message(workflow_id, "t", '"first"', None)
            await store.send_message(workflow_id, "t", '"second"', None)
        async with holding_oldest_message(postgres_url, "w") as other:
            with pytest.raises(StoreBusyError):  # alone: one statement
                await store.recv_message("w", "t", step("w", 1, kind=StepKind.RECV))
            with pytest.raises(StoreBusyError):  # the plan both dialects share
                await SQLStore.recv_message(store, "w", "t", step("w", 1, kind=StepKind.RECV))
            batcher = store.writes.batcher
            before = (batcher.flushes, batcher.writes)
            answers = await asyncio.gather(
                *(
                    store.recv_message(workflow_id, "t", step(workflow_id, 1, kind=StepKind.RECV))
                    for workflow_id in ("w", *(f"o{i}" for i in range(8)))
                ),
                return_exceptions=True,
            )
            assert batcher.flushes - before[0] < batcher.writes - before[1]  # shared
            assert isinstance(answers[0], StoreBusyError)
            assert answers[1:] == ['"first"'] * 8
            assert await store.load_steps("w") == []
            await other.rollback()
        assert await store.recv_message("w", "t", step("w", 1, kind=StepKind.RECV)) == '"first"'
        second = await SQLStore.recv_message(store, "w", "t", step("w", 2, kind=StepKind.RECV))
        assert second == '"second"'
        assert [s.output for s in await store.load_steps("w")] == ['"first"', '"second"']
    finally:
        await store.close()
