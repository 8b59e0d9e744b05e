"""Starting workflows: top-level, queued and child workflows, idempotent by workflow id."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from orchestrator import context
from orchestrator.clock import Clock
from orchestrator.errors import (
    DuplicateWorkflowError,
    InvalidArgumentError,
    NotRegisteredError,
    WorkflowConflictError,
    WorkflowStateError,
)
from orchestrator.metrics import Metrics
from orchestrator.serialization import check_key
from orchestrator.store.base import NewWorkflow, StepRecord, Store, WorkflowRecord
from orchestrator.tracing import STEP_NUMBER, Tracing
from orchestrator.types import StepKind, WorkflowStatus
from orchestrator.workflow import Registry, StartOptions, WorkflowFunction, WorkflowHandle

if TYPE_CHECKING:
    from orchestrator.executor import WorkflowRun


class Starting:
    """Mixed into Engine: turns a start request into a stored workflow and, when it is to run
    here now, its run."""

    store: Store
    clock: Clock
    executor_id: str
    app_version: str | None
    registry: Registry
    tracing: Tracing
    metrics: Metrics

    def handle(self, workflow_id: str) -> WorkflowHandle[Any]:
        raise NotImplementedError

    def require_launched(self, operation: str) -> None:
        raise NotImplementedError

    def launch_run(
        self,
        record: WorkflowRecord,
        workflow: WorkflowFunction[Any, Any],
        recorded: list[StepRecord],
    ) -> WorkflowRun:
        raise NotImplementedError

    def workflow_named(self, name: str) -> WorkflowFunction[Any, Any]:
        workflow = self.registry.workflows.get(name)
        if workflow is None:
            known = ", ".join(sorted(self.registry.workflows)) or "none"
            raise NotRegisteredError(
                f"no workflow named {name!r} is registered (registered: {known})", name=name
            )
        return workflow

    def new_workflow(
        self,
        workflow: WorkflowFunction[Any, Any],
        input_text: str,
        options: StartOptions,
        *,
        workflow_id: str,
        parent_workflow_id: str | None = None,
        trace_context: str | None = None,
    ) -> NewWorkflow:
        timeout = options.timeout if options.timeout is not None else workflow.timeout
        if timeout is not None and timeout <= 0:
            raise InvalidArgumentError(f"timeout must be > 0 seconds, got {timeout}")
        return NewWorkflow(
            workflow_id=workflow_id,
            name=workflow.name,
            status=WorkflowStatus.ENQUEUED if options.queue else WorkflowStatus.PENDING,
            input=input_text,
            executor_id=None if options.queue else self.executor_id,
            app_version=self.app_version,
            queue_name=options.queue,
            priority=options.priority,
            dedup_id=options.dedup_id,
            partition_key=options.partition_key,
            parent_workflow_id=parent_workflow_id,
            max_recovery_attempts=workflow.max_recovery_attempts,
            timeout_ms=None if timeout is None else int(timeout * 1000),
            delay_ms=None if options.delay is None else int(options.delay * 1000),
            trace_context=trace_context,
        )

    async def start_workflow(
        self,
        workflow: WorkflowFunction[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: StartOptions,
    ) -> WorkflowHandle[Any]:
        """Start ``workflow`` (a child workflow when called inside one); idempotent by id."""
        self.require_launched(f"starting workflow {workflow.name!r}")
        if options.workflow_id is not None:
            check_key(options.workflow_id, "workflow_id")
        for value, what in (
            (options.dedup_id, "dedup_id"),
            (options.partition_key, "partition_key"),
            (options.queue, "queue"),
        ):
            if value is not None:
                check_key(value, what)
        current = context.current()
        if current is not None and current.step is None:
            return await self._start_child(current.run, workflow, args, kwargs, options)
        self._check_queue_options(options)
        input_text = workflow.signature.encode_input(args, kwargs)
        workflow_id = options.workflow_id or str(uuid.uuid4())
        # Started from inside a step: fire-and-forget (no durable parent), linked, not a child.
        with self.tracing.starting(
            workflow.name, workflow_id, options.queue, detached=current is not None
        ) as started:
            new = self.new_workflow(
                workflow,
                input_text,
                options,
                workflow_id=workflow_id,
                trace_context=started.trace_context,
            )
            try:
                record, created = await self.store.create_workflow(new)
            except DuplicateWorkflowError as exc:
                holder = exc.detail.get("workflow_id")
                if options.if_duplicate == "return" and holder:
                    started.created(False)
                    return self.handle(str(holder))
                raise
            started.created(created)
        if not created:
            self._check_same(record, workflow, input_text)
            return self.handle(record.workflow_id)
        self.metrics.workflow_started(workflow.name)
        if record.status is WorkflowStatus.PENDING:
            self.launch_run(record, workflow, [])
        return self.handle(record.workflow_id)

    async def _start_child(
        self,
        run: WorkflowRun,
        workflow: WorkflowFunction[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: StartOptions,
    ) -> WorkflowHandle[Any]:
        number = await run.begin()
        recorded = run.replayed(number, workflow.name)
        if recorded is not None and recorded.child_workflow_id is not None:
            return self.handle(recorded.child_workflow_id)
        run.check_runnable()
        input_text = workflow.signature.encode_input(args, kwargs)
        child_id = options.workflow_id or f"{run.workflow_id}-{number}"
        started = self.tracing.starting(workflow.name, child_id, options.queue, parent=run)
        new = self.new_workflow(
            workflow,
            input_text,
            options,
            workflow_id=child_id,
            parent_workflow_id=run.workflow_id,
            trace_context=started.trace_context,
        )
        step = StepRecord(
            workflow_id=run.workflow_id,
            step_number=number,
            name=workflow.name,
            kind=StepKind.CHILD,
            output=json.dumps(child_id),
            child_workflow_id=child_id,
            started_at=self.clock.now_ms(),
            epoch=run.epoch,
        )
        with started:
            if started.span is not None:
                started.span.set_attribute(STEP_NUMBER, number)
            try:
                record, created = await self.store.start_child(new, step)
            except WorkflowStateError as error:
                await run.refused(error, step)  # our own earlier start, or the run stops
                return self.handle(child_id)
            started.created(created)
        if not created:
            self._check_same(record, workflow, input_text)
            return self.handle(child_id)
        self.metrics.workflow_started(workflow.name)
        if record.status is WorkflowStatus.PENDING:
            self.launch_run(record, workflow, [])
        return self.handle(child_id)

    def _check_queue_options(self, options: StartOptions) -> None:
        if options.if_duplicate not in ("raise", "return"):
            raise InvalidArgumentError("if_duplicate must be 'raise' or 'return'")
        if options.queue is None:
            if options.dedup_id or options.partition_key or options.delay:
                raise InvalidArgumentError(
                    "dedup_id, partition_key and delay apply to queued workflows: pass queue="
                )
            return
        queue = self.registry.queues.get(options.queue)
        if queue is None:
            known = ", ".join(sorted(self.registry.queues)) or "none"
            raise NotRegisteredError(
                f"unknown queue {options.queue!r}: declare it with app.queue({options.queue!r}) "
                f"before launch (declared: {known})",
                name=options.queue,
            )
        if queue.partitioned and options.partition_key is None:
            raise InvalidArgumentError(f"queue {queue.name!r} is partitioned: pass partition_key=")
        if options.delay is not None and options.delay < 0:
            raise InvalidArgumentError(f"delay must be >= 0 seconds, got {options.delay}")

    @staticmethod
    def _check_same(
        record: WorkflowRecord, workflow: WorkflowFunction[Any, Any], input_text: str
    ) -> None:
        if record.name != workflow.name:
            raise WorkflowConflictError(
                f"workflow id {record.workflow_id!r} already belongs to a {record.name!r} "
                f"workflow; it cannot also start {workflow.name!r}. Choose another id.",
                workflow_id=record.workflow_id,
                existing_name=record.name,
            )
        if record.input != input_text:
            raise WorkflowConflictError(
                f"workflow id {record.workflow_id!r} was already started with different "
                "input; a workflow id is an idempotency key, so the same id must carry the "
                "same input. Choose another id for new input.",
                workflow_id=record.workflow_id,
            )
