"""The engine's own CPU per workflow under concurrency, in one process (no DBOS, no harness):

    python -m bench.cpu_per_workflow [--workflows 4000] [--inflight 500] [--rounds 3]

Runs ``--workflows`` three-step workflows with ``--inflight`` in flight on a fresh PostgreSQL
database, after a warm-up, and prints per round the throughput, the process's CPU time per
workflow (``time.process_time``) and the garbage collector's share. It is the instrument the
throughput regression of #16 was bisected with: alternate two checkouts
(``PYTHONPATH=<checkout> python -m bench.cpu_per_workflow``) and compare the CPU per workflow,
which drifts far less on a shared machine than wall-clock throughput does.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
import uuid
from typing import Any

import psycopg
from psycopg import sql

from bench.pgadmin import database_url
from orchestrator import Orchestrator

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")


class GcClock:
    """Time spent in the garbage collector, and its collections per generation."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._began
            self.collections[info["generation"]] += 1


async def measure(url: str, workflows: int, inflight: int, rounds: int) -> None:
    app = Orchestrator("cpu", url, app_version="cpu", executor_id="cpu")

    @app.step()
    async def add_one(value: int) -> int:
        return value + 1

    @app.workflow()
    async def three_steps(n: int) -> int:
        value = 0
        for _ in range(n):
            value = await add_one(value)
        return value

    gate = asyncio.Semaphore(max(inflight, 1))

    async def one() -> None:
        async with gate:
            await (await app.start(three_steps, 3)).result()

    async with app:
        await asyncio.gather(*[one() for _ in range(min(workflows, 500))])  # warm-up
        for round_number in range(1, rounds + 1):
            collector = GcClock()
            gc.callbacks.append(collector)
            began, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*[one() for _ in range(workflows)])
            elapsed, used = time.perf_counter() - began, time.process_time() - cpu
            gc.callbacks.remove(collector)
            print(
                f"round {round_number}: {workflows / elapsed:,.0f} workflows/s, "
                f"{used / workflows * 1e6:,.0f} us CPU per workflow "
                f"(GC {collector.seconds / workflows * 1e6:,.0f} us; collections by generation "
                f"{collector.collections})",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=4000)
    parser.add_argument("--inflight", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=ADMIN_URL, help="admin URL (a database is made)")
    args = parser.parse_args()
    name = f"bench_cpu_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = database_url(args.database_url, name)
    try:
        asyncio.run(measure(url, args.workflows, args.inflight, args.rounds))
    finally:
        with psycopg.connect(args.database_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    main()
