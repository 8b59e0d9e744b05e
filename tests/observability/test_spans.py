"""The span tree of workflows (in-memory exporter): structure, attributes, errors, replays,
child and enqueued workflows, fire-and-forget links, and nothing at all when tracing is off."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from orchestrator import (
    NonRetryableError,
    Orchestrator,
    Retry,
    WorkflowFailedError,
    WorkflowLogFilter,
)
from tests.conftest import AppFactory

Spans = Sequence[ReadableSpan]


async def spans_until(
    exporter: InMemorySpanExporter, predicate: Callable[[Spans], bool], timeout: float = 10.0
) -> Spans:
    """The finished spans once ``predicate`` holds (execution spans end just after result())."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        spans = exporter.get_finished_spans()
        if predicate(spans):
            return spans
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"spans: {[s.name for s in spans]}")
        await asyncio.sleep(0.01)


def named(spans: Spans, name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def one(spans: Spans, name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def has(name: str, count: int = 1) -> Callable[[Spans], bool]:
    return lambda spans: len(named(spans, name)) >= count


async def test_saga_with_retry_failure_and_compensation_is_one_span_tree(
    make_app: AppFactory,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    app = make_app(tracer_provider=provider)
    attempts = {"reserve": 0}

    @app.step(name="reserve", retry=Retry(max_attempts=3, base_interval=0.01))
    async def reserve(sku: str) -> str:
        attempts["reserve"] += 1
        if attempts["reserve"] == 1:
            raise ConnectionError("stock service flaked")
        return f"res-{sku}"

    @reserve.compensation
    async def release(sku: str, reservation: str) -> None:
        pass

    @app.step(name="charge")
    async def charge(cents: int) -> str:
        raise NonRetryableError("card declined")

    @app.workflow(name="checkout")
    async def checkout(sku: str, cents: int) -> str:
        await reserve(sku)
        return await charge(cents)

    async with app:
        handle = await app.start(checkout, "book", 99, workflow_id="order-1")
        with pytest.raises(WorkflowFailedError):
            await handle.result(timeout=30)
        spans = await spans_until(exporter, has("workflow checkout"))

    start = one(spans, "workflow.start checkout")
    execution = one(spans, "workflow checkout")
    reserve_attempts = sorted(
        named(spans, "step reserve"), key=lambda s: s.attributes["orchestrator.step.attempt"]
    )
    charged = one(spans, "step charge")
    compensation = one(spans, "compensation reserve.compensation")

    # One trace; the start span is its root, the execution its child, every call below that.
    assert {span.context.trace_id for span in spans} == {start.context.trace_id}
    assert start.parent is None
    assert parent_of(execution) == start.context.span_id
    for span in [*reserve_attempts, charged, compensation]:
        assert parent_of(span) == execution.context.span_id, span.name

    assert start.attributes["orchestrator.workflow.id"] == "order-1"
    assert start.attributes["orchestrator.workflow.created"] is True
    assert execution.attributes["orchestrator.workflow.name"] == "checkout"
    assert execution.attributes["orchestrator.workflow.status"] == "COMPENSATED"
    assert execution.attributes["orchestrator.workflow.recovered"] is False
    assert execution.attributes["orchestrator.executor.id"] == app.executor_id
    assert execution.status.status_code is StatusCode.ERROR
    assert "card declined" in (execution.status.description or "")
    assert [event.name for event in execution.events].count("rollback") == 1

    # The retried step: one span per attempt, the first an error with the exception recorded.
    assert [s.attributes["orchestrator.step.attempt"] for s in reserve_attempts] == [1, 2]
    first, second = reserve_attempts
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes["orchestrator.step.status"] == "ERROR"
    assert [event.name for event in first.events] == ["exception"]
    assert first.events[0].attributes["exception.type"] == "ConnectionError"
    assert second.status.status_code is not StatusCode.ERROR
    assert second.attributes["orchestrator.step.status"] == "SUCCESS"
    assert second.attributes["orchestrator.step.number"] == 1
    assert second.attributes["orchestrator.step.name"] == "reserve"
    assert second.attributes["orchestrator.workflow.id"] == "order-1"

    assert charged.status.status_code is StatusCode.ERROR
    assert charged.attributes["orchestrator.step.number"] == 2
    assert charged.events[0].attributes["exception.type"] == "orchestrator.errors.NonRetryableError"

    assert compensation.attributes["orchestrator.step.kind"] == "compensation"
    assert compensation.attributes["orchestrator.step.compensates"] == 1
    assert compensation.attributes["orchestrator.step.number"] == 3
    assert compensation.attributes["orchestrator.step.status"] == "SUCCESS"
    assert len(spans) == 6  # nothing else: no span per replay, no stray spans


async def test_resumed_workflow_continues_its_trace_and_replays_without_spans(
    make_app: AppFactory,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    app = make_app(tracer_provider=provider)
    broken = {"value": True}

    @app.step(name="one")
    async def step_one() -> int:
        return 1

    @app.step(name="two")
    async def step_two() -> int:
        if broken["value"]:
            raise NonRetryableError("not yet")
        return 2

    @app.workflow(name="pair")
    async def pair() -> int:
        await app.sleep(0)
        return await step_one() + await step_two()

    async with app:
        with pytest.raises(NonRetryableError):
            await (await app.start(pair, workflow_id="pair-1")).result(timeout=30)
        await spans_until(exporter, has("workflow pair"))
        broken["value"] = False
        assert await (await app.resume("pair-1")).result(timeout=30) == 3
        spans = await spans_until(exporter, has("workflow pair", 2))

    first, second = sorted(named(spans, "workflow pair"), key=lambda s: s.start_time or 0)
    start = one(spans, "workflow.start pair")
    assert parent_of(first) == parent_of(second) == start.context.span_id
    assert first.context.trace_id == second.context.trace_id == start.context.trace_id
    assert second.attributes["orchestrator.workflow.replayed_steps"] == 2
    assert second.attributes["orchestrator.workflow.status"] == "SUCCESS"
    # The sleep and step one ran once; only the failed step two ran again.
    assert len(named(spans, "sleep")) == 1
    assert len(named(spans, "step one")) == 1
    assert [parent_of(s) for s in named(spans, "step two")] == [
        first.context.span_id,
        second.context.span_id,
    ]


async def test_recovered_workflow_is_a_recovery_in_the_same_trace(
    make_app: AppFactory,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    """A process that stops mid-workflow (shutdown without finishing): the next launch with
    the same executor id recovers it; the spans say so. (tests/observability/test_crash.py
    does the same with SIGKILL.)"""
    gate = asyncio.Event()
    entered = asyncio.Event()

    def build() -> Orchestrator:
        app = make_app(tracer_provider=provider, executor_id="recovering")

        @app.step(name="first")
        async def first() -> str:
            return "a"

        @app.step(name="blocked")
        async def blocked() -> str:
            entered.set()
            await gate.wait()
            return "b"

        @app.workflow(name="interrupted")
        async def interrupted() -> str:
            return await first() + await blocked()

        return app

    before = build()
    await before.launch()
    await before.start("interrupted", workflow_id="rec-1")
    await spans_until(exporter, has("step first"))
    await asyncio.wait_for(entered.wait(), 30)  # "blocked" has begun
    await before.shutdown(timeout=0)  # "blocked" is interrupted; the workflow stays PENDING
    gate.set()
    after = build()
    async with after:
        assert await after.retrieve("rec-1").result(timeout=30) == "ab"
        spans = await spans_until(exporter, has("workflow interrupted", 2))

    executions = sorted(named(spans, "workflow interrupted"), key=lambda s: s.start_time or 0)
    assert [s.attributes["orchestrator.workflow.recovered"] for s in executions] == [False, True]
    assert executions[0].attributes["orchestrator.workflow.status"] == "INTERRUPTED"
    assert executions[1].attributes["orchestrator.workflow.status"] == "SUCCESS"
    assert {s.context.trace_id for s in spans} == {executions[0].context.trace_id}
    assert len(named(spans, "step first")) == 1  # replayed after recovery: no second span
    blocked = sorted(named(spans, "step blocked"), key=lambda s: s.start_time or 0)
    assert [b.attributes["orchestrator.step.status"] for b in blocked] == [
        "INTERRUPTED",
        "SUCCESS",
    ]
    assert parent_of(blocked[1]) == executions[1].context.span_id


async def test_child_and_enqueued_workflows_are_children_and_step_started_ones_are_linked(
    make_app: AppFactory,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    app = make_app(tracer_provider=provider)
    app.queue("jobs")

    @app.workflow(name="child")
    async def child(x: int) -> int:
        return x + 1

    @app.workflow(name="detached")
    async def detached() -> str:
        return "done"

    @app.step(name="kick")
    async def kick() -> str:
        return (await app.start(detached, workflow_id="detached-1")).workflow_id

    @app.workflow(name="parent")
    async def parent() -> int:
        direct = await (await app.start(child, 1)).result()
        queued = await (await app.start(child, 10, queue="jobs")).result()
        await kick()
        return direct + queued

    tracer = provider.get_tracer("test")
    async with app:
        with tracer.start_as_current_span("request") as request:
            handle = await app.start(parent, workflow_id="parent-1")
            enqueued = await app.start(child, 100, queue="jobs", workflow_id="enq-1")
        assert await handle.result(timeout=30) == 13
        assert await enqueued.result(timeout=30) == 101
        await app.retrieve("detached-1").result(timeout=30)
        spans = await spans_until(
            exporter, lambda s: has("workflow child", 3)(s) and has("workflow detached")(s)
        )

    trace_id = request.get_span_context().trace_id
    by_id = {span.context.span_id: span for span in spans}
    parent_run = one(spans, "workflow parent")
    assert parent_run.context.trace_id == trace_id
    assert by_id[parent_of(parent_run)].name == "workflow.start parent"  # type: ignore[index]
    assert parent_of(by_id[parent_of(parent_run)]) == request.get_span_context().span_id  # type: ignore[index]

    child_runs = named(spans, "workflow child")
    assert {run.context.trace_id for run in child_runs} == {trace_id}
    for run in child_runs:
        start = by_id[parent_of(run)]  # type: ignore[index]
        assert start.name == "workflow.start child"
        wid = run.attributes["orchestrator.workflow.id"]
        if wid == "enq-1":  # enqueued by the request: a child of the request's span
            assert parent_of(start) == request.get_span_context().span_id
            assert (start.kind, run.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
        else:  # a child workflow (direct or queued): a child of the parent's execution
            assert parent_of(start) == parent_run.context.span_id
            assert start.attributes["orchestrator.workflow.parent_id"] == "parent-1"
            assert run.attributes["orchestrator.workflow.parent_id"] == "parent-1"
    assert {r.attributes.get("orchestrator.queue") for r in child_runs} == {None, "jobs"}

    # Started from inside a step (fire-and-forget): a new trace, linked to the step's span.
    kick_span = one(spans, "step kick")
    detached_start = one(spans, "workflow.start detached")
    assert detached_start.parent is None
    assert detached_start.context.trace_id != trace_id
    assert [link.context.span_id for link in detached_start.links] == [kick_span.context.span_id]
    assert one(spans, "workflow detached").context.trace_id == detached_start.context.trace_id


async def test_messaging_and_sleep_spans(
    make_app: AppFactory,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    app = make_app(tracer_provider=provider)

    @app.workflow(name="listener")
    async def listener() -> Any:
        await app.set_event("ready", True)
        first = await app.recv("greeting", timeout=30)
        missing = await app.recv("nothing", timeout=0)
        return [first, missing]

    @app.workflow(name="talker")
    async def talker(target: str) -> None:
        await app.sleep(0.01)
        await app.send(target, "hello", topic="greeting")

    async with app:
        handle = await app.start(listener, workflow_id="listener-1")
        assert await app.get_event("listener-1", "ready", timeout=30) is True
        await (await app.start(talker, "listener-1")).result(timeout=30)
        assert await handle.result(timeout=30) == ["hello", None]
        spans = await spans_until(exporter, has("workflow listener"))

    assert one(spans, "set_event ready").attributes["orchestrator.step.number"] == 1
    greeting = one(spans, "recv greeting")
    assert greeting.attributes["orchestrator.recv.timed_out"] is False
    assert one(spans, "recv nothing").attributes["orchestrator.recv.timed_out"] is True
    send = one(spans, "send")
    assert send.attributes["orchestrator.message.destination"] == "listener-1"
    assert one(spans, "sleep").attributes["orchestrator.sleep.seconds"] == 0.01
    assert parent_of(send) == one(spans, "workflow talker").context.span_id


async def test_logs_inside_steps_carry_workflow_step_and_trace_ids(
    make_app: AppFactory,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    app = make_app(tracer_provider=provider)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(WorkflowLogFilter())
    log = logging.getLogger("tests.observability.steps")
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    @app.step(name="noisy")
    async def noisy() -> None:
        log.info("inside the step")

    @app.workflow(name="logged")
    async def logged() -> None:
        await noisy()
        log.info("in the workflow body")

    try:
        async with app:
            await (await app.start(logged, workflow_id="log-1")).result(timeout=30)
            log.info("outside")
            spans = await spans_until(exporter, has("step noisy"))
    finally:
        log.removeHandler(handler)
    step_span = one(spans, "step noisy")
    inside, body, outside = records
    assert (inside.workflow_id, inside.step_number) == ("log-1", 1)  # type: ignore[attr-defined]
    assert inside.trace_id == format(step_span.context.trace_id, "032x")  # type: ignore[attr-defined]
    assert inside.span_id == format(step_span.context.span_id, "016x")  # type: ignore[attr-defined]
    assert (body.workflow_id, body.step_number) == ("log-1", 1)  # type: ignore[attr-defined]
    assert body.trace_id == inside.trace_id  # type: ignore[attr-defined]
    assert (outside.workflow_id, outside.trace_id) == ("", "")  # type: ignore[attr-defined]


async def test_without_a_tracer_provider_nothing_is_traced_or_stored(
    make_app: AppFactory,
) -> None:
    app = make_app()  # no provider given, and the test process never sets a global one

    @app.step(name="s")
    async def s() -> int:
        return 1

    @app.workflow(name="plain")
    async def plain() -> int:
        return await s()

    async with app:
        assert app.tracing.tracer() is None
        await (await app.start(plain, workflow_id="plain-1")).result(timeout=30)
        record = await app.store.get_workflow("plain-1")
    assert record is not None
    assert record.trace_context is None
