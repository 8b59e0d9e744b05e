"""What the public API answers about stored things: workflows, their steps, schedules and
workers, with datetimes (UTC) and plain JSON values; never the store's rows."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from orchestrator.codec import UNDECODABLE_KEY, undecodable_reason
from orchestrator.serialization import error_summary
from orchestrator.store.base import (
    AuditRecord,
    ScheduleRecord,
    StepRecord,
    VersionRecord,
    WorkerRecord,
    WorkflowRecord,
)
from orchestrator.types import StepKind, WorkflowStatus


def _time(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def stored_json(text: str | None) -> Any:
    """A stored JSON text as a value to show (an undecodable one as its marker)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        reason = undecodable_reason(text)
        if reason is not None:  # its key is gone: say so, as a value a display can show
            return {UNDECODABLE_KEY: reason}
        return text


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``)."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or parts[1] == "0" * 32:
        return None
    return parts[1]


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """A workflow's status as stored; ``input``/``output`` are plain JSON values."""

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
    trace_id: str | None = None  # the W3C trace id of its spans (None: not traced)
    # Business keys (name -> text value), set at start or from inside the workflow.
    attributes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_record(
        cls, record: WorkflowRecord, attributes: dict[str, str] | None = None
    ) -> WorkflowInfo:
        summary = error_summary(record.error)
        return cls(
            workflow_id=record.workflow_id,
            name=record.name,
            status=record.status,
            created_at=_time(record.created_at) or dt.datetime.now(dt.UTC),
            updated_at=_time(record.updated_at) or dt.datetime.now(dt.UTC),
            error=summary[1] if summary else None,
            error_type=summary[0] if summary else None,
            input=stored_json(record.input),
            output=stored_json(record.output),
            executor_id=record.executor_id,
            app_version=record.app_version,
            queue_name=record.queue_name,
            parent_workflow_id=record.parent_workflow_id,
            recovery_attempts=record.recovery_attempts,
            started_at=_time(record.started_at),
            finished_at=_time(record.finished_at),
            deadline=_time(record.deadline_ms),
            trace_id=trace_id_of(record.trace_context),
            attributes=dict(attributes or {}),
        )


@dataclass(frozen=True, slots=True)
class StepInfo:
    """One recorded durable call of a workflow, for reading a saga's history top to bottom."""

    workflow_id: str
    step_number: int
    name: str
    kind: StepKind
    status: str  # "SUCCESS" or "ERROR"
    output: Any
    error: str | None
    error_type: str | None
    attempts: int
    child_workflow_id: str | None
    compensation: str | None
    compensates_step: int | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @property
    def idempotency_key(self) -> str:
        return f"{self.workflow_id}:{self.step_number}"

    @classmethod
    def from_record(cls, record: StepRecord) -> StepInfo:
        summary = error_summary(record.error)
        return cls(
            workflow_id=record.workflow_id,
            step_number=record.step_number,
            name=record.name,
            kind=record.kind,
            status="ERROR" if record.error is not None else "SUCCESS",
            output=stored_json(record.output),
            error=summary[1] if summary else None,
            error_type=summary[0] if summary else None,
            attempts=record.attempts,
            child_workflow_id=record.child_workflow_id,
            compensation=record.compensation,
            compensates_step=record.compensates_step,
            started_at=_time(record.started_at),
            finished_at=_time(record.finished_at),
        )


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A stored cron schedule: ``input`` is the arguments each run gets after its time."""

    name: str
    workflow_name: str
    cron: str
    input: Any
    paused: bool
    catch_up: bool
    declared: bool  # from @app.workflow(schedule=...), saved at every launch
    last_tick: dt.datetime | None
    created_at: dt.datetime | None
    updated_at: dt.datetime | None

    @classmethod
    def from_record(cls, record: ScheduleRecord) -> ScheduleInfo:
        return cls(
            name=record.name,
            workflow_name=record.workflow_name,
            cron=record.cron,
            input=stored_json(record.input),
            paused=record.paused,
            catch_up=record.catch_up,
            declared=record.declared,
            last_tick=_time(record.last_tick_ms),
            created_at=_time(record.created_at),
            updated_at=_time(record.updated_at),
        )


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A registered worker and its lease (``alive``: the lease has not expired)."""

    executor_id: str
    app_version: str | None
    host: str | None
    pid: int | None
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    lease_expires_at: dt.datetime
    alive: bool

    @classmethod
    def from_record(cls, record: WorkerRecord) -> WorkerInfo:
        return cls(
            executor_id=record.executor_id,
            app_version=record.app_version,
            host=record.host,
            pid=record.pid,
            started_at=_time(record.started_at) or dt.datetime.now(dt.UTC),
            heartbeat_at=_time(record.heartbeat_at) or dt.datetime.now(dt.UTC),
            lease_expires_at=_time(record.lease_expires_at) or dt.datetime.now(dt.UTC),
            alive=record.alive,
        )


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """An application version that has run: when it was first and last seen (a worker's
    launch and periodic checks, its workflows' activity), how many live workers serve it and
    how many of its workflows are unfinished (PENDING or COMPENSATING) and in all."""

    app_version: str
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    live_workers: int
    unfinished: int
    stranded: int  # unfinished while no live worker serves this version: nobody runs them
    total: int

    @classmethod
    def from_record(cls, record: VersionRecord) -> VersionInfo:
        return cls(
            app_version=record.app_version,
            first_seen=_time(record.first_seen_ms),
            last_seen=_time(record.last_seen_ms),
            live_workers=record.live_workers,
            unfinished=record.unfinished,
            stranded=record.unfinished if record.live_workers == 0 else 0,
            total=record.total,
        )


@dataclass(frozen=True, slots=True)
class WorkflowFilter:
    """Which workflows a listing, a count or a bulk action takes (None: any). ``status`` is
    one status or a list; ``id_prefix`` matches the start of the workflow id; the time bounds
    are inclusive; ``stranded``: only unfinished workflows of versions no live worker serves;
    ``attributes``: only workflows having every one of these (name -> value, equality on the
    stored text)."""

    status: WorkflowStatus | str | list[WorkflowStatus] | list[str] | None = None
    name: str | None = None
    queue: str | None = None
    app_version: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    id_prefix: str | None = None
    parent_workflow_id: str | None = None
    stranded: bool = False
    attributes: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class WorkflowPage:
    """One page of a workflow listing; ``next_cursor`` continues it (None: the last page)."""

    items: list[WorkflowInfo]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One operator action: who (``actor``, ``role``), from where (``surface``), when,
    what (``action`` on ``workflow_id``; ``detail``: its arguments) and why (``reason``)."""

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
    def from_record(cls, record: AuditRecord) -> AuditEntry:
        detail = stored_json(record.detail)
        return cls(
            id=record.id,
            at=_time(record.at_ms) or dt.datetime.now(dt.UTC),
            actor=record.actor,
            role=record.role,
            surface=record.surface,
            action=record.action,
            workflow_id=record.workflow_id,
            reason=record.reason,
            detail=detail if isinstance(detail, dict) else {},
        )


@dataclass(frozen=True, slots=True)
class PlannedCompensation:
    """One compensation a rollback would run now, in order: the forward step it undoes
    (``step_number``; a child's step when ``child_workflow_id`` is set) and the recorded
    ``input`` it would receive (its arguments and the step's result)."""

    order: int
    step_number: int
    step_name: str
    compensation: str
    input: Any
    child_workflow_id: str | None = None


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    """What a saga would undo if it failed now. ``applies`` is False once it ended (or,
    with ``past_pivot``, once its pivot step completed: a failure then ends it ERROR and
    undoes nothing)."""

    workflow_id: str
    status: WorkflowStatus
    applies: bool
    past_pivot: bool
    pivot_step: int | None
    compensations: list[PlannedCompensation]


@dataclass(frozen=True, slots=True)
class BulkFailure:
    """A workflow a bulk action could not act on, and why (an ``orchestrator.errors`` code)."""

    workflow_id: str
    error: str
    message: str


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk action matched and did. A dry run acts on nothing: ``matched`` is how many
    it would act on (``workflow_ids``: the first of them, at most ``sample``)."""

    action: str
    dry_run: bool
    matched: int
    workflow_ids: list[str]
    done: list[str]
    failed: list[BulkFailure]
