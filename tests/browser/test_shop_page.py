"""The shop page in a real browser (Playwright, Debian's chromium): order, pay or cancel."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import SagaUp, saga_up

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def shop_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SagaUp]:
    up = saga_up(tmp_path_factory.mktemp("shop"), "--port", "0")
    try:
        yield up
    finally:
        assert up.interrupt() == 0, "\n".join(up.output)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":  # .ci/run installs it: missing there is a failure
            pytest.fail(f"no chromium at {CHROMIUM}")
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.mark.parametrize(("button", "final"), [("#pay", "completed"), ("#cancel", "compensated")])
def test_order_and_pay_or_cancel_in_the_browser(
    shop_up: SagaUp, browser: object, button: str, final: str
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    page = browser.new_page()
    try:
        page.goto(shop_up.urls["shop"])
        page.select_option("#sku", "book")
        page.fill("#quantity", "2")
        page.click("#order")
        page.wait_for_url(f"{shop_up.urls['payments']}/pay/*")
        expect(page.locator("#amount")).to_have_text("50.00 EUR")
        page.click(button)
        page.wait_for_url(f"{shop_up.urls['shop']}/orders/*")
        expect(page.locator("#status")).to_have_text(final, timeout=20_000)
        if final == "completed":  # and the refund saga, from the same page
            page.click("#refund")
            expect(page.locator("#refund-status")).to_have_text("completed", timeout=20_000)
    finally:
        page.close()


def test_a_pending_order_shows_its_payment_link_and_its_saga_in_the_console(
    shop_up: SagaUp, browser: object
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    orchestrator = shop_up.urls["orchestrator"]
    assert shop_up.urls["console"] == f"{orchestrator}/console"  # saga up prints it
    page = browser.new_page()
    try:
        page.goto(shop_up.urls["shop"])
        page.click("#order")
        page.wait_for_url(f"{shop_up.urls['payments']}/pay/*")
        payment_url = page.url
        order_id = page.locator("p b").first.inner_text()  # "Order <b>order-…</b>"
        # The customer leaves the payment page and looks at the order: still pending.
        page.goto(f"{shop_up.urls['shop']}/orders/{order_id}")
        expect(page.locator("#status")).to_have_text("awaiting_payment", timeout=20_000)
        expect(page.locator("#payment-link")).to_be_visible()
        expect(page.locator("#payment-link")).to_have_attribute("href", payment_url)
        console = page.locator("#console-link")
        expect(console).to_have_attribute("href", f"{orchestrator}/console/#/workflows/{order_id}")
        page.click("#payment-link")
        page.wait_for_url(payment_url)
        page.click("#pay")
        page.wait_for_url(f"{shop_up.urls['shop']}/orders/{order_id}")
        expect(page.locator("#status")).to_have_text("completed", timeout=20_000)
        expect(page.locator("#payment-link")).to_be_hidden()  # paid: no link any more
        expect(console).to_be_visible()
    finally:
        page.close()
