"""Sagas that once broke "every effect exactly once", for crash tests (issue #15).

    python -m tests.recovery.guarantee_worker DATABASE_URL LEDGER SCENARIO WORKFLOW_ID [--crash P]

Each scenario is a checkout-like saga whose steps and compensations record their effects in the
ledger (``fwd:<idempotency key>`` once per forward step, ``comp:<own key>@<forward key>`` once
per compensation), so a test can check each happened exactly once after any crash. The process
SIGKILLs itself at the named point ``P`` of its first run; run again with the same executor id
(and no ``--crash``), it recovers the saga and prints how it ended.

Scenarios (``SCENARIOS``):
- ``child-then-fail``: book, a child saga (pack), then a step fails: rollback; P is usually
  ``before-undo-pack`` (the first compensation starts).
- ``sleep-then-fail``: book, a durable sleep, then a step fails; P ``before-undo-book``.
- ``cancel-mid-step``: book, then charge, which applies its effect, has the saga cancelled with
  rollback, and (with P ``after-effect-charge``) dies before its checkpoint.
- ``cancel-then-recv``: book, charge (cancelled with rollback while it runs), then a recv; P
  ``before-undo-book`` dies after the refund was recorded.
- ``pivot-cancel``: book, ship (the pivot: cancelled with rollback while it runs), notify; with
  P ``after-effect-ship`` it dies before the pivot's checkpoint.
- ``retry-cancel``: book, charge, whose first attempt applies its effect, has the saga cancelled
  with rollback, and fails (a timeout); its second attempt succeeds.
- ``backoff-cancel``: as ``retry-cancel``, but the cancel with rollback arrives while charge
  waits out its backoff before the second attempt (the chaos run's seed 8999787).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from orchestrator import (
    NonRetryableError,
    Orchestrator,
    Retry,
    WorkflowCancelledError,
    WorkflowFailedError,
)
from tests.recovery.ledger import Ledger

EXECUTOR_ID = "guarantee-worker"
APP_VERSION = "guarantees"
SCENARIOS = (
    "child-then-fail",
    "sleep-then-fail",
    "cancel-mid-step",
    "cancel-then-recv",
    "pivot-cancel",
    "retry-cancel",
    "backoff-cancel",
)


class OutOfStock(NonRetryableError):
    """The business failure that rolls the saga back."""


def build(app: Orchestrator, ledger: Ledger, scenario: str, crash: str | None) -> object:
    """Register the scenario's saga on ``app``; return the workflow to start."""

    async def at(point: str) -> None:
        if point == crash:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def effect(name: str) -> str:
        key = app.step_context().idempotency_key
        ledger.record(f"fwd:{key}")
        return key

    def first_time(name: str) -> bool:
        """Whether this is the first attempt ever of the running step (across processes)."""
        return ledger.snapshot().attempts[f"fwd:{app.step_context().idempotency_key}"] == 1

    async def cancel_self() -> None:
        await app.cancel(app.step_context().workflow_id, compensate=True)

    def undo(name: str):
        async def compensation(forward_key: str) -> None:
            await at(f"before-undo-{name}")
            ledger.record(f"comp:{app.step_context().idempotency_key}@{forward_key}")
            await at(f"after-effect-undo-{name}")

        return compensation

    @app.step(name="book")
    async def book() -> str:
        return effect("book")

    book.compensation(undo("book"))

    @app.step(name="pack")
    async def pack() -> str:
        return effect("pack")

    pack.compensation(undo("pack"))

    @app.workflow(name="packing")
    async def packing() -> str:
        return await pack()

    backoff = 0.6 if scenario == "backoff-cancel" else 0.05

    @app.step(name="charge", retry=Retry(max_attempts=3, base_interval=backoff))
    async def charge() -> str:
        key = effect("charge")
        if first_time("charge"):
            if scenario in ("cancel-mid-step", "cancel-then-recv", "retry-cancel"):
                await cancel_self()
            if scenario == "backoff-cancel":
                # The cancel lands 0.1 s into the 0.6 s (+-jitter) wait before the retry.
                workflow_id = app.step_context().workflow_id
                later = app.cancel(workflow_id, compensate=True)
                asyncio.get_running_loop().call_later(0.1, asyncio.ensure_future, later)
            if scenario in ("retry-cancel", "backoff-cancel"):
                raise TimeoutError("the provider applied the charge, then the answer was lost")
        await at("after-effect-charge")
        return key

    charge.compensation(undo("charge"))

    @app.step(name="ship", pivot=True)
    async def ship() -> str:
        key = effect("ship")
        if first_time("ship"):
            await cancel_self()
        await at("after-effect-ship")
        return key

    @app.step(name="notify")
    async def notify() -> str:
        return effect("notify")

    @app.step(name="fail")
    async def fail() -> None:
        raise OutOfStock("out of stock")

    @app.workflow(name=f"saga-{scenario}")
    async def saga() -> str:
        await book()
        if scenario == "child-then-fail":
            await (await app.start(packing)).result()
            await fail()
        elif scenario == "sleep-then-fail":
            await app.sleep(0.05)
            await fail()
        elif scenario in ("cancel-mid-step", "retry-cancel", "backoff-cancel"):
            await charge()
        elif scenario == "cancel-then-recv":
            await charge()
            await app.recv("go", timeout=60)
        elif scenario == "pivot-cancel":
            await ship()
            await notify()
        return "done"

    return saga


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("ledger")
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("workflow_id")
    parser.add_argument("--crash")
    options = parser.parse_args()
    app = Orchestrator(
        "guarantees", options.database_url, executor_id=EXECUTOR_ID, app_version=APP_VERSION
    )
    saga = build(app, Ledger(options.ledger), options.scenario, options.crash)
    async with app:  # launching recovers what a killed run left PENDING or COMPENSATING
        handle = await app.start(saga, workflow_id=options.workflow_id)  # type: ignore[call-overload]
        try:
            print("result", await handle.result(timeout=60), flush=True)
        except WorkflowFailedError as failure:
            print("status", failure.status, flush=True)
        except WorkflowCancelledError:
            print("status CANCELLED", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
