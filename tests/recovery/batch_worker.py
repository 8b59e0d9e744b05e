"""A worker for the group-commit crash test: many concurrent 3-step workflows whose steps
record their effects in the ledger; the parent kills this process mid-flight.

    python -m tests.recovery.batch_worker DATABASE_URL LEDGER COUNT
"""

from __future__ import annotations

import argparse
import asyncio

from orchestrator import Orchestrator
from tests.recovery.ledger import Ledger


def build(database_url: str, ledger: Ledger) -> Orchestrator:
    app = Orchestrator("batch", database_url, executor_id="batch-worker", app_version="batch")

    @app.step(name="effect")
    async def effect(number: int) -> int:
        ledger.record(app.step_context().idempotency_key)
        return number

    @app.workflow(name="three_steps")
    async def three_steps() -> int:
        return await effect(1) + await effect(2) + await effect(3)

    app.three_steps = three_steps  # type: ignore[attr-defined]
    return app


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("ledger")
    parser.add_argument("count", type=int)
    options = parser.parse_args()
    app = build(options.database_url, Ledger(options.ledger))
    async with app:
        handles = await asyncio.gather(
            *(
                app.start(app.three_steps, workflow_id=f"b{i}")  # type: ignore[attr-defined]
                for i in range(options.count)
            )
        )
        print("started", flush=True)
        await asyncio.gather(*(h.result(timeout=120) for h in handles))
        print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
