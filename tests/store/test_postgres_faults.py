"""PostgreSQL under faults: killed connections, an unreachable server, LISTEN loss, schemas."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from orchestrator.errors import (
    InvalidArgumentError,
    StoreError,
    StoreUnavailableError,
    WorkflowStateError,
)
from orchestrator.store import (
    NOTIFY_EVENT,
    NOTIFY_RECONNECTED,
    SEPARATOR,
    NewWorkflow,
    PostgresStore,
    StepRecord,
)
from orchestrator.types import StepKind, WorkflowStatus

pytestmark = pytest.mark.postgres


def new_workflow(workflow_id: str) -> NewWorkflow:
    return NewWorkflow(workflow_id, "w", WorkflowStatus.PENDING, "{}", "exec-1", "v1")


def step(workflow_id: str, number: int) -> StepRecord:
    return StepRecord(workflow_id, number, f"s{number}", StepKind.STEP, output="1", epoch=0)


@contextlib.asynccontextmanager
async def opened(url: str, **options: Any) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(url, **options)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def sessions(conn: psycopg.Connection[Any]) -> list[tuple[int, str | None, str]]:
    """(pid, state, query) of every other session on ``conn``'s database."""
    rows = conn.execute(
        "SELECT pid, state, query FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def terminate(url: str, *, listen_only: bool = False) -> int:
    """pg_terminate_backend every other session on the database (or only LISTEN ones)."""
    killed = 0
    with psycopg.connect(url, autocommit=True) as conn:
        for pid, _, query in sessions(conn):
            if listen_only and not query.startswith("LISTEN"):
                continue
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])
            killed += 1
    return killed


def idle_in_transaction(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [pid for pid, state, _ in sessions(conn) if state and "in transaction" in state]


async def test_killed_pool_connections_are_replaced(postgres_url: str) -> None:
    async with opened(postgres_url, min_size=2, max_size=6) as store:
        await asyncio.gather(*(store.create_workflow(new_workflow(f"w{i}")) for i in range(12)))
        assert terminate(postgres_url) >= 2

        # Every kind of operation works again: plain, single statement, transaction.
        assert (await store.create_workflow(new_workflow("after")))[1]
        assert await store.record_step(step("after", 0))
        assert await store.send_message("after", "t", '"m"', None, step("after", 1))
        results = await asyncio.gather(*(store.get_workflow(f"w{i}") for i in range(12)))
        assert all(result is not None for result in results)
        assert idle_in_transaction(postgres_url) == []


async def test_one_at_a_time_the_last_used_connection_is_reused(postgres_url: str) -> None:
    """The hot path stays on one awake backend (the pool alone would rotate over all of its
    connections), and a connection killed while warm is replaced."""
    async with opened(postgres_url, min_size=4, max_size=8) as store:
        await store.create_workflow(new_workflow("w"))
        for _ in range(50):  # the pool has opened its 4 connections meanwhile
            await asyncio.sleep(0.01)
            if len(sessions_of(postgres_url)) >= 4:
                break
        for number in range(30):
            await store.record_step(step("w", number))
        ran = [q for _, _, q in sessions_of(postgres_url) if "INSERT INTO steps" in q]
        assert len(ran) == 1, sessions_of(postgres_url)

        assert terminate(postgres_url) >= 4  # the warm one too
        assert await store.record_step(step("w", 30))
        assert (await store.get_workflow("w")) is not None


async def test_closing_under_load_leaves_no_session_open(postgres_url: str) -> None:
    """Operations still running when the store closes give their connections back to the
    closed pool (which closes them), not to the warm set."""
    store = PostgresStore(postgres_url, min_size=2, max_size=8)
    await store.open()
    await store.create_workflow(new_workflow("w"))

    async def reads() -> None:
        with contextlib.suppress(StoreError):
            while True:
                await store.get_workflow("w")

    readers = [asyncio.ensure_future(reads()) for _ in range(6)]
    await asyncio.sleep(0.2)
    await store.close()
    await asyncio.gather(*readers)
    for _ in range(50):
        if not sessions_of(postgres_url):
            break
        await asyncio.sleep(0.02)
    assert sessions_of(postgres_url) == []


def sessions_of(url: str) -> list[tuple[int, str | None, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return sessions(conn)


async def test_failed_or_cancelled_transactions_leave_no_open_session(postgres_url: str) -> None:
    async with opened(postgres_url, min_size=2, max_size=4) as store:
        await store.create_workflow(new_workflow("w"))
        await store.record_step(step("w", 0))
        for _ in range(5):  # fails after its first write: rolled back
            with pytest.raises(WorkflowStateError):
                await store.set_event("w", "k", "1", step("w", 0))
        assert await store.get_event("w", "k") is None

        # Cancelled at every point of a receive, in turn: after 0..9 event-loop turns (before it
        # ran, while it takes a connection, with its statement sent), then after 0.2..5.8 ms. Not
        # wait_for: under load a reply and a timeout land in one loop turn and the reply wins.
        cancelled = 0
        for number in range(1, 40):
            await store.send_message("w", "t", '"m"', None)
            recv = asyncio.ensure_future(store.recv_message("w", "t", step("w", number)))
            if number <= 10:
                for _ in range(number - 1):
                    await asyncio.sleep(0)
            else:
                await asyncio.sleep((number - 10) * 0.0002)
            recv.cancel()
            try:
                await recv
            except asyncio.CancelledError:
                cancelled += 1
        assert cancelled > 0  # at least the receive cancelled before it ran
        await asyncio.sleep(0.2)
        assert idle_in_transaction(postgres_url) == []
        assert await store.record_step(step("w", 100))


async def test_unreachable_server_raises_unavailable() -> None:
    store = PostgresStore("postgresql://root@127.0.0.1:1/root", reconnect_timeout=1)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        await store.open()
    assert time.monotonic() - started < 5
    await store.close()


async def test_database_errors_become_store_errors(postgres_url: str) -> None:
    async with opened(postgres_url, reconnect_timeout=30) as store:
        await store.create_workflow(new_workflow("w"))
        started = time.monotonic()
        with pytest.raises(StoreError, match="out of range") as raised:
            await store.record_step(step("w", 2**40))  # not retried: not a connection error
        assert not isinstance(raised.value, StoreUnavailableError)
        assert time.monotonic() - started < 2


async def test_listen_reconnects_after_its_connection_dies(postgres_url: str) -> None:
    async with opened(postgres_url) as store:
        seen: list[tuple[str, str]] = []
        changed = asyncio.Event()

        def handler(kind: str, detail: str) -> None:
            seen.append((kind, detail))
            changed.set()

        async def wait_for(item: tuple[str, str], timeout: float) -> None:
            async def until_seen() -> None:
                while item not in seen:
                    changed.clear()
                    await changed.wait()

            await asyncio.wait_for(until_seen(), timeout)

        await store.listen(handler)
        await store.create_workflow(new_workflow("w"))
        await store.set_event("w", "before", "1", None)
        await wait_for((NOTIFY_EVENT, f"w{SEPARATOR}before"), 2)

        assert terminate(postgres_url, listen_only=True) == 1
        await wait_for((NOTIFY_RECONNECTED, ""), 5)
        await store.set_event("w", "after", "1", None)
        await wait_for((NOTIFY_EVENT, f"w{SEPARATOR}after"), 2)


async def test_another_schema_is_isolated(postgres_url: str) -> None:
    async with (
        opened(postgres_url) as default,
        opened(postgres_url, schema="tenant_b") as other,
    ):
        state = await other.migration_state()
        assert state.pending == () and state.applied
        seen_by_other: list[tuple[str, str]] = []
        got_own = asyncio.Event()

        def handler(kind: str, detail: str) -> None:
            seen_by_other.append((kind, detail))
            if detail == f"b{SEPARATOR}k":
                got_own.set()

        await other.listen(handler)
        await default.create_workflow(new_workflow("a"))
        await other.create_workflow(new_workflow("b"))
        assert await other.get_workflow("a") is None
        assert await default.get_workflow("b") is None
        await default.set_event("a", "k", "1", None)
        await other.set_event("b", "k", "1", None)
        await asyncio.wait_for(got_own.wait(), 2)
        assert (NOTIFY_EVENT, f"a{SEPARATOR}k") not in seen_by_other

    with psycopg.connect(postgres_url) as conn:
        count = conn.execute("SELECT count(*) FROM tenant_b.workflows").fetchone()
    assert count == (1,)


@pytest.mark.parametrize(
    "schema", ["", "Upper", "1starts_with_digit", "has-dash", "x; DROP TABLE t", "a" * 51]
)
def test_bad_schema_name_is_rejected(schema: str) -> None:
    with pytest.raises(InvalidArgumentError, match="schema"):
        PostgresStore("postgresql://localhost/db", schema=schema)
