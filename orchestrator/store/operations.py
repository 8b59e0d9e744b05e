"""The Store's operations, written once as dialect-neutral plans of named queries.

A plan is a generator: it yields a ``Statement`` (a query name from ``queries.sql`` and its
parameters), receives the ``Result``, and returns the operation's answer. Each store drives the
plans with its own connection (``SQLStore._run``), so the logic lives here once and PostgreSQL
and SQLite only differ in their SQL text, connections and error translation.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Callable, Collection, Generator, Mapping
from typing import Any, TypeAlias, TypeVar

from orchestrator.errors import (
    DuplicateWorkflowError,
    InvalidArgumentError,
    WorkflowConflictError,
    WorkflowFinishedError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from orchestrator.store.base import (
    MigrationState,
    NewWorkflow,
    NotificationHandler,
    StepRecord,
    StreamEntry,
    WorkflowQuery,
    WorkflowRecord,
)
from orchestrator.types import StepKind, WorkflowStatus

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Statement:
    """One query to run: its name in ``queries.sql`` and its named parameters."""

    name: str
    params: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """What a statement gave back: its rows as dicts, and how many rows it changed."""

    rows: list[dict[str, Any]]
    rowcount: int

    def one(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None


Plan: TypeAlias = Generator[Statement, Result, T]

_WORKFLOW_FIELDS = tuple(field.name for field in dataclasses.fields(WorkflowRecord))
_NEW_WORKFLOW_FIELDS = tuple(field.name for field in dataclasses.fields(NewWorkflow))
_STEP_FIELDS = tuple(field.name for field in dataclasses.fields(StepRecord))


# -- rows <-> records -----------------------------------------------------------------------


def workflow_from_row(row: Mapping[str, Any]) -> WorkflowRecord:
    """A ``workflows`` row (extra columns ignored) as a WorkflowRecord."""
    values = {name: row[name] for name in _WORKFLOW_FIELDS}
    values["status"] = WorkflowStatus(values["status"])
    return WorkflowRecord(**values)


def step_from_row(row: Mapping[str, Any]) -> StepRecord:
    """A ``steps`` row (extra columns ignored) as a StepRecord."""
    values = {name: row[name] for name in _STEP_FIELDS}
    values["kind"] = StepKind(values["kind"])
    return StepRecord(**values)


def _workflow_params(new: NewWorkflow) -> dict[str, Any]:
    params = {name: getattr(new, name) for name in _NEW_WORKFLOW_FIELDS}
    params["status"] = new.status.value
    return params


def step_params(step: StepRecord) -> dict[str, Any]:
    params = {name: getattr(step, name) for name in _STEP_FIELDS}
    params["kind"] = step.kind.value
    return params


def _statuses(statuses: Collection[WorkflowStatus] | None) -> list[str] | None:
    return None if statuses is None else [WorkflowStatus(status).value for status in statuses]


# -- plans ----------------------------------------------------------------------------------


def _insert_workflow(new: NewWorkflow, *, conflict: bool) -> Plan[tuple[WorkflowRecord, bool]]:
    """Insert ``new``; an existing id gives (existing, False), or WorkflowConflictError if
    ``conflict``; a dedup id already active on the queue gives DuplicateWorkflowError."""
    inserted = (yield Statement("insert_workflow", _workflow_params(new))).one()
    if inserted is not None:
        return workflow_from_row(inserted), True
    existing = (yield Statement("get_workflow", {"workflow_id": new.workflow_id})).one()
    if existing is not None:
        if conflict:
            raise WorkflowConflictError(
                f"workflow id {new.workflow_id!r} is already taken; choose another id",
                workflow_id=new.workflow_id,
            )
        return workflow_from_row(existing), False
    holder = (
        yield Statement(
            "get_workflow_by_dedup", {"queue_name": new.queue_name, "dedup_id": new.dedup_id}
        )
    ).one()
    holder_id = None if holder is None else holder["workflow_id"]
    raise DuplicateWorkflowError(
        f"dedup id {new.dedup_id!r} is already active on queue {new.queue_name!r}"
        f" (workflow {holder_id!r}); wait until it finishes or use another dedup id",
        queue_name=new.queue_name,
        dedup_id=new.dedup_id,
        workflow_id=holder_id,
    )


def _record_step(step: StepRecord, *, required: bool) -> Plan[WorkflowStatus | None]:
    """Insert the step unless its number is taken; answer the workflow's status (None: the
    number was taken). When ``required``, a taken number raises WorkflowStateError (rolling
    back the whole transaction)."""
    row = (yield Statement("record_step", step_params(step))).one()
    if row is None and required:
        raise WorkflowStateError(
            f"cannot record step {step.step_number} of workflow {step.workflow_id!r}: that"
            " step number is already recorded",
            workflow_id=step.workflow_id,
            step_number=step.step_number,
        )
    return None if row is None else WorkflowStatus(row["status"])


def _finish_after_step(step: StepRecord, output: str | None) -> Plan[bool | None]:
    if (yield from _record_step(step, required=False)) is None:
        return None  # the number was taken: this transaction wrote nothing
    params = {
        "workflow_id": step.workflow_id,
        "status": WorkflowStatus.SUCCESS.value,
        "output": output,
    }
    return (yield Statement("finish_pending_workflow", params)).rowcount > 0


def _get_workflow(workflow_id: str) -> Plan[WorkflowRecord | None]:
    row = (yield Statement("get_workflow", {"workflow_id": workflow_id})).one()
    return None if row is None else workflow_from_row(row)


def _start_child(child: NewWorkflow, step: StepRecord) -> Plan[tuple[WorkflowRecord, bool]]:
    answer = yield from _insert_workflow(child, conflict=False)
    yield from _record_step(step, required=False)
    return answer


def _fork_workflow(new: NewWorkflow, source_id: str, before_step: int) -> Plan[WorkflowRecord]:
    if (yield from _get_workflow(source_id)) is None:
        raise WorkflowNotFoundError(f"no workflow {source_id!r} to fork", workflow_id=source_id)
    record, _ = yield from _insert_workflow(new, conflict=True)
    yield Statement(
        "copy_steps",
        {"workflow_id": new.workflow_id, "source_id": source_id, "before_step": before_step},
    )
    return record


def _send_message(
    destination_id: str,
    topic: str,
    payload: str,
    idempotency_key: str | None,
    step: StepRecord | None,
) -> Plan[bool]:
    destination = yield from _get_workflow(destination_id)
    if destination is None:
        raise WorkflowNotFoundError(
            f"no workflow {destination_id!r} to send a message to", workflow_id=destination_id
        )
    if idempotency_key is not None:  # a redelivery answers as the first delivery did
        key = {"destination_id": destination_id, "idempotency_key": idempotency_key}
        if (yield Statement("message_key_used", key)).one() is not None:
            return False
    if destination.status.is_terminal:
        raise WorkflowFinishedError(
            f"workflow {destination_id!r} has finished ({destination.status}):"
            " it will never receive this message",
            workflow_id=destination_id,
            status=destination.status.value,
        )
    params = {
        "destination_id": destination_id,
        "topic": topic,
        "payload": payload,
        "idempotency_key": idempotency_key,
    }
    if (yield Statement("insert_message", params)).rowcount == 0:
        return False
    if step is not None:
        yield from _record_step(step, required=True)
    return True


def _recv_message(workflow_id: str, topic: str, step: StepRecord) -> Plan[str | None]:
    params = {"workflow_id": workflow_id, "topic": topic}
    row = (yield Statement("consume_message", params)).one()
    if row is None:
        return None
    payload: str = row["payload"]
    yield from _record_step(dataclasses.replace(step, output=payload), required=True)
    return payload


def _set_event(workflow_id: str, key: str, value: str, step: StepRecord | None) -> Plan[None]:
    yield Statement("set_event", {"workflow_id": workflow_id, "key": key, "value": value})
    if step is not None:
        yield from _record_step(step, required=True)


def _write_stream(
    workflow_id: str, key: str, value: str | None, closed: bool, step: StepRecord
) -> Plan[None]:
    params = {"workflow_id": workflow_id, "key": key, "value": value, "closed": closed}
    if (yield Statement("append_stream", params)).rowcount == 0:
        raise WorkflowStateError(
            f"stream {key!r} of workflow {workflow_id!r} is closed: nothing more can be written",
            workflow_id=workflow_id,
            key=key,
        )
    yield from _record_step(step, required=True)


def rows_plan(query: str, /, **params: Any) -> Plan[list[dict[str, Any]]]:
    return (yield Statement(query, params)).rows


def rowcount_plan(query: str, /, **params: Any) -> Plan[int]:
    return (yield Statement(query, params)).rowcount


# -- the Store methods, over any driver -----------------------------------------------------


class SQLStore(abc.ABC):
    """The Store protocol's data methods; a subclass runs the plans on its database."""

    dialect: str

    @abc.abstractmethod
    async def _run(self, plan: Callable[[], Plan[T]], *, transaction: bool) -> T:
        """Drive a fresh ``plan()`` to its end; in one transaction when ``transaction``."""

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def migrate(self) -> list[str]: ...

    @abc.abstractmethod
    async def migration_state(self) -> MigrationState: ...

    @abc.abstractmethod
    async def listen(self, handler: NotificationHandler) -> None: ...

    async def now_ms(self) -> int:
        """The database clock, epoch milliseconds."""
        rows = await self._run(functools.partial(rows_plan, "now_ms"), transaction=False)
        return int(rows[0]["now"])

    async def create_workflow(self, new: NewWorkflow) -> tuple[WorkflowRecord, bool]:
        """Insert ``new`` unless its id exists; return (the row now stored, created?)."""
        plan = functools.partial(_insert_workflow, new, conflict=False)
        return await self._run(plan, transaction=False)

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        """The workflow's row, or None."""
        return await self._run(functools.partial(_get_workflow, workflow_id), transaction=False)

    async def list_workflows(self, query: WorkflowQuery) -> list[WorkflowRecord]:
        """Rows matching ``query``, ordered by created_at (then workflow_id)."""
        if query.limit < 0 or query.offset < 0:
            raise InvalidArgumentError("limit and offset must not be negative")
        ids = query.workflow_ids
        plan = functools.partial(
            rows_plan,
            "list_workflows_ascending" if query.ascending else "list_workflows",
            statuses=_statuses(query.statuses),
            name=query.name,
            queue_name=query.queue_name,
            executor_id=query.executor_id,
            parent_workflow_id=query.parent_workflow_id,
            created_after_ms=query.created_after_ms,
            created_before_ms=query.created_before_ms,
            workflow_ids=None if ids is None else list(ids),
            limit=query.limit,
            offset=query.offset,
        )
        return [workflow_from_row(row) for row in await self._run(plan, transaction=False)]

    async def finish_workflow(
        self,
        workflow_id: str,
        status: WorkflowStatus,
        *,
        output: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Write a final status if the workflow is still running; False otherwise."""
        if not WorkflowStatus(status).is_terminal:
            raise InvalidArgumentError(f"{status} is not a final status")
        plan = functools.partial(
            rowcount_plan,
            "finish_workflow",
            workflow_id=workflow_id,
            status=WorkflowStatus(status).value,
            output=output,
            error=error,
        )
        return await self._run(plan, transaction=False) > 0

    async def finish_after_step(self, step: StepRecord, output: str | None) -> bool | None:
        """Record the last step and write SUCCESS while PENDING, in one transaction."""
        plan = functools.partial(_finish_after_step, step, output)
        return await self._run(plan, transaction=True)

    async def transition_workflow(
        self,
        workflow_id: str,
        to_status: WorkflowStatus,
        *,
        from_statuses: Collection[WorkflowStatus],
        error: str | None = None,
    ) -> WorkflowRecord | None:
        """Set ``to_status`` if the status is one of ``from_statuses``; the row or None."""
        to_status = WorkflowStatus(to_status)
        plan = functools.partial(
            rows_plan,
            "transition_workflow",
            workflow_id=workflow_id,
            to_status=to_status.value,
            terminal=to_status.is_terminal,
            from_statuses=_statuses(from_statuses),
            error=error,
        )
        rows = await self._run(plan, transaction=False)
        return workflow_from_row(rows[0]) if rows else None

    async def resume_workflow(
        self,
        workflow_id: str,
        executor_id: str,
        app_version: str | None,
        *,
        from_statuses: Collection[WorkflowStatus],
        to_status: WorkflowStatus = WorkflowStatus.PENDING,
    ) -> WorkflowRecord | None:
        """Run the workflow again on ``executor_id`` as ``to_status``; the row or None."""
        plan = functools.partial(
            rows_plan,
            "resume_workflow",
            workflow_id=workflow_id,
            to_status=WorkflowStatus(to_status).value,
            executor_id=executor_id,
            app_version=app_version,
            from_statuses=_statuses(from_statuses),
        )
        rows = await self._run(plan, transaction=False)
        return workflow_from_row(rows[0]) if rows else None

    async def claim_for_recovery(
        self, executor_id: str, app_version: str | None
    ) -> list[WorkflowRecord]:
        """Count one more recovery attempt on each running workflow of ``executor_id``."""
        plan = functools.partial(
            rows_plan, "claim_for_recovery", executor_id=executor_id, app_version=app_version
        )
        records = [workflow_from_row(row) for row in await self._run(plan, transaction=False)]
        return sorted(records, key=lambda record: (record.created_at, record.workflow_id))

    async def load_steps(self, workflow_id: str) -> list[StepRecord]:
        """All recorded steps of a workflow by step_number."""
        plan = functools.partial(rows_plan, "load_steps", workflow_id=workflow_id)
        return [step_from_row(row) for row in await self._run(plan, transaction=False)]

    async def record_step(self, step: StepRecord) -> WorkflowStatus | None:
        """Insert the step unless its number is taken; the workflow's status, or None."""
        plan = functools.partial(_record_step, step, required=False)
        return await self._run(plan, transaction=False)

    async def delete_steps(self, workflow_id: str, from_step: int) -> int:
        """Delete the steps numbered ``from_step`` and above; return how many."""
        plan = functools.partial(
            rowcount_plan, "delete_steps", workflow_id=workflow_id, from_step=from_step
        )
        return await self._run(plan, transaction=False)

    async def start_child(
        self, child: NewWorkflow, step: StepRecord
    ) -> tuple[WorkflowRecord, bool]:
        """Create the child workflow and record the parent's step, atomically."""
        return await self._run(functools.partial(_start_child, child, step), transaction=True)

    async def fork_workflow(
        self, new: NewWorkflow, source_workflow_id: str, before_step: int
    ) -> WorkflowRecord:
        """Create ``new`` with the source's steps numbered below ``before_step``."""
        plan = functools.partial(_fork_workflow, new, source_workflow_id, before_step)
        return await self._run(plan, transaction=True)

    async def send_message(
        self,
        destination_id: str,
        topic: str,
        payload: str,
        idempotency_key: str | None,
        step: StepRecord | None = None,
    ) -> bool:
        """Add a message for an active workflow; False if the idempotency key was used."""
        plan = functools.partial(
            _send_message, destination_id, topic, payload, idempotency_key, step
        )
        return await self._run(plan, transaction=True)

    async def recv_message(self, workflow_id: str, topic: str, step: StepRecord) -> str | None:
        """Consume the oldest message on (workflow_id, topic) and record ``step``."""
        plan = functools.partial(_recv_message, workflow_id, topic, step)
        return await self._run(plan, transaction=True)

    async def set_event(
        self, workflow_id: str, key: str, value: str, step: StepRecord | None
    ) -> None:
        """Upsert the event (and record ``step``) in one transaction."""
        plan = functools.partial(_set_event, workflow_id, key, value, step)
        await self._run(plan, transaction=step is not None)

    async def get_event(self, workflow_id: str, key: str) -> str | None:
        """The event's JSON value, or None if it was never set."""
        plan = functools.partial(rows_plan, "get_event", workflow_id=workflow_id, key=key)
        rows = await self._run(plan, transaction=False)
        return str(rows[0]["value"]) if rows else None

    async def get_events(self, workflow_id: str) -> dict[str, str]:
        """Every event of the workflow: key -> JSON value."""
        plan = functools.partial(rows_plan, "get_events", workflow_id=workflow_id)
        return {row["key"]: row["value"] for row in await self._run(plan, transaction=False)}

    async def write_stream(
        self, workflow_id: str, key: str, value: str | None, *, closed: bool, step: StepRecord
    ) -> None:
        """Append a value (or the closing row) to a stream and record ``step``."""
        plan = functools.partial(_write_stream, workflow_id, key, value, closed, step)
        await self._run(plan, transaction=True)

    async def read_stream(
        self, workflow_id: str, key: str, from_position: int
    ) -> list[StreamEntry]:
        """Stream entries at ``from_position`` and after, in order."""
        plan = functools.partial(
            rows_plan, "read_stream", workflow_id=workflow_id, key=key, from_position=from_position
        )
        return [
            StreamEntry(position=row["position"], value=row["value"], closed=bool(row["closed"]))
            for row in await self._run(plan, transaction=False)
        ]
