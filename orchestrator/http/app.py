"""create_app: the FastAPI service over an Orchestrator (mountable in a user's FastAPI app)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from fastapi.telemetry import TelemetryConfig

from orchestrator.app import Orchestrator
from orchestrator.errors import ConfigurationError
from orchestrator.http import admin, events, messages, workflows
from orchestrator.http.deps import ServiceConfig, require_api_key
from orchestrator.http.docs import install_docs
from orchestrator.http.errors import install_error_handlers
from orchestrator.http.limits import BODY_CHUNK_TIMEOUT_SECONDS, BodyLimitMiddleware
from orchestrator.http.openapi import add_workflow_operations
from orchestrator.http.origins import LocalOriginMiddleware
from orchestrator.http.webhooks import declared_sources, webhook_router

if TYPE_CHECKING:
    from orchestrator.http.webhooks import WebhookSource

DEFAULT_MAX_BODY_BYTES = 1_048_576  # 1 MiB
DEFAULT_MAX_WAIT_SECONDS = 60.0  # the longest a long poll (result, event) is held

DESCRIPTION = """\
Start and manage durable workflows, send them messages, read their events.

**Security.** With an `api_key`, every endpoint needs `Authorization: Bearer <api_key>`
(401 otherwise) except: `/healthz`, `/readyz`, `/webhooks/*` (they verify their own
signatures) and `GET /workflows/{id}/events/{key}` (the event link handed to callers, e.g. a
payment page polling for its URL), plus these docs.

**Errors** are always JSON `{error, message, detail}`: 400 malformed JSON, 401, 404 unknown
workflow, 408 timed-out event poll, 409 state conflict, 413 body too large, 422 field errors
(`detail` lists `{loc, msg, type}`), 503 database unavailable.

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
        api_key: when set, management endpoints need ``Authorization: Bearer <api_key>``.
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
    """
    if max_body_bytes < 1:
        raise ConfigurationError("max_body_bytes must be >= 1")
    if max_wait_seconds < 0:
        raise ConfigurationError("max_wait_seconds must be >= 0")
    if stream_heartbeat_seconds <= 0:
        raise ConfigurationError("stream_heartbeat_seconds must be > 0")
    if api_key is not None and not api_key.strip():
        raise ConfigurationError("api_key must be a non-empty string (or None)")

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
    )
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
    sources = [*webhooks, *declared_sources(app)]
    if sources:
        api.include_router(webhook_router(sources))
    api.add_middleware(
        BodyLimitMiddleware, max_body_bytes=max_body_bytes, chunk_timeout=body_timeout_seconds
    )
    if api_key is None:
        api.add_middleware(LocalOriginMiddleware, allowed_hosts=allowed_hosts)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            document = FastAPI.openapi(api)
            add_workflow_operations(document, app.workflows)
            api.openapi_schema = document
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return api
