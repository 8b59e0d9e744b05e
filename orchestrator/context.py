"""The one ContextVar: which workflow (and which step of it) the current code runs in."""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.errors import NotInWorkflowError

if TYPE_CHECKING:
    from orchestrator.executor import WorkflowRun


@dataclass(frozen=True, slots=True)
class StepContext:
    """What a running step knows about itself; the same on every attempt and every replay."""

    workflow_id: str
    step_number: int
    name: str
    attempt: int

    @property
    def idempotency_key(self) -> str:
        """Stable per step: send it as ``Idempotency-Key`` so effects apply once."""
        return f"{self.workflow_id}:{self.step_number}"


@dataclass(frozen=True, slots=True)
class ExecutionContext:
    """The running workflow execution, and the step being executed inside it, if any."""

    run: WorkflowRun
    step: StepContext | None = None


_current: ContextVar[ExecutionContext | None] = ContextVar("orchestrator_execution", default=None)


def current() -> ExecutionContext | None:
    """The execution context of the calling code, or None outside any workflow."""
    return _current.get()


def enter(context: ExecutionContext | None) -> Token[ExecutionContext | None]:
    return _current.set(context)


def leave(token: Token[ExecutionContext | None]) -> None:
    _current.reset(token)


def current_run(operation: str) -> WorkflowRun:
    """The running workflow, or NotInWorkflowError explaining that ``operation`` needs one."""
    context = _current.get()
    if context is None:
        raise NotInWorkflowError(
            f"{operation} can only be called inside a workflow function (decorated with "
            "@app.workflow()); outside one there is no workflow to record it in."
        )
    return context.run


def current_step() -> StepContext:
    """The running step's context, or NotInWorkflowError outside a step."""
    context = _current.get()
    if context is None or context.step is None:
        raise NotInWorkflowError(
            "step_context() is only available while a step runs (inside an @app.step function "
            "or app.run_step)."
        )
    return context.step
