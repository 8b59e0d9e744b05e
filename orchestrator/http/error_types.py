"""The HTTP service's own error classes (beside those of orchestrator.errors), without FastAPI:
the service raises them, and ServiceClient (the CLI's ``--url``) turns an error body's ``code``
back into them, so importing the client must not load the web framework."""

from __future__ import annotations

from orchestrator.errors import InvalidArgumentError, OrchestratorError


class MalformedBodyError(InvalidArgumentError):
    """The request body is not valid JSON (or not UTF-8)."""

    code = "malformed_json"


class RequestInvalidError(OrchestratorError):
    """The request is well-formed JSON but does not fit the schema (field errors in detail)."""

    http_status = 422
    code = "validation_error"


class UnauthorizedError(OrchestratorError):
    """No or a wrong ``Authorization: Bearer`` token for a protected endpoint."""

    http_status = 401
    code = "unauthorized"


class RequestTimeoutError(OrchestratorError):
    """The request body did not arrive in time (a client sending it a byte at a time)."""

    http_status = 408
    code = "request_timeout"


class ForbiddenOriginError(OrchestratorError):
    """A service without an api_key refused a request that a web page could have forged:
    addressed to a host that is not loopback (DNS rebinding) or sent from another site."""

    http_status = 403
    code = "forbidden_origin"


class UnsupportedMediaTypeError(OrchestratorError):
    """A request body that is not declared as JSON (``Content-Type: application/json``)."""

    http_status = 415
    code = "unsupported_media_type"


class EventNotSetError(OrchestratorError):
    """The workflow finished without publishing the event: it never will."""

    http_status = 404
    code = "event_not_set"


class NotLaunchedError(OrchestratorError):
    """The Orchestrator behind this service is not launched (yet, or any more)."""

    http_status = 503
    code = "not_launched"
