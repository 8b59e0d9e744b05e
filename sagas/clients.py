"""Every HTTP call the sagas make to the services, in one place.

The client is ``orchestrator.http_client()``: each call carries the running step's idempotency
key (``Idempotency-Key``, so a retried or recovered step applies its effect once) and the trace
context (``traceparent`` of an httpx client span under the step's span).
Connection errors, timeouts and 5xx are ``ServiceUnavailable`` (retried by the steps); other
4xx are ``ServiceRejected``, a NonRetryableError: retrying the same request cannot help.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import httpx

from orchestrator import NonRetryableError, http_client

REQUEST_TIMEOUT_SECONDS = 10.0
# One client (one connection pool) per event loop and service: a client is bound to the loop
# it ran on, and httpcore checks every idle connection of a pool on each request, so small
# per-service pools cost less than one shared pool.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


class ServiceUnavailable(Exception):
    """The service could not answer now (down, timed out, 5xx): worth retrying."""


class ServiceRejected(NonRetryableError):
    """The service refused the request (4xx): retrying the same request cannot help."""

    def __init__(self, status_code: int, body: Any, url: str) -> None:
        message = body.get("message") if isinstance(body, dict) else None
        super().__init__(f"{url} answered {status_code}: {message or body}")
        self.status_code = status_code
        self.body = body


def _client(url: str) -> httpx.AsyncClient:
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    origin = httpx.URL(url).netloc.decode()
    client = clients.get(origin)
    if client is None:
        client = http_client(timeout=REQUEST_TIMEOUT_SECONDS)
        clients[origin] = client
    return client


async def post(url: str, body: Any = None, *, accept: tuple[int, ...] = ()) -> dict[str, Any]:
    """POST ``body`` as JSON (with the step's idempotency key); returns the JSON answer.

    ``accept``: extra 4xx statuses that count as an answer (e.g. 404 "already gone" in an
    undo), returned as their JSON body instead of raising.
    """
    try:
        response = await _client(url).post(url, json=body)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None
    if response.status_code >= 500:
        raise ServiceUnavailable(f"{url} answered {response.status_code}")
    try:
        answer = response.json()
    except ValueError:
        answer = {"message": response.text[:200]}
    if response.is_success or response.status_code in accept:
        return answer if isinstance(answer, dict) else {"value": answer}
    raise ServiceRejected(response.status_code, answer, url)
