"""Traces across real processes, received by an OTLP/HTTP receiver on loopback: `saga up`
exporting a request's trace, a worker SIGKILLed mid-workflow whose recovery continues the same
trace, and a step's HTTP call whose server span (another process) joins the step's trace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from orchestrator import Orchestrator, Retry, http_client
from orchestrator.cli.stack import free_port
from tests.observability.otlp import OtlpReceiver, ReceivedSpan
from tests.processes import ROOT, stop, wait_healthy

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


def spawn(args: list[str], **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OTEL_BSP_SCHEDULE_DELAY": "50", **env},
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        stop(process)


def named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


def count(name: str, n: int) -> Callable[[list[ReceivedSpan]], bool]:
    return lambda spans: len(named(spans, name)) >= n


def serve_traced(
    postgres_url: str,
    receiver: OtlpReceiver,
    processes: list[subprocess.Popen[str]],
    **env: str,
) -> tuple[subprocess.Popen[str], str]:
    """`saga up tests.observability.traced_app:app` exporting to ``receiver``; its base URL."""
    port = free_port()
    service = spawn(
        ["-m", "orchestrator.cli", "up", "tests.observability.traced_app:app", "--port", str(port)],
        DATABASE_URL=postgres_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_SERVICE_NAME="traced-service",
        **env,
    )
    processes.append(service)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, service)
    return service, base


@pytest.mark.postgres
def test_saga_up_exports_the_request_trace_over_otlp(
    postgres_url: str, receiver: OtlpReceiver, processes: list[subprocess.Popen[str]]
) -> None:
    _, base = serve_traced(postgres_url, receiver, processes)
    with httpx.Client(base_url=base, timeout=60) as client:
        started = client.post(
            "/workflows/add",
            json={"a": 4},
            headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01", "Idempotency-Key": "otlp-1"},
        )
        assert started.status_code == 202, started.text
        answer = client.get("/workflows/otlp-1/result", params={"timeout": 30}).json()
        assert answer["output"] == 9
    spans = receiver.wait_for(
        lambda got: all(
            count(n, 1)(got) for n in ("step double", "workflow add", "workflow.start add")
        )
    )
    ours = [s for s in spans if s.attributes.get("orchestrator.workflow.id") == "otlp-1"]
    assert sorted(s.name for s in ours) == ["step double", "workflow add", "workflow.start add"]
    assert {s.trace_id for s in ours} == {TRACE_ID}
    assert {s.service for s in ours} == {"traced-service"}
    start = named(ours, "workflow.start add")[0]
    execution = named(ours, "workflow add")[0]
    # FastAPI's own telemetry (it uses the global provider `saga up` configured) makes a server
    # span of the request, a child of the caller's traceparent; the workflow hangs below it.
    by_id = {span.span_id: span for span in spans}
    ancestors = []
    parent = start.parent_span_id
    while parent in by_id:
        ancestors.append(by_id[parent])
        parent = by_id[parent].parent_span_id
    assert parent == CALLER_SPAN
    assert ancestors and ancestors[-1].kind == 2  # SPAN_KIND_SERVER: the request's span
    assert execution.parent_span_id == start.span_id
    assert named(ours, "step double")[0].parent_span_id == execution.span_id
    assert execution.attributes["orchestrator.workflow.status"] == "SUCCESS"


@pytest.mark.postgres
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_saga_up_stops_on_sigterm_as_on_ctrl_c_and_exports_every_buffered_span(
    postgres_url: str,
    receiver: OtlpReceiver,
    processes: list[subprocess.Popen[str]],
    signum: signal.Signals,
) -> None:
    """What Docker and Kubernetes send: the service stops, exits 0, and the spans still in
    the exporter's buffer (a minute-long schedule delay) reach the collector first."""
    service, base = serve_traced(postgres_url, receiver, processes, OTEL_BSP_SCHEDULE_DELAY="60000")
    with httpx.Client(base_url=base, timeout=60) as client:
        for n in range(3):
            started = client.post(
                "/workflows/add", json={"a": n}, headers={"Idempotency-Key": f"t{n}"}
            )
            assert started.status_code == 202, started.text
            answer = client.get(f"/workflows/t{n}/result", params={"timeout": 30}).json()
            assert answer["output"] == 2 * n + 1
    assert receiver.snapshot() == []  # all still buffered in the service
    service.send_signal(signum)
    _, err = service.communicate(timeout=30)
    assert service.returncode == 0, err
    spans = receiver.snapshot()
    names = sorted(s.name for s in spans if s.attributes.get("orchestrator.workflow.id"))
    assert names == sorted(["step double", "workflow add", "workflow.start add"] * 3), names


@pytest.mark.recovery
@pytest.mark.postgres
def test_sigkilled_worker_recovery_continues_the_trace_without_replay_spans(
    postgres_url: str, receiver: OtlpReceiver, processes: list[subprocess.Popen[str]]
) -> None:
    args = ["-m", "tests.observability.trace_worker", postgres_url, receiver.endpoint]
    first = spawn([*args, "start"])
    processes.append(first)
    # Steps a and b are checkpointed and their spans exported; c blocks: kill it there.
    receiver.wait_for(count("step b", 1))
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    before = receiver.snapshot()
    assert sorted(s.name for s in before) == ["step a", "step b", "workflow.start journey"]

    second = spawn([*args, "recover"])
    processes.append(second)
    out, err = second.communicate(timeout=90)
    assert second.returncode == 0, err
    assert "result abcd" in out
    spans = receiver.wait_for(count("workflow journey", 1))

    assert {s.trace_id for s in spans} == {before[0].trace_id}  # one trace across the crash
    names = sorted(s.name for s in spans)
    # a and b ran once (replayed after the crash: no new spans); the killed execution's span
    # and its unfinished step c never ended, so they were never exported.
    assert names == [
        "step a",
        "step b",
        "step c",
        "step d",
        "workflow journey",
        "workflow.start journey",
    ]
    (start,) = named(spans, "workflow.start journey")
    (recovery,) = named(spans, "workflow journey")
    assert recovery.parent_span_id == start.span_id  # continued from the stored context
    assert recovery.attributes["orchestrator.workflow.recovered"] is True
    assert recovery.attributes["orchestrator.workflow.replayed_steps"] == 2
    assert recovery.attributes["orchestrator.workflow.status"] == "SUCCESS"
    killed_execution = named(spans, "step a")[0].parent_span_id
    assert named(spans, "step b")[0].parent_span_id == killed_execution
    assert killed_execution not in {start.span_id, recovery.span_id}
    for name in ("step c", "step d"):
        assert named(spans, name)[0].parent_span_id == recovery.span_id


def test_a_steps_http_call_joins_the_trace_of_a_real_sample_service(
    tmp_path: Path,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    receiver: OtlpReceiver,
    processes: list[subprocess.Popen[str]],
) -> None:
    """The inventory service (services/, its own process, exporting to the receiver) gets the
    step's trace context and its idempotency key; the retried attempt sends the same key and
    the ledger applies the effect once."""
    port = free_port()
    inventory = spawn(
        ["-m", "uvicorn", "services.inventory:app", "--port", str(port), "--log-level", "warning"],
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_SERVICE_NAME="inventory",
        SHOP_DATA_DIR=str(tmp_path),
        DATABASE_URL="",
    )
    processes.append(inventory)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, inventory)
    httpx.put(f"{base}/products/mug", json={"stock": 5}).raise_for_status()
    app = Orchestrator(
        "propagation", f"sqlite:///{tmp_path}/p.db", app_version="t", tracer_provider=provider
    )
    attempts: list[int] = []

    @app.step(name="reserve", retry=Retry(max_attempts=2, base_interval=0.01))
    async def reserve() -> str:
        async with http_client(base_url=base, tracer_provider=provider) as client:
            body = {"order_id": "pay-1", "items": [{"sku": "mug", "quantity": 2}]}
            answer = (await client.post("/reservations", json=body)).raise_for_status().json()
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("lost the reply")  # the retry must send the same key
        return str(answer["reservation_id"])

    @app.workflow(name="pay")
    async def pay() -> str:
        return await reserve()

    async def run() -> None:
        async with app:
            await (await app.start(pay, workflow_id="pay-1")).result(timeout=30)

    import asyncio

    asyncio.run(run())
    [entry] = httpx.get(f"{base}/ledger", params={"prefix": "pay-1:"}).json()
    assert (entry["key"], entry["attempts"], entry["applied"]) == ("pay-1:1", 2, 1)
    [mug] = [p for p in httpx.get(f"{base}/products").json() if p["sku"] == "mug"]
    assert mug["stock"] == 3  # reserved once

    local = exporter.get_finished_spans()
    steps = sorted(
        (s for s in local if s.name == "step reserve"),
        key=lambda s: s.attributes["orchestrator.step.attempt"],
    )
    clients = sorted(
        (s for s in local if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    assert len(steps) == 2 and len(clients) == 2
    trace_id = format(steps[0].context.trace_id, "032x")

    def servers_of_the_saga(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [
            s for s in spans if s.service == "inventory" and s.kind == 2 and s.trace_id == trace_id
        ]

    servers = servers_of_the_saga(
        receiver.wait_for(lambda spans: len(servers_of_the_saga(spans)) >= 2)
    )
    for step, client in zip(steps, clients, strict=True):
        # step span -> httpx client span (this process) -> the service's server span
        assert client.parent is not None and client.parent.span_id == step.context.span_id
        server = next(
            s for s in servers if s.parent_span_id == format(client.context.span_id, "016x")
        )
        assert server.trace_id == format(step.context.trace_id, "032x")
