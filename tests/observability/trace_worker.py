"""A worker process for the crash test: runs (or recovers) workflow "journey" and exports its
spans over OTLP/HTTP with configure_tracing (batch processor, like `saga worker`).

    python -m tests.observability.trace_worker DATABASE_URL OTLP_ENDPOINT (start|recover)

``start`` starts the workflow and blocks forever in step "c" (the test SIGKILLs it there);
``recover`` only launches: recovery at launch resumes the workflow, which then finishes.
"""

from __future__ import annotations

import asyncio
import sys

from orchestrator import Orchestrator, configure_tracing


def main() -> None:
    database_url, endpoint, mode = sys.argv[1:4]
    configure_tracing("crash-worker", endpoint)
    app = Orchestrator("crash-trace", database_url, executor_id="trace-worker", app_version="t")

    @app.step(name="a")
    async def a() -> str:
        return "a"

    @app.step(name="b")
    async def b() -> str:
        return "b"

    @app.step(name="c")
    async def c() -> str:
        if mode == "start":
            await asyncio.sleep(3600)  # killed here
        return "c"

    @app.step(name="d")
    async def d() -> str:
        return "d"

    @app.workflow(name="journey")
    async def journey() -> str:
        return await a() + await b() + await c() + await d()

    async def run() -> None:
        async with app:
            if mode == "start":
                await app.start(journey, workflow_id="journey-1")
                print("started", flush=True)
                await asyncio.sleep(3600)
            print("result", await app.retrieve("journey-1").result(timeout=60), flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    main()
