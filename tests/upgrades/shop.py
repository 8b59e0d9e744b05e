"""The checkout of the upgrade tests, in the release ``UPGRADE_RELEASE`` names (it is also the
app_version, as docs/upgrading.md recommends: one explicit version per release):

- ``v1``: reserve, wait for the payment (recv with a timeout: its deadline is recorded), charge;
- ``v2-compatible``: the same durable calls, other code around them (a different receipt);
- ``v2-fraud``: a fraud check inserted before the wait, without a patch (not compatible);
- ``v2-patched``: the same fraud check behind ``app.patched("fraud-check")``;
- ``v3-deprecated``: the fraud check always, ``app.deprecate_patch("fraud-check")`` where the
  patch was (deployed once no saga that could skip it is left).

Run by ``saga worker tests.upgrades.shop:app``; every effect goes to the Ledger at
``LEDGER_PATH`` keyed ``<step>:<order>``.
"""

from __future__ import annotations

import asyncio
import os

from orchestrator import Orchestrator
from tests.recovery.ledger import Ledger

RELEASE = os.environ.get("UPGRADE_RELEASE", "v1")
QUEUE = "orders"
PAYMENT = "payment"

app = Orchestrator("shop", os.environ["DATABASE_URL"], app_version=RELEASE)
app.queue(QUEUE)
ledger = Ledger(os.environ["LEDGER_PATH"])


async def apply(step: str, order: str) -> str:
    key = f"{step}:{order}"
    await asyncio.to_thread(ledger.record, key)
    return key


@app.step(name="reserve")
async def reserve(order: str) -> str:
    return await apply("reserve", order)


@app.step(name="fraud_check")
async def fraud_check(order: str) -> str:
    return await apply("fraud", order)


@app.step(name="charge")
async def charge(order: str) -> str:
    return await apply("charge", order)


@app.workflow(name="checkout")
async def checkout(order: str) -> str:
    await reserve(order)
    if RELEASE == "v2-fraud":
        await fraud_check(order)
    elif RELEASE == "v2-patched":
        if await app.patched("fraud-check"):
            await fraud_check(order)
    elif RELEASE == "v3-deprecated":
        await app.deprecate_patch("fraud-check")
        await fraud_check(order)
    paid = await app.recv(PAYMENT, timeout=3600)
    if not paid:
        return f"{order}: not paid"
    receipt = await charge(order)
    if RELEASE == "v2-compatible":
        return f"receipt {receipt} ({RELEASE})"
    return f"{order} charged ({RELEASE})"
