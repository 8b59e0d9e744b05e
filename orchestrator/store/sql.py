"""SQLStore: the Store protocol, written once for both databases. Each method runs a plan of
named queries (plans.py, coordination.py) on the store's Driver, which owns the connections
and translates the database's errors (postgres.py, sqlite.py). PostgreSQL's store also group-
commits its hot-path writes (postgres_writes.py); nothing else differs by dialect."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from orchestrator.errors import (
    InvalidArgumentError,
)
from orchestrator.store import coordination, plans
from orchestrator.store.base import (
    AuditRecord,
    DequeueRequest,
    DequeueResult,
    KeyedDelivery,
    KeyedMessage,
    MessageSealer,
    MigrationState,
    NewAudit,
    NewWorkflow,
    NotificationHandler,
    QueueStats,
    ScheduleRecord,
    StepRecord,
    StreamEntry,
    VersionRecord,
    WorkerRecord,
    WorkflowQuery,
    WorkflowRecord,
    WrappedSubjectKey,
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


class Driver(Protocol):
    """A database connection for SQLStore: runs plans, and opens, migrates and listens."""

    dialect: str
    poll_seconds: float | None
    connection_failures: int

    async def run(self, plan: Callable[[], Plan[T]], *, transaction: bool) -> T:
        """Drive a fresh ``plan()`` to its end; in one transaction when ``transaction``."""

    async def run_in(self, connection: object, plan: Callable[[], Plan[T]]) -> T:
        """Drive ``plan()`` on the caller's ``connection`` inside its transaction, without
        committing; ConfigurationError where the database cannot."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def migrate(self) -> list[str]: ...

    async def migration_state(self) -> MigrationState: ...

    async def listen(self, handler: NotificationHandler) -> None: ...


class SQLStore:
    """The Store protocol over a Driver (see the module docstring). ``sealer`` seals a message
    sent by business key for the workflow that gets it, in the transaction that finds it (see
    MessageSealer); None: stored as sent."""

    def __init__(self, driver: Driver, sealer: MessageSealer | None = None) -> None:
        self.driver = driver
        self.dialect = driver.dialect
        self.poll_seconds = driver.poll_seconds
        self.sealer = sealer

    @property
    def connection_failures(self) -> int:
        """Statements that met a lost connection (see Store)."""
        return self.driver.connection_failures

    async def _run(self, plan: Callable[[], Plan[T]], *, transaction: bool) -> T:
        return await self.driver.run(plan, transaction=transaction)

    # -- life cycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and apply pending migrations."""
        await self.driver.open()

    async def close(self) -> None:
        """Stop listening and close every connection."""
        await self.driver.close()

    async def migrate(self) -> list[str]:
        """Apply pending migrations under a lock; the names applied now."""
        return await self.driver.migrate()

    async def migration_state(self) -> MigrationState:
        """What is applied and what is available."""
        return await self.driver.migration_state()

    async def listen(self, handler: NotificationHandler) -> None:
        """Deliver notifications to ``handler`` (see Store.listen)."""
        await self.driver.listen(handler)

    # -- workflows --------------------------------------------------------------------------
    async def now_ms(self) -> int:
        """The database clock, epoch milliseconds."""
        rows = await self._run(functools.partial(rows_plan, "now_ms"), transaction=False)
        return int(rows[0]["now"])

    async def create_workflow(self, new: NewWorkflow) -> tuple[WorkflowRecord, bool]:
        """Insert ``new`` unless its id exists; return (the row now stored, created?)."""
        plan = functools.partial(plans.insert_workflow, new, conflict=False, sealer=self.sealer)
        return await self._run(plan, transaction=bool(new.attributes))  # the row with its
        # attributes, or neither

    async def create_workflow_in(
        self, connection: object, new: NewWorkflow
    ) -> tuple[WorkflowRecord, bool]:
        """Insert ``new`` in the caller's transaction on ``connection`` (see Store)."""
        plan = functools.partial(plans.insert_workflow_in_transaction, new, self.sealer)
        return await self.driver.run_in(connection, plan)

    async def claim_workflow(
        self, workflow_id: str, executor_id: str, app_version: str | None
    ) -> WorkflowRecord | None:
        """Take a PENDING workflow nobody runs to run it on ``executor_id`` (see Store)."""
        plan = functools.partial(
            rows_plan,
            "claim_workflow",
            workflow_id=workflow_id,
            executor_id=executor_id,
            app_version=app_version,
        )
        rows = await self._run(plan, transaction=False)
        return workflow_from_row(rows[0]) if rows else None

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        """The workflow's row, or None."""
        return await self._run(
            functools.partial(plans.get_workflow, workflow_id), transaction=False
        )

    async def get_workflows(self, workflow_ids: Sequence[str]) -> list[WorkflowRecord]:
        """The rows of those of ``workflow_ids`` that exist, in any order."""
        plan = functools.partial(rows_plan, "get_workflows", workflow_ids=list(workflow_ids))
        return [workflow_from_row(row) for row in await self._run(plan, transaction=False)]

    async def list_workflows(self, query: WorkflowQuery) -> list[WorkflowRecord]:
        """Rows matching ``query``, ordered by created_at (then workflow_id)."""
        return [record for record, _ in await self.list_workflows_keyed(query)]

    async def list_workflows_keyed(
        self, query: WorkflowQuery
    ) -> list[tuple[WorkflowRecord, tuple[int, int]]]:
        """Rows matching ``query`` with their keyset positions (created_at, seq)."""
        if query.limit < 0 or query.offset < 0:
            raise InvalidArgumentError("limit and offset must not be negative")
        after = query.after
        plan = functools.partial(
            rows_plan,
            "list_workflows_ascending" if query.ascending else "list_workflows",
            **_filters(query),
            cursor_created=None if after is None else after[0],
            cursor_seq=None if after is None else after[1],
            limit=query.limit,
            offset=query.offset,
        )
        rows = await self._run(plan, transaction=False)
        return [(workflow_from_row(row), (row["created_at"], row["cursor_seq"])) for row in rows]

    async def count_workflows(self, query: WorkflowQuery) -> dict[WorkflowStatus, int]:
        """How many workflows match ``query``'s filters, per status (absent: none)."""
        plan = functools.partial(rows_plan, "count_workflows", **_filters(query))
        rows = await self._run(plan, transaction=False)
        return {WorkflowStatus(row["status"]): int(row["n"]) for row in rows}

    async def record_audit(self, entry: NewAudit) -> AuditRecord:
        """Append one operator action to the audit log."""
        plan = functools.partial(
            rows_plan,
            "record_audit",
            actor=entry.actor,
            role=entry.role,
            surface=entry.surface,
            action=entry.action,
            workflow_id=entry.workflow_id,
            reason=entry.reason,
            detail=entry.detail,
        )
        rows = await self._run(plan, transaction=True)
        return _audit_from_row(rows[0])

    async def list_audit(
        self,
        *,
        workflow_id: str | None = None,
        action: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Operator actions, newest first."""
        plan = functools.partial(
            rows_plan,
            "list_audit",
            workflow_id=workflow_id,
            action=action,
            before_id=before_id,
            limit=limit,
        )
        return [_audit_from_row(row) for row in await self._run(plan, transaction=False)]

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

    async def finish_after_step(
        self, step: StepRecord, output: str | None, *, recv_topic: str | None = None
    ) -> bool | None:
        """Record the last step and write SUCCESS while PENDING, in one transaction."""
        plan = functools.partial(plans.finish_after_step, step, output, recv_topic)
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
        return _oldest_first(await self._run(plan, transaction=False))

    async def claim_orphans(
        self,
        executor_id: str,
        app_version: str | None,
        running: Sequence[str],
        settled_ms: int,
        limit: int,
    ) -> list[WorkflowRecord]:
        """This executor's unfinished workflows no run holds, in a new epoch (see Store)."""
        plan = functools.partial(
            rows_plan,
            "claim_orphans",
            executor_id=executor_id,
            app_version=app_version,
            running=list(running),
            settled_ms=settled_ms,
            limit=limit,
        )
        return _oldest_first(await self._run(plan, transaction=False))

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
        plan = functools.partial(plans.start_child, child, step, self.sealer)
        return await self._run(plan, transaction=True)

    async def fork_workflow(
        self, new: NewWorkflow, source_workflow_id: str, before_step: int
    ) -> WorkflowRecord:
        """Create ``new`` with the source's steps numbered below ``before_step``."""
        plan = functools.partial(
            plans.fork_workflow, new, source_workflow_id, before_step, self.sealer
        )
        return await self._run(plan, transaction=True)

    async def send_message(
        self,
        destination_id: str,
        topic: str,
        payload: str,
        idempotency_key: str | None,
        step: StepRecord | None = None,
    ) -> bool:
        """Add a message for an active workflow; False if the idempotency key was used. A send
        from outside workflows without a key gets one (plans.retry_key), so a retry after a lost
        commit answer stores it once (and answers True)."""
        generated = step is None and idempotency_key is None
        key = plans.retry_key() if generated else idempotency_key
        plan = functools.partial(plans.send_message, destination_id, topic, payload, key, step)
        return await self._run(plan, transaction=True) or generated

    async def send_message_in(
        self,
        connection: object,
        destination_id: str,
        topic: str,
        payload: str,
        idempotency_key: str | None,
    ) -> bool:
        """Add a message in the caller's transaction on ``connection`` (see Store)."""
        plan = functools.partial(
            plans.send_message, destination_id, topic, payload, idempotency_key, None
        )
        return await self.driver.run_in(connection, plan)

    async def send_to_key(
        self, message: KeyedMessage, step: StepRecord | None = None
    ) -> KeyedDelivery:
        """Deliver to the key's holder or keep the message for it (see Store.send_to_key). A
        send from outside workflows without a key gets one, as send_message does."""
        generated = step is None and message.idempotency_key is None
        if generated:
            message = dataclasses.replace(message, idempotency_key=plans.retry_key())
        plan = functools.partial(
            plans.send_to_key, message, step, self.sealer, generated_key=generated
        )
        return await self._run(plan, transaction=True)

    async def deliver_message(
        self, destination_id: str, topic: str, payload: str, step: StepRecord
    ) -> bool:
        """A send to a recv parked in this process (see Store.deliver_message)."""
        plan = functools.partial(
            plans.deliver_message, destination_id, topic, payload, plans.retry_key(), step
        )
        delivered: bool = await self._run(plan, transaction=True)
        return delivered

    async def recv_message(
        self, workflow_id: str, topic: str, step: StepRecord, otherwise: StepRecord | None = None
    ) -> str | None:
        """Consume the oldest message on (workflow_id, topic) and record ``step`` (or, with
        none waiting, record ``otherwise``)."""
        plan = functools.partial(plans.recv_message, workflow_id, topic, step, otherwise)
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

    async def set_attributes(
        self, workflow_id: str, attributes: Mapping[str, str], step: StepRecord, *, limit: int
    ) -> None:
        """Set attributes and record ``step`` in one transaction (at most ``limit`` in all)."""
        plan = functools.partial(
            plans.set_attributes, workflow_id, attributes, step, limit, self.sealer
        )
        await self._run(plan, transaction=True)

    async def workflow_attributes(self, workflow_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """The attributes of these workflows (one query): id -> name -> value."""
        if not workflow_ids:
            return {}
        plan = functools.partial(
            rows_plan, "get_workflow_attributes", workflow_ids=list(workflow_ids)
        )
        found: dict[str, dict[str, str]] = {}
        for row in await self._run(plan, transaction=False):
            found.setdefault(row["workflow_id"], {})[row["name"]] = row["value"]
        return found

    async def subject_key(self, subject: str) -> tuple[str, str] | None:
        """A subject's data key as stored (key id, wrapped key), or None."""
        plan = functools.partial(rows_plan, "get_subject_key", subject=subject)
        rows = await self._run(plan, transaction=False)
        return (str(rows[0]["key_id"]), str(rows[0]["wrapped_key"])) if rows else None

    async def create_subject_key(
        self, subject: str, key_id: str, wrapped_key: str
    ) -> tuple[str, str]:
        """Store this data key unless the subject has one; returns the one it has."""
        plan = functools.partial(
            plans.create_subject_key, subject, key_id=key_id, wrapped_key=wrapped_key
        )
        return await self._run(plan, transaction=True)

    async def delete_subject_key(self, subject: str) -> bool:
        """Erase a subject's data key; False when it had none."""
        plan = functools.partial(rowcount_plan, "delete_subject_key", subject=subject)
        return await self._run(plan, transaction=True) > 0

    async def subject_keys_to_rewrap(
        self, master_key_id: str, after: str, limit: int
    ) -> list[WrappedSubjectKey]:
        """Data keys not wrapped under ``master_key_id``, a page (see Store)."""
        plan = functools.partial(
            rows_plan,
            "subject_keys_to_rewrap",
            master_key_id=master_key_id,
            after=after,
            limit=limit,
        )
        rows = await self._run(plan, transaction=False)
        return [WrappedSubjectKey(r["subject"], r["key_id"], r["wrapped_key"]) for r in rows]

    async def rewrap_subject_keys(self, rewraps: Sequence[tuple[WrappedSubjectKey, str]]) -> int:
        """Compare-and-set each key's wrapping, one transaction (see Store)."""
        if not rewraps:
            return 0
        plan = functools.partial(plans.rewrap_subject_keys, list(rewraps))
        return await self._run(plan, transaction=True)

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

    # -- queues -----------------------------------------------------------------------------
    async def dequeue(self, request: DequeueRequest) -> DequeueResult:
        """Start as many due workflows as the queue's limits allow (see Store.dequeue)."""
        if request.max_count <= 0:
            return DequeueResult(started=[])
        plan = functools.partial(coordination.dequeue, request)
        return await self._run(plan, transaction=coordination.dequeue_serialized(request))

    async def queue_stats(self, queue_name: str | None) -> list[QueueStats]:
        """Depth, running and recent starts per queue."""
        rows = await self._run(
            functools.partial(rows_plan, "queue_stats", queue_name=queue_name), transaction=False
        )
        return [
            QueueStats(
                queue_name=row["queue_name"],
                depth=int(row["depth"]),
                running=int(row["running"]),
                started_last_minute=int(row["started_last_minute"]),
            )
            for row in rows
        ]

    # -- workers ----------------------------------------------------------------------------
    async def register_worker(
        self, executor_id: str, app_version: str | None, lease_ms: int, host: str, pid: int
    ) -> int:
        """Register this executor with a fresh lease; its expiry (epoch ms)."""
        rows = await self._run(
            functools.partial(
                rows_plan,
                "register_worker",
                executor_id=executor_id,
                app_version=app_version,
                lease_ms=lease_ms,
                host=host,
                pid=pid,
            ),
            transaction=False,
        )
        return int(rows[0]["lease_expires_at"])

    async def renew_lease(self, executor_id: str, lease_ms: int) -> int | None:
        """Extend an unexpired lease; None if it had expired."""
        rows = await self._run(
            functools.partial(rows_plan, "renew_lease", executor_id=executor_id, lease_ms=lease_ms),
            transaction=False,
        )
        return int(rows[0]["lease_expires_at"]) if rows else None

    async def release_worker(self, executor_id: str) -> None:
        """Expire this executor's lease now."""
        await self._run(
            functools.partial(rowcount_plan, "release_worker", executor_id=executor_id),
            transaction=False,
        )

    async def take_over(
        self, executor_id: str, app_version: str | None, limit: int
    ) -> list[WorkflowRecord]:
        """Claim unfinished workflows of dead workers (see Store.take_over)."""
        rows = await self._run(
            functools.partial(
                rows_plan,
                "take_over",
                executor_id=executor_id,
                app_version=app_version,
                limit=limit,
            ),
            transaction=False,
        )
        await self._run(functools.partial(rowcount_plan, "forget_dead_workers"), transaction=False)
        return [workflow_from_row(row) for row in rows]

    async def owned_workflows(self, executor_id: str, workflow_ids: Sequence[str]) -> set[str]:
        """Which of ``workflow_ids`` still run on ``executor_id``."""
        if not workflow_ids:
            return set()
        rows = await self._run(
            functools.partial(
                rows_plan,
                "owned_workflows",
                executor_id=executor_id,
                workflow_ids=list(workflow_ids),
            ),
            transaction=False,
        )
        return {row["workflow_id"] for row in rows}

    async def list_workers(self) -> list[WorkerRecord]:
        """Registered workers, oldest first."""
        rows = await self._run(functools.partial(rows_plan, "list_workers"), transaction=False)
        return [coordination.worker_from_row(row) for row in rows]

    # -- application versions -------------------------------------------------------------
    async def see_version(self, app_version: str) -> None:
        await self._run(
            functools.partial(rowcount_plan, "see_version", app_version=app_version),
            transaction=False,
        )

    async def list_versions(self) -> list[VersionRecord]:
        rows = await self._run(functools.partial(rows_plan, "list_versions"), transaction=False)
        return [
            VersionRecord(
                app_version=row["app_version"],
                first_seen_ms=None if row["first_seen_ms"] is None else int(row["first_seen_ms"]),
                last_seen_ms=None if row["last_seen_ms"] is None else int(row["last_seen_ms"]),
                live_workers=int(row["live_workers"]),
                unfinished=int(row["unfinished"]),
                total=int(row["total"]),
            )
            for row in rows
        ]

    async def stranded_counts(self) -> dict[str | None, int]:
        rows = await self._run(functools.partial(rows_plan, "stranded_counts"), transaction=False)
        return {row["app_version"]: int(row["count"]) for row in rows}

    async def move_workflows(
        self, workflow_ids: Sequence[str], app_version: str
    ) -> list[WorkflowRecord]:
        if not workflow_ids:
            return []
        rows = await self._run(
            functools.partial(
                rows_plan,
                "move_workflows",
                workflow_ids=list(workflow_ids),
                app_version=app_version,
            ),
            transaction=True,
        )
        return [workflow_from_row(row) for row in rows]

    # -- deletion ---------------------------------------------------------------------------
    async def delete_workflows(self, workflow_ids: Sequence[str]) -> list[str]:
        """Delete the finished ones of these workflows, each with its steps, messages, events
        and streams, in one transaction; the ids deleted (unknown and unfinished ids are not)."""
        ids = list(dict.fromkeys(workflow_ids))
        if not ids:
            return []
        return await self._run(functools.partial(plans.delete_workflows, ids), transaction=True)

    async def delete_expired(
        self, status: WorkflowStatus, retention_ms: int, limit: int
    ) -> list[str]:
        """Delete up to ``limit`` workflows of final status ``status`` that finished more than
        ``retention_ms`` ago (database clock), in one transaction; the ids deleted."""
        if not WorkflowStatus(status).is_terminal:
            raise InvalidArgumentError(f"{status} is not a final status")
        if retention_ms < 0 or limit < 1:
            raise InvalidArgumentError("retention_ms must be >= 0 and limit >= 1")
        plan = functools.partial(plans.delete_expired, WorkflowStatus(status), retention_ms, limit)
        return await self._run(plan, transaction=True)

    # -- schedules --------------------------------------------------------------------------
    async def save_schedule(self, schedule: ScheduleRecord, *, replace: bool) -> ScheduleRecord:
        """Create (or with ``replace`` update) a schedule."""
        return await self._run(
            functools.partial(coordination.save_schedule, schedule, replace), transaction=False
        )

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule by name."""
        rows = await self._run(functools.partial(rows_plan, "list_schedules"), transaction=False)
        return [coordination.schedule_from_row(row) for row in rows]

    async def set_schedule_paused(self, name: str, paused: bool) -> ScheduleRecord | None:
        """Pause or resume a schedule; None if there is none."""
        rows = await self._run(
            functools.partial(rows_plan, "set_schedule_paused", name=name, paused=paused),
            transaction=False,
        )
        return coordination.schedule_from_row(rows[0]) if rows else None

    async def delete_schedule(self, name: str) -> bool:
        """Delete a schedule; False if there was none."""
        deleted = await self._run(
            functools.partial(rowcount_plan, "delete_schedule", name=name), transaction=False
        )
        return deleted > 0

    async def mark_schedule_tick(self, name: str, tick_ms: int) -> None:
        """Remember the latest tick that ran."""
        await self._run(
            functools.partial(rowcount_plan, "mark_schedule_tick", name=name, tick_ms=tick_ms),
            transaction=False,
        )


def _filters(query: WorkflowQuery) -> dict[str, object]:
    """The filter parameters of list_workflows and count_workflows."""
    ids = query.workflow_ids
    return {
        "statuses": plans.statuses(query.statuses),
        "name": query.name,
        "queue_name": query.queue_name,
        "executor_id": query.executor_id,
        "parent_workflow_id": query.parent_workflow_id,
        "created_after_ms": query.created_after_ms,
        "created_before_ms": query.created_before_ms,
        "workflow_ids": None if ids is None else list(ids),
        "app_version": query.app_version,
        "id_prefix": query.id_prefix,
        "stranded": query.stranded,
        "attributes": json.dumps(dict(query.attributes)) if query.attributes else None,
    }


def _audit_from_row(row: dict[str, object]) -> AuditRecord:
    return AuditRecord(**{name: row[name] for name in _AUDIT_FIELDS})  # type: ignore[arg-type]


_AUDIT_FIELDS = tuple(field.name for field in dataclasses.fields(AuditRecord))


def _oldest_first(rows: list[dict[str, Any]]) -> list[WorkflowRecord]:
    """Claimed workflows as records, oldest first (recovery resumes them in that order)."""
    records = [workflow_from_row(row) for row in rows]
    return sorted(records, key=lambda record: (record.created_at, record.workflow_id))
