"""The service mounted in a user's FastAPI app: who launches the Orchestrator, link prefixes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from orchestrator.http import create_app
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
