"""@step: replay-or-execute with retries, the name check, and the checkpoint."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from orchestrator import context
from orchestrator.context import ExecutionContext, StepContext
from orchestrator.errors import (
    LeaseLostError,
    OrchestratorError,
    SerializationError,
    WorkflowCancelledError,
)
from orchestrator.retry import DEFAULT_STEP_RETRY, Retry, attempts_of
from orchestrator.serialization import Signature, decode_error, encode_error
from orchestrator.store.base import StepRecord
from orchestrator.types import StepKind

if TYPE_CHECKING:
    from orchestrator.executor import WorkflowRun

P = ParamSpec("P")
R = TypeVar("R")

# Raised to unwind a workflow that must stop; never recorded as a step's outcome.
_STOP_ERRORS = (WorkflowCancelledError, LeaseLostError)


class StepFunction(Generic[P, R]):
    """A registered step. Inside a workflow a call is durable; outside, a plain call."""

    def __init__(
        self,
        fn: Callable[P, Awaitable[R]] | Callable[P, R],
        *,
        name: str,
        retry: Retry = DEFAULT_STEP_RETRY,
        pivot: bool = False,
        register_compensation: Callable[[StepFunction[Any, Any]], None] | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.retry = retry
        self.pivot = pivot
        self.signature = Signature(fn)
        self.is_async = inspect.iscoroutinefunction(fn)
        self.compensation_step: StepFunction[Any, Any] | None = None
        self._register_compensation = register_compensation
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        return call_step(self, args, kwargs)

    def compensation(
        self, fn: Callable[..., Any] | None = None, *, retry: Retry | None = None
    ) -> Any:
        """Declare the function that undoes this step; it receives the step's arguments
        followed by the step's result. Usable as ``@step.compensation`` or with a retry."""
        from orchestrator.retry import DEFAULT_COMPENSATION_RETRY

        def attach(function: Callable[..., Any]) -> StepFunction[Any, Any]:
            comp = (
                function
                if isinstance(function, StepFunction)
                else StepFunction(
                    function,
                    name=f"{self.name}.compensation",
                    retry=retry or DEFAULT_COMPENSATION_RETRY,
                )
            )
            self.compensation_step = comp
            if self._register_compensation is not None:
                self._register_compensation(comp)
            return comp

        return attach(fn) if fn is not None else attach

    async def invoke(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        """Run the function once: awaited if async, in a worker thread if sync."""
        if self.is_async:
            result: R = await self.fn(*args, **kwargs)  # type: ignore[misc]
            return result
        sync_result: R = await asyncio.to_thread(self.fn, *args, **kwargs)  # type: ignore[arg-type]
        return sync_result

    def __repr__(self) -> str:
        return f"<step {self.name}>"


async def call_step(
    step: StepFunction[Any, R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    name: str | None = None,
    retry: Retry | None = None,
) -> R:
    """Run ``step``: durably inside a workflow, plainly outside one or inside another step."""
    current = context.current()
    if current is None or current.step is not None:
        return await step.invoke(args, kwargs)
    return await execute_step(current.run, step, args, kwargs, name=name, retry=retry)


async def execute_step(
    run: WorkflowRun,
    step: StepFunction[Any, R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    name: str | None = None,
    retry: Retry | None = None,
    kind: StepKind = StepKind.STEP,
    compensates_step: int | None = None,
) -> R:
    """Return the recorded outcome of the next step number, or execute and record it."""
    step_name = name or step.name
    number = await run.begin()
    recorded = run.replayed(number, step_name)
    if recorded is not None:
        if recorded.error is not None:
            raise decode_error(recorded.error)
        if kind is StepKind.COMPENSATION:
            return None  # type: ignore[return-value]  # a rollback ignores its output
        if step.pivot:
            run.on_pivot(number)
        value: R = step.signature.decode_output(recorded.output)
        return value

    if run.stop_reason is not None and not _reruns_inflight(run, step, kind):
        raise run.stop_reason
    if run.guard is not None:
        await run.guard(run.workflow_id, run.epoch)
    policy = retry or step.retry
    started_at = run.clock.now_ms()
    started = time.perf_counter()

    async def attempt(attempt_number: int) -> R:
        # A cancel with rollback (or a deadline) lets the step finish, retries included: its
        # effect may already have happened (an attempt that failed after applying it), so it
        # must be recorded to be compensated. Any other stop ends it between attempts.
        if run.stop_reason is not None and not run.stop_rolls_back():
            raise run.stop_reason
        token = context.enter(
            ExecutionContext(run, StepContext(run.workflow_id, number, step_name, attempt_number))
        )
        try:
            with run.tracing.durable(
                run,
                kind,
                step_name,
                number,
                attempt=attempt_number,
                compensates=compensates_step,
            ):
                return await step.invoke(args, kwargs)
        finally:
            context.leave(token)

    output: str | None = None
    error: BaseException | None = None
    settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    run.inflight.add(settled)  # a rollback waits for parallel branches to be recorded
    try:
        try:
            result, attempts = await policy.run(attempt)
        except _STOP_ERRORS:
            raise
        except Exception as exc:
            error, attempts = exc, attempts_of(exc)
        else:
            try:
                output = step.signature.encode_output(result)
            except SerializationError as exc:
                error = exc
        compensation = compensation_input = None
        if error is None and step.compensation_step is not None:
            compensation = step.compensation_step.name
            compensation_input = _encode_compensation_input(step, args, kwargs, output)
        record = StepRecord(
            workflow_id=run.workflow_id,
            step_number=number,
            name=step_name,
            kind=kind,
            output=output,
            error=None if error is None else encode_error(error),
            attempts=attempts,
            compensation=compensation,
            compensation_input=compensation_input,
            compensates_step=compensates_step,
            started_at=started_at,
            finished_at=run.clock.now_ms(),  # the same clock as started_at
            epoch=run.epoch,
        )
        if error is None and step.pivot:
            run.on_pivot(number)  # before the checkpoint, which may stop the run (a cancel)
        if error is None and kind is StepKind.STEP and run.may_defer():
            run.defer(record)  # written before the next durable call, or with the final status
        else:
            await run.checkpoint(record)
    finally:
        run.inflight.discard(settled)
        settled.set_result(None)
    run.metrics.step_finished(
        step_name, kind.value, time.perf_counter() - started, attempts, error is not None
    )
    if error is not None:
        raise error
    return result


def _reruns_inflight(run: WorkflowRun, step: StepFunction[Any, Any], kind: StepKind) -> bool:
    """Whether a stopped run still executes this step: when recovering a rollback that was
    asked for but had not begun, the first unrecorded call may be the step the crash cut short
    after its effect. A compensable step then runs again (same idempotency key: its effect
    applies once) so that it is recorded and compensated; a pivot runs again so that a pivot
    that had happened is never undone. Steps run at least once."""
    return (
        run.rerun_inflight
        and run.stop_rolls_back()
        and kind is StepKind.STEP
        and (step.compensation_step is not None or step.pivot)
    )


def _encode_compensation_input(
    step: StepFunction[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], output: str | None
) -> str:
    """The step's arguments and its (already encoded) result, for its compensation."""
    try:
        encoded_input = json.loads(step.signature.encode_input(args, kwargs))
    except OrchestratorError:
        encoded_input = {"args": [], "kwargs": {}}
    encoded_input["result"] = None if output is None else json.loads(output)
    return json.dumps(encoded_input, separators=(",", ":"))
