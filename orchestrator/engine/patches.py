"""Patches: changing the code of workflows that are running (docs/upgrading.md).

``patched(name)`` marks the point where new code takes a new path. A first execution that
reaches it records a marker (``patch:<name>``, kind ``patch``) at that step number and takes the
new path (True). A replay of a history recorded by the old code finds another call (or nothing
it may claim) at that number: it takes the old path (False) and the number stays with the call
the old code made there. So both kinds of history replay deterministically on the new code.

``deprecate_patch(name)`` replaces ``patched(name)`` once no workflow that could take the old
path is left: it consumes a recorded marker and records nothing, so the histories made with
the patch and the ones made after it both replay; a later release can then drop it.
"""

from __future__ import annotations

from orchestrator.engine.run import Attempt, Call, WorkflowRun, durable_run
from orchestrator.errors import InvalidArgumentError, NotInWorkflowError
from orchestrator.store.base import StepRecord
from orchestrator.types import StepKind

PREFIX = "patch:"


def marker_name(name: str) -> str:
    given: object = name  # callers pass what their caller sent
    if not isinstance(given, str) or not given or len(given) > 200:
        raise InvalidArgumentError(f"a patch needs a name of 1 to 200 characters, got {name!r}")
    return PREFIX + name


def _run(operation: str) -> WorkflowRun:
    run = durable_run()
    if run is None:
        raise NotInWorkflowError(
            f"{operation} can only be called in a workflow function's body (not outside a "
            "workflow, nor inside a step): it marks a point of the workflow's history."
        )
    return run


def _recorded_marker(run: WorkflowRun, marker: str) -> StepRecord | None:
    """The marker recorded at the next step number, if that is what is recorded there."""
    step = run.recorded.get(run.counter + 1)
    if step is not None and step.kind is StepKind.PATCH and step.name == marker:
        return step
    return None


async def patched(name: str) -> bool:
    """True where this execution takes the new path (it records a marker there, or replays
    one); False where it replays a history that the code before the patch recorded."""
    marker = marker_name(name)
    run = _run("patched()")
    if _recorded_marker(run, marker) is None and run.recorded.get(run.counter + 1) is not None:
        return False  # the old code recorded another call here: keep to the old path

    async def perform(attempt: Attempt) -> bool:
        await run.record_step(run.step_record(attempt.number, marker, StepKind.PATCH), defer=True)
        return True

    return await run.call(Call(marker, StepKind.PATCH, perform=perform, replay=lambda _: True))


async def deprecate_patch(name: str) -> None:
    """Where ``patched(name)`` was: consume its marker if this history has one; record
    nothing. Deploy it once every workflow that could take the old path has finished."""
    marker = marker_name(name)
    run = _run("deprecate_patch()")
    if _recorded_marker(run, marker) is None:
        return
    await run.call(
        Call(marker, StepKind.PATCH, perform=_never, replay=lambda _: None),
    )


async def _never(attempt: Attempt) -> None:
    raise AssertionError("deprecate_patch replays a recorded marker only")
