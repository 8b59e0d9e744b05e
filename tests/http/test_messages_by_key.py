"""POST /messages/by-key/{key}/{topic} and a webhook's SendToKey: an early message (before the
saga holds its order id) is kept (202, not 404) and delivered once when the saga starts."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from orchestrator import InvalidArgumentError, Orchestrator, StartOptions
from orchestrator.http import create_app
from orchestrator.http.signatures import HmacSha256
from orchestrator.http.webhooks import Delivery, SendToKey, WebhookSource
from tests.conftest import AppFactory

SECRET = "whsec-by-key"


def paid(delivery: Delivery) -> SendToKey:
    return SendToKey(f"order_id:{delivery.payload['order']}", "paid", delivery.payload["amount"])


@pytest.fixture
async def served(make_app: AppFactory) -> AsyncIterator[tuple[Orchestrator, httpx.AsyncClient]]:
    app = make_app()

    @app.workflow(name="drain")
    async def drain(topic: str) -> list[Any]:
        got: list[Any] = []
        while (message := await app.recv(topic, timeout=0)) is not None:
            got.append(message)
        return got

    source = WebhookSource(
        "shop", SECRET, HmacSha256(header="X-Signature", delivery_id_header="X-Delivery"), paid
    )
    api = create_app(app, webhooks=[source])
    async with app:
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield app, client


def _signed(body: str, delivery: str) -> dict[str, str]:
    signature = hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    return {"X-Signature": signature, "X-Delivery": delivery, "content-type": "application/json"}


async def test_kept_by_http_and_webhook_then_delivered_once(
    served: tuple[Orchestrator, httpx.AsyncClient],
) -> None:
    app, client = served
    url = "/messages/by-key/order_id:42/paid"
    first = await client.post(url, json={"n": 1}, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 202, first.text
    assert first.json()["delivered"] is False and first.json()["expires_at"] is not None
    again = await client.post(url, json={"n": 1}, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 202 and again.json()["repeat"] is True

    body = json.dumps({"order": 42, "amount": 30})
    for _ in range(2):  # the provider retries: kept once
        hook = await client.post("/webhooks/shop", content=body, headers=_signed(body, "evt-1"))
        assert hook.status_code == 202, hook.text
        assert hook.json()["action"] == "kept"

    drain = app.workflow_named("drain")
    options = StartOptions(workflow_id="order-42", attributes={"order_id": 42})
    handle = await app.start_with(drain, ("paid",), {}, options)
    assert await handle.result(timeout=10) == [{"n": 1}, 30]

    late = await client.post("/messages/by-key/order_id:42/paid?keep_seconds=1", json="x")
    assert late.json()["delivered"] is False  # its holder finished: kept for the next one


@pytest.mark.parametrize(
    "url", ["/messages/by-key/order/paid", "/messages/by-key/order_id:1/paid?keep_seconds=0"]
)
async def test_bad_key_or_keep(served: tuple[Orchestrator, httpx.AsyncClient], url: str) -> None:
    _, client = served
    answer = await client.post(url, json=1)
    assert answer.status_code in (400, 422), answer.text


async def test_the_python_client_sends_by_key_and_by_id(make_app: AppFactory) -> None:
    from orchestrator.http.client import ServiceClient

    app = make_app()

    @app.workflow(name="drain")
    async def drain(topic: str) -> list[Any]:
        got: list[Any] = []
        while (message := await app.recv(topic, timeout=0)) is not None:
            got.append(message)
        return got

    @app.workflow(name="waiter")
    async def waiter() -> Any:
        return await app.recv("paid", timeout=30)

    async with app:
        transport = httpx.ASGITransport(app=create_app(app))
        async with ServiceClient("http://127.0.0.1", transport=transport) as client:
            kept = await client.send_to_key("order_id:7", "early", "paid", idempotency_key="k7")
            assert kept["delivered"] is False and kept["expires_at"] is not None
            assert (await client.send_to_key("order_id:7", 1, "paid", idempotency_key="k7"))[
                "repeat"
            ]
            options = StartOptions(workflow_id="o7", attributes={"order_id": "7"})
            handle = await app.start_with(drain, ("paid",), {}, options)
            assert await handle.result(timeout=10) == ["early"]

            held = await app.start_with(waiter, (), {}, StartOptions(attributes={"order_id": "8"}))
            sent = await client.send_to_key("order_id:8", {"n": 8}, "paid", keep_seconds=60)
            assert sent["delivered"] is True and sent["workflow_id"] == held.workflow_id
            assert await held.result(timeout=10) == {"n": 8}

            by_id = await app.start(waiter, workflow_id="w9")
            answer = await client.send("w9", [9], "paid", idempotency_key="s9")
            assert answer == {"workflow_id": "w9", "topic": "paid", "idempotency_key": "s9"}
            assert await by_id.result(timeout=10) == [9]
            with pytest.raises(InvalidArgumentError, match="key"):
                await client.send_to_key("no-colon", 1, "paid")
