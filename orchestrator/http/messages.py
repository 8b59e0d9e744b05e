"""Message endpoints: send a JSON message into a workflow's mailbox (read with recv), by its
id or by a business key it holds (kept for a workflow yet to start with it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request

from orchestrator.http.deps import (
    MAX_ID_CHARS,
    OrchestratorDep,
    check_text,
    error_responses,
    parse_json,
)
from orchestrator.http.schemas import KeyedMessageAccepted, MessageAccepted

router = APIRouter(tags=["messages"])

_ANY_JSON = {
    "content": {"application/json": {"schema": {"description": "any JSON value"}}},
    "required": True,
}


@router.post(
    "/workflows/{workflow_id}/messages/{topic}",
    name="send_message",
    status_code=202,
    response_model=MessageAccepted,
    responses=error_responses(400, 401, 404, 409, 413, 422, 503),
    openapi_extra={"requestBody": _ANY_JSON},
    summary="Send the JSON body as a message on a topic",
    description=(
        "Durable; with `Idempotency-Key` a repeated send (a client retry) is stored once. "
        "404 for an unknown workflow, 409 for a finished one (it can never read the message)."
    ),
)
async def send_message(
    request: Request,
    app: OrchestratorDep,
    workflow_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
    topic: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=MAX_ID_CHARS)
    ] = None,
) -> MessageAccepted:
    check_text(workflow_id, "workflow id")
    check_text(topic, "topic")
    if idempotency_key is not None:
        check_text(idempotency_key, "Idempotency-Key")
    message = parse_json(await request.body())
    await app.send(workflow_id, message, topic=topic, idempotency_key=idempotency_key)
    return MessageAccepted(workflow_id=workflow_id, topic=topic, idempotency_key=idempotency_key)


@router.post(
    "/messages/by-key/{key}/{topic}",
    name="send_message_to_key",
    status_code=202,
    response_model=KeyedMessageAccepted,
    responses=error_responses(400, 401, 409, 413, 422, 503),
    openapi_extra={"requestBody": _ANY_JSON},
    summary="Send the JSON body on a topic to the workflow holding a business key",
    description=(
        "`key` is `name:value` of a workflow attribute (`order_id:42`). The newest unfinished "
        "workflow with that attribute gets the message; when none has it yet, it is kept "
        "`keep_seconds` (default: the server's setting, one day) and delivered once to the "
        "first workflow to start with (or set) it. With `Idempotency-Key` a repeated send is "
        "stored once. Never 404: an unknown key keeps the message."
    ),
)
async def send_message_to_key(
    request: Request,
    app: OrchestratorDep,
    key: Annotated[str, Path(min_length=3, max_length=MAX_ID_CHARS)],
    topic: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
    *,
    keep_seconds: Annotated[float | None, Query(gt=0, le=365 * 86400)] = None,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=MAX_ID_CHARS)
    ] = None,
) -> KeyedMessageAccepted:
    check_text(key, "key")
    check_text(topic, "topic")
    if idempotency_key is not None:
        check_text(idempotency_key, "Idempotency-Key")
    message = parse_json(await request.body())
    sent = await app.send_to_key(
        key, message, topic=topic, idempotency_key=idempotency_key, keep_seconds=keep_seconds
    )
    return KeyedMessageAccepted(
        key=key,
        topic=topic,
        idempotency_key=idempotency_key,
        delivered=sent.delivered,
        workflow_id=sent.workflow_id,
        expires_at=sent.expires_at,
        repeat=not sent.stored,
    )
