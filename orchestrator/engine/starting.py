"""Starting workflows: top-level, queued and child workflows, idempotent by workflow id."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from typing import Any

from orchestrator import context
from orchestrator.attributes import settable_attributes
from orchestrator.clock import Clock
from orchestrator.engine.registry import Registry
from orchestrator.engine.run import Attempt, Call, WorkflowRun, durable_run
from orchestrator.engine.runs import EngineState, Runs
from orchestrator.engine.workflows import StartOptions, WorkflowFunction, WorkflowHandle
from orchestrator.errors import (
    DuplicateWorkflowError,
    InvalidArgumentError,
    NotRegisteredError,
    WorkflowConflictError,
)
from orchestrator.metrics import Metrics
from orchestrator.serialization import check_key
from orchestrator.store.base import NewWorkflow, StepRecord, Store, WorkflowRecord
from orchestrator.tracing import STEP_NUMBER, Tracing
from orchestrator.types import StepKind, WorkflowStatus


class Starter:
    """Turns a start request into a stored workflow and, when it is to run here now, its run.
    Child workflows are durable calls of their parent."""

    def __init__(
        self,
        state: EngineState,
        *,
        store: Store,
        clock: Clock,
        registry: Registry,
        tracing: Tracing,
        metrics: Metrics,
        runs: Runs,
        handle: Callable[[str], WorkflowHandle[Any]],
    ) -> None:
        self.state = state
        self.store = store
        self.clock = clock
        self.registry = registry
        self.tracing = tracing
        self.metrics = metrics
        self.runs = runs
        self.handle = handle

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
        attributes = settable_attributes(options.attributes, options.subject)
        if timeout is not None and timeout <= 0:
            raise InvalidArgumentError(f"timeout must be > 0 seconds, got {timeout}")
        return NewWorkflow(
            workflow_id=workflow_id,
            name=workflow.name,
            status=WorkflowStatus.ENQUEUED if options.queue else WorkflowStatus.PENDING,
            input=input_text,
            executor_id=None if options.queue else self.state.executor_id,
            app_version=self.state.app_version,
            queue_name=options.queue,
            priority=options.priority,
            dedup_id=options.dedup_id,
            partition_key=options.partition_key,
            parent_workflow_id=parent_workflow_id,
            max_recovery_attempts=workflow.max_recovery_attempts,
            timeout_ms=None if timeout is None else int(timeout * 1000),
            delay_ms=None if options.delay is None else int(options.delay * 1000),
            trace_context=trace_context,
            attributes=attributes or None,
        )

    async def start_workflow(
        self,
        workflow: WorkflowFunction[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: StartOptions,
        connection: object | None = None,
    ) -> WorkflowHandle[Any]:
        """Start ``workflow`` (a child workflow when called inside one); idempotent by id.
        Returns its handle; ``handle.record`` is the stored row when this call created it.

        With ``connection`` (a psycopg connection with the caller's transaction open) the
        workflow is written in that transaction and exists once the caller commits: PENDING
        with no executor (a worker claims it on the commit's notification) or ENQUEUED."""
        self.state.require_launched(f"starting workflow {workflow.name!r}")
        if options.workflow_id is not None:
            check_key(options.workflow_id, "workflow_id")
        for value, what in (
            (options.dedup_id, "dedup_id"),
            (options.partition_key, "partition_key"),
            (options.queue, "queue"),
        ):
            if value is not None:
                check_key(value, what)
        run = durable_run()
        if run is not None and connection is not None:
            raise InvalidArgumentError(
                f"a workflow cannot start {workflow.name!r} in a transaction of its own: a"
                " workflow's body writes only through durable calls (start a child with"
                " app.start, or run the transaction in a step)"
            )
        if run is not None:
            return await self._start_child(run, workflow, args, kwargs, options)
        current = context.current()  # inside a step: a workflow of its own, not a child
        self._check_queue_options(options)
        input_text = workflow.signature.encode_input(
            args, kwargs, limit=self.state.max_payload_bytes, what=workflow.input_what
        )
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
            if connection is not None and new.status is WorkflowStatus.PENDING:
                # The row may yet roll back: nobody runs it until the caller's commit.
                new = dataclasses.replace(new, executor_id=None)
            try:
                if connection is None:
                    record, created = await self.store.create_workflow(new)
                else:
                    record, created = await self.store.create_workflow_in(connection, new)
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
        if record.status is WorkflowStatus.PENDING and record.executor_id is not None:
            self.runs.launch(record, workflow, [])
        handle = self.handle(record.workflow_id)
        handle.created(record, dict(new.attributes or {}))  # as stored: not read back
        return handle

    async def _start_child(
        self,
        run: WorkflowRun,
        workflow: WorkflowFunction[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: StartOptions,
    ) -> WorkflowHandle[Any]:
        input_text = workflow.signature.encode_input(
            args, kwargs, limit=self.state.max_payload_bytes, what=workflow.input_what
        )

        async def perform(attempt: Attempt) -> WorkflowHandle[Any]:
            child_id = options.workflow_id or f"{run.workflow_id}-{attempt.number}"
            started = self.tracing.starting(workflow.name, child_id, options.queue, parent=run)
            new = self.new_workflow(
                workflow,
                input_text,
                options,
                workflow_id=child_id,
                parent_workflow_id=run.workflow_id,
                trace_context=started.trace_context,
            )
            step = run.step_record(
                attempt.number,
                workflow.name,
                StepKind.CHILD,
                output=json.dumps(child_id),
                child_workflow_id=child_id,
                started_at=attempt.started_at,
            )
            with started:
                if started.span is not None:
                    started.span.set_attribute(STEP_NUMBER, attempt.number)
                answer = await run.write(self.store.start_child(new, step), step)
                if isinstance(answer, StepRecord):  # our own earlier start
                    return self.handle(child_id)
                record, created = answer
                started.created(created)
            if not created:
                self._check_same(record, workflow, input_text)
                return self.handle(child_id)
            self.metrics.workflow_started(workflow.name)
            if record.status is WorkflowStatus.PENDING:
                self.runs.launch(record, workflow, [])
            return self.handle(child_id)

        def replay(recorded: StepRecord) -> WorkflowHandle[Any]:
            return self.handle(recorded.child_workflow_id or json.loads(recorded.output or '""'))

        return await run.call(Call(workflow.name, StepKind.CHILD, perform=perform, replay=replay))

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
