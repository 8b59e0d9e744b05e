"""A message sent from outside workflows WITHOUT an idempotency key, whose commit succeeded
but whose answer was lost (a failover cuts the connection mid-commit), is retried by the store
and still delivered once: the store gave the send a key of its own before the first try, so
the retry is a repeat of that commit. Real PostgreSQL behind a loopback proxy that loses that
one answer (the send alone runs in autocommit, a send by key in a transaction)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orchestrator import Orchestrator, StartOptions, WorkflowFailedError, WorkflowStatus
from tests.failover.proxy import LossyProxy
from tests.failover.test_lost_commit import proxy

pytestmark = [pytest.mark.postgres]
__all__ = ["proxy"]  # the fixture, shared with test_lost_commit


@pytest.fixture
async def app(proxy: tuple[LossyProxy, str]) -> AsyncIterator[Orchestrator]:
    _, url = proxy
    app = Orchestrator("lost-send", url, executor_id="lost-send-1")

    @app.workflow(name="inbox")
    async def inbox() -> list[Any]:
        first = await app.recv("t", timeout=60)
        await app.recv("done", timeout=60)  # sent after every "t" message was
        return [first, await app.recv("t", timeout=0)]

    @app.workflow(name="last_inbox")
    async def last_inbox() -> Any:
        return await app.recv("t", timeout=60)

    async with app:
        yield app


async def test_a_send_whose_commit_answer_was_lost_is_delivered_once(
    proxy: tuple[LossyProxy, str], app: Orchestrator
) -> None:
    lossy, _ = proxy
    handle = await app.start_with("inbox", (), {}, StartOptions(workflow_id="inbox-1"))
    lossy.lose_answer_of(b"lost-answer-probe")
    await app.send("inbox-1", "lost-answer-probe", topic="t")  # no idempotency key
    assert lossy.lost == 1  # the send's commit did lose its answer
    await app.send("inbox-1", "done", topic="done")
    assert await handle.result(timeout=60) == ["lost-answer-probe", None]


async def test_a_handed_message_whose_final_write_lost_its_answer_is_received_once(
    proxy: tuple[LossyProxy, str], app: Orchestrator
) -> None:
    """The message handed to a recv parked in this process is recorded with the workflow's
    final status, in one statement; that statement commits and its answer is lost. The retry
    is refused (the step is taken), the run finds its own write: the send returns (it was
    received) and the workflow's result is the message, stored once."""
    lossy, _ = proxy
    handle = await app.start_with("last_inbox", (), {}, StartOptions(workflow_id="last-1"))
    while app.metrics.registry.get_sample_value("orchestrator_recv_waiters") != 1:
        await asyncio.sleep(0.01)
    lossy.lose_answer_of(b"final-probe")
    await app.send("last-1", "final-probe", topic="t")  # no idempotency key: handed over
    assert lossy.lost == 1  # the combined write's commit did lose its answer
    assert await handle.result(timeout=60) == "final-probe"
    status = await handle.status()
    assert status.status is WorkflowStatus.SUCCESS
    steps = await app.list_steps("last-1")
    assert [(s.name, s.output) for s in steps if s.name == "recv"] == [("recv", "final-probe")]


async def test_a_send_to_key_whose_commit_answer_was_lost_answers_as_it_committed(
    proxy: tuple[LossyProxy, str], app: Orchestrator
) -> None:
    lossy, _ = proxy
    # Kept for a key nobody holds yet: the retry answers with the first try's expiry.
    lossy.lose_commit_of(b"kept-probe")
    kept = await app.send_to_key("order_id:7", "kept-probe", topic="t")
    assert lossy.lost == 1
    assert kept.stored and kept.workflow_id is None and kept.expires_at is not None
    handle = await app.start_with(
        "inbox", (), {}, StartOptions(workflow_id="inbox-7", attributes={"order_id": "7"})
    )
    await app.send("inbox-7", "done", topic="done")
    assert await handle.result(timeout=60) == ["kept-probe", None]
    # Delivered to the holder: the retry answers delivered, to it.
    handle = await app.start_with(
        "inbox", (), {}, StartOptions(workflow_id="inbox-8", attributes={"order_id": "8"})
    )
    lossy.lose_commit_of(b"held-probe")
    held = await app.send_to_key("order_id:8", "held-probe", topic="t")
    assert lossy.lost == 2
    assert held.stored and held.workflow_id == "inbox-8"
    await app.send("inbox-8", "done", topic="done")
    assert await handle.result(timeout=60) == ["held-probe", None]


async def test_a_start_without_an_id_whose_commit_answer_was_lost_runs_once(
    proxy: tuple[LossyProxy, str],
) -> None:
    # The id is chosen (uuid4) before the insert: the retry finds the row its first try
    # committed, and the worker adopts it (it owns it, nothing runs it yet).
    lossy, url = proxy
    app = Orchestrator("lost-start", url, executor_id="lost-start-1", lease_seconds=1.0)

    @app.workflow(name="echo")
    async def echo(text: str) -> str:
        return text

    async with app:
        lossy.lose_answer_of(b"start-probe")
        handle = await app.start(echo, "start-probe")
        assert lossy.lost == 1
        assert await handle.result(timeout=60) == "start-probe"
        assert [w.workflow_id for w in await app.list_workflows()] == [handle.workflow_id]


async def test_a_cancel_with_rollback_whose_commit_answer_was_lost_succeeds(
    proxy: tuple[LossyProxy, str],
) -> None:
    lossy, url = proxy
    app = Orchestrator("lost-cancel", url, executor_id="lost-cancel-1")
    undone: list[str] = []

    @app.step(name="reserve")
    async def reserve() -> str:
        return "r-1"

    @reserve.compensation
    async def release(reservation: str) -> None:
        undone.append(reservation)

    @app.workflow(name="held")
    async def held() -> None:
        await reserve()
        await app.recv("never", timeout=None)

    async with app:
        handle = await app.start(held, workflow_id="held-1")
        while not await app.list_steps("held-1"):
            await asyncio.sleep(0.01)
        lossy.lose_answer_of(b"was cancelled with rollback")
        await app.cancel("held-1", compensate=True)  # the retry finds its own rollback
        assert lossy.lost == 1
        with pytest.raises(WorkflowFailedError):
            await handle.result(timeout=60)
        assert (await handle.status()).status is WorkflowStatus.COMPENSATED
        assert undone == ["r-1"]


async def test_a_fork_whose_commit_answer_was_lost_is_made_once(
    proxy: tuple[LossyProxy, str],
) -> None:
    # The fork's id is chosen (uuid4) before its transaction: the retry meets the row its first
    # try committed, which can only be its own, and goes on with it.
    lossy, url = proxy
    app = Orchestrator("lost-fork", url, executor_id="lost-fork-1")

    @app.workflow(name="echo")
    async def echo(text: str) -> str:
        return text

    async with app:
        source = await app.start(echo, "fork-probe", workflow_id="fork-source")
        assert await source.result(timeout=60) == "fork-probe"
        lossy.lose_commit_of(b"fork-probe")  # the fork's insert carries the source's input
        fork = await app.fork("fork-source", from_step=1)
        assert lossy.lost == 1
        assert await fork.result(timeout=60) == "fork-probe"
        listed = sorted(w.workflow_id for w in await app.list_workflows())
        assert listed == sorted(["fork-source", fork.workflow_id])
