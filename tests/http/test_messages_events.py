"""Messages, events (long poll, 408 on timeout) and server-sent streams over a real server."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.http.conftest import new_id

pytestmark = pytest.mark.postgres


async def _start(client: httpx.AsyncClient, name: str, body: object) -> str:
    started = await client.post(f"/workflows/{name}", json=body)
    assert started.status_code in {200, 202}, started.text
    workflow_id: str = started.json()["workflow_id"]
    return workflow_id


async def test_messages_are_delivered_once_per_idempotency_key(client: httpx.AsyncClient) -> None:
    workflow_id = await _start(client, "collect", {"count": 2})
    first = await client.post(
        f"/workflows/{workflow_id}/messages/items", json={"n": 1}, headers={"Idempotency-Key": "k1"}
    )
    assert first.status_code == 202
    assert first.json() == {"workflow_id": workflow_id, "topic": "items", "idempotency_key": "k1"}
    repeat = await client.post(
        f"/workflows/{workflow_id}/messages/items", json={"n": 1}, headers={"Idempotency-Key": "k1"}
    )
    assert repeat.status_code == 202
    second = await client.post(
        f"/workflows/{workflow_id}/messages/items",
        content=b"null",
        headers={"Content-Type": "application/json"},
    )
    assert second.status_code == 202
    result = await client.get(f"/workflows/{workflow_id}/result", params={"timeout": 5})
    assert result.json() == {"status": "SUCCESS", "output": [{"n": 1}, None]}
    finished = await client.post(f"/workflows/{workflow_id}/messages/items", json=1)
    assert finished.status_code == 409
    assert finished.json()["error"] == "workflow_finished"


async def test_message_errors(client: httpx.AsyncClient) -> None:
    unknown = await client.post(f"/workflows/{new_id()}/messages/t", json=1)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "workflow_not_found"
    workflow_id = await _start(client, "waits", {})
    malformed = await client.post(
        f"/workflows/{workflow_id}/messages/t",
        content=b'{"a":',
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    empty = await client.post(f"/workflows/{workflow_id}/messages/t")
    assert empty.status_code == 400
    await client.post(f"/workflows/{workflow_id}/cancel")


async def test_event_long_poll_value_timeout_and_unknown(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    workflow_id = await _start(client, "checkout", {"order_id": "o-9", "amount": 1})
    event = await anonymous.get(
        f"/workflows/{workflow_id}/events/payment_url", params={"timeout": 5}
    )
    assert event.status_code == 200
    assert event.json() == {"key": "payment_url", "value": "https://pay.example/o-9"}
    timeout = await anonymous.get(f"/workflows/{workflow_id}/events/other", params={"timeout": 0.2})
    assert timeout.status_code == 408
    assert timeout.json()["error"] == "timeout"
    assert timeout.json()["detail"]["key"] == "other"
    loop = asyncio.get_running_loop()
    began = loop.time()
    unknown = await anonymous.get(f"/workflows/{new_id()}/events/k", params={"timeout": 30})
    assert unknown.status_code == 404
    assert loop.time() - began < 2  # at once, not after the timeout
    events = await client.get(f"/workflows/{workflow_id}/events")
    assert events.json() == {
        "workflow_id": workflow_id,
        "events": {"payment_url": "https://pay.example/o-9"},
    }
    assert (await anonymous.get(f"/workflows/{workflow_id}/events")).status_code == 401
    await client.post(f"/workflows/{workflow_id}/messages/payment", json={"ok": True})
    result = await client.get(f"/workflows/{workflow_id}/result", params={"timeout": 5})
    assert result.json()["output"] == {"order_id": "o-9", "paid": {"ok": True}}
    never = await anonymous.get(f"/workflows/{workflow_id}/events/other", params={"timeout": 5})
    assert never.status_code == 404
    assert never.json()["error"] == "event_not_set"


async def test_an_event_set_to_null_is_a_value_not_a_timeout(client: httpx.AsyncClient) -> None:
    started = await client.post(
        "/workflows/collect", json={"count": 1}, params={"wait_for_event": "ready", "timeout": 5}
    )
    assert started.status_code == 200
    assert started.json()["event"] == {"key": "ready", "value": None}
    workflow_id = started.json()["workflow_id"]
    event = await client.get(f"/workflows/{workflow_id}/events/ready", params={"timeout": 0})
    assert event.json() == {"key": "ready", "value": None}
    waited = await client.post(
        "/workflows/waits", json={}, params={"wait_for_event": "never", "timeout": 0.2}
    )
    assert waited.status_code == 202
    assert waited.json()["event"] is None
    for wid in (workflow_id, waited.json()["workflow_id"]):
        await client.post(f"/workflows/{wid}/cancel")


async def test_streams_as_server_sent_events(client: httpx.AsyncClient) -> None:
    workflow_id = await _start(client, "streams", {"count": 3})
    async with client.stream("GET", f"/workflows/{workflow_id}/streams/progress") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line async for line in response.aiter_lines() if line]
    assert [json.loads(line.removeprefix("data: ")) for line in lines] == [
        {"i": 0},
        {"i": 1},
        {"i": 2},
    ]
    missing = await client.get(f"/workflows/{new_id()}/streams/progress")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
