"""@step: the user's functions as durable calls, with retries, a per-attempt timeout, the step's
context (idempotency key, attempt), and the record a compensation needs."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, TypeVar

from orchestrator import context
from orchestrator.context import ExecutionContext, StepContext
from orchestrator.engine.run import Attempt, Call, WorkflowRun, durable_run
from orchestrator.errors import InvalidArgumentError, OrchestratorError, SerializationError
from orchestrator.retry import DEFAULT_COMPENSATION_RETRY, DEFAULT_STEP_RETRY, Retry
from orchestrator.serialization import Signature, decode_error, encode_error, too_large
from orchestrator.store.base import StepRecord
from orchestrator.types import StepKind

P = ParamSpec("P")
R = TypeVar("R")


class StepFunction(Generic[P, R]):
    """A registered step. Inside a workflow a call is durable; outside, a plain call.

    ``timeout`` (seconds) bounds each attempt: an async step is cancelled and the attempt
    fails with TimeoutError (retried by its policy). A sync step runs in a thread, which cannot
    be interrupted: the attempt fails at the timeout, the thread finishes on its own.
    """

    def __init__(
        self,
        fn: Callable[P, Awaitable[R]] | Callable[P, R],
        *,
        name: str,
        retry: Retry = DEFAULT_STEP_RETRY,
        pivot: bool = False,
        timeout: float | None = None,
        register_compensation: Callable[[StepFunction[Any, Any]], None] | None = None,
    ) -> None:
        if timeout is not None and timeout <= 0:
            raise InvalidArgumentError(f"step {name!r}: timeout must be > 0 seconds")
        self.fn = fn
        self.name = name
        self.retry = retry
        self.pivot = pivot
        self.timeout = timeout
        self.signature = Signature(fn)
        self.output_what = f"the output of step {name!r}"  # (what a size error names)
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


def call_step(
    step: StepFunction[Any, R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    name: str | None = None,
    retry: Retry | None = None,
) -> Awaitable[R]:
    """Run ``step``: durably inside a workflow, plainly outside one or inside another step.
    (Returns the awaitable rather than awaiting it: one coroutine less between a workflow and
    its step, which every suspension and resumption of the step would walk through.)"""
    run = durable_run()
    if run is None:
        return step.invoke(args, kwargs)
    return run.call(step_call(run, step, args, kwargs, name=name, retry=retry))


def step_call(
    run: WorkflowRun,
    step: StepFunction[Any, R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    name: str | None = None,
    retry: Retry | None = None,
    kind: StepKind = StepKind.STEP,
    compensates_step: int | None = None,
) -> Call[R]:
    """The durable call of ``step(*args, **kwargs)`` in ``run``: its attempts run the function
    in the step's context; its record holds the output or the error, and (for a forward step
    that declared one) what its compensation will need."""
    return _StepCall(
        run,
        step,
        args,
        kwargs,
        name=name or step.name,
        kind=kind,
        retry=retry or step.retry,
        compensates_step=compensates_step,
    )


class _StepCall(Call[R]):
    """A step's durable call: one object that is the call's description and its work
    (``perform``/``replay``/``finish`` are methods: no closure or bound method is kept per
    call; a step's call lives across its awaits, and with hundreds of workflows in flight
    every object it holds is work for the garbage collector)."""

    __slots__ = ("args", "digest", "kwargs", "run", "step")

    # The same for every step call (class attributes: nothing to set per call).
    traced = True
    guarded = True
    settles = True
    detail = None
    attributes = None

    def __init__(
        self,
        run: WorkflowRun,
        step: StepFunction[Any, R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        name: str,
        kind: StepKind,
        retry: Retry,
        compensates_step: int | None,
    ) -> None:
        self.run = run
        self.step = step
        self.args = args
        self.kwargs = kwargs
        self.name = name
        self.kind = kind
        self.retry = retry
        self.timeout = step.timeout
        self.compensates = compensates_step
        # When recovering a rollback that was asked for but had not begun, the first
        # unrecorded call may be the step the crash cut short after its effect. A compensable
        # step then runs again (same idempotency key: its effect applies once) so that it is
        # recorded and compensated; a pivot runs again so that a pivot that had happened is
        # never undone. Steps run at least once.
        self.reruns = kind is StepKind.STEP and (step.compensation_step is not None or step.pivot)
        self.digest = (
            arguments_hash(step, args, kwargs)
            if run.check_arguments and kind is StepKind.STEP
            else None
        )

    async def perform(self, attempt: Attempt) -> R:
        run, step = self.run, self.step
        token = context.enter(
            ExecutionContext(
                run, StepContext(run.workflow_id, attempt.number, self.name, attempt.attempt)
            )
        )
        try:
            if step.is_async:  # (awaited here: no invoke() coroutine in between)
                result: R = await step.fn(*self.args, **self.kwargs)  # type: ignore[misc]
                return result
            return await step.invoke(self.args, self.kwargs)
        finally:
            context.leave(token)

    def replay(self, recorded: StepRecord) -> R:
        run, step = self.run, self.step
        if recorded.args_hash is not None and self.kind is StepKind.STEP:
            called_with = self.digest or arguments_hash(step, self.args, self.kwargs)
            if called_with != recorded.args_hash:
                raise run.diverge(
                    recorded.step_number,
                    recorded.name,
                    self.name,
                    f"step {recorded.step_number} ({self.name!r}) was recorded with other "
                    "arguments than the code now passes",
                    arguments=True,
                )
        if recorded.error is not None:
            raise decode_error(recorded.error)
        if self.kind is StepKind.COMPENSATION:
            return None  # type: ignore[return-value]  # a rollback ignores its output
        if step.pivot:
            run.on_pivot(recorded.step_number)
        value: R = step.signature.decode_output(recorded.output)
        return value

    async def finish(
        self, attempt: Attempt, result: R | None, error: BaseException | None, attempts: int
    ) -> R:
        run, step = self.run, self.step
        output: str | None = None
        if error is None:
            try:
                output = step.signature.encode_output(
                    result, limit=run.max_payload_bytes, what=step.output_what
                )
            except SerializationError as exc:  # a non-retryable failure of the step
                error = exc
        compensation = compensation_input = None
        if error is None and step.compensation_step is not None:
            compensation = step.compensation_step.name
            compensation_input = _compensation_input(step, self.args, self.kwargs, output)
            if len(compensation_input) > run.max_payload_bytes:  # (ASCII: len() is bytes)
                error = too_large(
                    f"the compensation input of step {self.name!r} (its arguments and output)",
                    len(compensation_input),
                    run.max_payload_bytes,
                )
                output = compensation = compensation_input = None
        record = run.step_record(
            attempt.number,
            self.name,
            self.kind,
            output=output,
            error=None if error is None else encode_error(error, run.max_payload_bytes),
            attempts=attempts,
            compensation=compensation,
            compensation_input=compensation_input,
            compensates_step=self.compensates,
            args_hash=self.digest,
            started_at=attempt.started_at,
            finished_at=run.clock.now_ms(),  # the same clock as started_at
        )
        if error is None and step.pivot:
            run.on_pivot(attempt.number)  # before the checkpoint, which may stop the run
        if not (error is None and self.kind is StepKind.STEP and run.defer(record)):
            await run.checkpoint(record)  # (deferred: no coroutine made for the record)
        if error is not None:
            raise error
        return result  # type: ignore[return-value]


def _compensation_input(
    step: StepFunction[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], output: str | None
) -> str:
    """The step's arguments and its (already encoded) result, for its compensation."""
    try:
        encoded_input = json.loads(step.signature.encode_input(args, kwargs))
    except OrchestratorError:
        encoded_input = {"args": [], "kwargs": {}}
    encoded_input["result"] = None if output is None else json.loads(output)
    return json.dumps(encoded_input, separators=(",", ":"))


def arguments_hash(
    step: StepFunction[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str | None:
    """A short hash of the step's encoded arguments (what check_step_arguments records and
    compares); None for arguments that cannot be encoded (nothing to compare)."""
    try:
        encoded = step.signature.encode_input(args, kwargs)
    except OrchestratorError:
        return None
    return hashlib.sha256(encoded.encode()).hexdigest()[:16]
