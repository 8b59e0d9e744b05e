"""What the wake's statements cost PostgreSQL per row, alone (#21 item 5):

    python -m bench.statement_costs [--workflows 20000] [--batch 100]

On a fresh database with ``--workflows`` PENDING workflows, runs each statement of a wake over
all of them, ``--batch`` rows a statement, in autocommit from one connection (as group commit
does), and prints the backend's CPU per row (``/proc/<pid>/stat`` of its process: a local
server) and the wall time per row: the delivery of a message to a parked recv (the message
row and the recv's step, ``deliver_messages_batch``), the final status
(``finish_workflows_batch``), and for scale a plain multi-row INSERT of step rows. Each again
without what guards it, to show what that costs: the ``steps_fence`` trigger and the foreign
keys, the status NOTIFY trigger. Those variants run on a throwaway database only; the engine
keeps every one of them (RELIABILITY.md). Also the cost of one round trip and one commit:
``SELECT 1`` and a one-row INSERT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.pgadmin import database_url, reset_database
from orchestrator.store import PostgresStore
from orchestrator.store.queries import load_queries

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
DATABASE = "bench_statement_costs"
UNGUARDED = {
    "fence": [
        "ALTER TABLE steps DISABLE TRIGGER steps_fence",
        "ALTER TABLE steps DROP CONSTRAINT steps_workflow_id_fkey",
        "ALTER TABLE messages DROP CONSTRAINT messages_destination_id_fkey",
    ],
    "notify": ["ALTER TABLE workflows DISABLE TRIGGER workflows_notify_status"],
    "": [],
}


def backend_cpu_seconds(pid: int) -> float:
    """User + system CPU of a local backend process so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fresh(workflows: int, unguarded: str) -> psycopg.Connection[Any]:
    """A fresh, migrated database with ``workflows`` PENDING workflows (w0, w1 …)."""
    reset_database(ADMIN_URL, DATABASE)
    url = database_url(ADMIN_URL, DATABASE)

    async def migrate() -> None:
        store = PostgresStore(url)
        await store.open()
        await store.close()

    asyncio.run(migrate())
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET search_path = orchestrator")
    conn.execute(
        "INSERT INTO workflows (workflow_id, name, status, input, executor_id, app_version,"
        " created_at, updated_at, started_at) SELECT 'w' || i, 'wait_message', 'PENDING',"
        " '{}', 'x', 'v', 0, 0, 0 FROM generate_series(0, %s - 1) AS i",
        (workflows,),
    )
    for statement in UNGUARDED[unguarded]:
        conn.execute(statement)
    conn.execute("ANALYZE")
    return conn


def deliver(ids: list[str]) -> dict[str, Any]:
    n = len(ids)
    return {
        "destination_ids": ids,
        "topics": ["bench"] * n,
        "payloads": ['"wake"'] * n,
        "idempotency_keys": [f"k-{workflow_id}" for workflow_id in ids],
        "step_numbers": [1] * n,
        "names": ["recv"] * n,
        "kinds": ["RECV"] * n,
        "started_ats": [0] * n,
        "epochs": [0] * n,
    }


def finish(ids: list[str]) -> dict[str, Any]:
    n = len(ids)
    return {
        "workflow_ids": ids,
        "statuses": ["SUCCESS"] * n,
        "outputs": ['"wake"'] * n,
        "errors": [None] * n,
        "epochs": [0] * n,
    }


PLAIN_STEPS = (
    "INSERT INTO steps (workflow_id, step_number, name, kind, output, attempts, started_at,"
    " finished_at, epoch) SELECT * FROM unnest(%(ids)s::text[], %(ones)s::int[],"
    " %(names)s::text[], %(kinds)s::text[], %(outputs)s::text[], %(ones)s::int[],"
    " %(zeros)s::bigint[], %(zeros)s::bigint[], %(zeros)s::bigint[])"
)


def plain_steps(ids: list[str]) -> dict[str, Any]:
    n = len(ids)
    return {
        "ids": ids,
        "ones": [1] * n,
        "names": ["recv"] * n,
        "kinds": ["RECV"] * n,
        "outputs": ['"wake"'] * n,
        "zeros": [0] * n,
    }


@dataclass(frozen=True)
class Case:
    """One statement measured: its label, what it runs without, its SQL and parameters."""

    label: str
    unguarded: str  # a key of UNGUARDED
    statement: str
    params: Callable[[list[str]], dict[str, Any]]
    prepare: bool | None  # psycopg's: None prepares at the fifth run, False never


def measure(case: Case, workflows: int, batch: int) -> None:
    with fresh(workflows, case.unguarded) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        ids = [f"w{i}" for i in range(workflows)]
        began, cpu = time.perf_counter(), backend_cpu_seconds(pid)
        for start in range(0, workflows, batch):
            conn.execute(
                case.statement, case.params(ids[start : start + batch]), prepare=case.prepare
            )
        wall, cpu = time.perf_counter() - began, backend_cpu_seconds(pid) - cpu
    print(
        f"{case.label:<58} {cpu / workflows * 1e6:>9.1f} {wall / workflows * 1e6:>9.1f}", flush=True
    )


def round_trips(count: int = 3000) -> None:
    with fresh(1, "") as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        conn.execute("CREATE TABLE probe (n integer)")
        for label, statement in (
            ("SELECT 1 (one round trip)", "SELECT 1"),
            (
                "one-row INSERT, autocommit (a round trip and a commit)",
                "INSERT INTO probe VALUES (1)",
            ),
        ):
            began, cpu = time.perf_counter(), backend_cpu_seconds(pid)
            for _ in range(count):
                conn.execute(statement)
            wall, cpu = time.perf_counter() - began, backend_cpu_seconds(pid) - cpu
            print(f"{label:<58} {cpu / count * 1e6:>9.1f} {wall / count * 1e6:>9.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    options = parser.parse_args()
    queries = load_queries("postgres")
    n, batch = options.workflows, options.batch
    print(f"{n:,} workflows, {batch} rows a statement; per row (per statement below the line)")
    print(f"{'statement':<58} {'PG CPU us':>9} {'wall us':>9}")
    deliver_sql, finish_sql = queries["deliver_messages_batch"], queries["finish_workflows_batch"]
    unfenced = "  without steps_fence and the foreign keys"
    cases = [  # as the store runs them: the delivery prepared, the final status planned each time
        Case("deliver (message + recv step)", "", deliver_sql, deliver, None),
        Case(unfenced, "fence", deliver_sql, deliver, None),
        Case("finish (final status)", "", finish_sql, finish, False),
        Case("  without the status NOTIFY trigger", "notify", finish_sql, finish, False),
        Case("plain INSERT of step rows", "", PLAIN_STEPS, plain_steps, None),
        Case(unfenced, "fence", PLAIN_STEPS, plain_steps, None),
    ]
    for case in cases:
        measure(case, n, batch)
    print("-" * 78)
    round_trips()


if __name__ == "__main__":
    main()
