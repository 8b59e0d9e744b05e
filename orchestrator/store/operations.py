"""The Store protocol's data methods, written once for both databases: each runs a plan
(plans.py) on the store's own connection (``SQLStore._run``)."""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Collection
from typing import TypeVar

from orchestrator.errors import (
    InvalidArgumentError,
)
from orchestrator.store import plans
from orchestrator.store.base import (
    MigrationState,
    NewWorkflow,
    NotificationHandler,
    StepRecord,
    StreamEntry,
    WorkflowQuery,
    WorkflowRecord,
)
from orchestrator.store.plans import (
    Plan,
    rowcount_plan,
    rows_plan,
    step_from_row,
    workflow_from_row,
)
from orchestrator.types import WorkflowStatus

T = TypeVar("T")


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
        plan = functools.partial(plans.insert_workflow, new, conflict=False)
        return await self._run(plan, transaction=False)

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        """The workflow's row, or None."""
        return await self._run(
            functools.partial(plans.get_workflow, workflow_id), transaction=False
        )

    async def list_workflows(self, query: WorkflowQuery) -> list[WorkflowRecord]:
        """Rows matching ``query``, ordered by created_at (then workflow_id)."""
        if query.limit < 0 or query.offset < 0:
            raise InvalidArgumentError("limit and offset must not be negative")
        ids = query.workflow_ids
        plan = functools.partial(
            rows_plan,
            "list_workflows_ascending" if query.ascending else "list_workflows",
            statuses=plans.statuses(query.statuses),
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
        epoch: int | None = None,
    ) -> bool:
        """Write a final status if the workflow is still running (in ``epoch``, if given)."""
        if not WorkflowStatus(status).is_terminal:
            raise InvalidArgumentError(f"{status} is not a final status")
        plan = functools.partial(
            rowcount_plan,
            "finish_workflow",
            workflow_id=workflow_id,
            status=WorkflowStatus(status).value,
            output=output,
            error=error,
            epoch=epoch,
        )
        return await self._run(plan, transaction=False) > 0

    async def finish_after_step(self, step: StepRecord, output: str | None) -> bool | None:
        """Record the last step and write SUCCESS while PENDING, in one transaction."""
        plan = functools.partial(plans.finish_after_step, step, output)
        return await self._run(plan, transaction=True)

    async def transition_workflow(
        self,
        workflow_id: str,
        to_status: WorkflowStatus,
        *,
        from_statuses: Collection[WorkflowStatus],
        error: str | None = None,
        epoch: int | None = None,
    ) -> WorkflowRecord | None:
        """Set ``to_status`` if the status is one of ``from_statuses`` (in ``epoch``, if
        given); the row or None."""
        to_status = WorkflowStatus(to_status)
        plan = functools.partial(
            rows_plan,
            "transition_workflow",
            workflow_id=workflow_id,
            to_status=to_status.value,
            terminal=to_status.is_terminal,
            from_statuses=plans.statuses(from_statuses),
            error=error,
            epoch=epoch,
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
            from_statuses=plans.statuses(from_statuses),
        )
        rows = await self._run(plan, transaction=False)
        return workflow_from_row(rows[0]) if rows else None

    async def begin_rollback(self, workflow_id: str, after_step: int, epoch: int) -> int | None:
        """Remember where a rollback's compensations begin (see Store.begin_rollback)."""
        plan = functools.partial(
            rows_plan, "begin_rollback", workflow_id=workflow_id, after_step=after_step, epoch=epoch
        )
        rows = await self._run(plan, transaction=False)
        return int(rows[0]["rollback_after_step"]) if rows else None

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
        plan = functools.partial(plans.record_step, step, required=False)
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
        return await self._run(functools.partial(plans.start_child, child, step), transaction=True)

    async def fork_workflow(
        self, new: NewWorkflow, source_workflow_id: str, before_step: int
    ) -> WorkflowRecord:
        """Create ``new`` with the source's steps numbered below ``before_step``."""
        plan = functools.partial(plans.fork_workflow, new, source_workflow_id, before_step)
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
            plans.send_message, destination_id, topic, payload, idempotency_key, step
        )
        return await self._run(plan, transaction=True)

    async def recv_message(self, workflow_id: str, topic: str, step: StepRecord) -> str | None:
        """Consume the oldest message on (workflow_id, topic) and record ``step``."""
        plan = functools.partial(plans.recv_message, workflow_id, topic, step)
        return await self._run(plan, transaction=True)

    async def set_event(
        self, workflow_id: str, key: str, value: str, step: StepRecord | None
    ) -> None:
        """Upsert the event (and record ``step``) in one transaction."""
        plan = functools.partial(plans.set_event, workflow_id, key, value, step)
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
        plan = functools.partial(plans.write_stream, workflow_id, key, value, closed, step)
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
