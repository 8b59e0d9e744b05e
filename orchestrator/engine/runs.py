"""The workflows running in this process: launching a run as a task, its execution span and
deadline, and what happens when it ends (metrics, its queue slot, a relaunch)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from orchestrator.clock import Clock
from orchestrator.engine.executor import Executor
from orchestrator.engine.run import RunProbe, WorkflowRun
from orchestrator.engine.saga import Saga
from orchestrator.engine.workflows import WorkflowFunction
from orchestrator.errors import ConfigurationError, WorkflowCancelledError
from orchestrator.lease import Lease
from orchestrator.log_context import log_finished
from orchestrator.metrics import Metrics
from orchestrator.serialization import DEFAULT_MAX_PAYLOAD_BYTES, encode_error
from orchestrator.store.base import StepRecord, Store, WorkflowRecord
from orchestrator.tracing import Tracing
from orchestrator.types import WorkflowStatus

logger = logging.getLogger("orchestrator.engine")


@dataclass
class EngineState:
    """Who this engine is and where it is in its life: shared by its parts."""

    executor_id: str
    app_version: str | None = None  # known at launch
    launched: bool = False
    check_step_arguments: bool = False  # record a hash of each step's arguments
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES  # the largest value stored
    closing: bool = False
    lease: Lease | None = None
    # A test's observer of every durable call (orchestrator.testing: crash and failure
    # injection, time skipping); None in production.
    probe: RunProbe | None = None

    def require_launched(self, operation: str) -> None:
        """Raise ConfigurationError unless the engine is launched."""
        if not self.launched:
            raise ConfigurationError(
                f"{operation} needs a launched orchestrator: use `async with app:` or "
                "`await app.launch()` first."
            )


class Runs:
    """The runs of this process, by workflow id, each executed by a task of its own."""

    def __init__(
        self,
        state: EngineState,
        *,
        store: Store,
        clock: Clock,
        saga: Saga,
        tracing: Tracing,
        metrics: Metrics,
        finished: Callable[[WorkflowRecord], None],
    ) -> None:
        self.state = state
        self.store = store
        self.clock = clock
        self.saga = saga
        self.tracing = tracing
        self.metrics = metrics
        self.finished = finished  # a run ended here (its queue slot is free)
        self._runs: dict[str, WorkflowRun] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        metrics.track_running(lambda: len(self._runs))

    def get(self, workflow_id: str) -> WorkflowRun | None:
        return self._runs.get(workflow_id)

    def __contains__(self, workflow_id: object) -> bool:
        return workflow_id in self._runs

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._runs))

    def __len__(self) -> int:
        return len(self._runs)

    def values(self) -> list[WorkflowRun]:
        return list(self._runs.values())

    def spawn(self, coroutine: Any) -> None:
        """Run ``coroutine`` as a task this engine waits for at shutdown."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def tasks(self) -> set[asyncio.Task[Any]]:
        return self._tasks

    def launch(
        self,
        record: WorkflowRecord,
        workflow: WorkflowFunction[Any, Any],
        recorded: list[StepRecord],
    ) -> WorkflowRun:
        """Execute ``record`` in this process as a background task."""
        lease = self.state.lease
        run = WorkflowRun(
            record,
            workflow,
            recorded,
            store=self.store,
            clock=self.clock,
            tracing=self.tracing,
            metrics=self.metrics,
            lease=lease,
        )
        run.check_arguments = self.state.check_step_arguments
        run.max_payload_bytes = self.state.max_payload_bytes
        run.probe = self.state.probe
        if lease is not None:
            lease.trust(run.workflow_id, run.epoch)
        self._runs[record.workflow_id] = run
        self.spawn(self._execute(run))
        return run

    async def _execute(self, run: WorkflowRun) -> None:
        watcher: asyncio.Task[None] | None = None
        if run.record.deadline_ms is not None:
            watcher = asyncio.get_running_loop().create_task(self._enforce_deadline(run))
        run.span = self.tracing.begin_execution(run.record, len(run.recorded))
        token = None
        if run.span is not None:
            run.tracer = self.tracing.tracer()
            run.trace_parent = trace.set_span_in_context(run.span)
            token = otel_context.attach(run.trace_parent)
        try:
            await Executor(run, self.saga).execute()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store failed for good: leave the row for recovery
            logger.exception("workflow %s could not be checkpointed", run.workflow_id)
            run.resolve(exc=exc)
        finally:
            if run.delivery is not None:  # a recv's checkpoint never written: its send stores
                run.drop_delivery()  # the message (the workflow's next run receives it)
            if run.final_status is not None:
                self.metrics.workflow_completed(run.workflow.name, run.final_status.value)
                duration_ms = self.clock.now_ms() - run.record.created_at
                log_finished(run.workflow_id, run.workflow.name, run.final_status, duration_ms)
            if run.span is not None:
                error = run.outcome.exception() if run.outcome.done() else None
                self.tracing.end_execution(run.span, run.final_status, error)
                otel_context.detach(token)  # type: ignore[arg-type]
            if self._runs.get(run.workflow_id) is run:
                del self._runs[run.workflow_id]
            if self.state.lease is not None:
                self.state.lease.forget(run.workflow_id, run.epoch)
            if watcher is not None:
                watcher.cancel()
            if run.restart and not self.state.closing:
                self.spawn(self._relaunch(run))  # keeps its queue slot meanwhile
            else:
                self.finished(run.record)

    async def _relaunch(self, run: WorkflowRun) -> None:
        """Run a workflow again from its recorded steps, in this worker, if it still owns it."""
        try:
            record = await self.store.get_workflow(run.workflow_id)
            if (
                record is not None
                and not record.status.is_terminal
                and record.executor_id == run.record.executor_id
            ):
                steps = await self.store.load_steps(run.workflow_id)
                if run.workflow_id not in self._runs:  # nobody relaunched it meanwhile
                    self.launch(record, run.workflow, steps)
                    return
        except Exception:  # the store is down: recovery finds the row later
            logger.exception("workflow %s could not be relaunched", run.workflow_id)
        self.finished(run.record)

    async def _enforce_deadline(self, run: WorkflowRun) -> None:
        assert run.record.deadline_ms is not None
        await self.clock.sleep_until(run.record.deadline_ms)
        probe = self.state.probe
        if probe is not None:
            probe.busy(run, True)
        try:
            await self._cancel_at_deadline(run)
        finally:
            if probe is not None:
                probe.busy(run, False)

    async def _cancel_at_deadline(self, run: WorkflowRun) -> None:
        error = WorkflowCancelledError(
            f"workflow {run.workflow_id} passed its deadline and was cancelled",
            workflow_id=run.workflow_id,
            reason="deadline",
            compensate=True,
        )
        if await self.store.transition_workflow(
            run.workflow_id,
            WorkflowStatus.COMPENSATING,
            from_statuses={WorkflowStatus.PENDING},
            error=encode_error(error),
        ):
            run.stop(error)  # a saga rolls back; a workflow without compensations is CANCELLED
