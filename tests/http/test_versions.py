"""Upgrades over HTTP (docs/upgrading.md): stranded workflows in /readyz, the listing and the
metrics; /admin/versions; moving workflows to a version; a fork onto another version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from orchestrator import Orchestrator
from orchestrator.http import create_app
from tests.http.conftest import start_server
from tests.upgrades.inprocess import ORDER, park, shop

pytestmark = pytest.mark.postgres


@pytest.fixture
async def served(postgres_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A v1 checkout left waiting for its payment; then the service of v2 (which does not
    run v1) on the same database."""

    def make(**kwargs: Any) -> Orchestrator:
        return Orchestrator("test", postgres_url, **kwargs)

    await park(shop(make, "v1", "plain", "w1"))
    server = start_server(create_app(shop(make, "v2", "plain", "w2")))
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            yield http
    finally:
        server.stop()


async def test_stranded_workflows_show_in_readiness_listing_versions_and_metrics(
    served: httpx.AsyncClient,
) -> None:
    ready = (await served.get("/readyz")).json()
    assert ready["ready"] is True and ready["stranded"] == {"v1": 1}
    page = (await served.get("/workflows", params={"stranded": "true"})).json()
    assert [(w["workflow_id"], w["app_version"]) for w in page["items"]] == [(ORDER, "v1")]
    page = (await served.get("/workflows", params={"app_version": "v2"})).json()
    assert page["items"] == []
    versions = {v["app_version"]: v for v in (await served.get("/admin/versions")).json()}
    assert versions["v1"]["stranded"] == 1 and versions["v1"]["live_workers"] == 0
    assert versions["v2"]["live_workers"] == 1 and versions["v2"]["stranded"] == 0
    metrics = (await served.get("/metrics")).text
    assert 'orchestrator_workflows_stranded{app_version="v1"} 1.0' in metrics


async def test_workflows_are_moved_to_a_version_and_taken_over(served: httpx.AsyncClient) -> None:
    moved = await served.post(
        "/admin/versions/v2/workflows", json={"workflow_ids": [ORDER, "no-such-workflow"]}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json() == {
        "app_version": "v2",
        "moved": [ORDER],
        "not_moved": ["no-such-workflow"],
    }
    sent = await served.post(f"/workflows/{ORDER}/messages/paid", json=True)
    assert sent.status_code == 202, sent.text
    result = await served.get(f"/workflows/{ORDER}/result", params={"wait": 20})
    assert result.json()["output"] == f"c-{ORDER}", result.text
    assert (await served.get("/readyz")).json()["stranded"] == {}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"workflow_ids": []}, 422),
        ({"workflow_ids": [""]}, 422),
        ({"workflow_ids": ["a"], "extra": 1}, 422),
        ({"workflow_ids": "a"}, 422),
        ("not json", 400),
    ],
)
async def test_a_malformed_move_is_refused_and_moves_nothing(
    served: httpx.AsyncClient, body: Any, status: int
) -> None:
    if body == "not json":
        answer = await served.post(
            "/admin/versions/v2/workflows",
            content=b"{nope",
            headers={"content-type": "application/json"},
        )
    else:
        answer = await served.post("/admin/versions/v2/workflows", json=body)
    assert answer.status_code == status, answer.text
    assert "error" in answer.json()
    assert (await served.get("/readyz")).json()["stranded"] == {"v1": 1}


async def test_a_fork_onto_another_version(served: httpx.AsyncClient) -> None:
    forked = await served.post(
        f"/workflows/{ORDER}/fork",
        params={"from_step": 3, "new_workflow_id": "forked", "app_version": "v2"},
    )
    assert forked.status_code == 202, forked.text
    await served.post("/workflows/forked/messages/paid", json=True)
    result = await served.get("/workflows/forked/result", params={"wait": 20})
    assert result.json()["output"] == f"c-{ORDER}", result.text
    info = (await served.get("/workflows/forked")).json()
    assert (info["app_version"], info["executor_id"]) == ("v2", "w2")
    empty = await served.post(f"/workflows/{ORDER}/fork", params={"app_version": ""})
    assert empty.status_code == 422, empty.text
