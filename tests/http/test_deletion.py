"""Deleting workflows over HTTP (#20): DELETE /workflows/{id} (204, 404, 409 while running,
children=false), the reader role refused, and POST /admin/bulk/delete with a dry run first.
A real uvicorn server over PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from orchestrator import Orchestrator
from orchestrator.http import create_app
from tests.http.conftest import LiveServer, start_server

pytestmark = pytest.mark.postgres

OPERATOR_KEY = "operator-key-for-deletion"
READER_KEY = "reader-key-for-deletion"


def build(database_url: str) -> Orchestrator:
    app = Orchestrator("deletion-http", database_url, executor_id="del-http", app_version="v1")

    @app.workflow(name="job")
    async def job(n: int) -> int:
        await app.set_event("seen", n)
        return n * 2

    @app.workflow(name="wait")
    async def wait() -> str:
        await app.recv("go", timeout=300)
        return "done"

    return app


@pytest.fixture(scope="module")
def server(pg_template: str) -> Iterator[LiveServer]:
    from tests.http.conftest import _execute, sql

    name = f"orch_del_{uuid.uuid4().hex[:10]}"
    _execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(pg_template)
        )
    )
    url = f"postgresql://root@127.0.0.1:5432/{name}"
    live = start_server(create_app(build(url), api_key=OPERATOR_KEY, read_only_api_key=READER_KEY))
    try:
        yield live
    finally:
        live.stop()
        _execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
async def operator(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {OPERATOR_KEY}", "X-Actor": "dora"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
        yield http


@pytest.fixture
async def reader(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {READER_KEY}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
        yield http


async def finished(http: httpx.AsyncClient, workflow_id: str, n: int = 1) -> None:
    started = await http.post(
        "/workflows/job", json={"n": n}, headers={"Idempotency-Key": workflow_id}
    )
    assert started.status_code == 202, started.text
    result = await http.get(f"/workflows/{workflow_id}/result", params={"timeout": 20})
    assert result.status_code == 200, result.text


async def test_delete_a_workflow_over_http(
    operator: httpx.AsyncClient, reader: httpx.AsyncClient
) -> None:
    workflow_id = f"del-{uuid.uuid4().hex[:8]}"
    await finished(operator, workflow_id, 3)
    refused = await reader.delete(f"/workflows/{workflow_id}")
    assert refused.status_code == 403
    deleted = await operator.delete(f"/workflows/{workflow_id}", params={"reason": "test data"})
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await operator.get(f"/workflows/{workflow_id}")).status_code == 404
    again = await operator.delete(f"/workflows/{workflow_id}")
    assert again.status_code == 404 and again.json()["error"] == "workflow_not_found"
    audit = (await reader.get(f"/workflows/{workflow_id}/audit")).json()
    assert [(a["action"], a["actor"], a["reason"]) for a in audit] == [
        ("delete", "dora", "test data")
    ]
    await finished(operator, workflow_id, 5)  # the id starts a new workflow
    assert (await operator.get(f"/workflows/{workflow_id}/result")).json()["output"] == 10


async def test_deleting_a_running_workflow_is_a_conflict(operator: httpx.AsyncClient) -> None:
    workflow_id = f"run-{uuid.uuid4().hex[:8]}"
    started = await operator.post(
        "/workflows/wait", json={}, headers={"Idempotency-Key": workflow_id}
    )
    assert started.status_code == 202, started.text
    conflict = await operator.delete(f"/workflows/{workflow_id}", params={"children": "false"})
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["error"] == "workflow_state"
    assert "cancel it first" in conflict.json()["message"]
    assert (await operator.post(f"/workflows/{workflow_id}/cancel")).status_code == 202
    assert (await operator.delete(f"/workflows/{workflow_id}")).status_code == 204


async def test_bulk_delete_over_http(operator: httpx.AsyncClient) -> None:
    prefix = f"bd{uuid.uuid4().hex[:6]}-"
    for i in range(3):
        await finished(operator, f"{prefix}{i}", i)
    body = {"filter": {"id_prefix": prefix}, "dry_run": True}
    dry = await operator.post("/admin/bulk/delete", json=body)
    assert dry.status_code == 200, dry.text
    assert dry.json()["matched"] == 3 and dry.json()["dry_run"] is True
    done = await operator.post("/admin/bulk/delete", json={**body, "dry_run": False})
    assert done.status_code == 200, done.text
    assert sorted(done.json()["done"]) == [f"{prefix}{i}" for i in range(3)]
    listed = await operator.get("/workflows", params={"id_prefix": prefix})
    assert listed.status_code == 200 and listed.json()["items"] == []
