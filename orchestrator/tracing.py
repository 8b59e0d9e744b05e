"""OpenTelemetry spans of workflows and their durable calls, continued across processes.

Span tree of one workflow (all in one trace):

    <caller's span: an HTTP request, a parent workflow's execution, or none>
    └── workflow.start <name>          created with the workflow; its context is stored in
        │                              ``workflows.trace_context`` (W3C traceparent)
        ├── workflow <name>            one per execution: the first, and each recovery or resume
        │   ├── step <name>            one per attempt (a retried step: one span per attempt)
        │   ├── compensation <name>    one per attempt of a compensation
        │   ├── sleep / recv <topic> / send / set_event <key>
        │   └── workflow.start <child> the child's own start span (the child joins the trace)
        └── workflow <name>            recovered=true after a crash, on whichever worker

Replayed durable calls (returned from checkpoints) create no span at all. Without an SDK
TracerProvider (OpenTelemetry's default no-op) no span object is created anywhere.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from orchestrator.errors import ConfigurationError, LeaseLostError, WorkflowCancelledError
from orchestrator.types import StepKind, WorkflowStatus

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from orchestrator.store.base import WorkflowRecord

logger = logging.getLogger("orchestrator.tracing")


class ParentRun(Protocol):
    """What a child workflow's ``workflow.start`` span needs of its parent's run."""

    workflow_id: str
    trace_parent: otel_context.Context | None


INSTRUMENTATION_NAME = "orchestrator"

# Span attribute names (documented in docs/observability.md).
WORKFLOW_ID = "orchestrator.workflow.id"
WORKFLOW_NAME = "orchestrator.workflow.name"
WORKFLOW_STATUS = "orchestrator.workflow.status"
WORKFLOW_RECOVERED = "orchestrator.workflow.recovered"
WORKFLOW_REPLAYED_STEPS = "orchestrator.workflow.replayed_steps"
WORKFLOW_CREATED = "orchestrator.workflow.created"
PARENT_WORKFLOW_ID = "orchestrator.workflow.parent_id"
STEP_NUMBER = "orchestrator.step.number"
STEP_NAME = "orchestrator.step.name"
STEP_KIND = "orchestrator.step.kind"
STEP_ATTEMPT = "orchestrator.step.attempt"
STEP_STATUS = "orchestrator.step.status"
COMPENSATES_STEP = "orchestrator.step.compensates"
QUEUE = "orchestrator.queue"
EXECUTOR_ID = "orchestrator.executor.id"

# Raised to unwind a run that must stop (cancel, lease lost, shutdown): not the step's fault.
_INTERRUPTIONS = (WorkflowCancelledError, LeaseLostError, GeneratorExit)
_QUIET_STATUSES = (WorkflowStatus.SUCCESS, WorkflowStatus.CANCELLED)


# Whether the environment names a provider class for OpenTelemetry to load on first use: read
# once (``trace.get_tracer_provider`` reads os.environ at each call until a global provider is
# set, which cost microseconds on every workflow start while tracing was off).
_ENV_PROVIDER = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


_PROXY: trace.TracerProvider | None = getattr(trace, "_PROXY_TRACER_PROVIDER", None)


def _global_provider() -> trace.TracerProvider:
    """``trace.get_tracer_provider()``, without its os.environ lookup while none is set."""
    provider: trace.TracerProvider | None = getattr(trace, "_TRACER_PROVIDER", None)
    if provider is not None:  # set once, by set_tracer_provider
        return provider
    if _ENV_PROVIDER or _PROXY is None:
        return trace.get_tracer_provider()
    return _PROXY


def _has_sdk(provider: trace.TracerProvider) -> bool:
    """False for the API's stand-ins (nothing configured): then no span work is done at all."""
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


class _SpanScope:
    """Makes a span current while a durable call runs, records how it ended, and ends it.
    A class rather than a generator-based context manager: it is on every step's path."""

    __slots__ = ("_token", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self._token: object | None = None

    def __enter__(self) -> Span:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.span.set_attribute(STEP_STATUS, "SUCCESS")
        elif isinstance(exc, _INTERRUPTIONS) or not isinstance(exc, Exception):
            self.span.set_attribute(STEP_STATUS, "INTERRUPTED")  # stopped, not failed
        else:
            self.span.set_attribute(STEP_STATUS, "ERROR")
            self.span.record_exception(exc)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
        self.span.end()


class StartScope:
    """The ``workflow.start`` span around creating a workflow; ``trace_context`` is what the
    workflow stores (None when tracing is off), and every execution continues from it."""

    __slots__ = ("span", "trace_context")

    def __init__(self, span: Span | None, trace_context: str | None) -> None:
        self.span = span
        self.trace_context = trace_context

    def created(self, created: bool) -> None:
        if self.span is not None:
            self.span.set_attribute(WORKFLOW_CREATED, created)

    def __enter__(self) -> StartScope:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.span is None:
            return
        if exc is not None:
            self.span.record_exception(exc)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        self.span.end()


class Tracing:
    """The spans of one Orchestrator. Uses ``provider`` if given, else whatever global
    TracerProvider the application set (looked up per workflow, so setting it after the
    Orchestrator was built works); it never installs one itself."""

    def __init__(self, provider: trace.TracerProvider | None = None, *, executor_id: str) -> None:
        self._provider = provider
        self._seen: trace.TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        self._format = TraceContextTextMapPropagator()
        self.executor_id = executor_id
        self._noop: nullcontext[None] = nullcontext()
        self._off = StartScope(None, None)  # shared by every start while tracing is off

    @property
    def provider(self) -> trace.TracerProvider | None:
        """The provider given to the Orchestrator, if any (None: the global one is used)."""
        return self._provider

    def tracer(self) -> trace.Tracer | None:
        """The tracer, or None when no SDK provider is configured (tracing is off)."""
        provider = self._provider or _global_provider()
        if provider is not self._seen:
            self._seen = provider
            self._tracer = provider.get_tracer(INSTRUMENTATION_NAME) if _has_sdk(provider) else None
        return self._tracer

    # -- the trace context stored with a workflow -------------------------------------------
    def serialize(self, span: Span) -> str | None:
        """``traceparent``, plus ``\\ntracestate`` when there is one; None if invalid."""
        carrier: dict[str, str] = {}
        self._format.inject(carrier, context=trace.set_span_in_context(span))
        parent = carrier.get("traceparent")
        if parent is None:
            return None
        state = carrier.get("tracestate")
        return parent if not state else f"{parent}\n{state}"

    def parse(self, stored: str | None) -> otel_context.Context | None:
        """The stored context as a parent, or None (no stored context: a new root)."""
        if not stored:
            return None
        parent, _, state = stored.partition("\n")
        carrier = {"traceparent": parent, "tracestate": state} if state else {"traceparent": parent}
        extracted = self._format.extract(carrier)
        return extracted if trace.get_current_span(extracted).get_span_context().is_valid else None

    # -- starting a workflow ----------------------------------------------------------------
    def starting(
        self,
        name: str,
        workflow_id: str,
        queue: str | None,
        *,
        parent: ParentRun | None = None,
        detached: bool = False,
        link_to: str | None = None,
    ) -> StartScope:
        """The ``workflow.start`` span of a new workflow. Its parent: the parent workflow's
        execution (a child workflow), else the current span (an HTTP request, the user's span).
        A workflow started fire-and-forget from inside a step (``detached``) opens a trace of
        its own with a link to the step; a fork links to the workflow it forks (``link_to``)."""
        tracer = self.tracer()
        if tracer is None:
            return self._off
        links: list[Link] = []
        context: otel_context.Context | None = None
        if parent is not None and parent.trace_parent is not None:
            context = parent.trace_parent
        elif detached:
            current = trace.get_current_span().get_span_context()
            if current.is_valid:
                links.append(Link(current, {"orchestrator.link": "started_by_step"}))
            context = otel_context.Context()  # a new root
        forked = self.parse(link_to)
        if forked is not None:
            links.append(
                Link(
                    trace.get_current_span(forked).get_span_context(), {"orchestrator.link": "fork"}
                )
            )
        attributes: dict[str, Any] = {
            WORKFLOW_ID: workflow_id,
            WORKFLOW_NAME: name,
            EXECUTOR_ID: self.executor_id,
        }
        if queue is not None:
            attributes[QUEUE] = queue
        if parent is not None:
            attributes[PARENT_WORKFLOW_ID] = parent.workflow_id
        span = tracer.start_span(
            f"workflow.start {name}",
            context=context,
            kind=SpanKind.PRODUCER if queue is not None else SpanKind.INTERNAL,
            attributes=attributes,
            links=links,
        )
        return StartScope(span, self.serialize(span))

    # -- one execution ----------------------------------------------------------------------
    def begin_execution(self, record: WorkflowRecord, replayed_steps: int) -> Span | None:
        """The ``workflow <name>`` span of this execution, a child of the stored context; None
        when tracing is off or the trace is not sampled (then no step span is made either)."""
        tracer = self.tracer()
        if tracer is None:
            return None
        attributes: dict[str, Any] = {
            WORKFLOW_ID: record.workflow_id,
            WORKFLOW_NAME: record.name,
            EXECUTOR_ID: self.executor_id,
            WORKFLOW_RECOVERED: record.recovery_attempts > 0,
            WORKFLOW_REPLAYED_STEPS: replayed_steps,
        }
        if record.queue_name is not None:
            attributes[QUEUE] = record.queue_name
        if record.parent_workflow_id is not None:
            attributes[PARENT_WORKFLOW_ID] = record.parent_workflow_id
        span = tracer.start_span(
            f"workflow {record.name}",
            context=self.parse(record.trace_context) or otel_context.Context(),
            kind=SpanKind.CONSUMER if record.queue_name is not None else SpanKind.INTERNAL,
            attributes=attributes,
        )
        return span if span.is_recording() else None

    @staticmethod
    def end_execution(
        span: Span, status: WorkflowStatus | None, error: BaseException | None
    ) -> None:
        """End the execution span with the final status it wrote (None: interrupted, left
        for recovery), recording the error of a failed workflow."""
        span.set_attribute(WORKFLOW_STATUS, "INTERRUPTED" if status is None else status.value)
        if status is not None and status not in _QUIET_STATUSES:
            if error is not None:
                span.record_exception(error)
            message = f"{status.value}: {error}" if error is not None else status.value
            span.set_status(Status(StatusCode.ERROR, message))
        span.end()

    @staticmethod
    def rolling_back(span: Span | None, error: BaseException, planned: int) -> None:
        """Mark on the execution span where the saga's rollback began, and why."""
        if span is not None:
            span.add_event(
                "rollback",
                {
                    "orchestrator.rollback.compensations": planned,
                    "exception.type": type(error).__name__,
                    "exception.message": str(error),
                },
            )

    # -- durable calls ----------------------------------------------------------------------
    def durable(
        self,
        tracer: trace.Tracer,
        parent: otel_context.Context,
        *,
        workflow_id: str,
        kind: StepKind,
        name: str,
        number: int,
        attempt: int | None = None,
        compensates: int | None = None,
        detail: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> AbstractContextManager[Span | None]:
        """A span for one executed durable call (a step attempt, a compensation, a sleep,
        recv, send, set_event), child of the execution span and current while it runs. A
        shared no-op when the run is not traced.

        Attributes that are the same for every call of an execution (workflow name, queue,
        executor id) are on the execution span only: every attribute costs on the hot path
        (validation at creation, encoding at export)."""
        attributes: dict[str, Any] = {
            WORKFLOW_ID: workflow_id,
            STEP_NUMBER: number,
            STEP_NAME: name,
            STEP_KIND: kind.value,
        }
        if attempt is not None:
            attributes[STEP_ATTEMPT] = attempt
        if compensates is not None:
            attributes[COMPENSATES_STEP] = compensates
        if extra:
            attributes.update(extra)
        title = (
            f"{kind.value} {name}" if kind in (StepKind.STEP, StepKind.COMPENSATION) else kind.value
        )
        if detail:
            title = f"{title} {detail}"
        span = tracer.start_span(title, context=parent, attributes=attributes)
        return _SpanScope(span)

    # -- incoming requests ------------------------------------------------------------------
    def incoming(self, headers: Mapping[str, str]) -> AbstractContextManager[Any]:
        """Make an HTTP request's ``traceparent`` the current context (unless an instrumented
        server already made its span current), so a workflow it starts joins its trace."""
        if not headers or self.tracer() is None:
            return self._noop
        if trace.get_current_span().get_span_context().is_valid:
            return self._noop
        return _Attached(propagate.extract(dict(headers)))


class _Attached:
    __slots__ = ("_context", "_token")

    def __init__(self, context: otel_context.Context) -> None:
        self._context = context
        self._token: object | None = None

    def __enter__(self) -> None:
        self._token = otel_context.attach(self._context)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]


def configure_tracing(
    service_name: str | None = None,
    otlp_endpoint: str | None = None,
    *,
    exporter: SpanExporter | None = None,
) -> trace.TracerProvider:
    """The one-call setup for applications and ``saga up`` / ``saga worker``: an SDK
    TracerProvider exporting over OTLP/HTTP through a batch processor, set as the global
    provider. The standard ``OTEL_*`` variables apply (``OTEL_SERVICE_NAME``,
    ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``...).

    Args:
        service_name: ``service.name`` of the spans (default: ``OTEL_SERVICE_NAME``, else
            ``orchestrator``).
        otlp_endpoint: the collector's base URL (``http://jaeger:4318``); ``/v1/traces`` is
            appended. Default: the ``OTEL_EXPORTER_OTLP_*`` variables, else localhost:4318.
        exporter: export elsewhere instead of OTLP (tests, a console exporter).

    Returns the global provider. If the application already set one, it is left in place and
    returned unchanged (a warning is logged): this never replaces someone else's provider.
    """
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    existing = trace.get_tracer_provider()
    if _has_sdk(existing):
        logger.warning("a global TracerProvider is already set; configure_tracing leaves it")
        return existing
    if exporter is None:
        exporter = _otlp_exporter(otlp_endpoint)
    name = service_name or os.environ.get("OTEL_SERVICE_NAME") or "orchestrator"
    provider: SdkTracerProvider = SdkTracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return trace.get_tracer_provider()


def _otlp_exporter(endpoint: str | None) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if endpoint is None:
        return OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT itself
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"otlp_endpoint must be an http(s) URL such as http://localhost:4318, got {endpoint!r}"
        )
    url = endpoint.rstrip("/")
    return OTLPSpanExporter(endpoint=url if url.endswith("/v1/traces") else f"{url}/v1/traces")


FLUSH_TIMEOUT_MILLIS = 10_000  # the longest an exit waits for buffered spans to be exported


def flush_tracing(provider: trace.TracerProvider | None = None) -> bool:
    """Export the spans still buffered by ``provider`` (default: the global one), waiting up
    to FLUSH_TIMEOUT_MILLIS: what a process stopping on a signal calls before it exits.
    Returns False if the export did not finish in time (or the provider cannot flush)."""
    target = provider or trace.get_tracer_provider()
    force_flush = getattr(target, "force_flush", None)
    if not _has_sdk(target) or force_flush is None:
        return True
    try:
        return bool(force_flush(FLUSH_TIMEOUT_MILLIS))
    except Exception:  # an exporter's failure must not turn a clean stop into a crash
        logger.exception("could not export the remaining spans")
        return False


def tracing_requested(environ: Mapping[str, str]) -> bool:
    """Whether the ``OTEL_*`` environment asks for OTLP export (the CLI's default)."""
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "none":
        return False
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
