"""Queue benchmark with real worker processes (`python -m bench.queue_workers`): enqueue-to-start
latency on an idle queue, and queue throughput with 1, 2 and 4 worker processes on PostgreSQL,
with what each costs the database (commits, backend CPU, connections, WAL per workflow)."""

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

from bench import pgadmin
from bench.pgadmin import database_url, reset_database
from bench.pgsampler import ServerSampler
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


async def throughput(admin_url: str, url: str, workers_count: int, total: int) -> dict[str, float]:
    """``total`` one-step workflows through ``workers_count`` worker processes: throughput,
    and what PostgreSQL paid (commits per workflow, CPU of the database's backends, most
    connections at once, WAL per workflow; see bench/pgsampler.py)."""
    own = [DATABASE]
    before = pgadmin.settled_counters(admin_url, DATABASE, own)
    foreign = pgadmin.foreign_commits(admin_url, own)
    app, workflow = client(url)
    workers = start_workers(url, workers_count)
    sampler = ServerSampler(admin_url, DATABASE)
    try:
        async with app:
            await wait_workers(app, workers_count)
            sampler.start()
            started = time.perf_counter()
            handles = []
            for offset in range(0, total, 500):
                batch = range(offset, min(offset + 500, total))
                handles += await asyncio.gather(
                    *(app.start(workflow, time.time(), queue="bench") for _ in batch)
                )
            await asyncio.gather(*(h.result(timeout=300) for h in handles))
            seconds = time.perf_counter() - started
            cost = sampler.stop()
    finally:
        stop(workers)
    after = pgadmin.settled_counters(admin_url, DATABASE, own)
    others = pgadmin.foreign_activity(foreign, pgadmin.foreign_commits(admin_url, own))
    figures: dict[str, Any] = {
        "workflows_per_s": total / seconds if total else 0.0,
        "seconds": seconds,
        "commits": after.commits - before.commits,
        "pg_cpu_s": cost.cpu_seconds,
        "max_connections": cost.max_connections,
        "wal_bytes": cost.wal_bytes,
        "own_wal_bytes": cost.own_wal_bytes,
        "other_commits": others,
    }
    return figures


def per_workflow(run: dict[str, Any], idle: dict[str, Any], total: int) -> dict[str, Any]:
    """The run's figures per workflow; commits net of ``idle`` (the same processes launched
    and stopped with no workflow: migrations, leases, recovery, shutdown)."""
    return {
        "workflows_per_s": run["workflows_per_s"],
        "commits_per_wf": (run["commits"] - idle["commits"]) / total,
        "pg_cpu_us_per_wf": run["pg_cpu_s"] / total * 1e6,
        "pg_cpu_share": run["pg_cpu_s"] / run["seconds"],
        "max_connections": run["max_connections"],
        "wal_bytes_per_wf": run["wal_bytes"] / total,
        "own_wal_bytes_per_wf": (
            None if run["own_wal_bytes"] is None else run["own_wal_bytes"] / total
        ),
        "other_commits": run["other_commits"],
    }


def own_wal(row: dict[str, Any]) -> str:
    value = row["own_wal_bytes_per_wf"]
    return "n/a" if value is None else f"{value:.0f}"


def print_table(results: dict[str, Any], counts: list[int], total: int) -> None:
    header = (
        f"{'workers':>7}  {'wf/s':>7}  {'commits/wf':>10}  {'PG CPU us/wf':>12}  "
        f"{'PG cores':>8}  {'max conns':>9}  {'WAL B/wf':>8}  {'own WAL B/wf':>12}"
    )
    print(f"queue throughput, {total:,} one-step workflows enqueued by one client process:")
    print(header)
    print("-" * len(header))
    for count in counts:
        row = results[f"workers_{count}"]
        print(
            f"{count:>7}  {row['workflows_per_s']:>7.0f}  {row['commits_per_wf']:>10.2f}  "
            f"{row['pg_cpu_us_per_wf']:>12.0f}  {row['pg_cpu_share']:>8.2f}  "
            f"{row['max_connections']:>9}  {row['wal_bytes_per_wf']:>8.0f}  "
            f"{own_wal(row):>12}"
        )
    busy = [c for c in counts if results[f"workers_{c}"]["other_commits"]]
    if busy:
        print(
            f"note: other databases committed during the run with {busy} worker(s): 'WAL B/wf'"
            " (cluster-wide) includes their writes; 'own WAL B/wf' does not"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/root")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--total", type=int, default=3000)
    parser.add_argument("--workers", default="1,2,4", help="worker process counts to run")
    parser.add_argument("--json", default="bench/results/queue_workers.json")
    options = parser.parse_args()
    admin = options.database_url
    url = database_url(admin, DATABASE)
    counts = [int(n) for n in options.workers.split(",")]
    results: dict[str, Any] = {}
    reset_database(admin, DATABASE)
    results["enqueue_to_start"] = await latency(url, options.runs)
    lat = results["enqueue_to_start"]
    # Two commits are on that path (the enqueue's, the claim's): what one costs right now.
    results["commit_reference"] = pgadmin.pg_commit_rate(url, 1.0)
    print(
        f"enqueue -> start, idle queue, 1 worker: median {lat['median_ms']:.2f} ms, "
        f"p99 {lat['p99_ms']:.2f} ms ({options.runs} runs); one single-row commit here now: "
        f"{results['commit_reference']['commit_ms']:.2f} ms",
        flush=True,
    )
    for count in counts:
        reset_database(admin, DATABASE)
        await throughput(admin, url, count, 0)  # migrations applied: the next cycle's idle
        idle = await throughput(admin, url, count, 0)
        run = await throughput(admin, url, count, options.total)
        results[f"workers_{count}"] = per_workflow(run, idle, options.total)
    print_table(results, counts, options.total)
    Path(options.json).parent.mkdir(parents=True, exist_ok=True)
    Path(options.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
