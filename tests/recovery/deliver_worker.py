"""A worker for the delivery crash test: it parks workflows in recv and sends to them from the
same process (each send delivered by its own statement), until every workflow has received
its messages; the parent kills it at random moments and starts it again.

    python -m tests.recovery.deliver_worker DATABASE_URL
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os

from orchestrator import Orchestrator, WorkflowFinishedError, WorkflowStatus

WORKFLOWS = 40
MESSAGES = 20  # each workflow receives this many, then ends


def build(database_url: str) -> Orchestrator:
    app = Orchestrator("deliver", database_url, executor_id="deliver-worker", app_version="d")

    @app.workflow(name="inbox")
    async def inbox() -> list[str]:
        return [await app.recv("m", timeout=600) for _ in range(MESSAGES)]

    app.inbox = inbox  # type: ignore[attr-defined]
    return app


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    options = parser.parse_args()
    app = build(options.database_url)
    delivered = 0
    async with app:
        deliver = app.store.deliver_message

        async def counted(*args: object) -> bool:
            nonlocal delivered
            answer = await deliver(*args)  # type: ignore[arg-type]
            delivered += answer
            return answer

        app.store.deliver_message = counted  # type: ignore[method-assign]
        ids = [f"inbox-{i}" for i in range(WORKFLOWS)]
        handles = [await app.start(app.inbox, workflow_id=i) for i in ids]  # type: ignore[attr-defined]
        print("ready", flush=True)
        counter = itertools.count()
        while True:
            open_ids = [
                h.workflow_id
                for h in handles
                if (await h.status()).status is not WorkflowStatus.SUCCESS
            ]
            if not open_ids:
                break

            async def send(workflow_id: str) -> None:
                message = f"{workflow_id}/{os.getpid()}/{next(counter)}"  # unique per send
                with contextlib.suppress(WorkflowFinishedError):  # received all it wants
                    await app.send(workflow_id, message, topic="m")

            await asyncio.gather(*(send(i) for i in open_ids))
            print("delivered", delivered, flush=True)  # so far, in this process
            await asyncio.sleep(0.05)
        print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
