"""What an operator (or a workflow) asks of stored workflows, behind the Orchestrator's methods:
cancel / resume / fork and the rollback actions, listings, queue statistics, schedules and
workers. Each call works outside a workflow (direct) and inside one (recorded as a step, so a
replay does not repeat it)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import datetime as dt
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from orchestrator.attributes import check_attributes
from orchestrator.audit import MAX_REASON_CHARS, current_actor
from orchestrator.codec import SubjectCodec
from orchestrator.engine.core import Engine
from orchestrator.engine.replay import ReplayVerdict, replay_history
from orchestrator.engine.run import durable_run
from orchestrator.engine.steps import StepFunction, call_step
from orchestrator.engine.workflows import StartOptions, WorkflowFunction, WorkflowHandle
from orchestrator.errors import (
    ConfigurationError,
    InvalidArgumentError,
    NotRegisteredError,
    OrchestratorError,
    WorkflowFinishedError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from orchestrator.history import history_document
from orchestrator.scheduler import check_cron, next_tick, schedule_input, tick_id
from orchestrator.serialization import storable_text
from orchestrator.store.base import (
    NewAudit,
    QueueStats,
    ScheduleRecord,
    Store,
    WorkflowQuery,
    WorkflowRecord,
)
from orchestrator.store.rewrapping import DEFAULT_BATCH, MAX_BATCH
from orchestrator.store.rewrapping import rewrap_data_keys as rewrap
from orchestrator.types import RUNNING_STATUSES, WorkflowStatus
from orchestrator.views import (
    AuditEntry,
    BulkFailure,
    BulkResult,
    PlannedCompensation,
    RollbackPlan,
    ScheduleInfo,
    StepInfo,
    VersionInfo,
    WorkerInfo,
    WorkflowFilter,
    WorkflowInfo,
    WorkflowPage,
    stored_json,
)

T = TypeVar("T")

# What an upgrade check replays: workflows that will run again (queued ones may have steps:
# a queued workflow taken over from a dead worker goes back to its queue with its history).
UNFINISHED = (WorkflowStatus.PENDING, WorkflowStatus.COMPENSATING, WorkflowStatus.ENQUEUED)

# What each bulk action acts on: the filter's statuses are narrowed to these.
BULK_STATUSES: dict[str, tuple[WorkflowStatus, ...]] = {
    "cancel": (WorkflowStatus.PENDING, WorkflowStatus.ENQUEUED),
    "resume": (
        WorkflowStatus.CANCELLED,
        WorkflowStatus.ERROR,
        WorkflowStatus.MAX_RECOVERY_ATTEMPTS_EXCEEDED,
    ),
    "retry_compensation": (WorkflowStatus.COMPENSATION_FAILED,),
    "delete": tuple(s for s in WorkflowStatus if s.is_terminal),
}
BULK_SAMPLE = 100  # ids a bulk result lists
BULK_MAX = 100_000  # workflows one bulk action acts on at most
BULK_PARALLEL = 8  # actions of a bulk run at once
CHILD_STATUSES = (WorkflowStatus.PENDING, WorkflowStatus.ENQUEUED)


async def _call(thunk: Callable[[], Awaitable[Any]]) -> Any:
    return await thunk()


async def _call_infos(thunk: Callable[[], Awaitable[Any]]) -> list[WorkflowInfo]:
    result: list[WorkflowInfo] = await thunk()
    return result


async def _call_steps(thunk: Callable[[], Awaitable[Any]]) -> list[StepInfo]:
    result: list[StepInfo] = await thunk()
    return result


def _reason(reason: object, *, required: bool = False) -> str | None:
    """An operator's reason: None (when allowed) or a non-empty string, bounded, that the
    audit log can store (no NUL, no lone surrogate: no database text holds them)."""
    if reason is None and not required:
        return None
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidArgumentError("a reason is required: say why (it goes to the audit log)")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidArgumentError(f"a reason is at most {MAX_REASON_CHARS} characters")
    if not storable_text(reason):
        raise InvalidArgumentError(
            "a reason must not contain NUL characters or lone surrogates", what="reason"
        )
    return reason.strip()


def encode_cursor(position: tuple[int, int]) -> str:
    """The opaque cursor of a listing's position (created_at, seq)."""
    return base64.urlsafe_b64encode(f"{position[0]}.{position[1]}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, seq = text.split(".")
        return int(created), int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgumentError(
            "invalid cursor: pass the next_cursor of the previous page unchanged", cursor=cursor
        ) from None


def _ms(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _statuses(status: object) -> list[WorkflowStatus] | None:
    if status is None:
        return None
    raw: list[Any] = list(status) if isinstance(status, list | tuple) else [status]
    try:
        return [WorkflowStatus(s) for s in raw]
    except ValueError:
        raise InvalidArgumentError(
            f"unknown status {status!r}; use one of {', '.join(WorkflowStatus)}"
        ) from None


def filter_query(
    filters: WorkflowFilter, *, limit: int = 100, after: tuple[int, int] | None = None
) -> WorkflowQuery:
    """The store query of a filter (validated)."""
    if not isinstance(filters, WorkflowFilter):
        raise InvalidArgumentError("filter must be a WorkflowFilter")
    for text, what in (
        (filters.name, "name"),
        (filters.queue, "queue"),
        (filters.app_version, "app_version"),
        (filters.id_prefix, "id_prefix"),
        (filters.parent_workflow_id, "parent_workflow_id"),
    ):
        if text is not None and not _nonempty(text):
            raise InvalidArgumentError(f"{what} must be a non-empty string (or None)")
    return WorkflowQuery(
        statuses=_statuses(filters.status),
        name=filters.name,
        queue_name=filters.queue,
        parent_workflow_id=filters.parent_workflow_id,
        created_after_ms=_ms(filters.created_after),
        created_before_ms=_ms(filters.created_before),
        app_version=filters.app_version,
        stranded=filters.stranded,
        id_prefix=filters.id_prefix,
        attributes=None if filters.attributes is None else _attribute_filter(filters.attributes),
        after=after,
        limit=limit,
    )


def _attribute_filter(attributes: object) -> dict[str, str]:
    """A filter's attributes: valid names and values (a number matches its text)."""
    return check_attributes(attributes, what="the attribute filter")


def _nonempty(value: object) -> bool:
    """A non-empty string (checked at run time: callers pass what the caller sent)."""
    return isinstance(value, str) and bool(value)


_OPERATIONS: dict[Callable[..., Any], StepFunction[Any, Any]] = {
    op: StepFunction(op, name=op.__name__) for op in (_call, _call_infos, _call_steps)
}


class Administration:
    """The operator's calls, given the engine and the store they act on."""

    def __init__(
        self,
        engine: Engine,
        store: Store,
        workflow_of: Callable[[WorkflowFunction[Any, Any] | str], WorkflowFunction[Any, Any]],
        *,
        reads: Store | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        # Where listings read: the store, or a replica (read_database_url; may lag behind).
        self.reads = store if reads is None else reads
        self._workflow_of = workflow_of

    async def _op(self, thunk: Callable[[], Awaitable[T]], op: Callable[..., Any] = _call) -> T:
        """Run a management call, recorded as a step (named after ``thunk``) when made
        inside a workflow."""
        result: T = await call_step(_OPERATIONS[op], (thunk,), {}, name=thunk.__name__)
        return result

    async def _audit(
        self,
        action: str,
        *,
        workflow_id: str | None = None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
        by: str | None = None,
    ) -> None:
        """Append an operator action to the audit log, as whoever acts now."""
        run = durable_run()
        actor = current_actor(by, workflow_id=None if run is None else run.workflow_id)
        await self.store.record_audit(
            NewAudit(
                actor=actor.name,
                role=actor.role,
                surface=actor.surface,
                action=action,
                workflow_id=workflow_id,
                reason=reason,
                detail=json.dumps(detail, default=str) if detail else None,
            )
        )

    async def cancel(
        self,
        workflow_id: str,
        *,
        compensate: bool = False,
        children: bool = True,
        reason: str | None = None,
        by: str | None = None,
    ) -> None:
        """Cancel a workflow: it stops at its next durable call and ends CANCELLED. With
        ``compensate=True`` a saga first rolls back its completed steps (then COMPENSATED).
        Its running child workflows are cancelled too (the same way), unless ``children``
        is False."""
        why = _reason(reason)

        async def cancel() -> None:
            await self.engine.operations.cancel(workflow_id, compensate=compensate)
            stopped = await self._cancel_children(workflow_id, compensate) if children else []
            detail: dict[str, Any] = {"compensate": compensate}
            if stopped:
                detail["children"] = stopped[:BULK_SAMPLE]
            await self._audit("cancel", workflow_id=workflow_id, reason=why, detail=detail, by=by)

        await self._op(cancel)

    async def _cancel_children(self, workflow_id: str, compensate: bool) -> list[str]:
        """Cancel the running descendants of ``workflow_id``; returns the ids cancelled."""
        cancelled: list[str] = []
        for record in await self._descendants(workflow_id):
            if record.status not in CHILD_STATUSES:
                continue
            try:
                await self.engine.operations.cancel(record.workflow_id, compensate=compensate)
            except (WorkflowFinishedError, WorkflowStateError):
                continue  # it ended (or began rolling back) meanwhile
            cancelled.append(record.workflow_id)
        return cancelled

    async def delete(
        self,
        workflow_id: str,
        *,
        children: bool = True,
        reason: str | None = None,
        by: str | None = None,
    ) -> list[str]:
        """Delete a finished workflow (and its descendants) in one transaction; the ids."""
        self.engine.require_launched("delete_workflow")
        if not _nonempty(workflow_id):
            raise InvalidArgumentError("workflow_id must be a non-empty string")
        why = _reason(reason)

        async def delete_workflow() -> list[str]:
            record = await self.store.get_workflow(workflow_id)
            if record is None:
                raise WorkflowNotFoundError(f"no workflow {workflow_id!r}", workflow_id=workflow_id)
            tree = [record, *(await self._descendants(workflow_id) if children else [])]
            for member in tree:
                if not member.status.is_terminal:
                    which = (
                        f"workflow {workflow_id!r} is {member.status}"
                        if member.workflow_id == workflow_id
                        else f"child workflow {member.workflow_id!r} of {workflow_id!r} "
                        f"is {member.status}"
                    )
                    raise WorkflowStateError(
                        f"{which}: only finished workflows are deleted; cancel it first "
                        f"(`saga workflows cancel {workflow_id}` cancels its children too), "
                        "then delete it",
                        workflow_id=member.workflow_id,
                        status=member.status.value,
                    )
            deleted = await self.store.delete_workflows([m.workflow_id for m in tree])
            if workflow_id not in deleted:  # it changed meanwhile (resumed, or deleted)
                raise WorkflowStateError(
                    f"workflow {workflow_id!r} changed while being deleted; try again",
                    workflow_id=workflow_id,
                )
            self.engine.metrics.workflows_deleted.labels("operator").inc(len(deleted))
            gone = set(deleted)
            kids = [m.workflow_id for m in tree[1:] if m.workflow_id in gone]
            detail: dict[str, Any] = {"status": record.status.value}
            if kids:
                detail["children"] = kids[:BULK_SAMPLE]
            await self._audit("delete", workflow_id=workflow_id, reason=why, detail=detail, by=by)
            return [workflow_id, *kids]

        ids: list[str] = await self._op(delete_workflow)
        return ids

    async def erase_subject(
        self, subject: str, *, reason: str | None = None, by: str | None = None
    ) -> bool:
        """Delete a subject's data key (one statement); audited. False: it had none."""
        self.engine.require_launched("erase_subject")
        if not _nonempty(subject):
            raise InvalidArgumentError("subject must be a non-empty string")
        why = _reason(reason)

        async def erase_subject() -> bool:
            erased = await self.store.delete_subject_key(subject)
            detail = {"subject": subject, "erased": erased}
            await self._audit("erase_subject", reason=why, detail=detail, by=by)
            return erased

        erased: bool = await self._op(erase_subject)
        return erased

    async def rewrap_data_keys(
        self,
        subjects: SubjectCodec | None,
        *,
        batch_size: int = DEFAULT_BATCH,
        reason: str | None = None,
        by: str | None = None,
    ) -> int:
        """Rewrap every data key under the current master key, in batches; audited. The count
        rewrapped; PayloadUndecodableError (after the rest) for keys it cannot unwrap."""
        self.engine.require_launched("rewrap_data_keys")
        if subjects is None:
            raise ConfigurationError(
                "rewrap_data_keys needs a SubjectCodec: this application's codec has none, so"
                " it has no data keys to rewrap (Orchestrator(codec=SubjectCodec(keyring)))"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise InvalidArgumentError("batch_size must be an int")
        if not 0 < batch_size <= MAX_BATCH:
            raise InvalidArgumentError(f"batch_size must be between 1 and {MAX_BATCH}")
        why = _reason(reason)

        async def rewrap_data_keys() -> int:
            outcome = await rewrap(self.store, subjects, batch_size)
            detail = {
                "master_key": outcome.master_key_id,
                "rewrapped": outcome.rewrapped,
                "not_unwrapped": outcome.unknown_master_keys.total()
                + len(outcome.corrupt_subjects),
            }
            await self._audit("rewrap_data_keys", reason=why, detail=detail, by=by)
            outcome.check()
            return outcome.rewrapped

        rewrapped: int = await self._op(rewrap_data_keys)
        return rewrapped

    async def _descendants(self, workflow_id: str) -> list[WorkflowRecord]:
        """Every descendant of ``workflow_id`` (children, theirs, ...), parents first."""
        found: list[WorkflowRecord] = []
        parents = [workflow_id]
        seen = {workflow_id}
        while parents:
            parent = parents.pop(0)
            after: tuple[int, int] | None = None
            while True:
                page = await self.store.list_workflows_keyed(
                    WorkflowQuery(parent_workflow_id=parent, after=after, limit=500)
                )
                for record, position in page:
                    after = position
                    if record.workflow_id not in seen:
                        seen.add(record.workflow_id)
                        found.append(record)
                        parents.append(record.workflow_id)
                if len(page) < 500:
                    break
        return found

    async def retry_compensation(
        self, workflow_id: str, *, reason: str | None = None, by: str | None = None
    ) -> WorkflowHandle[Any]:
        """Retry the failed compensation of a COMPENSATION_FAILED saga and finish its rollback."""
        why = _reason(reason)

        async def retry_compensation() -> str:
            handle = await self.engine.operations.retry_compensation(workflow_id)
            await self._audit("retry_compensation", workflow_id=workflow_id, reason=why, by=by)
            return handle.workflow_id

        return WorkflowHandle(self.engine, await self._op(retry_compensation))

    async def skip_compensation(
        self, workflow_id: str, *, step: int, reason: str, by: str | None = None
    ) -> WorkflowHandle[Any]:
        """Give up undoing forward step ``step`` of a COMPENSATION_FAILED saga (the person
        ``by`` and the ``reason`` are recorded in its history) and finish the rollback."""
        why = _reason(reason, required=True)
        assert why is not None
        who = current_actor(by).name

        async def skip_compensation() -> str:
            handle = await self.engine.operations.skip_compensation(workflow_id, step, why, who)
            await self._audit(
                "skip_compensation",
                workflow_id=workflow_id,
                reason=why,
                detail={"step": step},
                by=by,
            )
            return handle.workflow_id

        return WorkflowHandle(self.engine, await self._op(skip_compensation))

    async def resume(
        self, workflow_id: str, *, reason: str | None = None, by: str | None = None
    ) -> WorkflowHandle[Any]:
        """Run a CANCELLED, ERROR or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflow again from its last
        checkpoint (failed steps at the end of its history are retried)."""
        why = _reason(reason)

        async def resume() -> str:
            handle = await self.engine.operations.resume(workflow_id)
            await self._audit("resume", workflow_id=workflow_id, reason=why, by=by)
            return handle.workflow_id

        return WorkflowHandle(self.engine, await self._op(resume))

    async def fork(
        self,
        workflow_id: str,
        from_step: int = 1,
        *,
        new_workflow_id: str | None = None,
        app_version: str | None = None,
        reason: str | None = None,
        by: str | None = None,
    ) -> WorkflowHandle[Any]:
        """A new workflow with the same input that reuses steps before ``from_step`` (run by
        a worker of ``app_version`` when given)."""
        if app_version is not None and not _nonempty(app_version):
            raise InvalidArgumentError("app_version must be a non-empty string")
        why = _reason(reason)

        async def fork() -> str:
            forked = await self.engine.operations.fork(
                workflow_id, from_step, new_workflow_id, app_version
            )
            await self._audit(
                "fork",
                workflow_id=workflow_id,
                reason=why,
                detail={"from_step": from_step, "new_workflow_id": forked.workflow_id},
                by=by,
            )
            return forked.workflow_id

        return WorkflowHandle(self.engine, await self._op(fork))

    async def list_workflows(
        self,
        *,
        status: WorkflowStatus | str | list[WorkflowStatus] | None = None,
        name: str | None = None,
        queue: str | None = None,
        parent_workflow_id: str | None = None,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
        app_version: str | None = None,
        stranded: bool = False,
        id_prefix: str | None = None,
        attributes: dict[str, str] | None = None,
        limit: int = 100,
        offset: int = 0,
        ascending: bool = False,
    ) -> list[WorkflowInfo]:
        """Workflows matching the filters, newest first (unless ``ascending``)."""
        if limit < 1 or limit > 10_000 or offset < 0:
            raise InvalidArgumentError("limit must be 1..10000 and offset >= 0")
        filters = WorkflowFilter(
            status=status,
            name=name,
            queue=queue,
            app_version=app_version,
            created_after=created_after,
            created_before=created_before,
            id_prefix=id_prefix,
            parent_workflow_id=parent_workflow_id,
            stranded=stranded,
            attributes=attributes,
        )
        query = dataclasses.replace(
            filter_query(filters, limit=limit), offset=offset, ascending=ascending
        )

        async def list_workflows() -> list[WorkflowInfo]:
            return await self._infos(await self.reads.list_workflows(query))

        return await self._op(list_workflows, _call_infos)

    async def list_workflows_page(
        self, filters: WorkflowFilter, *, cursor: str | None = None, limit: int = 50
    ) -> WorkflowPage:
        """One page of the workflows matching ``filters``, newest first; pass the page's
        ``next_cursor`` back as ``cursor`` for the next one (keyset pagination: each page
        costs the same, however deep)."""
        self.engine.require_launched("list_workflows_page")
        if limit < 1 or limit > 10_000:
            raise InvalidArgumentError("limit must be 1..10000")
        after = None if cursor is None else decode_cursor(cursor)
        rows = await self.reads.list_workflows_keyed(
            filter_query(filters, limit=limit, after=after)
        )
        items = await self._infos([record for record, _ in rows])  # one query more
        more = len(rows) == limit
        return WorkflowPage(items=items, next_cursor=encode_cursor(rows[-1][1]) if more else None)

    async def count_workflows(self, filters: WorkflowFilter) -> dict[WorkflowStatus, int]:
        """How many workflows match ``filters``, per status (every status, zeros included)."""
        self.engine.require_launched("count_workflows")
        counts = await self.reads.count_workflows(filter_query(filters))
        return {status: counts.get(status, 0) for status in WorkflowStatus}

    async def _infos(self, records: Sequence[WorkflowRecord]) -> list[WorkflowInfo]:
        """Listed records as WorkflowInfo, their attributes read where they were (one query)."""
        found = await self.reads.workflow_attributes([r.workflow_id for r in records])
        return [WorkflowInfo.from_record(r, found.get(r.workflow_id)) for r in records]

    async def rollback_plan(self, workflow_id: str) -> RollbackPlan:
        """The compensations a rollback of this saga would run if it failed now, in order,
        with the recorded inputs they would receive (reads only)."""
        self.engine.require_launched("rollback_plan")
        record = await self.engine.operations.get_record(workflow_id)
        plan, pivot = await self.engine.saga.preview(workflow_id)
        running = record.status in UNFINISHED
        rolling_back = record.status is WorkflowStatus.COMPENSATING
        return RollbackPlan(
            workflow_id=workflow_id,
            status=record.status,
            applies=running and (pivot is None or rolling_back),
            past_pivot=pivot is not None,
            pivot_step=pivot,
            compensations=[
                PlannedCompensation(
                    order=order,
                    step_number=compensation.forward.step_number,
                    step_name=compensation.forward.name,
                    compensation=compensation.name,
                    input=stored_json(compensation.input),
                    child_workflow_id=child,
                )
                for order, (compensation, child) in enumerate(plan, start=1)
            ],
        )

    async def list_audit(
        self,
        *,
        workflow_id: str | None = None,
        action: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> tuple[list[AuditEntry], str | None]:
        """Operator actions, newest first, and the cursor of the next page (None: no more)."""
        self.engine.require_launched("list_audit")
        if limit < 1 or limit > 1000:
            raise InvalidArgumentError("limit must be 1..1000")
        before = None
        if cursor is not None:
            try:
                before = int(cursor)
            except ValueError:
                raise InvalidArgumentError("invalid cursor", cursor=cursor) from None
        records = await self.store.list_audit(
            workflow_id=workflow_id, action=action, before_id=before, limit=limit
        )
        entries = [AuditEntry.from_record(record) for record in records]
        return entries, str(records[-1].id) if len(records) == limit else None

    # -- bulk actions ------------------------------------------------------------------------
    async def bulk(
        self,
        action: str,
        filters: WorkflowFilter,
        *,
        dry_run: bool = False,
        compensate: bool = False,
        reason: str | None = None,
        by: str | None = None,
        limit: int = BULK_MAX,
    ) -> BulkResult:
        """Cancel, resume, retry the compensation of or delete every workflow ``filters`` matches
        (narrowed to the statuses the action applies to). A dry run counts and acts on
        nothing."""
        self.engine.require_launched(f"bulk_{action}")
        if durable_run() is not None:
            raise InvalidArgumentError("bulk actions are operator calls, not for a workflow body")
        eligible = BULK_STATUSES.get(action)
        if eligible is None:
            raise InvalidArgumentError(
                f"unknown bulk action {action!r}; use one of {', '.join(BULK_STATUSES)}"
            )
        if not 1 <= limit <= BULK_MAX:
            raise InvalidArgumentError(f"limit must be 1..{BULK_MAX}")
        why = _reason(reason)
        query = filter_query(filters, limit=BULK_SAMPLE)
        wanted = [s for s in (query.statuses or eligible) if s in eligible]
        if not wanted:
            return BulkResult(action, dry_run, 0, [], [], [])
        query = dataclasses.replace(query, statuses=wanted)
        if dry_run:
            counts = await self.store.count_workflows(query)
            sample = await self.store.list_workflows(query)
            total = min(sum(counts.values()), limit)
            return BulkResult(action, True, total, [r.workflow_id for r in sample][:total], [], [])
        ids: list[str] = []
        after: tuple[int, int] | None = None
        while len(ids) < limit:
            size = min(1000, limit - len(ids))
            page = await self.store.list_workflows_keyed(
                dataclasses.replace(query, after=after, limit=size)
            )
            ids.extend(record.workflow_id for record, _ in page)
            if len(page) < size:
                break
            after = page[-1][1]
        done: list[str] = []
        failed: list[BulkFailure] = []
        gate = asyncio.Semaphore(BULK_PARALLEL)

        async def act(workflow_id: str) -> None:
            async with gate:
                try:
                    if action == "cancel":
                        await self.cancel(workflow_id, compensate=compensate, reason=why, by=by)
                    elif action == "delete":
                        await self.delete(workflow_id, reason=why, by=by)
                    elif action == "resume":
                        await self.resume(workflow_id, reason=why, by=by)
                    else:
                        await self.retry_compensation(workflow_id, reason=why, by=by)
                except WorkflowNotFoundError as exc:
                    if action != "delete":
                        failed.append(BulkFailure(workflow_id, exc.code, str(exc)))
                    else:  # deleted meanwhile, as a child of another one matched
                        done.append(workflow_id)
                except OrchestratorError as exc:
                    failed.append(BulkFailure(workflow_id, exc.code, str(exc)))
                else:
                    done.append(workflow_id)

        await asyncio.gather(*(act(workflow_id) for workflow_id in ids))
        await self._audit(
            f"bulk_{action}",
            reason=why,
            detail={
                "filter": _filter_detail(filters),
                "compensate": compensate,
                "matched": len(ids),
                "done": len(done),
                "failed": len(failed),
            },
            by=by,
        )
        return BulkResult(action, False, len(ids), ids[:BULK_SAMPLE], done, failed)

    async def list_steps(self, workflow_id: str) -> list[StepInfo]:
        """Every recorded step (forward steps and compensations) of a workflow, in order."""

        async def list_steps() -> list[StepInfo]:
            return await self.engine.list_steps(workflow_id)

        return await self._op(list_steps, _call_steps)

    async def export_history(self, workflow_id: str) -> dict[str, Any]:
        """A workflow's record and step records as a JSON-able document (orchestrator/history.py)."""
        record = await self.engine.operations.get_record(workflow_id)
        steps = await self.store.load_steps(workflow_id)
        return history_document(record, steps, exported_at_ms=self.engine.clock.now_ms())

    # -- queues, schedules, workers ---------------------------------------------------------
    async def list_queued(
        self, queue: str | None = None, *, limit: int = 100
    ) -> list[WorkflowInfo]:
        """Workflows waiting on a queue (or on any queue), oldest first."""
        self.engine.require_launched("list_queued")
        query = WorkflowQuery(
            statuses=[WorkflowStatus.ENQUEUED], queue_name=queue, limit=limit, ascending=True
        )
        infos = await self.engine.list_workflows(query)
        return [info for info in infos if info.queue_name is not None]

    async def queue_stats(self, queue: str | None = None) -> list[QueueStats]:
        """Depth, running count and starts in the last minute, per queue."""
        self.engine.require_launched("queue_stats")
        return await self.store.queue_stats(queue)

    async def create_schedule(
        self,
        name: str,
        workflow: WorkflowFunction[Any, Any] | str,
        cron: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        catch_up: bool = False,
        replace: bool = False,
    ) -> ScheduleInfo:
        """Store a schedule that any worker runs: each tick of ``cron`` (six fields, seconds
        first) starts ``workflow(scheduled_time, *args, **kwargs)`` once."""
        self.engine.require_launched("create_schedule")
        if not name or not isinstance(name, str):
            raise InvalidArgumentError("a schedule needs a non-empty name")
        function = self._workflow_of(workflow)
        check_cron(cron)
        function.signature.bind((None, *args), kwargs or {})  # the arguments must fit
        record = ScheduleRecord(
            name=name,
            workflow_name=function.name,
            cron=cron,
            input=schedule_input(tuple(args), kwargs or {}),
            catch_up=catch_up,
        )
        saved = await self.store.save_schedule(record, replace=replace)
        await self._audit(
            "schedule_create",
            detail={"schedule": name, "workflow": function.name, "cron": cron},
        )
        return ScheduleInfo.from_record(saved)

    async def pause_schedule(
        self, name: str, *, reason: str | None = None, by: str | None = None
    ) -> ScheduleInfo:
        """Stop starting ticks of a schedule until resumed."""
        return await self._set_paused(name, True, _reason(reason), by)

    async def resume_schedule(
        self, name: str, *, reason: str | None = None, by: str | None = None
    ) -> ScheduleInfo:
        """Start ticking a paused schedule again (from now on)."""
        return await self._set_paused(name, False, _reason(reason), by)

    async def _set_paused(
        self, name: str, paused: bool, reason: str | None, by: str | None
    ) -> ScheduleInfo:
        action = "schedule_pause" if paused else "schedule_resume"
        self.engine.require_launched(action)
        record = await self.store.set_schedule_paused(name, paused)
        if record is None:
            raise NotRegisteredError(f"no schedule named {name!r}", name=name)
        await self._audit(action, reason=reason, detail={"schedule": name}, by=by)
        return ScheduleInfo.from_record(record)

    async def trigger_schedule(
        self, name: str, *, reason: str | None = None, by: str | None = None
    ) -> WorkflowHandle[Any]:
        """Start one run of a schedule now (its time: now), besides its ticks."""
        self.engine.require_launched("trigger_schedule")
        why = _reason(reason)
        schedule = next((s for s in await self.store.list_schedules() if s.name == name), None)
        if schedule is None:
            raise NotRegisteredError(f"no schedule named {name!r}", name=name)
        function = self._workflow_of(schedule.workflow_name)
        now = dt.datetime.fromtimestamp(self.engine.clock.now_ms() / 1000, tz=dt.UTC)
        data = json.loads(schedule.input)
        handle = await self.engine.start_workflow(
            function,
            (now, *data.get("args", [])),
            dict(data.get("kwargs", {})),
            StartOptions(workflow_id=f"{tick_id(name, now)}~manual"),
        )
        await self._audit(
            "schedule_trigger",
            workflow_id=handle.workflow_id,
            reason=why,
            detail={"schedule": name},
            by=by,
        )
        return handle

    def next_ticks(self, schedule: ScheduleInfo, count: int = 5) -> list[dt.datetime]:
        """A schedule's next ``count`` ticks from now (none while paused)."""
        if schedule.paused:
            return []
        ticks: list[dt.datetime] = []
        after = self.engine.clock.now_ms()
        try:
            for _ in range(count):
                tick = next_tick(schedule.cron, after)
                ticks.append(tick)
                after = int(tick.timestamp() * 1000)
        except Exception:  # a stored cron this croniter cannot read: no forecast
            return ticks
        return ticks

    async def delete_schedule(
        self, name: str, *, reason: str | None = None, by: str | None = None
    ) -> None:
        """Delete a schedule; the workflows it started stay."""
        self.engine.require_launched("delete_schedule")
        why = _reason(reason)
        if not await self.store.delete_schedule(name):
            raise NotRegisteredError(f"no schedule named {name!r}", name=name)
        await self._audit("schedule_delete", reason=why, detail={"schedule": name}, by=by)

    async def list_schedules(self) -> list[ScheduleInfo]:
        """Every stored schedule (declared and created)."""
        self.engine.require_launched("list_schedules")
        return [ScheduleInfo.from_record(r) for r in await self.store.list_schedules()]

    async def list_workers(self) -> list[WorkerInfo]:
        """Workers registered in the database, with their leases."""
        self.engine.require_launched("list_workers")
        return [WorkerInfo.from_record(r) for r in await self.store.list_workers()]

    # -- application versions ---------------------------------------------------------------
    async def list_versions(self) -> list[VersionInfo]:
        """Every application version seen, most recently seen first."""
        self.engine.require_launched("list_versions")
        return [VersionInfo.from_record(r) for r in await self.store.list_versions()]

    async def stranded(self) -> dict[str | None, int]:
        """Unfinished workflows of versions no live worker serves: app_version -> count."""
        self.engine.require_launched("stranded")
        return await self.store.stranded_counts()

    async def move_workflows(self, workflow_ids: list[str], app_version: str) -> list[str]:
        """Give these unfinished workflows ``app_version``: a live worker of that version takes
        each over. Workflows a live worker runs now, finished or unknown ones are left as they
        are; returns the ids moved."""
        self.engine.require_launched("move_workflows")
        if not _nonempty(app_version):
            raise InvalidArgumentError("app_version must be a non-empty string")
        ids: object = workflow_ids
        if not isinstance(ids, list | tuple) or not all(_nonempty(i) for i in ids):
            raise InvalidArgumentError("workflow_ids must be a list of workflow ids")
        moved = await self.store.move_workflows(list(dict.fromkeys(workflow_ids)), app_version)
        for record in moved:
            await self._audit(
                "move", workflow_id=record.workflow_id, detail={"app_version": app_version}
            )
        return [record.workflow_id for record in moved]

    # -- the upgrade check (docs/upgrading.md) --------------------------------------------
    async def upgrade_check(
        self, *, app_version: str, adopt: bool = False, workflow_ids: list[str] | None = None
    ) -> list[ReplayVerdict]:
        """Replay every unfinished workflow's history (or those of ``workflow_ids``) against
        this code, executing nothing; with ``adopt``, move the compatible ones of other
        versions to ``app_version`` (except those a live worker runs now)."""
        engine = self.engine
        verdicts: list[ReplayVerdict] = []
        page = 500
        offset = 0
        while True:
            records = await self.store.list_workflows(
                WorkflowQuery(
                    statuses=UNFINISHED,
                    workflow_ids=workflow_ids,
                    limit=page,
                    offset=offset,
                    ascending=True,
                )
            )
            for record in records:
                steps = await self.store.load_steps(record.workflow_id)
                verdicts.append(
                    await replay_history(
                        engine.registry.workflows.get(record.name),
                        record,
                        steps,
                        store=self.store,
                        clock=engine.clock,
                        saga=engine.saga,
                    )
                )
            if len(records) < page:
                break
            offset += page
        if not adopt:
            return verdicts
        movable = [
            v.workflow_id
            for v in verdicts
            if v.compatible and v.app_version != app_version and v.status in RUNNING_STATUSES
        ]
        moved = {r.workflow_id for r in await self.store.move_workflows(movable, app_version)}
        for workflow_id in moved:
            await self._audit("adopt", workflow_id=workflow_id, detail={"app_version": app_version})
        return [
            dataclasses.replace(v, adopted=True) if v.workflow_id in moved else v for v in verdicts
        ]


def _filter_detail(filters: WorkflowFilter) -> dict[str, Any]:
    """A filter as the audit records it: the fields set."""
    return {
        field.name: value
        for field in dataclasses.fields(filters)
        if (value := getattr(filters, field.name)) not in (None, False)
    }
