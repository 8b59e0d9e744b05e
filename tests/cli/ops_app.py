"""A saga for the CLI's operator actions: its refund fails while ``REFUND_DOWN`` names a file
that exists (the test process and the CLI process share it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from orchestrator import Orchestrator, Retry


def define(app: Orchestrator) -> Any:
    """Register the saga on ``app``; returns the workflow."""

    @app.step(name="charge")
    async def charge(amount: int) -> int:
        return amount

    @charge.compensation(retry=Retry(max_attempts=1))
    def refund(result: int, amount: int) -> None:  # sync: runs in a thread
        down = os.environ.get("REFUND_DOWN")
        if down and Path(down).exists():
            raise ConnectionError("the payment provider is down")

    @app.workflow(name="order")
    async def order(amount: int, fail: bool = True) -> int:
        await charge(amount)
        if fail:
            raise ValueError("out of stock")
        await app.sleep(3600)
        return amount

    return order


app = Orchestrator("cli-ops", os.environ.get("DATABASE_URL"), app_version="ops")
order = define(app)
