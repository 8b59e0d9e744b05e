"""The service mounted in a user's FastAPI app: who launches the Orchestrator, link prefixes."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from orchestrator import ConfigurationError, Orchestrator
from orchestrator.http import Delivery, HmacSha256, Send, create_app
from tests.http.conftest import start_server
from tests.http.service_app import build_orchestrator

pytestmark = pytest.mark.postgres


async def test_mounted_service_uses_the_host_apps_lifespan(postgres_url: str) -> None:
    orchestrator = build_orchestrator(postgres_url)
    service = create_app(orchestrator)

    bare = FastAPI()  # mounted sub-apps get no lifespan: nobody launches the Orchestrator
    bare.mount("/orch", service)
    server = start_server(bare)
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            refused = await http.post("/orch/workflows/add", json={"a": 1})
            assert refused.status_code == 503
            assert refused.json()["error"] == "not_launched"
            ready = await http.get("/orch/readyz")
            assert ready.status_code == 503
            assert ready.json()["reason"] == "the orchestrator is not launched"
    finally:
        server.stop()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with orchestrator:
            yield

    host = FastAPI(lifespan=lifespan)
    host.mount("/orch", service)
    server = start_server(host)
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            started = await http.post(
                "/orch/workflows/add", json={"a": 1}, headers={"Idempotency-Key": "m/1 x"}
            )
            assert started.status_code == 202
            links = started.json()["links"]
            assert links["result"] == "/orch/workflows/m%2F1%20x/result"
            assert (await http.get("/orch/readyz")).status_code == 200
            other = await http.post("/orch/workflows/add", json={"a": 2})
            result = await http.get(other.json()["links"]["result"], params={"timeout": 5})
            assert result.json() == {"status": "SUCCESS", "output": 3}
    finally:
        server.stop()
    assert not orchestrator.engine.launched  # the host's lifespan shut it down


async def test_webhooks_declared_on_the_app_are_served(postgres_url: str) -> None:
    orchestrator = Orchestrator("declared", postgres_url)

    @orchestrator.workflow(name="collector")
    async def collector() -> object:
        return await orchestrator.recv("paid", timeout=30)

    @orchestrator.webhook("shop", secret="s3cret", scheme=HmacSha256(header="X-Sig"))
    def paid(delivery: Delivery) -> Send:
        return Send(delivery.payload["workflow_id"], "paid", delivery.payload["amount"])

    with pytest.raises(ConfigurationError, match="already declared"):
        orchestrator.webhook("shop", secret="x", scheme=HmacSha256())(paid)
    server = start_server(create_app(orchestrator))
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            await http.post("/workflows/collector", headers={"Idempotency-Key": "wh-1"}, json={})
            body = json.dumps({"workflow_id": "wh-1", "amount": 42}).encode()
            signature = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
            headers = {"X-Delivery-Id": "d-1", "Content-Type": "application/json"}
            forged = await http.post("/webhooks/shop", content=body, headers=headers)
            assert forged.status_code == 401
            accepted = await http.post(
                "/webhooks/shop", content=body, headers={**headers, "X-Sig": signature}
            )
            assert accepted.status_code == 202, accepted.text
            result = await http.get("/workflows/wh-1/result", params={"timeout": 10})
            assert result.json() == {"status": "SUCCESS", "output": 42}
    finally:
        server.stop()


def test_a_declared_webhook_with_a_wrong_scheme_is_refused() -> None:
    orchestrator = Orchestrator("bad-scheme", "sqlite:///:memory:")
    orchestrator.webhook("x", secret="s", scheme="hmac")(lambda delivery: None)
    with pytest.raises(ConfigurationError, match="scheme must be"):
        create_app(orchestrator)
