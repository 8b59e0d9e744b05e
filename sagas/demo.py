"""`make demo`: a small checkout workflow on the embedded store, printing its steps."""

from __future__ import annotations

import asyncio
import sys
import uuid

from pydantic import BaseModel

from orchestrator import Orchestrator, Retry

app = Orchestrator(app_name="demo")


class Order(BaseModel):
    order_id: str
    sku: str
    quantity: int
    amount_cents: int


class Receipt(BaseModel):
    order_id: str
    reservation: str
    charge: str
    shipment: str


_flaky_calls: dict[str, int] = {}


@app.step()
async def reserve_stock(order: Order) -> str:
    key = app.step_context().idempotency_key
    print(f"  reserve {order.quantity} x {order.sku}   (Idempotency-Key {key})")
    return f"res-{order.order_id}"


@app.step(retry=Retry(max_attempts=3, base_interval=0.1))
def charge_card(order: Order) -> str:  # a sync step: it runs in a worker thread
    attempt = app.step_context().attempt
    _flaky_calls[order.order_id] = _flaky_calls.get(order.order_id, 0) + 1
    if attempt == 1:
        print("  charge: payment provider timed out (attempt 1) -- retrying")
        raise ConnectionError("payment provider timed out")
    print(f"  charge {order.amount_cents / 100:.2f} EUR (attempt {attempt})")
    return f"ch-{order.order_id}"


@app.step()
async def create_shipment(order: Order) -> str:
    print(f"  ship order {order.order_id}")
    return f"shp-{order.order_id}"


@app.workflow()
async def checkout(order: Order) -> Receipt:
    reservation = await reserve_stock(order)
    charge = await charge_card(order)
    await app.sleep(0.2)  # durable: survives a crash, sleeps only what is left
    shipment = await create_shipment(order)
    return Receipt(
        order_id=order.order_id, reservation=reservation, charge=charge, shipment=shipment
    )


async def main() -> None:
    async with app:
        order = Order(order_id=uuid.uuid4().hex[:8], sku="book-42", quantity=2, amount_cents=3998)
        print(f"store: {app.store.dialect}   executor: {app.executor_id}")
        print(f"starting checkout for order {order.order_id}")
        handle = await app.start(checkout, order, workflow_id=f"order-{order.order_id}")
        receipt = await handle.result(timeout=30)
        print(f"result: {receipt!r}")
        print("recorded steps:")
        for step in await app.list_steps(handle.workflow_id):
            print(
                f"  #{step.step_number:<2} {step.kind:<6} {step.name:<16} {step.status:<7} "
                f"attempts={step.attempts} output={step.output!r}"
            )
        again = await app.start(checkout, order, workflow_id=f"order-{order.order_id}")
        print(f"starting it again with the same id returns the same run: {await again.result()!r}")
        print(f"status: {(await handle.status()).status}")


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
