"""Operator actions on stored workflows: cancel (with rollback), resume, fork, and the
COMPENSATION_FAILED actions retry_compensation and skip_compensation."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid
from collections.abc import Callable
from typing import Any

from orchestrator.engine.registry import Registry
from orchestrator.engine.results import Results
from orchestrator.engine.runs import EngineState, Runs
from orchestrator.engine.starting import Starter
from orchestrator.engine.workflows import StartOptions, WorkflowFunction, WorkflowHandle
from orchestrator.errors import (
    InvalidArgumentError,
    WorkflowCancelledError,
    WorkflowFinishedError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from orchestrator.metrics import Metrics
from orchestrator.serialization import check_key, encode_error
from orchestrator.store.base import StepRecord, Store, WorkflowRecord
from orchestrator.tracing import Tracing
from orchestrator.types import RUNNING_STATUSES, StepKind, WorkflowStatus
from orchestrator.views import WorkflowInfo

RESUMABLE = frozenset(
    {
        WorkflowStatus.CANCELLED,
        WorkflowStatus.ERROR,
        WorkflowStatus.MAX_RECOVERY_ATTEMPTS_EXCEEDED,
        WorkflowStatus.ENQUEUED,
    }
)


class Operations:
    """The operator's actions on stored workflows, carried out by this engine."""

    def __init__(
        self,
        state: EngineState,
        *,
        store: Store,
        registry: Registry,
        tracing: Tracing,
        metrics: Metrics,
        runs: Runs,
        starter: Starter,
        results: Results,
        handle: Callable[[str], WorkflowHandle[Any]],
    ) -> None:
        self.state = state
        self.store = store
        self.registry = registry
        self.tracing = tracing
        self.metrics = metrics
        self.runs = runs
        self.starter = starter
        self.results = results
        self.handle = handle

    async def get_record(self, workflow_id: str) -> WorkflowRecord:
        """The stored workflow, or WorkflowNotFoundError."""
        record = await self.store.get_workflow(check_key(workflow_id, "workflow id"))
        if record is None:
            raise WorkflowNotFoundError(
                f"no workflow with id {workflow_id!r}", workflow_id=workflow_id
            )
        return record

    async def cancel(self, workflow_id: str, *, compensate: bool = False) -> WorkflowInfo:
        """Stop a workflow at its next durable call; it ends CANCELLED, or with
        ``compensate=True`` rolls back its completed steps first (then COMPENSATED)."""
        error = WorkflowCancelledError(
            f"workflow {workflow_id} was cancelled" + (" with rollback" if compensate else ""),
            workflow_id=workflow_id,
            compensate=compensate,
        )
        record = (
            await self._cancel_with_rollback(workflow_id, error)
            if compensate
            else await self.store.transition_workflow(
                workflow_id,
                WorkflowStatus.CANCELLED,
                from_statuses={WorkflowStatus.ENQUEUED, WorkflowStatus.PENDING},
                error=encode_error(error),
            )
        )
        if record is None:
            record = await self.get_record(workflow_id)
            # Rolled back by a cancel already: this one retried after its commit's answer was
            # lost (or a repeat): done, as a repeated cancel of a CANCELLED one is.
            rolled_back = compensate and record.error == encode_error(error)
            if record.status is WorkflowStatus.COMPENSATING and not rolled_back:
                raise WorkflowStateError(
                    f"workflow {workflow_id} is compensating; a rollback is not cancelled",
                    workflow_id=workflow_id,
                )
            if record.status is not WorkflowStatus.CANCELLED and not rolled_back:
                raise WorkflowFinishedError(
                    f"workflow {workflow_id} already finished as {record.status}",
                    workflow_id=workflow_id,
                    status=str(record.status),
                )
        run = self.runs.get(workflow_id)
        if run is not None and not run.compensating:
            run.stop(error)
        elif run is None and record.status is WorkflowStatus.COMPENSATING:
            await self._adopt(record)  # nobody runs it here: roll it back now
        return WorkflowInfo.from_record(record)

    async def _cancel_with_rollback(
        self, workflow_id: str, error: WorkflowCancelledError
    ) -> WorkflowRecord | None:
        """PENDING -> COMPENSATING (its executor rolls it back). An ENQUEUED workflow with a
        history (it ran, and went back to its queue when its worker died) -> COMPENSATING with
        no executor: a worker takes the rollback over as it takes over a dead worker's work.
        One that never ran -> CANCELLED: there is nothing to undo. Retried when the workflow
        moves between the reads (a dequeue); None once it is neither ENQUEUED nor PENDING."""
        encoded = encode_error(error)
        for _ in range(10):
            moved = await self.store.transition_workflow(
                workflow_id,
                WorkflowStatus.COMPENSATING,
                from_statuses={WorkflowStatus.PENDING},
                error=encoded,
            )
            if moved is not None:
                return moved
            ran = bool(await self.store.load_steps(workflow_id))
            moved = await self.store.transition_workflow(
                workflow_id,
                WorkflowStatus.COMPENSATING if ran else WorkflowStatus.CANCELLED,
                from_statuses={WorkflowStatus.ENQUEUED},
                error=encoded,
            )
            if moved is not None:
                return moved
            current = await self.store.get_workflow(workflow_id)
            if current is None or current.status not in (
                WorkflowStatus.ENQUEUED,
                WorkflowStatus.PENDING,
            ):
                return None
        return None

    async def _adopt(self, record: WorkflowRecord) -> None:
        """Run a workflow whose executor is this one but which is not running in-process."""
        if record.executor_id == self.state.executor_id and record.workflow_id not in self.runs:
            workflow = self.registry.workflows.get(record.name)
            if workflow is not None:
                steps = await self.store.load_steps(record.workflow_id)
                self.runs.launch(record, workflow, steps)

    async def stop_child(self, workflow_id: str) -> None:
        """A parent rolls back while its child still runs: roll the child back too."""
        with contextlib.suppress(WorkflowFinishedError, WorkflowStateError):
            await self.cancel(workflow_id, compensate=True)
        with contextlib.suppress(Exception):  # the caller reads its outcome from the store
            await self.results.wait_result(workflow_id, None)

    async def resume(self, workflow_id: str) -> WorkflowHandle[Any]:
        """Run a cancelled, failed or stuck workflow again from its last checkpoint; steps
        that failed at the end of its history are retried."""
        self.state.require_launched("resume")
        current = await self.get_record(workflow_id)
        workflow = self.starter.workflow_named(current.name)
        record = await self.store.resume_workflow(
            workflow_id,
            self.state.executor_id,
            self.state.app_version,
            from_statuses=RESUMABLE,
            to_status=WorkflowStatus.PENDING,
        )
        if record is None:
            record = await self.get_record(workflow_id)
            if record.status in RUNNING_STATUSES:
                return self.handle(workflow_id)
            raise WorkflowFinishedError(
                f"workflow {workflow_id} is {record.status}; only {', '.join(sorted(RESUMABLE))}"
                " workflows can be resumed",
                workflow_id=workflow_id,
                status=str(record.status),
            )
        await self._relaunch_retrying_failed_tail(record, workflow)
        return self.handle(workflow_id)

    async def _relaunch_retrying_failed_tail(
        self,
        record: WorkflowRecord,
        workflow: WorkflowFunction[Any, Any],
        *,
        compensations_only: bool = False,
    ) -> None:
        """Launch ``record`` again; steps that failed at the end of its history are deleted
        first, so they execute again instead of replaying their error. A rollback retry
        (``compensations_only``) retries failed compensations only: the forward failure that
        triggered the rollback stays recorded, so the replay rolls back again."""
        if record.workflow_id in self.runs:
            return
        steps = await self.store.load_steps(record.workflow_id)
        failed_tail = 0
        while failed_tail < len(steps) and steps[-1 - failed_tail].error is not None:
            if compensations_only and steps[-1 - failed_tail].kind is not StepKind.COMPENSATION:
                break
            failed_tail += 1
        if failed_tail:
            await self.store.delete_steps(record.workflow_id, steps[-failed_tail].step_number)
            steps = steps[:-failed_tail]
        self.runs.launch(record, workflow, steps)

    async def retry_compensation(self, workflow_id: str) -> WorkflowHandle[Any]:
        """COMPENSATION_FAILED -> COMPENSATING: retry the failed compensation and go on."""
        self.state.require_launched("retry_compensation")
        workflow = self.starter.workflow_named((await self.get_record(workflow_id)).name)
        record = await self._reopen_rollback(workflow_id)
        await self._relaunch_retrying_failed_tail(record, workflow, compensations_only=True)
        return self.handle(workflow_id)

    async def _reopen_rollback(self, workflow_id: str) -> WorkflowRecord:
        """COMPENSATION_FAILED -> COMPENSATING on this executor, or WorkflowStateError."""
        record = await self.store.resume_workflow(
            workflow_id,
            self.state.executor_id,
            self.state.app_version,
            from_statuses={WorkflowStatus.COMPENSATION_FAILED},
            to_status=WorkflowStatus.COMPENSATING,
        )
        if record is None:
            raise self._not_compensation_failed(await self.get_record(workflow_id))
        return record

    async def skip_compensation(
        self, workflow_id: str, step: int, reason: str, by: str
    ) -> WorkflowHandle[Any]:
        """Record that the failed compensation of forward step ``step`` is skipped (who, why)
        and continue the rollback with the next compensation."""
        self.state.require_launched("skip_compensation")
        if not reason.strip():
            raise InvalidArgumentError("skip_compensation needs a reason (it is recorded)")
        current = await self.get_record(workflow_id)
        if current.status is not WorkflowStatus.COMPENSATION_FAILED:
            raise self._not_compensation_failed(current)
        steps = await self.store.load_steps(workflow_id)
        failed = [
            s
            for s in steps
            if s.kind is StepKind.COMPENSATION
            and s.error is not None
            and s.compensates_step == step
        ]
        if not failed:
            numbers = [
                s.compensates_step
                for s in steps
                if s.kind is StepKind.COMPENSATION and s.error is not None
            ]
            compensated = sorted(n for n in numbers if n is not None)
            raise InvalidArgumentError(
                f"step {step} of workflow {workflow_id} has no failed compensation to skip "
                f"(failed compensations are for steps {compensated})",
                workflow_id=workflow_id,
                step=step,
            )
        target = failed[-1]
        workflow = self.starter.workflow_named(current.name)
        record = await self._reopen_rollback(workflow_id)
        await self.store.delete_steps(workflow_id, target.step_number)
        skipped = StepRecord(
            workflow_id=workflow_id,
            step_number=target.step_number,
            name=target.name,
            kind=StepKind.COMPENSATION,
            compensates_step=step,
            attempts=target.attempts,
            output=json.dumps({"skipped": True, "reason": reason, "by": by}),
            epoch=record.owner_epoch,
        )
        await self.store.record_step(skipped)
        await self._relaunch_retrying_failed_tail(record, workflow, compensations_only=True)
        return self.handle(workflow_id)

    @staticmethod
    def _not_compensation_failed(record: WorkflowRecord) -> WorkflowStateError:
        return WorkflowStateError(
            f"workflow {record.workflow_id} is {record.status}, not COMPENSATION_FAILED; only a "
            "failed rollback can be retried or skipped",
            workflow_id=record.workflow_id,
            status=str(record.status),
        )

    async def fork(
        self,
        workflow_id: str,
        from_step: int,
        new_workflow_id: str | None,
        app_version: str | None = None,
    ) -> WorkflowHandle[Any]:
        """Start a new workflow with the same input, reusing the steps recorded before
        ``from_step`` and executing from there on. With ``app_version`` (another version's
        code): the fork has no executor, and a live worker of that version takes it over."""
        self.state.require_launched("fork")
        if from_step < 1:
            raise InvalidArgumentError(
                f"from_step must be >= 1 (steps count from 1), got {from_step}"
            )
        source = await self.get_record(workflow_id)
        workflow = self.starter.workflow_named(source.name)
        new_id = new_workflow_id or str(uuid.uuid4())
        # A fork is a new trace (or the caller's), linked to the trace of the workflow it forks.
        with self.tracing.starting(
            workflow.name, new_id, None, link_to=source.trace_context
        ) as started:
            new = self.starter.new_workflow(
                workflow,
                source.input,
                StartOptions(),
                workflow_id=new_id,
                trace_context=started.trace_context,
            )
            elsewhere = app_version is not None and app_version != self.state.app_version
            if elsewhere:
                new = dataclasses.replace(new, app_version=app_version, executor_id=None)
            record = await self.store.fork_workflow(new, workflow_id, from_step)
        self.metrics.workflow_started(workflow.name)
        if elsewhere:
            return self.handle(record.workflow_id)  # its version's workers take it over
        self.runs.launch(record, workflow, await self.store.load_steps(record.workflow_id))
        return self.handle(record.workflow_id)
