"""Pydantic models of the service's request and response bodies (the OpenAPI schemas)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator import (
    AuditEntry,
    BulkResult,
    Queue,
    QueueStats,
    RollbackPlan,
    ScheduleInfo,
    StepInfo,
    VersionInfo,
    WorkerInfo,
    WorkflowInfo,
)
from orchestrator.http.redaction import RedactionContext, View
from orchestrator.types import StepKind, WorkflowStatus

MAX_ID_CHARS = 512  # workflow ids, topics, event and stream keys


class FieldError(BaseModel):
    """One validation problem: where (``loc``), what (``msg``) and its kind (``type``)."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every error answer: a stable ``error`` code, a message saying what to do, details."""

    error: str = Field(examples=["workflow_not_found"])
    message: str
    detail: dict[str, Any] | list[FieldError] = Field(default_factory=dict)


class WorkflowLinks(BaseModel):
    """Where to follow a workflow up (paths on this service)."""

    self: str
    result: str
    events: str
    steps: str


class EventValue(BaseModel):
    """An event a workflow published."""

    key: str
    value: Any = Field(description="the JSON value published with set_event")


class WorkflowAccepted(BaseModel):
    """A workflow started (or found: the id is an idempotency key), resumed or forked."""

    workflow_id: str
    status: WorkflowStatus
    links: WorkflowLinks
    event: EventValue | None = Field(
        default=None, description="with ?wait_for_event=KEY: the event, once set in time"
    )


class WorkflowOut(BaseModel):
    """A workflow as stored; ``input`` and ``output`` are plain JSON."""

    workflow_id: str
    name: str
    status: WorkflowStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    error: str | None
    error_type: str | None
    input: Any
    output: Any
    executor_id: str | None
    app_version: str | None
    queue_name: str | None
    parent_workflow_id: str | None
    recovery_attempts: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    deadline: dt.datetime | None
    links: WorkflowLinks
    trace_id: str | None = Field(default=None, description="the W3C trace id of its spans")
    trace_url: str | None = Field(default=None, description="its trace in the tracing UI")
    attributes: dict[str, str] = Field(
        default_factory=dict, description="its business keys (name -> text value)"
    )

    @classmethod
    def of(cls, info: WorkflowInfo, links: WorkflowLinks, view: View | None = None) -> WorkflowOut:
        """``view``: show input and output through the redactor, link the trace."""
        shown_input, shown_output = info.input, info.output
        if view is not None:
            context = RedactionContext("input", info.workflow_id, info.name)
            shown_input = view.value(info.input, context)
            shown_output = view.value(info.output, context.with_what("output"))
        return cls(
            workflow_id=info.workflow_id,
            name=info.name,
            status=info.status,
            created_at=info.created_at,
            updated_at=info.updated_at,
            error=info.error,
            error_type=info.error_type,
            input=shown_input,
            output=shown_output,
            executor_id=info.executor_id,
            app_version=info.app_version,
            queue_name=info.queue_name,
            parent_workflow_id=info.parent_workflow_id,
            recovery_attempts=info.recovery_attempts,
            started_at=info.started_at,
            finished_at=info.finished_at,
            deadline=info.deadline,
            links=links,
            trace_id=info.trace_id,
            trace_url=None if view is None else view.trace(info.trace_id),
            attributes=dict(info.attributes),
        )


class WorkflowPage(BaseModel):
    """One page of workflows, newest first; ``next`` is the following page's path."""

    items: list[WorkflowOut]
    next: str | None
    next_cursor: str | None = Field(
        default=None, description="pass as `cursor=` for the next page (keyset: any depth)"
    )


class StepOut(BaseModel):
    """One recorded durable call of a workflow."""

    workflow_id: str
    step_number: int
    name: str
    kind: StepKind
    status: str
    output: Any
    error: str | None
    error_type: str | None
    attempts: int
    child_workflow_id: str | None
    compensation: str | None
    compensates_step: int | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    trace_url: str | None = Field(default=None, description="the step in the workflow's trace")

    @classmethod
    def of(
        cls,
        info: StepInfo,
        view: View | None = None,
        trace_id: str | None = None,
        workflow_name: str | None = None,
    ) -> StepOut:
        output = info.output
        if view is not None:
            context = RedactionContext("step_output", info.workflow_id, workflow_name, info.name)
            output = view.value(info.output, context)
        return cls(
            workflow_id=info.workflow_id,
            step_number=info.step_number,
            name=info.name,
            kind=info.kind,
            status=info.status,
            output=output,
            error=info.error,
            error_type=info.error_type,
            attempts=info.attempts,
            child_workflow_id=info.child_workflow_id,
            compensation=info.compensation,
            compensates_step=info.compensates_step,
            started_at=info.started_at,
            finished_at=info.finished_at,
            trace_url=None if view is None else view.trace(trace_id, info.name),
        )


class HistoryWorkflow(BaseModel):
    """A workflow's record as stored (values are the stored JSON text; times in ms)."""

    model_config = ConfigDict(extra="allow")

    workflow_id: str
    name: str
    status: WorkflowStatus
    input: str
    output: str | None
    error: str | None
    executor_id: str | None
    app_version: str | None
    queue_name: str | None
    priority: int
    dedup_id: str | None
    partition_key: str | None
    parent_workflow_id: str | None
    recovery_attempts: int
    max_recovery_attempts: int | None
    timeout_ms: int | None
    deadline_ms: int | None
    not_before_ms: int | None
    trace_context: str | None
    created_at: int
    updated_at: int
    started_at: int | None
    finished_at: int | None
    owner_epoch: int
    rollback_after_step: int | None


class HistoryStep(BaseModel):
    """One step record as stored (values are the stored JSON text; times in ms)."""

    model_config = ConfigDict(extra="allow")

    workflow_id: str
    step_number: int
    name: str
    kind: StepKind
    output: str | None
    error: str | None
    attempts: int
    child_workflow_id: str | None
    compensation: str | None
    compensation_input: str | None
    compensates_step: int | None
    started_at: int | None
    finished_at: int | None
    seq: int | None
    epoch: int | None
    args_hash: str | None


class HistoryOut(BaseModel):
    """A workflow's history (``saga workflows export``), for ``orchestrator.testing.replay``."""

    format: str = Field(examples=["saga-orchestrator/history"])
    version: int
    exported_at: str
    workflow: HistoryWorkflow
    steps: list[HistoryStep]


class WorkflowResult(BaseModel):
    """A workflow's outcome: ``output`` once it succeeded; just ``status`` while running."""

    status: WorkflowStatus
    output: Any = None


Reason = Annotated[str, Field(min_length=1, max_length=2000)]


class CancelRequest(BaseModel):
    """Options of a cancel; ``compensate`` rolls a saga back before it ends; ``children``
    (default true) cancels its running child workflows too."""

    model_config = ConfigDict(extra="forbid")

    compensate: bool = False
    children: bool = True
    reason: Reason | None = None


class ReasonRequest(BaseModel):
    """Why an operator acts (recorded in the audit log)."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason | None = None


class SkipCompensationRequest(BaseModel):
    """Give up undoing forward step ``step``; the reason is required (audited)."""

    model_config = ConfigDict(extra="forbid")

    step: int = Field(ge=1, le=2_147_483_647)
    reason: Reason


class WorkflowFilterIn(BaseModel):
    """Which workflows a bulk action takes (unset: any)."""

    model_config = ConfigDict(extra="forbid")

    status: list[WorkflowStatus] | None = None
    name: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)] | None = None
    queue: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)] | None = None
    app_version: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)] | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    id_prefix: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)] | None = None
    parent_workflow_id: Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)] | None = None
    attributes: (
        Annotated[
            dict[str, str],
            Field(max_length=20, description="only workflows having all of these attributes"),
        ]
        | None
    ) = None


class BulkRequest(BaseModel):
    """A bulk action: its filter, a dry run (count only), and for cancel whether to roll
    sagas back."""

    model_config = ConfigDict(extra="forbid")

    filter: WorkflowFilterIn = Field(default_factory=WorkflowFilterIn)
    dry_run: bool = False
    compensate: bool = False
    reason: Reason | None = None


class BulkFailureOut(BaseModel):
    workflow_id: str
    error: str
    message: str


class BulkResultOut(BaseModel):
    """What a bulk action matched (``workflow_ids``: the first 100) and did."""

    action: str
    dry_run: bool
    matched: int
    workflow_ids: list[str]
    done: list[str]
    failed: list[BulkFailureOut]

    @classmethod
    def of(cls, result: BulkResult) -> BulkResultOut:
        return cls(
            action=result.action.replace("_", "-"),
            dry_run=result.dry_run,
            matched=result.matched,
            workflow_ids=result.workflow_ids,
            done=result.done,
            failed=[
                BulkFailureOut(workflow_id=f.workflow_id, error=f.error, message=f.message)
                for f in result.failed
            ],
        )


class WorkflowCounts(BaseModel):
    """How many workflows match, per status (every status listed)."""

    counts: dict[str, int]
    total: int


class PlannedCompensationOut(BaseModel):
    order: int
    step_number: int
    step_name: str
    compensation: str
    input: Any = Field(description="the recorded arguments and result it would receive")
    child_workflow_id: str | None


class RollbackPlanOut(BaseModel):
    """The compensations a rollback would run if the saga failed now, in order."""

    workflow_id: str
    status: WorkflowStatus
    applies: bool = Field(description="false once the saga ended, or passed its pivot")
    past_pivot: bool
    pivot_step: int | None
    compensations: list[PlannedCompensationOut]

    @classmethod
    def of(cls, plan: RollbackPlan, view: View, workflow_name: str | None) -> RollbackPlanOut:
        return cls(
            workflow_id=plan.workflow_id,
            status=plan.status,
            applies=plan.applies,
            past_pivot=plan.past_pivot,
            pivot_step=plan.pivot_step,
            compensations=[
                PlannedCompensationOut(
                    order=c.order,
                    step_number=c.step_number,
                    step_name=c.step_name,
                    compensation=c.compensation,
                    input=view.value(
                        c.input,
                        RedactionContext(
                            "compensation_input", plan.workflow_id, workflow_name, c.step_name
                        ),
                    ),
                    child_workflow_id=c.child_workflow_id,
                )
                for c in plan.compensations
            ],
        )


class AuditOut(BaseModel):
    """One operator action: who, from where, when, what, why."""

    id: int
    at: dt.datetime
    actor: str
    role: str | None
    surface: str
    action: str
    workflow_id: str | None
    reason: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditOut:
        return cls(
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            role=entry.role,
            surface=entry.surface,
            action=entry.action,
            workflow_id=entry.workflow_id,
            reason=entry.reason,
            detail=entry.detail,
        )


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None


class MessageAccepted(BaseModel):
    """A message stored in the workflow's mailbox (or a repeat of one already stored)."""

    workflow_id: str
    topic: str
    idempotency_key: str | None


class KeyedMessageAccepted(BaseModel):
    """A message sent to a business key: delivered to the workflow holding it, or kept for
    the first workflow to start with it (or a repeat of one already stored)."""

    key: str
    topic: str
    idempotency_key: str | None
    delivered: bool = Field(description="true: in workflow_id's mailbox; false: kept (or a repeat)")
    workflow_id: str | None = Field(default=None, description="the holder it was delivered to")
    expires_at: int | None = Field(
        default=None, description="kept until (epoch ms); null when delivered or a repeat"
    )
    repeat: bool = Field(default=False, description="the idempotency key was used already")


class EventMap(BaseModel):
    """Every event a workflow has published, key -> value."""

    workflow_id: str
    events: dict[str, Any]


class Health(BaseModel):
    status: str = "ok"


class Readiness(BaseModel):
    """Whether this service can serve: database reachable, schema up to date. ``stranded``
    (detail, not a reason to be unready): unfinished workflows of application versions no live
    worker serves, by version ("" for none); see docs/upgrading.md."""

    ready: bool
    pending_migrations: list[str] = Field(default_factory=list)
    reason: str | None = None
    stranded: dict[str, int] = Field(default_factory=dict)


class VersionOut(BaseModel):
    """An application version that has run (see ``saga versions``)."""

    app_version: str
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    live_workers: int
    unfinished: int
    stranded: int = Field(description="unfinished workflows while no live worker serves it")
    total: int

    @classmethod
    def of(cls, info: VersionInfo) -> VersionOut:
        return cls(
            app_version=info.app_version,
            first_seen=info.first_seen,
            last_seen=info.last_seen,
            live_workers=info.live_workers,
            unfinished=info.unfinished,
            stranded=info.stranded,
            total=info.total,
        )


class MoveRequest(BaseModel):
    """Workflows to give another application version (its workers take them over)."""

    model_config = ConfigDict(extra="forbid")

    workflow_ids: list[Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]] = Field(
        min_length=1, max_length=10_000
    )


class MoveResult(BaseModel):
    """Which workflows were moved; the others run on a live worker now, have finished, or do
    not exist (they were left alone)."""

    app_version: str
    moved: list[str]
    not_moved: list[str]


class QueueStatsOut(BaseModel):
    queue_name: str
    depth: int = Field(description="workflows waiting (ENQUEUED)")
    running: int = Field(description="workflows running (PENDING or COMPENSATING)")
    started_last_minute: int
    concurrency: int | None = Field(default=None, description="declared limit, all workers")
    worker_concurrency: int | None = Field(default=None, description="declared, per worker")
    limit_per_period: int | None = None
    period_seconds: float | None = None

    @classmethod
    def of(cls, stats: QueueStats, queue: Queue | None = None) -> QueueStatsOut:
        """``queue``: its declaration here, for the limits (None: not declared here)."""
        rate = queue.rate_limit if queue is not None else None
        return cls(
            queue_name=stats.queue_name,
            depth=stats.depth,
            running=stats.running,
            started_last_minute=stats.started_last_minute,
            concurrency=queue.concurrency if queue is not None else None,
            worker_concurrency=queue.worker_concurrency if queue is not None else None,
            limit_per_period=rate[0] if rate else None,
            period_seconds=rate[1] if rate else None,
        )


class ScheduleOut(BaseModel):
    name: str
    workflow_name: str
    cron: str
    paused: bool
    catch_up: bool
    declared: bool
    last_tick: dt.datetime | None
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    next_ticks: list[dt.datetime] = Field(default_factory=list, description="none while paused")

    @classmethod
    def of(cls, info: ScheduleInfo, next_ticks: list[dt.datetime] | None = None) -> ScheduleOut:
        return cls(
            name=info.name,
            workflow_name=info.workflow_name,
            cron=info.cron,
            paused=info.paused,
            catch_up=info.catch_up,
            declared=info.declared,
            last_tick=info.last_tick,
            created_at=info.created_at,
            updated_at=info.updated_at,
            next_ticks=next_ticks or [],
        )


class WorkerOut(BaseModel):
    executor_id: str
    app_version: str | None
    host: str | None
    pid: int | None
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    lease_expires_at: dt.datetime
    alive: bool

    @classmethod
    def of(cls, info: WorkerInfo) -> WorkerOut:
        return cls(
            executor_id=info.executor_id,
            app_version=info.app_version,
            host=info.host,
            pid=info.pid,
            started_at=info.started_at,
            heartbeat_at=info.heartbeat_at,
            lease_expires_at=info.lease_expires_at,
            alive=info.alive,
        )


class WebhookAccepted(BaseModel):
    """What a verified webhook delivery did; a repeated delivery gets the same answer."""

    source: str
    delivery_id: str
    action: str = Field(
        description='"send", "kept" (sent to a key no workflow holds yet), "start" or "ignored"'
    )
    workflow_id: str | None = None
