"""Workflow endpoints over a real server: start, read, list, result, cancel, resume, fork."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

from tests.http.conftest import new_id

pytestmark = pytest.mark.postgres


async def test_health_and_readiness_are_public(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
    ready = await anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "pending_migrations": [],
        "reason": None,
        "stranded": {},
    }


async def test_start_with_arguments_by_name_and_read_the_result(client: httpx.AsyncClient) -> None:
    workflow_id = new_id()
    started = await client.post(
        "/workflows/add", json={"a": 20, "b": 22}, headers={"Idempotency-Key": workflow_id}
    )
    assert started.status_code == 202
    body = started.json()
    assert body["workflow_id"] == workflow_id
    assert body["status"] in {"PENDING", "SUCCESS"}
    assert body["links"] == {
        "self": f"/workflows/{workflow_id}",
        "result": f"/workflows/{workflow_id}/result",
        "events": f"/workflows/{workflow_id}/events",
        "steps": f"/workflows/{workflow_id}/steps",
    }
    result = await client.get(body["links"]["result"], params={"timeout": 5})
    assert result.status_code == 200
    assert result.json() == {"status": "SUCCESS", "output": 42}

    info = (await client.get(body["links"]["self"])).json()
    assert info["name"] == "add"
    assert info["status"] == "SUCCESS"
    assert info["input"] == {"args": [20, 22], "kwargs": {}}
    steps = (await client.get(body["links"]["steps"])).json()
    assert [(s["step_number"], s["name"], s["output"]) for s in steps] == [(1, "double", 40)]


async def test_the_idempotency_key_is_the_workflow_id(client: httpx.AsyncClient) -> None:
    workflow_id = new_id()
    first = await client.post(
        "/workflows/add", json={"a": 1}, headers={"Idempotency-Key": workflow_id}
    )
    again = await client.post(
        "/workflows/add", json={"a": 1}, headers={"Idempotency-Key": workflow_id}
    )
    assert first.status_code == again.status_code == 202
    assert again.json()["workflow_id"] == workflow_id
    listed = await client.get("/workflows", params={"name": "add", "limit": 1000})
    assert [w["workflow_id"] for w in listed.json()["items"]].count(workflow_id) == 1
    conflict = await client.post(
        "/workflows/add", json={"a": 2}, headers={"Idempotency-Key": workflow_id}
    )
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "workflow_conflict"


async def test_a_single_model_parameter_takes_the_body_as_the_model(
    client: httpx.AsyncClient,
) -> None:
    started = await client.post(
        "/workflows/checkout",
        json={"order_id": "o-1", "amount": 5},
        params={"wait_for_event": "payment_url", "timeout": 5},
    )
    assert started.status_code == 200
    body = started.json()
    assert body["event"] == {"key": "payment_url", "value": "https://pay.example/o-1"}
    await client.post(f"/workflows/{body['workflow_id']}/cancel", json={"compensate": False})


async def test_field_errors_are_422_with_locations(client: httpx.AsyncClient) -> None:
    bad_model = await client.post("/workflows/checkout", json={"order_id": "", "amount": 0})
    assert bad_model.status_code == 422
    error = bad_model.json()
    assert error["error"] == "validation_error"
    assert {tuple(e["loc"]) for e in error["detail"]["errors"]} == {
        ("body", "order_id"),
        ("body", "amount"),
    }
    bad_args = await client.post("/workflows/add", json={"a": "x", "c": 1})
    assert bad_args.status_code == 422
    locs = {tuple(e["loc"]) for e in bad_args.json()["detail"]["errors"]}
    assert locs == {("body", "a"), ("body", "c")}
    missing = await client.post("/workflows/add", json={})
    assert missing.status_code == 422
    assert missing.json()["detail"]["errors"][0]["type"] == "missing"
    not_object = await client.post("/workflows/add", json=[1, 2])
    assert not_object.status_code == 422


async def test_unknown_workflow_malformed_json_and_bad_headers(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/workflows/nope", json={})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "not_registered"
    malformed = await client.post(
        "/workflows/add", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"] == "malformed_json"
    empty = await client.post("/workflows/add")
    assert empty.status_code == 400
    control = await client.post(
        "/workflows/add", json={"a": 1}, headers={"Idempotency-Key": "a\tb"}
    )
    assert control.status_code == 400
    assert control.json()["error"] == "invalid_argument"
    missing = await client.get(f"/workflows/{new_id()}")
    assert missing.status_code == 404
    assert missing.json()["error"] == "workflow_not_found"
    assert (await client.get(f"/workflows/{new_id()}/steps")).status_code == 404
    assert (await client.get(f"/workflows/{new_id()}/result")).status_code == 404
    no_route = await client.get("/nowhere")
    assert no_route.status_code == 404
    assert no_route.json()["error"] == "not_found"


async def test_a_failed_workflow_result_is_409_with_the_error(client: httpx.AsyncClient) -> None:
    started = await client.post("/workflows/fails", json={"reason": "card declined"})
    result = await client.get(started.json()["links"]["result"], params={"timeout": 5})
    assert result.status_code == 409
    error = result.json()
    assert error["detail"]["status"] == "ERROR"
    assert error["error"] == "workflow_failed"
    assert error["detail"]["error_type"] == "builtins.ValueError"
    assert error["detail"]["error_message"] == "card declined"


async def test_result_long_poll_times_out_with_202_and_the_status(
    client: httpx.AsyncClient,
) -> None:
    started = await client.post("/workflows/waits", json={})
    workflow_id = started.json()["workflow_id"]
    result = await client.get(f"/workflows/{workflow_id}/result", params={"timeout": 0.3})
    assert result.status_code == 202
    assert result.json() == {"status": "PENDING", "output": None}
    cancelled = await client.post(f"/workflows/{workflow_id}/cancel")
    assert cancelled.status_code == 202
    again = await client.post(f"/workflows/{workflow_id}/cancel")
    assert again.status_code == 202  # cancelling a cancelled workflow is a no-op
    result = await client.get(f"/workflows/{workflow_id}/result", params={"timeout": 5})
    assert result.status_code == 409
    assert result.json()["detail"]["status"] == "CANCELLED"


async def test_cancel_finished_is_409_and_bad_cancel_bodies(client: httpx.AsyncClient) -> None:
    started = await client.post("/workflows/add", json={"a": 1})
    link = started.json()["links"]
    await client.get(link["result"], params={"timeout": 5})
    workflow_id = started.json()["workflow_id"]
    finished = await client.post(f"/workflows/{workflow_id}/cancel", params={"compensate": "true"})
    assert finished.status_code == 409
    assert finished.json()["error"] == "workflow_finished"
    wrong = await client.post(f"/workflows/{workflow_id}/cancel", json={"compensate": "maybe"})
    assert wrong.status_code == 422
    extra = await client.post(f"/workflows/{workflow_id}/cancel", json={"rollback": True})
    assert extra.status_code == 422
    assert (await client.post(f"/workflows/{new_id()}/cancel")).status_code == 404


async def test_resume_fork_and_retry_compensation(client: httpx.AsyncClient) -> None:
    started = await client.post("/workflows/waits", json={})
    workflow_id = started.json()["workflow_id"]
    await client.post(f"/workflows/{workflow_id}/cancel")
    resumed = await client.post(f"/workflows/{workflow_id}/resume")
    assert resumed.status_code == 202
    assert resumed.json()["status"] == "PENDING"
    await client.post(f"/workflows/{workflow_id}/cancel")

    done = await client.post("/workflows/add", json={"a": 4, "b": 0})
    source = done.json()["workflow_id"]
    await client.get(f"/workflows/{source}/result", params={"timeout": 5})
    fork_id = new_id("fork")
    forked = await client.post(
        f"/workflows/{source}/fork", params={"from_step": 1, "new_workflow_id": fork_id}
    )
    assert forked.status_code == 202
    assert forked.json()["workflow_id"] == fork_id
    result = await client.get(f"/workflows/{fork_id}/result", params={"timeout": 5})
    assert result.json() == {"status": "SUCCESS", "output": 4}
    assert (
        await client.post(f"/workflows/{source}/fork", params={"from_step": 0})
    ).status_code == 422
    not_failed = await client.post(f"/workflows/{source}/retry-compensation")
    assert not_failed.status_code == 409
    assert (await client.post(f"/workflows/{source}/resume")).status_code == 409
    assert (await client.post(f"/workflows/{new_id()}/resume")).status_code == 404


async def test_list_filters_and_pagination(client: httpx.AsyncClient) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    ids = []
    for i in range(3):
        started = await client.post("/workflows/fails", json={"reason": f"r{i}"})
        ids.append(started.json()["workflow_id"])
    for workflow_id in ids:
        await client.get(f"/workflows/{workflow_id}/result", params={"timeout": 5})
    params = {"name": "fails", "status": "ERROR", "created_after": before.isoformat(), "limit": 2}
    page = await client.get("/workflows", params=params)
    assert page.status_code == 200
    first = page.json()
    assert len(first["items"]) == 2
    assert first["next"] is not None and "cursor=" in first["next"]  # keyset pages
    assert first["next_cursor"] in first["next"]
    rest = (await client.get(first["next"])).json()
    listed = [w["workflow_id"] for w in first["items"] + rest["items"]]
    assert set(ids) <= set(listed)
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    assert (await client.get("/workflows", params={"created_after": future})).json() == {
        "items": [],
        "next": None,
        "next_cursor": None,
    }
    by_offset = (await client.get("/workflows", params={**params, "offset": 1})).json()
    assert len(by_offset["items"]) == 2  # an offset still pages by offset
    assert by_offset["next"] is not None and "offset=3" in by_offset["next"]
    bad = await client.get("/workflows", params={"cursor": "%%%"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_argument"
    naive = await client.get("/workflows", params={"created_before": "2000-01-01T00:00:00"})
    assert naive.json()["items"] == []
    parent = (await client.post("/workflows/enqueue_add", json={"a": 2})).json()["workflow_id"]
    queued = await client.get(f"/workflows/{parent}/result", params={"timeout": 10})
    child = queued.json()["output"]
    done = await client.get(f"/workflows/{child}/result", params={"timeout": 10})
    assert done.json() == {"status": "SUCCESS", "output": 3}
    on_queue = (await client.get("/workflows", params={"queue": "http-tests-queue"})).json()
    assert [w["workflow_id"] for w in on_queue["items"]] == [child]
    assert on_queue["items"][0]["queue_name"] == "http-tests-queue"
    assert (await client.get("/workflows", params={"queue": "other"})).json()["items"] == []
    bad = await client.get("/workflows", params={"status": "DONE", "limit": 0})
    assert bad.status_code == 422
    assert {tuple(e["loc"]) for e in bad.json()["detail"]} >= {("query", "limit")}


async def test_concurrent_starts_with_one_key_make_one_workflow(client: httpx.AsyncClient) -> None:
    workflow_id = new_id()
    answers = await asyncio.gather(
        *(
            client.post("/workflows/add", json={"a": 3}, headers={"Idempotency-Key": workflow_id})
            for _ in range(5)
        )
    )
    assert {a.status_code for a in answers} == {202}
    assert {a.json()["workflow_id"] for a in answers} == {workflow_id}


async def test_openapi_has_each_workflows_input_schema(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    document = (await anonymous.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    add = document["paths"]["/workflows/add"]["post"]
    assert add["operationId"] == "start_add"
    assert {p["name"] for p in add["parameters"]} == {
        "Idempotency-Key",
        "wait_for_event",
        "timeout",
        "attribute",
    }
    assert add["requestBody"]["content"]["application/json"]["schema"] == {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "default": 1}},
        "required": ["a"],
        "additionalProperties": False,
    }
    checkout = document["paths"]["/workflows/checkout"]["post"]["requestBody"]
    assert checkout["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Order"
    }
    assert schemas["Order"]["required"] == ["order_id", "amount"]
    assert schemas["Order"]["properties"]["amount"]["exclusiveMinimum"] == 0
    # the generic operation still serves every workflow
    assert "/workflows/{name}" in document["paths"]
    # and the documented body is what the service accepts
    refused = await client.post("/workflows/add", json={"a": 1, "c": 2})
    assert refused.status_code == 422
