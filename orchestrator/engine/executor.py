"""Runs one workflow execution to its final status: the workflow function, then SUCCESS in the
same statement as its last step; or, when it fails (an error, a cancel with rollback, a
deadline), the saga's rollback and COMPENSATED / COMPENSATION_FAILED (or ERROR / CANCELLED when
there is nothing to undo or the pivot has passed). A run recovered mid-rollback resumes it."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from orchestrator import context
from orchestrator.context import ExecutionContext
from orchestrator.engine.run import STOP_ERRORS, Delivery, WorkflowRun
from orchestrator.engine.saga import Saga, rollback_failure, wants_rollback
from orchestrator.errors import LeaseLostError, WorkflowCancelledError
from orchestrator.serialization import encode_error
from orchestrator.store.base import StepRecord, WorkflowRecord
from orchestrator.types import StepKind, WorkflowStatus

logger = logging.getLogger("orchestrator.executor")


def rollback_begun(record: WorkflowRecord, steps: list[StepRecord]) -> int | None:
    """The step number after which a rollback's compensations are recorded, if it has begun
    (in a history from before migration 0004: the number before the first compensation).
    None: no compensation has run or is about to."""
    if record.rollback_after_step is not None:
        return record.rollback_after_step
    compensations = [step.step_number for step in steps if step.kind is StepKind.COMPENSATION]
    return min(compensations) - 1 if compensations else None


class Executor:
    """Drives ``run`` to its end; rolls it back with ``saga``."""

    def __init__(self, run: WorkflowRun, saga: Saga) -> None:
        self.run = run
        self.saga = saga
        self.store = run.store

    async def execute(self) -> None:
        """Run the workflow function to its end and write its final status (rolling back a
        saga that failed, or resuming a rollback that a crash interrupted). (One coroutine
        for the whole run: every suspension of the workflow walks the chain of them.)"""
        run = self.run
        token = context.enter(ExecutionContext(run))
        try:
            if run.record.status is WorkflowStatus.COMPENSATING and await self._resume_rollback():
                return
            try:
                args, kwargs = run.workflow.signature.decode_input(run.record.input)
                result = await run.workflow.fn(*args, **kwargs)
                # Too large (or not serializable): the workflow fails with that error, like a
                # raise at its end (rolled back if a saga), never retried.
                output = run.workflow.signature.encode_output(
                    result, limit=run.max_payload_bytes, what=run.workflow.output_what
                )
            except STOP_ERRORS as exc:
                run.rerun_inflight = False  # the stop was honoured: nothing more starts
                await run.flush_quietly()
                reason = run.stop_reason or exc
                if wants_rollback(reason):
                    await self.roll_back(reason)
                else:
                    run.resolve(exc=reason)
                return
            except asyncio.CancelledError:
                # Shutdown (or a stop that interrupted a wait): leave the row for recovery.
                run.resolve(
                    exc=run.stop_reason
                    or LeaseLostError(
                        f"workflow {run.workflow_id} was interrupted by shutdown; it will be"
                        " recovered",
                        workflow_id=run.workflow_id,
                    )
                )
                if run.stop_reason is None:
                    raise
                return
            except Exception as exc:
                await self.roll_back(exc)
                return
            if run.stop_reason is not None and wants_rollback(run.stop_reason):
                await self.roll_back(run.stop_reason)  # cancelled with rollback as it returned
                return
            await self._succeed(result, output)
        finally:
            context.leave(token)

    async def _resume_rollback(self) -> bool:
        """A run recovered COMPENSATING: resume its rollback from its records if it had begun
        (True); else prepare the replay that leads to it (False)."""
        run = self.run
        asked = run.stop_error_for(WorkflowStatus.COMPENSATING, run.record.error)
        begun = rollback_begun(run.record, list(run.recorded.values()))
        if begun is not None:
            # The rollback had begun: resume it from its records. The forward part is not
            # replayed: what to undo is in the store, and the decision is taken.
            await self.roll_back(asked, begun=begun)
            return True
        # Asked for (cancel, deadline) but not begun: replay up to the first unrecorded call,
        # re-run the compensable step a crash may have cut short there, roll back.
        run.stop_reason = asked
        run.rerun_inflight = True
        return False

    async def _succeed(self, result: Any, output: str | None) -> None:
        run = self.run
        run.finishing = True
        if run.flushing:
            await run.flush_quietly()  # a parallel branch's durable call is writing it
        lease = run.lease
        if lease is not None and not lease.trusts(run.workflow_id, run.epoch, False):
            try:
                await lease.confirm(run.workflow_id, run.epoch)
            except LeaseLostError as lost:  # taken over while paused: its new owner finishes it
                run.resolve(exc=lost)
                return
        last, delivery = run.take_deferred()
        finished: bool | None
        if last is None:
            finished = await self.store.finish_workflow(
                run.workflow_id, WorkflowStatus.SUCCESS, output=output, epoch=run.epoch
            )
        else:
            finished = await self._finish_after(last, output, delivery)
            if finished is None:
                return  # resolved (a lost lease) or rolled back (cancelled with rollback)
        if finished:
            run.final_status = WorkflowStatus.SUCCESS
            run.resolve(value=result)
        else:
            await self._resolve_from_store()

    async def _finish_after(
        self, last: StepRecord, output: str | None, delivery: Delivery | None
    ) -> bool | None:
        """Write the deferred last step and SUCCESS in one statement (a recv's step for a
        message handed over in this process: that message's only write, then its send is
        told). When that is refused, do what its own checkpoint would have done; None: the run
        was settled another way."""
        run = self.run
        started = time.perf_counter()
        try:
            finished = await self.store.finish_after_step(
                last, output, recv_topic=None if delivery is None else delivery.topic
            )
        except BaseException as exc:
            if delivery is not None:
                delivery.fail(exc)
            raise
        run.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        if finished is None:  # refused: our retried commit, a takeover, the end, or (a recv)
            # an older message waiting. Our own write: the statement committed (the status
            # with it) before a lost connection hid the answer and it was sent again.
            recorded = await run.own_record(last) is not None
            if delivery is not None:
                if recorded:
                    delivery.settle(True)
                else:  # stored here, before the run goes on: a replay reads it in order
                    await self._store_refused(delivery)
            if not recorded:
                try:
                    await run.explain(last, out_of_order=delivery is not None)
                except STOP_ERRORS as stopped:
                    run.resolve(exc=stopped)
                    return None
            record = await self.store.get_workflow(run.workflow_id)
            if record is not None and record.status is WorkflowStatus.SUCCESS:
                return record.output == output
            if record is not None and record.status is WorkflowStatus.PENDING:
                return await self.store.finish_workflow(
                    run.workflow_id, WorkflowStatus.SUCCESS, output=output, epoch=run.epoch
                )
            finished = False  # recorded, but someone else changed the status meanwhile
        elif delivery is not None:
            delivery.settle(True)
        if not finished:  # recorded, but someone else changed the status meanwhile
            record = await self.store.get_workflow(run.workflow_id)
            if record is not None and record.status is WorkflowStatus.COMPENSATING:
                await self.roll_back(run.stop_error_for(record.status, record.error))
                return None
        return finished

    async def _store_refused(self, delivery: Delivery) -> None:
        """A handed message whose write with the final status was refused (an older message
        waited, a takeover): store it for a later recv (or the new owner) the plain way,
        then tell its send; a cancelled workflow's refusal is the send's error."""
        try:
            await self.store.send_message(
                self.run.workflow_id, delivery.topic, delivery.payload, None
            )
        except Exception as exc:
            delivery.fail(exc)
        except BaseException as exc:
            delivery.fail(exc)
            raise
        else:
            delivery.settle(True)

    async def roll_back(self, error: BaseException, *, begun: int | None = None) -> None:
        """The workflow failed (or was cancelled with rollback): run the compensations of its
        completed steps in reverse order, unless it has none or has passed its pivot.

        The compensations take the step numbers after the last forward one; that number is
        stored as the rollback begins. ``begun``: that number, when resuming a rollback that
        had begun (recovery, an operator's retry): the same plan is computed and the
        compensations that completed replay from their records."""
        run = self.run
        run.finishing = True
        await self.saga.wait_for_parallel_steps(run)
        await run.flush_quietly()  # the last step succeeded: it is compensated too
        if run.restart:  # that write sent the run back to its records (a recv out of order)
            run.resolve(exc=run.stop_reason)
            return
        plan = await self.saga.plan(run.workflow_id)
        cancelled = isinstance(error, WorkflowCancelledError)
        if begun is None and (not plan or run.pivot_step is not None):
            if run.pivot_step is not None and plan:
                logger.warning(
                    "workflow %s %s after its pivot (step %d): not compensated; resume it to "
                    "go forward",
                    run.workflow_id,
                    "was cancelled" if cancelled else "failed",
                    run.pivot_step,
                )
            status = WorkflowStatus.CANCELLED if cancelled else WorkflowStatus.ERROR
            await self._finish_failed(status, error, encode_error(error, run.max_payload_bytes))
            return
        logger.info("workflow %s rolls back %d steps: %r", run.workflow_id, len(plan), error)
        run.tracing.rolling_back(run.span, error, len(plan))
        original = encode_error(error, run.max_payload_bytes)
        moved = await self.store.transition_workflow(
            run.workflow_id,
            WorkflowStatus.COMPENSATING,
            from_statuses={WorkflowStatus.PENDING},
            error=original,
            epoch=run.epoch,
        )
        if moved is None:  # already COMPENSATING (a cancel, or a recovered rollback)
            stored = await self.store.get_workflow(run.workflow_id)
            if (
                stored is None
                or stored.status is not WorkflowStatus.COMPENSATING
                or stored.owner_epoch != run.epoch
            ):
                await self._resolve_from_store()
                return
            original = stored.error or original
        run.stop_reason = None
        run.compensating = True
        try:
            await self._begin_rollback(begun)
            failure = await self.saga.rollback(run, plan)
        except STOP_ERRORS as stopped:
            run.resolve(exc=stopped)  # fenced off: the workflow's owner now goes on with it
            return
        status = (
            WorkflowStatus.COMPENSATED if failure is None else WorkflowStatus.COMPENSATION_FAILED
        )
        await self._finish_failed(
            status, rollback_failure(run.workflow_id, status, original), original
        )

    async def _begin_rollback(self, begun: int | None) -> None:
        """Fix where the compensations' step numbers start, durably, before the first one
        runs: a recovery resumes the rollback there instead of replaying the forward part."""
        run = self.run
        if begun is None:
            await run.flush()
            begun = await self.store.begin_rollback(run.workflow_id, run.counter, run.epoch)
            if begun is None:  # fenced off: taken over, or ended, meanwhile
                run.stop(
                    LeaseLostError(
                        f"workflow {run.workflow_id} was taken over or ended as its rollback "
                        "began; this run stops",
                        workflow_id=run.workflow_id,
                    )
                )
                run.check_runnable()
                return
        run.counter = begun
        run.recorded = {n: step for n, step in run.recorded.items() if n > begun}

    async def _finish_failed(
        self, status: WorkflowStatus, error: BaseException, stored: str
    ) -> None:
        run = self.run
        if await self.store.finish_workflow(run.workflow_id, status, error=stored, epoch=run.epoch):
            run.final_status = status
            run.resolve(exc=error)
        else:
            await self._resolve_from_store()

    async def _resolve_from_store(self) -> None:
        """Someone else decided the final status (e.g. a cancel): report that one."""
        run = self.run
        record = await self.store.get_workflow(run.workflow_id)
        status = record.status if record else "deleted"
        run.resolve(
            exc=run.stop_reason
            or WorkflowCancelledError(
                f"workflow {run.workflow_id} ended as {status} while it ran",
                workflow_id=run.workflow_id,
                status=str(status),
            )
        )
