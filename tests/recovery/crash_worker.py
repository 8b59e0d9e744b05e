"""A worker process for crash tests: runs (or recovers) a 5-step workflow with a durable sleep,
recording every step's effect in a Ledger; it can SIGKILL itself at a named point.

    python -m tests.recovery.crash_worker DATABASE_URL LEDGER WORKFLOW_ID [--crash POINT]

POINT: ``before-step-4`` (between steps: step 3 committed, step 4 not begun),
``after-effect-3`` (step 3's effect applied, its checkpoint not written) or ``after-last-step``
(the last step returned; its checkpoint, deferred to the final status, not written).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from orchestrator import Orchestrator
from tests.recovery.ledger import Ledger

SLEEP_SECONDS = float(os.environ.get("CRASH_SLEEP_SECONDS", "0.2"))


def build(database_url: str, ledger: Ledger, crash: str | None) -> Orchestrator:
    app = Orchestrator("crash", database_url, executor_id="crash-worker", app_version="crash")

    def kill_self() -> None:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    @app.step(name="effect")
    async def effect(number: int) -> str:
        if crash == f"before-step-{number}":
            kill_self()
        key = app.step_context().idempotency_key
        ledger.record(key)
        if crash == f"after-effect-{number}":
            kill_self()
        return key

    @app.workflow(name="five_steps")
    async def five_steps() -> list[str]:
        keys = [await effect(1), await effect(2)]
        await app.sleep(SLEEP_SECONDS)
        for number in (3, 4, 5):
            keys.append(await effect(number))
        if crash == "after-last-step":
            kill_self()
        return keys

    app.five_steps = five_steps  # type: ignore[attr-defined]
    return app


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("ledger")
    parser.add_argument("workflow_id")
    parser.add_argument("--crash")
    options = parser.parse_args()
    app = build(options.database_url, Ledger(options.ledger), options.crash)
    async with app:  # launching recovers a workflow a killed worker left PENDING
        handle = await app.start(app.five_steps, workflow_id=options.workflow_id)  # type: ignore[attr-defined]
        print("started", flush=True)
        result = await handle.result(timeout=60)
        print("result", result, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
