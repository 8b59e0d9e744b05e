"""Log records carry the running workflow's id, step number and trace id (a logging filter)."""

from __future__ import annotations

import logging

from opentelemetry import trace

from orchestrator import context

LOG_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s "
    "[workflow=%(workflow_id)s step=%(step_number)s trace=%(trace_id)s] %(message)s"
)


class WorkflowLogFilter(logging.Filter):
    """Adds ``workflow_id``, ``step_number``, ``trace_id`` and ``span_id`` to every record
    (empty strings outside a workflow), so a formatter or a JSON handler can print them and
    logs join up with traces and the dashboard. Attach it to handlers: a filter on a logger
    does not see records of its child loggers. It never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = context.current()
        if current is None:
            record.workflow_id = ""
            record.step_number = ""
        else:
            record.workflow_id = current.run.workflow_id
            # Inside a step: that step; in the workflow body: the last durable call's number.
            record.step_number = (
                current.step.step_number if current.step is not None else current.run.counter
            )
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = format(span.trace_id, "032x")
            record.span_id = format(span.span_id, "016x")
        else:
            record.trace_id = record.span_id = ""
        return True


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
