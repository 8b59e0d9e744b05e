"""Read-only operations endpoints: health, readiness, metrics, queues, schedules, workers."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from orchestrator import QueueStats
from orchestrator.errors import NotRegisteredError
from orchestrator.http.deps import (
    MAX_ID_CHARS,
    OrchestratorDep,
    check_text,
    error_responses,
    links_for,
    service_config,
    view_of,
)
from orchestrator.http.schemas import (
    AuditOut,
    AuditPage,
    BulkRequest,
    BulkResultOut,
    Health,
    MoveRequest,
    MoveResult,
    QueueStatsOut,
    Readiness,
    ReasonRequest,
    ScheduleOut,
    VersionOut,
    WorkerOut,
    WorkflowAccepted,
    WorkflowCounts,
    WorkflowOut,
)
from orchestrator.http.workflows import (
    AttributeParams,
    accepted,
    attributes_of,
    optional_body,
    workflow_filter,
)
from orchestrator.metrics import CONTENT_TYPE
from orchestrator.types import WorkflowStatus

logger = logging.getLogger("orchestrator.http.admin")

health_router = APIRouter(tags=["health"])
metrics_router = APIRouter(tags=["health"])
router = APIRouter(prefix="/admin", tags=["admin"])


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **error_responses(401, 503),
    },
    summary="Prometheus metrics (text exposition format)",
)
async def metrics(app: OrchestratorDep) -> Response:
    return Response(await app.render_metrics(), media_type=CONTENT_TYPE)


@health_router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health()


@health_router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready (reason given)"}},
    summary="The database is reachable and its schema up to date",
)
async def readyz(request: Request) -> JSONResponse:
    app = service_config(request).orchestrator
    if not app.launched:
        return _not_ready(Readiness(ready=False, reason="the orchestrator is not launched"))
    try:
        state = await app.migration_state()
    except Exception as exc:  # any database failure means "not ready", never a 500
        return _not_ready(
            Readiness(ready=False, reason=f"database unavailable: {type(exc).__name__}")
        )
    if state.pending:
        return _not_ready(
            Readiness(
                ready=False, pending_migrations=list(state.pending), reason="pending migrations"
            )
        )
    try:
        stranded = {version or "": count for version, count in (await app.stranded()).items()}
    except Exception:
        stranded = {}
    return JSONResponse(Readiness(ready=True, stranded=stranded).model_dump(mode="json"))


def _not_ready(readiness: Readiness) -> JSONResponse:
    return JSONResponse(readiness.model_dump(mode="json"), status_code=503)


@router.get(
    "/queues",
    response_model=list[QueueStatsOut],
    responses=error_responses(401, 503),
    summary="Depth, running count and recent starts per queue",
)
async def queue_stats(app: OrchestratorDep) -> list[QueueStatsOut]:
    stats = {s.queue_name: s for s in await app.queue_stats()}
    for name in app.queues:  # declared here and idle: listed too, with their limits
        stats.setdefault(name, QueueStats(name, 0, 0, 0))
    return [QueueStatsOut.of(s, app.queues.get(s.queue_name)) for s in stats.values()]


@router.get(
    "/queues/{queue}",
    response_model=QueueStatsOut,
    responses=error_responses(400, 401, 404, 422, 503),
    summary="One queue's statistics",
)
async def one_queue_stats(app: OrchestratorDep, queue: str) -> QueueStatsOut:
    check_text(queue, "queue")
    stats = await app.queue_stats(queue)
    if stats:
        return QueueStatsOut.of(stats[0], app.queues.get(queue))
    if queue in app.queues:  # declared here, idle
        return QueueStatsOut.of(QueueStats(queue, 0, 0, 0), app.queues[queue])
    raise NotRegisteredError(f"no queue named {queue!r} is declared or in use", queue=queue)


@router.get(
    "/queued",
    response_model=list[WorkflowOut],
    responses=error_responses(400, 401, 422, 503),
    summary="Workflows waiting on a queue (or any queue), oldest first",
)
async def queued(
    request: Request,
    app: OrchestratorDep,
    queue: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[WorkflowOut]:
    if queue is not None:
        check_text(queue, "queue")
    infos = await app.list_queued(queue, limit=limit)
    view = view_of(request)
    return [WorkflowOut.of(info, links_for(request, info.workflow_id), view) for info in infos]


@router.get(
    "/schedules",
    response_model=list[ScheduleOut],
    responses=error_responses(401, 503),
    summary="Every stored cron schedule",
)
async def schedules(app: OrchestratorDep) -> list[ScheduleOut]:
    return [ScheduleOut.of(info, app.next_ticks(info)) for info in await app.list_schedules()]


ScheduleName = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]


@router.post(
    "/schedules/{name}/pause",
    response_model=ScheduleOut,
    responses=error_responses(400, 401, 403, 404, 422, 503),
    summary="Stop starting a schedule's ticks until resumed",
)
async def pause_schedule(request: Request, app: OrchestratorDep, name: ScheduleName) -> ScheduleOut:
    reason = (await optional_body(request, ReasonRequest)).reason
    info = await app.pause_schedule(check_text(name, "schedule name"), reason=reason)
    return ScheduleOut.of(info, app.next_ticks(info))


@router.post(
    "/schedules/{name}/resume",
    response_model=ScheduleOut,
    responses=error_responses(400, 401, 403, 404, 422, 503),
    summary="Start ticking a paused schedule again, from now on",
)
async def resume_schedule(
    request: Request, app: OrchestratorDep, name: ScheduleName
) -> ScheduleOut:
    reason = (await optional_body(request, ReasonRequest)).reason
    info = await app.resume_schedule(check_text(name, "schedule name"), reason=reason)
    return ScheduleOut.of(info, app.next_ticks(info))


@router.post(
    "/schedules/{name}/trigger",
    status_code=202,
    response_model=WorkflowAccepted,
    responses=error_responses(400, 401, 403, 404, 422, 503),
    summary="Start one run of a schedule now, besides its ticks",
)
async def trigger_schedule(
    request: Request, app: OrchestratorDep, name: ScheduleName
) -> WorkflowAccepted:
    reason = (await optional_body(request, ReasonRequest)).reason
    handle = await app.trigger_schedule(check_text(name, "schedule name"), reason=reason)
    return accepted(request, handle.workflow_id, (await handle.status()).status)


@router.get(
    "/workflow-counts",
    response_model=WorkflowCounts,
    responses=error_responses(400, 401, 422, 503),
    summary="How many workflows match the filters, per status",
)
async def workflow_counts(
    *,
    app: OrchestratorDep,
    status: Annotated[list[WorkflowStatus] | None, Query()] = None,
    name: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    queue: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    created_after: dt.datetime | None = None,
    created_before: dt.datetime | None = None,
    app_version: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    id_prefix: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    parent_workflow_id: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    attribute: AttributeParams = None,
) -> WorkflowCounts:
    filters = workflow_filter(
        attributes=attributes_of(attribute),
        status=status,
        name=name,
        queue=queue,
        app_version=app_version,
        created_after=created_after,
        created_before=created_before,
        id_prefix=id_prefix,
        parent_workflow_id=parent_workflow_id,
    )
    counts = await app.count_workflows(filters)
    return WorkflowCounts(
        counts={status.value: n for status, n in counts.items()}, total=sum(counts.values())
    )


@router.post(
    "/bulk/{action}",
    response_model=BulkResultOut,
    responses=error_responses(400, 401, 403, 404, 413, 422, 503),
    summary="Cancel, resume, retry the compensation of or delete every workflow a filter matches",
    description=(
        "`action`: `cancel` (PENDING and ENQUEUED ones; `compensate` rolls sagas back), `resume` "
        "(CANCELLED, ERROR, MAX_RECOVERY_ATTEMPTS_EXCEEDED), `retry-compensation` "
        "(COMPENSATION_FAILED) or `delete` (finished ones, with their children): the filter's "
        "statuses are narrowed to those. `dry_run` counts and acts on nothing: run it first. "
        "Each workflow acted on is audited."
    ),
)
async def bulk(
    app: OrchestratorDep,
    action: Annotated[str, Path(pattern="^(cancel|resume|retry-compensation|delete)$")],
    body: BulkRequest,
) -> BulkResultOut:
    given = body.filter
    filters = workflow_filter(
        status=given.status,
        name=given.name,
        queue=given.queue,
        app_version=given.app_version,
        created_after=given.created_after,
        created_before=given.created_before,
        id_prefix=given.id_prefix,
        parent_workflow_id=given.parent_workflow_id,
        attributes=given.attributes,
    )
    if action == "cancel":
        result = await app.bulk_cancel(
            filters, dry_run=body.dry_run, compensate=body.compensate, reason=body.reason
        )
    elif action == "resume":
        result = await app.bulk_resume(filters, dry_run=body.dry_run, reason=body.reason)
    elif action == "delete":
        result = await app.bulk_delete(filters, dry_run=body.dry_run, reason=body.reason)
    else:
        result = await app.bulk_retry_compensation(
            filters, dry_run=body.dry_run, reason=body.reason
        )
    return BulkResultOut.of(result)


class SubjectErased(BaseModel):
    subject: str
    erased: bool = Field(description="false: the subject had no data key (nothing to erase)")


@router.post(
    "/subjects/{subject}/erase",
    response_model=SubjectErased,
    responses=error_responses(400, 401, 403, 413, 422, 503),
    summary="Crypto-shred a subject: delete its data key (its payloads become unreadable)",
    description=(
        "With a SubjectCodec: every payload of the subject's workflows then reads as "
        '`{"$undecodable": ...}`; statuses, step names, timings, attributes and the audit stay. '
        "Audited. Cannot be undone."
    ),
)
async def erase_subject(
    request: Request,
    app: OrchestratorDep,
    subject: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
) -> SubjectErased:
    reason = (await optional_body(request, ReasonRequest)).reason
    erased = await app.erase_subject(check_text(subject, "subject"), reason=reason)
    return SubjectErased(subject=subject, erased=erased)


@router.get(
    "/audit",
    response_model=AuditPage,
    responses=error_responses(400, 401, 422, 503),
    summary="The operator audit log, newest first (every surface: Python, HTTP, console, CLI)",
)
async def audit(
    app: OrchestratorDep,
    workflow_id: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    action: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    if workflow_id is not None:
        check_text(workflow_id, "workflow id")
    if action is not None:
        check_text(action, "action")
    entries, next_cursor = await app.list_audit(
        workflow_id=workflow_id, action=action, cursor=cursor, limit=limit
    )
    return AuditPage(items=[AuditOut.of(e) for e in entries], next_cursor=next_cursor)


@router.get(
    "/workers",
    response_model=list[WorkerOut],
    responses=error_responses(401, 503),
    summary="Workers registered in the database, with their leases",
)
async def workers(app: OrchestratorDep) -> list[WorkerOut]:
    return [WorkerOut.of(record) for record in await app.list_workers()]


@router.get(
    "/versions",
    response_model=list[VersionOut],
    responses=error_responses(401, 503),
    summary="Application versions that have run: live workers, unfinished and stranded workflows",
)
async def versions(app: OrchestratorDep) -> list[VersionOut]:
    return [VersionOut.of(info) for info in await app.list_versions()]


@router.post(
    "/versions/{app_version}/workflows",
    response_model=MoveResult,
    responses=error_responses(400, 401, 413, 422, 503),
    summary="Move unfinished workflows to an application version (its workers take them over)",
    description=(
        "For workflows the code of that version can replay (`saga upgrade-check` tells). "
        "Workflows a live worker runs now, finished and unknown ones are left alone and listed "
        "in `not_moved`."
    ),
)
async def move_workflows(
    app: OrchestratorDep,
    app_version: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
    body: MoveRequest,
) -> MoveResult:
    check_text(app_version, "app_version")
    for workflow_id in body.workflow_ids:
        check_text(workflow_id, "workflow id")
    moved = await app.move_workflows(body.workflow_ids, app_version)
    done = set(moved)
    left = [i for i in dict.fromkeys(body.workflow_ids) if i not in done]
    return MoveResult(app_version=app_version, moved=moved, not_moved=left)
