"""Log records carry the running workflow's id, step number and trace id (a logging filter),
and a finished workflow logs one line (``log_finished``)."""

from __future__ import annotations

import logging

from opentelemetry import trace

from orchestrator import context
from orchestrator.types import WorkflowStatus

# ``%(trace)s`` is `` trace=<id>`` inside a span and empty outside one (no ``trace=`` at all).
LOG_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s "
    "[workflow=%(workflow_id)s step=%(step_number)s%(trace)s] %(message)s"
)
finished_logger = logging.getLogger("orchestrator.workflows")
_NEEDS_A_LOOK = frozenset(
    {
        WorkflowStatus.ERROR,
        WorkflowStatus.COMPENSATION_FAILED,
        WorkflowStatus.MAX_RECOVERY_ATTEMPTS_EXCEEDED,
    }
)


class WorkflowLogFilter(logging.Filter):
    """Adds ``workflow_id``, ``step_number``, ``trace_id`` and ``span_id`` to every record
    (empty strings outside a workflow or a span; a ``workflow_id`` given as ``extra`` stays),
    and ``trace`` (`` trace=<id>``, or empty outside a span) for LOG_FORMAT, so a formatter or a JSON handler can print them and
    logs join up with traces and the dashboard. Attach it to handlers: a filter on a logger
    does not see records of its child loggers. It never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = context.current()
        if current is None:
            record.workflow_id = getattr(record, "workflow_id", "")
            record.step_number = ""
        else:
            record.workflow_id = current.run.workflow_id
            # Inside a step: that step; in the workflow body: the last durable call's number.
            record.step_number = (
                current.step.step_number if current.step is not None else current.run.counter
            )
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            trace_id = format(span.trace_id, "032x")
            record.trace_id = trace_id
            record.span_id = format(span.span_id, "016x")
            record.trace = f" trace={trace_id}"
        else:
            record.trace_id = record.span_id = record.trace = ""
        return True


def log_finished(workflow_id: str, name: str, status: WorkflowStatus, duration_ms: int) -> None:
    """One line for a workflow that ended in this process: id, name, final status and the
    time since it was created (a WARNING when it needs a look, else INFO)."""
    finished_logger.log(
        logging.WARNING if status in _NEEDS_A_LOOK else logging.INFO,
        "workflow %s (%s) finished %s in %.3f s",
        workflow_id,
        name,
        status.value,
        max(duration_ms, 0) / 1000,
        extra={"workflow_id": workflow_id},
    )


def configure_logging(level: int | str = logging.INFO, fmt: str = LOG_FORMAT) -> None:
    """Give the root logger's handlers the WorkflowLogFilter (adding a stderr handler with
    ``fmt`` when it has none). Used by ``saga up`` and ``saga worker``; idempotent."""
    root = logging.getLogger()
    if not root.handlers:
        stderr = logging.StreamHandler()
        stderr.setFormatter(logging.Formatter(fmt))
        root.addHandler(stderr)
        root.setLevel(level)
        # httpx logs every request at INFO (health checks, each step's call): keep it to
        # warnings unless the application configured it.
        if logging.getLogger("httpx").level == logging.NOTSET:
            logging.getLogger("httpx").setLevel(logging.WARNING)
    for handler in root.handlers:
        if not any(isinstance(f, WorkflowLogFilter) for f in handler.filters):
            handler.addFilter(WorkflowLogFilter())
