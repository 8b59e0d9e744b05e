"""Verified webhooks: sources, the actions their handlers return, and the POST route.

A delivery to ``POST /webhooks/{source}`` is checked in this order: body size (413, by the
middleware), signature and timestamp on the raw bytes (401 with a JSON ``reason``), JSON (400),
the source's payload model (422), then the handler's action: ``Send`` a message (404 unknown
workflow, 409 finished), ``SendToKey`` a message to the workflow holding a business key (kept
when none does yet: an early event is accepted, not 404) or ``Start`` a workflow (404 unknown
name). The sender's delivery id
is the message's idempotency key (or the started workflow's id), so a retried delivery gets
the same answer and is delivered once. Webhook routes are public: the signature is the auth.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ValidationError

from orchestrator import StartOptions
from orchestrator.errors import ConfigurationError, NotRegisteredError
from orchestrator.http.deps import (
    MAX_ID_CHARS,
    OrchestratorDep,
    check_text,
    error_responses,
    parse_json,
)
from orchestrator.http.errors import RequestInvalidError, field_errors
from orchestrator.http.inputs import bind_body
from orchestrator.http.schemas import WebhookAccepted
from orchestrator.http.signatures import (
    DEFAULT_TOLERANCE_SECONDS,
    GitHub,
    HmacSha256,
    StandardWebhooks,
    Stripe,
)
from orchestrator.webhooks import (
    Action,
    Delivery,
    Handler,
    Send,
    SendToKey,
    SignatureScheme,
    Start,
)

if TYPE_CHECKING:
    from orchestrator.app import Orchestrator

logger = logging.getLogger("orchestrator.http.webhooks")

__all__ = [
    "Delivery",
    "GitHub",
    "HmacSha256",
    "Send",
    "SendToKey",
    "StandardWebhooks",
    "Start",
    "Stripe",
    "WebhookSource",
    "webhook_router",
]

# Never handed to handlers (nor logged): signature material and credentials.
_HIDDEN_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
# Errors a handler raises on a payload it cannot use: the sender's fault (422), not a 500.
_PAYLOAD_ERRORS = (ValidationError, KeyError, IndexError, TypeError, ValueError)


@dataclass(frozen=True)
class WebhookSource:
    """One sender of webhooks, served at ``POST /webhooks/{name}``.

    Args:
        name: the path segment.
        secrets: the signing secret, or several during a rotation (any one verifies).
        scheme: StandardWebhooks(), Stripe(), GitHub() or HmacSha256(header=...).
        handler: maps a verified Delivery to Send, Start or None (ignore it); may be async.
        payload_model: a pydantic model the JSON payload must fit (else 422).
        tolerance_seconds: the replay window of timestamped schemes (±).
        clock: seconds since the epoch (tests inject one).
    """

    name: str
    secrets: str | Sequence[str] = field(repr=False)
    scheme: SignatureScheme
    handler: Handler
    payload_model: type[BaseModel] | None = None
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        keys = (self.secrets,) if isinstance(self.secrets, str) else tuple(self.secrets)
        if not keys or not all(keys):
            raise ConfigurationError(f"webhook source {self.name!r} needs non-empty secrets")
        if isinstance(self.scheme, StandardWebhooks):
            for key in keys:
                self.scheme.key(key)  # ConfigurationError for a malformed whsec_ secret
        object.__setattr__(self, "secrets", keys)
        check_text(self.name, "webhook source name")

    @property
    def secret_list(self) -> tuple[str, ...]:
        return tuple(self.secrets)


def _visible_headers(request: Request, scheme: SignatureScheme) -> dict[str, str]:
    hidden = _HIDDEN_HEADERS | scheme.signature_headers
    return {k: v for k, v in request.headers.items() if k not in hidden}


def _payload(source: WebhookSource, data: Any) -> Any:
    if source.payload_model is None:
        return data
    try:
        return source.payload_model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ["body", *e["loc"]]} for e in exc.errors(include_url=False)]
        raise RequestInvalidError(
            "the payload does not fit the source's schema", errors=field_errors(errors)
        ) from None


async def _action(source: WebhookSource, delivery: Delivery) -> Action:
    try:
        action = source.handler(delivery)
        if inspect.isawaitable(action):
            action = await action
    except _PAYLOAD_ERRORS as exc:
        logger.warning(
            "webhook %s delivery %s: handler rejected the payload (%s)",
            source.name,
            delivery.delivery_id,
            type(exc).__name__,
        )
        raise RequestInvalidError(
            f"the {source.name} handler cannot use this payload ({type(exc).__name__})"
        ) from None
    if action is not None and not isinstance(action, Send | SendToKey | Start):
        raise TypeError(f"webhook handler of {source.name!r} returned {action!r}")
    return action


def declared_sources(app: Orchestrator) -> list[WebhookSource]:
    """The sources declared with ``@app.webhook``, checked (ConfigurationError if not)."""
    sources = []
    for declared in app.webhooks.values():
        if not isinstance(declared.scheme, SignatureScheme):
            raise ConfigurationError(
                f"webhook source {declared.source!r}: scheme must be StandardWebhooks(), "
                f"Stripe(), GitHub() or HmacSha256(header=...), got {declared.scheme!r}"
            )
        sources.append(
            WebhookSource(
                name=declared.source,
                secrets=declared.secrets,
                scheme=declared.scheme,
                handler=declared.handler,
                payload_model=declared.payload_model,
                tolerance_seconds=declared.tolerance_seconds,
            )
        )
    return sources


def webhook_router(sources: Sequence[WebhookSource]) -> APIRouter:
    """The ``POST /webhooks/{source}`` route for these sources."""
    by_name: dict[str, WebhookSource] = {}
    for source in sources:
        if source.name in by_name:
            raise ConfigurationError(f"two webhook sources are named {source.name!r}")
        by_name[source.name] = source
    router = APIRouter(tags=["webhooks"])

    @router.post(
        "/webhooks/{source}",
        name="receive_webhook",
        status_code=202,
        response_model=WebhookAccepted,
        responses=error_responses(400, 401, 404, 409, 413, 422, 503),
        openapi_extra={
            "requestBody": {
                "content": {"application/json": {"schema": {}}},
                "required": True,
            }
        },
        summary="Receive a signed webhook delivery",
        description=(
            "Public: the signature is the authentication. Checks, in order: 413 body size, 401 "
            "signature/timestamp (`detail.reason`), 400 JSON, 422 schema, 404 unknown workflow,"
            " 409 finished workflow. A retried delivery (same delivery id) gets the same answer"
            " and is delivered once. Sources: " + ", ".join(sorted(by_name))
        ),
    )
    async def receive_webhook(
        request: Request,
        app: OrchestratorDep,
        source: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
    ) -> WebhookAccepted:
        found = by_name.get(source)
        if found is None:
            raise NotRegisteredError(f"no webhook source named {source!r}", source=source)
        raw = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        found.scheme.verify(headers, raw, found.secret_list, found.clock(), found.tolerance_seconds)
        data = parse_json(raw)
        payload = _payload(found, data)
        delivery_id = found.scheme.delivery_id(headers, data)
        if not delivery_id:
            raise RequestInvalidError("the delivery carries no delivery id", source=source)
        check_text(delivery_id, "delivery id")
        delivery = Delivery(source, delivery_id, payload, _visible_headers(request, found.scheme))
        action = await _action(found, delivery)
        key = f"{source}:{delivery_id}"
        if isinstance(action, Send):
            await app.send(action.workflow_id, action.message, action.topic, idempotency_key=key)
            return WebhookAccepted(
                source=source,
                delivery_id=delivery_id,
                action="send",
                workflow_id=action.workflow_id,
            )
        if isinstance(action, SendToKey):
            sent = await app.send_to_key(
                action.key,
                action.message,
                action.topic,
                idempotency_key=key,
                keep_seconds=action.keep_seconds,
            )
            return WebhookAccepted(
                source=source,
                delivery_id=delivery_id,
                action="send" if sent.delivered else "kept",
                workflow_id=sent.workflow_id,
            )
        if isinstance(action, Start):
            workflow = app.workflow_named(action.workflow_name)
            args, kwargs = bind_body(workflow, action.input)
            options = StartOptions(workflow_id=action.workflow_id or key)
            handle = await app.start_with(  # the sender's traceparent, if any
                workflow, args, kwargs, options, trace_headers=request.headers
            )
            return WebhookAccepted(
                source=source,
                delivery_id=delivery_id,
                action="start",
                workflow_id=handle.workflow_id,
            )
        return WebhookAccepted(source=source, delivery_id=delivery_id, action="ignored")

    return router
