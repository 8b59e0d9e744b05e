"""A downstream HTTP service for the propagation test (until the sample services/ replace it):
FastAPI, instrumented with opentelemetry-instrumentation-fastapi, exporting its spans over
OTLP/HTTP. It never imports orchestrator.

    python -m tests.observability.downstream PORT OTLP_ENDPOINT
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI, Request
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor


def build(endpoint: str) -> FastAPI:
    provider = TracerProvider(resource=Resource.create({"service.name": "downstream"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(f"{endpoint}/v1/traces")))
    api = FastAPI()

    @api.post("/charges")
    async def charge(request: Request) -> dict[str, str | None]:
        return {
            "traceparent": request.headers.get("traceparent"),
            "idempotency_key": request.headers.get("idempotency-key"),
        }

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    FastAPIInstrumentor.instrument_app(api, tracer_provider=provider)
    return api


if __name__ == "__main__":
    port, endpoint = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(build(endpoint), host="127.0.0.1", port=port, log_level="warning")
