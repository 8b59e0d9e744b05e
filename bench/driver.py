"""The Driver protocol: what every benchmark needs from a workflow system, nothing more."""

from __future__ import annotations

from typing import Any, Protocol

# The workloads, identical in shape for both systems:
#   steps(n, x)      n sequential steps, each a trivial async function returning its input
#   wait_message()   counts itself as parked, then recv(TOPIC); returns [message, perf_counter()]
#   publish(x)       one step, then set_event(EVENT_KEY, x); returns x
TOPIC = "bench"
EVENT_KEY = "ready"
QUEUE_NAME = "bench"
RECV_TIMEOUT_SECONDS = 600.0
EVENT_TIMEOUT_SECONDS = 60.0
EXECUTOR_ID = "bench"
APP_VERSION = "bench"
# DBOS's default queue polling interval is 1 s; 0.1 s keeps the queue figures from being
# dominated by the poll period.
DBOS_QUEUE_POLLING_INTERVAL_SECONDS = 0.1


class Parked:
    """How many wait_message workflows have reached their recv() in this process."""

    count = 0


class Driver(Protocol):
    """One workflow system, launched in this process, driving the workloads above.

    Handles are opaque to the benchmarks: only ``workflow_id`` and ``result`` look inside.
    """

    name: str

    async def launch(self) -> None: ...

    async def shutdown(self) -> None: ...

    @property
    def queue_unavailable(self) -> str | None:
        """None when ``enqueue`` works, else why it does not (printed instead of a figure)."""
        ...

    async def start(self, n_steps: int, x: int) -> Any: ...

    async def enqueue(self, n_steps: int, x: int) -> Any: ...

    async def start_wait_message(self) -> Any: ...

    async def start_publish(self, x: int) -> Any: ...

    def workflow_id(self, handle: Any) -> str: ...

    async def result(self, handle: Any) -> Any: ...

    async def send(self, workflow_id: str, message: Any) -> None: ...

    async def get_event(self, workflow_id: str) -> Any: ...


def make_driver(system: str, database_url: str, *, with_queue: bool = False) -> Driver:
    """The driver for ``system`` (``ours`` or ``dbos``); DBOS is imported only when asked for.

    The benchmark queue is declared only ``with_queue``, so no other benchmark pays for a
    queue poller.
    """
    if system == "ours":
        from bench.ours import OursDriver

        return OursDriver(database_url, with_queue=with_queue)
    if system == "dbos":
        from bench.dbos_driver import DbosDriver

        return DbosDriver(database_url, with_queue=with_queue)
    raise ValueError(f"unknown system {system!r}: use 'ours' or 'dbos'")
