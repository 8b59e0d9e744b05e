"""The console in a real browser (Playwright, Debian's chromium) against the real service on
PostgreSQL, with real sagas; the screenshots in docs/console/ are taken here."""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import create_database, drop_database
from tests.console.console_app import Service, Switches, build, serve

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CHROMIUM = "/usr/bin/chromium"
OPERATOR_KEY = "console-operator-key"
READER_KEY = "console-reader-key"
# The screenshots of docs/console.md: refreshed with CONSOLE_SCREENSHOTS=1 (a plain run takes
# them into a temporary folder, so the suite leaves the committed ones alone).
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "console"
    if os.environ.get("CONSOLE_SCREENSHOTS") == "1"
    else Path(tempfile.mkdtemp(prefix="console-shots-"))
)
VIEWPORT = {"width": 1280, "height": 800}
TRACE_URL = re.compile(r"^http://localhost:16686/trace/[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def switches() -> Switches:
    return Switches()


@pytest.fixture(scope="module")
def service(pg_template: str, switches: Switches) -> Iterator[Service]:
    name = f"orch_console_{uuid.uuid4().hex[:12]}"
    url = create_database(name, template=pg_template)
    running = serve(build(url, switches), api_key=OPERATOR_KEY, read_only_api_key=READER_KEY)
    try:
        yield running
    finally:
        running.stop()
        drop_database(name)


@pytest.fixture(scope="module")
def api(service: Service) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {OPERATOR_KEY}", "X-Actor": "test-setup"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"no chromium at {CHROMIUM}")
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def start(
    api: httpx.Client, name: str, workflow_id: str, attribute: str | None = None, **body: Any
) -> None:
    answer = api.post(
        f"/workflows/{name}",
        json=body,
        headers={"Idempotency-Key": workflow_id},
        params={} if attribute is None else {"attribute": attribute},
    )
    assert answer.status_code in (200, 202), answer.text


def status_of(api: httpx.Client, workflow_id: str) -> str:
    return str(api.get(f"/workflows/{workflow_id}").json()["status"])


def reach(api: httpx.Client, workflow_id: str, *statuses: str) -> None:
    until(lambda: status_of(api, workflow_id) in statuses, f"{workflow_id} in {statuses}")


@pytest.fixture(scope="module")
def failed_sagas(api: httpx.Client) -> list[str]:
    """Three checkouts whose rollback failed (the stock release is broken)."""
    ids = [f"order-{n}" for n in (1, 2, 3)]
    for n, workflow_id in enumerate(ids, start=1):
        start(
            api,
            "fragile_checkout",
            workflow_id,
            attribute=f"customer_id:c-{n}",
            order_id=workflow_id,
        )
    for workflow_id in ids:
        reach(api, workflow_id, "COMPENSATION_FAILED")
    return ids


def login(browser: Any, service: Service, key: str, name: str) -> Any:
    """A new page in its own context, logged in through the console's form."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    page.goto(f"{service.url}/console/login")
    page.fill("#key", key)
    page.fill("#name", name)
    page.click("#login")
    page.wait_for_url(f"{service.url}/console/**")
    return page


@pytest.fixture
def operator(browser: Any, service: Service) -> Iterator[Any]:
    page = login(browser, service, OPERATOR_KEY, "Ada Operator")
    yield page
    assert page.errors == []
    page.context.close()


def shot(page: Any, name: str, *, full_page: bool = False, height: int | None = None) -> None:
    """A PNG for docs/console.md (``height``: only the top, to keep a dense page small)."""
    page.wait_for_timeout(150)  # let the last paint settle
    clip = (
        None if height is None else {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height}
    )
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page, clip=clip)


def test_skip_a_failed_compensation_from_the_list(
    service: Service, api: httpx.Client, operator: Any, failed_sagas: list[str], switches: Switches
) -> None:
    from playwright.sync_api import expect

    start(api, "gift_wrap", "gift-1", order_id="gift-1")
    reach(api, "gift-1", "SUCCESS")
    page = operator
    page.goto(f"{service.url}/console/#/workflows")
    expect(page.locator('#workflows tr[data-workflow-id="gift-1"]')).to_be_visible()
    expect(page.locator('#counts [data-count="COMPENSATION_FAILED"]')).to_have_text("3")

    page.select_option("#filters-status", "COMPENSATION_FAILED")
    page.fill("#filters-id_prefix", "order-")
    page.click("#filters-apply")
    rows = page.locator("#workflows tbody tr[data-workflow-id]")
    expect(rows).to_have_count(3)
    expect(page.locator('#workflows tr[data-workflow-id="gift-1"]')).to_have_count(0)
    page.fill("#filters-after", "2999-01-01 00:00")
    page.click("#filters-apply")
    expect(page.locator("#workflows td.empty")).to_have_text("No workflows match.")
    page.fill("#filters-after", "")
    page.click("#filters-apply")
    expect(rows).to_have_count(3)
    page.fill("#filters-attribute", "customer_id=c-2")  # a business key (#20 attributes)
    page.click("#filters-apply")
    expect(rows).to_have_count(1)
    expect(page.locator('#workflows tr[data-workflow-id="order-2"]')).to_be_visible()
    page.fill("#filters-attribute", "")
    page.click("#filters-apply")
    expect(rows).to_have_count(3)

    page.goto(f"{service.url}/console/#/inbox")
    expect(
        page.locator('#inbox-compensation-failed tr[data-workflow-id="order-3"]')
    ).to_be_visible()
    shot(page, "inbox")

    # the inbox's retry, once the inventory works again: order-2 rolls back fully
    switches.release_broken = False
    page.click(
        '#inbox-compensation-failed tr[data-workflow-id="order-2"] [data-action="retry-compensation"]'
    )
    page.fill("#dialog-reason", "inventory is back")
    page.click("#dialog-ok")
    reach(api, "order-2", "COMPENSATED")
    switches.release_broken = True

    page.goto(f"{service.url}/console/#/workflows?status=COMPENSATION_FAILED&id_prefix=order-")
    page.click('#workflows tr[data-workflow-id="order-1"] a')
    expect(page.locator("#status")).to_have_text("COMPENSATION_FAILED")
    expect(page.locator("#attributes")).to_have_text("customer_id=c-1")
    expect(page.locator('[data-step="5"]')).to_have_attribute("data-status", "ERROR")
    expect(page.locator('[data-step="5"] .undoes')).to_have_text("undoes #1")
    page.click("#action-skip-compensation")
    expect(page.locator("#dialog-step")).to_have_value("1")
    page.click("#dialog-ok")  # no reason: refused before anything is sent
    expect(page.locator("#dialog-error")).to_contain_text("required")
    page.fill("#dialog-reason", "released by hand in the warehouse")
    page.click("#dialog-ok")
    expect(page.locator("#status")).to_have_text("COMPENSATED", timeout=20_000)
    entry = page.locator('#saga-audit tr[data-action="skip_compensation"]')
    expect(entry.locator(".actor")).to_have_text("Ada Operator")
    expect(entry.locator(".reason")).to_have_text("released by hand in the warehouse")

    page.goto(f"{service.url}/console/#/audit")
    expect(
        page.locator('[data-testid="audit-table"] tr[data-action="skip_compensation"]')
    ).to_have_count(1)
    expect(page.locator('tr[data-action="skip_compensation"]').first).to_contain_text("console")
    shot(page, "audit")


def test_the_timeline_grows_while_the_saga_runs(
    service: Service, api: httpx.Client, operator: Any
) -> None:
    from playwright.sync_api import expect

    start(api, "slow_checkout", "slow-1", order_id="slow-1", pause_seconds=1.5)
    page = operator
    page.goto(f"{service.url}/console/#/workflows/slow-1")
    page.evaluate("window.__notReloaded = true")
    expect(page.locator('[data-step="1"]')).to_be_visible()
    expect(page.locator("#rollback-plan li[data-order]")).not_to_have_count(0)
    expect(page.locator('[data-step="4"]')).to_be_visible(timeout=20_000)  # charge_card
    plan = page.locator("#rollback-plan li[data-order]")
    expect(plan).to_have_count(2)
    expect(plan.first).to_contain_text("charge_card.compensation")  # the newest undone first
    expect(plan.first).to_contain_text("1999")  # the recorded result it would receive
    expect(page.locator('#children li[data-child-id="slow-1-wrap"]')).to_be_visible(timeout=20_000)
    shot(page, "saga", full_page=True)
    expect(page.locator("#status")).to_have_text("SUCCESS", timeout=30_000)
    expect(page.locator('.tl-row[data-kind="recv"]')).to_have_count(1)
    expect(page.locator('.tl-row[data-kind="set_event"]')).to_have_count(1)
    page.click('[data-step="4"] .name')  # unfolds the step's recorded result (redacted)
    expect(page.locator('[data-step-detail="4"]')).to_contain_text("ch-slow-1")
    expect(page.locator('.tl-row[data-kind="sleep"]')).to_have_count(3)
    expect(page.locator("#rollback-plan-ended")).to_be_visible()
    assert page.evaluate("window.__notReloaded") is True  # live: no page reload

    trace_id = api.get("/workflows/slow-1").json()["trace_id"]
    href = page.locator("#trace-link").get_attribute("href")
    assert href == f"http://localhost:16686/trace/{trace_id}"
    assert href is not None and TRACE_URL.match(href)


def test_bulk_cancel_after_a_dry_run(service: Service, api: httpx.Client, operator: Any) -> None:
    from playwright.sync_api import expect

    for n in range(3):  # with the 50 below: more than a page of workflows
        start(api, "gift_wrap", f"extra-{n}", order_id=f"extra-{n}")
    ids = [f"bulk-{n:02d}" for n in range(50)]
    for workflow_id in ids:
        start(api, "await_payment", workflow_id, order_id=workflow_id)
    until(
        lambda: (
            api.get("/admin/workflow-counts", params={"id_prefix": "bulk-"}).json()["counts"][
                "PENDING"
            ]
            == 50
        ),
        "50 waiting sagas",
    )
    page = operator
    page.goto(f"{service.url}/console/#/bulk")
    page.select_option("#bulk-filters-status", "PENDING")
    page.fill("#bulk-filters-id_prefix", "bulk-")
    page.select_option("#bulk-action", "cancel")
    page.fill("#bulk-reason", "payment provider outage")
    page.click("#bulk-dry-run")
    expect(page.locator("#bulk-matched")).to_have_text("50")
    shot(page, "bulk")
    assert (
        api.get("/admin/workflow-counts", params={"id_prefix": "bulk-"}).json()["counts"]["PENDING"]
        == 50
    )
    page.click("#bulk-run")
    page.click("#dialog-ok")
    expect(page.locator("#bulk-done")).to_have_text("50", timeout=30_000)
    expect(page.locator("#bulk-failed")).to_have_text("0")
    counts = api.get("/admin/workflow-counts", params={"id_prefix": "bulk-"}).json()["counts"]
    assert counts["PENDING"] == 0 and counts["ENQUEUED"] == 0

    # more than a page of workflows now: "Older" follows the keyset cursor
    total = api.get("/admin/workflow-counts").json()["total"]
    assert total > 50
    page.goto(f"{service.url}/console/#/workflows")
    rows = page.locator("#workflows tbody tr[data-workflow-id]")
    expect(rows).to_have_count(50)
    shot(page, "workflows", height=420)
    first = set(rows.evaluate_all("rows => rows.map(r => r.dataset.workflowId)"))
    page.click("#older")
    expect(rows).to_have_count(min(total - 50, 50))
    second = set(rows.evaluate_all("rows => rows.map(r => r.dataset.workflowId)"))
    assert not first & second


def test_queues_schedules_and_workers(service: Service, api: httpx.Client, operator: Any) -> None:
    from playwright.sync_api import expect

    page = operator
    page.goto(f"{service.url}/console/#/queues")
    expect(page.locator('[data-testid="queues-table"]')).to_be_visible()
    shot(page, "queues")
    page.goto(f"{service.url}/console/#/schedules")
    row = page.locator('tr[data-schedule="nightly_report"]')
    expect(row.locator('[data-field="state"]')).to_have_text("active")
    row.locator('[data-action="pause"]').click()
    page.click("#dialog-ok")
    expect(row.locator('[data-field="state"]')).to_have_text("paused")
    row.locator('[data-action="resume"]').click()
    page.click("#dialog-ok")
    expect(row.locator('[data-field="state"]')).to_have_text("active")
    shot(page, "schedules")
    page.goto(f"{service.url}/console/#/workers")
    expect(page.locator('tr[data-executor="console-test"]')).to_contain_text("live")
    shot(page, "workers")


def test_the_read_only_key_cannot_act(
    browser: Any, service: Service, failed_sagas: list[str]
) -> None:
    from playwright.sync_api import expect

    page = login(browser, service, READER_KEY, "Rita Reader")
    try:
        page.goto(f"{service.url}/console/#/workflows/order-3")
        expect(page.locator("#status")).to_have_text("COMPENSATION_FAILED")
        expect(page.locator("#me")).to_contain_text("read-only")
        expect(page.locator("[data-action]")).to_have_count(0)
        page.goto(f"{service.url}/console/#/inbox")
        expect(page.locator('tr[data-workflow-id="order-3"]')).to_be_visible()
        expect(page.locator("[data-action]")).to_have_count(0)
        csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "orchestrator_csrf")
        answer = page.request.post(
            f"{service.url}/workflows/order-3/retry-compensation",
            data={},
            headers={"X-CSRF-Token": csrf, "X-Orchestrator-Surface": "console"},
        )
        assert answer.status == 403, answer.text()
    finally:
        page.context.close()
    bearer = httpx.post(
        f"{service.url}/workflows/order-3/retry-compensation",
        json={},
        headers={"Authorization": f"Bearer {READER_KEY}"},
    )
    assert bearer.status_code == 403


def test_a_post_without_the_csrf_token_is_refused(
    service: Service, operator: Any, failed_sagas: list[str], api: httpx.Client
) -> None:
    page = operator
    answer = page.request.post(
        f"{service.url}/workflows/order-3/retry-compensation",
        data={},
        headers={"X-Orchestrator-Surface": "console"},
    )
    assert answer.status == 403
    assert answer.json()["error"] == "csrf_failed"
    assert status_of(api, "order-3") == "COMPENSATION_FAILED"


def test_login_root_redirect_and_headers(browser: Any, service: Service) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        page.goto(f"{service.url}/")  # no session: the API answers 401, the console logs in
        page.wait_for_url(f"{service.url}/console/login")
        page.fill("#key", "not-the-key")
        page.fill("#name", "Mallory")
        page.click("#login")
        expect(page.locator("#login-error")).to_be_visible()
        shot(page, "login")
        response = page.goto(f"{service.url}/console/")
        assert response is not None
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "'unsafe-inline'" not in policy
    finally:
        context.close()
