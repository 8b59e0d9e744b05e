"""Workflow endpoints: start, list, read, wait for the result, cancel, resume, fork."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from orchestrator import StartOptions
from orchestrator.errors import (
    InvalidArgumentError,
    OrchestratorError,
    WorkflowNotFoundError,
    WorkflowTimeoutError,
)
from orchestrator.http.deps import (
    MAX_ID_CHARS,
    MAX_QUERY_WAIT_SECONDS,
    OrchestratorDep,
    check_text,
    clamp_wait,
    error_responses,
    links_for,
    parse_json,
)
from orchestrator.http.errors import RequestInvalidError, error_body, field_errors
from orchestrator.http.inputs import bind_body
from orchestrator.http.schemas import (
    CancelRequest,
    ErrorResponse,
    EventValue,
    StepOut,
    WorkflowAccepted,
    WorkflowOut,
    WorkflowPage,
    WorkflowResult,
)
from orchestrator.types import WorkflowStatus

router = APIRouter(tags=["workflows"])

WorkflowId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_CHARS, description="the workflow id")
]
Timeout = Annotated[
    float | None,
    Query(ge=0, le=MAX_QUERY_WAIT_SECONDS, description="seconds to wait (clamped by the service)"),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="the workflow id: repeating a start with it returns the same workflow",
    ),
]

_ANY_OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}
_CANCEL_BODY = {
    "content": {"application/json": {"schema": CancelRequest.model_json_schema()}},
    "required": False,
}


def _accepted(
    request: Request, workflow_id: str, status: WorkflowStatus, event: EventValue | None = None
) -> WorkflowAccepted:
    return WorkflowAccepted(
        workflow_id=workflow_id,
        status=status,
        links=links_for(request, workflow_id),
        event=event,
    )


@router.post(
    "/workflows/{name}",
    name="start_workflow",
    status_code=202,
    response_model=WorkflowAccepted,
    responses={
        200: {"model": WorkflowAccepted, "description": "started; the awaited event is set"},
        **error_responses(400, 401, 404, 409, 413, 422, 503),
    },
    openapi_extra={"requestBody": _ANY_OBJECT},
    summary="Start a registered workflow",
    description=(
        "The JSON body is the input: the model itself when the workflow's only parameter is a "
        "pydantic model, else an object of arguments by parameter name. `Idempotency-Key` is "
        "the workflow id. With `?wait_for_event=KEY` the answer waits (up to `timeout` s) for "
        "that event and includes it (200); otherwise, or on timeout, 202 with links to poll."
    ),
)
async def start_workflow(
    *,
    request: Request,
    response: Response,
    app: OrchestratorDep,
    name: Annotated[
        str, Path(min_length=1, max_length=MAX_ID_CHARS, description="registered workflow name")
    ],
    idempotency_key: IdempotencyKey = None,
    wait_for_event: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    timeout: Timeout = None,
) -> WorkflowAccepted:
    workflow = app.workflow_named(name)  # NotRegisteredError: 404
    workflow_id = None if idempotency_key is None else check_text(idempotency_key, "workflow id")
    if wait_for_event is not None:
        check_text(wait_for_event, "event key")
    args, kwargs = bind_body(workflow, parse_json(await request.body()))
    handle = await app.start_with(  # the caller's traceparent: its trace
        workflow,
        args,
        kwargs,
        StartOptions(workflow_id=workflow_id),
        trace_headers=request.headers,
    )
    info = handle.info or await handle.status()  # as stored by this start: no read back
    if wait_for_event is None:
        return _accepted(request, handle.workflow_id, info.status)
    value = await app.get_event(handle.workflow_id, wait_for_event, clamp_wait(request, timeout))
    if value is None and wait_for_event not in await app.get_events(handle.workflow_id):
        info = await handle.status()
        return _accepted(request, handle.workflow_id, info.status)
    response.status_code = 200
    info = await handle.status()
    return _accepted(
        request, handle.workflow_id, info.status, EventValue(key=wait_for_event, value=value)
    )


@router.get(
    "/workflows",
    name="list_workflows",
    response_model=WorkflowPage,
    responses=error_responses(400, 401, 422, 503),
    summary="List workflows, newest first",
)
async def list_workflows(
    *,
    request: Request,
    app: OrchestratorDep,
    status: Annotated[list[WorkflowStatus] | None, Query()] = None,
    name: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    queue: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    created_after: dt.datetime | None = None,
    created_before: dt.datetime | None = None,
    app_version: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    stranded: Annotated[
        bool,
        Query(
            description="only unfinished workflows of application versions no live worker "
            "serves (docs/upgrading.md)"
        ),
    ] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> WorkflowPage:
    for text, what in ((name, "name"), (queue, "queue"), (app_version, "app_version")):
        if text is not None:
            check_text(text, what)
    infos = await app.list_workflows(
        status=list(status) if status else None,
        name=name,
        queue=queue,
        created_after=_utc(created_after),
        created_before=_utc(created_before),
        app_version=app_version,
        stranded=stranded,
        limit=limit,
        offset=offset,
    )
    next_link = None
    if len(infos) == limit:
        url = request.url.include_query_params(offset=offset + limit)
        next_link = f"{url.path}?{url.query}"
    return WorkflowPage(
        items=[WorkflowOut.of(info, links_for(request, info.workflow_id)) for info in infos],
        next=next_link,
    )


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)  # a time without offset is read as UTC


@router.get(
    "/workflows/{workflow_id}",
    name="get_workflow",
    response_model=WorkflowOut,
    responses=error_responses(400, 401, 404, 422, 503),
    summary="A workflow's status, input and output",
)
async def get_workflow(
    request: Request, app: OrchestratorDep, workflow_id: WorkflowId
) -> WorkflowOut:
    info = await app.retrieve(check_text(workflow_id, "workflow id")).status()
    return WorkflowOut.of(info, links_for(request, info.workflow_id))


@router.get(
    "/workflows/{workflow_id}/steps",
    name="list_steps",
    response_model=list[StepOut],
    responses=error_responses(400, 401, 404, 422, 503),
    summary="Every recorded step of a workflow, in order",
)
async def list_steps(app: OrchestratorDep, workflow_id: WorkflowId) -> list[StepOut]:
    steps = await app.list_steps(check_text(workflow_id, "workflow id"))
    return [StepOut.of(step) for step in steps]


@router.get(
    "/workflows/{workflow_id}/result",
    name="get_result",
    response_model=WorkflowResult,
    responses={
        202: {"model": WorkflowResult, "description": "still running at the timeout"},
        **error_responses(400, 401, 404, 422, 503),
        409: {"model": ErrorResponse, "description": "the workflow failed (error in detail)"},
    },
    summary="Wait (long poll) for a workflow's result",
)
async def get_result(
    request: Request, app: OrchestratorDep, workflow_id: WorkflowId, timeout: Timeout = None
) -> Any:
    handle = app.retrieve(check_text(workflow_id, "workflow id"))
    try:
        await handle.result(timeout=clamp_wait(request, timeout))
    except WorkflowTimeoutError:
        info = await handle.status()
        return JSONResponse(WorkflowResult(status=info.status).model_dump(mode="json"), 202)
    except WorkflowNotFoundError:
        raise
    except Exception as exc:  # the workflow's own error, rebuilt: report it, never raise it
        info = await handle.status()
        code = exc.code if isinstance(exc, OrchestratorError) else "workflow_failed"
        detail = {
            "workflow_id": info.workflow_id,
            "status": info.status.value,
            "error_type": info.error_type or type(exc).__qualname__,
            "error_message": info.error if info.error is not None else str(exc),
        }
        message = f"workflow {info.workflow_id} ended {info.status.value}"
        return JSONResponse(error_body(code, message, detail), status_code=409)
    info = await handle.status()
    return WorkflowResult(status=info.status, output=info.output)


@router.post(
    "/workflows/{workflow_id}/cancel",
    name="cancel_workflow",
    status_code=202,
    response_model=WorkflowAccepted,
    responses=error_responses(400, 401, 404, 409, 413, 422, 503),
    openapi_extra={"requestBody": _CANCEL_BODY},
    summary="Cancel a workflow (compensate=true rolls a saga back first)",
)
async def cancel_workflow(
    request: Request,
    app: OrchestratorDep,
    workflow_id: WorkflowId,
    compensate: bool | None = None,
) -> WorkflowAccepted:
    check_text(workflow_id, "workflow id")
    body = parse_json(await request.body(), empty=None)
    if body is not None:
        try:
            options = CancelRequest.model_validate(body)
        except ValidationError as exc:
            errors = [
                {**e, "loc": ["body", *e.get("loc", ())]} for e in exc.errors(include_url=False)
            ]
            raise RequestInvalidError(
                "the body does not fit the schema", errors=field_errors(errors)
            ) from None
        if compensate is None:
            compensate = options.compensate
    await app.cancel(workflow_id, compensate=bool(compensate))
    info = await app.retrieve(workflow_id).status()
    return _accepted(request, workflow_id, info.status)


@router.post(
    "/workflows/{workflow_id}/resume",
    name="resume_workflow",
    status_code=202,
    response_model=WorkflowAccepted,
    responses=error_responses(400, 401, 404, 409, 422, 503),
    summary="Run a cancelled or failed workflow again from its last checkpoint",
)
async def resume_workflow(
    request: Request, app: OrchestratorDep, workflow_id: WorkflowId
) -> WorkflowAccepted:
    handle = await app.resume(check_text(workflow_id, "workflow id"))
    return _accepted(request, handle.workflow_id, (await handle.status()).status)


@router.post(
    "/workflows/{workflow_id}/fork",
    name="fork_workflow",
    status_code=202,
    response_model=WorkflowAccepted,
    responses=error_responses(400, 401, 404, 409, 422, 503),
    summary="A new workflow with the same input, reusing the steps before from_step",
)
async def fork_workflow(
    *,
    request: Request,
    app: OrchestratorDep,
    workflow_id: WorkflowId,
    from_step: Annotated[int, Query(ge=1, le=2_147_483_647)] = 1,
    new_workflow_id: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    app_version: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_ID_CHARS,
            description="run the fork on a worker of this application version",
        ),
    ] = None,
    idempotency_key: IdempotencyKey = None,
) -> WorkflowAccepted:
    check_text(workflow_id, "workflow id")
    if app_version is not None:
        check_text(app_version, "app_version")
    new_id = new_workflow_id if new_workflow_id is not None else idempotency_key
    if new_id is not None:
        check_text(new_id, "new workflow id")
        if new_id == workflow_id:
            raise InvalidArgumentError("the fork needs a workflow id of its own")
    handle = await app.fork(workflow_id, from_step, new_workflow_id=new_id, app_version=app_version)
    return _accepted(request, handle.workflow_id, (await handle.status()).status)


@router.post(
    "/workflows/{workflow_id}/retry-compensation",
    name="retry_compensation",
    status_code=202,
    response_model=WorkflowAccepted,
    responses=error_responses(400, 401, 404, 409, 422, 503),
    summary="Retry the failed compensation of a COMPENSATION_FAILED saga",
)
async def retry_compensation(
    request: Request, app: OrchestratorDep, workflow_id: WorkflowId
) -> WorkflowAccepted:
    handle = await app.retry_compensation(check_text(workflow_id, "workflow id"))
    return _accepted(request, handle.workflow_id, (await handle.status()).status)
