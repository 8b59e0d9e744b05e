"""httpx clients for steps: outgoing requests carry ``traceparent`` and the step's
``Idempotency-Key``, so a downstream service joins the saga's trace and applies effects once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator import context

if TYPE_CHECKING:
    import httpx
    from opentelemetry.trace import TracerProvider

# httpx is imported by the two functions that build a client, not here: with its command-line
# extra's click, rich and pygments it is a quarter of `import orchestrator`, which every CLI
# command and every worker pays, and most never make an HTTP call.

IDEMPOTENCY_HEADER = "Idempotency-Key"


def _step_key() -> str | None:
    current = context.current()
    if current is None or current.step is None:
        return None
    return current.step.idempotency_key


def _add_key(request: httpx.Request) -> None:
    """Inside a step, send its stable key (``<workflow_id>:<step_number>``) unless the caller
    set one: a retried attempt, or a re-execution after a crash, sends the same key."""
    if IDEMPOTENCY_HEADER not in request.headers:
        key = _step_key()
        if key is not None:
            request.headers[IDEMPOTENCY_HEADER] = key


async def _add_key_async(request: httpx.Request) -> None:
    _add_key(request)


def _hooks(kwargs: dict[str, Any], hook: Any, idempotency_key: bool) -> dict[str, list[Any]]:
    hooks: dict[str, list[Any]] = {
        name: list(functions) for name, functions in kwargs.pop("event_hooks", {}).items()
    }
    if idempotency_key:
        hooks.setdefault("request", []).insert(0, hook)
    return hooks


def http_client(
    *,
    idempotency_key: bool = True,
    tracer_provider: TracerProvider | None = None,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for calls made in steps. Each request gets a client span
    (OpenTelemetry's httpx instrumentation, on this client only) and carries ``traceparent``;
    with ``idempotency_key`` (the default) requests made inside a step carry the step's
    ``Idempotency-Key``. Other keyword arguments go to ``httpx.AsyncClient``.

    Example::

        @app.step()
        async def charge(order: Order) -> str:
            async with http_client(base_url="http://payments") as client:
                response = await client.post("/charges", json=order.model_dump())
                return response.json()["id"]
    """
    # Imported here: the instrumentation costs ~0.1 s to import, and most processes (the CLI)
    # never build a client.
    import httpx
    from opentelemetry.instrumentation.httpx import AsyncOpenTelemetryTransport

    transport = kwargs.pop("transport", None) or httpx.AsyncHTTPTransport()
    hooks = _hooks(kwargs, _add_key_async, idempotency_key)
    return httpx.AsyncClient(
        transport=AsyncOpenTelemetryTransport(transport, tracer_provider=tracer_provider),
        event_hooks=hooks,
        **kwargs,
    )


def sync_http_client(
    *,
    idempotency_key: bool = True,
    tracer_provider: TracerProvider | None = None,
    **kwargs: Any,
) -> httpx.Client:
    """The same as ``http_client`` for synchronous steps (they run in a thread, which
    inherits the step's context): an ``httpx.Client``."""
    import httpx
    from opentelemetry.instrumentation.httpx import SyncOpenTelemetryTransport

    transport = kwargs.pop("transport", None) or httpx.HTTPTransport()
    hooks = _hooks(kwargs, _add_key, idempotency_key)
    return httpx.Client(
        transport=SyncOpenTelemetryTransport(transport, tracer_provider=tracer_provider),
        event_hooks=hooks,
        **kwargs,
    )
