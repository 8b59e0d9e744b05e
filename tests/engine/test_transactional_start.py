"""Transactional start and send (app.start_in, app.send_in): written in the caller's own
psycopg transaction, they exist when it commits and never when it rolls back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from orchestrator import Orchestrator
from orchestrator.errors import (
    ConfigurationError,
    InvalidArgumentError,
    WorkflowNotFoundError,
)
from orchestrator.types import WorkflowStatus
from tests.conftest import ADMIN_URL


@pytest.fixture
async def app(postgres_url: str) -> AsyncIterator[Orchestrator]:
    """A launched app (its own worker) with a business table ``orders`` beside its schema."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.orders (order_id text PRIMARY KEY)")
    orchestrator = Orchestrator("tx", postgres_url, executor_id="tx-worker", app_version="t")
    ran: list[str] = []
    orchestrator.ran = ran  # type: ignore[attr-defined]

    @orchestrator.workflow(name="fulfil")
    async def fulfil(order_id: str) -> str:
        ran.append(order_id)
        return f"fulfilled {order_id}"

    @orchestrator.workflow(name="waits")
    async def waits() -> object:
        return await orchestrator.recv("pay", timeout=30)

    @orchestrator.workflow(name="misuses")
    async def misuses() -> str:  # a workflow's body is no place for a transaction
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            await orchestrator.start_in(conn, "fulfil", "o-1")
        return "unreachable"

    orchestrator.queue("orders")
    async with orchestrator:
        yield orchestrator


async def _orders(url: str) -> list[str]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute("SELECT order_id FROM public.orders ORDER BY order_id")
        return [row[0] for row in await cursor.fetchall()]


@pytest.mark.postgres
async def test_a_transactional_start_rolled_back_leaves_no_workflow(
    app: Orchestrator, postgres_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        await conn.execute("INSERT INTO orders VALUES ('o-1')")
        handle = await app.start_in(conn, "fulfil", "o-1", workflow_id="fulfil-o-1")
        assert handle.workflow_id == "fulfil-o-1"
        await conn.rollback()
    assert await app.store.get_workflow("fulfil-o-1") is None
    assert await _orders(postgres_url) == []
    # A committed start after it runs (the worker was listening all along): nothing else did.
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        other = await app.start_in(conn, "fulfil", "o-2")
    assert await other.result(timeout=10) == "fulfilled o-2"
    assert app.ran == ["o-2"]  # type: ignore[attr-defined]


@pytest.mark.postgres
async def test_a_committed_transactional_start_runs_once_committed(
    app: Orchestrator, postgres_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        await conn.execute("SET search_path TO public")
        await conn.execute("INSERT INTO orders VALUES ('o-1')")
        handle = await app.start_in(conn, "fulfil", "o-1", workflow_id="fulfil-o-1")
        assert handle.info is not None and handle.info.status is WorkflowStatus.PENDING
        cursor = await conn.execute("SHOW search_path")
        assert await cursor.fetchone() == ("public",)  # the caller's, restored
        assert await app.store.get_workflow("fulfil-o-1") is None  # not committed yet
        assert app.ran == []  # type: ignore[attr-defined]
        await conn.commit()
    assert await handle.result(timeout=10) == "fulfilled o-1"
    assert await _orders(postgres_url) == ["o-1"]
    record = await app.store.get_workflow("fulfil-o-1")
    assert record is not None and record.executor_id == "tx-worker"
    assert record.recovery_attempts == 0  # claimed on the commit's notification, not taken over
    # The id is an idempotency key here too.
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        again = await app.start_in(conn, "fulfil", "o-1", workflow_id="fulfil-o-1")
    assert again.workflow_id == "fulfil-o-1" and app.ran == ["o-1"]  # type: ignore[attr-defined]


@pytest.mark.postgres
async def test_enqueue_inside_a_transaction(app: Orchestrator, postgres_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        await conn.execute("INSERT INTO orders VALUES ('o-1')")
        handle = await app.start_in(conn, "fulfil", "o-1", queue="orders")
        assert await app.store.get_workflow(handle.workflow_id) is None
        await conn.rollback()
        await conn.execute("INSERT INTO orders VALUES ('o-2')")
        kept = await app.start_in(conn, "fulfil", "o-2", queue="orders")
        await conn.commit()
    assert await app.store.get_workflow(handle.workflow_id) is None
    assert await kept.result(timeout=10) == "fulfilled o-2"
    record = await app.store.get_workflow(kept.workflow_id)
    assert record is not None and record.queue_name == "orders"


@pytest.mark.postgres
async def test_a_message_sent_in_a_transaction_is_delivered_only_on_commit(
    app: Orchestrator, postgres_url: str
) -> None:
    waiting = await app.start("waits")
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        await app.send_in(conn, waiting.workflow_id, "rolled back", topic="pay")
        await conn.rollback()
        await app.send_in(conn, waiting.workflow_id, "paid", topic="pay", idempotency_key="k")
        await conn.commit()
    # Had the first message been delivered, recv (oldest first) would have returned it.
    assert await waiting.result(timeout=10) == "paid"


@pytest.mark.postgres
async def test_start_and_send_in_one_transaction_on_a_sync_connection(
    app: Orchestrator, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("INSERT INTO orders VALUES ('o-1')")
        handle = await app.start_in(conn, "waits", workflow_id="waits-o-1")
        await app.send_in(conn, "waits-o-1", "paid", topic="pay")  # sees the uncommitted start
        conn.commit()
    assert await handle.result(timeout=10) == "paid"


@pytest.mark.postgres
async def test_an_orchestrator_error_leaves_the_callers_transaction_usable(
    app: Orchestrator, postgres_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        await conn.execute("INSERT INTO orders VALUES ('o-1')")
        with pytest.raises(WorkflowNotFoundError):
            await app.send_in(conn, "nobody", "hello")
        await conn.execute("INSERT INTO orders VALUES ('o-2')")
        await conn.commit()
    assert await _orders(postgres_url) == ["o-1", "o-2"]


@pytest.mark.postgres
async def test_a_connection_to_another_database_is_refused(app: Orchestrator) -> None:
    async with await psycopg.AsyncConnection.connect(ADMIN_URL) as conn:
        with pytest.raises(ConfigurationError, match="store's own database"):
            await app.start_in(conn, "fulfil", "o-1")
        with pytest.raises(ConfigurationError, match="store's own database"):
            await app.send_in(conn, "anyone", "hello")
    with pytest.raises(InvalidArgumentError, match="psycopg connection"):
        await app.start_in(object(), "fulfil", "o-1")


@pytest.mark.postgres
async def test_a_workflow_body_cannot_start_in_a_transaction(app: Orchestrator) -> None:
    with pytest.raises(InvalidArgumentError, match="transaction of its own"):
        await (await app.start("misuses")).result(timeout=10)


@pytest.mark.sqlite
async def test_sqlite_refuses_a_transactional_start(tmp_path: Path) -> None:
    app = Orchestrator("tx", f"sqlite:///{tmp_path}/tx.db", app_version="t")

    @app.workflow(name="fulfil")
    async def fulfil(order_id: str) -> str:
        return order_id

    async with app:
        with pytest.raises(ConfigurationError, match="needs PostgreSQL"):
            await app.start_in(object(), fulfil, "o-1")
        with pytest.raises(ConfigurationError, match="needs PostgreSQL"):
            await app.send_in(object(), "anyone", "hello")


async def test_a_transactional_start_takes_attributes_and_a_subject(postgres_url: str) -> None:
    from orchestrator import ChainCodec, Keyring, SubjectCodec

    keyring = Keyring({"m1": b"k" * 32}, "m1")
    app = Orchestrator(
        "tx-subject",
        postgres_url,
        executor_id="tx-subject",
        app_version="t",
        codec=ChainCodec(SubjectCodec(keyring)),
    )

    @app.workflow(name="card_order")
    async def card_order(card: str) -> str:
        return card[-4:]

    async with app:
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            handle = await app.start_in(
                conn,
                card_order,
                "4111111111111111",
                attributes={"order_id": "o-5"},
                subject="customer:c-5",
            )
            await conn.commit()
        assert await handle.result(timeout=20) == "1111"
        info = await handle.status()
        assert info.attributes == {"order_id": "o-5", "subject": "customer:c-5"}
        with psycopg.connect(postgres_url) as raw:
            rows = raw.execute("SELECT input FROM orchestrator.workflows").fetchall()
        assert all("4111111111111111" not in str(row) for row in rows)
        assert await app.erase_subject("customer:c-5")
        assert set((await handle.status()).input) == {"$undecodable"}
