"""Waiting for workflow results: in-process outcomes, stored outcomes on notification, and
the durable form of a wait made inside a workflow."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from orchestrator import context
from orchestrator.errors import (
    LeaseLostError,
    MaxRecoveryAttemptsExceededError,
    WorkflowCancelledError,
    WorkflowNotFoundError,
    WorkflowTimeoutError,
)
from orchestrator.executor import WorkflowRun
from orchestrator.notifications import Waiters
from orchestrator.saga import rollback_failure
from orchestrator.serialization import decode_error, encode, encode_error, error_summary
from orchestrator.store.base import NOTIFY_WORKFLOW, StepRecord, Store, WorkflowRecord
from orchestrator.types import StepKind, WorkflowStatus
from orchestrator.workflow import Registry

RESULT_POLL_SECONDS = 1.0  # a lost notification delays a remote result waiter at most this


class Results:
    """Mixed into Engine: waiting for, and decoding, workflow outcomes."""

    store: Store
    registry: Registry
    waiters: Waiters
    runs: dict[str, WorkflowRun]
    closing: bool

    async def wait_result(self, workflow_id: str, timeout: float | None) -> Any:
        current = context.current()
        if current is None or current.step is not None:
            return await self._wait_result(workflow_id, timeout)
        run = current.run
        if timeout is None:  # a finished workflow's outcome never changes: nothing to record
            return await run.wait(self._wait_result(workflow_id, None))
        return await self._durable_result(run, workflow_id, timeout)

    async def _durable_result(self, run: WorkflowRun, workflow_id: str, timeout: float) -> Any:
        """Inside a workflow with a timeout: whether it timed out is recorded, for replay."""
        number = await run.begin()
        name = f"result:{workflow_id}"
        recorded = run.replayed(number, name)
        if recorded is None:
            run.check_runnable()
            output = error = None
            try:
                value = await run.wait(self._wait_result(workflow_id, timeout))
                output = encode(value, what="child result")
            except (WorkflowCancelledError, LeaseLostError):
                if run.stop_reason is not None:
                    raise
                error = encode_error(WorkflowCancelledError(f"workflow {workflow_id} cancelled"))
            except Exception as exc:
                error = encode_error(exc)
            recorded = StepRecord(
                workflow_id=run.workflow_id,
                step_number=number,
                name=name,
                kind=StepKind.RESULT,
                output=output,
                error=error,
                epoch=run.epoch,
            )
            await run.checkpoint(recorded)
        if recorded.error is not None:
            raise decode_error(recorded.error)
        record = await self.store.get_workflow(workflow_id)
        workflow = self.registry.workflows.get(record.name) if record else None
        if workflow is None:
            return json.loads(recorded.output) if recorded.output else None
        return workflow.signature.decode_output(recorded.output)

    async def _wait_result(self, workflow_id: str, timeout: float | None) -> Any:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            run = self.runs.get(workflow_id)
            if run is not None:
                try:
                    return await asyncio.wait_for(asyncio.shield(run.outcome), remaining)
                except TimeoutError:
                    raise self._timeout(workflow_id, timeout) from None
                except LeaseLostError:
                    if self.closing:
                        raise
                    continue  # another worker goes on with it: follow the stored status
            with self.waiters.subscribe((NOTIFY_WORKFLOW, workflow_id)) as subscription:
                record = await self.store.get_workflow(workflow_id)
                if record is None:
                    raise WorkflowNotFoundError(
                        f"no workflow with id {workflow_id!r}", workflow_id=workflow_id
                    )
                if record.status.is_terminal:
                    return self.outcome_of(record)
                if workflow_id in self.runs:
                    continue
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    raise self._timeout(workflow_id, timeout)
                wait = (
                    RESULT_POLL_SECONDS
                    if remaining is None
                    else min(remaining, RESULT_POLL_SECONDS)
                )
                await subscription.wait(wait)

    @staticmethod
    def _timeout(workflow_id: str, timeout: float | None) -> WorkflowTimeoutError:
        return WorkflowTimeoutError(
            f"workflow {workflow_id} did not finish within {timeout} s; it is still running "
            "(wait again, or check its status)",
            workflow_id=workflow_id,
            timeout=timeout,
        )

    def outcome_of(self, record: WorkflowRecord) -> Any:
        """The result of a finished workflow, or raise the error it ended with."""
        status = record.status
        if status is WorkflowStatus.SUCCESS:
            workflow = self.registry.workflows.get(record.name)
            if workflow is None:
                return json.loads(record.output) if record.output else None
            return workflow.signature.decode_output(record.output)
        if status is WorkflowStatus.ERROR and record.error:
            raise decode_error(record.error)
        summary = error_summary(record.error) or ("", "")
        if status is WorkflowStatus.CANCELLED:
            raise WorkflowCancelledError(
                summary[1] or f"workflow {record.workflow_id} was cancelled",
                workflow_id=record.workflow_id,
            )
        if status is WorkflowStatus.MAX_RECOVERY_ATTEMPTS_EXCEEDED:
            raise MaxRecoveryAttemptsExceededError(
                f"workflow {record.workflow_id} was recovered {record.recovery_attempts} times "
                f"without finishing (max_recovery_attempts={record.max_recovery_attempts}); "
                "fix the cause, then resume it",
                workflow_id=record.workflow_id,
            )
        raise rollback_failure(record.workflow_id, status, record.error)
