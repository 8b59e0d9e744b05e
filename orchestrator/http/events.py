"""Event and stream endpoints: long-poll one event, read all, follow a stream as SSE."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse

from orchestrator.app import Orchestrator
from orchestrator.errors import WorkflowTimeoutError
from orchestrator.http.deps import (
    MAX_ID_CHARS,
    MAX_QUERY_WAIT_SECONDS,
    OrchestratorDep,
    check_text,
    clamp_wait,
    error_responses,
    service_config,
)
from orchestrator.http.errors import EventNotSetError
from orchestrator.http.schemas import ErrorResponse, EventMap, EventValue

# The single-event link is what callers poll (a payment page waiting for its URL): public.
public_router = APIRouter(tags=["events"])
router = APIRouter(tags=["events"])

WorkflowId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]
Key = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]


@public_router.get(
    "/workflows/{workflow_id}/events/{key}",
    name="get_event",
    response_model=EventValue,
    responses={
        **error_responses(400, 404, 422, 503),
        408: {
            "model": ErrorResponse,
            "description": 'not set within `timeout`: `{error: "timeout", ...}`; poll again',
        },
    },
    summary="Wait (long poll) for one event of a workflow",
    description=(
        "Public (no bearer token): this is the link handed to callers. 404 at once for an "
        "unknown workflow, or when it finished without setting the event. When the event is "
        "not set within `timeout` seconds the answer is **408** with the JSON error "
        '`{error: "timeout", message, detail: {workflow_id, key, timeout}}` (chosen over a '
        "202/204 so that a timed-out poll can never be mistaken for a value); poll again."
    ),
)
async def get_event(
    request: Request,
    app: OrchestratorDep,
    workflow_id: WorkflowId,
    key: Key,
    timeout: Annotated[float | None, Query(ge=0, le=MAX_QUERY_WAIT_SECONDS)] = None,
) -> EventValue:
    check_text(workflow_id, "workflow id")
    check_text(key, "event key")
    await app.retrieve(workflow_id).status()  # 404 at once for an unknown workflow
    wait = clamp_wait(request, timeout)
    value = await app.get_event(workflow_id, key, wait)
    if value is None and key not in await app.get_events(workflow_id):
        info = await app.retrieve(workflow_id).status()
        if info.status.is_terminal:
            raise EventNotSetError(
                f"workflow {workflow_id} finished ({info.status.value}) without setting event "
                f"{key!r}; it never will",
                workflow_id=workflow_id,
                key=key,
                status=info.status.value,
            )
        raise WorkflowTimeoutError(
            f"event {key!r} of workflow {workflow_id} was not set within {wait} s; poll again",
            workflow_id=workflow_id,
            key=key,
            timeout=wait,
        )
    return EventValue(key=key, value=value)


@router.get(
    "/workflows/{workflow_id}/events",
    name="list_events",
    response_model=EventMap,
    responses=error_responses(400, 401, 404, 422, 503),
    summary="Every event a workflow has published",
)
async def list_events(app: OrchestratorDep, workflow_id: WorkflowId) -> EventMap:
    events = await app.get_events(check_text(workflow_id, "workflow id"))
    return EventMap(workflow_id=workflow_id, events=events)


def _sse(value: Any) -> bytes:
    return f"data: {json.dumps(value, separators=(',', ':'), default=str)}\n\n".encode()


_HEARTBEAT = b": keep-alive\n\n"  # an SSE comment: proxies and clients see the stream is alive
_END = object()


async def _follow(
    app: Orchestrator, workflow_id: str, key: str, heartbeat_seconds: float
) -> AsyncIterator[bytes]:
    """The stream's values as SSE events, with a comment line whenever ``heartbeat_seconds``
    pass without one (idle connections are otherwise cut by proxies, and a client cannot tell
    a quiet stream from a dead connection)."""
    values: asyncio.Queue[Any] = asyncio.Queue(maxsize=64)

    async def pump() -> None:
        try:
            async for value in app.read_stream(workflow_id, key):
                await values.put(value)
        finally:
            await values.put(_END)

    pumping = asyncio.create_task(pump())
    try:
        while True:
            try:
                value = await asyncio.wait_for(values.get(), heartbeat_seconds)
            except TimeoutError:
                yield _HEARTBEAT
                continue
            if value is _END:  # closed, finished, or the store failed: the client may reconnect
                return
            yield _sse(value)
    finally:
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pumping


@router.get(
    "/workflows/{workflow_id}/streams/{key}",
    name="read_stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "one `data: <json>` line per value; ends when the stream closes",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **error_responses(400, 401, 404, 422, 503),
    },
    summary="Follow a workflow's stream as server-sent events",
)
async def read_stream(
    request: Request, app: OrchestratorDep, workflow_id: WorkflowId, key: Key
) -> StreamingResponse:
    check_text(workflow_id, "workflow id")
    check_text(key, "stream key")
    await app.retrieve(workflow_id).status()  # 404 before the stream starts
    heartbeat = service_config(request).stream_heartbeat_seconds
    return StreamingResponse(
        _follow(app, workflow_id, key, heartbeat),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
