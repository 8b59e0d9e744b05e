"""What the wake's statements cost PostgreSQL per row, alone (#21 item 5):

    python -m bench.statement_costs [--workflows 20000] [--batch 100]

On a fresh database with ``--workflows`` PENDING workflows, runs each statement of a wake over
all of them, ``--batch`` rows a statement, in autocommit from one connection (as group commit
does), and prints the backend's CPU per row (``/proc/<pid>/stat`` of its process: a local
server) and the wall time per row: the delivery of a message to a parked recv (the message
row and the recv's step, ``deliver_messages_batch``), the final status
(``finish_workflows_batch``), the two in one statement as a wake writes them since 8196ca6
(the recv's step and the final status, ``finish_after_steps_batch``), and for scale a plain
multi-row INSERT of step rows. Each again
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
from orchestrator.store.base import StepRecord
from orchestrator.store.postgres import PLANNED_EACH_TIME
from orchestrator.store.postgres_writes import (
    deliver_messages_params,
    finish_after_steps_params,
    finish_workflows_params,
)
from orchestrator.store.queries import load_queries
from orchestrator.types import StepKind

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
DATABASE = "bench_statement_costs"  # the default; --database names another
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


def fresh(database: str, workflows: int, unguarded: str) -> psycopg.Connection[Any]:
    """A fresh, migrated database with ``workflows`` PENDING workflows (w0, w1 …)."""
    reset_database(ADMIN_URL, database)
    url = database_url(ADMIN_URL, database)

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


def _recv(workflow_id: str, output: str | None = None) -> StepRecord:
    return StepRecord(workflow_id, 1, "recv", StepKind.RECV, output=output, started_at=0, epoch=0)


# Each statement's parameters as the store builds them (orchestrator.store.postgres_writes).
def deliver(ids: list[str]) -> dict[str, Any]:
    return deliver_messages_params([(w, "bench", '"wake"', f"k-{w}", _recv(w)) for w in ids])


def finish(ids: list[str]) -> dict[str, Any]:
    return finish_workflows_params([(w, "SUCCESS", '"wake"', None, 0) for w in ids])


def finish_with_recv(ids: list[str]) -> dict[str, Any]:
    """A wake since 8196ca6: the recv's step (the message its output, no message row) and the
    final status in one statement, refused while a message waits on the topic."""
    return finish_after_steps_params([(_recv(w, '"wake"'), '"wake"', "bench") for w in ids])


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
    statement: str  # a name in queries.sql, run as the store runs it, or SQL of its own
    params: Callable[[list[str]], dict[str, Any]]


def timed(
    label: str, conn: psycopg.Connection[Any], count: int, run: Callable[[int], object]
) -> None:
    """Print the backend's CPU and the wall time per unit of ``run(i)`` for i in range(count)."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
    began, cpu = time.perf_counter(), backend_cpu_seconds(pid)
    for i in range(count):
        run(i)
    wall, cpu = time.perf_counter() - began, backend_cpu_seconds(pid) - cpu
    print(f"{label:<58} {cpu / count * 1e6:>9.1f} {wall / count * 1e6:>9.1f}", flush=True)


def measure(case: Case, database: str, workflows: int, batch: int) -> None:
    """``case`` over ``workflows`` fresh workflows, ``batch`` rows a statement; per row."""
    queries = load_queries("postgres")
    sql = queries.get(case.statement, case.statement)
    prepare = False if case.statement in PLANNED_EACH_TIME else None  # as PostgresDriver.all
    ids = [f"w{i}" for i in range(workflows)]

    def run(row: int) -> None:
        if row % batch == 0:
            conn.execute(sql, case.params(ids[row : row + batch]), prepare=prepare)

    with fresh(database, workflows, case.unguarded) as conn:
        timed(case.label, conn, workflows, run)


def round_trips(database: str, count: int = 3000) -> None:
    with fresh(database, 1, "") as conn:
        conn.execute("CREATE TABLE probe (n integer)")
        timed("SELECT 1 (one round trip)", conn, count, lambda _: conn.execute("SELECT 1"))
        timed(
            "one-row INSERT, autocommit (a round trip and a commit)",
            conn,
            count,
            lambda _: conn.execute("INSERT INTO probe VALUES (1)"),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--database", default=DATABASE, help="the throwaway database (re-created)")
    parser.add_argument("--round-trips", type=int, default=3000)
    options = parser.parse_args()
    n, batch = options.workflows, options.batch
    print(f"{n:,} workflows, {batch} rows a statement; per row (per statement below the line)")
    print(f"{'statement':<58} {'PG CPU us':>9} {'wall us':>9}")
    unfenced = "  without steps_fence and the foreign keys"
    cases = [
        Case("deliver (message + recv step)", "", "deliver_messages_batch", deliver),
        Case(unfenced, "fence", "deliver_messages_batch", deliver),
        Case("finish (final status)", "", "finish_workflows_batch", finish),
        Case("  without the status NOTIFY trigger", "notify", "finish_workflows_batch", finish),
        Case(
            "recv step + final status (a wake since 8196ca6)",
            "",
            "finish_after_steps_batch",
            finish_with_recv,
        ),
        Case(unfenced, "fence", "finish_after_steps_batch", finish_with_recv),
        Case("plain INSERT of step rows", "", PLAIN_STEPS, plain_steps),
        Case(unfenced, "fence", PLAIN_STEPS, plain_steps),
    ]
    for case in cases:
        measure(case, options.database, n, batch)
    print("-" * 78)
    round_trips(options.database, options.round_trips)


if __name__ == "__main__":
    main()
