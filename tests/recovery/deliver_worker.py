"""A worker for the delivery crash test: it parks workflows in recv and sends to them from the
same process (each message handed to the parked recv, its checkpoint written by the
recipient's next durable call, or by the last one's final status), until every workflow has
received its messages; the parent kills it at random moments and starts it again. It prints
each send that returned ("acked <message>"): that message must be received, once.

    python -m tests.recovery.deliver_worker DATABASE_URL [WORKFLOWS MESSAGES]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
from typing import Any

from orchestrator import Orchestrator, WorkflowFinishedError, WorkflowStatus

WORKFLOWS = 40
MESSAGES = 20  # each workflow receives this many, then ends


def build(database_url: str, messages: int = MESSAGES) -> Orchestrator:
    app = Orchestrator("deliver", database_url, executor_id="deliver-worker", app_version="d")

    @app.workflow(name="inbox")
    async def inbox() -> list[str]:
        return [await app.recv("m", timeout=600) for _ in range(messages)]

    app.inbox = inbox  # type: ignore[attr-defined]
    return app


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("workflows", type=int, nargs="?", default=WORKFLOWS)
    parser.add_argument("messages", type=int, nargs="?", default=MESSAGES)
    options = parser.parse_args()
    app = build(options.database_url, options.messages)
    delivered = 0
    async with app:
        deliver = app.store.deliver_message
        finish_after_step = app.store.finish_after_step
        finished_with_recv = 0

        async def counted(*args: object) -> bool:
            nonlocal delivered
            answer = await deliver(*args)  # type: ignore[arg-type]
            delivered += answer
            return answer

        async def counted_finish(*args: Any, **kwargs: Any) -> bool | None:
            nonlocal finished_with_recv
            answer = await finish_after_step(*args, **kwargs)
            finished_with_recv += answer is not None and kwargs.get("recv_topic") is not None
            return answer

        app.store.deliver_message = counted  # type: ignore[method-assign]
        app.store.finish_after_step = counted_finish  # type: ignore[method-assign]
        ids = [f"inbox-{i}" for i in range(options.workflows)]
        handles = [await app.start(app.inbox, workflow_id=i) for i in ids]  # type: ignore[attr-defined]
        print("ready", flush=True)
        counter = itertools.count()
        in_flight = asyncio.Semaphore(50)  # a storm spread over time: kills land inside it
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
                async with in_flight:
                    with contextlib.suppress(WorkflowFinishedError):  # received all it wants
                        await app.send(workflow_id, message, topic="m")
                        print("acked", message, flush=True)

            await asyncio.gather(*(send(i) for i in open_ids))
            # so far, in this process: by the next call's write, with the final status
            print("delivered", delivered, finished_with_recv, flush=True)
            await asyncio.sleep(0.05)
        print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
