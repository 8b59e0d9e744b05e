"""The plans of the store operations that coordinate many workers: queue dequeues, schedules,
and the rows of workers and schedules (see plans.py for what a plan is)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.errors import WorkflowConflictError
from orchestrator.store.base import (
    DequeueRequest,
    DequeueResult,
    ScheduleRecord,
    WorkerRecord,
    WorkflowRecord,
)
from orchestrator.store.plans import Plan, Statement, workflow_from_row

_UNLIMITED = 1 << 30


def schedule_from_row(row: Mapping[str, Any]) -> ScheduleRecord:
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


def dequeue_serialized(request: DequeueRequest) -> bool:
    """Whether a dequeue must be one transaction serialized per queue across workers: only a
    limit that all workers share (concurrency, rate limit) needs it. Otherwise ``FOR UPDATE
    SKIP LOCKED`` alone hands each due workflow to one worker, workers claim side by side, and
    this worker's own limit is counted by this worker alone (its one dequeue loop per queue)."""
    return request.concurrency is not None or request.rate_limit is not None


def dequeue(request: DequeueRequest) -> Plan[DequeueResult]:
    """Count what runs, take what the limits allow, oldest (or most urgent) first. A queue
    without a shared limit takes one statement (its claim counts this worker's running ones
    and reads when the next delayed workflow is due), two when it claims nothing."""
    serialized = dequeue_serialized(request)
    if serialized:
        yield Statement("lock_queue", {"queue_name": request.queue_name})
    partitions: list[str | None] = [None]
    if request.partitioned:
        rows = (yield Statement("queue_partitions", {"queue_name": request.queue_name})).rows
        partitions = [row["partition_key"] for row in rows if row["partition_key"] is not None]
    started: list[WorkflowRecord] = []
    retry_at: list[int] = []
    next_due: int | None = None
    due_read = False  # (a claim's rows say it)
    budget = request.max_count
    for partition in partitions:
        if budget <= 0:
            break
        free = budget
        if serialized:
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
                    # Counted here, in the claim, unless counted above already.
                    "worker_concurrency": None if serialized else request.worker_concurrency,
                },
            )
        ).rows
        started.extend(workflow_from_row(row) for row in rows)
        budget -= len(rows)
        if rows:
            next_due, due_read = rows[0]["next_due"], True
    if not due_read:  # nothing claimed to say it
        due = (yield Statement("next_delayed", {"queue_name": request.queue_name})).one()
        next_due = None if due is None else due.get("due")
    if next_due is not None:
        retry_at.append(int(next_due))
    if request.use_priority:  # (claim order is kept within a priority: the sort is stable)
        started.sort(key=lambda record: record.priority)
    return DequeueResult(started=started, retry_at_ms=min(retry_at) if retry_at else None)


def save_schedule(schedule: ScheduleRecord, replace: bool) -> Plan[ScheduleRecord]:
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
    return schedule_from_row(row)


def worker_from_row(row: Mapping[str, Any]) -> WorkerRecord:
    return WorkerRecord(
        executor_id=row["executor_id"],
        app_version=row["app_version"],
        host=row["host"],
        pid=row["pid"],
        started_at=row["started_at"],
        heartbeat_at=row["heartbeat_at"],
        lease_expires_at=row["lease_expires_at"],
        alive=bool(row["alive"]),
    )
