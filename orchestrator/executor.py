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
)
from orchestrator.metrics import Metrics
from orchestrator.saga import Saga, rollback_failure, settle, wants_rollback
from orchestrator.serialization import encode_error, error_summary
from orchestrator.store.base import StepRecord, Store, WorkflowRecord
from orchestrator.tracing import Tracing
from orchestrator.types import WorkflowStatus
from orchestrator.workflow import WorkflowFunction

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

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
        saga: Saga,
        tracing: Tracing,
        metrics: Metrics,
    ) -> None:
        self.record = record
        self.workflow_id = record.workflow_id
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
        # Checked before each step: raises LeaseLostError if this worker may not go on.
        self.guard: Callable[[str], Awaitable[None]] | None = None
        # Checked before each checkpoint: raises LeaseLostError if the workflow was taken over.
        self.confirm: Callable[[str], Awaitable[None]] | None = None
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

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """Await a durable wait (sleep, recv, a child's result) that ``stop`` can interrupt."""
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
        """Record a step. The row is written even if the workflow was cancelled meanwhile (the
        effect happened: a resume must not repeat it); then the workflow stops here. Not by
        a worker whose workflow was taken over while it was paused: the new owner runs it."""
        if self.confirm is not None:
            await self.confirm(self.workflow_id)
        started = time.perf_counter()
        status = await self.store.record_step(step)
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        if status is None:
            await self.explain_refusal(step)
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

    async def explain_refusal(self, step: StepRecord) -> None:
        """The step number was taken: accept our own earlier commit, or stop (lease lost)."""
        for existing in await self.store.load_steps(self.workflow_id):
            if existing.step_number == step.step_number:
                if (existing.name, existing.output, existing.error, existing.started_at) == (
                    step.name,
                    step.output,
                    step.error,
                    step.started_at,
                ):  # (started_at tells our write from another executor's identical one)
                    return  # our own write, committed before a connection loss hid the answer
                break
        if await self._still_ours():
            # A worker that lost the workflow while paused wrote it as it woke. This one still
            # owns it: stop, and run it again from what is recorded (the engine relaunches it).
            self.restart = True
            reason = (
                f"step {step.step_number} of workflow {self.workflow_id} was recorded by a "
                "worker that had lost it; this one replays the workflow from its records"
            )
        else:
            reason = (
                f"step {step.step_number} of workflow {self.workflow_id} was recorded by another "
                "executor; this one stops so the workflow never runs twice in parallel"
            )
        self.stop(
            LeaseLostError(reason, workflow_id=self.workflow_id, step_number=step.step_number)
        )
        self.check_runnable()

    async def _still_ours(self) -> bool:
        """Whether this worker still owns the workflow (the lease says who runs it)."""
        owner = self.record.executor_id
        if self.confirm is None or owner is None:
            return False
        return self.workflow_id in await self.store.owned_workflows(owner, [self.workflow_id])

    # -- running ----------------------------------------------------------------------------
    async def execute(self) -> None:
        """Run the workflow function to its end and write its final status (rolling back a
        saga that failed, or resuming a rollback that a crash interrupted)."""
        if self.record.status is WorkflowStatus.COMPENSATING:
            # Recovering a rollback: replay up to where the workflow stopped, then roll back.
            self.stop_reason = self.stop_error_for(WorkflowStatus.COMPENSATING, self.record.error)
        token = context.enter(ExecutionContext(self))
        try:
            args, kwargs = self.workflow.signature.decode_input(self.record.input)
            result = await self.workflow.fn(*args, **kwargs)
            output = self.workflow.signature.encode_output(result)
        except (WorkflowCancelledError, LeaseLostError) as exc:
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
                await self.confirm(self.workflow_id)
            except LeaseLostError as lost:  # taken over while paused: its new owner finishes it
                self.resolve(exc=lost)
                return
        last, self.deferred = self.deferred, None
        finished: bool | None
        if last is None:
            finished = await self.store.finish_workflow(
                self.workflow_id, WorkflowStatus.SUCCESS, output=output
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
        if finished is None:  # the step number was taken: our retried commit, or a takeover
            try:
                await self.explain_refusal(last)
            except LeaseLostError as lost:
                self.resolve(exc=lost)
                return None
            # Our own write: the statement committed (the status with it) before a lost
            # connection hid the answer and it was sent again.
            record = await self.store.get_workflow(self.workflow_id)
            if record is not None and record.status is WorkflowStatus.SUCCESS:
                return record.output == output
            return await self.store.finish_workflow(
                self.workflow_id, WorkflowStatus.SUCCESS, output=output
            )
        if not finished:  # recorded, but someone else changed the status meanwhile
            record = await self.store.get_workflow(self.workflow_id)
            if record is not None and record.status is WorkflowStatus.COMPENSATING:
                await self.roll_back(self.stop_error_for(record.status, record.error))
                return None
        return finished

    async def roll_back(self, error: BaseException) -> None:
        """The workflow failed (or was cancelled with rollback): run the compensations of its
        completed steps in reverse order, unless it has none or has passed its pivot."""
        self.finishing = True
        await settle(self)
        await self.flush_quietly()  # the last step succeeded: it is compensated too
        plan = await self.saga.plan(self.workflow_id)
        cancelled = isinstance(error, WorkflowCancelledError)
        if not plan or self.pivot_step is not None:
            if self.pivot_step is not None and plan:
                logger.warning(
                    "workflow %s failed after its pivot (step %d): not compensated; resume it to "
                    "retry forward",
                    self.workflow_id,
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
        )
        if moved is None:  # already COMPENSATING (a cancel, or a recovered rollback)
            stored = await self.store.get_workflow(self.workflow_id)
            if stored is None or stored.status is not WorkflowStatus.COMPENSATING:
                await self._resolve_from_store()
                return
            original = stored.error or original
        self.stop_reason = None
        self.compensating = True
        failure = await self.saga.rollback(self, plan)
        status = (
            WorkflowStatus.COMPENSATED if failure is None else WorkflowStatus.COMPENSATION_FAILED
        )
        await self._finish_failed(
            status, rollback_failure(self.workflow_id, status, original), original
        )

    async def _finish_failed(
        self, status: WorkflowStatus, error: BaseException, stored: str
    ) -> None:
        if await self.store.finish_workflow(self.workflow_id, status, error=stored):
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
