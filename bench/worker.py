"""A worker process, ``python -m bench.worker``: one benchmark on one system, in this process.

The two systems sit behind the Driver protocol of workloads.py: our Orchestrator app and DBOS,
with workflows of the same shape. Each is imported only in the process that runs it, so a
DBOS worker never loads our engine and ours never loads DBOS.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.workloads import (
    APP_VERSION,
    COMMITS_MODES,
    DBOS_QUEUE_POLLING_INTERVAL_SECONDS,
    EVENT_KEY,
    EVENT_TIMEOUT_SECONDS,
    EXECUTOR_ID,
    FAMILIES,
    FAMILY_RUNNERS,
    QUEUE_NAME,
    RECV_TIMEOUT_SECONDS,
    TOPIC,
    Driver,
    Metrics,
    Parked,
    Sizes,
    commits_cycle,
)

SYSTEMS: tuple[str, ...] = ("ours", "dbos")


def make_driver(system: str, database_url: str, *, with_queue: bool = False) -> Driver:
    """The driver for ``system``. The benchmark queue is declared only ``with_queue``, so no
    other benchmark pays for a queue poller."""
    if system == "ours":
        return OursDriver(database_url, with_queue=with_queue)
    if system == "dbos":
        return DbosDriver(database_url, with_queue=with_queue)
    raise ValueError(f"unknown system {system!r}: use one of {', '.join(SYSTEMS)}")


# -- the systems ------------------------------------------------------------------------------
class OursDriver:
    """The workloads on a fresh Orchestrator (fixed executor id and app version)."""

    name = "ours"

    def __init__(self, database_url: str, *, with_queue: bool = False) -> None:
        import os

        from orchestrator.app import Orchestrator

        if os.environ.get("BENCH_TRACING"):  # python -m bench --tracing
            from bench.tracing import configure_for_bench

            configure_for_bench(os.environ["BENCH_TRACING"], os.environ["BENCH_OTLP_ENDPOINT"])
        app = Orchestrator("bench", database_url, executor_id=EXECUTOR_ID, app_version=APP_VERSION)
        self.app = app
        self.database_url = database_url
        self._probe_connection: Any = None

        @app.step()
        async def echo(x: int) -> int:
            return x

        @app.workflow()
        async def steps(n: int, x: int) -> int:
            for _ in range(n):
                x = await echo(x)
            return x

        @app.workflow()
        async def wait_message() -> list[Any]:
            Parked.count += 1
            message = await app.recv(TOPIC, timeout=RECV_TIMEOUT_SECONDS)
            return [message, time.perf_counter()]

        @app.workflow()
        async def publish(x: int) -> int:
            x = await echo(x)
            await app.set_event(EVENT_KEY, x)
            return x

        self._steps = steps
        self._wait_message = wait_message
        self._publish = publish
        self._queue_unavailable = self._declare_queue() if with_queue else "no queue declared"

    def _declare_queue(self) -> str | None:
        """Declare the benchmark queue if this version of the engine has queues."""
        declare = getattr(self.app, "queue", None)
        if declare is None:
            return "queues not implemented"
        try:
            declare(QUEUE_NAME)
        except Exception as exc:  # an API we cannot drive yet: say why, do not fail the suite
            return f"app.queue({QUEUE_NAME!r}) failed: {type(exc).__name__}: {exc}"
        return None

    @property
    def queue_unavailable(self) -> str | None:
        return self._queue_unavailable

    async def launch(self) -> None:
        await self.app.launch()

    async def shutdown(self) -> None:
        if self._probe_connection is not None:
            await self._probe_connection.close()
        await self.app.shutdown()

    async def checkpoint_probe(self) -> Callable[[], Awaitable[float]]:
        """The engine's ``record_step`` statement, as the store sends it (prepared, autocommit,
        one round trip), on a connection of its own: the physical floor of one step."""
        import psycopg

        from orchestrator.store.base import NewWorkflow
        from orchestrator.store.queries import load_queries
        from orchestrator.types import WorkflowStatus

        statement = load_queries("postgres")["record_step"]
        # A running workflow's row to record steps of (a finished one takes no records), that
        # no executor runs: only the probe writes its history.
        probe_row, _ = await self.app.store.create_workflow(
            NewWorkflow(
                workflow_id=f"checkpoint-probe-{uuid.uuid4()}",
                name="checkpoint-probe",
                status=WorkflowStatus.PENDING,
                input='{"args":[],"kwargs":{}}',
                executor_id="checkpoint-probe",
                app_version=None,
            )
        )
        connection = await psycopg.AsyncConnection.connect(
            self.database_url, autocommit=True, options="-c search_path=orchestrator"
        )
        self._probe_connection = connection
        numbers = itertools.count(1)

        async def probe() -> float:
            params = {
                "workflow_id": probe_row.workflow_id,
                "step_number": next(numbers),
                "name": "echo",
                "kind": "step",
                "output": "1",
                "error": None,
                "attempts": 1,
                "child_workflow_id": None,
                "compensation": None,
                "compensation_input": None,
                "compensates_step": None,
                "started_at": 0,
                "finished_at": None,
                "epoch": probe_row.owner_epoch,
                "args_hash": None,
            }
            began = time.perf_counter()
            cursor = await connection.execute(statement, params)
            await cursor.fetchall()
            return time.perf_counter() - began

        return probe

    async def start(self, n_steps: int, x: int) -> Any:
        return await self.app.start(self._steps, n_steps, x)

    async def enqueue(self, n_steps: int, x: int) -> Any:
        return await self.app.start(self._steps, n_steps, x, queue=QUEUE_NAME)

    async def start_wait_message(self) -> Any:
        return await self.app.start(self._wait_message)

    async def start_publish(self, x: int) -> Any:
        return await self.app.start(self._publish, x)

    def workflow_id(self, handle: Any) -> str:
        workflow_id: str = handle.workflow_id
        return workflow_id

    async def result(self, handle: Any) -> Any:
        return await handle.result()

    async def send(self, workflow_id: str, message: Any) -> None:
        await self.app.send(workflow_id, message, topic=TOPIC)

    async def get_event(self, workflow_id: str) -> Any:
        return await self.app.get_event(workflow_id, EVENT_KEY, timeout=EVENT_TIMEOUT_SECONDS)


@functools.cache
def _dbos_workflows() -> SimpleNamespace:
    """The workloads as DBOS workflows, registered once per process in DBOS's global registry."""
    from dbos import DBOS

    @DBOS.step()
    async def echo(x: int) -> int:
        return x

    @DBOS.workflow()
    async def steps(n: int, x: int) -> int:
        for _ in range(n):
            x = await echo(x)
        return x

    @DBOS.workflow()
    async def wait_message() -> list[Any]:
        Parked.count += 1
        message = await DBOS.recv_async(TOPIC, timeout_seconds=RECV_TIMEOUT_SECONDS)
        return [message, time.perf_counter()]

    @DBOS.workflow()
    async def publish(x: int) -> int:
        x = await echo(x)
        await DBOS.set_event_async(EVENT_KEY, x)
        return x

    return SimpleNamespace(steps=steps, wait_message=wait_message, publish=publish)


class DbosDriver:
    """The DBOS singleton on ``database_url`` (fixed executor id and version), async APIs."""

    name = "dbos"

    def __init__(self, database_url: str, *, with_queue: bool = False) -> None:
        from dbos import DBOS

        self.dbos = DBOS
        self.workflows = _dbos_workflows()
        self.database_url = database_url
        self.with_queue = with_queue
        self._queue: Any = None

    @property
    def queue_unavailable(self) -> str | None:
        return None if self.with_queue else "no queue declared"

    async def launch(self) -> None:
        self.dbos(
            config={
                "name": "bench",
                "system_database_url": self.database_url,
                "executor_id": EXECUTOR_ID,
                "application_version": APP_VERSION,
                "log_level": "WARNING",
            }
        )
        self.dbos.launch()
        if self.with_queue:
            self._queue = await self.dbos.register_queue_async(
                QUEUE_NAME, polling_interval_sec=DBOS_QUEUE_POLLING_INTERVAL_SECONDS
            )

    async def shutdown(self) -> None:
        self.dbos.destroy()

    async def start(self, n_steps: int, x: int) -> Any:
        return await self.dbos.start_workflow_async(self.workflows.steps, n_steps, x)

    async def enqueue(self, n_steps: int, x: int) -> Any:
        return await self._queue.enqueue_async(self.workflows.steps, n_steps, x)

    async def start_wait_message(self) -> Any:
        return await self.dbos.start_workflow_async(self.workflows.wait_message)

    async def start_publish(self, x: int) -> Any:
        return await self.dbos.start_workflow_async(self.workflows.publish, x)

    def workflow_id(self, handle: Any) -> str:
        workflow_id: str = handle.get_workflow_id()
        return workflow_id

    async def result(self, handle: Any) -> Any:
        return await handle.get_result()

    async def send(self, workflow_id: str, message: Any) -> None:
        await self.dbos.send_async(workflow_id, message, topic=TOPIC)

    async def get_event(self, workflow_id: str) -> Any:
        return await self.dbos.get_event_async(
            workflow_id, EVENT_KEY, timeout_seconds=EVENT_TIMEOUT_SECONDS
        )


# -- the process ------------------------------------------------------------------------------
async def run(system: str, family: str, database_url: str, sizes: Sizes, mode: str) -> Any:
    """Launch the system, run the family, shut down; the worker's JSON answer."""
    driver = make_driver(system, database_url, with_queue=family == "queue")
    if family == "queue" and driver.queue_unavailable is not None:
        return {"unavailable": driver.queue_unavailable}
    await driver.launch()
    try:
        metrics: Metrics
        if family == "commits":
            metrics = await commits_cycle(driver, sizes, mode)
        else:
            metrics = await FAMILY_RUNNERS[family](driver, sizes)
    finally:
        await driver.shutdown()
    return {"metrics": metrics}


@contextmanager
def profiled(path: str | None) -> Iterator[None]:
    """pyinstrument around the run when --profile is given (HTML written at the end)."""
    if path is None:
        yield
        return
    from pyinstrument import Profiler

    profiler = Profiler(async_mode="enabled")
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        Path(path).write_text(profiler.output_html())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    parser.add_argument("--system", choices=SYSTEMS, required=True)
    parser.add_argument("--family", choices=FAMILIES, required=True)
    parser.add_argument("--database-url", required=True, help="the system's own database")
    parser.add_argument("--sizes", required=True, help="Sizes as JSON")
    parser.add_argument("--mode", choices=COMMITS_MODES, default="idle", help="commits only")
    parser.add_argument("--out", required=True, help="where to write the JSON answer")
    parser.add_argument("--profile", help="write a pyinstrument HTML profile here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sizes = Sizes.from_json(json.loads(args.sizes))
    began = time.perf_counter()
    with profiled(args.profile):
        answer = asyncio.run(run(args.system, args.family, args.database_url, sizes, args.mode))
    answer["process_s"] = time.perf_counter() - began
    Path(args.out).write_text(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
