"""Messages by business key (#20 item 6): a message sent to ``name:value`` goes to the
workflow holding that attribute, or is kept until one starts with it (delivered once, in the
start's transaction) and forgotten after its time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator import FakeClock, InvalidArgumentError, Orchestrator, StartOptions
from tests.conftest import AppFactory


def flows(app: Orchestrator) -> dict[str, Any]:
    @app.workflow(name="drain")
    async def drain(topic: str) -> list[Any]:
        """Every message waiting on ``topic`` now (none waits: recv times out at once)."""
        got: list[Any] = []
        while (message := await app.recv(topic, timeout=0)) is not None:
            got.append(message)
        return got

    @app.workflow(name="late_key")
    async def late_key(order: str) -> list[Any]:
        await app.set_attributes({"order_id": order})
        got: list[Any] = []
        while (message := await app.recv("paid", timeout=0)) is not None:
            got.append(message)
        return got

    @app.workflow(name="waiter")
    async def waiter() -> Any:
        return await app.recv("paid", timeout=30)

    return {"drain": drain, "late_key": late_key, "waiter": waiter}


async def test_kept_before_the_start_is_delivered_once(make_app: AppFactory) -> None:
    app = make_app()
    drain = flows(app)["drain"]
    async with app:
        first = await app.send_to_key("order_id:42", {"n": 1}, "paid", idempotency_key="d-1")
        again = await app.send_to_key("order_id:42", {"n": 1}, "paid", idempotency_key="d-1")
        other = await app.send_to_key("order_id:42", {"n": 2}, "paid")
        assert not first.delivered and first.stored and first.expires_at is not None
        assert not again.stored and not again.delivered
        assert other.stored
        options = StartOptions(workflow_id="o42", attributes={"order_id": 42})
        handle = await app.start_with(drain, ("paid",), {}, options)
        assert await handle.result(timeout=10) == [{"n": 1}, {"n": 2}]
        # Claimed: a later start with the key gets nothing; a repeat is still a repeat.
        later = await app.start_with(
            drain, ("paid",), {}, StartOptions(workflow_id="o42b", attributes={"order_id": 42})
        )
        assert await later.result(timeout=10) == []
        repeat = await app.send_to_key("order_id:42", {"n": 1}, "paid", idempotency_key="d-1")
        assert not repeat.stored


async def test_sent_after_the_start_goes_to_the_holder(make_app: AppFactory) -> None:
    app = make_app()
    waiter = flows(app)["waiter"]
    async with app:
        options = StartOptions(workflow_id="w1", attributes={"order_id": "o-7"})
        handle = await app.start_with(waiter, (), {}, options)
        sent = await app.send_to_key("order_id:o-7", "paid!", "paid", idempotency_key="k")
        assert sent.workflow_id == "w1" and sent.stored and sent.expires_at is None
        assert not (await app.send_to_key("order_id:o-7", "x", "paid", idempotency_key="k")).stored
        assert await handle.result(timeout=10) == "paid!"
        # Its holder finished: the next message is kept for a new one.
        assert not (await app.send_to_key("order_id:o-7", "next", "paid")).delivered


async def test_set_attributes_inside_a_workflow_claims(make_app: AppFactory) -> None:
    app = make_app()
    late_key = flows(app)["late_key"]
    async with app:
        await app.send_to_key("order_id:9", "early", "paid", idempotency_key="e")
        handle = await app.start(late_key, "9", workflow_id="late")
        assert await handle.result(timeout=10) == ["early"]


async def test_a_fork_claims_the_messages_kept_for_the_keys_it_copies(
    make_app: AppFactory,
) -> None:
    app = make_app()
    drain = flows(app)["drain"]
    async with app:
        options = StartOptions(workflow_id="src", attributes={"order_id": "5"})
        assert await (await app.start_with(drain, ("paid",), {}, options)).result(timeout=10) == []
        # Its holder finished: kept. The fork takes the source's attributes, so it is the
        # key's new holder: it claims the message in its own transaction, as a start would.
        assert not (await app.send_to_key("order_id:5", "late", "paid")).delivered
        fork = await app.fork("src", 1, new_workflow_id="src-fork")
        assert (await fork.status()).attributes == {"order_id": "5"}
        assert await fork.result(timeout=10) == ["late"]
        again = await app.fork("src", 1, new_workflow_id="src-fork-2")
        assert await again.result(timeout=10) == []  # claimed once


async def test_expired_message_is_not_delivered(make_app: AppFactory) -> None:
    clock = FakeClock()
    app = make_app(clock=clock)
    drain = flows(app)["drain"]
    async with app:
        kept = await app.send_to_key("order_id:1", "old", "paid", keep_seconds=5)
        assert kept.expires_at == clock.now_ms() + 5000
        await clock.advance(6)
        fresh = await app.send_to_key("order_id:1", "new", "paid", keep_seconds=5)
        assert fresh.stored
        options = StartOptions(workflow_id="x1", attributes={"order_id": "1"})
        handle = await app.start_with(drain, ("paid",), {}, options)
        assert await handle.result(timeout=10) == ["new"]


async def test_two_starts_with_the_key_claim_it_once(make_app: AppFactory) -> None:
    app = make_app()
    drain = flows(app)["drain"]
    async with app:
        for n in range(3):
            await app.send_to_key("order_id:race", n, "paid")
        handles = await asyncio.gather(
            *(
                app.start_with(drain, ("paid",), {}, StartOptions(attributes={"order_id": "race"}))
                for _ in range(4)
            )
        )
        results = [await handle.result(timeout=10) for handle in handles]
        assert sorted(m for got in results for m in got) == [0, 1, 2]
        assert sum(1 for got in results if got) == 1


@pytest.mark.parametrize(
    ("key", "keep"), [("order", None), (":42", None), ("Order:42", None), ("order:1", 0)]
)
async def test_bad_key_or_keep_time(make_app: AppFactory, key: str, keep: float | None) -> None:
    app = make_app()
    flows(app)
    async with app:
        with pytest.raises(InvalidArgumentError):
            await app.send_to_key(key, "m", keep_seconds=keep)
