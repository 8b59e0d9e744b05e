"""Queues: concurrency (global and per worker), rate limits, priority, dedup and partitions.

Each worker runs one dequeue loop per declared queue. A dequeue is one transaction that takes
``FOR UPDATE SKIP LOCKED`` rows, serialized per queue across workers (an advisory lock), so the
global limits hold however many workers run. Enqueues and status changes of queued workflows
notify the queue's workers, so an idle queue starts new work within milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from orchestrator.clock import Clock
from orchestrator.engine.notifications import Waiters
from orchestrator.errors import InvalidArgumentError
from orchestrator.store.base import NOTIFY_QUEUE, DequeueRequest, Store, WorkflowRecord

logger = logging.getLogger("orchestrator.queues")

DEQUEUE_BATCH = 100  # most workflows one dequeue starts when the worker has no own limit
# A missed notification (another process's SQLite write, a dropped LISTEN) is noticed by then.
POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Queue:
    """A named queue and its limits; declare with ``app.queue(...)`` before launch.

    Args:
        concurrency: most workflows of this queue running at once across all workers.
        worker_concurrency: most running at once in one worker process.
        rate_limit: ``(limit, per_seconds)``: at most ``limit`` starts per window, all workers.
        priority: order by the ``priority`` given at start (lower first), FIFO within one.
        partitioned: apply the limits per ``partition_key`` instead of to the whole queue.
        dequeue: False for a process that only enqueues (an HTTP front end, a client): it
            never starts this queue's workflows itself.
    """

    name: str
    concurrency: int | None = None
    worker_concurrency: int | None = None
    rate_limit: tuple[int, float] | None = None
    priority: bool = False
    partitioned: bool = False
    dequeue: bool = True

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise InvalidArgumentError("a queue needs a non-empty name")
        for label, value in (
            ("concurrency", self.concurrency),
            ("worker_concurrency", self.worker_concurrency),
        ):
            if value is not None and value < 1:
                raise InvalidArgumentError(f"queue {self.name!r}: {label} must be >= 1")
        if self.rate_limit is not None:
            limit, per_seconds = self.rate_limit
            if limit < 1 or per_seconds <= 0:
                raise InvalidArgumentError(
                    f"queue {self.name!r}: rate_limit must be (limit >= 1, per_seconds > 0)"
                )


class QueueRunner:
    """The dequeue loop of one queue in one worker."""

    def __init__(
        self,
        queue: Queue,
        *,
        store: Store,
        clock: Clock,
        waiters: Waiters,
        executor_id: str,
        app_version: str | None,
        launch: Callable[[WorkflowRecord], Awaitable[None]],
    ) -> None:
        self.queue = queue
        self.store = store
        self.clock = clock
        self.waiters = waiters
        self.executor_id = executor_id
        self.app_version = app_version
        self.launch = launch
        self.running: set[str] = set()  # this worker's workflows of this queue
        self.stopping = False

    def finished(self, workflow_id: str) -> None:
        """A workflow of this queue ended here: a slot is free."""
        self.running.discard(workflow_id)
        self.waiters.notify(NOTIFY_QUEUE, self.queue.name)

    def _request(self) -> DequeueRequest:
        queue = self.queue
        free = DEQUEUE_BATCH
        if queue.worker_concurrency is not None:
            free = min(free, queue.worker_concurrency - len(self.running))
        limit, per_seconds = queue.rate_limit or (None, 0.0)
        return DequeueRequest(
            queue_name=queue.name,
            executor_id=self.executor_id,
            app_version=self.app_version,
            max_count=free,
            concurrency=queue.concurrency,
            worker_concurrency=queue.worker_concurrency,
            rate_limit=limit,
            rate_window_ms=int(per_seconds * 1000),
            use_priority=queue.priority,
            partitioned=queue.partitioned,
        )

    async def run(self) -> None:
        """Dequeue whenever the queue may have work: at once, on notifications, at due times."""
        with self.waiters.subscribe((NOTIFY_QUEUE, self.queue.name)) as subscription:
            while not self.stopping:
                due_ms: int | None = None  # a delayed start, or the rate window reopening
                try:
                    request = self._request()
                    result = await self.store.dequeue(request)
                    for record in result.started:
                        self.running.add(record.workflow_id)
                        await self.launch(record)
                    if result.started and len(result.started) == request.max_count:
                        continue  # a full batch: there may be more right away
                    due_ms = result.retry_at_ms
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("dequeue from queue %r failed; retrying", self.queue.name)
                # Until notified, until a due time (on the clock), or a re-read (a missed
                # notification: another process's SQLite write, a dropped LISTEN).
                await subscription.wait(due_ms, clock=self.clock, poll_seconds=POLL_SECONDS)
