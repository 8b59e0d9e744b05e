"""Replaying a recorded history against code, executing nothing: the one piece of machinery
behind the upgrade check (``Orchestrator.upgrade_check``, ``saga upgrade-check``) and replay
tests of saved histories.

The workflow function runs as a recovery would run it, with one difference: a durable call
that has a record returns what was recorded (a step's result or error, a message, a child's
handle, a sleep that has ended...), and the first call that has no record ends the replay
there instead of executing. Nothing is written, nothing waits, no step's function runs. The
verdict says whether the code reproduced every recorded call:

- ``compatible``: every recorded call was made again, in order, with the recorded name (the
  replay reached new territory, or the function ended where the history does);
- ``needs_patch``: at ``step`` the history recorded ``recorded`` but the code calls
  ``called`` (None: the code returned, or raised, before making it); wrap the change in
  ``app.patched(...)`` (docs/upgrading.md);
- ``unknown_workflow``: the code registers no workflow of that name.

A saga whose rollback has begun resumes it from its records without replaying the forward
part, so its verdict asks only that every compensation still to run can be found.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from orchestrator import context
from orchestrator.clock import Clock, Timer
from orchestrator.context import ExecutionContext
from orchestrator.engine.run import ReplayEnd, WorkflowRun
from orchestrator.engine.saga import Saga
from orchestrator.metrics import Metrics
from orchestrator.store.base import StepRecord, Store, WorkflowRecord
from orchestrator.tracing import Tracing
from orchestrator.types import StepKind, WorkflowStatus

if TYPE_CHECKING:
    from orchestrator.engine.workflows import WorkflowFunction

T = TypeVar("T")

Verdict = Literal["compatible", "needs_patch", "unknown_workflow"]


@dataclass(frozen=True, slots=True)
class ReplayVerdict:
    """What replaying one workflow's history against the code found (see the module doc)."""

    workflow_id: str
    workflow_name: str
    app_version: str | None
    status: WorkflowStatus
    verdict: Verdict
    step: int | None = None  # needs_patch: the first step number the code does not reproduce
    recorded: str | None = None  # what the history has there
    called: str | None = None  # what the code calls there (None: it makes no call there)
    replayed: int = 0  # recorded calls the code reproduced
    reason: str = ""  # a sentence for people
    adopted: bool = False  # upgrade_check(adopt=True) moved it to the checking code's version

    @property
    def compatible(self) -> bool:
        return self.verdict == "compatible"

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``saga upgrade-check --json`` and the HTTP API."""
        shown: dict[str, Any] = {
            "workflow_id": self.workflow_id,
            "workflow_name": self.workflow_name,
            "app_version": self.app_version,
            "status": str(self.status),
            "verdict": self.verdict,
            "replayed": self.replayed,
            "reason": self.reason,
            "adopted": self.adopted,
        }
        if self.verdict == "needs_patch":
            shown.update(step=self.step, recorded=self.recorded, called=self.called)
        return shown


class _Instant:
    """A clock for dry runs: its time is the real clock's, but nothing waits (a recorded sleep
    has ended if later calls are recorded, and the replay ends at the next call otherwise)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def call_at(self, deadline_ms: int, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_soon(callback)

    async def sleep_until(self, deadline_ms: int) -> None:
        return None

    async def wait_until(
        self, awaitable: Awaitable[T], deadline_ms: int | None
    ) -> tuple[bool, T | None]:
        return True, await awaitable


def _forward(steps: list[StepRecord], record: WorkflowRecord) -> list[StepRecord]:
    """The calls the workflow function made (not a rollback's compensations)."""
    after = record.rollback_after_step
    return [
        s
        for s in steps
        if s.kind is not StepKind.COMPENSATION and (after is None or s.step_number <= after)
    ]


async def replay_history(
    workflow: WorkflowFunction[Any, Any] | None,
    record: WorkflowRecord,
    steps: list[StepRecord],
    *,
    store: Store,
    clock: Clock,
    saga: Saga,
) -> ReplayVerdict:
    """Replay ``record``'s recorded ``steps`` against ``workflow`` (None: the code registers
    no workflow of that name) without executing anything; the verdict."""

    def verdict(kind: Verdict, reason: str, **fields: Any) -> ReplayVerdict:
        return ReplayVerdict(
            workflow_id=record.workflow_id,
            workflow_name=record.name,
            app_version=record.app_version,
            status=record.status,
            verdict=kind,
            reason=reason,
            **fields,
        )

    if workflow is None:
        return verdict("unknown_workflow", f"this code registers no workflow named {record.name!r}")
    if record.status is WorkflowStatus.COMPENSATING and record.rollback_after_step is not None:
        return await _rollback_verdict(record, steps, saga, verdict)
    run = WorkflowRun(
        record,
        workflow,
        steps,
        store=store,
        clock=_Instant(clock),
        tracing=Tracing(executor_id="replay"),
        metrics=Metrics(),
    )
    run.dry = True
    forward = {s.step_number: s for s in _forward(steps, record)}
    run.recorded = dict(forward)
    args, kwargs = workflow.signature.decode_input(record.input)
    token = context.enter(ExecutionContext(run))
    ended: ReplayEnd | None = None
    try:
        await workflow.fn(*args, **kwargs)
    except ReplayEnd as end:
        ended = end
    except Exception:
        ended = None
    finally:
        context.leave(token)
    if run.diverged is not None:  # (even if the workflow's code caught it)
        detail = run.diverged.detail
        number = int(detail.get("step_number", 0))
        reason = (
            f"step {number} ({detail.get('called_name')!r}) was recorded with other arguments "
            "than this code passes"
            if detail.get("arguments")
            else f"step {number} was recorded as {detail.get('recorded_name')!r} but this code "
            f"calls {detail.get('called_name')!r} there"
        )
        return verdict(
            "needs_patch",
            reason,
            step=number,
            recorded=detail.get("recorded_name"),
            called=detail.get("called_name"),
            replayed=len(forward) - len(run.recorded) - 1,
        )
    replayed = len(forward) - len(run.recorded)
    left = sorted(run.recorded.values(), key=lambda s: s.step_number)
    if ended is None and left:
        first = left[0]
        return verdict(
            "needs_patch",
            f"step {first.step_number} was recorded as {first.name!r} but this code ends "
            "before making that call",
            step=first.step_number,
            recorded=first.name,
            called=None,
            replayed=replayed,
        )
    where = f"; it goes on from step {ended.number} ({ended.name!r})" if ended is not None else ""
    return verdict(
        "compatible",
        f"this code reproduces the {replayed} recorded call{'s' if replayed != 1 else ''}{where}",
        replayed=replayed,
    )


async def _rollback_verdict(
    record: WorkflowRecord,
    steps: list[StepRecord],
    saga: Saga,
    verdict: Callable[..., ReplayVerdict],
) -> ReplayVerdict:
    """A rollback that has begun resumes from its records: every compensation it has still
    to run must be found in this code."""
    for compensation in await saga.plan(record.workflow_id, steps=steps):
        if saga.find_compensation(compensation.name) is None:
            return verdict(
                "needs_patch",
                f"the rollback still has to run compensation {compensation.name!r} of step "
                f"{compensation.compensates_step}, which this code does not register",
                step=compensation.compensates_step,
                recorded=compensation.name,
                called=None,
            )
    return verdict("compatible", "its rollback resumes from its records")
