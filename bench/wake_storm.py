"""Where a wake storm's time goes, in one process (#21 item 5):

    python -m bench.wake_storm [--parked 100000] [--window 100] [--rounds 1]

Parks ``--parked`` workflows in ``recv`` (the benchmark's ``wait_message``, ``--window`` starts
in flight), then sends to every one (``--window`` sends in flight) and awaits every result, as
``python -m bench --only parked`` does, on a fresh database. For each phase it prints the wall
time and what it cost: the process's CPU per workflow, the part of it the cyclic garbage
collector took (``gc.callbacks``) and its full collections, the database's backend CPU per
workflow and its WAL per workflow (``bench.pgsampler``: a local server, read from /proc), for
the wake group commit's rows per statement, and after parking the objects the collector tracks
per parked workflow. The wall time is bounded by the busier of the two processes: where the
process's and the server's CPU together stay under the two cores, the rest is round trips. ``--no-final-write`` answers the wake's final
writes without the database, to show what the engine's Python costs alone; set beside
``python -m bench.asyncio_floor``, what the same shape costs with tasks and futures only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import gc
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import workloads
from bench.cpu_per_workflow import GcClock
from bench.pgadmin import database_url, reset_database
from bench.pgsampler import ServerSampler
from bench.worker import OursDriver
from orchestrator.store import PostgresStore
from orchestrator.store.base import NewWorkflow, StepRecord
from orchestrator.store.batching import GroupCommit, Write
from orchestrator.types import StepKind, WorkflowStatus

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
DATABASE = "bench_wake_storm"  # the default; --database names another (re-created)


@dataclass(frozen=True)
class Phase:
    """One phase (park or wake) of one round."""

    name: str
    seconds: float
    cpu_us: float  # the process's CPU per workflow
    gc_us: float  # of which the cyclic collector's
    full_collections: int
    server_cpu_us: float  # the database's backends, per workflow
    wal_bytes: float  # per workflow, cluster-wide
    rows_per_statement: float | None = None  # group commit's rows per statement (not the park)

    def line(self) -> str:
        batches = "" if self.rows_per_statement is None else f"  {self.rows_per_statement:>8.1f}"
        return (
            f"{self.name:>6}  {self.seconds:>7.2f}  {self.cpu_us:>9.0f}  {self.gc_us:>8.0f}  "
            f"{self.full_collections:>4}  {self.server_cpu_us:>12.0f}  {self.wal_bytes:>9.0f}{batches}"
        )


async def phase(name: str, count: int, run: Any, database: str) -> tuple[Phase, Any]:
    """Run ``run()`` once, measured."""
    clock = GcClock()
    sampler = ServerSampler(ADMIN_URL, database)
    gc.callbacks.append(clock)
    sampler.start()
    began, cpu = time.perf_counter(), time.process_time()
    try:
        value = await run()
    finally:
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        gc.callbacks.remove(clock)
        server = sampler.stop()
    measured = Phase(
        name=name,
        seconds=seconds,
        cpu_us=cpu / count * 1e6,
        gc_us=clock.seconds / count * 1e6,
        full_collections=clock.collections[2],
        server_cpu_us=server.cpu_seconds / count * 1e6,
        wal_bytes=server.wal_bytes / count,
    )
    return measured, value


@contextlib.contextmanager
def final_writes_answered_at_once(batcher: GroupCommit) -> Iterator[None]:
    """The wake's final writes (a handed recv's step and the final status in one statement)
    answered as committed without the database, one event-loop turn after ``batcher`` took
    them: the engine's Python alone, without psycopg and the server (``--no-final-write``).
    Every other write still goes to the database, and nothing read afterwards depends on
    these."""
    flush = batcher._flush

    async def answered(kind: str, writes: list[Write]) -> list[Any]:
        if kind != "finish_step":
            return await flush(kind, writes)
        await asyncio.sleep(0)
        return [True] * len(writes)

    batcher._flush = answered
    try:
        yield
    finally:
        batcher._flush = flush


async def one_round(
    count: int, window: int, database: str = DATABASE, *, final_write: bool = True
) -> dict[str, Any]:
    reset_database(ADMIN_URL, database)
    driver = OursDriver(database_url(ADMIN_URL, database))
    await driver.launch()
    try:
        warm = await workloads._park(driver, min(window, count), window)  # pools at size
        await workloads._wake_all(driver, warm, window)
        gc.collect()
        tracked = len(gc.get_objects())
        park, handles = await phase(
            "park", count, lambda: workloads._park(driver, count, window), database
        )
        gc.collect()
        per_parked = (len(gc.get_objects()) - tracked) / count
        store = driver.app.store
        if not isinstance(store, PostgresStore):
            raise SystemExit("bench.wake_storm measures the PostgreSQL store")
        batcher = store.writes.batcher
        before = (batcher.flushes, batcher.writes)
        with contextlib.nullcontext() if final_write else final_writes_answered_at_once(batcher):
            wake, _ = await phase(
                "wake", count, lambda: workloads._wake_all(driver, handles, window), database
            )
        if final_write:  # group commit's batches during the wake: rows per statement
            flushes = batcher.flushes - before[0]
            rows = (batcher.writes - before[1]) / flushes if flushes else 0.0
            wake = dataclasses.replace(wake, rows_per_statement=rows)
    finally:
        await driver.shutdown()
    return {"park": park, "wake": wake, "objects_per_parked": per_parked}


async def store_writes(count: int, window: int, database: str = DATABASE) -> list[Phase]:
    """The writes of a park and a wake, each alone through the store (group commit,
    ``window`` in flight, no engine): the workflows' rows, the recv's deadline step, the
    message's insert, the recv that consumes it with its step, the final status (a message
    from another process), then, on as many other workflows, a wake as one in the sender's
    process writes it since 8196ca6: the recv's step and the final status in one statement.
    What each costs PostgreSQL and this process per workflow, to weigh a design that drops
    or fuses one of them."""
    reset_database(ADMIN_URL, database)
    store = PostgresStore(database_url(ADMIN_URL, database))
    await store.open()
    ids = [f"w{i}" for i in range(count)]
    others = [f"h{i}" for i in range(count)]
    new = functools.partial(NewWorkflow, name="w", status=WorkflowStatus.PENDING, input="{}")

    def deadline(workflow_id: str) -> Any:  # what a recv with a timeout records as it parks
        step = StepRecord(workflow_id, 1, "recv.deadline", StepKind.SLEEP, output="0", epoch=0)
        return store.record_step(step)

    def recv(workflow_id: str) -> Any:
        step = StepRecord(workflow_id, 2, "recv", StepKind.RECV, epoch=0)
        return store.recv_message(workflow_id, "t", step)

    def handed(workflow_id: str) -> Any:  # the recv's step and the final status together
        step = StepRecord(workflow_id, 2, "recv", StepKind.RECV, output='"wake"', epoch=0)
        return store.finish_after_step(step, "1", recv_topic="t")

    def create(workflow_id: str) -> Any:
        return store.create_workflow(new(workflow_id, executor_id="x", app_version="v"))

    writes: list[tuple[str, Any, list[str]]] = [
        ("create", create, ids),
        ("step", deadline, ids),
        ("send", lambda w: store.send_message(w, "t", '"wake"', None), ids),
        ("recv", recv, ids),
        ("finish", lambda w: store.finish_workflow(w, WorkflowStatus.SUCCESS, output="1"), ids),
        ("create", create, others),
        ("handed", handed, others),
    ]
    phases = []
    batcher = store.writes.batcher
    try:
        for name, write, keys in writes:
            before = (batcher.flushes, batcher.writes)
            measured, _ = await phase(
                name, count, lambda w=write, k=keys: workloads.bounded(window, k, w), database
            )
            flushes = batcher.flushes - before[0]
            rows = (batcher.writes - before[1]) / flushes if flushes else 0.0
            phases.append(dataclasses.replace(measured, rows_per_statement=rows))
    finally:
        await store.close()
    return phases


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parked", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", default="bench/results/wake_storm.json")
    parser.add_argument(
        "--no-store-writes", action="store_true", help="skip the store's writes measured alone"
    )
    parser.add_argument("--database", default=DATABASE, help="the throwaway database")
    parser.add_argument(
        "--no-final-write",
        action="store_true",
        help="answer the wake's final writes without the database: the engine's Python alone",
    )
    options = parser.parse_args()
    print(
        f"{options.parked:,} workflows parked in recv, {options.window} calls in flight"
        + ("" if not options.no_final_write else "; final writes answered without the database")
    )
    print(
        f"{'phase':>6}  {'wall s':>7}  {'CPU us/wf':>9}  {'GC us/wf':>8}  {'full':>4}  "
        f"{'PG CPU us/wf':>12}  {'WAL B/wf':>9}  {'rows/stmt':>8}"
    )
    rounds: list[dict[str, Any]] = []
    for _ in range(options.rounds):
        measured = await one_round(
            options.parked,
            options.window,
            options.database,
            final_write=not options.no_final_write,
        )
        print(measured["park"].line())
        print(measured["wake"].line())
        print(
            f"objects the collector tracks per parked workflow: {measured['objects_per_parked']:.1f}"
        )
        rounds.append(
            {
                "park": measured["park"].__dict__,
                "wake": measured["wake"].__dict__,
                "objects_per_parked": measured["objects_per_parked"],
            }
        )
    document: dict[str, Any] = {
        "parked": options.parked,
        "window": options.window,
        "final_write": not options.no_final_write,
    }
    if not options.no_store_writes:
        print(
            f"the store's writes of a wake, alone, {options.parked:,} of each (rows/statement last)"
        )
        writes = await store_writes(options.parked, options.window, options.database)
        for write in writes:
            print(write.line())
        document["store_writes"] = [write.__dict__ for write in writes]
    path = Path(options.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    document["rounds"] = rounds
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
