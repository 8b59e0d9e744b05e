"""create_app: the FastAPI service over an Orchestrator (mountable in a user's FastAPI app)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from fastapi.telemetry import TelemetryConfig

from orchestrator.app import Orchestrator
from orchestrator.errors import ConfigurationError
from orchestrator.http import admin, console, events, messages, session, workflows
from orchestrator.http.deps import ServiceConfig, require_api_key
from orchestrator.http.docs import install_docs
from orchestrator.http.errors import install_error_handlers
from orchestrator.http.limits import BODY_CHUNK_TIMEOUT_SECONDS, BodyLimitMiddleware
from orchestrator.http.openapi import add_workflow_operations
from orchestrator.http.origins import LocalOriginMiddleware
from orchestrator.http.redaction import DEFAULT_TRACE_URL, Redactor, View, redact_secrets
from orchestrator.http.session import Keys
from orchestrator.http.webhooks import declared_sources, webhook_router

if TYPE_CHECKING:
    from orchestrator.http.webhooks import WebhookSource

DEFAULT_MAX_BODY_BYTES = 1_048_576  # 1 MiB
DEFAULT_MAX_WAIT_SECONDS = 60.0  # the longest a long poll (result, event) is held

DESCRIPTION = """\
Start and manage durable workflows, send them messages, read their events.

**Security.** With an `api_key`, every endpoint needs `Authorization: Bearer <key>` (401
otherwise) except: `/healthz`, `/readyz`, `/webhooks/*` (they verify their own signatures),
`GET /workflows/{id}/events/{key}` (the event link handed to callers, e.g. a payment page
polling for its URL), the console's login page and these docs. Two roles: the `api_key` acts
(operator), a `read_only_api_key` only reads (any other method: 403). `X-Actor: <name>` names
who acts in the audit log (`GET /admin/audit`). The console at `/console` logs in with a key
and sets an HttpOnly session cookie; a POST with that cookie needs the `X-CSRF-Token` header.

**Errors** are always JSON `{error, message, detail}`: 400 malformed JSON, 401, 404 unknown
workflow, 408 timed-out event poll, 409 state conflict, 413 body too large (or a value in it
over max_payload_bytes), 422 field errors (`detail` lists `{loc, msg, type}`), 503 database
unavailable.

**Long polls** (`timeout=` seconds) are clamped to the service's maximum.
"""


def create_app(
    app: Orchestrator,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS,
    webhooks: Sequence[WebhookSource] = (),
    title: str | None = None,
    allowed_hosts: Sequence[str] = (),
    stream_heartbeat_seconds: float = 15.0,
    body_timeout_seconds: float = BODY_CHUNK_TIMEOUT_SECONDS,
    read_only_api_key: str | None = None,
    trace_url: str | None = None,
    redact: Redactor | None = None,
) -> FastAPI:
    """The HTTP service for ``app``.

    The service's lifespan launches the Orchestrator and shuts it down afterwards, but only
    if it was not launched already: an application that launches it itself (its own lifespan,
    a worker process) keeps control of its life cycle. Starlette does not run the lifespan of
    a *mounted* sub-application, so when you ``user_app.mount("/orchestrator", service)``,
    launch the Orchestrator in your own lifespan (until it is launched the endpoints answer
    503 and ``/readyz`` says why).

    Args:
        app: the Orchestrator whose workflows this serves.
        api_key: when set, management endpoints need ``Authorization: Bearer <api_key>`` (or
            the console's login); it grants the ``operator`` role (read and act).
        read_only_api_key: a second key, for the ``reader`` role: GET only (403 otherwise);
            default: ``ORCHESTRATOR_READ_ONLY_API_KEY``.
        max_body_bytes: larger request bodies are refused with 413 before being read.
        max_wait_seconds: the longest a long poll (``timeout=``) is held.
        webhooks: verified webhook sources, served at ``POST /webhooks/{source}``, besides
            those declared with ``@app.webhook``.
        title: the OpenAPI title (default: the app name).
        allowed_hosts: without an ``api_key`` the service answers only requests addressed
            to a loopback host, and refuses state-changing requests a web page could forge
            (other sites' origins, non-JSON bodies): 403/415, see ``origins.py``. Host names
            listed here are accepted too (e.g. "testserver" for Starlette's TestClient).
        stream_heartbeat_seconds: an event stream (SSE) that has sent nothing for this long
            sends a comment line, so proxies keep it open and clients see it is alive.
        body_timeout_seconds: a request whose body stops arriving for this long gets 408.
        trace_url: the trace link of the console and of ``trace_url`` fields, with
            ``{trace_id}`` (default: ``ORCHESTRATOR_TRACE_URL``, else Jaeger's
            ``http://localhost:16686/trace/{trace_id}``).
        redact: how stored inputs and outputs are shown to people (listings, a workflow, its
            steps, its rollback plan): ``redact(value, context) -> value`` (default:
            ``app.redact`` when set, else ``redact_secrets``: secret-named keys masked).
    """
    if max_body_bytes < 1:
        raise ConfigurationError("max_body_bytes must be >= 1")
    if max_wait_seconds < 0:
        raise ConfigurationError("max_wait_seconds must be >= 0")
    if stream_heartbeat_seconds <= 0:
        raise ConfigurationError("stream_heartbeat_seconds must be > 0")
    if read_only_api_key is None:  # `saga up` and containers set it in the environment
        read_only_api_key = os.environ.get("ORCHESTRATOR_READ_ONLY_API_KEY") or None
    for key, what in ((api_key, "api_key"), (read_only_api_key, "read_only_api_key")):
        if key is not None and not key.strip():
            raise ConfigurationError(f"{what} must be a non-empty string (or None)")
    if api_key is not None and api_key == read_only_api_key:
        raise ConfigurationError("read_only_api_key must differ from api_key")
    template = trace_url or os.environ.get("ORCHESTRATOR_TRACE_URL") or DEFAULT_TRACE_URL
    if "{trace_id}" not in template:
        raise ConfigurationError("trace_url must contain {trace_id}", trace_url=template)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        owned = not app.launched
        if owned:
            await app.launch()
        try:
            yield
        finally:
            if owned:
                await app.shutdown()

    # FastAPI's own request spans (the parent of workflows a request starts) use the
    # Orchestrator's TracerProvider when it was given one, else the global provider.
    telemetry = (
        None
        if app.tracer_provider is None
        else TelemetryConfig(tracer_provider=app.tracer_provider)
    )
    api = FastAPI(
        title=title or f"{app.app_name} orchestrator",
        description=DESCRIPTION,
        version="1",
        lifespan=lifespan,
        telemetry=telemetry,
        docs_url=None,  # served from the package by install_docs (no CDN), and no /redoc
        redoc_url=None,
    )
    api.state.config = ServiceConfig(
        orchestrator=app,
        api_key=api_key,
        max_body_bytes=max_body_bytes,
        max_wait_seconds=max_wait_seconds,
        stream_heartbeat_seconds=stream_heartbeat_seconds,
        read_only_api_key=read_only_api_key,
        view=View(redact=redact or app.redact or redact_secrets, trace_url=template),
    )
    api.state.keys = Keys(operator=api_key, reader=read_only_api_key)
    install_error_handlers(api)
    install_docs(api)
    protected = [Depends(require_api_key)]
    api.include_router(admin.health_router)
    api.include_router(events.public_router)
    api.include_router(workflows.router, dependencies=protected)
    api.include_router(messages.router, dependencies=protected)
    api.include_router(events.router, dependencies=protected)
    api.include_router(admin.router, dependencies=protected)
    api.include_router(admin.metrics_router, dependencies=protected)
    api.include_router(session.router)
    api.include_router(console.router)  # static pages; their data comes from the API above
    api.add_api_route("/", console.root_redirect, include_in_schema=False)
    sources = [*webhooks, *declared_sources(app)]
    if sources:
        api.include_router(webhook_router(sources))
    api.add_middleware(
        BodyLimitMiddleware, max_body_bytes=max_body_bytes, chunk_timeout=body_timeout_seconds
    )
    if api_key is None and read_only_api_key is None:
        api.add_middleware(LocalOriginMiddleware, allowed_hosts=allowed_hosts)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            document = FastAPI.openapi(api)
            add_workflow_operations(document, app.workflows)
            api.openapi_schema = document
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return api
