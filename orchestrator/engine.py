"""The engine: starts workflows (and child workflows), waits for results, recovers unfinished
work at launch, and carries out cancel / resume / fork on stored workflows."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from orchestrator.clock import Clock
from orchestrator.errors import (
    ConfigurationError,
    LeaseLostError,
    MaxRecoveryAttemptsExceededError,
    NotRegisteredError,
    WorkflowCancelledError,
    WorkflowNotFoundError,
)
from orchestrator.executor import WorkflowRun
from orchestrator.management import Management
from orchestrator.metrics import Metrics
from orchestrator.notifications import Waiters
from orchestrator.queues import QueueRunner
from orchestrator.results import Results
from orchestrator.saga import Saga
from orchestrator.scheduler import Scheduler, schedule_input, tick_id
from orchestrator.serialization import check_key, encode_error
from orchestrator.starting import Starting
from orchestrator.store.base import (
    NOTIFY_RECONNECTED,
    NOTIFY_WORKFLOW,
    ScheduleRecord,
    StepRecord,
    Store,
    WorkflowQuery,
    WorkflowRecord,
)
from orchestrator.tracing import Tracing
from orchestrator.types import RUNNING_STATUSES, WorkflowStatus
from orchestrator.worker import LEASE_SECONDS, Lease
from orchestrator.workflow import (
    Registry,
    StartOptions,
    StepInfo,
    WorkflowFunction,
    WorkflowHandle,
    WorkflowInfo,
)

logger = logging.getLogger("orchestrator.engine")


class Engine(Starting, Results, Management):
    """Owns the workflows running in this process; everything durable goes through ``store``."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        registry: Registry,
        *,
        executor_id: str,
        lease_seconds: float = LEASE_SECONDS,
        tracing: Tracing | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.registry = registry
        self.executor_id = executor_id
        self.app_version: str | None = None
        self.waiters = Waiters()
        self.runs: dict[str, WorkflowRun] = {}
        self.tracing = tracing or Tracing(executor_id=executor_id)
        self.metrics = metrics or Metrics()
        self.metrics.track_running(lambda: len(self.runs))
        self._tasks: set[asyncio.Task[None]] = set()
        self.launched = False
        self.closing = False
        self.lease_seconds = lease_seconds
        self.lease: Lease | None = None
        self.runners: dict[str, QueueRunner] = {}
        self.scheduler: Scheduler | None = None
        self._background: list[asyncio.Task[None]] = []
        self.saga = Saga(
            store,
            find_compensation=lambda name: (
                registry.compensations.get(name) or registry.steps.get(name)
            ),
            find_step=registry.steps.get,
            stop_child=self._stop_child,
        )

    # -- life cycle -------------------------------------------------------------------------
    async def launch(self, app_version: str) -> None:
        """Listen, take a lease, recover this executor's work and dead workers' work, then
        start the queue runners and the scheduler."""
        self.app_version = app_version
        await self.store.listen(self.on_notification)
        self.lease = Lease(
            self.store,
            executor_id=self.executor_id,
            app_version=app_version,
            lease_seconds=self.lease_seconds,
            running=lambda: list(self.runs),
            lost=self._lost,
            adopt=self._adopt_taken_over,
        )
        await self.lease.register()
        self.launched = True
        await self.recover()
        await self.lease.take_over()
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(self.lease.run()))
        for queue in self.registry.queues.values():
            if not queue.dequeue:
                continue
            runner = QueueRunner(
                queue,
                store=self.store,
                clock=self.clock,
                waiters=self.waiters,
                executor_id=self.executor_id,
                app_version=app_version,
                launch=self.launch_dequeued,
            )
            self.runners[queue.name] = runner
            self._background.append(loop.create_task(runner.run()))
        await self._save_declared_schedules()
        self.scheduler = Scheduler(self.store, self.clock, self.waiters, self._start_tick)
        self._background.append(loop.create_task(self.scheduler.run()))

    async def shutdown(self, timeout: float) -> None:
        """Stop dequeuing and ticking; running steps may finish and be checkpointed for up to
        ``timeout`` seconds, no new step starts; what is left stays PENDING and the lease is
        released, so another worker (or the next launch) resumes it at once."""
        self.closing = True
        if self.lease is not None:
            self.lease.closing = True
        for runner in self.runners.values():
            runner.stopping = True
        if self.scheduler is not None:
            self.scheduler.stopping = True
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        for run in list(self.runs.values()):
            run.stop(
                LeaseLostError(
                    f"workflow {run.workflow_id} was interrupted by shutdown; it will be recovered",
                    workflow_id=run.workflow_id,
                )
            )
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=max(timeout, 0))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.lease is not None:
            await self.lease.release()
        self.runners.clear()
        self.launched = False

    def _lost(self, workflow_id: str) -> None:
        run = self.runs.get(workflow_id)
        if run is not None:
            run.stop(
                LeaseLostError(
                    f"workflow {workflow_id} was taken over by another worker",
                    workflow_id=workflow_id,
                )
            )

    async def _adopt_taken_over(self, record: WorkflowRecord) -> None:
        if record.status is WorkflowStatus.ENQUEUED:
            return  # back on its queue: a worker with a free slot dequeues it
        if record.workflow_id not in self.runs:
            self.metrics.takeovers.inc()
            await self._recover_one(record)

    async def launch_dequeued(self, record: WorkflowRecord) -> None:
        """Run a workflow this worker just dequeued; a poison one ends in ERROR at once. One
        that ran before (re-queued from a dead worker) replays its recorded steps."""
        workflow = self.registry.workflows.get(record.name)
        if workflow is not None:
            recorded = (
                await self.store.load_steps(record.workflow_id) if record.recovery_attempts else []
            )
            self.launch_run(record, workflow, recorded)
            return
        error = NotRegisteredError(
            f"workflow {record.workflow_id} runs {record.name!r}, which worker "
            f"{self.executor_id} does not register; it cannot run",
            name=record.name,
            workflow_id=record.workflow_id,
        )
        self._spawn(self._finish_poison(record, error))

    async def _finish_poison(self, record: WorkflowRecord, error: Exception) -> None:
        await self.store.finish_workflow(
            record.workflow_id,
            WorkflowStatus.ERROR,
            error=encode_error(error),
            epoch=record.owner_epoch,
        )
        runner = self.runners.get(record.queue_name or "")
        if runner is not None:
            runner.finished(record.workflow_id)

    # -- schedules --------------------------------------------------------------------------
    async def _save_declared_schedules(self) -> None:
        for workflow in self.registry.workflows.values():
            if workflow.schedule is None:
                continue
            await self.store.save_schedule(
                ScheduleRecord(
                    name=workflow.name,
                    workflow_name=workflow.name,
                    cron=workflow.schedule,
                    input=schedule_input((), {}),
                    catch_up=workflow.catch_up,
                    declared=True,
                ),
                replace=True,
            )

    async def _start_tick(self, schedule: ScheduleRecord, tick: dt.datetime) -> None:
        workflow = self.registry.workflows.get(schedule.workflow_name)
        if workflow is None:
            return  # another application's schedule: its own workers tick it
        data = json.loads(schedule.input)
        await self.start_workflow(
            workflow,
            (tick, *data.get("args", [])),
            dict(data.get("kwargs", {})),
            StartOptions(workflow_id=tick_id(schedule.name, tick)),
        )

    def handle(self, workflow_id: str) -> WorkflowHandle[Any]:
        return WorkflowHandle(self, workflow_id)

    def require_launched(self, operation: str) -> None:
        if not self.launched:
            raise ConfigurationError(
                f"{operation} needs a launched orchestrator: use `async with app:` or "
                "`await app.launch()` first."
            )

    def on_notification(self, kind: str, payload: str) -> None:
        self.waiters.notify(kind, payload)
        if kind == NOTIFY_WORKFLOW:
            run = self.runs.get(payload)
            if run is not None and not run.finishing:  # its own final write notified too
                self._spawn(self._check_still_running(payload))
        elif kind == NOTIFY_RECONNECTED:
            for workflow_id in list(self.runs):
                self._spawn(self._check_still_running(workflow_id))

    async def _check_still_running(self, workflow_id: str) -> None:
        run = self.runs.get(workflow_id)
        if run is None or run.finishing:
            return
        record = await self.store.get_workflow(workflow_id)
        if record is None:
            run.stop(WorkflowCancelledError(f"workflow {workflow_id} was deleted"))
        elif record.status is not WorkflowStatus.PENDING and not run.compensating:
            run.stop(run.stop_error_for(record.status, record.error))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- starting ---------------------------------------------------------------------------
    def launch_run(
        self,
        record: WorkflowRecord,
        workflow: WorkflowFunction[Any, Any],
        recorded: list[StepRecord],
    ) -> WorkflowRun:
        """Execute ``record`` in this process as a background task."""
        run = WorkflowRun(
            record,
            workflow,
            recorded,
            store=self.store,
            clock=self.clock,
            saga=self.saga,
            tracing=self.tracing,
            metrics=self.metrics,
        )
        if self.lease is not None:
            run.guard = self.lease.guard
            run.confirm = self.lease.confirm
            self.lease.trust(run.workflow_id, run.epoch)
        self.runs[record.workflow_id] = run
        self._spawn(self._execute(run))
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
            await run.execute()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store failed for good: leave the row for recovery
            logger.exception("workflow %s could not be checkpointed", run.workflow_id)
            run.resolve(exc=exc)
        finally:
            if run.final_status is not None:
                self.metrics.workflow_completed(run.workflow.name, run.final_status.value)
            if run.span is not None:
                error = run.outcome.exception() if run.outcome.done() else None
                self.tracing.end_execution(run.span, run.final_status, error)
                otel_context.detach(token)  # type: ignore[arg-type]
            if self.runs.get(run.workflow_id) is run:
                del self.runs[run.workflow_id]
            if self.lease is not None:
                self.lease.forget(run.workflow_id, run.epoch)
            if watcher is not None:
                watcher.cancel()
            if run.restart and not self.closing:
                self._spawn(self._relaunch(run))  # keeps its queue slot meanwhile
            else:
                self._release_slot(run)

    def _release_slot(self, run: WorkflowRun) -> None:
        runner = self.runners.get(run.record.queue_name or "")
        if runner is not None:
            runner.finished(run.workflow_id)

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
                if run.workflow_id not in self.runs:  # nobody relaunched it meanwhile
                    self.launch_run(record, run.workflow, steps)
                    return
        except Exception:  # the store is down: recovery finds the row later
            logger.exception("workflow %s could not be relaunched", run.workflow_id)
        self._release_slot(run)

    async def _enforce_deadline(self, run: WorkflowRun) -> None:
        assert run.record.deadline_ms is not None
        await self.clock.sleep_until(run.record.deadline_ms)
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

    # -- recovery ---------------------------------------------------------------------------
    async def recover(self) -> list[str]:
        """Resume every unfinished workflow this executor owns, from its last checkpoint."""
        records = await self.store.claim_for_recovery(self.executor_id, self.app_version)
        resumed: list[str] = []
        for record in records:
            if record.workflow_id in self.runs:
                continue
            if await self._recover_one(record):
                resumed.append(record.workflow_id)
        if resumed:
            logger.info("recovered %d workflows: %s", len(resumed), resumed[:20])
        return resumed

    async def _recover_one(self, record: WorkflowRecord) -> bool:
        limit = record.max_recovery_attempts
        if limit is not None and record.recovery_attempts > limit:
            error = MaxRecoveryAttemptsExceededError(
                f"workflow {record.workflow_id} was recovered {record.recovery_attempts} times "
                f"(max_recovery_attempts={limit})",
                workflow_id=record.workflow_id,
            )
            await self.store.transition_workflow(
                record.workflow_id,
                WorkflowStatus.MAX_RECOVERY_ATTEMPTS_EXCEEDED,
                from_statuses=RUNNING_STATUSES,
                error=encode_error(error),
                epoch=record.owner_epoch,
            )
            return False
        workflow = self.registry.workflows.get(record.name)
        if workflow is None:
            unregistered = NotRegisteredError(
                f"workflow {record.workflow_id} runs {record.name!r}, which this application "
                "does not register",
                name=record.name,
            )
            await self.store.finish_workflow(
                record.workflow_id,
                WorkflowStatus.ERROR,
                error=encode_error(unregistered),
                epoch=record.owner_epoch,
            )
            return False
        self.metrics.workflows_recovered.labels(record.name).inc()
        self.launch_run(record, workflow, await self.store.load_steps(record.workflow_id))
        return True

    # -- reading -------------------------------------------------------------------------------
    async def get_record(self, workflow_id: str) -> WorkflowRecord:
        record = await self.store.get_workflow(check_key(workflow_id, "workflow id"))
        if record is None:
            raise WorkflowNotFoundError(
                f"no workflow with id {workflow_id!r}", workflow_id=workflow_id
            )
        return record

    async def workflow_info(self, workflow_id: str) -> WorkflowInfo:
        return WorkflowInfo.from_record(await self.get_record(workflow_id))

    async def list_workflows(self, query: WorkflowQuery) -> list[WorkflowInfo]:
        return [WorkflowInfo.from_record(r) for r in await self.store.list_workflows(query)]

    async def list_steps(self, workflow_id: str) -> list[StepInfo]:
        await self.get_record(workflow_id)
        return [StepInfo.from_record(s) for s in await self.store.load_steps(workflow_id)]
