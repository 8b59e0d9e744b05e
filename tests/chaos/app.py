"""The chaos fleet's application: checkout sagas on the ``checkouts`` queue.

    DATABASE_URL=... CHAOS_LEDGER=... python -m orchestrator.cli worker tests.chaos.app:app

A checkout is: book (undone by release) -> charge (refund; its first attempt may fail after
applying its effect, a lost answer) -> the child saga ``packing`` (pick, undone by unpick) ->
a fraud check (fails the saga when the order says so) -> ``recv("payment")`` (no payment in
time fails the saga) -> a durable sleep -> ship, the pivot -> notify. Every effect is recorded in
the ledger under its step's idempotency key (``fwd:<key>``; ``comp:<own key>@<forward key>``
for a compensation), as the sample services do with ``Idempotency-Key``. Effects take a few
milliseconds, so a fault often lands inside one.
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass

from pydantic import BaseModel

from orchestrator import NonRetryableError, Orchestrator, Retry
from tests.recovery.ledger import Ledger

APP_VERSION = "chaos"
QUEUE = "checkouts"
PAYMENT_TOPIC = "payment"
PAYMENT_TIMEOUT_SECONDS = 4.0
# The names of the steps with effects, and which of them a compensation undoes.
FORWARD_EFFECTS = ("book", "charge", "pick", "ship", "notify")
COMPENSABLE = ("book", "charge", "pick")
PIVOT = "ship"


class Order(BaseModel):
    order_id: str
    fraud: bool = False  # the fraud check fails the saga (a rollback)
    lost_answer: bool = False  # charge's first attempt applies its effect, then fails


class Declined(NonRetryableError):
    """A business failure: the saga rolls back."""


@dataclass
class Effects:
    """The ledger, written off the event loop (a blocking SQLite write)."""

    ledger: Ledger

    async def apply(self, entry: str) -> None:
        await asyncio.sleep(random.uniform(0.002, 0.03))  # the remote call takes a while
        await asyncio.to_thread(self.ledger.record, entry)


def build(database_url: str, ledger_path: str) -> Orchestrator:
    app = Orchestrator("chaos", database_url, app_version=APP_VERSION)
    app.queue(QUEUE, worker_concurrency=25)
    effects = Effects(Ledger(ledger_path))
    forward_retry = Retry(max_attempts=8, base_interval=0.05, max_interval=0.5)

    def own_key() -> str:
        return app.step_context().idempotency_key

    async def forward() -> str:
        key = own_key()
        await effects.apply(f"fwd:{key}")
        return key

    async def undo(forward_key: str) -> None:
        await effects.apply(f"comp:{own_key()}@{forward_key}")

    @app.step(name="book", retry=forward_retry)
    async def book(order: Order) -> str:
        return await forward()

    @book.compensation
    async def release(order: Order, booking: str) -> None:
        await undo(booking)

    @app.step(name="charge", retry=forward_retry)
    async def charge(order: Order) -> str:
        key = await forward()
        if order.lost_answer and app.step_context().attempt == 1:
            raise TimeoutError("the provider charged, then the answer was lost")
        return key

    @charge.compensation
    async def refund(order: Order, charged: str) -> None:
        await undo(charged)

    @app.step(name="pick", retry=forward_retry)
    async def pick(order: Order) -> str:
        return await forward()

    @pick.compensation
    async def unpick(order: Order, picked: str) -> None:
        await undo(picked)

    @app.workflow(name="packing")
    async def packing(order: Order) -> str:
        return await pick(order)

    @app.step(name="check_fraud")
    async def check_fraud(order: Order) -> None:
        if order.fraud:
            raise Declined(f"order {order.order_id} looks fraudulent")

    @app.step(name="ship", pivot=True, retry=forward_retry)
    async def ship(order: Order) -> str:
        return await forward()

    @app.step(name="notify", retry=forward_retry)
    async def notify(order: Order) -> str:
        return await forward()

    @app.workflow(name="checkout")
    async def checkout(order: Order) -> str:
        await book(order)
        await charge(order)
        await (await app.start(packing, order, workflow_id=f"{order.order_id}-packing")).result()
        await check_fraud(order)
        paid = await app.recv(PAYMENT_TOPIC, timeout=PAYMENT_TIMEOUT_SECONDS)
        if paid is None:
            raise Declined(f"no payment for {order.order_id} in time")
        await app.sleep(0.1)
        await ship(order)
        return await notify(order)

    return app


app = (
    build(os.environ["DATABASE_URL"], os.environ["CHAOS_LEDGER"])
    if "CHAOS_LEDGER" in os.environ
    else None
)
