"""Read-only operations endpoints: health, readiness, metrics, queues, schedules, workers."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from orchestrator.errors import NotRegisteredError
from orchestrator.http.deps import (
    MAX_ID_CHARS,
    OrchestratorDep,
    check_text,
    error_responses,
    links_for,
    service_config,
)
from orchestrator.http.schemas import (
    Health,
    MoveRequest,
    MoveResult,
    QueueStatsOut,
    Readiness,
    ScheduleOut,
    VersionOut,
    WorkerOut,
    WorkflowOut,
)
from orchestrator.metrics import CONTENT_TYPE

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
    return [QueueStatsOut.of(stats) for stats in await app.queue_stats()]


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
        return QueueStatsOut.of(stats[0])
    if queue in app.queues:  # declared here, idle
        return QueueStatsOut(queue_name=queue, depth=0, running=0, started_last_minute=0)
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
    return [WorkflowOut.of(info, links_for(request, info.workflow_id)) for info in infos]


@router.get(
    "/schedules",
    response_model=list[ScheduleOut],
    responses=error_responses(401, 503),
    summary="Every stored cron schedule",
)
async def schedules(app: OrchestratorDep) -> list[ScheduleOut]:
    return [ScheduleOut.of(record) for record in await app.list_schedules()]


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
