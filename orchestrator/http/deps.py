"""Request dependencies: the Orchestrator, bearer-token auth, JSON bodies, links, limits."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from orchestrator.app import Orchestrator
from orchestrator.errors import InvalidArgumentError
from orchestrator.http import schemas
from orchestrator.http.errors import MalformedBodyError, NotLaunchedError
from orchestrator.http.redaction import View
from orchestrator.http.schemas import ErrorResponse, WorkflowLinks
from orchestrator.http.session import Principal, authorized

MAX_ID_CHARS = schemas.MAX_ID_CHARS  # (defined with the schemas that bound ids too)
DEFAULT_WAIT_SECONDS = 30.0
MAX_QUERY_WAIT_SECONDS = 3600.0  # what the schema accepts; the service clamps to its own max


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """What create_app was given, kept on ``api.state.config``."""

    orchestrator: Orchestrator
    api_key: str | None
    max_body_bytes: int
    max_wait_seconds: float
    stream_heartbeat_seconds: float = 15.0
    read_only_api_key: str | None = None
    view: View = field(default_factory=View)  # the redactor and the trace link template

    def __repr__(self) -> str:  # never show the keys
        return (
            f"ServiceConfig(api_key={'set' if self.api_key else 'unset'}, "
            f"read_only_api_key={'set' if self.read_only_api_key else 'unset'})"
        )


def service_config(request: Request) -> ServiceConfig:
    config: ServiceConfig = request.app.state.config
    return config


def orchestrator(request: Request) -> Orchestrator:
    """The launched Orchestrator (503 while it is not: e.g. mounted without its lifespan)."""
    app = service_config(request).orchestrator
    if not app.launched:
        raise NotLaunchedError(
            "the orchestrator is not launched: run the service with its lifespan, or launch "
            "the Orchestrator in the enclosing application's lifespan"
        )
    return app


OrchestratorDep = Annotated[Orchestrator, Depends(orchestrator)]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <api_key>`")


async def require_api_key(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Deny by default: when a key is configured, protected endpoints need one (bearer or
    the console's session); a read-only key may only read. The caller is who the audit log
    records for the actions the endpoint takes (see session.py)."""
    return await authorized(request)


def view_of(request: Request) -> View:
    """How this service shows stored values (redaction, trace links)."""
    return service_config(request).view


def clamp_wait(request: Request, timeout: float | None) -> float:
    """A long-poll timeout in seconds, at most the service's ``max_wait_seconds``."""
    limit = service_config(request).max_wait_seconds
    return min(DEFAULT_WAIT_SECONDS if timeout is None else timeout, limit)


def check_text(value: str, what: str) -> str:
    """Ids and keys from paths and headers: non-empty, bounded, no NUL or control chars."""
    if not value or len(value) > MAX_ID_CHARS:
        raise InvalidArgumentError(
            f"{what} must be 1..{MAX_ID_CHARS} characters", what=what, length=len(value)
        )
    if any(ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise InvalidArgumentError(f"{what} must not contain control characters", what=what)
    return value


def parse_json(raw: bytes, *, empty: Any = ...) -> Any:
    """Parse a request body: MalformedBodyError (400) unless it is UTF-8 JSON. An empty
    body gives ``empty`` when one is given, else is malformed."""
    if not raw.strip():
        if empty is not ...:
            return empty
        raise MalformedBodyError("the request body is empty; send a JSON document")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedBodyError(f"the request body is not valid JSON: {exc}") from None


def links_for(request: Request, workflow_id: str) -> WorkflowLinks:
    """Paths (under the mount prefix, if any) where a workflow can be followed up."""
    base = f"{request.scope.get('root_path', '')}/workflows/{quote(workflow_id, safe='')}"
    return WorkflowLinks(
        self=base, result=f"{base}/result", events=f"{base}/events", steps=f"{base}/steps"
    )


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses an endpoint can answer."""
    descriptions = {
        400: "malformed JSON or an invalid argument",
        401: "missing or wrong bearer token",
        404: "no such workflow (or workflow name)",
        408: "timed out waiting",
        409: "the workflow's state does not allow this",
        413: "request body too large, or a value to store over max_payload_bytes",
        422: "the request does not fit the schema",
        503: "the database or the orchestrator is unavailable",
    }
    return {
        code: {"model": ErrorResponse, "description": descriptions.get(code, "error")}
        for code in codes
    }
