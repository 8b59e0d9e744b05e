"""Automatic time skipping (#19): days of durable waits in milliseconds of real time."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

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


async def test_backoff_and_a_deadline_skip_too(database_url: str) -> None:
    from orchestrator import Retry, WorkflowCancelledError

    app = time_skipping_app("skip-more", database_url)
    attempts: list[int] = []

    @app.step(retry=Retry(max_attempts=3, base_interval=3600, max_interval=7200, jitter=False))
    async def flaky() -> int:
        attempts.append(app.clock.now_ms())
        if len(attempts) < 3:
            raise ConnectionError("try again in an hour")
        return len(attempts)

    @app.workflow(name="patient")
    async def patient() -> int:
        return await flaky()

    @app.workflow(name="too_slow", timeout=2 * 24 * 3600)
    async def too_slow() -> str:
        await app.sleep(3 * 24 * 3600)
        return "never"

    async with app, skip_time(app):
        assert await (await app.start(patient)).result() == 3
        gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
        assert all(gap >= 3_600_000 for gap in gaps), gaps  # an hour of backoff, skipped
        slow = await app.start(too_slow)
        with pytest.raises(WorkflowCancelledError, match="deadline"):
            await slow.result()
        assert (await slow.status()).status.value == "CANCELLED"  # the deadline passed
