"""What an operator (or a workflow) asks of stored workflows, behind the Orchestrator's methods:
cancel / resume / fork and the rollback actions, listings, queue statistics, schedules and
workers. Each call works outside a workflow (direct) and inside one (recorded as a step, so a
replay does not repeat it)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from orchestrator.engine.core import Engine
from orchestrator.engine.replay import ReplayVerdict, replay_history
from orchestrator.engine.steps import StepFunction, call_step
from orchestrator.engine.workflows import WorkflowFunction, WorkflowHandle
from orchestrator.errors import InvalidArgumentError, NotRegisteredError
from orchestrator.scheduler import check_cron, schedule_input
from orchestrator.store.base import (
    QueueStats,
    ScheduleRecord,
    Store,
    WorkflowQuery,
)
from orchestrator.types import RUNNING_STATUSES, WorkflowStatus
from orchestrator.views import ScheduleInfo, StepInfo, VersionInfo, WorkerInfo, WorkflowInfo

T = TypeVar("T")

# What an upgrade check replays: workflows that will run again (queued ones may have steps:
# a queued workflow taken over from a dead worker goes back to its queue with its history).
UNFINISHED = (WorkflowStatus.PENDING, WorkflowStatus.COMPENSATING, WorkflowStatus.ENQUEUED)


async def _call(thunk: Callable[[], Awaitable[Any]]) -> Any:
    return await thunk()


async def _call_infos(thunk: Callable[[], Awaitable[Any]]) -> list[WorkflowInfo]:
    result: list[WorkflowInfo] = await thunk()
    return result


async def _call_steps(thunk: Callable[[], Awaitable[Any]]) -> list[StepInfo]:
    result: list[StepInfo] = await thunk()
    return result


def _nonempty(value: object) -> bool:
    """A non-empty string (checked at run time: callers pass what the caller sent)."""
    return isinstance(value, str) and bool(value)


_OPERATIONS: dict[Callable[..., Any], StepFunction[Any, Any]] = {
    op: StepFunction(op, name=op.__name__) for op in (_call, _call_infos, _call_steps)
}


class Administration:
    """The operator's calls, given the engine and the store they act on."""

    def __init__(
        self,
        engine: Engine,
        store: Store,
        workflow_of: Callable[[WorkflowFunction[Any, Any] | str], WorkflowFunction[Any, Any]],
    ) -> None:
        self.engine = engine
        self.store = store
        self._workflow_of = workflow_of

    async def _op(self, thunk: Callable[[], Awaitable[T]], op: Callable[..., Any] = _call) -> T:
        """Run a management call, recorded as a step (named after ``thunk``) when made
        inside a workflow."""
        result: T = await call_step(_OPERATIONS[op], (thunk,), {}, name=thunk.__name__)
        return result

    async def cancel(self, workflow_id: str, *, compensate: bool = False) -> None:
        """Cancel a workflow: it stops at its next durable call and ends CANCELLED. With
        ``compensate=True`` a saga first rolls back its completed steps (then COMPENSATED)."""

        async def cancel() -> None:
            await self.engine.operations.cancel(workflow_id, compensate=compensate)

        await self._op(cancel)

    async def retry_compensation(self, workflow_id: str) -> WorkflowHandle[Any]:
        """Retry the failed compensation of a COMPENSATION_FAILED saga and finish its rollback."""

        async def retry_compensation() -> str:
            return (await self.engine.operations.retry_compensation(workflow_id)).workflow_id

        return WorkflowHandle(self.engine, await self._op(retry_compensation))

    async def skip_compensation(
        self, workflow_id: str, *, step: int, reason: str, by: str | None = None
    ) -> WorkflowHandle[Any]:
        """Give up undoing forward step ``step`` of a COMPENSATION_FAILED saga (the person
        ``by`` and the ``reason`` are recorded in its history) and finish the rollback."""
        who = by or getpass.getuser()

        async def skip_compensation() -> str:
            handle = await self.engine.operations.skip_compensation(workflow_id, step, reason, who)
            return handle.workflow_id

        return WorkflowHandle(self.engine, await self._op(skip_compensation))

    async def resume(self, workflow_id: str) -> WorkflowHandle[Any]:
        """Run a CANCELLED, ERROR or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflow again from its last
        checkpoint (failed steps at the end of its history are retried)."""

        async def resume() -> str:
            return (await self.engine.operations.resume(workflow_id)).workflow_id

        return WorkflowHandle(self.engine, await self._op(resume))

    async def fork(
        self,
        workflow_id: str,
        from_step: int = 1,
        *,
        new_workflow_id: str | None = None,
        app_version: str | None = None,
    ) -> WorkflowHandle[Any]:
        """A new workflow with the same input that reuses steps before ``from_step`` (run by
        a worker of ``app_version`` when given)."""
        if app_version is not None and not _nonempty(app_version):
            raise InvalidArgumentError("app_version must be a non-empty string")

        async def fork() -> str:
            return (
                await self.engine.operations.fork(
                    workflow_id, from_step, new_workflow_id, app_version
                )
            ).workflow_id

        return WorkflowHandle(self.engine, await self._op(fork))

    async def list_workflows(
        self,
        *,
        status: WorkflowStatus | str | list[WorkflowStatus] | None = None,
        name: str | None = None,
        queue: str | None = None,
        parent_workflow_id: str | None = None,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
        app_version: str | None = None,
        stranded: bool = False,
        limit: int = 100,
        offset: int = 0,
        ascending: bool = False,
    ) -> list[WorkflowInfo]:
        """Workflows matching the filters, newest first (unless ``ascending``)."""
        if limit < 1 or limit > 10_000 or offset < 0:
            raise InvalidArgumentError("limit must be 1..10000 and offset >= 0")
        statuses = None
        if status is not None:
            raw = status if isinstance(status, list) else [status]
            try:
                statuses = [WorkflowStatus(s) for s in raw]
            except ValueError as exc:
                raise InvalidArgumentError(
                    f"unknown status {status!r}; use one of {', '.join(WorkflowStatus)}"
                ) from exc
        query = WorkflowQuery(
            statuses=statuses,
            name=name,
            queue_name=queue,
            parent_workflow_id=parent_workflow_id,
            created_after_ms=None
            if created_after is None
            else int(created_after.timestamp() * 1000),
            created_before_ms=None
            if created_before is None
            else int(created_before.timestamp() * 1000),
            app_version=app_version,
            stranded=stranded,
            limit=limit,
            offset=offset,
            ascending=ascending,
        )

        async def list_workflows() -> list[WorkflowInfo]:
            return await self.engine.list_workflows(query)

        return await self._op(list_workflows, _call_infos)

    async def list_steps(self, workflow_id: str) -> list[StepInfo]:
        """Every recorded step (forward steps and compensations) of a workflow, in order."""

        async def list_steps() -> list[StepInfo]:
            return await self.engine.list_steps(workflow_id)

        return await self._op(list_steps, _call_steps)

    # -- queues, schedules, workers ---------------------------------------------------------
    async def list_queued(
        self, queue: str | None = None, *, limit: int = 100
    ) -> list[WorkflowInfo]:
        """Workflows waiting on a queue (or on any queue), oldest first."""
        self.engine.require_launched("list_queued")
        query = WorkflowQuery(
            statuses=[WorkflowStatus.ENQUEUED], queue_name=queue, limit=limit, ascending=True
        )
        infos = await self.engine.list_workflows(query)
        return [info for info in infos if info.queue_name is not None]

    async def queue_stats(self, queue: str | None = None) -> list[QueueStats]:
        """Depth, running count and starts in the last minute, per queue."""
        self.engine.require_launched("queue_stats")
        return await self.store.queue_stats(queue)

    async def create_schedule(
        self,
        name: str,
        workflow: WorkflowFunction[Any, Any] | str,
        cron: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        catch_up: bool = False,
        replace: bool = False,
    ) -> ScheduleInfo:
        """Store a schedule that any worker runs: each tick of ``cron`` (six fields, seconds
        first) starts ``workflow(scheduled_time, *args, **kwargs)`` once."""
        self.engine.require_launched("create_schedule")
        if not name or not isinstance(name, str):
            raise InvalidArgumentError("a schedule needs a non-empty name")
        function = self._workflow_of(workflow)
        check_cron(cron)
        function.signature.bind((None, *args), kwargs or {})  # the arguments must fit
        record = ScheduleRecord(
            name=name,
            workflow_name=function.name,
            cron=cron,
            input=schedule_input(tuple(args), kwargs or {}),
            catch_up=catch_up,
        )
        return ScheduleInfo.from_record(await self.store.save_schedule(record, replace=replace))

    async def pause_schedule(self, name: str) -> ScheduleInfo:
        """Stop starting ticks of a schedule until resumed."""
        return await self._set_paused(name, True)

    async def resume_schedule(self, name: str) -> ScheduleInfo:
        """Start ticking a paused schedule again (from now on)."""
        return await self._set_paused(name, False)

    async def _set_paused(self, name: str, paused: bool) -> ScheduleInfo:
        self.engine.require_launched("pause_schedule" if paused else "resume_schedule")
        record = await self.store.set_schedule_paused(name, paused)
        if record is None:
            raise NotRegisteredError(f"no schedule named {name!r}", name=name)
        return ScheduleInfo.from_record(record)

    async def delete_schedule(self, name: str) -> None:
        """Delete a schedule; the workflows it started stay."""
        self.engine.require_launched("delete_schedule")
        if not await self.store.delete_schedule(name):
            raise NotRegisteredError(f"no schedule named {name!r}", name=name)

    async def list_schedules(self) -> list[ScheduleInfo]:
        """Every stored schedule (declared and created)."""
        self.engine.require_launched("list_schedules")
        return [ScheduleInfo.from_record(r) for r in await self.store.list_schedules()]

    async def list_workers(self) -> list[WorkerInfo]:
        """Workers registered in the database, with their leases."""
        self.engine.require_launched("list_workers")
        return [WorkerInfo.from_record(r) for r in await self.store.list_workers()]

    # -- application versions ---------------------------------------------------------------
    async def list_versions(self) -> list[VersionInfo]:
        """Every application version seen, most recently seen first."""
        self.engine.require_launched("list_versions")
        return [VersionInfo.from_record(r) for r in await self.store.list_versions()]

    async def stranded(self) -> dict[str | None, int]:
        """Unfinished workflows of versions no live worker serves: app_version -> count."""
        self.engine.require_launched("stranded")
        return await self.store.stranded_counts()

    async def move_workflows(self, workflow_ids: list[str], app_version: str) -> list[str]:
        """Give these unfinished workflows ``app_version``: a live worker of that version takes
        each over. Workflows a live worker runs now, finished or unknown ones are left as they
        are; returns the ids moved."""
        self.engine.require_launched("move_workflows")
        if not _nonempty(app_version):
            raise InvalidArgumentError("app_version must be a non-empty string")
        ids: object = workflow_ids
        if not isinstance(ids, list | tuple) or not all(_nonempty(i) for i in ids):
            raise InvalidArgumentError("workflow_ids must be a list of workflow ids")
        moved = await self.store.move_workflows(list(dict.fromkeys(workflow_ids)), app_version)
        return [record.workflow_id for record in moved]

    # -- the upgrade check (docs/upgrading.md) --------------------------------------------
    async def upgrade_check(
        self, *, app_version: str, adopt: bool = False, workflow_ids: list[str] | None = None
    ) -> list[ReplayVerdict]:
        """Replay every unfinished workflow's history (or those of ``workflow_ids``) against
        this code, executing nothing; with ``adopt``, move the compatible ones of other
        versions to ``app_version`` (except those a live worker runs now)."""
        engine = self.engine
        verdicts: list[ReplayVerdict] = []
        page = 500
        offset = 0
        while True:
            records = await self.store.list_workflows(
                WorkflowQuery(
                    statuses=UNFINISHED,
                    workflow_ids=workflow_ids,
                    limit=page,
                    offset=offset,
                    ascending=True,
                )
            )
            for record in records:
                steps = await self.store.load_steps(record.workflow_id)
                verdicts.append(
                    await replay_history(
                        engine.registry.workflows.get(record.name),
                        record,
                        steps,
                        store=self.store,
                        clock=engine.clock,
                        saga=engine.saga,
                    )
                )
            if len(records) < page:
                break
            offset += page
        if not adopt:
            return verdicts
        movable = [
            v.workflow_id
            for v in verdicts
            if v.compatible and v.app_version != app_version and v.status in RUNNING_STATUSES
        ]
        moved = {r.workflow_id for r in await self.store.move_workflows(movable, app_version)}
        return [
            dataclasses.replace(v, adopted=True) if v.workflow_id in moved else v for v in verdicts
        ]
