"""The engine: its parts composed (runs, starting, results, operations, messaging, the saga),
and its life: at launch it listens, takes a lease, recovers this executor's unfinished work and
dead workers' work, then starts the queue runners and the scheduler; at shutdown it stops them,
lets running steps finish and releases the lease."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from orchestrator.clock import Clock
from orchestrator.engine.attributes import Attributes
from orchestrator.engine.messaging import DEFAULT_KEEP_SECONDS, Messaging
from orchestrator.engine.notifications import Waiters
from orchestrator.engine.operations import Operations
from orchestrator.engine.registry import Registry
from orchestrator.engine.results import Results
from orchestrator.engine.runs import EngineState, Runs
from orchestrator.engine.saga import Saga
from orchestrator.engine.starting import Starter
from orchestrator.engine.workflows import StartOptions, WorkflowFunction, WorkflowHandle
from orchestrator.errors import (
    LeaseLostError,
    MaxRecoveryAttemptsExceededError,
    NotRegisteredError,
    WorkflowCancelledError,
)
from orchestrator.lease import LEASE_SECONDS, Lease
from orchestrator.metrics import Metrics
from orchestrator.queues import QueueRunner
from orchestrator.retention import RetentionPolicy, RetentionSweep
from orchestrator.scheduler import Scheduler, schedule_input, tick_id
from orchestrator.serialization import DEFAULT_MAX_PAYLOAD_BYTES, encode_error
from orchestrator.store.base import (
    NOTIFY_QUEUE,
    NOTIFY_RECONNECTED,
    NOTIFY_UNCLAIMED,
    NOTIFY_WORKFLOW,
    SEPARATOR,
    ScheduleRecord,
    Store,
    WorkflowQuery,
    WorkflowRecord,
)
from orchestrator.stranded import StrandedWatch
from orchestrator.tracing import Tracing
from orchestrator.types import RUNNING_STATUSES, WorkflowStatus
from orchestrator.views import StepInfo, WorkflowInfo

logger = logging.getLogger("orchestrator.engine")


LEASE_TASK = "orchestrator-lease"  # the lease's renewals (a time-skipping test clock skips them)


class Engine:
    """Owns the workflows running in this process; everything durable goes through ``store``.

    Its parts, each given what it uses: ``runs`` (the runs of this process), ``starter``,
    ``results``, ``operations`` (the operator's actions), ``messaging`` and ``saga``.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        registry: Registry,
        *,
        executor_id: str,
        lease_seconds: float = LEASE_SECONDS,
        stranded_check_seconds: float = 60.0,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        retention: RetentionPolicy | None = None,
        retention_sweep_seconds: float = 60.0,
        retention_batch: int = 500,
        pending_message_seconds: float = DEFAULT_KEEP_SECONDS,
        tracing: Tracing | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.registry = registry
        self.state = EngineState(executor_id, max_payload_bytes=max_payload_bytes)
        self.waiters = Waiters()
        self.tracing = tracing or Tracing(executor_id=executor_id)
        self.metrics = metrics or Metrics()
        self.lease_seconds = lease_seconds
        self.stranded_check_seconds = stranded_check_seconds
        self.retention = RetentionSweep(
            store,
            self.metrics,
            retention or RetentionPolicy({}),
            interval=retention_sweep_seconds,
            batch=retention_batch,
        )
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
        self.runs = Runs(
            self.state,
            store=store,
            clock=clock,
            saga=self.saga,
            tracing=self.tracing,
            metrics=self.metrics,
            finished=self._release_slot,
        )
        self.starter = Starter(
            self.state,
            store=store,
            clock=clock,
            registry=registry,
            tracing=self.tracing,
            metrics=self.metrics,
            runs=self.runs,
            handle=self.handle,
        )
        self.results = Results(
            self.state,
            store=store,
            clock=clock,
            registry=registry,
            waiters=self.waiters,
            runs=self.runs,
        )
        self.operations = Operations(
            self.state,
            store=store,
            registry=registry,
            tracing=self.tracing,
            metrics=self.metrics,
            runs=self.runs,
            starter=self.starter,
            results=self.results,
            handle=self.handle,
        )
        self.messaging = Messaging(
            store, clock, self.waiters, max_payload_bytes, keep_seconds=pending_message_seconds
        )
        self.attributes = Attributes(store)

    # -- what handles and workflow functions use (the Engine protocol of workflows.py) -------
    async def start_workflow(
        self,
        workflow: WorkflowFunction[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: StartOptions,
        connection: object | None = None,
    ) -> WorkflowHandle[Any]:
        handle = await self.starter.start_workflow(workflow, args, kwargs, options, connection)
        if options.queue is not None and connection is None:
            # Enqueued and committed (or there already): this process's own runner of the
            # queue, if any, dequeues at once instead of when the NOTIFY comes back.
            self.waiters.notify(NOTIFY_QUEUE, options.queue)
        return handle

    def wait_result(self, workflow_id: str, timeout: float | None) -> Awaitable[Any]:
        return self.results.wait_result(workflow_id, timeout)  # (no coroutine in between)

    async def workflow_info(self, workflow_id: str) -> WorkflowInfo:
        return (await self.infos([await self.operations.get_record(workflow_id)]))[0]

    async def infos(self, records: Sequence[WorkflowRecord]) -> list[WorkflowInfo]:
        """These workflows as WorkflowInfo with their attributes (one query for all)."""
        found = await self.store.workflow_attributes([r.workflow_id for r in records])
        return [WorkflowInfo.from_record(r, found.get(r.workflow_id)) for r in records]

    def handle(self, workflow_id: str) -> WorkflowHandle[Any]:
        return WorkflowHandle(self, workflow_id)

    # -- identity and life --------------------------------------------------------------------
    @property
    def executor_id(self) -> str:
        return self.state.executor_id

    @property
    def app_version(self) -> str | None:
        return self.state.app_version

    @property
    def launched(self) -> bool:
        return self.state.launched

    @property
    def lease(self) -> Lease | None:
        return self.state.lease

    def require_launched(self, operation: str) -> None:
        self.state.require_launched(operation)

    async def launch(self, app_version: str) -> None:
        """Listen, take a lease, recover this executor's work and dead workers' work, then
        start the queue runners and the scheduler."""
        self.state.app_version = app_version
        self.state.closing = False  # (launched again after a shutdown: a test's restart)
        await self.store.listen(self.on_notification)
        lease = Lease(
            self.store,
            self.clock,
            executor_id=self.executor_id,
            app_version=app_version,
            lease_seconds=self.lease_seconds,
            running=lambda: list(self.runs),
            lost=self._lost,
            adopt=self._adopt_taken_over,
        )
        self.state.lease = lease
        await lease.register()
        self.state.launched = True
        await self.recover()
        await lease.take_over()
        loop = asyncio.get_running_loop()
        if self.registry.workflows:  # a worker (not a client that only reads and steers)
            watch = StrandedWatch(
                self.store,
                self.metrics,
                app_version=app_version,
                interval=self.stranded_check_seconds,
            )
            await watch.check()
            self._background.append(loop.create_task(watch.run()))
            if self.retention.policy:  # deletes expired finished workflows, once across workers
                self._background.append(loop.create_task(self.retention.run()))
        self._background.append(loop.create_task(lease.run(), name=LEASE_TASK))
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
        self.state.closing = True
        lease = self.state.lease
        if lease is not None:
            lease.closing = True
        for runner in self.runners.values():
            runner.stopping = True
        if self.scheduler is not None:
            self.scheduler.stopping = True
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        for run in self.runs.values():
            run.stop(
                LeaseLostError(
                    f"workflow {run.workflow_id} was interrupted by shutdown; it will be recovered",
                    workflow_id=run.workflow_id,
                )
            )
        tasks = set(self.runs.tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(timeout, 0))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if lease is not None:
            await lease.release()
        self.runners.clear()
        self.state.launched = False

    # -- runs ending, taken over, lost --------------------------------------------------------
    def _release_slot(self, record: WorkflowRecord) -> None:
        runner = self.runners.get(record.queue_name or "")
        if runner is not None:
            runner.finished(record.workflow_id)

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

    async def _stop_child(self, workflow_id: str) -> None:
        await self.operations.stop_child(workflow_id)

    async def launch_dequeued(self, record: WorkflowRecord) -> None:
        """Run a workflow this worker just dequeued; a poison one ends in ERROR at once. One
        that ran before (re-queued from a dead worker) replays its recorded steps."""
        workflow = self.registry.workflows.get(record.name)
        if workflow is not None:
            recorded = (
                await self.store.load_steps(record.workflow_id) if record.recovery_attempts else []
            )
            self.runs.launch(record, workflow, recorded)
            # A claim notifies no one (migration 0012): this process's result waiters of the
            # workflow learn here that it now runs in this process, and await it directly.
            self.waiters.notify(NOTIFY_WORKFLOW, record.workflow_id)
            return
        error = NotRegisteredError(
            f"workflow {record.workflow_id} runs {record.name!r}, which worker "
            f"{self.executor_id} does not register; it cannot run",
            name=record.name,
            workflow_id=record.workflow_id,
        )
        self.runs.spawn(self._finish_poison(record, error))

    async def _finish_poison(self, record: WorkflowRecord, error: Exception) -> None:
        await self.store.finish_workflow(
            record.workflow_id,
            WorkflowStatus.ERROR,
            error=encode_error(error),
            epoch=record.owner_epoch,
        )
        self._release_slot(record)

    # -- notifications ------------------------------------------------------------------------
    def on_notification(self, kind: str, payload: str) -> None:
        self.waiters.notify(kind, payload)
        if kind == NOTIFY_WORKFLOW:
            run = self.runs.get(payload)
            if run is not None and not run.finishing:  # its own final write notified too
                self.runs.spawn(self._check_still_running(payload))
        elif kind == NOTIFY_UNCLAIMED:
            workflow_id, _, name = payload.partition(SEPARATOR)
            if name in self.registry.workflows and not self.state.closing:
                self.runs.spawn(self._claim(workflow_id))
        elif kind == NOTIFY_RECONNECTED:
            for workflow_id in self.runs:
                self.runs.spawn(self._check_still_running(workflow_id))

    async def _claim(self, workflow_id: str) -> None:
        """Run a workflow started in a transaction that just committed, if this worker is
        the first to claim it (a missed notification leaves it to the lease's take_over)."""
        if workflow_id in self.runs:
            return
        record = await self.store.claim_workflow(
            workflow_id, self.executor_id, self.state.app_version
        )
        if record is None:
            return  # another worker claimed it, or it is of another version
        # Registered (checked when notified; names are never unregistered).
        self.runs.launch(record, self.registry.workflows[record.name], [])

    async def _check_still_running(self, workflow_id: str) -> None:
        run = self.runs.get(workflow_id)
        if run is None or run.finishing:
            return
        record = await self.store.get_workflow(workflow_id)
        if record is None:
            run.stop(WorkflowCancelledError(f"workflow {workflow_id} was deleted"))
        elif record.status is not WorkflowStatus.PENDING and not run.compensating:
            run.stop(run.stop_error_for(record.status, record.error))

    # -- schedules ------------------------------------------------------------------------
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

    async def _start_tick(self, schedule: ScheduleRecord, tick: dt.datetime) -> bool:
        workflow = self.registry.workflows.get(schedule.workflow_name)
        if workflow is None:
            return False  # another application's schedule: its own workers tick (and mark) it
        data = json.loads(schedule.input)
        await self.starter.start_workflow(
            workflow,
            (tick, *data.get("args", [])),
            dict(data.get("kwargs", {})),
            StartOptions(workflow_id=tick_id(schedule.name, tick)),
        )
        return True

    # -- recovery -----------------------------------------------------------------------------
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
        self.runs.launch(record, workflow, await self.store.load_steps(record.workflow_id))
        return True

    # -- reading --------------------------------------------------------------------------
    async def list_workflows(self, query: WorkflowQuery) -> list[WorkflowInfo]:
        return await self.infos(await self.store.list_workflows(query))

    async def list_steps(self, workflow_id: str) -> list[StepInfo]:
        await self.operations.get_record(workflow_id)
        return [StepInfo.from_record(s) for s in await self.store.load_steps(workflow_id)]
