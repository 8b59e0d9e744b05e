"""Pydantic models of the service's request and response bodies (the OpenAPI schemas)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator import (
    QueueStats,
    ScheduleInfo,
    StepInfo,
    VersionInfo,
    WorkerInfo,
    WorkflowInfo,
)
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

    @classmethod
    def of(cls, info: WorkflowInfo, links: WorkflowLinks) -> WorkflowOut:
        return cls(
            workflow_id=info.workflow_id,
            name=info.name,
            status=info.status,
            created_at=info.created_at,
            updated_at=info.updated_at,
            error=info.error,
            error_type=info.error_type,
            input=info.input,
            output=info.output,
            executor_id=info.executor_id,
            app_version=info.app_version,
            queue_name=info.queue_name,
            parent_workflow_id=info.parent_workflow_id,
            recovery_attempts=info.recovery_attempts,
            started_at=info.started_at,
            finished_at=info.finished_at,
            deadline=info.deadline,
            links=links,
        )


class WorkflowPage(BaseModel):
    """One page of workflows, newest first; ``next`` is the following page's path."""

    items: list[WorkflowOut]
    next: str | None


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

    @classmethod
    def of(cls, info: StepInfo) -> StepOut:
        return cls(
            workflow_id=info.workflow_id,
            step_number=info.step_number,
            name=info.name,
            kind=info.kind,
            status=info.status,
            output=info.output,
            error=info.error,
            error_type=info.error_type,
            attempts=info.attempts,
            child_workflow_id=info.child_workflow_id,
            compensation=info.compensation,
            compensates_step=info.compensates_step,
            started_at=info.started_at,
            finished_at=info.finished_at,
        )


class WorkflowResult(BaseModel):
    """A workflow's outcome: ``output`` once it succeeded; just ``status`` while running."""

    status: WorkflowStatus
    output: Any = None


class CancelRequest(BaseModel):
    """Options of a cancel; ``compensate`` rolls a saga back before it ends."""

    model_config = ConfigDict(extra="forbid")

    compensate: bool = False


class MessageAccepted(BaseModel):
    """A message stored in the workflow's mailbox (or a repeat of one already stored)."""

    workflow_id: str
    topic: str
    idempotency_key: str | None


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

    @classmethod
    def of(cls, stats: QueueStats) -> QueueStatsOut:
        return cls(
            queue_name=stats.queue_name,
            depth=stats.depth,
            running=stats.running,
            started_last_minute=stats.started_last_minute,
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

    @classmethod
    def of(cls, info: ScheduleInfo) -> ScheduleOut:
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
    action: str = Field(description='"send", "start" or "ignored"')
    workflow_id: str | None = None
