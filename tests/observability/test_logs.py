"""Log lines: a finished workflow logs one line; ``trace=`` is there only inside a span."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestrator import NonRetryableError, Orchestrator, WorkflowLogFilter
from orchestrator.log_context import LOG_FORMAT
from tests.conftest import AppFactory
from tests.observability.test_spans import has, one, spans_until


class Lines(logging.Handler):
    """The records the `orchestrator` loggers emit, and their lines in LOG_FORMAT."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self.addFilter(WorkflowLogFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def finished(self) -> list[str]:
        return [self.format(r) for r in self.records if r.name == "orchestrator.workflows"]


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("orchestrator")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def _workflows(app: Orchestrator) -> tuple[object, object]:
    @app.step(name="one")
    async def one_step() -> int:
        return 1

    @app.workflow(name="fine")
    async def fine() -> int:
        return await one_step()

    @app.workflow(name="broken")
    async def broken() -> None:
        await one_step()
        raise NonRetryableError("no")

    return fine, broken


async def test_a_finished_workflow_logs_one_line_without_an_empty_trace(
    make_app: AppFactory, lines: Lines
) -> None:
    app = make_app()  # no tracing: no trace id to show
    fine, broken = _workflows(app)
    async with app:
        assert await (await app.start(fine, workflow_id="log-ok")).result(timeout=30) == 1
        with pytest.raises(NonRetryableError):
            await (await app.start(broken, workflow_id="log-bad")).result(timeout=30)
    # (Only this test's workflows: a workflow another test left in this process may end now.)
    mine = [
        line
        for line in lines.finished()
        if "workflow log-ok " in line or "workflow log-bad " in line
    ]
    assert len(mine) == 2, mine  # one line each
    ok, bad = sorted(mine, key=lambda line: "log-bad" in line)
    assert " INFO orchestrator.workflows [workflow=log-ok step=] " in ok
    assert "] workflow log-ok (fine) finished SUCCESS in " in ok
    assert float(ok.rsplit(" in ", 1)[1].removesuffix(" s")) >= 0
    assert " WARNING orchestrator.workflows [workflow=log-bad step=] " in bad
    assert "workflow log-bad (broken) finished ERROR in " in bad
    ours = [lines.format(record) for record in lines.records]
    ours = [line for line in ours if "workflow=log-ok " in line or "workflow=log-bad " in line]
    assert ours and all("trace=" not in line for line in ours)


async def test_the_finished_line_carries_the_workflow_trace(
    make_app: AppFactory,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    lines: Lines,
) -> None:
    app = make_app(tracer_provider=provider)
    fine, _ = _workflows(app)
    async with app:
        await (await app.start(fine, workflow_id="log-traced")).result(timeout=30)
        spans = await spans_until(exporter, has("workflow fine"))
    trace_id = format(one(spans, "workflow fine").context.trace_id, "032x")
    [line] = lines.finished()
    assert f"[workflow=log-traced step= trace={trace_id}] workflow log-traced (fine)" in line
