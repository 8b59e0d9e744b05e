"""The Store conformance suite: every protocol method, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from orchestrator.errors import (
    DuplicateWorkflowError,
    InvalidArgumentError,
    StoreBusyError,
    WorkflowConflictError,
    WorkflowFinishedError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from orchestrator.store import (
    NOTIFY_EVENT,
    NOTIFY_MESSAGE,
    NOTIFY_STREAM,
    NOTIFY_WORKFLOW,
    SEPARATOR,
    NewWorkflow,
    StepRecord,
    Store,
    WorkflowQuery,
)
from orchestrator.store.base import NOTIFY_QUEUE, DequeueRequest
from orchestrator.types import StepKind, WorkflowStatus

PENDING = WorkflowStatus.PENDING
ENQUEUED = WorkflowStatus.ENQUEUED


def new_workflow(workflow_id: str, **changes: Any) -> NewWorkflow:
    values: dict[str, Any] = {
        "workflow_id": workflow_id,
        "name": "checkout",
        "status": PENDING,
        "input": '{"args": [], "kwargs": {}}',
        "executor_id": "exec-1",
        "app_version": "v1",
    }
    values.update(changes)
    return NewWorkflow(**values)


def step(workflow_id: str, number: int, **changes: Any) -> StepRecord:
    values: dict[str, Any] = {
        "workflow_id": workflow_id,
        "step_number": number,
        "name": f"step{number}",
        "kind": StepKind.STEP,
        "output": str(number),
        "epoch": 0,  # a new workflow's first ownership epoch
    }
    values.update(changes)
    return StepRecord(**values)


async def created(store: Store, workflow_id: str, **changes: Any) -> Any:
    record, was_created = await store.create_workflow(new_workflow(workflow_id, **changes))
    assert was_created
    return record


# -- workflows ------------------------------------------------------------------------------


async def test_migrations_applied_and_clock(store: Store) -> None:
    state = await store.migration_state()
    assert state.applied == state.available and "0001_initial" in state.available
    assert state.pending == ()
    assert abs(await store.now_ms() - time.time() * 1000) < 5_000


async def test_create_workflow_is_idempotent(store: Store) -> None:
    record, was_created = await store.create_workflow(
        new_workflow("w", timeout_ms=1_000, trace_context="00-abc-def-01", priority=3)
    )
    assert was_created
    assert record.status is PENDING and record.input == '{"args": [], "kwargs": {}}'
    assert record.created_at == record.updated_at == record.started_at
    assert record.deadline_ms == record.created_at + 1_000
    assert (record.trace_context, record.priority, record.recovery_attempts) == (
        "00-abc-def-01",
        3,
        0,
    )
    again, was_created = await store.create_workflow(new_workflow("w", input='"other"'))
    assert not was_created and again == record
    assert await store.get_workflow("w") == record
    assert await store.get_workflow("missing") is None


async def test_claim_workflow_takes_an_unclaimed_pending_workflow_once(store: Store) -> None:
    await store.create_workflow(new_workflow("free", executor_id=None))
    await store.create_workflow(new_workflow("owned"))
    assert await store.claim_workflow("free", "exec-2", "v2") is None  # another version's
    claimed = await store.claim_workflow("free", "exec-2", "v1")
    assert claimed is not None and claimed.executor_id == "exec-2"
    assert (claimed.owner_epoch, claimed.recovery_attempts) == (1, 0)
    assert await store.claim_workflow("free", "exec-3", "v1") is None  # taken
    assert await store.claim_workflow("owned", "exec-3", None) is None
    assert await store.claim_workflow("missing", "exec-3", None) is None


async def test_enqueued_workflow_waits(store: Store) -> None:
    record = await created(store, "q", status=ENQUEUED, queue_name="orders", timeout_ms=500)
    assert record.started_at is None and record.deadline_ms is None
    delayed = await created(store, "d", status=ENQUEUED, queue_name="orders", delay_ms=10_000)
    assert delayed.not_before_ms == delayed.created_at + 10_000


async def test_get_workflows_reads_those_that_exist(store: Store) -> None:
    await created(store, "a")
    await created(store, "b", status=ENQUEUED, queue_name="q")
    records = await store.get_workflows(["b", "missing", "a"])
    assert sorted((r.workflow_id, r.status) for r in records) == [("a", PENDING), ("b", ENQUEUED)]
    assert await store.get_workflows([]) == []


async def test_concurrent_create_has_one_winner(store: Store) -> None:
    answers = await asyncio.gather(
        *(store.create_workflow(new_workflow("same", input=str(i))) for i in range(50))
    )
    assert sum(was_created for _, was_created in answers) == 1
    assert len({record for record, _ in answers}) == 1


async def test_dedup_id_is_unique_while_active(store: Store) -> None:
    await created(store, "a", status=ENQUEUED, queue_name="q", dedup_id="order-1")
    with pytest.raises(DuplicateWorkflowError, match="'a'"):
        await store.create_workflow(
            new_workflow("b", status=ENQUEUED, queue_name="q", dedup_id="order-1")
        )
    assert await store.get_workflow("b") is None
    await created(store, "c", status=ENQUEUED, queue_name="other", dedup_id="order-1")
    await store.transition_workflow("a", WorkflowStatus.CANCELLED, from_statuses=[ENQUEUED])
    await created(store, "b", status=ENQUEUED, queue_name="q", dedup_id="order-1")


async def test_finish_only_while_running(store: Store) -> None:
    await created(store, "w")
    assert await store.finish_workflow("w", WorkflowStatus.SUCCESS, output="42")
    record = await store.get_workflow("w")
    assert record is not None
    assert (record.status, record.output, record.error) == (WorkflowStatus.SUCCESS, "42", None)
    assert record.finished_at is not None
    assert not await store.finish_workflow("w", WorkflowStatus.ERROR, error="boom")
    assert await store.get_workflow("w") == record

    await created(store, "queued", status=ENQUEUED, queue_name="q")
    assert not await store.finish_workflow("queued", WorkflowStatus.SUCCESS)
    await created(store, "saga")
    await store.transition_workflow("saga", WorkflowStatus.COMPENSATING, from_statuses=[PENDING])
    assert await store.finish_workflow("saga", WorkflowStatus.COMPENSATED, error="e")
    assert not await store.finish_workflow("missing", WorkflowStatus.SUCCESS)
    with pytest.raises(InvalidArgumentError):
        await store.finish_workflow("saga", WorkflowStatus.PENDING)


async def test_finish_after_step_writes_both_or_says_why_not(store: Store) -> None:
    await created(store, "w")
    last = step("w", 3, compensation="undo", compensation_input='{"result": 1}', finished_at=5)
    assert await store.finish_after_step(last, "42") is True
    record = await store.get_workflow("w")
    assert record is not None and (record.status, record.output) == (WorkflowStatus.SUCCESS, "42")
    assert plain(await store.load_steps("w")) == [last]

    # The number is taken: nothing at all is written.
    await created(store, "taken")
    await store.record_step(step("taken", 1, output="first"))
    assert await store.finish_after_step(step("taken", 1, output="second"), "42") is None
    taken = await store.get_workflow("taken")
    assert taken is not None and taken.status is PENDING
    assert [s.output for s in await store.load_steps("taken")] == ["first"]

    # Rolling back meanwhile (a cancel with rollback): the step is kept (it will be
    # compensated), the status left as it is.
    await created(store, "moved")
    await store.transition_workflow("moved", WorkflowStatus.COMPENSATING, from_statuses=[PENDING])
    assert await store.finish_after_step(step("moved", 1), "42") is False
    moved = await store.get_workflow("moved")
    assert moved is not None and moved.status is WorkflowStatus.COMPENSATING
    assert len(await store.load_steps("moved")) == 1

    # Cancelled meanwhile: a finished workflow takes no record at all.
    await created(store, "ended")
    await store.transition_workflow("ended", WorkflowStatus.CANCELLED, from_statuses=[PENDING])
    assert await store.finish_after_step(step("ended", 1), "42") is None
    ended = await store.get_workflow("ended")
    assert ended is not None and ended.status is WorkflowStatus.CANCELLED
    assert await store.load_steps("ended") == []


async def test_finish_after_a_handed_recv_never_passes_a_waiting_message(store: Store) -> None:
    """A recv's step for a message handed over in the process (recv_topic): refused, nothing
    written, while any message waits unconsumed on that topic; other topics do not count.
    Alone and in a shared statement (PostgreSQL's group commit) alike."""
    for name in ("clear", "other-topic", "blocked"):
        await created(store, name)
    await store.send_message("other-topic", "b", '"elsewhere"', None)
    await store.send_message("blocked", "a", '"older"', None)
    for concurrent in (False, True):
        suffix = "-batched" if concurrent else ""
        if concurrent:
            for name in ("clear", "other-topic", "blocked"):
                await created(store, name + suffix)
            await store.send_message("other-topic" + suffix, "b", '"elsewhere"', None)
            await store.send_message("blocked" + suffix, "a", '"older"', None)
        recvs = [
            step(name + suffix, 1, name="recv", kind=StepKind.RECV, output='"handed"')
            for name in ("clear", "other-topic", "blocked")
        ]
        finishes = [store.finish_after_step(s, '"done"', recv_topic="a") for s in recvs]
        if concurrent:
            answers = list(await asyncio.gather(*finishes))
        else:
            answers = [await finish for finish in finishes]
        assert answers == [True, True, None]
        blocked = await store.get_workflow("blocked" + suffix)
        assert blocked is not None and blocked.status is PENDING
        assert await store.load_steps("blocked" + suffix) == []
        clear = await store.get_workflow("clear" + suffix)
        assert clear is not None and clear.status is WorkflowStatus.SUCCESS
        assert [s.output for s in await store.load_steps("clear" + suffix)] == ['"handed"']


async def test_concurrent_finish_after_step_answers_each(store: Store) -> None:
    """Many at once share a flush on PostgreSQL (one statement); every answer is its own."""
    for i in range(20):
        await created(store, f"w{i}")
    await store.record_step(step("w0", 1))  # w0's number is taken
    await store.transition_workflow("w1", WorkflowStatus.COMPENSATING, from_statuses=[PENDING])
    answers = await asyncio.gather(
        *(store.finish_after_step(step(f"w{i}", 1), str(i)) for i in range(20)),
        store.finish_after_step(step("w2", 2), "again"),  # a second finish of one workflow
    )
    assert answers[0] is None and answers[1] is False and answers[2] is True
    assert all(answer is True for answer in answers[3:20])
    assert answers[20] in (None, False)  # refused: w2 finished once, with its first output
    for i in range(2, 20):
        record = await store.get_workflow(f"w{i}")
        assert record is not None and record.output == str(i)


async def test_transition_checks_from_statuses(store: Store) -> None:
    await created(store, "q", status=ENQUEUED, queue_name="q", timeout_ms=100)
    assert (
        await store.transition_workflow("q", WorkflowStatus.SUCCESS, from_statuses=[PENDING])
        is None
    )
    started = await store.transition_workflow("q", PENDING, from_statuses=[ENQUEUED])
    assert started is not None and started.status is PENDING
    assert started.started_at is not None and started.deadline_ms == started.started_at + 100
    assert started.finished_at is None

    cancelled = await store.transition_workflow(
        "q", WorkflowStatus.CANCELLED, from_statuses=[PENDING, ENQUEUED], error="by user"
    )
    assert cancelled is not None
    assert (cancelled.status, cancelled.error) == (WorkflowStatus.CANCELLED, "by user")
    assert cancelled.finished_at is not None and cancelled.updated_at >= started.updated_at
    assert await store.get_workflow("q") == cancelled
    assert await store.transition_workflow("missing", PENDING, from_statuses=[ENQUEUED]) is None


async def test_resume_resets_the_run(store: Store) -> None:
    await created(store, "w", timeout_ms=60_000)
    await store.claim_for_recovery("exec-1", None)
    assert await store.finish_workflow("w", WorkflowStatus.ERROR, error="boom")
    assert await store.resume_workflow("w", "exec-2", "v2", from_statuses=[PENDING]) is None

    resumed = await store.resume_workflow(
        "w", "exec-2", "v2", from_statuses=[WorkflowStatus.ERROR, WorkflowStatus.CANCELLED]
    )
    assert resumed is not None
    assert resumed.status is PENDING
    assert (resumed.executor_id, resumed.app_version) == ("exec-2", "v2")
    assert (resumed.output, resumed.error, resumed.finished_at) == (None, None, None)
    assert resumed.recovery_attempts == 0
    assert resumed.deadline_ms == resumed.updated_at + 60_000


async def test_claim_for_recovery(store: Store) -> None:
    await created(store, "a")
    await created(store, "b")
    await store.transition_workflow("b", WorkflowStatus.COMPENSATING, from_statuses=[PENDING])
    await created(store, "other-version", app_version="v2")
    await created(store, "other-executor", executor_id="exec-2")
    await created(store, "done")
    await store.finish_workflow("done", WorkflowStatus.SUCCESS)
    await created(store, "queued", status=ENQUEUED, queue_name="q")

    claimed = await store.claim_for_recovery("exec-1", "v1")
    assert [(r.workflow_id, r.recovery_attempts) for r in claimed] == [("a", 1), ("b", 1)]
    claimed = await store.claim_for_recovery("exec-1", None)
    assert sorted((r.workflow_id, r.recovery_attempts) for r in claimed) == [
        ("a", 2),
        ("b", 2),
        ("other-version", 1),
    ]
    assert await store.claim_for_recovery("nobody", None) == []
    other = await store.get_workflow("other-executor")
    assert other is not None and other.recovery_attempts == 0


# -- steps ----------------------------------------------------------------------------------


def plain(steps: list[StepRecord]) -> list[StepRecord]:
    """Steps without their store-assigned completion order."""
    return [dataclasses.replace(s, seq=None) for s in steps]


async def test_record_step_once(store: Store) -> None:
    await created(store, "w")
    full = step(
        "w",
        0,
        error='{"type": "ValueError"}',
        attempts=3,
        child_workflow_id="child",
        compensation="refund",
        compensation_input='{"amount": 5}',
        started_at=1_000,
        finished_at=2_000,
    )
    assert await store.record_step(full) is PENDING
    assert await store.record_step(dataclasses.replace(full, output="other")) is None
    assert plain(await store.load_steps("w")) == [full]

    await store.transition_workflow("w", WorkflowStatus.COMPENSATING, from_statuses=[PENDING])
    compensation = step("w", 1, kind=StepKind.COMPENSATION, compensates_step=0)
    assert await store.record_step(compensation) is WorkflowStatus.COMPENSATING
    recorded = (await store.load_steps("w"))[1]
    assert recorded.compensates_step == 0 and recorded.kind is StepKind.COMPENSATION
    assert recorded.finished_at is not None and recorded.started_at is None

    # A finished workflow takes no record at all (fencing, migration 0004).
    await store.transition_workflow(
        "w", WorkflowStatus.CANCELLED, from_statuses=[WorkflowStatus.COMPENSATING]
    )
    assert await store.record_step(step("w", 2)) is None
    assert len(await store.load_steps("w")) == 2
    with pytest.raises(WorkflowNotFoundError):
        await store.record_step(step("missing", 0))


async def test_load_steps_in_order(store: Store) -> None:
    await created(store, "w")
    for number in (3, 1, 0, 2):
        await store.record_step(step("w", number))
    steps = await store.load_steps("w")
    assert [s.step_number for s in steps] == [0, 1, 2, 3]
    completion = [s.step_number for s in sorted(steps, key=lambda s: s.seq or 0)]
    assert completion == [3, 1, 0, 2]
    assert await store.load_steps("missing") == []


async def test_start_child_is_atomic(store: Store) -> None:
    await created(store, "parent")
    child = new_workflow("child", parent_workflow_id="parent", name="ship")
    parent_step = step("parent", 0, kind=StepKind.CHILD, child_workflow_id="child", output=None)
    record, was_created = await store.start_child(child, parent_step)
    assert was_created and record.parent_workflow_id == "parent"
    recorded = await store.load_steps("parent")
    assert plain(recorded) == [
        dataclasses.replace(parent_step, finished_at=recorded[0].finished_at)
    ]
    with pytest.raises(WorkflowStateError):  # the parent's step is taken: nothing written
        await store.start_child(new_workflow("child3", parent_workflow_id="parent"), parent_step)
    assert await store.get_workflow("child3") is None
    assert len(await store.load_steps("parent")) == 1

    await created(store, "holder", status=ENQUEUED, queue_name="q", dedup_id="d")
    duplicate = new_workflow("child2", status=ENQUEUED, queue_name="q", dedup_id="d")
    with pytest.raises(DuplicateWorkflowError):
        await store.start_child(duplicate, step("parent", 1, kind=StepKind.CHILD))
    assert len(await store.load_steps("parent")) == 1


async def test_fork_copies_steps_below_n(store: Store) -> None:
    await created(store, "source")
    for number in range(5):
        await store.record_step(step("source", number))
    fork = await store.fork_workflow(new_workflow("fork", executor_id="exec-9"), "source", 3)
    assert fork.workflow_id == "fork" and fork.executor_id == "exec-9"
    copied = await store.load_steps("fork")
    source_steps = await store.load_steps("source")
    assert [dataclasses.replace(s, workflow_id="source") for s in plain(copied)] == plain(
        source_steps[:3]
    )
    assert len(source_steps) == 5

    with pytest.raises(WorkflowConflictError):
        await store.fork_workflow(new_workflow("source"), "fork", 1)
    with pytest.raises(WorkflowNotFoundError):
        await store.fork_workflow(new_workflow("fork2"), "missing", 1)
    assert await store.get_workflow("fork2") is None


# -- messages -------------------------------------------------------------------------------


async def test_send_message_checks_destination(store: Store) -> None:
    with pytest.raises(WorkflowNotFoundError):
        await store.send_message("missing", "", '"hi"', None)
    await created(store, "done")
    await store.finish_workflow("done", WorkflowStatus.SUCCESS)
    with pytest.raises(WorkflowFinishedError):
        await store.send_message("done", "", '"hi"', None)


async def test_send_message_idempotency_and_sender_step(store: Store) -> None:
    await created(store, "dest")
    await created(store, "other")
    await created(store, "sender")
    assert await store.send_message("dest", "t", '"1"', "key-1", step("sender", 0))
    # A redelivery sends nothing, and still records the sender's step (its call happened).
    assert not await store.send_message("dest", "t", '"2"', "key-1", step("sender", 1))
    assert [s.step_number for s in await store.load_steps("sender")] == [0, 1]
    assert await store.send_message("other", "t", '"1"', "key-1")
    assert await store.send_message("dest", "t", '"3"', None)
    assert await store.send_message("dest", "t", '"4"', None)

    # The sender's step cannot be recorded (taken): nothing is sent.
    with pytest.raises(WorkflowStateError):
        await store.send_message("dest", "t", '"5"', "key-5", step("sender", 0))
    payloads = [await store.recv_message("dest", "t", step("dest", n)) for n in range(4)]
    assert payloads == ['"1"', '"3"', '"4"', None]


async def test_recv_message_fifo_per_topic(store: Store) -> None:
    await created(store, "w")
    for topic, payload in [("a", '"a1"'), ("b", '"b1"'), ("a", '"a2"'), ("", '"default"')]:
        assert await store.send_message("w", topic, payload, None)
    assert await store.recv_message("w", "a", step("w", 0, kind=StepKind.RECV)) == '"a1"'
    assert await store.recv_message("w", "", step("w", 1)) == '"default"'
    assert await store.recv_message("w", "a", step("w", 2)) == '"a2"'
    assert await store.recv_message("w", "a", step("w", 3)) is None
    assert await store.recv_message("w", "b", step("w", 3)) == '"b1"'
    steps = await store.load_steps("w")
    assert [(s.step_number, s.output) for s in steps] == [
        (0, '"a1"'),
        (1, '"default"'),
        (2, '"a2"'),
        (3, '"b1"'),
    ]
    assert steps[0].kind is StepKind.RECV


async def test_recv_message_step_taken_keeps_the_message(store: Store) -> None:
    await created(store, "w")
    await store.record_step(step("w", 0))
    await store.send_message("w", "t", '"m"', None)
    with pytest.raises(WorkflowStateError):
        await store.recv_message("w", "t", step("w", 0))
    assert await store.recv_message("w", "t", step("w", 1)) == '"m"'


async def test_recv_message_records_otherwise_only_when_nothing_waits(store: Store) -> None:
    """recv's first read as it parks: the deadline step is recorded in the recv's place when
    no message waits, never beside a consumed message; a refused one raises, writing nothing.
    Many at once too (PostgreSQL: one group-commit statement)."""

    def deadline(workflow_id: str, number: int) -> StepRecord:
        return step(workflow_id, number, name="recv.deadline", kind=StepKind.SLEEP, output="9")

    await created(store, "w")
    assert await store.recv_message("w", "t", step("w", 0), deadline("w", 0)) is None
    await store.send_message("w", "t", '"m"', None)
    assert await store.recv_message("w", "t", step("w", 1), deadline("w", 1)) == '"m"'
    with pytest.raises(WorkflowStateError):  # number 1 is taken: nothing recorded
        await store.recv_message("w", "t", step("w", 1), deadline("w", 1))
    assert [(s.step_number, s.name, s.output) for s in await store.load_steps("w")] == [
        (0, "recv.deadline", "9"),
        (1, "step1", '"m"'),
    ]

    ids = [f"p{i}" for i in range(12)]
    for workflow_id in ids:
        await created(store, workflow_id)
    for workflow_id in ids[::2]:
        await store.send_message(workflow_id, "t", f'"{workflow_id}"', None)
    answers = await asyncio.gather(
        *(store.recv_message(w, "t", step(w, 0), deadline(w, 0)) for w in ids)
    )
    assert answers == [f'"{w}"' if i % 2 == 0 else None for i, w in enumerate(ids)]
    for i, workflow_id in enumerate(ids):
        (recorded,) = await store.load_steps(workflow_id)
        assert recorded.name == ("step0" if i % 2 == 0 else "recv.deadline")


def parked_recv(workflow_id: str, number: int, epoch: int = 0) -> StepRecord:
    """The record a recv waiting at ``number`` writes when a message is delivered to it."""
    return StepRecord(workflow_id, number, "recv", StepKind.RECV, epoch=epoch, started_at=7)


async def test_deliver_message_consumes_it_with_the_parked_recv_step(store: Store) -> None:
    await created(store, "w")
    assert await store.deliver_message("w", "t", '"m"', parked_recv("w", 0)) is True
    (recorded,) = await store.load_steps("w")
    assert (recorded.step_number, recorded.name, recorded.output) == (0, "recv", '"m"')
    assert recorded.kind is StepKind.RECV and recorded.started_at == 7
    assert await store.recv_message("w", "t", step("w", 1)) is None  # consumed: once


async def test_deliver_message_never_passes_an_older_message(store: Store) -> None:
    """With a message already waiting on the topic, a delivery only adds its own after it:
    the recv reads them in order."""
    await created(store, "w")
    assert await store.send_message("w", "t", '"older"', None)
    assert await store.deliver_message("w", "t", '"newer"', parked_recv("w", 0)) is False
    assert await store.load_steps("w") == []
    assert await store.recv_message("w", "t", step("w", 0)) == '"older"'
    assert await store.recv_message("w", "t", step("w", 1)) == '"newer"'
    # Another topic's message is no obstacle.
    assert await store.send_message("w", "other", '"x"', None)
    assert await store.deliver_message("w", "t", '"third"', parked_recv("w", 2)) is True


async def test_deliver_message_refused_step_keeps_the_message(store: Store) -> None:
    """A step that cannot be recorded (number taken, another epoch's run, a finished
    workflow) delivers nothing: the message is added for a recv to take, or refused."""
    await created(store, "w")
    await store.record_step(step("w", 0))
    assert await store.deliver_message("w", "t", '"taken"', parked_recv("w", 0)) is False
    assert await store.deliver_message("w", "t", '"fenced"', parked_recv("w", 1, 5)) is False
    assert [s.step_number for s in await store.load_steps("w")] == [0]
    assert await store.recv_message("w", "t", step("w", 1)) == '"taken"'
    assert await store.recv_message("w", "t", step("w", 2)) == '"fenced"'
    await store.finish_workflow("w", WorkflowStatus.SUCCESS, output="1")
    with pytest.raises(WorkflowFinishedError):
        await store.deliver_message("w", "t", '"late"', parked_recv("w", 3))
    with pytest.raises(WorkflowNotFoundError):
        await store.deliver_message("missing", "t", '"m"', parked_recv("missing", 0))


async def test_many_deliveries_at_once(store: Store) -> None:
    """PostgreSQL: one group-commit statement; each delivery answers for itself."""
    ids = [f"d{i}" for i in range(12)]
    for workflow_id in ids:
        await created(store, workflow_id)
    for workflow_id in ids[::3]:
        await store.send_message(workflow_id, "t", '"first"', None)
    answers = await asyncio.gather(
        *(store.deliver_message(w, "t", f'"{w}"', parked_recv(w, 0)) for w in ids),
        store.deliver_message("missing", "t", '"m"', parked_recv("missing", 0)),
        return_exceptions=True,
    )
    assert answers[:-1] == [i % 3 != 0 for i in range(len(ids))]
    assert isinstance(answers[-1], WorkflowNotFoundError)
    for i, workflow_id in enumerate(ids):
        steps = await store.load_steps(workflow_id)
        assert [s.output for s in steps] == ([] if i % 3 == 0 else [f'"{workflow_id}"'])


async def test_concurrent_recv_never_share_a_message(store: Store) -> None:
    await created(store, "w")
    sent = {f'"{i}"' for i in range(20)}
    for payload in sorted(sent):
        await store.send_message("w", "t", payload, None)

    async def receive(number: int) -> str | None:
        while True:
            try:
                return await store.recv_message("w", "t", step("w", number))
            except StoreBusyError:  # PostgreSQL: another receiver holds the oldest message
                await asyncio.sleep(0.01)

    received = await asyncio.gather(*(receive(n) for n in range(25)))
    got = [payload for payload in received if payload is not None]
    assert len(got) == 20 and set(got) == sent
    assert len(await store.load_steps("w")) == 20


# -- events and streams ---------------------------------------------------------------------


async def test_events(store: Store) -> None:
    await created(store, "w")
    assert await store.get_event("w", "url") is None
    await store.set_event("w", "url", '"https://pay/1"', None)
    await store.set_event("w", "url", '"https://pay/2"', step("w", 0, kind=StepKind.SET_EVENT))
    await store.set_event("w", "nothing", "null", None)
    assert await store.get_event("w", "url") == '"https://pay/2"'
    assert await store.get_event("w", "nothing") == "null"
    assert await store.get_events("w") == {"nothing": "null", "url": '"https://pay/2"'}
    assert await store.get_events("missing") == {}
    assert [s.step_number for s in await store.load_steps("w")] == [0]

    with pytest.raises(WorkflowStateError):  # step 0 is taken: the event is not written
        await store.set_event("w", "url", '"https://pay/3"', step("w", 0))
    assert await store.get_event("w", "url") == '"https://pay/2"'
    with pytest.raises(WorkflowNotFoundError):
        await store.set_event("missing", "k", "1", None)


async def test_streams(store: Store) -> None:
    await created(store, "w")
    assert await store.read_stream("w", "s", 0) == []
    await store.write_stream("w", "s", '"a"', closed=False, step=step("w", 0))
    await store.write_stream("w", "s", '"b"', closed=False, step=step("w", 1))
    await store.write_stream("w", "other", '"x"', closed=False, step=step("w", 2))
    await store.write_stream("w", "s", None, closed=True, step=step("w", 3))
    entries = await store.read_stream("w", "s", 0)
    assert [(e.position, e.value, e.closed) for e in entries] == [
        (0, '"a"', False),
        (1, '"b"', False),
        (2, None, True),
    ]
    assert [e.position for e in await store.read_stream("w", "s", 1)] == [1, 2]
    assert [e.value for e in await store.read_stream("w", "other", 0)] == ['"x"']

    with pytest.raises(WorkflowStateError, match="closed"):
        await store.write_stream("w", "s", '"c"', closed=False, step=step("w", 4))
    assert len(await store.read_stream("w", "s", 0)) == 3
    assert len(await store.load_steps("w")) == 4
    with pytest.raises(WorkflowStateError):  # the step number is taken: nothing is appended
        await store.write_stream("w", "other", '"y"', closed=False, step=step("w", 0))
    assert len(await store.read_stream("w", "other", 0)) == 1


# -- listing --------------------------------------------------------------------------------


async def test_list_workflows(store: Store) -> None:
    await created(store, "p1", name="pay")
    await created(store, "p2", name="pay", parent_workflow_id="p1")
    await created(store, "s1", name="ship", status=ENQUEUED, queue_name="q", executor_id=None)
    await created(store, "s2", name="ship", executor_id="exec-2")
    await store.finish_workflow("s2", WorkflowStatus.SUCCESS)
    everything = await store.list_workflows(WorkflowQuery(ascending=True))
    oldest_first = sorted(everything, key=lambda r: (r.created_at, r.workflow_id))
    assert everything == oldest_first and len(everything) == 4
    newest_first = await store.list_workflows(WorkflowQuery())
    assert newest_first == oldest_first[::-1]

    async def ids(**filters: Any) -> set[str]:
        return {r.workflow_id for r in await store.list_workflows(WorkflowQuery(**filters))}

    assert await ids(name="pay") == {"p1", "p2"}
    assert await ids(statuses=[PENDING, ENQUEUED]) == {"p1", "p2", "s1"}
    assert await ids(statuses=[]) == set()
    assert await ids(queue_name="q") == {"s1"}
    assert await ids(executor_id="exec-2") == {"s2"}
    assert await ids(parent_workflow_id="p1") == {"p2"}
    assert await ids(workflow_ids=["p1", "s2", "nope"]) == {"p1", "s2"}
    assert await ids(name="pay", statuses=[WorkflowStatus.SUCCESS]) == set()
    middle = oldest_first[1].created_at
    assert await ids(created_after_ms=middle) == {
        r.workflow_id for r in everything if r.created_at >= middle
    }
    assert await ids(created_before_ms=middle) == {
        r.workflow_id for r in everything if r.created_at <= middle
    }

    page = await store.list_workflows(WorkflowQuery(ascending=True, limit=2, offset=1))
    assert page == oldest_first[1:3]
    assert await store.list_workflows(WorkflowQuery(limit=0)) == []
    with pytest.raises(InvalidArgumentError):
        await store.list_workflows(WorkflowQuery(offset=-1))


# -- notifications --------------------------------------------------------------------------


class Recorder:
    """Collects notifications; ``wait_for`` waits until one matches."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.changed = asyncio.Event()

    def __call__(self, kind: str, detail: str) -> None:
        self.seen.append((kind, detail))
        self.changed.set()

    async def wait_for(self, kind: str, detail: str, timeout: float = 5.0) -> None:
        async def seen() -> None:
            while (kind, detail) not in self.seen:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(seen(), timeout)


async def test_notifications(store: Store) -> None:
    recorder = Recorder()
    await store.listen(recorder)
    await created(store, "w")
    await created(store, "quiet")
    await store.send_message("w", "payment", '"ok"', None)
    await recorder.wait_for(NOTIFY_MESSAGE, f"w{SEPARATOR}payment")
    await store.set_event("w", "url", '"u"', None)
    await recorder.wait_for(NOTIFY_EVENT, f"w{SEPARATOR}url")
    recorder.seen.clear()
    await store.set_event("w", "url", '"v"', None)  # an overwrite notifies too
    await recorder.wait_for(NOTIFY_EVENT, f"w{SEPARATOR}url")
    await store.write_stream("w", "s", '"1"', closed=False, step=step("w", 0))
    await recorder.wait_for(NOTIFY_STREAM, f"w{SEPARATOR}s")

    # An update that keeps the status does not notify; an enqueue notifies its queue; a claim
    # (ENQUEUED -> PENDING) notifies nobody: nothing waits for it (migration 0012).
    assert await store.transition_workflow("quiet", PENDING, from_statuses=[PENDING])
    await created(store, "queued", status=ENQUEUED, queue_name="q")
    await recorder.wait_for(NOTIFY_QUEUE, "q")
    recorder.seen.clear()
    claim = DequeueRequest(queue_name="q", executor_id="e1", app_version=None, max_count=5)
    assert [record.workflow_id for record in (await store.dequeue(claim)).started] == ["queued"]
    await store.finish_workflow("w", WorkflowStatus.SUCCESS)
    await recorder.wait_for(NOTIFY_WORKFLOW, "w")
    assert (NOTIFY_WORKFLOW, "quiet") not in recorder.seen
    assert (NOTIFY_WORKFLOW, "queued") not in recorder.seen
    assert (NOTIFY_QUEUE, "q") not in recorder.seen
    await store.finish_workflow("queued", WorkflowStatus.SUCCESS)  # a slot frees: notified
    await recorder.wait_for(NOTIFY_QUEUE, "q")
    await recorder.wait_for(NOTIFY_WORKFLOW, "queued")

    # A message delivered to its waiting recv (stored consumed) notifies nobody (migration
    # 0013); one that only joins the mailbox (an older one waits) does.
    await created(store, "inbox")
    recorder.seen.clear()
    assert await store.deliver_message("inbox", "t", '"1"', parked_recv("inbox", 0))
    await store.set_event("inbox", "marker", "1", None)  # notified after it, in commit order
    await recorder.wait_for(NOTIFY_EVENT, f"inbox{SEPARATOR}marker")
    assert (NOTIFY_MESSAGE, f"inbox{SEPARATOR}t") not in recorder.seen
    await store.send_message("inbox", "t", '"2"', None)
    assert not await store.deliver_message("inbox", "t", '"3"', parked_recv("inbox", 1))
    await recorder.wait_for(NOTIFY_MESSAGE, f"inbox{SEPARATOR}t")

    # A rolled-back write notifies nobody.
    recorder.seen.clear()
    await created(store, "w2")
    await store.record_step(step("w2", 0))
    with pytest.raises(WorkflowStateError):
        await store.set_event("w2", "k", "1", step("w2", 0))
    await store.set_event("w2", "after", "1", None)
    await recorder.wait_for(NOTIFY_EVENT, f"w2{SEPARATOR}after")
    assert (NOTIFY_EVENT, f"w2{SEPARATOR}k") not in recorder.seen
