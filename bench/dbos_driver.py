"""The workloads on DBOS 3.x: module-level DBOS workflows driven through its async API."""

from __future__ import annotations

import time
from typing import Any

from dbos import DBOS

from bench.driver import (
    APP_VERSION,
    DBOS_QUEUE_POLLING_INTERVAL_SECONDS,
    EVENT_KEY,
    EVENT_TIMEOUT_SECONDS,
    EXECUTOR_ID,
    QUEUE_NAME,
    RECV_TIMEOUT_SECONDS,
    TOPIC,
    Parked,
)


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


class DbosDriver:
    """The DBOS singleton configured on ``database_url`` (fixed executor id and version)."""

    name = "dbos"

    def __init__(self, database_url: str, *, with_queue: bool = False) -> None:
        self.database_url = database_url
        self.with_queue = with_queue
        self._queue: Any = None

    @property
    def queue_unavailable(self) -> str | None:
        return None if self.with_queue else "no queue declared"

    async def launch(self) -> None:
        DBOS(
            config={
                "name": "bench",
                "system_database_url": self.database_url,
                "executor_id": EXECUTOR_ID,
                "application_version": APP_VERSION,
                "log_level": "WARNING",
            }
        )
        DBOS.launch()
        if self.with_queue:
            self._queue = await DBOS.register_queue_async(
                QUEUE_NAME, polling_interval_sec=DBOS_QUEUE_POLLING_INTERVAL_SECONDS
            )

    async def shutdown(self) -> None:
        DBOS.destroy()

    async def start(self, n_steps: int, x: int) -> Any:
        return await DBOS.start_workflow_async(steps, n_steps, x)

    async def enqueue(self, n_steps: int, x: int) -> Any:
        return await self._queue.enqueue_async(steps, n_steps, x)

    async def start_wait_message(self) -> Any:
        return await DBOS.start_workflow_async(wait_message)

    async def start_publish(self, x: int) -> Any:
        return await DBOS.start_workflow_async(publish, x)

    def workflow_id(self, handle: Any) -> str:
        workflow_id: str = handle.get_workflow_id()
        return workflow_id

    async def result(self, handle: Any) -> Any:
        return await handle.get_result()

    async def send(self, workflow_id: str, message: Any) -> None:
        await DBOS.send_async(workflow_id, message, topic=TOPIC)

    async def get_event(self, workflow_id: str) -> Any:
        return await DBOS.get_event_async(
            workflow_id, EVENT_KEY, timeout_seconds=EVENT_TIMEOUT_SECONDS
        )
