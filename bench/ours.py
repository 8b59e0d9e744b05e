"""The workloads on saga-orchestrator: an Orchestrator app with the benchmark workflows."""

from __future__ import annotations

import time
from typing import Any

from bench.driver import (
    APP_VERSION,
    EVENT_KEY,
    EVENT_TIMEOUT_SECONDS,
    EXECUTOR_ID,
    QUEUE_NAME,
    RECV_TIMEOUT_SECONDS,
    TOPIC,
    Parked,
)
from orchestrator.app import Orchestrator
from orchestrator.workflow import WorkflowHandle


class OursDriver:
    """Registers the workloads on a fresh Orchestrator (fixed executor id and app version)."""

    name = "ours"

    def __init__(self, database_url: str, *, with_queue: bool = False) -> None:
        app = Orchestrator("bench", database_url, executor_id=EXECUTOR_ID, app_version=APP_VERSION)
        self.app = app

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
        await self.app.shutdown()

    async def start(self, n_steps: int, x: int) -> WorkflowHandle[int]:
        return await self.app.start(self._steps, n_steps, x)

    async def enqueue(self, n_steps: int, x: int) -> WorkflowHandle[int]:
        return await self.app.start(self._steps, n_steps, x, queue=QUEUE_NAME)

    async def start_wait_message(self) -> WorkflowHandle[list[Any]]:
        return await self.app.start(self._wait_message)

    async def start_publish(self, x: int) -> WorkflowHandle[int]:
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
