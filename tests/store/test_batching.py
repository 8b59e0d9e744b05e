"""Group commit on PostgreSQL: concurrent checkpoints share statements; each waiter gets its
own answer, and only after its write committed."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from orchestrator.errors import (
    DuplicateWorkflowError,
    StoreBusyError,
    WorkflowFinishedError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from orchestrator.store import PostgresStore
from orchestrator.store.base import NewWorkflow, StepRecord, WorkflowQuery
from orchestrator.types import StepKind, WorkflowStatus

pytestmark = pytest.mark.postgres


def new(workflow_id: str) -> NewWorkflow:
    return NewWorkflow(workflow_id, "w", WorkflowStatus.PENDING, "{}", "x", "v")


async def test_concurrent_writes_share_flushes_and_get_their_own_answers(
    postgres_url: str,
) -> None:
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        for i in range(200):
            await store.create_workflow(new(f"w{i}"))
        await store.finish_workflow("w0", WorkflowStatus.SUCCESS, output="1")
        batcher = store.writes.batcher
        before = (batcher.flushes, batcher.writes)
        steps = [
            StepRecord(f"w{i}", 1, "s", StepKind.STEP, output=str(i), epoch=0) for i in range(200)
        ]
        results = await asyncio.gather(
            *(store.record_step(s) for s in steps),
            store.record_step(StepRecord("missing", 1, "s", StepKind.STEP, epoch=0)),
            store.record_step(StepRecord("w5", 1, "again", StepKind.STEP, epoch=0)),
            return_exceptions=True,
        )
        assert results[0] is None  # w0 has finished: it takes no record (fencing)
        assert results[1:200] == [WorkflowStatus.PENDING] * 199
        assert isinstance(results[200], WorkflowNotFoundError)  # fails alone
        assert results[201] is None  # the number was taken: nothing written
        flushes, writes = batcher.flushes - before[0], batcher.writes - before[1]
        assert writes == 202 and flushes < writes / 4  # they really shared statements
        for i in (1, 77, 199):
            [recorded] = await store.load_steps(f"w{i}")
            assert recorded.output == str(i)

        finished = await asyncio.gather(
            *(
                store.finish_workflow(f"w{i}", WorkflowStatus.SUCCESS, output="2")
                for i in range(200)
            )
        )
        assert finished == [False] + [True] * 199  # w0 had finished already
    finally:
        await store.close()


async def test_a_burst_of_checkpoints_is_shared_by_the_two_writers_each_workflow_in_order(
    postgres_url: str,
) -> None:
    """A burst of final writes (a wake storm's) finding both writers idle goes out as two
    statements side by side, not one; one workflow's two writes stay in one of them, in
    order, so the first one wins as it does unsplit."""
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        for i in range(100):
            await store.create_workflow(new(f"f{i}"))
        batcher = store.writes.batcher
        before = (batcher.flushes, batcher.writes)

        def last(i: int, output: str) -> StepRecord:
            return StepRecord(f"f{i}", 1, "recv", StepKind.RECV, output=output, epoch=0)

        answers = await asyncio.gather(
            store.finish_after_step(last(0, '"alone"'), "0"),  # idle: flushed by its caller
            *(store.finish_after_step(last(i, f'"{i}"'), str(i)) for i in range(1, 100)),
            store.finish_after_step(last(3, '"again"'), "again"),  # f3 twice: one flush
        )
        assert answers[:100] == [True] * 100
        assert answers[100] in (None, False)  # refused: f3 finished with its first write
        flushes, writes = batcher.flushes - before[0], batcher.writes - before[1]
        assert (flushes, writes) == (3, 101)  # the caller's own, and the burst in two halves
        for i in (1, 3, 50, 99):
            record = await store.get_workflow(f"f{i}")
            assert record is not None and record.status is WorkflowStatus.SUCCESS
            assert record.output == str(i)
            assert [s.output for s in await store.load_steps(f"f{i}")] == [f'"{i}"']
    finally:
        await store.close()


async def test_a_returned_answer_means_the_write_committed(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, reconnect_timeout=10)
    await store.open()
    try:
        for i in range(100):
            await store.create_workflow(new(f"c{i}"))

        async def kill_connections() -> None:
            await asyncio.sleep(0.005)
            async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as c:
                await c.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )

        writes = [
            store.record_step(StepRecord(f"c{i}", n, "s", StepKind.STEP, output="1", epoch=0))
            for i in range(100)
            for n in (1, 2, 3)
        ]
        results = await asyncio.gather(*writes, kill_connections(), return_exceptions=True)
        answered = [
            (i, n)
            for (i, n), result in zip(
                [(i, n) for i in range(100) for n in (1, 2, 3)], results, strict=False
            )
            if result is WorkflowStatus.PENDING or result is None
        ]
        assert answered  # most writes got through the reconnect
        for i, n in answered:  # a waiter that was answered finds its row committed
            numbers = {s.step_number for s in await store.load_steps(f"c{i}")}
            assert n in numbers
    finally:
        await store.close()


async def test_concurrent_creates_share_flushes_and_keep_id_and_dedup_rules(
    postgres_url: str,
) -> None:
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        await store.create_workflow(new("old"))
        batcher = store.writes.batcher
        before = (batcher.flushes, batcher.writes)
        queued = [
            NewWorkflow(
                f"q{i}", "w", WorkflowStatus.ENQUEUED, "{}", None, "v", queue_name="q", dedup_id="d"
            )
            for i in range(2)
        ]
        creates = [
            *(new(f"c{i}") for i in range(150)),
            new("old"),  # exists already
            NewWorkflow("c7", "other", WorkflowStatus.PENDING, "[1]", "x", "v"),  # same id in batch
            *queued,  # the same active dedup id: one of them is a DuplicateWorkflowError
        ]
        results = await asyncio.gather(
            *(store.create_workflow(c) for c in creates), return_exceptions=True
        )
        for i, (record, created) in enumerate(results[:150]):  # type: ignore[misc]
            assert created and record.workflow_id == f"c{i}" and record.created_at > 0
        record, created = results[150]  # type: ignore[misc]
        assert not created and record.workflow_id == "old"
        record, created = results[151]  # type: ignore[misc]
        assert not created and (record.name, record.input) == ("w", "{}")  # the first one won
        dedup = results[152:]
        assert sum(isinstance(r, DuplicateWorkflowError) for r in dedup) == 1
        assert sum(isinstance(r, tuple) and r[1] for r in dedup) == 1
        flushes, writes = batcher.flushes - before[0], batcher.writes - before[1]
        assert writes == len(creates) and flushes < writes / 4
        assert len(await store.list_workflows(WorkflowQuery(limit=1000))) == 152
    finally:
        await store.close()


async def test_concurrent_sends_share_flushes_and_keep_their_answers(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        for i in range(100):
            await store.create_workflow(new(f"r{i}"))
        await store.finish_workflow("r99", WorkflowStatus.SUCCESS, output="1")
        assert await store.send_message("r0", "t", '"early"', "key-early")
        batcher = store.writes.batcher
        before = (batcher.flushes, batcher.writes)
        results = await asyncio.gather(
            *(store.send_message(f"r{i}", "t", str(i), None) for i in range(99)),
            *(store.send_message("r1", "t", '"k"', "key-1") for _ in range(3)),  # one is sent
            store.send_message("r0", "t", '"again"', "key-early"),  # a redelivery
            store.send_message("missing", "t", "1", None),
            store.send_message("r99", "t", "1", "key-x"),
            return_exceptions=True,
        )
        assert results[:99] == [True] * 99
        assert sorted(results[99:102]) == [False, False, True]  # type: ignore[type-var]
        assert results[102] is False
        assert isinstance(results[103], WorkflowNotFoundError)
        assert isinstance(results[104], WorkflowFinishedError)
        flushes, writes = batcher.flushes - before[0], batcher.writes - before[1]
        assert writes == 105 and flushes < writes / 4
        step = StepRecord("r1", 1, "recv", StepKind.RECV, epoch=0)
        assert await store.recv_message("r1", "t", step) == "1"  # sends keep their order
        step = StepRecord("r1", 2, "recv", StepKind.RECV, epoch=0)
        assert await store.recv_message("r1", "t", step) == '"k"'
        step = StepRecord("r1", 3, "recv", StepKind.RECV, epoch=0)
        assert await store.recv_message("r1", "t", step) is None  # the key was sent once
    finally:
        await store.close()


async def test_concurrent_receivers_share_flushes_and_consume_each_message_once(
    postgres_url: str,
) -> None:
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        for i in range(100):
            await store.create_workflow(new(f"m{i}"))
            if i < 90:  # m90..m99 have nothing waiting
                await store.send_message(f"m{i}", "t", str(i), None)
        await store.send_message("m0", "t", "second", None)
        await store.record_step(StepRecord("m5", 1, "taken", StepKind.STEP, epoch=0))
        batcher = store.writes.batcher
        before = (batcher.flushes, batcher.writes)
        receivers = [
            *(
                store.recv_message(
                    f"m{i}", "t", StepRecord(f"m{i}", 1, "recv", StepKind.RECV, epoch=0)
                )
                for i in range(100)
            ),
            # the same mailbox twice at once (as after a lost lease): never one message twice
            store.recv_message("m0", "t", StepRecord("m0", 2, "recv", StepKind.RECV, epoch=0)),
        ]
        results = await asyncio.gather(*receivers, return_exceptions=True)
        assert isinstance(results[5], WorkflowStateError)  # number taken: nothing consumed
        assert [r for i, r in enumerate(results[:90]) if i != 5] == [
            str(i) for i in range(90) if i != 5
        ]
        assert results[90:100] == [None] * 10
        flushes, writes = batcher.flushes - before[0], batcher.writes - before[1]
        assert writes == 101 and flushes < writes / 4
        if isinstance(results[100], StoreBusyError):  # its flush met the other's held message
            second = StepRecord("m0", 2, "recv", StepKind.RECV, epoch=0)
            results[100] = await store.recv_message("m0", "t", second)
        assert sorted([results[0], results[100]]) == ["0", "second"]  # type: ignore[type-var]
        again = StepRecord("m5", 2, "recv", StepKind.RECV, epoch=0)
        assert await store.recv_message("m5", "t", again) == "5"  # still there after the refusal
        for i in (1, 42, 89):
            steps = await store.load_steps(f"m{i}")
            assert [(s.kind, s.output) for s in steps] == [(StepKind.RECV, str(i))]
            later = StepRecord(f"m{i}", 2, "recv", StepKind.RECV, epoch=0)
            assert await store.recv_message(f"m{i}", "t", later) is None  # consumed once
    finally:
        await store.close()
