"""What a queued workflow costs beside a direct start, in one process (`python -m bench.queue_costs`).

Alternating rounds of N 3-step workflows (500 in flight) started directly and through a queue
without limits, each on a fresh database: workflows/s, commits per workflow
(``pg_stat_database.xact_commit`` of the whole process, read with no session connected: the
launch, its migrations and 100 warm-up workflows included, over N + 100),
the process's CPU time per workflow, reads of the workflow row per workflow (the store's
``get_workflow``/``get_workflows`` calls and rows, counted by wrapping them) and the median time
a queued workflow waited ENQUEUED (``started_at - created_at``). CPU per workflow drifts less
than wall-clock throughput on a shared machine: compare it between checkouts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from bench import pgadmin
from bench.pgadmin import database_url, reset_database
from bench.worker import OursDriver
from bench.workloads import bounded

DATABASE = "bench_queue_costs"
WARM_UP = 100  # workflows before the measured batch (their commits are counted with it)


def count_reads(store: Any, counts: Counter[str]) -> None:
    """Count the store's reads of workflow rows (calls, and rows for the gathered ones)."""
    for name in ("get_workflow", "get_workflows"):
        original = getattr(store, name, None)
        if original is None:
            continue

        def wrapped(*args: Any, _original: Any = original, _name: str = name) -> Any:
            counts[_name] += 1
            if _name == "get_workflows":
                counts["rows"] += len(args[0])
            else:
                counts["rows"] += 1
            return _original(*args)

        setattr(store, name, wrapped)


async def one_round(admin: str, via_queue: bool, count: int, inflight: int) -> dict[str, Any]:
    reset_database(admin, DATABASE)
    url = database_url(admin, DATABASE)
    before = pgadmin.settled_counters(admin, DATABASE, [DATABASE]).commits
    driver = OursDriver(url, with_queue=True)
    await driver.launch()
    counts: Counter[str] = Counter()
    start = driver.enqueue if via_queue else driver.start

    async def one(x: int) -> object:
        return await driver.result(await start(3, x))

    await bounded(inflight, range(WARM_UP), one)
    count_reads(driver.app.store, counts)
    began, cpu = time.perf_counter(), time.process_time()
    await bounded(inflight, range(count), one)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY started_at - created_at)"
            " FROM orchestrator.workflows"
        ).fetchone()
    await driver.shutdown()
    after = pgadmin.settled_counters(admin, DATABASE, [DATABASE]).commits
    return {
        "workflows_per_s": count / seconds,
        "commits_per_wf": (after - before) / (count + WARM_UP),
        "cpu_us_per_wf": cpu / count * 1e6,
        "row_reads_per_wf": counts["rows"] / count,
        "read_queries_per_wf": (counts["get_workflow"] + counts["get_workflows"]) / count,
        "enqueued_median_ms": float(row[0]) if row and row[0] is not None else 0.0,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/root")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--inflight", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", default="bench/results/queue_costs.json")
    options = parser.parse_args()
    rounds: list[dict[str, Any]] = []
    print(
        f"{'round':>5}  {'start':>6}  {'wf/s':>6}  {'commits/wf':>10}  {'CPU us/wf':>9}  "
        f"{'row reads/wf':>12}  {'read queries/wf':>15}  {'ENQUEUED ms':>11}"
    )
    for n in range(1, options.rounds + 1):
        for via_queue in (False, True):
            figures = await one_round(
                options.database_url, via_queue, options.count, options.inflight
            )
            figures |= {"round": n, "start": "queue" if via_queue else "direct"}
            rounds.append(figures)
            print(
                f"{n:>5}  {figures['start']:>6}  {figures['workflows_per_s']:>6.0f}  "
                f"{figures['commits_per_wf']:>10.2f}  {figures['cpu_us_per_wf']:>9.0f}  "
                f"{figures['row_reads_per_wf']:>12.2f}  {figures['read_queries_per_wf']:>15.3f}  "
                f"{figures['enqueued_median_ms']:>11.0f}",
                flush=True,
            )
        pair = rounds[-2:]
        print(
            f"       queue / direct: {pair[1]['workflows_per_s'] / pair[0]['workflows_per_s']:.2f}"
        )
    Path(options.json).parent.mkdir(parents=True, exist_ok=True)
    Path(options.json).write_text(json.dumps(rounds, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
