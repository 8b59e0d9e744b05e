"""Operator actions over HTTP (#18): two roles, the console's session and CSRF, skip and
retry of compensations, bulk actions with a dry run, counts, the rollback plan, the audit
log, redaction and trace links, schedules. A real uvicorn server over PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from orchestrator import Orchestrator, Retry
from orchestrator.http import create_app
from tests.http.conftest import LiveServer, start_server

pytestmark = pytest.mark.postgres

OPERATOR_KEY = "operator-key-for-tests"
READER_KEY = "reader-key-for-tests"
FAST = Retry(max_attempts=2, base_interval=0.01)
BROKEN = {"refund": True}


def build(database_url: str) -> Orchestrator:
    from opentelemetry.sdk.trace import TracerProvider

    app = Orchestrator(
        "operator-http",
        database_url,
        executor_id="ops-http",
        app_version="v1",
        tracer_provider=TracerProvider(),  # traced: workflows carry a trace id
    )

    @app.step(name="charge")
    async def charge(card: dict[str, str], amount: int) -> dict[str, Any]:
        return {"charged": amount, "payment_token": "tok_secret"}

    @charge.compensation(retry=FAST)
    async def refund(result: dict[str, Any], card: dict[str, str], amount: int) -> None:
        if BROKEN["refund"]:
            raise ConnectionError("the payment provider is down")

    @app.workflow(name="pay")
    async def pay(card: dict[str, str], amount: int, fail: bool = False) -> str:
        await charge(card, amount)
        if fail:
            raise ValueError("out of stock")
        await app.recv("ship", timeout=300)
        return "paid"

    @app.workflow(name="tick", schedule="0 0 * * * *")  # hourly
    async def tick(at: Any) -> str:
        return "ticked"

    return app


@pytest.fixture(scope="module")
def server(pg_template: str) -> Iterator[LiveServer]:
    from tests.http.conftest import _execute, sql

    name = f"orch_ops_{uuid.uuid4().hex[:10]}"
    _execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(pg_template)
        )
    )
    url = f"postgresql://root@127.0.0.1:5432/{name}"
    api = create_app(
        build(url),
        api_key=OPERATOR_KEY,
        read_only_api_key=READER_KEY,
        trace_url="https://jaeger.example/trace/{trace_id}",
    )
    live = start_server(api)
    try:
        yield live
    finally:
        live.stop()
        _execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
async def operator(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {OPERATOR_KEY}", "X-Actor": "carol"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
        yield http


@pytest.fixture
async def reader(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {READER_KEY}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
        yield http


async def failed_saga(http: httpx.AsyncClient, prefix: str) -> str:
    workflow_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    body = {"card": {"number": "4242", "holder": "Ann"}, "amount": 30, "fail": True}
    started = await http.post("/workflows/pay", json=body, headers={"Idempotency-Key": workflow_id})
    assert started.status_code == 202, started.text
    result = await http.get(f"/workflows/{workflow_id}/result", params={"timeout": 20})
    assert result.status_code == 409 and result.json()["detail"]["status"] == "COMPENSATION_FAILED"
    return workflow_id


async def test_skip_compensation_over_http_is_audited(
    operator: httpx.AsyncClient, reader: httpx.AsyncClient
) -> None:
    workflow_id = await failed_saga(operator, "skip")
    no_reason = await operator.post(f"/workflows/{workflow_id}/skip-compensation", json={"step": 1})
    assert no_reason.status_code == 422
    refused = await reader.post(
        f"/workflows/{workflow_id}/skip-compensation", json={"step": 1, "reason": "x"}
    )
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    skipped = await operator.post(
        f"/workflows/{workflow_id}/skip-compensation",
        json={"step": 1, "reason": "refunded by hand in the provider's dashboard"},
    )
    assert skipped.status_code == 202, skipped.text
    done = await operator.get(f"/workflows/{workflow_id}/result", params={"timeout": 20})
    assert done.json()["detail"]["status"] == "COMPENSATED"
    audit = (await reader.get(f"/workflows/{workflow_id}/audit")).json()
    assert [(a["action"], a["actor"], a["role"], a["surface"]) for a in audit] == [
        ("skip_compensation", "carol", "operator", "http")
    ]
    assert audit[0]["reason"] == "refunded by hand in the provider's dashboard"
    listed = (await reader.get("/admin/audit", params={"action": "skip_compensation"})).json()
    assert workflow_id in {a["workflow_id"] for a in listed["items"]}
    again = await operator.post(
        f"/workflows/{workflow_id}/skip-compensation", json={"step": 1, "reason": "twice"}
    )
    assert again.status_code == 409


async def test_reader_reads_redacted_values_and_trace_links(
    operator: httpx.AsyncClient, reader: httpx.AsyncClient
) -> None:
    workflow_id = await failed_saga(operator, "read")
    shown = (await reader.get(f"/workflows/{workflow_id}")).json()
    assert "4242" in str(shown["input"])  # "number" alone names no secret
    steps = (await reader.get(f"/workflows/{workflow_id}/steps")).json()
    assert steps[0]["output"]["payment_token"] == "[redacted]"
    assert len(shown["trace_id"]) == 32
    assert shown["trace_url"] == f"https://jaeger.example/trace/{shown['trace_id']}"
    assert steps[0]["trace_url"] == shown["trace_url"] + "?uiFind=charge"
    for path in ("/workflows/pay", f"/workflows/{workflow_id}/cancel", "/admin/bulk/cancel"):
        assert (await reader.post(path, json={})).status_code == 403
    assert (await reader.get("/console/api/me")).json()["role"] == "reader"


async def test_rollback_plan_over_http(operator: httpx.AsyncClient) -> None:
    BROKEN["refund"] = False
    workflow_id = f"plan-{uuid.uuid4().hex[:8]}"
    body = {"card": {"number": "1", "cvv": "123"}, "amount": 5}
    await operator.post("/workflows/pay", json=body, headers={"Idempotency-Key": workflow_id})
    plan: dict[str, Any] = {}
    for _ in range(100):
        plan = (await operator.get(f"/workflows/{workflow_id}/rollback-plan")).json()
        if plan["compensations"]:
            break
        await asyncio.sleep(0.05)
    assert plan["applies"] is True and plan["status"] == "PENDING"
    [only] = plan["compensations"]
    assert (only["order"], only["step_number"], only["step_name"]) == (1, 1, "charge")
    assert only["input"]["result"]["payment_token"] == "[redacted]"
    assert "'cvv': '[redacted]'" in str(only["input"])
    cancelled = await operator.post(
        f"/workflows/{workflow_id}/cancel", json={"compensate": True, "reason": "customer asked"}
    )
    assert cancelled.status_code == 202
    result = await operator.get(f"/workflows/{workflow_id}/result", params={"timeout": 20})
    assert result.json()["detail"]["status"] == "COMPENSATED"
    ended = (await operator.get(f"/workflows/{workflow_id}/rollback-plan")).json()
    assert ended["applies"] is False and ended["compensations"] == []


async def test_bulk_dry_run_then_cancel_and_counts(operator: httpx.AsyncClient) -> None:
    prefix = f"bulk-{uuid.uuid4().hex[:6]}-"
    for i in range(6):
        body = {"card": {"number": "1"}, "amount": i}
        await operator.post(
            "/workflows/pay", json=body, headers={"Idempotency-Key": f"{prefix}{i}"}
        )
    request = {"filter": {"id_prefix": prefix}, "dry_run": True}
    for _ in range(100):
        dry = (await operator.post("/admin/bulk/cancel", json=request)).json()
        if dry["matched"] == 6:
            break
        await asyncio.sleep(0.05)
    assert dry["dry_run"] is True and dry["matched"] == 6 and dry["done"] == []
    counts = (await operator.get("/admin/workflow-counts", params={"id_prefix": prefix})).json()
    assert counts["total"] == 6 and counts["counts"]["PENDING"] + counts["counts"]["ENQUEUED"] == 6
    acted = await operator.post(
        "/admin/bulk/cancel", json={**request, "dry_run": False, "reason": "test run"}
    )
    assert acted.status_code == 200, acted.text
    assert sorted(acted.json()["done"]) == [f"{prefix}{i}" for i in range(6)]
    counts = (await operator.get("/admin/workflow-counts", params={"id_prefix": prefix})).json()
    assert counts["counts"]["CANCELLED"] == 6
    unknown = await operator.post("/admin/bulk/archive", json=request)
    assert unknown.status_code == 422
    summary = (await operator.get("/admin/audit", params={"action": "bulk_cancel"})).json()
    assert summary["items"][0]["detail"]["filter"] == {"id_prefix": prefix}


@pytest.mark.parametrize("action", ["retry-compensation", "cancel", "delete", "resume"])
async def test_a_reason_the_audit_log_cannot_store_is_a_4xx(
    operator: httpx.AsyncClient, action: str
) -> None:
    """make fuzz found it: a NUL in a bulk action's reason reached the audit insert (503)."""
    before = (await operator.get("/admin/audit")).json()["items"]
    content = '{"reason": "b\\ud9bb\\udf9d\\u0000", "compensate": true}'  # as the fuzz sent it
    refused = await operator.post(
        f"/admin/bulk/{action}", content=content, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_argument"
    assert "NUL" in refused.json()["message"]
    assert (await operator.get("/admin/audit")).json()["items"] == before


async def test_schedule_trigger_pause_resume(operator: httpx.AsyncClient) -> None:
    [schedule] = (await operator.get("/admin/schedules")).json()
    assert schedule["name"] == "tick" and len(schedule["next_ticks"]) == 5
    paused = (await operator.post("/admin/schedules/tick/pause", json={"reason": "freeze"})).json()
    assert paused["paused"] is True and paused["next_ticks"] == []
    resumed = (await operator.post("/admin/schedules/tick/resume")).json()
    assert resumed["paused"] is False and len(resumed["next_ticks"]) == 5
    triggered = await operator.post("/admin/schedules/tick/trigger")
    assert triggered.status_code == 202
    workflow_id = triggered.json()["workflow_id"]
    assert workflow_id.startswith("tick@") and workflow_id.endswith("~manual")
    result = await operator.get(f"/workflows/{workflow_id}/result", params={"timeout": 20})
    assert result.json() == {"status": "SUCCESS", "output": "ticked"}
    actions = [a["action"] for a in (await operator.get("/admin/audit")).json()["items"]]
    assert {"schedule_pause", "schedule_resume", "schedule_trigger"} <= set(actions)
    missing = await operator.post("/admin/schedules/none/pause")
    assert missing.status_code == 404


async def test_console_session_needs_csrf_for_posts(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as browser:
        wrong = await browser.post("/console/login", data={"key": "nope", "name": "dan"})
        assert wrong.status_code == 303 and "error=key" in wrong.headers["location"]
        assert (await browser.get("/workflows")).status_code == 401
        login = await browser.post("/console/login", data={"key": OPERATOR_KEY, "name": "dan"})
        assert login.status_code == 303
        cookies = login.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("orchestrator_session="))
        assert "HttpOnly" in session and "SameSite=strict" in session
        me = (await browser.get("/console/api/me")).json()
        assert me == {
            "role": "operator",
            "name": "dan",
            "auth": "session",
            "trace_url": "https://jaeger.example/trace/{trace_id}",
        }
        workflow_id = await failed_saga_via_session(browser)
        without = await browser.post(f"/workflows/{workflow_id}/retry-compensation")
        assert without.status_code == 403 and without.json()["error"] == "csrf_failed"
        csrf = browser.cookies["orchestrator_csrf"]
        with_token = await browser.post(
            f"/workflows/{workflow_id}/retry-compensation",
            headers={"X-CSRF-Token": csrf},
            json={"reason": "provider back"},
        )
        assert with_token.status_code == 202, with_token.text
        audit = (await browser.get(f"/workflows/{workflow_id}/audit")).json()
        assert (audit[0]["actor"], audit[0]["surface"], audit[0]["action"]) == (
            "dan",
            "console",
            "retry_compensation",
        )
        browser.cookies.set("orchestrator_session", "forged.value")
        assert (await browser.get("/workflows")).status_code == 401


async def failed_saga_via_session(browser: httpx.AsyncClient) -> str:
    workflow_id = f"sess-{uuid.uuid4().hex[:8]}"
    body = {"card": {"number": "1"}, "amount": 1, "fail": True}
    csrf = browser.cookies["orchestrator_csrf"]
    BROKEN["refund"] = True
    started = await browser.post(
        "/workflows/pay",
        json=body,
        headers={"Idempotency-Key": workflow_id, "X-CSRF-Token": csrf},
    )
    assert started.status_code == 202, started.text
    await browser.get(f"/workflows/{workflow_id}/result", params={"timeout": 20})
    BROKEN["refund"] = False
    return workflow_id
