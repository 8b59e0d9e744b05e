"""Runs workflow invocations to their final status: the per-run state and the durable call
primitives (step numbers, replay, checkpoints, cancellation) every engine module builds on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from orchestrator import context
from orchestrator.clock import Clock
from orchestrator.context import ExecutionContext
from orchestrator.errors import (
    LeaseLostError,
    NonDeterministicWorkflowError,
    WorkflowCancelledError,
    WorkflowStateError,
)
from orchestrator.metrics import Metrics
from orchestrator.saga import Saga, rollback_failure, settle, wants_rollback
from orchestrator.serialization import encode_error, error_summary
from orchestrator.store.base import StepRecord, Store, WorkflowRecord
from orchestrator.tracing import Tracing
from orchestrator.types import StepKind, WorkflowStatus
from orchestrator.workflow import WorkflowFunction

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

logger = logging.getLogger("orchestrator.executor")

T = TypeVar("T")

# Checked before a step runs and before a checkpoint: raises LeaseLostError if this worker may
# not go on with the workflow in this epoch (see worker.Lease).
LeaseCheck = Callable[[str, int], Awaitable[None]]


def rollback_begun(record: WorkflowRecord, steps: list[StepRecord]) -> int | None:
    """The step number after which a rollback's compensations are recorded, if it has begun
    (in a history from before migration 0004: the number before the first compensation).
    None: no compensation has run or is about to."""
    if record.rollback_after_step is not None:
        return record.rollback_after_step
    compensations = [step.step_number for step in steps if step.kind is StepKind.COMPENSATION]
    return min(compensations) - 1 if compensations else None


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
        saga: Saga,
        tracing: Tracing,
        metrics: Metrics,
    ) -> None:
        self.record = record
        self.workflow_id = record.workflow_id
        self.epoch = record.owner_epoch  # the ownership epoch every write of this run carries
        self.workflow = workflow
        self.store = store
        self.clock = clock
        self.saga = saga
        self.tracing = tracing
        self.metrics = metrics
        # This execution's span (None: not traced) and the tracer its durable calls use.
        self.span: Span | None = None
        self.trace_parent: Context | None = None  # the span as a context, for its children
        self.tracer: Tracer | None = None
        self.final_status: WorkflowStatus | None = None  # the final status this run wrote
        self.recorded: dict[int, StepRecord] = {step.step_number: step for step in recorded}
        self.inflight: set[asyncio.Future[None]] = set()  # steps executing right now
        self.compensating = False
        # Recovering a rollback that was asked for (cancel with rollback, deadline) but had not
        # begun: the compensable step the crash interrupted may have had its effect, so it runs
        # again (same idempotency key) to be recorded, then compensated. See execute_step.
        self.rerun_inflight = False
        # Checked before each step: raises LeaseLostError if this worker may not go on.
        self.guard: LeaseCheck | None = None
        # Checked before each checkpoint: raises LeaseLostError if the workflow was taken over.
        self.confirm: LeaseCheck | None = None
        self.counter = 0
        # A succeeded step's checkpoint, left to the next durable call (written before it goes
        # on) or to the final status (one commit for both); see defer().
        self.deferred: StepRecord | None = None
        self._flushing: asyncio.Future[None] | None = None  # that write, while it is under way
        self.stop_reason: BaseException | None = None
        self.pivot_step: int | None = None
        self.finishing = False  # the function returned or raised: final status being written
        self.restart = False  # stopped to be relaunched from its records (see explain_refusal)
        self.outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waits: set[asyncio.Future[Any]] = set()

    # -- step numbers and replay ------------------------------------------------------------
    async def begin(self) -> int:
        """Start the next durable call: take its step number (before any await, so numbers
        follow the order of the calls: deterministic), then make sure a deferred checkpoint is
        committed before the call does anything."""
        self.counter += 1
        number = self.counter
        if self.deferred is not None or self._flushing is not None:
            await self.flush()
        return number

    @property
    def replaying(self) -> bool:
        """True while recorded calls remain ahead: the run re-executes what already happened,
        so a stop is honoured only once the replay reaches the first unrecorded call."""
        return bool(self.recorded)

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

    def stop_rolls_back(self) -> bool:
        """Whether this run was told to stop in order to roll back (a cancel with rollback, a
        deadline): a step already executing then finishes, so it can be compensated."""
        reason = self.stop_reason
        return isinstance(reason, WorkflowCancelledError) and bool(reason.detail.get("compensate"))

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """Await a durable wait (sleep, recv, a child's result) that ``stop`` can interrupt.
        During a replay the wait is part of history (later calls are recorded: it ended), so
        it runs to its end whatever the stop; a stop applies at the first unrecorded call."""
        if self.replaying:
            return await awaitable
        if self.stop_reason is not None:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()  # never started: close it rather than leak a warning
            raise self.stop_reason
        future = asyncio.ensure_future(awaitable)
        self._waits.add(future)
        try:
            return await future
        except asyncio.CancelledError:
            reason = self.stopped()  # set by stop() while we waited
            if reason is not None and future.cancelled():
                raise reason from None
            raise
        finally:
            self._waits.discard(future)

    def stopped(self) -> BaseException | None:
        """Why this run must stop, if it must."""
        return self.stop_reason

    # -- checkpoints ------------------------------------------------------------------------
    def may_defer(self) -> bool:
        """Whether a step that just succeeded may leave its checkpoint to what comes next:
        nothing else of this run is executing, being written or stopping it."""
        return (
            len(self.inflight) == 1  # only the calling step
            and self.deferred is None
            and self._flushing is None
            and self.stop_reason is None
            and not self.compensating
        )

    def defer(self, step: StepRecord) -> None:
        """Leave ``step``'s checkpoint to the next durable call, which writes it before it does
        anything (so a step never runs before the one it follows is recorded), or to the final
        status, written in the same statement: a workflow whose last durable call is a step
        commits once at its end instead of twice. A crash in between re-runs the step, as a
        crash between a step's effect and its checkpoint always did."""
        self.deferred = step

    async def flush(self) -> None:
        """Write the deferred checkpoint now; concurrent durable calls wait for the same write."""
        step = self.deferred
        if step is None:
            if self._flushing is not None:
                await asyncio.shield(self._flushing)
            return
        self.deferred = None
        flushing = self._flushing = asyncio.get_running_loop().create_future()
        try:
            await self.checkpoint(step)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                flushing.cancel()
            else:
                flushing.set_exception(exc)
                flushing.exception()  # retrieved: no concurrent call may be waiting
            raise
        else:
            flushing.set_result(None)
        finally:
            self._flushing = None

    async def flush_quietly(self) -> None:
        """Write a deferred checkpoint on the way out (a failure, a stop): the step's effect
        happened, so a rollback or a resume must see it. A stop it reveals is being handled."""
        with contextlib.suppress(WorkflowCancelledError, LeaseLostError):
            await self.flush()

    async def checkpoint(self, step: StepRecord) -> None:
        """Record a step, then stop here if the workflow was cancelled meanwhile. The store
        records it only in this run's epoch and while the workflow has not finished (fencing):
        a worker whose workflow was taken over, or ended, while it was paused records nothing
        and stops. A cancel with rollback (COMPENSATING) still takes the record: the step is
        then compensated."""
        if self.confirm is not None:
            await self.confirm(self.workflow_id, self.epoch)
        started = time.perf_counter()
        status = await self.store.record_step(step)
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        if status is None:
            await self.explain(step)
        elif status is not WorkflowStatus.PENDING and not (
            status is WorkflowStatus.COMPENSATING and self.compensating
        ):
            self.stop(self.stop_error_for(status))
            self.check_runnable()

    def stop_error_for(
        self, status: WorkflowStatus, error: str | None = None
    ) -> WorkflowCancelledError:
        """Why this run must stop, given the status (and stored error, which says who stopped
        it and why: a cancel, a deadline) that someone else gave the workflow."""
        reason = (error_summary(error) or ("", ""))[1]
        if status is WorkflowStatus.COMPENSATING:
            return WorkflowCancelledError(
                reason or f"workflow {self.workflow_id} was cancelled with rollback",
                workflow_id=self.workflow_id,
                compensate=True,
            )
        return WorkflowCancelledError(
            f"workflow {self.workflow_id} is {status}; it stops at this durable call",
            workflow_id=self.workflow_id,
            status=str(status),
        )

    async def refused(self, error: WorkflowStateError, step: StepRecord) -> StepRecord:
        """A store write carrying ``step`` raised ``error``: if the store refused the step,
        return the stored record when it is this run's own earlier write, else stop (see
        ``explain``). Any other WorkflowStateError is re-raised."""
        if not error.detail.get("refused"):
            raise error
        return await self.explain(step)

    async def explain(self, step: StepRecord) -> StepRecord:
        """The store refused to record ``step``: return the stored record if it is this run's
        own earlier write (committed before a lost connection hid the answer, then retried);
        otherwise stop this run and raise why. A finished workflow stops it as its status
        says; another epoch means another worker took it over (LeaseLostError, quietly: the
        new owner goes on)."""
        record = await self.store.get_workflow(self.workflow_id)
        if record is None:
            self.stop(
                WorkflowCancelledError(
                    f"workflow {self.workflow_id} was deleted", workflow_id=self.workflow_id
                )
            )
        elif record.owner_epoch != self.epoch:
            logger.info(
                "workflow %s is run by %s now (epoch %d, this run's %d): this run stops",
                self.workflow_id,
                record.executor_id,
                record.owner_epoch,
                self.epoch,
            )
            self.stop(
                LeaseLostError(
                    f"workflow {self.workflow_id} was taken over by another executor; this run "
                    f"(epoch {self.epoch}) stops without recording step {step.step_number}",
                    workflow_id=self.workflow_id,
                    step_number=step.step_number,
                )
            )
        elif record.status.is_terminal:
            self.stop(self.stop_error_for(record.status, record.error))
        else:
            for existing in await self.store.load_steps(self.workflow_id):
                if existing.step_number != step.step_number:
                    continue
                if (existing.name, existing.output, existing.error, existing.started_at) == (
                    step.name,
                    step.output,
                    step.error,
                    step.started_at,
                ):  # (started_at tells our write from another one of the same content)
                    return existing
                break
            # Taken in this very epoch by another write (a second run of this workflow in the
            # same epoch): stop, and run it again from what is recorded (the engine relaunches
            # it in this worker, which owns it).
            self.restart = True
            self.stop(
                LeaseLostError(
                    f"step {step.step_number} of workflow {self.workflow_id} was recorded by "
                    "another run; this one replays the workflow from its records",
                    workflow_id=self.workflow_id,
                    step_number=step.step_number,
                )
            )
        self.check_runnable()
        raise AssertionError("unreachable: a stopped run raises")

    # -- running ----------------------------------------------------------------------------
    async def execute(self) -> None:
        """Run the workflow function to its end and write its final status (rolling back a
        saga that failed, or resuming a rollback that a crash interrupted)."""
        if self.record.status is WorkflowStatus.COMPENSATING:
            asked = self.stop_error_for(WorkflowStatus.COMPENSATING, self.record.error)
            begun = rollback_begun(self.record, list(self.recorded.values()))
            if begun is not None:
                # The rollback had begun: resume it from its records. The forward part is
                # not replayed: what to undo is in the store, and the decision is taken.
                token = context.enter(ExecutionContext(self))
                try:
                    await self.roll_back(asked, begun=begun)
                finally:
                    context.leave(token)
                return
            # Asked for (cancel, deadline) but not begun: replay up to the first unrecorded
            # call, re-run the compensable step a crash may have interrupted there, roll back.
            self.stop_reason = asked
            self.rerun_inflight = True
        token = context.enter(ExecutionContext(self))
        try:
            args, kwargs = self.workflow.signature.decode_input(self.record.input)
            result = await self.workflow.fn(*args, **kwargs)
            output = self.workflow.signature.encode_output(result)
        except (WorkflowCancelledError, LeaseLostError) as exc:
            self.rerun_inflight = False  # the stop was honoured: nothing more starts
            await self.flush_quietly()
            reason = self.stop_reason or exc
            if wants_rollback(reason):
                await self.roll_back(reason)
            else:
                self.resolve(exc=reason)
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
            await self.roll_back(exc)
            return
        finally:
            context.leave(token)
        if self.stop_reason is not None and wants_rollback(self.stop_reason):
            await self.roll_back(self.stop_reason)  # cancelled with rollback as it returned
            return
        self.finishing = True
        if self._flushing is not None:
            await self.flush_quietly()  # a parallel branch's durable call is writing it
        if self.confirm is not None:
            try:
                await self.confirm(self.workflow_id, self.epoch)
            except LeaseLostError as lost:  # taken over while paused: its new owner finishes it
                self.resolve(exc=lost)
                return
        last, self.deferred = self.deferred, None
        finished: bool | None
        if last is None:
            finished = await self.store.finish_workflow(
                self.workflow_id, WorkflowStatus.SUCCESS, output=output, epoch=self.epoch
            )
        else:
            finished = await self._finish_after(last, output)
            if finished is None:
                return  # resolved (a lost lease) or rolled back (cancelled with rollback)
        if finished:
            self.final_status = WorkflowStatus.SUCCESS
            self.resolve(value=result)
        else:
            await self._resolve_from_store()

    async def _finish_after(self, last: StepRecord, output: str | None) -> bool | None:
        """Write the deferred last step and SUCCESS in one statement. When that is refused,
        do what its own checkpoint would have done; None: the run was settled another way."""
        started = time.perf_counter()
        finished = await self.store.finish_after_step(last, output)
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        if finished is None:  # refused: our retried commit, a takeover, or the end
            try:
                await self.explain(last)
            except (LeaseLostError, WorkflowCancelledError) as stopped:
                self.resolve(exc=stopped)
                return None
            # Our own write: the statement committed (the status with it) before a lost
            # connection hid the answer and it was sent again.
            record = await self.store.get_workflow(self.workflow_id)
            if record is not None and record.status is WorkflowStatus.SUCCESS:
                return record.output == output
            return await self.store.finish_workflow(
                self.workflow_id, WorkflowStatus.SUCCESS, output=output, epoch=self.epoch
            )
        if not finished:  # recorded, but someone else changed the status meanwhile
            record = await self.store.get_workflow(self.workflow_id)
            if record is not None and record.status is WorkflowStatus.COMPENSATING:
                await self.roll_back(self.stop_error_for(record.status, record.error))
                return None
        return finished

    async def roll_back(self, error: BaseException, *, begun: int | None = None) -> None:
        """The workflow failed (or was cancelled with rollback): run the compensations of its
        completed steps in reverse order, unless it has none or has passed its pivot.

        The compensations take the step numbers after the last forward one; that number is
        stored as the rollback begins. ``begun``: that number, when resuming a rollback that
        had begun (recovery, an operator's retry): the same plan is computed and the
        compensations that completed replay from their records."""
        self.finishing = True
        await settle(self)
        await self.flush_quietly()  # the last step succeeded: it is compensated too
        plan = await self.saga.plan(self.workflow_id)
        cancelled = isinstance(error, WorkflowCancelledError)
        if begun is None and (not plan or self.pivot_step is not None):
            if self.pivot_step is not None and plan:
                logger.warning(
                    "workflow %s %s after its pivot (step %d): not compensated; resume it to "
                    "go forward",
                    self.workflow_id,
                    "was cancelled" if cancelled else "failed",
                    self.pivot_step,
                )
            status = WorkflowStatus.CANCELLED if cancelled else WorkflowStatus.ERROR
            await self._finish_failed(status, error, encode_error(error))
            return
        logger.info("workflow %s rolls back %d steps: %r", self.workflow_id, len(plan), error)
        self.tracing.rolling_back(self.span, error, len(plan))
        original = encode_error(error)
        moved = await self.store.transition_workflow(
            self.workflow_id,
            WorkflowStatus.COMPENSATING,
            from_statuses={WorkflowStatus.PENDING},
            error=original,
            epoch=self.epoch,
        )
        if moved is None:  # already COMPENSATING (a cancel, or a recovered rollback)
            stored = await self.store.get_workflow(self.workflow_id)
            if (
                stored is None
                or stored.status is not WorkflowStatus.COMPENSATING
                or stored.owner_epoch != self.epoch
            ):
                await self._resolve_from_store()
                return
            original = stored.error or original
        self.stop_reason = None
        self.compensating = True
        try:
            await self._begin_rollback(begun)
            failure = await self.saga.rollback(self, plan)
        except (WorkflowCancelledError, LeaseLostError) as stopped:
            self.resolve(exc=stopped)  # fenced off: the workflow's owner now goes on with it
            return
        status = (
            WorkflowStatus.COMPENSATED if failure is None else WorkflowStatus.COMPENSATION_FAILED
        )
        await self._finish_failed(
            status, rollback_failure(self.workflow_id, status, original), original
        )

    async def _begin_rollback(self, begun: int | None) -> None:
        """Fix where the compensations' step numbers start, durably, before the first one
        runs: a recovery resumes the rollback there instead of replaying the forward part."""
        if begun is None:
            await self.flush()
            begun = await self.store.begin_rollback(self.workflow_id, self.counter, self.epoch)
            if begun is None:  # fenced off: taken over, or ended, meanwhile
                self.stop(
                    LeaseLostError(
                        f"workflow {self.workflow_id} was taken over or ended as its rollback "
                        "began; this run stops",
                        workflow_id=self.workflow_id,
                    )
                )
                self.check_runnable()
                return
        self.counter = begun
        self.recorded = {n: step for n, step in self.recorded.items() if n > begun}

    async def _finish_failed(
        self, status: WorkflowStatus, error: BaseException, stored: str
    ) -> None:
        if await self.store.finish_workflow(
            self.workflow_id, status, error=stored, epoch=self.epoch
        ):
            self.final_status = status
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
