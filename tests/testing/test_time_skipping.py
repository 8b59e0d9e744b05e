"""Automatic time skipping (#19): days of durable waits in milliseconds of real time."""

from __future__ import annotations

import time
from pathlib import Path

from orchestrator.testing.timeskip import skip_time, time_skipping_app


async def test_three_days_of_sleep_and_a_day_of_recv_timeout_take_no_time(
    database_url: str, tmp_path: Path
) -> None:
    app = time_skipping_app("skip", database_url)

    @app.step()
    async def notify(text: str) -> str:
        return text

    @app.workflow(name="refund_window")
    async def refund_window(order: str) -> str:
        began = await app.now()
        await app.sleep(3 * 24 * 3600)  # the refund window
        answer = await app.recv("refund", timeout=24 * 3600)  # nobody asks: times out
        await notify(f"{order}: {answer}")
        waited = (await app.now()) - began
        return f"{answer} after {waited.total_seconds() / 3600:.0f} h"

    began = time.perf_counter()
    async with app, skip_time(app):
        handle = await app.start(refund_window, "o-1")
        assert await handle.result() == "None after 96 h"
    took = time.perf_counter() - began
    assert app.clock.jumps >= 2  # type: ignore[attr-defined]  # the sleep, then the timeout
    print(f"4 days of waits in {took * 1000:.0f} ms of real time (launch included)")
    assert took < 60  # without skipping: 4 days
