"""Shared enums and aliases: workflow statuses and the kinds of recorded steps."""

from __future__ import annotations

import enum


class WorkflowStatus(enum.StrEnum):
    """Where a workflow is in its life cycle (see the header of migration 0001)."""

    ENQUEUED = "ENQUEUED"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"
    MAX_RECOVERY_ATTEMPTS_EXCEEDED = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"

    @property
    def is_terminal(self) -> bool:
        """True once nothing will run this workflow again without an operator."""
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """True while some executor runs (or will run) this workflow."""
        return self in ACTIVE_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        WorkflowStatus.SUCCESS,
        WorkflowStatus.ERROR,
        WorkflowStatus.CANCELLED,
        WorkflowStatus.COMPENSATED,
        WorkflowStatus.COMPENSATION_FAILED,
        WorkflowStatus.MAX_RECOVERY_ATTEMPTS_EXCEEDED,
    }
)
ACTIVE_STATUSES = frozenset(
    {WorkflowStatus.ENQUEUED, WorkflowStatus.PENDING, WorkflowStatus.COMPENSATING}
)
# Statuses in which an executor may still write checkpoints.
RUNNING_STATUSES = frozenset({WorkflowStatus.PENDING, WorkflowStatus.COMPENSATING})


class StepKind(enum.StrEnum):
    """What a recorded step was: every durable call takes one step number."""

    STEP = "step"
    COMPENSATION = "compensation"
    REGISTER_COMPENSATION = "register_compensation"  # app.compensate(fn, ...)
    CHILD = "child"
    RESULT = "result"
    SLEEP = "sleep"
    NOW = "now"
    RANDOM = "random"
    SEND = "send"
    RECV = "recv"
    SET_EVENT = "set_event"
    GET_EVENT = "get_event"
    SET_ATTRIBUTES = "set_attributes"
    STREAM = "stream"
    PATCH = "patch"  # app.patched(name): this execution took the patched code's path
