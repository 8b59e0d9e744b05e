"""The Orchestrator the HTTP tests serve: small workflows covering each endpoint's cases."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from orchestrator import Orchestrator


class Order(BaseModel):
    order_id: str = Field(min_length=1)
    amount: int = Field(gt=0)


def build_orchestrator(database_url: str) -> Orchestrator:
    """A fresh app (own registry) with the workflows the tests start over HTTP."""
    app = Orchestrator("http-tests", database_url, executor_id="http-tests", app_version="t")

    @app.step(name="double")
    async def double(x: int) -> int:
        return 2 * x

    @app.workflow(name="add")
    async def add(a: int, b: int = 1) -> int:
        return await double(a) // 2 + b

    @app.workflow(name="checkout")
    async def checkout(order: Order) -> dict[str, Any]:
        await app.set_event("payment_url", f"https://pay.example/{order.order_id}")
        paid = await app.recv("payment", timeout=30)
        return {"order_id": order.order_id, "paid": paid}

    @app.workflow(name="collect")
    async def collect(count: int) -> list[Any]:
        await app.set_event("ready", None)  # an event whose value is null
        return [await app.recv("items", timeout=30) for _ in range(count)]

    app.queue("http-tests-queue")

    @app.workflow(name="enqueue_add")
    async def enqueue_add(a: int) -> str:
        """Starts ``add`` on a queue (as a child) and returns its id, for the queue filter."""
        return (await app.start(add, a, queue="http-tests-queue")).workflow_id

    @app.workflow(name="echo")
    async def echo(value: Any = None, label: str = "none") -> dict[str, Any]:
        return {"value": value, "label": label}

    @app.workflow(name="fails")
    async def fails(reason: str = "boom") -> None:
        raise ValueError(reason)

    @app.workflow(name="waits")
    async def waits() -> Any:
        return await app.recv("never", timeout=60)

    @app.workflow(name="streams")
    async def streams(count: int) -> int:
        for i in range(count):
            await app.write_stream("progress", {"i": i})
        await app.close_stream("progress")
        return count

    return app
