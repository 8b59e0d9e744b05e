"""PostgreSQL wake-ups: a killed LISTEN connection, ten thousand parked waiters, and a message
another transaction holds."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from orchestrator import Orchestrator
from orchestrator.clock import FakeClock
from orchestrator.store.base import NOTIFY_MESSAGE
from orchestrator.types import WorkflowStatus
from tests.clocks import waiting_on_clock
from tests.store.test_fencing import holding_oldest_message

pytestmark = pytest.mark.postgres


async def _terminate_listener(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query ILIKE 'LISTEN%%'"
            " AND pid <> pg_backend_pid()"
        )
        return len(await cursor.fetchall())


async def test_waiters_wake_promptly_after_the_listener_connection_is_killed(
    postgres_url: str,
) -> None:
    app = Orchestrator("pg", postgres_url, executor_id="listener-test", app_version="t")

    @app.workflow(name="waits")
    async def waits() -> object:
        return await app.recv(timeout=60)

    async with app:
        handles = [await app.start(waits, workflow_id=f"w{i}") for i in range(5)]
        await asyncio.sleep(0.3)  # parked in recv
        assert await _terminate_listener(postgres_url) == 1
        await asyncio.sleep(0.1)
        sent_at = time.monotonic()
        for handle in handles:  # notifications sent while (or just after) it reconnects
            await app.send(handle.workflow_id, "wake")
        results = await asyncio.gather(*(h.result(timeout=10) for h in handles))
        assert results == ["wake"] * 5
        assert time.monotonic() - sent_at < 3.0  # about a second at worst, never the timeout


@pytest.mark.slow
async def test_ten_thousand_parked_waiters_are_all_woken(postgres_url: str) -> None:
    app = Orchestrator("pg", postgres_url, executor_id="many", app_version="t")
    count = 10_000

    @app.workflow(name="parked")
    async def parked() -> object:
        return await app.recv("go", timeout=600)

    async with app:
        handles = await asyncio.gather(
            *(app.start(parked, workflow_id=f"p{i}") for i in range(count))
        )
        while app.engine.waiters.count_of(NOTIFY_MESSAGE) < count:
            await asyncio.sleep(0.1)
        # the process stays responsive while they wait
        started = time.monotonic()
        await asyncio.sleep(0.01)
        assert time.monotonic() - started < 0.5
        await asyncio.gather(*(app.send(h.workflow_id, h.workflow_id, topic="go") for h in handles))
        results = await asyncio.gather(*(h.result(timeout=120) for h in handles))
        assert results == [h.workflow_id for h in handles]
        assert app.engine.waiters.count_of(NOTIFY_MESSAGE) == 0


async def test_a_message_another_transaction_holds_is_taken_in_order_once_it_lets_go(
    postgres_url: str,
) -> None:
    """A fenced-off executor's recv of the same mailbox (a paused worker waking after a
    takeover) holds the oldest message for a moment. The owner's recv neither takes a newer
    message first nor waits for a notification that will never come: it looks again."""
    clock = FakeClock()
    app = Orchestrator("pg", postgres_url, executor_id="owner", app_version="t", clock=clock)

    @app.workflow(name="two")
    async def two() -> list[object]:
        await app.sleep(10)
        return [await app.recv("t", timeout=None), await app.recv("t", timeout=None)]

    async with app:
        handle = await app.start(two, workflow_id="w")
        await waiting_on_clock(clock, after=10)
        await app.send("w", "first", topic="t")
        await app.send("w", "second", topic="t")
        async with holding_oldest_message(postgres_url, "w") as other:  # "first"
            await clock.advance(10)  # the workflow goes on to recv
            await asyncio.sleep(0.3)
            assert (await handle.status()).status == WorkflowStatus.PENDING
            assert "recv" not in [step.name for step in await app.list_steps("w")]
            await other.rollback()  # lets go; nothing notifies the workflow
        assert await asyncio.wait_for(handle.result(), 10) == ["first", "second"]
