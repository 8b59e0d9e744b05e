"""One execution of one workflow (its state) and ``WorkflowRun.call``, the durable-call primitive
that every durable call goes through: steps, compensations, inline steps, child starts, result
waits, send, recv, events, streams, sleep, now, random, registered compensations.

A durable call takes the next step number. If an earlier execution recorded that number, the
call returns what was recorded (after checking the recorded name: a different name is
non-determinism). Otherwise it checks the run may go on (a cancel, a lost lease, a shutdown stop
it here), confirms the lease for a step, runs the call's work in its span (with its retries,
per-attempt timeout and backoff on the clock), and records it: a checkpoint, deferred to the
next durable call when nothing else is in flight, or a store write that carries the record with
its effect. A record the store refuses (fencing: another epoch owns the workflow, or it has
finished) stops the run quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from orchestrator import context
from orchestrator.clock import Clock
from orchestrator.errors import (
    LeaseLostError,
    NonDeterministicWorkflowError,
    NotInWorkflowError,
    StoreUnavailableError,
    WorkflowCancelledError,
    WorkflowFinishedError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from orchestrator.metrics import Metrics
from orchestrator.retry import Retry, retry_after
from orchestrator.serialization import DEFAULT_MAX_PAYLOAD_BYTES, error_summary
from orchestrator.store.base import StepRecord, Store, WorkflowRecord
from orchestrator.tracing import Tracing
from orchestrator.types import StepKind, WorkflowStatus

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

    from orchestrator.engine.workflows import WorkflowFunction

logger = logging.getLogger("orchestrator.executor")

T = TypeVar("T")

# Raised to unwind a run that must stop; never a call's own outcome, never retried.
STOP_ERRORS = (WorkflowCancelledError, LeaseLostError)
USER_CODE = (StepKind.STEP, StepKind.COMPENSATION)  # calls that run the user's functions
_NO_SPAN = contextlib.nullcontext()  # (stateless: shared by every untraced attempt)


class ReplayEnd(BaseException):
    """Raised by a dry run's first call that has no record (see engine/replay.py)."""

    def __init__(self, number: int, name: str) -> None:
        super().__init__(number, name)
        self.number = number
        self.name = name


class Delivery:
    """A message a send from outside any workflow handed to a recv parked in this process
    (engine/messaging.py), never stored on its own: the recv returns it at once and leaves its
    checkpoint (the recv step, the message its output) to the run's next write, as a step
    that succeeded does: the next durable call writes it first (Store.deliver_message), or
    the final status takes it in the same statement (Store.finish_after_step's recv_topic).

    ``acked`` tells the waiting send how that ended: True, the message is durable (consumed
    with the recv's checkpoint, or, the write refused because an older message waited or
    the workflow was taken over, stored for a recv to take before the run went on); False,
    nothing was written (the run stopped first, or lost its lease before writing), and the
    send stores it the plain way; an exception, the write's own or the refusal's (the
    workflow ended: WorkflowFinishedError; an outcome unknown, as for any send whose commit
    answer was lost)."""

    __slots__ = ("acked", "payload", "topic")

    def __init__(self, topic: str, payload: str) -> None:
        self.topic = topic
        self.payload = payload
        self.acked: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def settle(self, durable: bool) -> None:
        if not self.acked.done():  # (a send cancelled meanwhile cancelled it)
            self.acked.set_result(durable)

    def fail(self, error: BaseException) -> None:
        """The write was made and failed (or was interrupted): its outcome is the send's."""
        if self.acked.done():
            return
        if isinstance(error, asyncio.CancelledError):  # the recipient's run was cancelled
            error = StoreUnavailableError(  # (not the send: it must not look cancelled)
                f"the recipient's checkpoint of a message on topic {self.topic!r} was"
                " interrupted (its run stopped): whether the message was received is unknown",
                topic=self.topic,
            )
        self.acked.set_exception(error)


@dataclass(slots=True)  # (not frozen: a frozen dataclass's __init__ is several times slower)
class Attempt:
    """Where a call's work stands: its step number, which attempt, when the call began."""

    number: int
    attempt: int
    started_at: int  # clock ms


class Call(Generic[T]):
    """One durable call, as the module that makes it describes it to ``WorkflowRun.call``.

    Attributes:
        name: the name recorded with it (a replay checks it).
        kind: what it is (StepKind).
        perform: its work, once per attempt; it records the call itself (``run.record`` or
            ``run.write``) unless ``finish`` does.
        replay: what the call returns when an earlier execution recorded it.
        finish: for steps: records the outcome of the attempts (a value, or the last error)
            and returns the call's answer. None: ``perform`` recorded it.
        retry: the retry policy of ``perform`` (None: one attempt).
        timeout: seconds one attempt may take (on the clock), then it fails with TimeoutError.
        traced: a span per attempt (steps, compensations, send, recv, set_event, sleep).
        detail, attributes: the span's title suffix and extra attributes.
        compensates: the forward step a compensation undoes (a span attribute).
        guarded: confirm the lease before the work (a step's effect should not start on a
            worker that lost the workflow).
        reruns: a step the crash of a run asked to roll back may have cut short (see
            ``WorkflowRun.rerun_inflight``): it runs though the run is stopping.
        settles: a rollback waits for this call to be recorded (steps: they are compensated).

    A call is built with its three functions; a kind of call made very often (a step) may
    instead subclass it with ``perform``/``replay``/``finish`` as methods, so that one object
    is the whole call (no closure or bound method kept per call while it is in flight).
    """

    __slots__ = _CALL_FIELDS = (
        "name",
        "kind",
        "perform",
        "replay",
        "finish",
        "retry",
        "timeout",
        "traced",
        "detail",
        "attributes",
        "compensates",
        "guarded",
        "reruns",
        "settles",
    )

    perform: Callable[[Attempt], Awaitable[T]]
    replay: Callable[[StepRecord], T | Awaitable[T]]
    finish: Callable[[Attempt, T | None, BaseException | None, int], Awaitable[T]] | None

    def __init__(
        self,
        name: str,
        kind: StepKind,
        *,
        perform: Callable[[Attempt], Awaitable[T]],
        replay: Callable[[StepRecord], T | Awaitable[T]],
        finish: Callable[[Attempt, T | None, BaseException | None, int], Awaitable[T]]
        | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        traced: bool = False,
        detail: str | None = None,
        attributes: dict[str, Any] | None = None,
        compensates: int | None = None,
        guarded: bool = False,
        reruns: bool = False,
        settles: bool = False,
    ) -> None:
        self.name = name
        self.kind = kind
        self.perform = perform
        self.replay = replay
        self.finish = finish
        self.retry = retry
        self.timeout = timeout
        self.traced = traced
        self.detail = detail
        self.attributes = attributes
        self.compensates = compensates
        self.guarded = guarded
        self.reruns = reruns
        self.settles = settles

    def replaced(self, **changes: Any) -> Call[T]:
        """A plain copy of this call (whatever its class) with ``changes`` (a test's forced
        failure replaces ``perform``)."""
        fields = {field: getattr(self, field) for field in Call._CALL_FIELDS}
        fields.update(changes)
        return Call(**fields)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind.value} {self.name!r}>"


class LeaseChecks(Protocol):
    """What a run asks of this worker's lease (lease.Lease) before a step runs and before a
    checkpoint: may it go on with the workflow in this epoch?"""

    def trusts(self, workflow_id: str, epoch: int, step: bool) -> bool:
        """True when a check would pass at once (answered without a coroutine)."""

    async def guard(self, workflow_id: str, epoch: int) -> None:
        """Before a step runs: raise LeaseLostError if this worker may not go on."""

    async def confirm(self, workflow_id: str, epoch: int) -> None:
        """Before a checkpoint is written: the same, confirmed against the store."""


class RunProbe(Protocol):
    """What a test may attach to every run (``EngineState.probe``): told of each durable
    call that executes (not of replayed ones), it can replace the call (a forced failure),
    or end the run where it stands as a killed process would (by raising
    ``asyncio.CancelledError``: nothing more is written). See orchestrator/testing."""

    def enter(self, run: WorkflowRun, number: int, spec: Call[Any]) -> Call[Any]:
        """Before the call executes; returns the call to make (``spec`` or another)."""

    def performed(self, run: WorkflowRun, number: int, spec: Call[Any]) -> None:
        """The call's work succeeded and its record is not written yet (for steps)."""

    def exit(self, run: WorkflowRun, number: int, spec: Call[Any]) -> None:
        """The call ended, however."""

    def backoff(self, run: WorkflowRun, waiting: bool) -> None:
        """A step begins (True) or ends (False) its wait between two attempts."""

    def busy(self, run: WorkflowRun, busy: bool) -> None:
        """The engine begins (True) or ends (False) work of its own on the run, outside any
        durable call (enforcing its deadline): time should hold still meanwhile."""


class WorkflowRun:
    """One execution of one workflow in this process: its step counter, the steps recorded by
    earlier executions (replayed instead of re-run), whether it has been told to stop, and its
    outcome (awaited by result waiters in this process)."""

    # Slotted: a workflow parked in recv holds its run; past 30 attributes an instance dict
    # stops sharing its keys and costs ~1.5 KiB a run (bench/README.md, parked).
    __slots__ = (
        "_flushing",
        "_settled",
        "_waits",
        "check_arguments",
        "clock",
        "compensating",
        "counter",
        "deferred",
        "delivery",
        "diverged",
        "dry",
        "epoch",
        "final_status",
        "finishing",
        "inflight",
        "lease",
        "max_payload_bytes",
        "metrics",
        "outcome",
        "pivot_step",
        "probe",
        "record",
        "recorded",
        "rerun_inflight",
        "restart",
        "span",
        "stop_reason",
        "store",
        "trace_parent",
        "tracer",
        "tracing",
        "workflow",
        "workflow_id",
    )

    def __init__(
        self,
        record: WorkflowRecord,
        workflow: WorkflowFunction[Any, Any],
        recorded: list[StepRecord],
        *,
        store: Store,
        clock: Clock,
        tracing: Tracing,
        metrics: Metrics,
        lease: LeaseChecks | None = None,
    ) -> None:
        self.record = record
        self.workflow_id = record.workflow_id
        self.epoch = record.owner_epoch  # the ownership epoch every write of this run carries
        self.workflow = workflow
        self.store = store
        self.clock = clock
        self.tracing = tracing
        self.metrics = metrics
        self.lease = lease  # None: no lease to check (an embedded app, a dry run)
        # This execution's span (None: not traced) and the tracer its durable calls use.
        self.span: Span | None = None
        self.trace_parent: Context | None = None  # the span as a context, for its children
        self.tracer: Tracer | None = None
        self.recorded: dict[int, StepRecord] = {step.step_number: step for step in recorded}
        self.counter = 0
        # Calls a rollback waits for (steps running, in parallel branches too): a count, and a
        # future made only when someone waits for it to reach zero (settled()).
        self.inflight = 0
        self._settled: asyncio.Future[None] | None = None
        self.compensating = False  # rolling back: compensations take the next numbers
        self.pivot_step: int | None = None
        # Recovering a rollback that was asked for (cancel with rollback, deadline) but had not
        # begun: the compensable step the crash interrupted may have had its effect, so it
        # runs again (same idempotency key) to be recorded, then compensated.
        self.rerun_inflight = False
        self.stop_reason: BaseException | None = None
        self.finishing = False  # the function returned or raised: final status being written
        self.restart = False  # stopped to be relaunched from its records (see explain)
        self.final_status: WorkflowStatus | None = None  # the final status this run wrote
        # A succeeded step's checkpoint, left to the next durable call (written before it goes
        # on) or to the final status (one commit for both); see record().
        self.deferred: StepRecord | None = None
        # Set with ``deferred`` when that is a recv's checkpoint for a message handed over in
        # this process: written with it, then the waiting send told (see Delivery).
        self.delivery: Delivery | None = None
        self._flushing: asyncio.Future[None] | None = None  # that write, while under way
        self.outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waits: set[asyncio.Future[Any]] = set()
        # A dry run (engine/replay.py) replays recorded calls and ends at the first call that
        # has no record (raising replay.ReplayEnd) instead of executing it.
        self.dry = False
        # Record a hash of each step's arguments, compared on replay (check_step_arguments).
        self.check_arguments = False
        self.max_payload_bytes = DEFAULT_MAX_PAYLOAD_BYTES  # EngineState.max_payload_bytes
        self.diverged: NonDeterministicWorkflowError | None = None  # the replay's mismatch
        self.probe: RunProbe | None = None  # a test's observer (EngineState.probe)

    # == the primitive ======================================================================
    async def call(self, spec: Call[T]) -> T:
        """Make the durable call ``spec``: replay it if it was recorded, else do it and record
        it (see the module docstring)."""
        self.counter += 1  # begin(), inlined: one coroutine less per durable call
        number = self.counter
        if self.deferred is not None or self._flushing is not None:
            await self.flush()
        recorded = self.replayed(number, spec.name)
        if recorded is not None:
            answer = spec.replay(recorded)
            if inspect.isawaitable(answer):
                return await answer
            return answer
        if self.dry:
            raise ReplayEnd(number, spec.name)
        if self.stop_reason is not None and not (spec.reruns and self._reruns_inflight()):
            raise self.stop_reason
        probe = self.probe
        if probe is not None:
            spec = probe.enter(self, number, spec)
        lease = self.lease
        if (
            spec.guarded
            and lease is not None
            and not lease.trusts(self.workflow_id, self.epoch, True)
        ):
            await lease.guard(self.workflow_id, self.epoch)
        started = time.perf_counter()
        first = Attempt(number, 1, self.clock.now_ms())
        if spec.settles:
            self.inflight += 1  # a rollback waits for parallel branches' records (settled())
        value: T | None = None
        error: BaseException | None = None
        attempts = 1
        try:
            try:
                if spec.timeout is None:
                    # The first attempt is awaited right here (no coroutine in between: every
                    # suspension and resumption of a step walks the chain of them).
                    try:
                        if spec.traced and self.tracer is not None:
                            with self._span(spec, first):
                                value = await spec.perform(first)
                        else:  # (no context manager held across the work's awaits)
                            value = await spec.perform(first)
                    except STOP_ERRORS:
                        raise
                    except Exception as failed:
                        retry = await self._retry(spec, first, failed)
                        retried, attempts = await self._retries(spec, retry)
                        value = retried
                else:
                    timed, attempts = await self._retries(spec, first)
                    value = timed
            except STOP_ERRORS:
                raise
            except Exception as exc:
                attempts = getattr(exc, "__orchestrator_attempts__", attempts)
                if spec.finish is None:
                    raise
                error = exc
            if probe is not None and error is None:
                probe.performed(self, number, spec)
            if spec.finish is None:
                return value  # type: ignore[return-value]
            return await spec.finish(first, value, error, attempts)
        finally:
            if probe is not None:
                probe.exit(self, number, spec)
            if spec.settles:
                self.inflight -= 1
                if not self.inflight and self._settled is not None:
                    self._settled.set_result(None)
                    self._settled = None
            if spec.kind in USER_CODE:
                self.metrics.step_finished(
                    spec.name,
                    spec.kind.value,
                    time.perf_counter() - started,
                    attempts,
                    error is not None,
                )

    async def _retries(self, spec: Call[T], attempt: Attempt) -> tuple[T, int]:
        """Run ``spec.perform`` from ``attempt`` on until it succeeds or its retry policy gives
        up; between attempts wait the backoff (with jitter, or the error's Retry-After) on the
        clock. A cancel with rollback lets the attempts go on (an attempt that failed may have
        applied its effect: it must be recorded to be compensated); any other stop ends
        them. (The first attempt without a timeout is made by ``call`` itself.)"""
        while True:
            if attempt.attempt > 1 and self.stop_reason is not None and not self.stop_rolls_back():
                raise self.stop_reason
            try:
                with self._span(spec, attempt):
                    if spec.timeout is None:
                        value = await spec.perform(attempt)
                    else:
                        value = await self._timed(spec, attempt, spec.timeout)
                return value, attempt.attempt
            except STOP_ERRORS:
                raise
            except Exception as exc:
                attempt = await self._retry(spec, attempt, exc)

    async def _retry(self, spec: Call[Any], attempt: Attempt, error: Exception) -> Attempt:
        """After a failed attempt: raise ``error`` if the policy gives up (noting how many
        attempts it took), else wait the backoff and return the next attempt."""
        policy = spec.retry
        if policy is None or not policy.should_retry(error, attempt.attempt):
            with contextlib.suppress(AttributeError):
                error.__orchestrator_attempts__ = attempt.attempt  # type: ignore[attr-defined]
            raise error
        delay = retry_after(error)
        if delay is None:
            delay = policy.interval(attempt.attempt) * (
                1 + policy.jitter * (2 * random.random() - 1)
            )
        await self._backoff(delay)
        return Attempt(attempt.number, attempt.attempt + 1, attempt.started_at)

    async def _timed(self, spec: Call[T], attempt: Attempt, timeout: float) -> T:
        """One attempt that fails with TimeoutError after ``timeout`` seconds (on the clock)."""
        deadline = self.clock.now_ms() + int(timeout * 1000)
        done, value = await self.clock.wait_until(spec.perform(attempt), deadline)
        if not done:
            raise TimeoutError(
                f"{spec.kind.value} {spec.name!r} of workflow {self.workflow_id} did not finish"
                f" within its timeout of {timeout:g} s (attempt {attempt.attempt})"
            )
        return value  # type: ignore[return-value]

    async def _backoff(self, seconds: float) -> None:
        """Wait between two attempts, on the clock; a stop other than a rollback ends it."""
        if seconds <= 0:
            return
        wake = self.clock.now_ms() + int(seconds * 1000)
        probe = self.probe
        if probe is not None:
            probe.backoff(self, True)  # a step between attempts waits only on time
        try:
            if not self.stop_rolls_back():
                try:
                    await self.wait(self.clock.sleep_until(wake))
                    return
                except WorkflowCancelledError:
                    # A cancel with rollback that came during the wait does not cut it short:
                    # the failed attempt may have applied its effect, so the step goes on to
                    # be recorded, then compensated. Any other stop ends it here.
                    if not self.stop_rolls_back():
                        raise
            await self.clock.sleep_until(wake)
        finally:
            if probe is not None:
                probe.backoff(self, False)

    def _span(self, spec: Call[Any], attempt: Attempt) -> contextlib.AbstractContextManager[Any]:
        if not spec.traced or self.tracer is None or self.trace_parent is None:
            return _NO_SPAN
        return self.tracing.durable(
            self.tracer,
            self.trace_parent,
            workflow_id=self.workflow_id,
            kind=spec.kind,
            name=spec.name,
            number=attempt.number,
            attempt=attempt.attempt if spec.kind in USER_CODE else None,
            compensates=spec.compensates,
            detail=spec.detail,
            extra=spec.attributes,
        )

    def _reruns_inflight(self) -> bool:
        return self.rerun_inflight and self.stop_rolls_back()

    async def settled(self) -> None:
        """Until no call that settles (a step) is in flight in this run."""
        while self.inflight:
            if self._settled is None:
                self._settled = asyncio.get_running_loop().create_future()
            await self._settled

    # == step numbers and replay =============================================================
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

    def recorded_name(self, number: int) -> str | None:
        """The name recorded at ``number`` by an earlier execution, if any (not consumed)."""
        step = self.recorded.get(number)
        return None if step is None else step.name

    def replayed(self, number: int, name: str) -> StepRecord | None:
        """The step recorded at ``number`` by an earlier execution, after checking its name."""
        if not self.recorded:
            return None
        step = self.recorded.pop(number, None)
        if step is not None and step.name != name:
            raise self.diverge(
                number,
                step.name,
                name,
                f"step {number} was recorded as {step.name!r} but the code now calls {name!r}",
            )
        return step

    def diverge(
        self, number: int, recorded: str, called: str, what: str, **detail: Any
    ) -> NonDeterministicWorkflowError:
        """The error of a replay that does not match the history at ``number`` (kept in
        ``diverged``: an upgrade check reports it even if the workflow's code catches it)."""
        self.diverged = NonDeterministicWorkflowError(
            f"workflow {self.workflow.name!r} ({self.workflow_id}) is not deterministic: {what}. "
            "Do not change the durable calls of a running workflow: wrap the change in "
            "app.patched(), fork it, or deploy it under a new application version "
            "(docs/upgrading.md).",
            workflow_id=self.workflow_id,
            step_number=number,
            recorded_name=recorded,
            called_name=called,
            **detail,
        )
        return self.diverged

    def on_pivot(self, number: int) -> None:
        self.pivot_step = number

    # == stopping ===========================================================================
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
            reason: BaseException | None = self.stop_reason  # set by stop() while we waited
            if reason is not None and future.cancelled():
                raise reason from None
            raise
        finally:
            self._waits.discard(future)

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

    # == recording ==========================================================================
    def may_defer(self) -> bool:
        """Whether a step that just succeeded may leave its checkpoint to what comes next:
        nothing else of this run is executing, being written or stopping it."""
        return (
            self.inflight <= 1  # only the calling step
            and self.deferred is None
            and self._flushing is None
            and self.stop_reason is None
            and not self.compensating
        )

    async def record_step(self, step: StepRecord, *, defer: bool = False) -> None:
        """Record a call. With ``defer`` (a step that succeeded, when nothing else is in
        flight), leave its checkpoint to the next durable call, which writes it before it does
        anything (so a step never runs before the one it follows is recorded), or to the final
        status, written in the same statement: a workflow whose last durable call is a step
        commits once at its end instead of twice. A crash in between re-runs the step, as a
        crash between a step's effect and its checkpoint always did."""
        if defer and self.defer(step):
            return
        await self.checkpoint(step)

    @property
    def busy(self) -> bool:
        """Whether a call of this run is in flight: a step executing, or a durable wait (a
        sleep, a recv, an event, a child's result) under way, as in a parallel branch."""
        return bool(self.inflight or self._waits)

    def defer(self, step: StepRecord, delivery: Delivery | None = None) -> bool:
        """Leave ``step``'s checkpoint to what comes next, if it may be (see record_step);
        with ``delivery``, a recv's for a message handed over in this process (see Delivery)."""
        if self.may_defer():
            self.deferred = step
            self.delivery = delivery
            return True
        return False

    async def flush(self) -> None:
        """Write the deferred checkpoint now; concurrent durable calls wait for the same write."""
        step = self.deferred
        if step is None:
            if self._flushing is not None:
                await asyncio.shield(self._flushing)
            return
        self.deferred = None
        delivery, self.delivery = self.delivery, None
        flushing = self._flushing = asyncio.get_running_loop().create_future()
        try:
            if delivery is None:
                await self.checkpoint(step)
            else:
                await self.checkpoint_delivery(step, delivery)
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
        with contextlib.suppress(*STOP_ERRORS):
            await self.flush()

    def take_deferred(self) -> tuple[StepRecord | None, Delivery | None]:
        """The deferred checkpoint (and its delivery, if a recv's), to be written with the
        final status (and no more here)."""
        last, self.deferred = self.deferred, None
        delivery, self.delivery = self.delivery, None
        return last, delivery

    def drop_delivery(self) -> None:
        """The run ends without writing a recv's deferred checkpoint (a shutdown, a lost
        lease): nothing was written, so the waiting send stores its message the plain way
        (the workflow's next run receives it)."""
        delivery, self.delivery = self.delivery, None
        if delivery is not None:
            self.deferred = None
            delivery.settle(False)

    @property
    def flushing(self) -> bool:
        return self._flushing is not None

    async def checkpoint(self, step: StepRecord) -> None:
        """Record a step, then stop here if the workflow was cancelled meanwhile. The store
        records it only in this run's epoch and while the workflow has not finished (fencing):
        a worker whose workflow was taken over, or ended, while it was paused records nothing
        and stops. A cancel with rollback (COMPENSATING) still takes the record: the step is
        then compensated."""
        lease = self.lease
        if lease is not None and not lease.trusts(self.workflow_id, self.epoch, False):
            await lease.confirm(self.workflow_id, self.epoch)
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

    async def checkpoint_delivery(self, step: StepRecord, delivery: Delivery) -> None:
        """Record a recv's deferred checkpoint for a message handed over in this process
        (Store.deliver_message: the message stored consumed, with the step), then tell the
        send. Not delivered (an older message waited; taken over; our own lost commit): the
        message is stored all the same, and the run goes on only if the step is its own
        (else it stops, or replays from its records to receive in order)."""
        lease = self.lease
        try:
            if lease is not None and not lease.trusts(self.workflow_id, self.epoch, False):
                await lease.confirm(self.workflow_id, self.epoch)
        except BaseException:
            delivery.settle(False)  # nothing written: the send stores it
            raise
        started = time.perf_counter()
        try:
            delivered = await self.store.deliver_message(
                self.workflow_id, delivery.topic, delivery.payload, step
            )
        except (WorkflowFinishedError, WorkflowNotFoundError) as gone:
            delivery.fail(gone)  # the send's own error: the workflow ended or was deleted
            await self.explain(step)  # (stops this run as its status says)
            raise
        except BaseException as exc:
            delivery.fail(exc)
            raise
        delivery.settle(True)
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        if not delivered:
            await self.explain(step, out_of_order=True)

    async def write(
        self, write: Awaitable[T], step: StepRecord, instead: StepRecord | None = None
    ) -> T | StepRecord:
        """Run a store write that records ``step`` with its effect (a send, a recv, an event,
        a stream value, a child start), or ``instead`` in its place (recv's deadline when no
        message waits). If the store refused: the stored record when it is this run's own
        earlier write (a retried commit), else the run stops."""
        try:
            return await write
        except WorkflowStateError as error:
            if not error.detail.get("refused"):
                raise
            return await self.explain(step, instead)

    async def explain(
        self, step: StepRecord, instead: StepRecord | None = None, *, out_of_order: bool = False
    ) -> StepRecord:
        """The store refused to record ``step`` (or ``instead``, written in its place): return
        the stored record if it is this run's own earlier write of either (committed before a
        lost connection hid the answer, then retried); otherwise stop this run and raise why.
        A finished workflow stops it as its status says; another epoch means another worker
        took it over (LeaseLostError, quietly: the new owner goes on). ``out_of_order``: a
        recv's for a message handed over in this process, refused because an older message
        waited: the run replays from its records and receives that one first."""
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
            existing = await self.own_record(step, instead)
            if existing is not None:
                return existing
            # Taken in this very epoch by another write (a second run of this workflow in the
            # same epoch), or a recv that must not pass an older message: stop, and run it
            # again from what is recorded (the engine relaunches it in this worker, which
            # owns it).
            self.restart = True
            why = (
                "received a message while an older one waited on its topic"
                if out_of_order
                else "was recorded by another run"
            )
            self.stop(
                LeaseLostError(
                    f"step {step.step_number} of workflow {self.workflow_id} {why}; this run "
                    "replays the workflow from its records",
                    workflow_id=self.workflow_id,
                    step_number=step.step_number,
                )
            )
        self.check_runnable()
        raise AssertionError("unreachable: a stopped run raises")

    async def own_record(
        self, step: StepRecord, instead: StepRecord | None = None
    ) -> StepRecord | None:
        """The record stored at ``step``'s number if it is this run's own write of ``step``
        (or of ``instead``): one committed before a lost connection hid its answer."""
        candidates = (step,) if instead is None else (step, instead)
        for existing in await self.store.load_steps(self.workflow_id):
            if existing.step_number != step.step_number:
                continue
            for ours in candidates:
                if (
                    (existing.name, existing.error, existing.started_at)
                    == (ours.name, ours.error, ours.started_at)
                    # (a recv's output is the message the store recorded with it)
                    and (ours.output is None or existing.output == ours.output)
                ):  # (started_at tells our write from another one of the same content)
                    return existing
            return None
        return None

    def step_record(self, number: int, name: str, kind: StepKind, **fields: Any) -> StepRecord:
        """A record of this run's call ``number``, in this run's epoch."""
        return StepRecord(self.workflow_id, number, name, kind, epoch=self.epoch, **fields)

    # == the outcome ========================================================================
    def resolve(self, *, value: Any = None, exc: BaseException | None = None) -> None:
        if self.outcome.done():
            return
        if exc is None:
            self.outcome.set_result(value)
        else:
            self.outcome.set_exception(exc)
            self.outcome.exception()  # retrieved: nobody awaiting is not an error


def durable_run() -> WorkflowRun | None:
    """The run to record a call in: the workflow body's. None outside a workflow, or inside a
    step (a call made there is a plain call: the step itself is what is recorded)."""
    current = context.current()
    if current is None or current.step is not None:
        return None
    run: WorkflowRun = current.run  # type: ignore[assignment]
    return run


def require_run(operation: str) -> WorkflowRun:
    """The running workflow's run, or NotInWorkflowError saying ``operation`` needs one."""
    current = context.current()
    if current is None:
        raise NotInWorkflowError(
            f"{operation} can only be called inside a workflow function (decorated with "
            "@app.workflow()); outside one there is no workflow to record it in."
        )
    run: WorkflowRun = current.run  # type: ignore[assignment]
    return run
