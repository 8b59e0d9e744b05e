"""Queue benchmark with real worker processes (`python -m bench.queue_workers`): enqueue-to-start
latency on an idle queue, and queue throughput with 1 and 2 worker processes on PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.pgadmin import database_url, reset_database
from bench.workloads import percentile
from orchestrator import Orchestrator

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "bench_queue"


def client(url: str) -> tuple[Orchestrator, Any]:
    """An enqueue-only app: it never runs the workflows itself."""
    app = Orchestrator("benchq", url, executor_id="bench-client", app_version="bench-queue")
    app.queue("bench", dequeue=False)

    @app.workflow(name="bench_queued")
    async def bench_queued(enqueued_at: float) -> float:
        raise AssertionError("the client never runs it")

    return app, bench_queued


def start_workers(url: str, count: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator.cli",
                "worker",
                "bench.queue_app:app",
                "--executor-id",
                f"bench-w{n}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(count)
    ]


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(timeout=30)


async def wait_workers(app: Orchestrator, count: int) -> None:
    while (
        sum(1 for w in await app.list_workers() if w.alive and w.executor_id.startswith("bench-w"))
        < count
    ):
        await asyncio.sleep(0.1)


async def latency(url: str, runs: int) -> dict[str, float]:
    app, workflow = client(url)
    workers = start_workers(url, 1)
    try:
        async with app:
            await wait_workers(app, 1)
            for _ in range(20):  # warm-up
                await (await app.start(workflow, time.time(), queue="bench")).result(timeout=30)
            delays = []
            for _ in range(runs):
                handle = await app.start(workflow, time.time(), queue="bench")
                delays.append(await handle.result(timeout=30) * 1000)
    finally:
        stop(workers)
    return {"median_ms": statistics.median(delays), "p99_ms": percentile(delays, 99)}


async def throughput(url: str, workers_count: int, total: int) -> dict[str, float]:
    app, workflow = client(url)
    workers = start_workers(url, workers_count)
    try:
        async with app:
            await wait_workers(app, workers_count)
            started = time.perf_counter()
            handles = []
            for offset in range(0, total, 500):
                batch = range(offset, min(offset + 500, total))
                handles += await asyncio.gather(
                    *(app.start(workflow, time.time(), queue="bench") for _ in batch)
                )
            await asyncio.gather(*(h.result(timeout=300) for h in handles))
            seconds = time.perf_counter() - started
    finally:
        stop(workers)
    return {"workflows_per_s": total / seconds, "seconds": seconds}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/root")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--total", type=int, default=3000)
    parser.add_argument("--json", default="bench/results/queue_workers.json")
    options = parser.parse_args()
    url = database_url(options.database_url, DATABASE)
    results: dict[str, Any] = {}
    reset_database(options.database_url, DATABASE)
    results["enqueue_to_start"] = await latency(url, options.runs)
    for count in (1, 2):
        reset_database(options.database_url, DATABASE)
        results[f"throughput_{count}_worker"] = await throughput(url, count, options.total)
    lat = results["enqueue_to_start"]
    print(
        f"enqueue -> start, idle queue, 1 worker: median {lat['median_ms']:.2f} ms, "
        f"p99 {lat['p99_ms']:.2f} ms ({options.runs} runs)"
    )
    for count in (1, 2):
        tp = results[f"throughput_{count}_worker"]
        print(
            f"queue throughput, {count} worker process(es), {options.total} one-step "
            f"workflows: {tp['workflows_per_s']:.0f} wf/s ({tp['seconds']:.2f} s)"
        )
    Path(options.json).parent.mkdir(parents=True, exist_ok=True)
    Path(options.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
