"""HTTP-only errors and the exception handlers that turn every error into one JSON shape (a body
over the limit is orchestrator.errors.PayloadTooLargeError, as is a value over its size limit)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.errors import OrchestratorError
from orchestrator.http.error_types import (
    EventNotSetError,
    ForbiddenOriginError,
    MalformedBodyError,
    NotLaunchedError,
    RequestInvalidError,
    RequestTimeoutError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)

__all__ = [
    "EventNotSetError",
    "ForbiddenOriginError",
    "MalformedBodyError",
    "NotLaunchedError",
    "RequestInvalidError",
    "RequestTimeoutError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "error_body",
    "field_errors",
    "install_error_handlers",
    "orchestrator_error_handler",
]

logger = logging.getLogger("orchestrator.http")

# Pydantic error types that mean "the body is not JSON at all" (400), not "wrong shape" (422).
_MALFORMED_TYPES = frozenset({"json_invalid", "json_type"})


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    """The one JSON error shape: ``{error, message, detail}``."""
    return {"error": code, "message": message, "detail": detail if detail is not None else {}}


def error_response(
    status: int,
    code: str,
    message: str,
    detail: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, detail), status_code=status, headers=headers)


def field_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic/FastAPI errors reduced to JSON-safe ``{loc, msg, type}`` items (no inputs:
    they may hold secrets, and they are the client's own anyway)."""
    return [
        {
            "loc": [part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in errors
    ]


async def orchestrator_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Map any OrchestratorError to its ``http_status``; 5xx ones are logged, not shown."""
    assert isinstance(exc, OrchestratorError)
    status = exc.http_status
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthorizedError) else None
    if status >= 500 and status != 503:
        logger.error("internal error on %s %s: %r", request.method, request.url.path, exc)
        return error_response(500, "internal_error", "internal server error")
    return error_response(status, exc.code, exc.message, _json_safe(exc.detail), headers)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Request validation: 400 for bodies that are not JSON, else 422 with field errors."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(error.get("type") in _MALFORMED_TYPES for error in errors):
        return error_response(400, MalformedBodyError.code, "the request body is not valid JSON")
    return error_response(
        422, RequestInvalidError.code, "the request does not fit the schema", field_errors(errors)
    )


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own HTTP errors (404 no route, 405 method) in the same shape."""
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
    code = codes.get(exc.status_code, f"http_{exc.status_code}")
    return error_response(exc.status_code, code, str(exc.detail), None, exc.headers)


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A bug: log it, answer a JSON 500 without the traceback."""
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal server error")


def _json_safe(detail: dict[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = {}
    for key, value in detail.items():
        if value is None or isinstance(value, str | int | float | bool):
            safe[key] = value
        elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
            safe[key] = value  # field errors, built JSON-safe by field_errors()
        else:
            safe[key] = str(value)
    return safe


def install_error_handlers(api: FastAPI) -> None:
    """Register the handlers: every error a request can cause answers ``{error, message,
    detail}``."""
    api.add_exception_handler(OrchestratorError, orchestrator_error_handler)
    api.add_exception_handler(RequestValidationError, validation_error_handler)
    api.add_exception_handler(StarletteHTTPException, http_error_handler)
    api.add_exception_handler(Exception, unexpected_error_handler)
