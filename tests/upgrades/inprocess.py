"""A checkout in a few variants for in-process upgrade tests (tests/engine/test_upgrades.py,
tests/http/test_versions.py): its releases differ around the wait for the payment."""

from __future__ import annotations

import asyncio

from orchestrator import Orchestrator
from tests.conftest import AppFactory

ORDER = "o-1"


def shop(make_app: AppFactory, version: str, variant: str, executor: str) -> Orchestrator:
    """A checkout that reserves, waits for a payment (recorded deadline), then charges.
    ``variant`` changes what comes around the wait (see each test)."""
    app = make_app(app_version=version, executor_id=executor)
    effects: list[str] = []
    app.effects = effects  # type: ignore[attr-defined]

    @app.step(name="reserve")
    async def reserve(order: str) -> str:
        effects.append(f"reserve:{order}")
        return f"r-{order}"

    @app.step(name="fraud_check")
    async def fraud_check(order: str) -> bool:
        effects.append(f"fraud:{order}")
        return True

    @app.step(name="charge")
    async def charge(order: str) -> str:
        effects.append(f"charge:{order}")
        return f"c-{order}"

    @app.workflow(name="checkout")
    async def checkout(order: str) -> str:
        await reserve(order)
        if variant == "fraud":
            await fraud_check(order)
        elif variant == "patched":
            if await app.patched("fraud-check"):
                await fraud_check(order)
        elif variant == "deprecated":
            await app.deprecate_patch("fraud-check")
            await fraud_check(order)
        elif variant == "sleepy":
            await app.sleep(0)
        if variant == "short":
            return "ends before the wait"
        await app.recv("paid", timeout=3600)
        if variant == "renamed":
            return await fraud_check(order)  # (a renamed last step)
        return await charge(order)

    return app


async def park(app: Orchestrator, order: str = ORDER) -> None:
    """Start a checkout and leave it waiting for its payment, then shut the app down (the
    workflow stays PENDING; the lease is released)."""
    await app.launch()
    await app.start("checkout", order, workflow_id=order)

    async def waiting() -> bool:
        return any(s.name == "recv.deadline" for s in await app.list_steps(order))

    for _ in range(200):
        if await waiting():
            break
        await asyncio.sleep(0.02)
    assert await waiting()
    await app.shutdown(timeout=0)
