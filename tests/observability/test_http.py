"""The HTTP service: an incoming traceparent (start, webhook) becomes the workflow's parent, and
/metrics reports a known workload exactly. A real uvicorn server on loopback, PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from orchestrator import NonRetryableError, Orchestrator, Retry
from orchestrator.http import create_app
from orchestrator.http.webhooks import Delivery, HmacSha256, Start, WebhookSource
from tests.http.conftest import LiveServer, start_server

pytestmark = pytest.mark.postgres

SECRET = "webhook-secret"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def build(database_url: str, provider: TracerProvider) -> Orchestrator:
    app = Orchestrator(
        "http-obs", database_url, executor_id="obs", app_version="t", tracer_provider=provider
    )
    app.queue("held")
    failures = {"reserve": 0}

    @app.step(name="double")
    async def double(x: int) -> int:
        return 2 * x

    @app.workflow(name="add")
    async def add(a: int) -> int:
        return await double(a) + 1

    @app.step(name="reserve", retry=Retry(max_attempts=3, base_interval=0.01))
    async def reserve() -> str:
        failures["reserve"] += 1
        if failures["reserve"] == 1:
            raise ConnectionError("flaky")
        return "r"

    @reserve.compensation
    async def release(reservation: str) -> None:
        pass

    @app.step(name="hold")
    async def hold() -> str:
        return "h"

    @hold.compensation(retry=Retry(max_attempts=2, base_interval=0.01))
    async def bad_release(held: str) -> None:
        raise RuntimeError("cannot release")

    @app.step(name="charge")
    async def charge() -> None:
        raise NonRetryableError("declined")

    @app.workflow(name="saga")
    async def saga() -> None:
        await reserve()
        await charge()

    @app.workflow(name="stuck_saga")
    async def stuck_saga() -> None:
        await hold()
        await charge()

    @app.workflow(name="waiter")
    async def waiter() -> Any:
        return await app.recv("never", timeout=300)

    return app


@pytest.fixture
def served(
    postgres_url: str, provider: TracerProvider
) -> Iterator[tuple[LiveServer, Orchestrator]]:
    app = build(postgres_url, provider)
    source = WebhookSource(
        name="shop",
        secrets=SECRET,
        scheme=HmacSha256(),
        handler=_start_add,
    )
    server = start_server(create_app(app, webhooks=[source]))
    try:
        yield server, app
    finally:
        server.stop()


def _start_add(delivery: Delivery) -> Start:
    return Start("add", {"a": delivery.payload["a"]})


def traceparent(span_id: str = CALLER_SPAN) -> str:
    return f"00-{TRACE_ID}-{span_id}-01"


def result(client: httpx.Client, workflow_id: str) -> Any:
    answer = client.get(f"/workflows/{workflow_id}/result", params={"timeout": 30})
    return answer.json()


def spans_of(exporter: InMemorySpanExporter, workflow_id: str, name: str) -> list[Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [
            s
            for s in exporter.get_finished_spans()
            if s.name == name and s.attributes.get("orchestrator.workflow.id") == workflow_id
        ]
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no span {name} of {workflow_id}")


def test_traceparent_on_start_and_on_webhooks_makes_the_workflow_a_child(
    served: tuple[LiveServer, Orchestrator], exporter: InMemorySpanExporter
) -> None:
    server, _ = served
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        started = client.post(
            "/workflows/add",
            json={"a": 20},
            headers={"traceparent": traceparent(), "Idempotency-Key": "http-1"},
        )
        assert started.status_code == 202, started.text
        assert result(client, "http-1")["output"] == 41

        body = json.dumps({"a": 1}).encode()
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        hooked = client.post(
            "/webhooks/shop",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Signature": signature,
                "X-Delivery-Id": "evt-1",
                "traceparent": traceparent("1111111111111111"),
            },
        )
        assert hooked.status_code == 202, hooked.text
        assert result(client, "shop:evt-1")["output"] == 3

        untraced = client.post("/workflows/add", json={"a": 2}, headers={"Idempotency-Key": "u"})
        assert untraced.status_code == 202
        assert result(client, "u")["output"] == 5

    for workflow_id, caller in (("http-1", CALLER_SPAN), ("shop:evt-1", "1111111111111111")):
        (start,) = spans_of(exporter, workflow_id, "workflow.start add")
        (execution,) = spans_of(exporter, workflow_id, "workflow add")
        assert format(start.context.trace_id, "032x") == TRACE_ID
        # Below FastAPI's request span (its own telemetry, on the app's provider), which is a
        # child of the caller's traceparent.
        ancestors = ancestors_of(exporter, start)
        assert format(ancestors[-1].parent.span_id, "016x") == caller
        assert ancestors[-1].kind is SpanKind.SERVER
        assert execution.context.trace_id == start.context.trace_id
        assert execution.parent.span_id == start.context.span_id
    (own,) = spans_of(exporter, "u", "workflow.start add")
    # No traceparent: the request's span is the root of a new trace, the workflow below it.
    assert ancestors_of(exporter, own)[-1].parent is None
    assert format(own.context.trace_id, "032x") != TRACE_ID


def ancestors_of(exporter: InMemorySpanExporter, span: Any) -> list[Any]:
    by_id = {s.context.span_id: s for s in exporter.get_finished_spans()}
    chain = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


def test_incoming_traceparent_is_current_when_no_server_span_is(provider: TracerProvider) -> None:
    """The fallback for services without request spans (FastAPI telemetry off, mounted)."""
    app = Orchestrator("incoming", "sqlite:///:memory:", tracer_provider=provider)
    with app.tracing.incoming({"traceparent": traceparent()}):
        current = trace.get_current_span().get_span_context()
        assert format(current.trace_id, "032x") == TRACE_ID
        assert format(current.span_id, "016x") == CALLER_SPAN
    assert not trace.get_current_span().get_span_context().is_valid
    tracer = provider.get_tracer("t")
    with (
        tracer.start_as_current_span("server") as server,
        app.tracing.incoming({"traceparent": traceparent()}),  # already in a request span
    ):
        assert trace.get_current_span() is server


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_metrics_report_a_known_workload(
    served: tuple[LiveServer, Orchestrator],
) -> None:
    server, _ = served
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        for n in range(3):
            client.post("/workflows/add", json={"a": n}, headers={"Idempotency-Key": f"add-{n}"})
        client.post("/workflows/saga", json={}, headers={"Idempotency-Key": "saga-1"})
        client.post("/workflows/stuck_saga", json={}, headers={"Idempotency-Key": "stuck-1"})
        client.post("/workflows/waiter", json={}, headers={"Idempotency-Key": "waiter-1"})
        for workflow_id in ("add-0", "add-1", "add-2", "saga-1", "stuck-1"):
            result(client, workflow_id)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = client.get("/metrics").text
            if "orchestrator_recv_waiters 1.0" in text:
                break
            time.sleep(0.05)
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    values = metric_values(answer.text)

    def value(metric: str, **labels: str) -> float:
        return values.get((metric, tuple(sorted(labels.items()))), 0.0)

    assert value("orchestrator_workflows_started_total", name="add") == 3
    assert value("orchestrator_workflows_started_total", name="waiter") == 1
    assert value("orchestrator_workflows_completed_total", name="add", status="SUCCESS") == 3
    assert value("orchestrator_workflows_completed_total", name="saga", status="COMPENSATED") == 1
    assert (
        value(
            "orchestrator_workflows_completed_total",
            name="stuck_saga",
            status="COMPENSATION_FAILED",
        )
        == 1
    )
    assert (
        value(
            "orchestrator_step_duration_seconds_count", name="double", kind="step", status="SUCCESS"
        )
        == 3
    )
    assert (
        value(
            "orchestrator_step_duration_seconds_count", name="charge", kind="step", status="ERROR"
        )
        == 2
    )
    assert value("orchestrator_step_retries_total", name="reserve") == 1
    assert value("orchestrator_step_retries_total", name="hold.compensation") == 1
    assert value("orchestrator_step_retries_total", name="double") == 0
    assert value("orchestrator_compensations_run_total", name="reserve.compensation") == 1
    assert value("orchestrator_compensations_failed_total", name="reserve.compensation") == 0
    assert value("orchestrator_compensations_run_total", name="hold.compensation") == 1
    assert value("orchestrator_compensations_failed_total", name="hold.compensation") == 1
    # 3 x double, reserve, charge, release; hold, charge, its compensation: each one checkpoint.
    assert value("orchestrator_checkpoint_commit_seconds_count") >= 9
    assert value("orchestrator_recv_waiters") == 1
    assert value("orchestrator_workflows_running") == 1  # the waiter
    assert value("orchestrator_worker_leases", state="alive") == 1
    assert value("orchestrator_worker_leases", state="expired") == 0


def test_metrics_show_queue_depth(
    served: tuple[LiveServer, Orchestrator],
) -> None:
    server, app = served
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        before = metric_values(client.get("/metrics").text)
        assert ("orchestrator_queue_depth", (("queue", "held"),)) not in before
        # Enqueue through the app's own loop (the server thread's), delayed an hour.
        future = asyncio.run_coroutine_threadsafe(
            app.start("add", 5, queue="held", delay=3600, workflow_id="held-1"), _loop_of(app)
        )
        future.result(timeout=30)
        after = metric_values(client.get("/metrics").text)
    assert after[("orchestrator_queue_depth", (("queue", "held"),))] == 1
    assert after[("orchestrator_queue_running", (("queue", "held"),))] == 0


def _loop_of(app: Orchestrator) -> Any:
    for task in app.engine._background:
        return task.get_loop()
    raise AssertionError("the app has no background task")
