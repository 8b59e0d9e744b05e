"""`saga up`: the one command that runs the sample shop, and stops it all on Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import refuses_connections, saga_up

pytestmark = pytest.mark.slow


def test_saga_up_serves_the_shop_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    up = saga_up(tmp_path, "--port", "0")
    try:
        assert set(up.urls) == {
            "shop",
            "orchestrator",
            "console",
            "inventory",
            "payments",
            "shipping",
        }
        with httpx.Client(timeout=30) as http:
            page = http.get(up.urls["shop"])
            assert page.status_code == 200
            assert "Place order" in page.text
            # The form post starts the saga and redirects to the payment page.
            placed = http.post(
                f"{up.urls['shop']}/orders",
                content="sku=mug&quantity=2&address=1+Main+St",
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert placed.status_code == 303
            payment_url = placed.headers["location"]
            assert payment_url.startswith(up.urls["payments"] + "/pay/")
            assert "24.00 EUR" in http.get(payment_url).text
            back = http.post(f"{payment_url}/pay")
            assert back.status_code == 303
            order_page = back.headers["location"]
            order_id = order_page.rsplit("/", 1)[-1]
            result = http.get(f"{up.urls['orchestrator']}/workflows/{order_id}/result?timeout=30")
            assert result.json()["status"] == "SUCCESS", result.text
    finally:
        code = up.interrupt()
    assert code == 0, "\n".join(up.output)
    for name in ("orchestrator", "inventory", "payments", "shipping"):
        assert refuses_connections(up.urls[name]), f"{name} still answers after Ctrl-C"
    assert (tmp_path / "shop.db").exists()  # the embedded store, under ORCHESTRATOR_DATA_DIR
    assert (tmp_path / "shop" / "inventory.db").exists()


def test_saga_up_reports_a_dead_child_and_stops(tmp_path: Path) -> None:
    up = saga_up(tmp_path, "tests.e2e.dying_stack:stack", "--port", "0")
    code = up.process.wait(30)
    assert up.process.stdout is not None
    up.output += up.process.stdout.read().splitlines()
    assert code == 1
    assert "crasher exited with code 3" in up.output
