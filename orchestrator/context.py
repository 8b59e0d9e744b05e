"""The one ContextVar: which workflow (and which step of it) the current code runs in.

The engine sets it; the rest reads it through what ``RunView`` exposes: logs carry the workflow
id and step number, outgoing HTTP calls the step's idempotency key. The engine keeps its own
run object in it (``engine.run.durable_run`` reads it back with its full type).
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Protocol

from orchestrator.errors import NotInWorkflowError


class RunView(Protocol):
    """What code outside the engine may know of the running workflow."""

    workflow_id: str

    @property
    def counter(self) -> int:
        """The number of the last durable call made."""


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


@dataclass(slots=True)  # (not frozen: one is built per step attempt, on the hot path)
class ExecutionContext:
    """The running workflow execution, and the step being executed inside it, if any."""

    run: RunView
    step: StepContext | None = None


_current: ContextVar[ExecutionContext | None] = ContextVar("orchestrator_execution", default=None)


def current() -> ExecutionContext | None:
    """The execution context of the calling code, or None outside any workflow."""
    return _current.get()


def enter(context: ExecutionContext | None) -> Token[ExecutionContext | None]:
    return _current.set(context)


def leave(token: Token[ExecutionContext | None]) -> None:
    _current.reset(token)


def current_step() -> StepContext:
    """The running step's context, or NotInWorkflowError outside a step."""
    context = _current.get()
    if context is None or context.step is None:
        raise NotInWorkflowError(
            "step_context() is only available while a step runs (inside an @app.step function "
            "or app.run_step)."
        )
    return context.step
