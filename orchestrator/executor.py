"""Runs workflow invocations to their final status: the per-run state and the durable call
primitives (step numbers, replay, checkpoints, cancellation) every engine module builds on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from orchestrator import context
from orchestrator.clock import Clock
from orchestrator.context import ExecutionContext
from orchestrator.errors import (
    LeaseLostError,
    NonDeterministicWorkflowError,
    WorkflowCancelledError,
)
from orchestrator.serialization import encode_error
from orchestrator.store.base import StepRecord, Store, WorkflowRecord
from orchestrator.types import RUNNING_STATUSES, WorkflowStatus
from orchestrator.workflow import WorkflowFunction

logger = logging.getLogger("orchestrator.executor")

T = TypeVar("T")


class WorkflowRun:
    """One execution of one workflow in this process: its step counter, the steps recorded by
    earlier executions (replayed instead of re-run), and whether it has been told to stop."""

    def __init__(
        self,
        record: WorkflowRecord,
        workflow: WorkflowFunction[Any, Any],
        recorded: list[StepRecord],
        *,
        store: Store,
        clock: Clock,
    ) -> None:
        self.record = record
        self.workflow_id = record.workflow_id
        self.workflow = workflow
        self.store = store
        self.clock = clock
        self.recorded: dict[int, StepRecord] = {step.step_number: step for step in recorded}
        self.history: list[StepRecord] = list(recorded)  # what sagas read to compensate
        self.counter = 0
        self.stop_reason: BaseException | None = None
        self.pivot_step: int | None = None
        self.finishing = False  # the function returned or raised: final status being written
        self.outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waits: set[asyncio.Future[Any]] = set()

    # -- step numbers and replay ------------------------------------------------------------
    def next_step(self) -> int:
        """The step number of the next durable call (taken synchronously: deterministic)."""
        self.counter += 1
        return self.counter

    def replayed(self, number: int, name: str) -> StepRecord | None:
        """The step recorded at ``number`` by an earlier execution, after checking its name."""
        if not self.recorded:
            return None
        step = self.recorded.pop(number, None)
        if step is not None and step.name != name:
            raise NonDeterministicWorkflowError(
                f"workflow {self.workflow.name!r} ({self.workflow_id}) is not deterministic: "
                f"step {number} was recorded as {step.name!r} but the code now calls {name!r}. "
                "Do not change the order of durable calls of a running workflow; fork it, or "
                "deploy the change under a new application version.",
                workflow_id=self.workflow_id,
                step_number=number,
                recorded_name=step.name,
                called_name=name,
            )
        return step

    def on_replayed_step(self, step: StepRecord) -> None:
        """Hook for replayed steps (sagas track pivots)."""
        if step.error is None and self.workflow_pivots(step):
            self.pivot_step = step.step_number

    def workflow_pivots(self, step: StepRecord) -> bool:
        return False

    def on_pivot(self, number: int) -> None:
        self.pivot_step = number

    # -- stopping ---------------------------------------------------------------------------
    def check_runnable(self) -> None:
        """Raise the reason this run must stop, if it has been told to stop."""
        if self.stop_reason is not None:
            raise self.stop_reason

    def stop(self, reason: BaseException) -> None:
        """Make the next durable call raise ``reason`` and interrupt any durable wait now."""
        if self.stop_reason is None:
            self.stop_reason = reason
        for waiting in list(self._waits):
            waiting.cancel()

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """Await a durable wait (sleep, recv, a child's result) that ``stop`` can interrupt."""
        self.check_runnable()
        future = asyncio.ensure_future(awaitable)
        self._waits.add(future)
        try:
            return await future
        except asyncio.CancelledError:
            if self.stop_reason is not None and future.cancelled():
                raise self.stop_reason from None
            raise
        finally:
            self._waits.discard(future)

    # -- checkpoints ------------------------------------------------------------------------
    async def checkpoint(self, step: StepRecord) -> None:
        """Checkpoint a step; if the store refuses, find out why and stop accordingly."""
        if await self.store.record_step(step):
            self.history.append(step)
            return
        await self.explain_refusal(step)

    async def explain_refusal(self, step: StepRecord) -> None:
        """The step was not written: accept our own earlier commit, or stop the workflow."""
        record = await self.store.get_workflow(self.workflow_id)
        if record is None or record.status not in RUNNING_STATUSES:
            status = record.status if record else "deleted"
            self.stop(
                WorkflowCancelledError(
                    f"workflow {self.workflow_id} is {status}; it stops at this durable call",
                    workflow_id=self.workflow_id,
                    status=str(status),
                )
            )
            self.check_runnable()
        for existing in await self.store.load_steps(self.workflow_id):
            if existing.step_number == step.step_number:
                if (existing.name, existing.output, existing.error) == (
                    step.name,
                    step.output,
                    step.error,
                ):
                    self.history.append(existing)
                    return  # our own write, committed before a connection loss hid the answer
                break
        self.stop(
            LeaseLostError(
                f"step {step.step_number} of workflow {self.workflow_id} was recorded by another "
                "executor; this one stops so the workflow never runs twice in parallel",
                workflow_id=self.workflow_id,
                step_number=step.step_number,
            )
        )
        self.check_runnable()

    # -- running ----------------------------------------------------------------------------
    async def execute(self) -> None:
        """Run the workflow function to its end and write its final status."""
        token = context.enter(ExecutionContext(self))
        try:
            args, kwargs = self.workflow.signature.decode_input(self.record.input)
            result = await self.workflow.fn(*args, **kwargs)
            output = self.workflow.signature.encode_output(result)
        except (WorkflowCancelledError, LeaseLostError) as exc:
            self.resolve(exc=self.stop_reason or exc)
            return
        except asyncio.CancelledError:
            # Shutdown (or a stop that interrupted a wait): leave the row for recovery.
            self.resolve(
                exc=self.stop_reason
                or LeaseLostError(
                    f"workflow {self.workflow_id} was interrupted by shutdown; it will be recovered",
                    workflow_id=self.workflow_id,
                )
            )
            if self.stop_reason is None:
                raise
            return
        except Exception as exc:
            await self.fail(exc)
            return
        finally:
            context.leave(token)
        self.finishing = True
        if await self.store.finish_workflow(
            self.workflow_id, WorkflowStatus.SUCCESS, output=output
        ):
            self.resolve(value=result)
        else:
            await self._resolve_from_store()

    async def fail(self, error: Exception) -> None:
        """The workflow function raised: record ERROR (sagas override to compensate)."""
        logger.info("workflow %s failed: %r", self.workflow_id, error)
        self.finishing = True
        if await self.store.finish_workflow(
            self.workflow_id, WorkflowStatus.ERROR, error=encode_error(error)
        ):
            self.resolve(exc=error)
        else:
            await self._resolve_from_store()

    async def _resolve_from_store(self) -> None:
        """Someone else decided the final status (e.g. a cancel): report that one."""
        record = await self.store.get_workflow(self.workflow_id)
        status = record.status if record else "deleted"
        self.resolve(
            exc=self.stop_reason
            or WorkflowCancelledError(
                f"workflow {self.workflow_id} ended as {status} while it ran",
                workflow_id=self.workflow_id,
                status=str(status),
            )
        )

    def resolve(self, *, value: Any = None, exc: BaseException | None = None) -> None:
        if self.outcome.done():
            return
        if exc is None:
            self.outcome.set_result(value)
        else:
            self.outcome.set_exception(exc)
            self.outcome.exception()  # retrieved: nobody awaiting is not an error
