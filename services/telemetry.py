"""Tracing for a service: FastAPI server spans (continuing the caller's W3C traceparent), and
export over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set."""

from __future__ import annotations

import os

from fastapi import FastAPI


def instrument(app: FastAPI, service_name: str) -> None:
    """Instrument ``app``: a server span per request, parented by the incoming traceparent."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") and not isinstance(
        trace.get_tracer_provider(), _sdk_provider_type()
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        name = os.environ.get("OTEL_SERVICE_NAME", service_name)
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        # The exporter reads the endpoint (and headers) from the standard OTEL_* variables.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz")


def _sdk_provider_type() -> type:
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider
