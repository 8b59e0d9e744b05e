"""The store operations that coordinate many workers: queue dequeues, leases and takeover,
and schedules, written once as plans of named queries (see plans.py)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.errors import WorkflowConflictError
from orchestrator.store.base import (
    DequeueRequest,
    DequeueResult,
    QueueStats,
    ScheduleRecord,
    WorkerRecord,
    WorkflowRecord,
)
from orchestrator.store.operations import SQLStore
from orchestrator.store.plans import Plan, Statement, rowcount_plan, rows_plan, workflow_from_row

_UNLIMITED = 1 << 30


def _schedule_from_row(row: Mapping[str, Any]) -> ScheduleRecord:
    return ScheduleRecord(
        name=row["name"],
        workflow_name=row["workflow_name"],
        cron=row["cron"],
        input=row["input"],
        paused=bool(row["paused"]),
        catch_up=bool(row["catch_up"]),
        declared=bool(row["declared"]),
        last_tick_ms=row["last_tick_ms"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _dequeue(request: DequeueRequest) -> Plan[DequeueResult]:
    """Count what runs, take what the limits allow, oldest (or most urgent) first."""
    yield Statement("lock_queue", {"queue_name": request.queue_name})
    partitions: list[str | None] = [None]
    if request.partitioned:
        rows = (yield Statement("queue_partitions", {"queue_name": request.queue_name})).rows
        partitions = [row["partition_key"] for row in rows if row["partition_key"] is not None]
    started: list[WorkflowRecord] = []
    retry_at: list[int] = []
    budget = request.max_count
    for partition in partitions:
        if budget <= 0:
            break
        counts = (
            yield Statement(
                "queue_counts",
                {
                    "queue_name": request.queue_name,
                    "partition_key": partition,
                    "executor_id": request.executor_id,
                    "window_ms": request.rate_window_ms,
                },
            )
        ).one() or {}
        running, mine = int(counts.get("running") or 0), int(counts.get("mine") or 0)
        free = budget
        if request.concurrency is not None:
            free = min(free, request.concurrency - running)
        if request.worker_concurrency is not None:
            free = min(free, request.worker_concurrency - mine)
        if request.rate_limit is not None:
            recent = int(counts.get("recent") or 0)
            free = min(free, request.rate_limit - recent)
            if recent >= request.rate_limit and counts.get("oldest_recent") is not None:
                retry_at.append(int(counts["oldest_recent"]) + request.rate_window_ms + 1)
        if free <= 0:
            continue
        rows = (
            yield Statement(
                "claim_queued",
                {
                    "queue_name": request.queue_name,
                    "partition_key": partition,
                    "executor_id": request.executor_id,
                    "app_version": request.app_version,
                    "use_priority": request.use_priority,
                    "n": free,
                },
            )
        ).rows
        started.extend(workflow_from_row(row) for row in rows)
        budget -= len(rows)
    due = (yield Statement("next_delayed", {"queue_name": request.queue_name})).one()
    if due is not None and due.get("due") is not None:
        retry_at.append(int(due["due"]))
    if request.use_priority:  # (claim order is kept within a priority: the sort is stable)
        started.sort(key=lambda record: record.priority)
    return DequeueResult(started=started, retry_at_ms=min(retry_at) if retry_at else None)


def _save_schedule(schedule: ScheduleRecord, replace: bool) -> Plan[ScheduleRecord]:
    params = {
        "name": schedule.name,
        "workflow_name": schedule.workflow_name,
        "cron": schedule.cron,
        "input": schedule.input,
        "paused": schedule.paused,
        "catch_up": schedule.catch_up,
        "declared": schedule.declared,
    }
    row = (yield Statement("upsert_schedule" if replace else "insert_schedule", params)).one()
    if row is None:
        raise WorkflowConflictError(
            f"a schedule named {schedule.name!r} exists already; delete it first or choose "
            "another name",
            name=schedule.name,
        )
    return _schedule_from_row(row)


class CoordinatedSQLStore(SQLStore):
    """SQLStore plus queues, worker leases and schedules."""

    # -- queues -----------------------------------------------------------------------------
    async def dequeue(self, request: DequeueRequest) -> DequeueResult:
        """Start as many due workflows as the queue's limits allow (see Store.dequeue)."""
        if request.max_count <= 0:
            return DequeueResult(started=[])
        return await self._run(functools.partial(_dequeue, request), transaction=True)

    async def queue_stats(self, queue_name: str | None) -> list[QueueStats]:
        """Depth, running and recent starts per queue."""
        rows = await self._run(
            functools.partial(rows_plan, "queue_stats", queue_name=queue_name), transaction=False
        )
        return [
            QueueStats(
                queue_name=row["queue_name"],
                depth=int(row["depth"]),
                running=int(row["running"]),
                started_last_minute=int(row["started_last_minute"]),
            )
            for row in rows
        ]

    # -- workers ----------------------------------------------------------------------------
    async def register_worker(
        self, executor_id: str, app_version: str | None, lease_ms: int, host: str, pid: int
    ) -> int:
        """Register this executor with a fresh lease; its expiry (epoch ms)."""
        rows = await self._run(
            functools.partial(
                rows_plan,
                "register_worker",
                executor_id=executor_id,
                app_version=app_version,
                lease_ms=lease_ms,
                host=host,
                pid=pid,
            ),
            transaction=False,
        )
        return int(rows[0]["lease_expires_at"])

    async def renew_lease(self, executor_id: str, lease_ms: int) -> int | None:
        """Extend an unexpired lease; None if it had expired."""
        rows = await self._run(
            functools.partial(rows_plan, "renew_lease", executor_id=executor_id, lease_ms=lease_ms),
            transaction=False,
        )
        return int(rows[0]["lease_expires_at"]) if rows else None

    async def release_worker(self, executor_id: str) -> None:
        """Expire this executor's lease now."""
        await self._run(
            functools.partial(rowcount_plan, "release_worker", executor_id=executor_id),
            transaction=False,
        )

    async def take_over(
        self, executor_id: str, app_version: str | None, limit: int
    ) -> list[WorkflowRecord]:
        """Claim unfinished workflows of dead workers (see Store.take_over)."""
        rows = await self._run(
            functools.partial(
                rows_plan,
                "take_over",
                executor_id=executor_id,
                app_version=app_version,
                limit=limit,
            ),
            transaction=False,
        )
        await self._run(functools.partial(rowcount_plan, "forget_dead_workers"), transaction=False)
        return [workflow_from_row(row) for row in rows]

    async def owned_workflows(self, executor_id: str, workflow_ids: Sequence[str]) -> set[str]:
        """Which of ``workflow_ids`` still run on ``executor_id``."""
        if not workflow_ids:
            return set()
        rows = await self._run(
            functools.partial(
                rows_plan,
                "owned_workflows",
                executor_id=executor_id,
                workflow_ids=list(workflow_ids),
            ),
            transaction=False,
        )
        return {row["workflow_id"] for row in rows}

    async def list_workers(self) -> list[WorkerRecord]:
        """Registered workers, oldest first."""
        rows = await self._run(functools.partial(rows_plan, "list_workers"), transaction=False)
        return [
            WorkerRecord(
                executor_id=row["executor_id"],
                app_version=row["app_version"],
                host=row["host"],
                pid=row["pid"],
                started_at=row["started_at"],
                heartbeat_at=row["heartbeat_at"],
                lease_expires_at=row["lease_expires_at"],
                alive=bool(row["alive"]),
            )
            for row in rows
        ]

    # -- schedules --------------------------------------------------------------------------
    async def save_schedule(self, schedule: ScheduleRecord, *, replace: bool) -> ScheduleRecord:
        """Create (or with ``replace`` update) a schedule."""
        return await self._run(
            functools.partial(_save_schedule, schedule, replace), transaction=False
        )

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule by name."""
        rows = await self._run(functools.partial(rows_plan, "list_schedules"), transaction=False)
        return [_schedule_from_row(row) for row in rows]

    async def set_schedule_paused(self, name: str, paused: bool) -> ScheduleRecord | None:
        """Pause or resume a schedule; None if there is none."""
        rows = await self._run(
            functools.partial(rows_plan, "set_schedule_paused", name=name, paused=paused),
            transaction=False,
        )
        return _schedule_from_row(rows[0]) if rows else None

    async def delete_schedule(self, name: str) -> bool:
        """Delete a schedule; False if there was none."""
        deleted = await self._run(
            functools.partial(rowcount_plan, "delete_schedule", name=name), transaction=False
        )
        return deleted > 0

    async def mark_schedule_tick(self, name: str, tick_ms: int) -> None:
        """Remember the latest tick that ran."""
        await self._run(
            functools.partial(rowcount_plan, "mark_schedule_tick", name=name, tick_ms=tick_ms),
            transaction=False,
        )
