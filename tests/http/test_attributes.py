"""Workflow attributes over HTTP (#20): set at start with ``?attribute=name:value``, shown in
WorkflowOut, filtered in GET /workflows, /admin/workflow-counts and a bulk dry run; invalid
ones answered 400."""

from __future__ import annotations

import httpx

from tests.http.conftest import new_id


async def test_attributes_at_start_listed_counted_and_bulk_filtered(
    client: httpx.AsyncClient,
) -> None:
    customer = new_id("cust").replace("-", "_")  # unique per run: the server is shared
    ids = [new_id("attr") for _ in range(3)]
    for n, workflow_id in enumerate(ids):
        started = await client.post(
            "/workflows/add",
            json={"a": n},
            headers={"Idempotency-Key": workflow_id},
            params=[("attribute", f"customer_id:{customer}"), ("attribute", f"order_id=o-{n}")],
        )
        assert started.status_code == 202, started.text
        result = await client.get(f"/workflows/{workflow_id}/result", params={"timeout": 5})
        assert result.status_code == 200

    shown = (await client.get(f"/workflows/{ids[1]}")).json()
    assert shown["attributes"] == {"customer_id": customer, "order_id": "o-1"}

    listed = await client.get(
        "/workflows", params={"attribute": f"customer_id:{customer}", "limit": 2}
    )
    page = listed.json()
    assert [w["workflow_id"] for w in page["items"]] == [ids[2], ids[1]]
    rest = await client.get(
        "/workflows",
        params={"attribute": f"customer_id:{customer}", "cursor": page["next_cursor"], "limit": 2},
    )
    assert [w["workflow_id"] for w in rest.json()["items"]] == [ids[0]]
    both = await client.get(
        "/workflows",
        params=[("attribute", f"customer_id:{customer}"), ("attribute", "order_id:o-0")],
    )
    assert [w["workflow_id"] for w in both.json()["items"]] == [ids[0]]

    counts = await client.get(
        "/admin/workflow-counts", params={"attribute": f"customer_id:{customer}"}
    )
    assert counts.json()["total"] == 3
    dry = await client.post(
        "/admin/bulk/delete",
        json={"filter": {"attributes": {"customer_id": customer}}, "dry_run": True},
    )
    assert dry.status_code == 200, dry.text
    assert dry.json()["matched"] == 3


async def test_invalid_attributes_are_answered_400(client: httpx.AsyncClient) -> None:
    for params in ({"attribute": "Bad:x"}, {"attribute": "novalue"}):
        started = await client.post("/workflows/add", json={"a": 1}, params=params)
        assert started.status_code == 400, started.text
        listed = await client.get("/workflows", params=params)
        assert listed.status_code == 400
