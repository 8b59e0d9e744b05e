"""Bearer auth (deny by default), the body-size limit (413 before reading), serve()'s guard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from orchestrator.errors import ConfigurationError
from orchestrator.http import check_bind, create_app
from tests.http.conftest import API_KEY, MAX_BODY_BYTES, LiveServer, new_id
from tests.http.service_app import build_orchestrator

pytestmark = pytest.mark.postgres

PROTECTED = [
    ("GET", "/workflows"),
    ("GET", "/workflows/x"),
    ("GET", "/workflows/x/steps"),
    ("GET", "/workflows/x/history"),
    ("GET", "/workflows/x/result"),
    ("GET", "/workflows/x/events"),
    ("GET", "/workflows/x/streams/k"),
    ("POST", "/workflows/add"),
    ("POST", "/workflows/x/cancel"),
    ("POST", "/workflows/x/resume"),
    ("POST", "/workflows/x/fork"),
    ("POST", "/workflows/x/retry-compensation"),
    ("POST", "/workflows/x/messages/t"),
    ("GET", "/admin/queues"),
    ("GET", "/admin/queues/q"),
    ("GET", "/admin/queued"),
    ("GET", "/admin/schedules"),
    ("GET", "/admin/workers"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_management_endpoints_need_the_bearer_token(
    anonymous: httpx.AsyncClient, method: str, path: str
) -> None:
    missing = await anonymous.request(method, path, content=b"{bad json")
    assert missing.status_code == 401  # before parsing anything
    assert missing.json()["error"] == "unauthorized"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await anonymous.request(method, path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    basic = await anonymous.request(method, path, headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401


async def test_public_endpoints(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/healthz")).status_code == 200
    assert (await anonymous.get("/readyz")).status_code == 200
    assert (await anonymous.get(f"/workflows/{new_id()}/events/k")).status_code == 404
    assert (await anonymous.get("/openapi.json")).status_code == 200


async def test_admin_read_endpoints(client: httpx.AsyncClient) -> None:
    queues = (await client.get("/admin/queues")).json()  # declared ones, idle, with limits
    assert [(q["queue_name"], q["depth"], q["running"]) for q in queues] == [
        ("http-tests-queue", 0, 0)
    ]
    unknown = await client.get("/admin/queues/nope")
    assert unknown.status_code == 404
    assert (await client.get("/admin/queued", params={"queue": "nope"})).json() == []
    assert (await client.get("/admin/schedules")).json() == []
    workers = (await client.get("/admin/workers")).json()
    assert [w["executor_id"] for w in workers] == ["http-tests"]
    assert workers[0]["alive"] is True


async def test_a_declared_length_over_the_limit_is_413_before_the_body_is_read(
    live_server: LiveServer,
) -> None:
    # httpx writes the whole body before reading; when the server answers early and closes,
    # the write fails and httpcore reads the answer. Its asyncio transport drops data already
    # received once a write fails, so this one test drives the sync client from a thread.
    chunk = b"x" * 65_536
    total_chunks = 3_200  # 200 MiB declared and offered
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(total_chunks):
            sent += 1
            yield chunk

    headers = {
        "Authorization": f"Bearer {API_KEY}",
        "Content-Length": str(len(chunk) * total_chunks),
        "Content-Type": "application/json",
    }

    def post() -> httpx.Response:
        with httpx.Client(base_url=live_server.base_url, timeout=30) as http:
            return http.post("/workflows/add", content=body(), headers=headers)

    response = await asyncio.to_thread(post)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert sent < total_chunks // 4  # the server answered long before the body was sent


async def test_a_chunked_body_over_the_limit_is_413_once_it_passes(
    client: httpx.AsyncClient,
) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * (MAX_BODY_BYTES // 4)

    response = await client.post("/workflows/add", content=body())  # no Content-Length
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    under = await client.post("/workflows/add", content=b'{"a": 1}' + b" " * 1000)
    assert under.status_code == 202


async def test_413_comes_before_401(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post("/workflows/add", content=b"0" * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413


def test_serve_refuses_public_hosts_without_an_api_key() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "[::1]", "127.0.0.5"):
        check_bind(host, None)
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(ConfigurationError, match="api_key"):
            check_bind(host, None)
        check_bind(host, API_KEY)


def test_create_app_rejects_bad_settings(http_database: str) -> None:
    app = build_orchestrator(http_database)
    with pytest.raises(ConfigurationError):
        create_app(app, max_body_bytes=0)
    with pytest.raises(ConfigurationError):
        create_app(app, api_key=" ")
