"""The store's plans (store/plans.py, store/coordination.py), driven by hand: which named
statements each plan issues, in which order and with which parameters, and what it returns or
raises for each answer. Answers are fabricated rows shaped like the real tables (checked against
a real SQLite store); every statement a plan issues must exist in both dialects' queries.sql and
be given every parameter its SQL names there."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, TypeVar

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
from orchestrator.store import SQLiteStore, coordination, plans, sql
from orchestrator.store.base import (
    DequeueRequest,
    NewWorkflow,
    ScheduleRecord,
    StepRecord,
    WorkflowRecord,
)
from orchestrator.store.plans import Plan, Result, Statement
from orchestrator.store.queries import DIALECTS, load_queries
from orchestrator.types import StepKind, WorkflowStatus

T = TypeVar("T")

NO_ARGUMENTS = '{"args":[],"kwargs":{}}'
CREATED_MS = 1_700_000_000_000


# -- the SQL a statement names ---------------------------------------------------------------


def placeholders(dialect: str, name: str) -> set[str]:
    """The parameters the query ``name`` of ``dialect`` reads (comments left out)."""
    code = "\n".join(line.split("--", 1)[0] for line in load_queries(dialect)[name].splitlines())
    if dialect == "sqlite":
        return set(re.findall(r"(?<![:\w]):([a-z_][a-z0-9_]*)", code))
    return set(re.findall(r"%\(([a-z_][a-z0-9_]*)\)s", code))


def check_runnable(name: str, params: set[str]) -> None:
    """``name`` is a query of every dialect, and ``params`` holds every parameter it reads."""
    for dialect in DIALECTS:
        assert name in load_queries(dialect), f"{name!r} is not in {dialect}/queries.sql"
        missing = placeholders(dialect, name) - params
        assert not missing, f"{name!r} ({dialect}) needs {sorted(missing)}"


def test_the_placeholder_reader_reads_both_dialects() -> None:
    for dialect in DIALECTS:
        assert placeholders(dialect, "mark_schedule_tick") == {"name", "tick_ms"}
        assert placeholders(dialect, "list_schedules") == set()


# -- driving a plan by hand ------------------------------------------------------------------


class Script:
    """The answers to a plan's statements, in order, each for the statement name it expects;
    ``issued`` keeps what the plan asked for (also when it raised)."""

    def __init__(self, *answers: tuple[str, Result]) -> None:
        self.answers = answers
        self.issued: list[Statement] = []

    def run(self, plan: Plan[T]) -> T:
        answers = iter(self.answers)
        try:
            statement = next(plan)
            while True:
                self.issued.append(statement)
                check_runnable(statement.name, set(statement.params))
                expected = next(answers, None)
                assert expected is not None, f"unscripted statement {statement.name!r}"
                assert statement.name == expected[0], (statement.name, expected[0])
                statement = plan.send(expected[1])
        except StopIteration as stop:
            left = [name for name, _ in answers]
            assert not left, f"the plan ended without issuing {left}"
            value: T = stop.value
            return value

    @property
    def names(self) -> list[str]:
        return [statement.name for statement in self.issued]


def rows(*found: dict[str, Any]) -> Result:
    return Result(list(found), len(found))


NOTHING = Result([], 0)


def changed(count: int) -> Result:
    return Result([], count)


RECORDED = ("record_step", rows({"status": "PENDING"}))
REFUSED = ("record_step", NOTHING)
LOCKED = ("lock_queue", rows({"queue_name": "emails"}))
CLAIMED = (
    ("lock_message_keys", NOTHING),
    ("claim_pending_messages", changed(0)),
    ("delete_pending_messages", changed(0)),
)


# -- rows shaped like the tables (migrations 0001, 0003, 0004) ---------------------------------


def workflow_row(workflow_id: str = "wf", **columns: Any) -> dict[str, Any]:
    """A ``workflows`` row: a PENDING workflow on worker-1 in epoch 1 (other columns NULL)."""
    row: dict[str, Any] = dict.fromkeys(field.name for field in dataclasses.fields(WorkflowRecord))
    row |= {"workflow_id": workflow_id, "name": "checkout", "status": "PENDING"}
    row |= {"input": NO_ARGUMENTS, "executor_id": "worker-1", "app_version": "v1"}
    row |= {"priority": 0, "recovery_attempts": 0, "max_recovery_attempts": 100}
    row |= {"created_at": CREATED_MS, "updated_at": CREATED_MS, "started_at": CREATED_MS}
    row |= {"owner_epoch": 1}
    assert set(columns) <= set(row), set(columns) - set(row)
    return {**row, **columns}


def schedule_row(name: str = "nightly", **columns: Any) -> dict[str, Any]:
    """A ``schedules`` row, booleans as SQLite gives them (integers)."""
    row: dict[str, Any] = {"name": name, "workflow_name": "report", "cron": "0 0 3 * * *"}
    row |= {"input": NO_ARGUMENTS, "paused": 0, "catch_up": 1, "declared": 0}
    row |= {"last_tick_ms": None, "created_at": CREATED_MS, "updated_at": CREATED_MS}
    assert set(columns) <= set(row), set(columns) - set(row)
    return {**row, **columns}


def counts_row(**counts: int) -> dict[str, Any]:
    """A ``queue_counts`` row: nothing running, nothing started in the window."""
    return {"running": 0, "mine": 0, "recent": 0, "oldest_recent": None, **counts}


NEW = NewWorkflow("wf", "checkout", WorkflowStatus.PENDING, NO_ARGUMENTS, "worker-1", "v1")
QUEUED = dataclasses.replace(
    NEW, status=WorkflowStatus.ENQUEUED, executor_id=None, queue_name="emails", dedup_id="cust-7"
)
STEP = StepRecord("wf", 3, "charge", StepKind.STEP, output='"ok"', epoch=1)


@pytest.fixture
async def memory_store() -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(":memory:")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_the_fabricated_rows_have_the_columns_of_the_real_queries(
    memory_store: SQLiteStore,
) -> None:
    async def raw(query: str, /, **params: Any) -> list[dict[str, Any]]:
        plan = functools.partial(plans.rows_plan, query, **params)
        return await memory_store.driver.run(plan, transaction=False)

    queued = dataclasses.replace(QUEUED, partition_key="t1", delay_ms=60_000)
    await memory_store.create_workflow(queued)
    [workflow] = await raw("get_workflow", workflow_id="wf")
    assert set(workflow) == set(workflow_row())
    await memory_store.save_schedule(coordination.schedule_from_row(schedule_row()), replace=False)
    [schedule] = await raw("list_schedules")
    assert set(schedule) == set(schedule_row())
    counts = await raw(
        "queue_counts", queue_name="emails", partition_key=None, executor_id="w", window_ms=1000
    )
    assert [set(row) for row in counts] == [set(counts_row())]
    assert await raw("queue_partitions", queue_name="emails") == [{"partition_key": "t1"}]
    [due] = await raw("next_delayed", queue_name="emails")
    assert set(due) == {"due"}
    holder = await raw("get_workflow_by_dedup", queue_name="emails", dedup_id="cust-7")
    assert holder == [{"workflow_id": "wf"}]
    step = dataclasses.replace(STEP, epoch=0)
    assert await raw("record_step", **plans.step_params(step)) == [{"status": "ENQUEUED"}]
    await memory_store.send_message("wf", "topic", '"hi"', "key-1")
    used = await raw("message_key_used", destination_id="wf", idempotency_key="key-1")
    assert [set(row) for row in used] == [{"used"}]
    assert await raw("consume_message", workflow_id="wf", topic="topic") == [{"payload": '"hi"'}]


# -- every statement name, in both dialects -----------------------------------------------------


GENERIC_PLANS = {"rows_plan", "rowcount_plan"}  # the query name is their first argument


def statements_in_source() -> dict[str, set[str] | None]:
    """Each query name written in the plans (``Statement("name", ...)``) and in SQLStore's
    generic plans (``partial(rows_plan, "name", key=...)``): the keywords given there, or None
    when the parameters are built elsewhere (checked when a plan is driven)."""
    found: dict[str, set[str] | None] = {}
    for module in (plans, coordination, sql):
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if not isinstance(node, ast.Call):
                continue
            callee = ast.unparse(node.func)
            if callee == "Statement":
                name_node, keywords = node.args[0], None
            elif callee == "functools.partial" and ast.unparse(node.args[0]) in GENERIC_PLANS:
                name_node = node.args[1]
                keywords = {keyword.arg for keyword in node.keywords if keyword.arg is not None}
                if any(keyword.arg is None for keyword in node.keywords):
                    keywords = None  # a ** spread (the listing's filters): checked when run
            else:
                continue
            for constant in ast.walk(name_node):
                if isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                    found[constant.value] = keywords
    return found


def test_every_statement_a_plan_can_issue_is_in_both_dialects() -> None:
    found = statements_in_source()
    assert {"insert_workflow", "record_step", "consume_message", "claim_queued"} <= set(found)
    assert {"upsert_schedule", "insert_schedule", "list_workflows_ascending"} <= set(found)
    for name, keywords in sorted(found.items()):
        for dialect in DIALECTS:
            assert name in load_queries(dialect), f"{name!r} is not in {dialect}/queries.sql"
        if keywords is not None:  # else checked where a plan builds them (Script.run)
            check_runnable(name, keywords)


# -- rows <-> records -----------------------------------------------------------------------


def test_a_workflow_row_becomes_a_record_with_its_status() -> None:
    row = workflow_row(status="ENQUEUED", queue_name="emails")
    record = plans.workflow_from_row({**row, "seq": 7})  # an extra column is ignored
    assert record.status is WorkflowStatus.ENQUEUED
    assert dataclasses.asdict(record) == {**row, "status": WorkflowStatus.ENQUEUED}


def test_a_row_with_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="'LOST'"):
        plans.workflow_from_row(workflow_row(status="LOST"))


def test_a_steps_row_becomes_a_record_with_its_kind() -> None:
    row = {**plans.step_params(STEP), "kind": "recv", "seq": 12, "finished_at": CREATED_MS}
    record = plans.step_from_row({**row, "consumed": 0})  # an extra column is ignored
    assert record.kind is StepKind.RECV
    assert (record.seq, record.finished_at, record.output) == (12, CREATED_MS, '"ok"')


def test_new_workflows_and_steps_are_sent_as_every_field_with_plain_strings() -> None:
    params = plans.workflow_params(QUEUED)
    fields = {field.name for field in dataclasses.fields(NewWorkflow)}
    assert set(params) == fields - {"attributes"}  # a statement of their own, when given
    assert type(params["status"]) is str
    assert (params["status"], params["queue_name"]) == ("ENQUEUED", "emails")
    step = plans.step_params(STEP)
    assert set(step) == {field.name for field in dataclasses.fields(StepRecord)}
    assert type(step["kind"]) is str
    assert (step["kind"], step["step_number"], step["epoch"]) == ("step", 3, 1)


def test_statuses_are_sent_as_plain_strings() -> None:
    assert plans.statuses(None) is None
    assert plans.statuses([]) == []
    sent = plans.statuses([WorkflowStatus.PENDING, "ERROR"])  # type: ignore[list-item]
    assert sent == ["PENDING", "ERROR"]
    assert all(type(status) is str for status in sent)
    with pytest.raises(ValueError, match="'NOPE'"):
        plans.statuses(["NOPE"])  # type: ignore[list-item]


def test_schedule_and_worker_rows_turn_integers_into_booleans() -> None:
    schedule = coordination.schedule_from_row(schedule_row(paused=1, catch_up=0, declared=1))
    assert (schedule.paused, schedule.catch_up, schedule.declared) == (True, False, True)
    assert all(type(flag) is bool for flag in (schedule.paused, schedule.catch_up))
    worker_row = {"executor_id": "w", "app_version": "v1", "host": "h", "pid": 42, "alive": 0}
    worker_row |= {"started_at": 1, "heartbeat_at": 2, "lease_expires_at": 3}
    worker = coordination.worker_from_row(worker_row)
    assert worker.alive is False
    assert (worker.pid, worker.lease_expires_at) == (42, 3)


# -- insert_workflow ------------------------------------------------------------------------


def test_inserting_a_new_workflow_returns_the_stored_row_as_created() -> None:
    script = Script(("insert_workflow", rows(workflow_row())))
    record, created = script.run(plans.insert_workflow(NEW, conflict=True))
    assert created is True
    assert record == plans.workflow_from_row(workflow_row())
    assert script.issued == [Statement("insert_workflow", plans.workflow_params(NEW))]


def test_inserting_a_taken_id_returns_the_existing_workflow() -> None:
    existing = workflow_row(status="SUCCESS", output='"done"')
    script = Script(("insert_workflow", NOTHING), ("get_workflow", rows(existing)))
    record, created = script.run(plans.insert_workflow(NEW, conflict=False))
    assert created is False
    assert (record.status, record.output) == (WorkflowStatus.SUCCESS, '"done"')
    assert script.issued[1] == Statement("get_workflow", {"workflow_id": "wf"})


def test_inserting_a_taken_id_with_conflict_raises() -> None:
    script = Script(("insert_workflow", NOTHING), ("get_workflow", rows(workflow_row())))
    with pytest.raises(WorkflowConflictError) as raised:
        script.run(plans.insert_workflow(NEW, conflict=True))
    assert raised.value.message == "workflow id 'wf' is already taken; choose another id"
    assert raised.value.detail == {"workflow_id": "wf"}
    assert raised.value.http_status == 409
    assert script.names == ["insert_workflow", "get_workflow"]


def test_a_start_in_a_transaction_notifies_only_a_new_unclaimed_workflow() -> None:
    unclaimed = dataclasses.replace(NEW, executor_id=None)
    script = Script(
        ("insert_workflow", rows(workflow_row(executor_id=None))), ("notify_unclaimed", NOTHING)
    )
    record, created = script.run(plans.insert_workflow_in_transaction(unclaimed))
    assert created is True and record.executor_id is None
    assert script.issued[1] == Statement(
        "notify_unclaimed", {"workflow_id": "wf", "name": "checkout"}
    )
    queued = Script(("insert_workflow", rows(workflow_row(status="ENQUEUED", executor_id=None))))
    queued.run(plans.insert_workflow_in_transaction(QUEUED))  # its insert trigger notifies
    taken = Script(("insert_workflow", NOTHING), ("get_workflow", rows(workflow_row())))
    assert taken.run(plans.insert_workflow_in_transaction(unclaimed))[1] is False


def test_inserting_an_active_dedup_id_names_the_holder() -> None:
    script = Script(
        ("insert_workflow", NOTHING),
        ("get_workflow", NOTHING),
        ("get_workflow_by_dedup", rows({"workflow_id": "holder-1"})),
    )
    with pytest.raises(DuplicateWorkflowError) as raised:
        script.run(plans.insert_workflow(QUEUED, conflict=False))
    assert raised.value.message == (
        "dedup id 'cust-7' is already active on queue 'emails' (workflow 'holder-1');"
        " wait until it finishes or use another dedup id"
    )
    assert raised.value.detail == {
        "queue_name": "emails",
        "dedup_id": "cust-7",
        "workflow_id": "holder-1",
    }
    assert script.issued[2] == Statement(
        "get_workflow_by_dedup", {"queue_name": "emails", "dedup_id": "cust-7"}
    )


def test_a_dedup_holder_gone_meanwhile_is_named_none() -> None:
    script = Script(
        ("insert_workflow", NOTHING), ("get_workflow", NOTHING), ("get_workflow_by_dedup", NOTHING)
    )
    with pytest.raises(DuplicateWorkflowError, match=r"\(workflow None\)") as raised:
        script.run(plans.insert_workflow(QUEUED, conflict=True))
    assert raised.value.detail["workflow_id"] is None


# -- record_step and what is written with a step ------------------------------------------------


def test_a_recorded_step_answers_the_workflow_status() -> None:
    script = Script(("record_step", rows({"status": "COMPENSATING"})))
    assert script.run(plans.record_step(STEP, required=True)) is WorkflowStatus.COMPENSATING
    assert script.issued == [Statement("record_step", plans.step_params(STEP))]


def test_a_refused_step_is_none_unless_required() -> None:
    assert Script(REFUSED).run(plans.record_step(STEP, required=False)) is None


def test_a_required_step_refused_raises_a_state_error_naming_it() -> None:
    with pytest.raises(WorkflowStateError) as raised:
        Script(REFUSED).run(plans.record_step(STEP, required=True))
    assert raised.value.message == (
        "step 3 of workflow 'wf' was not recorded: that step number is taken, or the workflow"
        " has finished or is run by another executor now"
    )
    assert raised.value.detail == {"workflow_id": "wf", "step_number": 3, "refused": True}
    assert raised.value.http_status == 409


def test_the_last_step_and_success_are_written_together() -> None:
    script = Script(RECORDED, ("finish_pending_workflow", changed(1)))
    assert script.run(plans.finish_after_step(STEP, '"total"')) is True
    assert script.issued[1] == Statement(
        "finish_pending_workflow",
        {"workflow_id": "wf", "status": "SUCCESS", "output": '"total"', "epoch": 1},
    )


def test_the_last_step_recorded_when_the_workflow_is_no_longer_pending_is_false() -> None:
    script = Script(
        ("record_step", rows({"status": "CANCELLED"})), ("finish_pending_workflow", changed(0))
    )
    assert script.run(plans.finish_after_step(STEP, None)) is False


def test_the_last_step_refused_writes_nothing_more() -> None:
    script = Script(REFUSED)
    assert script.run(plans.finish_after_step(STEP, '"total"')) is None
    assert script.names == ["record_step"]


def test_reading_a_workflow() -> None:
    assert Script(("get_workflow", NOTHING)).run(plans.get_workflow("wf")) is None
    record = Script(("get_workflow", rows(workflow_row()))).run(plans.get_workflow("wf"))
    assert isinstance(record, WorkflowRecord)
    assert record.workflow_id == "wf"


def test_a_child_is_created_and_the_parent_s_step_recorded() -> None:
    child = dataclasses.replace(NEW, workflow_id="child", parent_workflow_id="wf")
    step = dataclasses.replace(STEP, kind=StepKind.CHILD, child_workflow_id="child")
    script = Script(
        ("insert_workflow", rows(workflow_row("child", parent_workflow_id="wf"))), RECORDED
    )
    record, created = script.run(plans.start_child(child, step))
    assert (record.workflow_id, record.parent_workflow_id, created) == ("child", "wf", True)
    assert script.issued[1].params["child_workflow_id"] == "child"


def test_an_existing_child_is_returned_and_the_step_still_recorded() -> None:
    script = Script(
        ("insert_workflow", NOTHING), ("get_workflow", rows(workflow_row("child"))), RECORDED
    )
    _, created = script.run(plans.start_child(dataclasses.replace(NEW, workflow_id="child"), STEP))
    assert created is False


def test_a_child_whose_parent_step_is_refused_raises_after_the_insert() -> None:
    """The store rolls the insert back: start_child runs in one transaction."""
    script = Script(("insert_workflow", rows(workflow_row("child"))), REFUSED)
    with pytest.raises(WorkflowStateError, match="step 3 of workflow 'wf' was not recorded"):
        script.run(plans.start_child(dataclasses.replace(NEW, workflow_id="child"), STEP))
    assert script.names == ["insert_workflow", "record_step"]


# -- fork_workflow --------------------------------------------------------------------------


def test_a_fork_copies_the_steps_before_the_given_one() -> None:
    fork = dataclasses.replace(NEW, workflow_id="fork")
    script = Script(
        ("get_workflow", rows(workflow_row("src", status="ERROR"))),
        ("insert_workflow", rows(workflow_row("fork"))),
        ("copy_steps", changed(4)),
        ("copy_workflow_attributes", changed(0)),
        ("get_workflow_attributes", NOTHING),  # no keys: nothing to claim
    )
    record = script.run(plans.fork_workflow(fork, "src", 5))
    assert record.workflow_id == "fork"
    assert script.issued[0] == Statement("get_workflow", {"workflow_id": "src"})
    assert script.issued[2] == Statement(
        "copy_steps", {"workflow_id": "fork", "source_id": "src", "before_step": 5}
    )


def test_a_fork_of_a_missing_workflow_raises_before_writing() -> None:
    script = Script(("get_workflow", NOTHING))
    with pytest.raises(WorkflowNotFoundError) as raised:
        script.run(plans.fork_workflow(NEW, "src", 1))
    assert raised.value.message == "no workflow 'src' to fork"
    assert script.names == ["get_workflow"]


def test_a_fork_to_a_taken_id_is_a_conflict() -> None:
    script = Script(
        ("get_workflow", rows(workflow_row("src"))),
        ("insert_workflow", NOTHING),
        ("get_workflow", rows(workflow_row("wf"))),
    )
    with pytest.raises(WorkflowConflictError, match="workflow id 'wf' is already taken"):
        script.run(plans.fork_workflow(NEW, "src", 1))


# -- send_message / recv_message ------------------------------------------------------------


PAID = '{"ok":true}'


def message_params(key: str | None) -> dict[str, Any]:
    return {"destination_id": "wf", "topic": "paid", "payload": PAID, "idempotency_key": key}


def test_a_message_is_inserted_for_an_active_workflow() -> None:
    script = Script(("get_workflow", rows(workflow_row())), ("insert_message", changed(1)))
    assert script.run(plans.send_message("wf", "paid", PAID, None, None)) is True
    assert script.issued[1] == Statement("insert_message", message_params(None))


def test_a_message_with_a_key_is_checked_then_inserted_then_its_step_recorded() -> None:
    step = dataclasses.replace(STEP, workflow_id="sender", kind=StepKind.SEND)
    script = Script(
        ("get_workflow", rows(workflow_row(status="ENQUEUED"))),
        ("message_key_used", NOTHING),
        ("insert_message", changed(1)),
        RECORDED,
    )
    assert script.run(plans.send_message("wf", "paid", PAID, "k1", step)) is True
    assert script.issued[1] == Statement(
        "message_key_used", {"destination_id": "wf", "idempotency_key": "k1"}
    )
    assert script.issued[2] == Statement("insert_message", message_params("k1"))
    assert script.issued[3].params["workflow_id"] == "sender"


def test_a_redelivery_is_false_even_to_a_finished_workflow() -> None:
    """A retried send answers as the first did, though the destination finished since."""
    script = Script(
        ("get_workflow", rows(workflow_row(status="SUCCESS"))),
        ("message_key_used", rows({"used": 1})),
        RECORDED,
    )
    assert script.run(plans.send_message("wf", "paid", "1", "k1", STEP)) is False
    assert "insert_message" not in script.names


def test_a_message_lost_to_a_concurrent_duplicate_is_false() -> None:
    script = Script(
        ("get_workflow", rows(workflow_row())),
        ("message_key_used", NOTHING),
        ("insert_message", changed(0)),
    )
    assert script.run(plans.send_message("wf", "paid", "1", "k1", None)) is False


def test_a_message_to_a_missing_workflow_raises() -> None:
    script = Script(("get_workflow", NOTHING))
    with pytest.raises(WorkflowNotFoundError) as raised:
        script.run(plans.send_message("ghost", "paid", "1", "k1", STEP))
    assert raised.value.message == "no workflow 'ghost' to send a message to"
    assert raised.value.detail == {"workflow_id": "ghost"}


@pytest.mark.parametrize("status", ["SUCCESS", "ERROR", "CANCELLED", "COMPENSATED"])
def test_a_message_to_a_finished_workflow_raises_naming_its_status(status: str) -> None:
    script = Script(("get_workflow", rows(workflow_row(status=status))))
    with pytest.raises(WorkflowFinishedError) as raised:
        script.run(plans.send_message("wf", "paid", "1", None, STEP))
    assert raised.value.message == (
        f"workflow 'wf' has finished ({status}): it will never receive this message"
    )
    assert raised.value.detail == {"workflow_id": "wf", "status": status}
    assert script.names == ["get_workflow"]


def test_receiving_with_nothing_waiting_records_nothing() -> None:
    script = Script(("consume_message", NOTHING))
    assert script.run(plans.recv_message("wf", "paid", STEP)) is None
    assert script.issued == [Statement("consume_message", {"workflow_id": "wf", "topic": "paid"})]


def test_receiving_while_another_transaction_holds_the_oldest_message_takes_nothing() -> None:
    """PostgreSQL answers a row with no payload and busy: neither None (the recv would wait
    for a notification that never comes) nor a newer message."""
    script = Script(("consume_message", rows({"payload": None, "busy": True})))
    with pytest.raises(StoreBusyError, match="held by another transaction"):
        script.run(plans.recv_message("wf", "paid", STEP))
    assert script.names == ["consume_message"]
    nothing = Script(("consume_message", rows({"payload": None, "busy": False})))
    assert nothing.run(plans.recv_message("wf", "paid", STEP)) is None


def test_a_consumed_message_is_recorded_as_the_step_s_output() -> None:
    step = dataclasses.replace(STEP, kind=StepKind.RECV, output=None)
    script = Script(("consume_message", rows({"payload": '{"n":1}'})), RECORDED)
    assert script.run(plans.recv_message("wf", "paid", step)) == '{"n":1}'
    assert script.issued[1] == Statement(
        "record_step", plans.step_params(dataclasses.replace(step, output='{"n":1}'))
    )


def test_a_consumed_message_whose_step_is_refused_raises() -> None:
    """The store rolls the consumption back: the message stays for the run that owns it."""
    script = Script(("consume_message", rows({"payload": "1"})), REFUSED)
    with pytest.raises(WorkflowStateError, match="was not recorded"):
        script.run(plans.recv_message("wf", "paid", STEP))


def test_receiving_with_nothing_waiting_records_the_otherwise_step() -> None:
    """recv's first read as it parks records its deadline instead; a refusal of that raises."""
    deadline = dataclasses.replace(STEP, name="recv.deadline", kind=StepKind.SLEEP, output="9")
    script = Script(("consume_message", NOTHING), RECORDED)
    assert script.run(plans.recv_message("wf", "paid", STEP, deadline)) is None
    assert script.issued[1] == Statement("record_step", plans.step_params(deadline))
    refused = Script(("consume_message", NOTHING), REFUSED)
    with pytest.raises(WorkflowStateError, match="was not recorded"):
        refused.run(plans.recv_message("wf", "paid", STEP, deadline))
    consumed = Script(("consume_message", rows({"payload": "1"})), RECORDED)
    assert consumed.run(plans.recv_message("wf", "paid", STEP, deadline)) == "1"
    assert consumed.issued[1].params["name"] == STEP.name  # the recv's step, not the deadline


PARKED = dataclasses.replace(STEP, kind=StepKind.RECV, output=None)


def delivery(key: str = "k") -> Any:
    return plans.deliver_message("wf", "paid", PAID, key, PARKED)


def test_a_delivery_records_the_parked_recv_with_the_message_consumed() -> None:
    script = Script(
        ("get_workflow", rows(workflow_row())),
        ("message_key_used", NOTHING),
        ("message_waiting", NOTHING),
        RECORDED,
        ("insert_message_consumed", changed(1)),
    )
    assert script.run(delivery()) is True
    assert script.issued[3] == Statement(
        "record_step", plans.step_params(dataclasses.replace(PARKED, output=PAID))
    )
    assert script.issued[4] == Statement("insert_message_consumed", message_params("k"))


def test_a_delivery_behind_a_waiting_message_or_refused_only_adds_the_message() -> None:
    behind = Script(
        ("get_workflow", rows(workflow_row())),
        ("message_key_used", NOTHING),
        ("message_waiting", rows({"waiting": 1})),
        ("insert_message", changed(1)),
    )
    assert behind.run(delivery()) is False
    assert "record_step" not in behind.names
    refused = Script(
        ("get_workflow", rows(workflow_row())),
        ("message_key_used", NOTHING),
        ("message_waiting", NOTHING),
        REFUSED,
        ("insert_message", changed(1)),
    )
    assert refused.run(delivery()) is False


def test_a_retried_delivery_adds_nothing_and_a_finished_or_missing_one_raises() -> None:
    retried = Script(
        ("get_workflow", rows(workflow_row())), ("message_key_used", rows({"used": 1}))
    )
    assert retried.run(delivery()) is False
    assert retried.names == ["get_workflow", "message_key_used"]
    finished = Script(
        ("get_workflow", rows(workflow_row(status="SUCCESS"))), ("message_key_used", NOTHING)
    )
    with pytest.raises(WorkflowFinishedError):
        finished.run(delivery())
    with pytest.raises(WorkflowNotFoundError):
        Script(("get_workflow", NOTHING)).run(delivery())


# -- events and streams ---------------------------------------------------------------------


def test_setting_an_event_with_and_without_its_step() -> None:
    alone = Script(("set_event", changed(1)))
    assert alone.run(plans.set_event("wf", "url", '"https://pay"', None)) is None
    assert alone.issued == [
        Statement("set_event", {"workflow_id": "wf", "key": "url", "value": '"https://pay"'})
    ]
    with_step = Script(("set_event", changed(1)), REFUSED)
    with pytest.raises(WorkflowStateError):
        with_step.run(plans.set_event("wf", "url", "1", STEP))


def test_setting_attributes_writes_them_counts_then_records_the_step() -> None:
    script = Script(
        ("insert_workflow_attributes", changed(2)),
        ("count_workflow_attributes", rows({"n": 3})),
        *CLAIMED,
        RECORDED,
    )
    assert (
        script.run(plans.set_attributes("wf", {"order_id": "o-1", "amount": "4"}, STEP, 20)) is None
    )
    assert script.issued[0] == Statement(
        "insert_workflow_attributes",
        {"workflow_id": "wf", "attributes": '{"order_id": "o-1", "amount": "4"}'},
    )
    over = Script(
        ("insert_workflow_attributes", changed(2)), ("count_workflow_attributes", rows({"n": 21}))
    )
    with pytest.raises(InvalidArgumentError, match="at most 20"):  # the transaction rolls back
        over.run(plans.set_attributes("wf", {"a": "1"}, STEP, 20))
    assert over.names == ["insert_workflow_attributes", "count_workflow_attributes"]


def test_a_start_with_attributes_inserts_them_after_the_row() -> None:
    new = dataclasses.replace(NEW, attributes={"customer_id": "c-7"})
    script = Script(
        ("insert_workflow", rows(workflow_row("wf"))),
        ("insert_workflow_attributes", changed(1)),
        *CLAIMED,  # the messages kept for its keys move into its mailbox
    )
    _, created = script.run(plans.insert_workflow(new, conflict=False))
    assert created and script.issued[1].params == {
        "workflow_id": "wf",
        "attributes": '{"customer_id": "c-7"}',
    }
    taken = Script(("insert_workflow", NOTHING), ("get_workflow", rows(workflow_row("wf"))))
    assert taken.run(plans.insert_workflow(new, conflict=False))[1] is False  # nothing written


def test_writing_to_a_stream_appends_then_records_the_step() -> None:
    script = Script(("append_stream", changed(1)), RECORDED)
    assert script.run(plans.write_stream("wf", "log", '"line"', False, STEP)) is None
    assert script.issued[0] == Statement(
        "append_stream", {"workflow_id": "wf", "key": "log", "value": '"line"', "closed": False}
    )


def test_writing_to_a_closed_stream_raises_and_records_nothing() -> None:
    script = Script(("append_stream", changed(0)))
    with pytest.raises(WorkflowStateError) as raised:
        script.run(plans.write_stream("wf", "log", None, True, STEP))
    assert raised.value.message == (
        "stream 'log' of workflow 'wf' is closed: nothing more can be written"
    )
    assert raised.value.detail == {"workflow_id": "wf", "key": "log"}
    assert script.names == ["append_stream"]


def test_the_generic_plans_pass_rows_and_counts_through() -> None:
    found = rows({"key": "a", "value": "1"}, {"key": "b", "value": "2"})
    script = Script(("get_events", found))
    assert script.run(plans.rows_plan("get_events", workflow_id="wf")) == found.rows
    assert script.issued == [Statement("get_events", {"workflow_id": "wf"})]
    deleted = Script(("delete_steps", changed(3)))
    assert deleted.run(plans.rowcount_plan("delete_steps", workflow_id="wf", from_step=2)) == 3


# -- dequeue --------------------------------------------------------------------------------

WORKER = {"executor_id": "worker-1"}


def dequeue_request(**limits: Any) -> DequeueRequest:
    return DequeueRequest("emails", "worker-1", "v1", **{"max_count": 10, **limits})


def dequeue_script(
    *middle: tuple[str, Result], due: int | None = None, locked: bool = True
) -> Script:
    """Lock the queue (``locked``: a limit all workers share), ``middle``, then, unless a claim
    returned rows (they say it), the next delayed workflow is ``due``."""
    said = any(name == "claim_queued" and result.rows for name, result in middle)
    looked = [] if said else [("next_delayed", rows({"due": due}))]
    return Script(*([LOCKED] if locked else []), *middle, *looked)


def claimed(*workflow_ids: str, priority: int = 0, next_due: int | None = None) -> Result:
    return rows(
        *(
            workflow_row(w, queue_name="emails", priority=priority) | {"next_due": next_due}
            for w in workflow_ids
        )
    )


def counted(**counts: int) -> tuple[str, Result]:
    return ("queue_counts", rows(counts_row(**counts)))


def claim_params(script: Script) -> list[Mapping[str, Any]]:
    return [statement.params for statement in script.issued if statement.name == "claim_queued"]


def test_a_dequeue_with_a_shared_limit_locks_counts_and_claims() -> None:
    request = dequeue_request(max_count=5, concurrency=8, rate_window_ms=60_000)
    rows_ = claimed("a", "b", next_due=CREATED_MS + 9)
    script = dequeue_script(counted(running=3, mine=1), ("claim_queued", rows_))
    result = script.run(coordination.dequeue(request))
    assert [record.workflow_id for record in result.started] == ["a", "b"]
    assert result.retry_at_ms == CREATED_MS + 9  # the claim's rows said when (no next_delayed)
    assert script.names == ["lock_queue", "queue_counts", "claim_queued"]
    queue = {"queue_name": "emails"}
    assert script.issued[0].params == queue
    partition = {**queue, "partition_key": None, **WORKER}
    assert script.issued[1].params == {**partition, "window_ms": 60_000}
    claim = {**partition, "app_version": "v1", "use_priority": False, "n": 5}
    assert script.issued[2].params == {**claim, "worker_concurrency": None}


@pytest.mark.parametrize("worker_concurrency", [None, 4])
def test_a_queue_without_a_shared_limit_claims_in_one_statement(
    worker_concurrency: int | None,
) -> None:
    """No lock, no counts: SKIP LOCKED hands each row to one worker, and the claim itself
    counts this worker's running ones against its worker_concurrency."""
    request = dequeue_request(max_count=7, worker_concurrency=worker_concurrency)
    script = dequeue_script(("claim_queued", claimed("a")), locked=False)
    result = script.run(coordination.dequeue(request))
    assert [record.workflow_id for record in result.started] == ["a"]
    assert script.names == ["claim_queued"]
    assert claim_params(script)[0]["n"] == 7
    assert claim_params(script)[0]["worker_concurrency"] == worker_concurrency
    assert not coordination.dequeue_serialized(request)


def test_a_claim_of_nothing_looks_for_delayed_work() -> None:
    script = dequeue_script(("claim_queued", NOTHING), due=CREATED_MS + 30_000, locked=False)
    assert script.run(coordination.dequeue(dequeue_request())).retry_at_ms == CREATED_MS + 30_000
    assert script.names == ["claim_queued", "next_delayed"]


@pytest.mark.parametrize(
    ("limits", "counts", "n"),
    [
        ({"max_count": 3, "concurrency": 100}, {"running": 50, "mine": 50, "recent": 50}, 3),
        ({"concurrency": 4}, {"running": 1}, 3),
        ({"concurrency": 20, "worker_concurrency": 4}, {"running": 9, "mine": 2}, 2),
        ({"rate_limit": 10, "rate_window_ms": 1000}, {"recent": 9, "oldest_recent": 5}, 1),
        (
            {"max_count": 6, "concurrency": 9, "worker_concurrency": 6, "rate_limit": 8},
            {"running": 4, "mine": 2, "recent": 4},
            4,  # concurrency 9-4=5, worker 6-2=4, rate 8-4=4, budget 6
        ),
    ],
)
def test_a_dequeue_claims_what_the_tightest_limit_leaves(
    limits: dict[str, Any], counts: dict[str, int], n: int
) -> None:
    script = dequeue_script(counted(**counts), ("claim_queued", NOTHING))
    script.run(coordination.dequeue(dequeue_request(**limits)))
    assert [params["n"] for params in claim_params(script)] == [n]


@pytest.mark.parametrize(
    ("limits", "counts"),
    [
        ({"concurrency": 2}, {"running": 2}),
        ({"concurrency": 2}, {"running": 5}),  # the limit was lowered
        ({"concurrency": 5, "worker_concurrency": 1}, {"running": 1, "mine": 1}),
    ],
)
def test_a_full_queue_claims_nothing(limits: dict[str, Any], counts: dict[str, int]) -> None:
    result = dequeue_script(counted(**counts)).run(coordination.dequeue(dequeue_request(**limits)))
    assert (result.started, result.retry_at_ms) == ([], None)


def test_a_worker_without_capacity_counts_nothing() -> None:
    script = dequeue_script(locked=False)
    assert script.run(coordination.dequeue(dequeue_request(max_count=0))).started == []
    assert script.names == ["next_delayed"]


def test_a_reached_rate_limit_says_when_its_window_reopens() -> None:
    request = dequeue_request(rate_limit=100, rate_window_ms=60_000)
    script = dequeue_script(counted(recent=100, oldest_recent=CREATED_MS))
    result = script.run(coordination.dequeue(request))
    assert (result.started, result.retry_at_ms) == ([], CREATED_MS + 60_000 + 1)


def test_the_earliest_of_a_delayed_workflow_and_the_rate_window_is_the_retry_time() -> None:
    request = dequeue_request(rate_limit=1, rate_window_ms=60_000)
    script = dequeue_script(counted(recent=1, oldest_recent=CREATED_MS), due=CREATED_MS + 5_000)
    assert script.run(coordination.dequeue(request)).retry_at_ms == CREATED_MS + 5_000


def test_a_delayed_workflow_alone_sets_the_retry_time() -> None:
    script = dequeue_script(counted(), ("claim_queued", NOTHING), due=CREATED_MS + 30_000)
    request = dequeue_request(concurrency=5)
    assert script.run(coordination.dequeue(request)).retry_at_ms == CREATED_MS + 30_000


def test_missing_or_null_counts_are_zero() -> None:
    nulls = {"running": None, "mine": None, "recent": None, "oldest_recent": None}
    for counts in (NOTHING, rows(nulls)):
        script = dequeue_script(("queue_counts", counts), ("claim_queued", NOTHING))
        request = dequeue_request(max_count=4, concurrency=3, worker_concurrency=2, rate_limit=5)
        script.run(coordination.dequeue(request))
        assert [params["n"] for params in claim_params(script)] == [2]


def partitions(*keys: str | None) -> tuple[str, Result]:
    return ("queue_partitions", rows(*({"partition_key": key} for key in keys)))


def test_a_partitioned_dequeue_applies_the_limits_to_each_partition() -> None:
    request = dequeue_request(max_count=10, concurrency=2, partitioned=True)
    script = dequeue_script(
        partitions("t1", None, "t2"),
        counted(running=1),
        ("claim_queued", claimed("t1-a")),
        counted(running=0),
        ("claim_queued", claimed("t2-a", "t2-b")),
    )
    result = script.run(coordination.dequeue(request))
    assert [record.workflow_id for record in result.started] == ["t1-a", "t2-a", "t2-b"]
    assert script.issued[1] == Statement("queue_partitions", {"queue_name": "emails"})
    assert [(c["partition_key"], c["n"]) for c in claim_params(script)] == [("t1", 1), ("t2", 2)]
    counts = [s.params["partition_key"] for s in script.issued if s.name == "queue_counts"]
    assert counts == ["t1", "t2"]  # a NULL key is no partition


def test_a_partitioned_dequeue_stops_when_the_worker_is_full() -> None:
    script = dequeue_script(
        partitions("t1", "t2", "t3"),
        ("claim_queued", claimed("a", "b")),
        ("claim_queued", claimed("c")),
        locked=False,
    )
    result = script.run(coordination.dequeue(dequeue_request(max_count=3, partitioned=True)))
    assert len(result.started) == 3
    assert [(c["partition_key"], c["n"]) for c in claim_params(script)] == [("t1", 3), ("t2", 1)]
    assert "t3" not in [s.params.get("partition_key") for s in script.issued]


def test_a_partitioned_queue_without_waiting_partitions_claims_nothing() -> None:
    script = dequeue_script(partitions(), locked=False)
    assert script.run(coordination.dequeue(dequeue_request(partitioned=True))).started == []


@pytest.mark.parametrize(
    ("use_priority", "order"), [(True, ["b", "a", "d", "c"]), (False, ["a", "c", "b", "d"])]
)
def test_started_workflows_are_in_priority_order_on_a_priority_queue(
    use_priority: bool, order: list[str]
) -> None:
    first = Result([*claimed("a", priority=1).rows, *claimed("c", priority=5).rows], 2)
    second = Result([*claimed("b", priority=0).rows, *claimed("d", priority=1).rows], 2)
    script = dequeue_script(
        partitions("t1", "t2"),
        ("claim_queued", first),
        ("claim_queued", second),
        locked=False,
    )
    request = dequeue_request(partitioned=True, use_priority=use_priority)
    result = script.run(coordination.dequeue(request))
    assert [record.workflow_id for record in result.started] == order
    assert [params["use_priority"] for params in claim_params(script)] == [use_priority] * 2


# -- save_schedule --------------------------------------------------------------------------


SCHEDULE = ScheduleRecord(
    name="nightly", workflow_name="report", cron="0 0 3 * * *", input=NO_ARGUMENTS, catch_up=True
)
SCHEDULE_PARAMS: dict[str, Any] = {"name": "nightly", "workflow_name": "report"}
SCHEDULE_PARAMS |= {"cron": "0 0 3 * * *", "input": NO_ARGUMENTS}
SCHEDULE_PARAMS |= {"paused": False, "catch_up": True, "declared": False}


def test_a_new_schedule_is_inserted_and_read_back() -> None:
    script = Script(("insert_schedule", rows(schedule_row())))
    saved = script.run(coordination.save_schedule(SCHEDULE, False))
    assert script.issued == [Statement("insert_schedule", SCHEDULE_PARAMS)]
    assert saved == dataclasses.replace(SCHEDULE, created_at=CREATED_MS, updated_at=CREATED_MS)


def test_a_taken_schedule_name_is_a_conflict_unless_replacing() -> None:
    script = Script(("insert_schedule", NOTHING))
    with pytest.raises(WorkflowConflictError) as raised:
        script.run(coordination.save_schedule(SCHEDULE, False))
    assert raised.value.message == (
        "a schedule named 'nightly' exists already; delete it first or choose another name"
    )
    assert raised.value.detail == {"name": "nightly"}


def test_replacing_a_schedule_upserts_and_answers_the_stored_state() -> None:
    """The definition is replaced; the pause and the last tick stay as stored."""
    stored = schedule_row(paused=1, last_tick_ms=CREATED_MS - 1000, declared=1)
    script = Script(("upsert_schedule", rows(stored)))
    declared = dataclasses.replace(SCHEDULE, declared=True)
    saved = script.run(coordination.save_schedule(declared, True))
    assert script.issued == [Statement("upsert_schedule", {**SCHEDULE_PARAMS, "declared": True})]
    assert (saved.paused, saved.last_tick_ms, saved.declared) == (True, CREATED_MS - 1000, True)


def plan_functions() -> Iterator[str]:
    for module in (plans, coordination):
        for name, value in vars(module).items():
            if inspect.isgeneratorfunction(value) and value.__module__ == module.__name__:
                yield f"{module.__name__.rsplit('.', 1)[1]}.{name}"


# -- deletion and retention (migration 0008) --------------------------------------------------

DELETED_ROWS = (
    ("delete_workflow_attributes", changed(2)),
    ("delete_workflow_steps", changed(3)),
    ("delete_workflow_messages", changed(1)),
    ("delete_workflow_events", changed(1)),
    ("delete_workflow_streams", NOTHING),
)


def test_deleting_workflows_locks_the_finished_ones_then_deletes_all_their_rows() -> None:
    script = Script(
        ("lock_finished_workflows", rows({"workflow_id": "a"})),  # "b" is running: left alone
        *DELETED_ROWS,
        ("delete_workflow_rows", rows({"workflow_id": "a"})),
    )
    assert script.run(plans.delete_workflows(["a", "b"])) == ["a"]
    assert all(s.params["workflow_ids"] == ["a"] for s in script.issued[1:])


def test_deleting_nothing_finished_issues_no_delete() -> None:
    script = Script(("lock_finished_workflows", NOTHING))
    assert script.run(plans.delete_workflows(["running"])) == []


def test_a_retention_batch_deletes_what_it_selected() -> None:
    script = Script(
        ("expired_workflows", rows({"workflow_id": "old-1"}, {"workflow_id": "old-2"})),
        *DELETED_ROWS,
        ("delete_workflow_rows", rows({"workflow_id": "old-1"}, {"workflow_id": "old-2"})),
    )
    deleted = script.run(plans.delete_expired(WorkflowStatus.SUCCESS, 7 * 86_400_000, 500))
    assert deleted == ["old-1", "old-2"]
    assert script.issued[0].params == {
        "status": "SUCCESS",
        "retention_ms": 7 * 86_400_000,
        "limit": 500,
    }


def test_a_subject_key_is_inserted_unless_present_then_read_back() -> None:
    script = Script(
        ("insert_subject_key", NOTHING),  # a concurrent writer's key won
        ("get_subject_key", rows({"key_id": "theirs", "wrapped_key": "m1:abc"})),
    )
    found = script.run(plans.create_subject_key("customer:c-7", key_id="ours", wrapped_key="m1:x"))
    assert found == ("theirs", "m1:abc")
    assert script.issued[0].params["subject"] == "customer:c-7"


def test_every_plan_is_covered_here() -> None:
    """A new plan fails this test until it is driven by tests here."""
    assert sorted(plan_functions()) == [
        "coordination.dequeue",
        "coordination.save_schedule",
        "plans._delete_rows",
        "plans._send_to_key",
        "plans.claim_pending_messages",
        "plans.create_subject_key",
        "plans.delete_expired",
        "plans.delete_workflows",
        "plans.deliver_message",
        "plans.finish_after_step",
        "plans.fork_workflow",
        "plans.get_workflow",
        "plans.insert_workflow",
        "plans.insert_workflow_in_transaction",
        "plans.record_step",
        "plans.recv_message",
        "plans.rewrap_subject_keys",
        "plans.rowcount_plan",
        "plans.rows_plan",
        "plans.send_message",
        "plans.send_to_key",
        "plans.set_attributes",
        "plans.set_event",
        "plans.start_child",
        "plans.subject_key",
        "plans.write_stream",
    ]
