"""Waiting for workflow results: in-process outcomes, stored outcomes on notification, and
the durable form of a wait made inside a workflow."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable
from typing import Any

from orchestrator.clock import Clock
from orchestrator.engine.notifications import Waiters
from orchestrator.engine.registry import Registry
from orchestrator.engine.run import STOP_ERRORS, Attempt, Call, WorkflowRun, durable_run
from orchestrator.engine.runs import EngineState, Runs
from orchestrator.engine.saga import rollback_failure
from orchestrator.errors import (
    LeaseLostError,
    MaxRecoveryAttemptsExceededError,
    WorkflowCancelledError,
    WorkflowNotFoundError,
    WorkflowTimeoutError,
)
from orchestrator.serialization import decode_error, encode, encode_error, error_summary
from orchestrator.store.base import NOTIFY_WORKFLOW, StepRecord, Store, WorkflowRecord
from orchestrator.types import StepKind, WorkflowStatus

RESULT_POLL_SECONDS = 1.0  # a lost notification delays a remote result waiter at most this
READ_BATCH = 500  # most workflow rows one gathered read asks for


class GatheredReads:
    """Reads of workflow rows that waiters need at the same moment, gathered into one query.

    Hundreds of result waiters of queued workflows (or of another process's) each read their
    workflow's row when they start waiting and when notified; one query per waiter queued them
    all on the connection pool ahead of the checkpoints that would finish those workflows. As
    the store's group commit does for writes, the reads waiting while one query runs go in the
    next one: an idle waiter still costs one round trip, a crowd costs a few."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiting: dict[str, list[asyncio.Future[WorkflowRecord | None]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def get(self, workflow_id: str) -> WorkflowRecord | None:
        """The workflow's row (None if it does not exist), read with the others waiting."""
        future: asyncio.Future[WorkflowRecord | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(workflow_id, []).append(future)
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())
        return await future

    async def _read(self) -> None:
        try:
            while self._waiting:
                ids = list(itertools.islice(self._waiting, READ_BATCH))
                batch = {workflow_id: self._waiting.pop(workflow_id) for workflow_id in ids}
                try:
                    records = {r.workflow_id: r for r in await self.store.get_workflows(ids)}
                except asyncio.CancelledError:
                    _cancel(batch)
                    raise
                except Exception as error:  # every waiter of the batch raises it
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(error)
                    continue
                for workflow_id, futures in batch.items():
                    for future in futures:
                        if not future.done():
                            future.set_result(records.get(workflow_id))
        finally:
            self._reader = None
            _cancel(self._waiting)  # (only when cancelled mid-read: strand no waiter)
            self._waiting.clear()


class Follower:
    """A future that resolves as ``outcome`` does, for one waiter: cancelling the waiter
    cancels this future and leaves ``outcome`` alone. What ``asyncio.shield`` guarantees,
    at less cost on the path of every result awaited in this process: shield builds two
    closures per wait, and its outer future takes one more event-loop turn to wake its
    waiter (a wake storm awaits 100,000 results at once; bench/README.md). ``stop()`` once
    the wait is over, however it ended: a waiter that gave up (a timeout, a cancel) leaves
    no callback behind on a run that may go on for days."""

    __slots__ = ("future", "outcome")

    def __init__(self, outcome: asyncio.Future[Any]) -> None:
        self.outcome = outcome
        self.future: asyncio.Future[Any]
        if outcome.done():
            self.future = outcome
            return
        self.future = outcome.get_loop().create_future()
        outcome.add_done_callback(self._copy)

    def _copy(self, outcome: asyncio.Future[Any]) -> None:
        future = self.future
        if future.done():  # (its waiter gave up)
            return
        if outcome.cancelled():
            future.cancel()
            return
        error = outcome.exception()
        if error is None:
            future.set_result(outcome.result())
        else:
            future.set_exception(error)

    def stop(self) -> None:
        if not self.outcome.done():
            self.outcome.remove_done_callback(self._copy)


def _cancel(waiting: dict[str, list[asyncio.Future[WorkflowRecord | None]]]) -> None:
    for futures in waiting.values():
        for future in futures:
            future.cancel()


class Results:
    """Waiting for, and decoding, workflow outcomes: a run of this process is awaited
    directly; another's outcome is read from the store when its status changes."""

    def __init__(
        self,
        state: EngineState,
        *,
        store: Store,
        clock: Clock,
        registry: Registry,
        waiters: Waiters,
        runs: Runs,
    ) -> None:
        self.state = state
        self.store = store
        self.clock = clock
        self.registry = registry
        self.waiters = waiters
        self.runs = runs
        self.reads = GatheredReads(store)

    def wait_result(self, workflow_id: str, timeout: float | None) -> Awaitable[Any]:
        """The workflow's result (or its error) once it ends, waiting up to ``timeout`` s
        (None: no limit). Inside a workflow the wait is durable: with a timeout, whether it
        timed out is recorded; without one, the outcome of a finished workflow never changes
        and nothing needs recording. (Returns the awaitable: outside a workflow, the wait
        itself, no coroutine in between.)"""
        run = durable_run()
        if run is None:
            return self._wait_result(workflow_id, timeout)
        if timeout is None:
            return run.wait(self._wait_result(workflow_id, None))
        return self._durable_wait(run, workflow_id, timeout)

    async def _durable_wait(self, run: WorkflowRun, workflow_id: str, timeout: float) -> Any:
        """A result wait with a timeout inside a workflow: whether it timed out is recorded."""
        name = f"result:{workflow_id}"

        async def perform(attempt: Attempt) -> Any:
            output = error = None
            try:
                value = await run.wait(self._wait_result(workflow_id, timeout))
                output = encode(value, what="child result")
            except STOP_ERRORS:
                if run.stop_reason is not None:
                    raise
                error = encode_error(WorkflowCancelledError(f"workflow {workflow_id} cancelled"))
            except Exception as exc:
                error = encode_error(exc)
            recorded = run.step_record(
                attempt.number, name, StepKind.RESULT, output=output, error=error
            )
            await run.record_step(recorded)
            return await self._recorded_result(workflow_id, recorded)

        return await run.call(
            Call(
                name,
                StepKind.RESULT,
                perform=perform,
                replay=lambda recorded: self._recorded_result(workflow_id, recorded),
            )
        )

    async def _recorded_result(self, workflow_id: str, recorded: StepRecord) -> Any:
        if recorded.error is not None:
            raise decode_error(recorded.error)
        record = await self.store.get_workflow(workflow_id)
        workflow = self.registry.workflows.get(record.name) if record else None
        if workflow is None:
            return json.loads(recorded.output) if recorded.output else None
        return workflow.signature.decode_output(recorded.output)

    async def _wait_result(self, workflow_id: str, timeout: float | None) -> Any:
        deadline = None if timeout is None else self.clock.now_ms() + int(timeout * 1000)
        while True:
            run = self.runs.get(workflow_id)
            if run is not None:
                follower = Follower(run.outcome)
                try:
                    if deadline is None:  # (the common wait: no clock, no coroutine for it)
                        return await follower.future
                    done, value = await self.clock.wait_until(follower.future, deadline)
                except LeaseLostError:
                    if self.state.closing:
                        raise
                    continue  # another worker goes on with it: follow the stored status
                finally:
                    follower.stop()
                if not done:
                    raise self._timeout(workflow_id, timeout)
                return value
            with self.waiters.subscribe((NOTIFY_WORKFLOW, workflow_id)) as subscription:
                record = await self.reads.get(workflow_id)
                if record is None:
                    raise WorkflowNotFoundError(
                        f"no workflow with id {workflow_id!r}", workflow_id=workflow_id
                    )
                if record.status.is_terminal:
                    return self.outcome_of(record)
                if workflow_id in self.runs:
                    continue
                if deadline is not None and deadline <= self.clock.now_ms():
                    raise self._timeout(workflow_id, timeout)
                await subscription.wait(
                    deadline, clock=self.clock, poll_seconds=RESULT_POLL_SECONDS
                )

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
