"""The retention sweep over 100,000 finished workflows with several workers (#20):

    python -m bench.retention [--workflows 100000] [--workers 3] [--batch 500]

Seeds ``--workflows`` expired SUCCESS/COMPENSATED workflows (three steps, an event and a
message each: 600,000 rows), 5,000 kept ones (finished a minute ago, or COMPENSATION_FAILED,
which the policy does not list) and 1,000 live PENDING ones, in a fresh PostgreSQL database;
then launches ``--workers`` Orchestrators with the policy ``SUCCESS=1d,COMPENSATED=1d``
sweeping every 50 ms, and prints how long until every expired workflow is gone, the
workflows deleted per second, how many each worker deleted, the largest batch, the sessions
seen waiting on a lock (sampled every 20 ms), and checks that each expired workflow was
deleted once (the workers' counts add up to exactly the number expired) and every kept and
live row is still there.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from typing import Any

import psycopg

from bench.pgadmin import database_url, reset_database
from orchestrator import Orchestrator
from orchestrator.config import Settings
from orchestrator.types import WorkflowStatus

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
DATABASE = "bench_retention"
KEPT = 5_000
LIVE = 1_000

SEED = """
SET search_path = orchestrator;
SET session_replication_role = replica;
INSERT INTO workflows (workflow_id, name, status, input, app_version, created_at, updated_at,
    started_at, finished_at)
SELECT 'wf-' || i, 'seeded',
    CASE WHEN i <= {expired} * 0.9 THEN 'SUCCESS'
         WHEN i <= {expired} THEN 'COMPENSATED'
         WHEN i <= {expired} + {kept} / 2 THEN 'SUCCESS'
         WHEN i <= {expired} + {kept} THEN 'COMPENSATION_FAILED'
         ELSE 'PENDING' END,
    '{{"args":[],"kwargs":{{}}}}', 'seeded',
    now_ms() - 2 * 86400000, now_ms() - 2 * 86400000, now_ms() - 2 * 86400000,
    CASE WHEN i <= {expired} THEN now_ms() - 2 * 86400000 + i
         WHEN i <= {expired} + {kept} / 2 THEN now_ms() - 60000
         WHEN i <= {expired} + {kept} THEN now_ms() - 2 * 86400000 END
FROM generate_series(1, {total}) AS i;
INSERT INTO steps (workflow_id, step_number, name, kind, output, finished_at)
SELECT 'wf-' || i, s, 'reserve', 'step', '1', now_ms() - 2 * 86400000
FROM generate_series(1, {total}) AS i, generate_series(1, 3) AS s;
INSERT INTO events (workflow_id, key, value, updated_at)
SELECT 'wf-' || i, 'stage', '"x"', now_ms() FROM generate_series(1, {total}) AS i;
INSERT INTO messages (destination_id, topic, payload, consumed, created_at)
SELECT 'wf-' || i, 'go', '1', true, now_ms() FROM generate_series(1, {total}) AS i;
SET session_replication_role = origin;
ANALYZE workflows;
ANALYZE steps;
"""


def seed(url: str, expired: int) -> float:
    async def migrate() -> None:
        app = Orchestrator("bench-retention", url, executor_id="bench-retention-migrate")
        await app.store.open()
        await app.store.close()

    asyncio.run(migrate())
    total = expired + KEPT + LIVE
    began = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED.format(expired=expired, kept=KEPT, total=total))
    return time.perf_counter() - began


def count(url: str, query: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


async def sweep(url: str, workers: int, batch: int, expired: int) -> dict[str, Any]:
    settings = Settings(retention_sweep_seconds=0.05, retention_batch=batch)
    apps = [
        Orchestrator(
            "bench-retention",
            url,
            executor_id=f"sweeper-{n}",
            app_version="bench",
            settings=settings,
            retention="SUCCESS=1d,COMPENSATED=1d",
        )
        for n in range(workers)
    ]
    largest = [0]
    for app in apps:
        app.workflow(name="noop")(_noop)  # a worker (it runs workflows): it sweeps
        store = app.engine.retention.store
        original = store.delete_expired

        async def counted(
            status: WorkflowStatus, retention_ms: int, limit: int, original: Any = original
        ) -> list[str]:
            ids: list[str] = await original(status, retention_ms, limit)
            largest[0] = max(largest[0], len(ids))
            return ids

        store.delete_expired = counted  # type: ignore[method-assign]
    lock_waits = 0
    began = time.perf_counter()
    await asyncio.gather(*(app.launch() for app in apps))
    try:
        with psycopg.connect(url, autocommit=True) as watch:
            while True:
                row = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                ).fetchone()
                lock_waits += row[0] if row else 0
                left = watch.execute(
                    "SELECT count(*) FROM orchestrator.workflows WHERE status IN"
                    " ('SUCCESS', 'COMPENSATED') AND finished_at < orchestrator.now_ms() - 86400000"
                ).fetchone()
                if left is not None and left[0] == 0:
                    break
                await asyncio.sleep(0.02)
        seconds = time.perf_counter() - began
        await asyncio.sleep(0.3)  # a last sweep of each finds nothing more
        per_worker = [
            int(
                app.metrics.registry.get_sample_value(
                    "orchestrator_workflows_deleted_total", {"reason": "retention"}
                )
                or 0
            )
            for app in apps
        ]
    finally:
        await asyncio.gather(*(app.shutdown(timeout=0) for app in apps))
    return {
        "seconds": seconds,
        "per_worker": per_worker,
        "largest_batch": largest[0],
        "lock_waits": lock_waits,
        "expired": expired,
    }


async def _noop() -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    logging.getLogger("orchestrator").setLevel(logging.ERROR)  # (the seeded live rows: stranded)
    reset_database(ADMIN_URL, DATABASE)
    url = database_url(ADMIN_URL, DATABASE)
    seeded = seed(url, args.workflows)
    rows = args.workflows + KEPT + LIVE
    print(
        f"seeded {rows:,} workflows ({args.workflows:,} expired) and {rows * 5:,} rows more in {seeded:.1f} s"
    )
    result = asyncio.run(sweep(url, args.workers, args.batch, args.workflows))
    kept = count(url, "SELECT count(*) FROM orchestrator.workflows")
    steps = count(url, "SELECT count(*) FROM orchestrator.steps")
    deleted = sum(result["per_worker"])
    print(
        f"swept {args.workflows:,} expired workflows with {args.workers} workers, batches of "
        f"{args.batch}: {result['seconds']:.1f} s ({args.workflows / result['seconds']:,.0f} "
        "workflows/s, their steps, events and messages with them)"
    )
    print(f"deleted per worker: {result['per_worker']} (sum {deleted:,})")
    print(
        f"largest batch: {result['largest_batch']}; sessions seen waiting on a lock: {result['lock_waits']}"
    )
    print(f"left: {kept:,} workflows (kept {KEPT:,} + live {LIVE:,}), {steps:,} steps")
    ok = deleted == args.workflows and kept == KEPT + LIVE and steps == 3 * (KEPT + LIVE)
    print(
        "each expired workflow deleted once, kept and live rows intact: " + ("yes" if ok else "NO")
    )
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
