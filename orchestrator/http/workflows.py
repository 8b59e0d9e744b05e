"""Workflow endpoints: start, list, read, wait for the result, cancel, resume, fork."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from orchestrator import StartOptions, WorkflowFilter
from orchestrator.attributes import MAX_ATTRIBUTES, parse_attribute_pairs
from orchestrator.audit import MAX_REASON_CHARS
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
    view_of,
)
from orchestrator.http.errors import RequestInvalidError, error_body, field_errors
from orchestrator.http.inputs import bind_body
from orchestrator.http.schemas import (
    AuditOut,
    CancelRequest,
    ErrorResponse,
    EventValue,
    HistoryOut,
    ReasonRequest,
    RollbackPlanOut,
    SkipCompensationRequest,
    StepOut,
    WorkflowAccepted,
    WorkflowOut,
    WorkflowPage,
    WorkflowResult,
)
from orchestrator.types import WorkflowStatus

router = APIRouter(tags=["workflows"])
M = TypeVar("M", bound=BaseModel)

WorkflowId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_CHARS, description="the workflow id")
]
Timeout = Annotated[
    float | None,
    Query(ge=0, le=MAX_QUERY_WAIT_SECONDS, description="seconds to wait (clamped by the service)"),
]
AttributeParams = Annotated[
    list[str] | None,
    Query(
        max_length=MAX_ATTRIBUTES,
        description="an attribute as `name:value` (or `name=value`); repeatable",
    ),
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


def attributes_of(pairs: list[str] | None) -> dict[str, str] | None:
    """Repeated ``attribute=name:value`` query parameters as attributes (None: none given)."""
    return parse_attribute_pairs(pairs) if pairs else None


def accepted(
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
        "the workflow id. `?attribute=customer_id:c-7` (repeatable) sets the workflow's "
        "attributes, business keys to list it by. With `?wait_for_event=KEY` the answer waits (up to `timeout` s) for "
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
    attribute: AttributeParams = None,
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
        StartOptions(workflow_id=workflow_id, attributes=attributes_of(attribute)),
        trace_headers=request.headers,
    )
    info = handle.info or await handle.status()  # as stored by this start: no read back
    if wait_for_event is None:
        return accepted(request, handle.workflow_id, info.status)
    value = await app.get_event(handle.workflow_id, wait_for_event, clamp_wait(request, timeout))
    if value is None and wait_for_event not in await app.get_events(handle.workflow_id):
        info = await handle.status()
        return accepted(request, handle.workflow_id, info.status)
    response.status_code = 200
    info = await handle.status()
    return accepted(
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
    id_prefix: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_ID_CHARS, description="ids starting with this"),
    ] = None,
    parent_workflow_id: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    attribute: AttributeParams = None,
    cursor: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="the `next_cursor` of the previous page (keyset: any depth at one cost)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[
        int, Query(ge=0, le=1_000_000_000, description="prefer `cursor`: an offset costs its depth")
    ] = 0,
) -> WorkflowPage:
    filters = workflow_filter(
        status=status,
        name=name,
        queue=queue,
        app_version=app_version,
        created_after=created_after,
        created_before=created_before,
        id_prefix=id_prefix,
        parent_workflow_id=parent_workflow_id,
        stranded=stranded,
        attributes=attributes_of(attribute),
    )
    view = view_of(request)
    if offset:
        if cursor is not None:
            raise InvalidArgumentError("give cursor or offset, not both")
        infos = await app.list_workflows(
            status=filters.status,  # type: ignore[arg-type]
            name=name,
            queue=queue,
            created_after=filters.created_after,
            created_before=filters.created_before,
            app_version=app_version,
            stranded=stranded,
            id_prefix=id_prefix,
            parent_workflow_id=parent_workflow_id,
            attributes=filters.attributes,
            limit=limit,
            offset=offset,
        )
        next_link = None
        if len(infos) == limit:
            url = request.url.include_query_params(offset=offset + limit)
            next_link = f"{url.path}?{url.query}"
        items = [WorkflowOut.of(i, links_for(request, i.workflow_id), view) for i in infos]
        return WorkflowPage(items=items, next=next_link)
    page = await app.list_workflows_page(filters, cursor=cursor, limit=limit)
    next_link = None
    if page.next_cursor is not None:
        url = request.url.remove_query_params("offset").include_query_params(
            cursor=page.next_cursor
        )
        next_link = f"{url.path}?{url.query}"
    return WorkflowPage(
        items=[WorkflowOut.of(i, links_for(request, i.workflow_id), view) for i in page.items],
        next=next_link,
        next_cursor=page.next_cursor,
    )


def workflow_filter(
    *,
    status: list[WorkflowStatus] | None,
    name: str | None,
    queue: str | None,
    app_version: str | None,
    created_after: dt.datetime | None,
    created_before: dt.datetime | None,
    id_prefix: str | None,
    parent_workflow_id: str | None,
    stranded: bool = False,
    attributes: dict[str, str] | None = None,
) -> WorkflowFilter:
    """A listing's query parameters as a WorkflowFilter (texts checked)."""
    for text, what in (
        (name, "name"),
        (queue, "queue"),
        (app_version, "app_version"),
        (id_prefix, "id_prefix"),
        (parent_workflow_id, "parent_workflow_id"),
    ):
        if text is not None:
            check_text(text, what)
    return WorkflowFilter(
        status=list(status) if status else None,
        name=name,
        queue=queue,
        app_version=app_version,
        created_after=_utc(created_after),
        created_before=_utc(created_before),
        id_prefix=id_prefix,
        parent_workflow_id=parent_workflow_id,
        stranded=stranded,
        attributes=attributes or None,
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
    return WorkflowOut.of(info, links_for(request, info.workflow_id), view_of(request))


@router.get(
    "/workflows/{workflow_id}/steps",
    name="list_steps",
    response_model=list[StepOut],
    responses=error_responses(400, 401, 404, 422, 503),
    summary="Every recorded step of a workflow, in order",
)
async def list_steps(
    request: Request, app: OrchestratorDep, workflow_id: WorkflowId
) -> list[StepOut]:
    info = await app.retrieve(check_text(workflow_id, "workflow id")).status()
    steps = await app.list_steps(workflow_id)
    view = view_of(request)
    return [StepOut.of(step, view, info.trace_id, info.name) for step in steps]


@router.get(
    "/workflows/{workflow_id}/history",
    name="export_history",
    response_model=HistoryOut,
    responses=error_responses(400, 401, 404, 422, 503),
    summary="A workflow's history as stored, to replay in tests (saga workflows export)",
    description=(
        "Its record and every step record, values as the stored JSON text: the document "
        "`orchestrator.testing.replay` reads. Not redacted: it is the application's data."
    ),
)
async def export_history(app: OrchestratorDep, workflow_id: WorkflowId) -> dict[str, Any]:
    return await app.export_history(check_text(workflow_id, "workflow id"))


@router.get(
    "/workflows/{workflow_id}/rollback-plan",
    name="rollback_plan",
    response_model=RollbackPlanOut,
    responses=error_responses(400, 401, 404, 422, 503),
    summary="The compensations a rollback would run if the saga failed now, in order",
    description=(
        "Each with the forward step it undoes and the recorded input (arguments and result) it "
        "would receive. `applies` is false once the saga ended or passed its pivot. Reads only."
    ),
)
async def rollback_plan(
    request: Request, app: OrchestratorDep, workflow_id: WorkflowId
) -> RollbackPlanOut:
    info = await app.retrieve(check_text(workflow_id, "workflow id")).status()
    plan = await app.rollback_plan(workflow_id)
    return RollbackPlanOut.of(plan, view_of(request), info.name)


@router.get(
    "/workflows/{workflow_id}/audit",
    name="workflow_audit",
    response_model=list[AuditOut],
    responses=error_responses(400, 401, 422, 503),
    summary="The operator actions taken on a workflow, newest first",
)
async def workflow_audit(
    app: OrchestratorDep,
    workflow_id: WorkflowId,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    entries, _ = await app.list_audit(
        workflow_id=check_text(workflow_id, "workflow id"), limit=limit
    )
    return [AuditOut.of(entry) for entry in entries]


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
    options = await optional_body(request, CancelRequest)
    await app.cancel(
        workflow_id,
        compensate=options.compensate if compensate is None else compensate,
        children=options.children,
        reason=options.reason,
    )
    info = await app.retrieve(workflow_id).status()
    return accepted(request, workflow_id, info.status)


@router.delete(
    "/workflows/{workflow_id}",
    name="delete_workflow",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 401, 403, 404, 409, 422, 503),
    summary="Delete a finished workflow (with its child workflows unless children=false)",
    description=(
        "Deletes the workflow's row, steps, messages, events and streams (and its children's) "
        "in one transaction; the id can then start a new workflow. A workflow (or child) "
        "still running or queued is refused with 409: cancel it first. Audited (`delete`)."
    ),
)
async def delete_workflow(
    app: OrchestratorDep,
    workflow_id: WorkflowId,
    children: bool = True,
    reason: Annotated[str | None, Query(min_length=1, max_length=MAX_REASON_CHARS)] = None,
) -> Response:
    await app.delete_workflow(
        check_text(workflow_id, "workflow id"), children=children, reason=reason
    )
    return Response(status_code=204)


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
    reason = (await optional_body(request, ReasonRequest)).reason
    handle = await app.resume(check_text(workflow_id, "workflow id"), reason=reason)
    return accepted(request, handle.workflow_id, (await handle.status()).status)


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
    reason = (await optional_body(request, ReasonRequest)).reason
    handle = await app.fork(
        workflow_id, from_step, new_workflow_id=new_id, app_version=app_version, reason=reason
    )
    return accepted(request, handle.workflow_id, (await handle.status()).status)


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
    reason = (await optional_body(request, ReasonRequest)).reason
    handle = await app.retry_compensation(check_text(workflow_id, "workflow id"), reason=reason)
    return accepted(request, handle.workflow_id, (await handle.status()).status)


@router.post(
    "/workflows/{workflow_id}/skip-compensation",
    name="skip_compensation",
    status_code=202,
    response_model=WorkflowAccepted,
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503),
    summary="Give up undoing one step of a COMPENSATION_FAILED saga and finish its rollback",
    description=(
        "For a compensation that cannot succeed (the effect was undone by hand, or cannot be): "
        "`step` is the forward step whose compensation failed, `reason` is required. Both, and "
        "who did it, go to the saga's history and the audit log."
    ),
)
async def skip_compensation(
    request: Request, app: OrchestratorDep, workflow_id: WorkflowId, body: SkipCompensationRequest
) -> WorkflowAccepted:
    handle = await app.skip_compensation(
        check_text(workflow_id, "workflow id"), step=body.step, reason=body.reason
    )
    return accepted(request, handle.workflow_id, (await handle.status()).status)


async def optional_body(request: Request, model: type[M]) -> M:
    """An optional JSON body of ``model`` (empty: its defaults); 422 when it does not fit."""
    body = parse_json(await request.body(), empty=None)
    if body is None:
        return model()
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [{**e, "loc": ["body", *e.get("loc", ())]} for e in exc.errors(include_url=False)]
        raise RequestInvalidError(
            "the body does not fit the schema", errors=field_errors(errors)
        ) from None
