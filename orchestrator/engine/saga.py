"""Compensations: reverse-order rollback of completed steps, each a durable, retried step.

A rollback is computed from the store, not from memory: the completed forward steps that
registered a compensation, newest completion first (by the store's ``seq``), minus the ones
already undone. Compensations take the next step numbers of the workflow, so a process that
crashes mid-rollback replays the workflow, meets the same failure, recomputes the same plan, and
finds the compensations that already ran recorded: it resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.engine.run import STOP_ERRORS, Attempt, Call, WorkflowRun
from orchestrator.engine.steps import StepFunction, step_call
from orchestrator.errors import NotRegisteredError, WorkflowCancelledError, WorkflowFailedError
from orchestrator.serialization import encode_error, error_summary
from orchestrator.store.base import StepRecord, Store
from orchestrator.types import StepKind, WorkflowStatus

logger = logging.getLogger("orchestrator.saga")


RUNNING = (WorkflowStatus.PENDING, WorkflowStatus.ENQUEUED, WorkflowStatus.COMPENSATING)


def wants_rollback(error: BaseException) -> bool:
    """True for a cancel that asked for compensation (``cancel(id, compensate=True)`` or a
    passed deadline): the saga rolls back instead of just stopping."""
    return isinstance(error, WorkflowCancelledError) and bool(error.detail.get("compensate"))


@dataclass(frozen=True, slots=True)
class Compensation:
    """One compensation to run: which function, with what input, undoing which step."""

    name: str
    input: str  # JSON {"args", "kwargs", "result"?}
    forward: StepRecord  # the step it undoes (of this workflow, or of a child)
    compensates_step: int  # the step number in *this* workflow it belongs to


class Saga:
    """Runs rollbacks; given the registry's lookups and the store."""

    def __init__(
        self,
        store: Store,
        find_compensation: Callable[[str], StepFunction[Any, Any] | None],
        find_step: Callable[[str], StepFunction[Any, Any] | None],
        stop_child: Callable[[str], Awaitable[None]],
    ) -> None:
        self.store = store
        self.find_compensation = find_compensation
        self.find_step = find_step
        self.stop_child = stop_child

    async def plan(
        self, workflow_id: str, *, child: bool = False, steps: list[StepRecord] | None = None
    ) -> list[Compensation]:
        """Every compensation of ``workflow_id``'s completed steps, newest completion first.

        The plan is the same however often it is computed, so compensations keep their step
        numbers and the ones already run replay from their records. Only a child that rolled
        itself back (its own compensation records) leaves nothing for its parent to undo.
        """
        if steps is None:  # (a replay of an exported history passes its steps)
            steps = await self.store.load_steps(workflow_id)
        undone = (
            {s.compensates_step for s in steps if s.kind is StepKind.COMPENSATION}
            if child
            else set()
        )
        plan: list[Compensation] = []
        for step in sorted(steps, key=lambda s: (s.seq or 0, s.step_number), reverse=True):
            if step.error is not None or step.step_number in undone:
                continue
            if step.compensation is not None and step.compensation_input is not None:
                plan.append(
                    Compensation(step.compensation, step.compensation_input, step, step.step_number)
                )
            elif step.kind is StepKind.CHILD and step.child_workflow_id is not None:
                plan.extend(await self._child_plan(step))
        return plan

    async def _child_plan(self, step: StepRecord) -> list[Compensation]:
        """A completed child saga rolls back with its parent: its compensations, recorded as
        the parent's steps. A child that rolled itself back has nothing left to undo."""
        assert step.child_workflow_id is not None
        child = await self.store.get_workflow(step.child_workflow_id)
        if child is not None and child.status.is_active:
            await self.stop_child(child.workflow_id)  # it rolls itself back; wait for its end
            child = await self.store.get_workflow(step.child_workflow_id)
        if child is None or child.status not in (
            WorkflowStatus.SUCCESS,
            WorkflowStatus.COMPENSATED,
        ):
            return []
        return [
            Compensation(c.name, c.input, c.forward, step.step_number)
            for c in await self.plan(step.child_workflow_id, child=True)
        ]

    async def preview(
        self, workflow_id: str
    ) -> tuple[list[tuple[Compensation, str | None]], int | None]:
        """What a rollback of ``workflow_id`` would run if it began now, in order, each with
        the child workflow it belongs to (None: this one's own step), and the pivot step that
        has completed (None: none). Reads only: unlike ``plan`` it stops no running child (a
        running child would roll itself back; its compensations are listed as its own)."""
        steps = await self.store.load_steps(workflow_id)
        pivot = next(
            (
                s.step_number
                for s in steps
                if s.kind is StepKind.STEP and s.error is None and self._is_pivot(s.name)
            ),
            None,
        )
        return await self._preview(steps, child_id=None), pivot

    async def _preview(
        self, steps: list[StepRecord], *, child_id: str | None
    ) -> list[tuple[Compensation, str | None]]:
        undone = {  # compensations that already ran (a rollback under way, a child's own)
            s.compensates_step for s in steps if s.kind is StepKind.COMPENSATION and not s.error
        }
        plan: list[tuple[Compensation, str | None]] = []
        for step in sorted(steps, key=lambda s: (s.seq or 0, s.step_number), reverse=True):
            if step.error is not None or step.step_number in undone:
                continue
            if step.compensation is not None and step.compensation_input is not None:
                plan.append(
                    (
                        Compensation(
                            step.compensation, step.compensation_input, step, step.step_number
                        ),
                        child_id,
                    )
                )
            elif step.kind is StepKind.CHILD and step.child_workflow_id is not None:
                record = await self.store.get_workflow(step.child_workflow_id)
                if record is None or record.status not in (
                    WorkflowStatus.SUCCESS,
                    WorkflowStatus.COMPENSATED,
                    *RUNNING,
                ):
                    continue
                child_steps = await self.store.load_steps(record.workflow_id)
                plan.extend(await self._preview(child_steps, child_id=record.workflow_id))
        return plan

    def _is_pivot(self, name: str) -> bool:
        function = self.find_step(name)
        return bool(function is not None and function.pivot)

    @staticmethod
    async def wait_for_parallel_steps(run: WorkflowRun) -> None:
        """Wait for the steps still running in parallel branches: they finish and are
        recorded (so they are compensated too) before a rollback is planned."""
        await run.settled()

    async def rollback(self, run: WorkflowRun, plan: list[Compensation]) -> BaseException | None:
        """Run ``plan`` as durable compensation steps; return the error that stopped it."""
        for compensation in plan:
            function = self.find_compensation(compensation.name)
            if function is None:
                return NotRegisteredError(
                    f"compensation {compensation.name!r} is not registered in this application",
                    name=compensation.name,
                )
            args, kwargs = self._arguments(compensation, function)
            try:
                await run.call(
                    step_call(
                        run,
                        function,
                        args,
                        kwargs,
                        kind=StepKind.COMPENSATION,
                        compensates_step=compensation.compensates_step,
                    )
                )
            except STOP_ERRORS:
                raise
            except Exception as exc:
                logger.warning(
                    "compensation %s of workflow %s failed: %r",
                    compensation.name,
                    run.workflow_id,
                    exc,
                )
                return exc
        for child_id in {c.forward.workflow_id for c in plan} - {run.workflow_id}:
            await self.store.transition_workflow(
                child_id,
                WorkflowStatus.COMPENSATED,
                from_statuses={WorkflowStatus.SUCCESS},
                error=encode_error(
                    WorkflowCancelledError(
                        f"rolled back with its parent {run.workflow_id}", workflow_id=child_id
                    )
                ),
            )
        return None

    def _arguments(
        self, compensation: Compensation, function: StepFunction[Any, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The forward step's arguments (typed by its signature), then its result."""
        data = json.loads(compensation.input)
        forward = self.find_step(compensation.forward.name)
        signature = (forward or function).signature
        args, kwargs = signature.decode_input(
            json.dumps({"args": data.get("args", []), "kwargs": data.get("kwargs", {})})
        )
        if "result" in data:
            result = (
                signature.decode_output(json.dumps(data["result"]))
                if forward is not None
                else data["result"]
            )
            args = (*args, result)
        return args, kwargs


async def register(
    run: WorkflowRun,
    function: StepFunction[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """``app.compensate(fn, *args)``: record, as the next step, a compensation to run with
    these arguments if the workflow rolls back (durable from this point on)."""
    compensation_input = function.signature.encode_input(
        args,
        kwargs,
        limit=run.max_payload_bytes,
        what=f"the input of compensation {function.name!r}",
    )
    name = f"compensate:{function.name}"

    async def perform(attempt: Attempt) -> None:
        await run.record_step(
            run.step_record(
                attempt.number,
                name,
                StepKind.REGISTER_COMPENSATION,
                output="null",
                compensation=function.name,
                compensation_input=compensation_input,
            )
        )

    await run.call(
        Call(name, StepKind.REGISTER_COMPENSATION, perform=perform, replay=lambda _: None)
    )


def rollback_failure(
    workflow_id: str, status: WorkflowStatus, error: str | None
) -> WorkflowFailedError:
    """What ``result()`` raises for a saga that rolled back: the triggering error's type and
    message, and the final status (COMPENSATED or COMPENSATION_FAILED)."""
    error_type, message = error_summary(error) or ("", "")
    ending = {
        WorkflowStatus.COMPENSATED: "was rolled back (COMPENSATED)",
        WorkflowStatus.COMPENSATION_FAILED: (
            "could not be rolled back (COMPENSATION_FAILED): an operator must retry_compensation,"
            " skip_compensation or fork it"
        ),
    }.get(status, f"ended {status}")
    return WorkflowFailedError(
        f"workflow {workflow_id} failed with {error_type}: {message}; it {ending}",
        workflow_id=workflow_id,
        status=str(status),
        error_type=error_type,
        error_message=message,
    )
