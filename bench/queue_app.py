"""The application the queue benchmark's worker processes run (`saga worker bench.queue_app:app`)."""

from __future__ import annotations

import os
import time

from orchestrator import Orchestrator

app = Orchestrator("benchq", os.environ.get("DATABASE_URL"), app_version="bench-queue")
app.queue("bench", worker_concurrency=int(os.environ.get("BENCH_WORKER_CONCURRENCY", "200")))


@app.step()
async def touch(value: int) -> int:
    return value


@app.workflow(name="bench_queued")
async def bench_queued(enqueued_at: float) -> float:
    """Returns the seconds from enqueue to the workflow's first line (the wall clock is shared:
    all processes run on this machine)."""
    started = time.time()
    await touch(1)
    return started - enqueued_at
