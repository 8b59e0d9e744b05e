"""A worker for the recv crash test: a workflow consumes five messages, recording each in the
ledger through a step; the parent process sends them and kills this process at random moments.

    python -m tests.recovery.recv_worker DATABASE_URL LEDGER WORKFLOW_ID
"""

from __future__ import annotations

import argparse
import asyncio

from orchestrator import Orchestrator
from tests.recovery.ledger import Ledger

MESSAGES = 5


def build(database_url: str, ledger: Ledger) -> Orchestrator:
    app = Orchestrator("recv", database_url, executor_id="recv-worker", app_version="recv")

    @app.step(name="got")
    async def got(message: str) -> None:
        ledger.record(f"got:{message}")

    @app.workflow(name="consumer")
    async def consumer() -> list[str]:
        received = []
        for _ in range(MESSAGES):
            message = await app.recv("m", timeout=120)
            await got(message)
            received.append(message)
        return received

    app.consumer = consumer  # type: ignore[attr-defined]
    return app


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("ledger")
    parser.add_argument("workflow_id")
    options = parser.parse_args()
    app = build(options.database_url, Ledger(options.ledger))
    async with app:
        handle = await app.start(app.consumer, workflow_id=options.workflow_id)  # type: ignore[attr-defined]
        print("ready", flush=True)
        print("result", await handle.result(timeout=120), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
