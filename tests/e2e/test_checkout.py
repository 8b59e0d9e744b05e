"""The checkout and refund sagas against the real services, over HTTP, on PostgreSQL."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.conftest import new_order
from tests.e2e.stack import Shop

pytestmark = pytest.mark.postgres


def _one(items: list[dict[str, object]]) -> dict[str, object]:
    assert len(items) == 1, items
    return items[0]


def _wait_delivered(shop: Shop, session_id: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while True:
        events = shop.get("payments", "/webhooks/outbox", session_id=session_id)
        if all(e["status"] == "delivered" for e in events) or time.monotonic() > deadline:
            return list(events)
        time.sleep(0.1)


def test_paid_order_completes_with_stock_payment_and_shipment_right(shop: Shop, sku: str) -> None:
    shop.set_stock(sku, 10)
    order = new_order()
    shop.place(order, sku, quantity=3)
    shop.place(order, sku, quantity=3)  # a retried request: the same workflow, not a second
    url = shop.payment_url(order)
    assert shop.click(url, "pay").status_code == 303  # back to the shop's order page

    result = shop.result(order)
    assert result["status"] == "SUCCESS"
    receipt = result["output"]
    assert receipt["amount_cents"] == 3_000

    reservation = _one(shop.get("inventory", "/reservations", order_id=order))
    assert reservation["status"] == "fulfilled"
    assert shop.stock(sku) == 7
    session = _one(shop.get("payments", "/sessions", order_id=order))
    assert session["status"] == "captured"
    assert session["session_id"] == receipt["session_id"]
    shipment = _one(shop.get("shipping", "/shipments", order_id=order))
    assert shipment["shipment_id"] == receipt["shipment_id"]
    events = _wait_delivered(shop, str(session["session_id"]))
    assert [(e["type"], e["status"]) for e in events] == [("payment.succeeded", "delivered")]
    shop.assert_applied_once(order)
    status = shop.http.get(shop.api(f"/shop/orders/{order}/status")).json()
    assert status["state"] == "completed"


def test_a_double_click_on_pay_is_one_payment(shop: Shop, sku: str) -> None:
    """The customer clicks pay twice: the second click finds the session paid (the same
    redirect), and the saga receives the payment once. (Redelivered webhooks, the provider
    retrying while the orchestrator is down: test_crash.py.)"""
    shop.set_stock(sku, 5)
    order = new_order()
    shop.place(order, sku)
    url = shop.payment_url(order)
    shop.click(url, "pay")
    assert shop.click(url, "pay").status_code == 303  # double click: the same state
    assert shop.result(order)["status"] == "SUCCESS"
    steps = shop.http.get(shop.api(f"/workflows/{order}/steps")).json()
    assert [s["name"] for s in steps].count("recv") == 1


def test_cancelled_payment_compensates(shop: Shop, sku: str) -> None:
    shop.set_stock(sku, 5)
    order = new_order()
    shop.place(order, sku, quantity=2)
    url = shop.payment_url(order)
    assert shop.stock(sku) == 3  # held while the customer decides
    shop.click(url, "cancel")

    result = shop.result(order)
    assert result["status"] == "COMPENSATED"
    assert "cancelled" in result["error_message"]
    assert _one(shop.get("inventory", "/reservations", order_id=order))["status"] == "released"
    assert shop.stock(sku) == 5
    assert _one(shop.get("payments", "/sessions", order_id=order))["status"] == "cancelled"
    assert shop.get("shipping", "/shipments", order_id=order) == []
    shop.assert_applied_once(order)
    status = shop.http.get(shop.api(f"/shop/orders/{order}/status")).json()
    assert status["state"] == "compensated"


def test_payment_timeout_voids_the_session_and_releases_stock(shop: Shop, sku: str) -> None:
    shop.set_stock(sku, 5)
    order = new_order()
    shop.place(order, sku, quantity=1, payment_timeout_seconds=1)
    url = shop.payment_url(order)

    result = shop.result(order)
    assert result["status"] == "COMPENSATED"
    assert "no payment within 1 s" in result["error_message"]
    assert _one(shop.get("payments", "/sessions", order_id=order))["status"] == "voided"
    assert shop.stock(sku) == 5
    late = shop.click(url, "pay")  # the customer comes back too late
    assert late.status_code == 409
    assert "voided" in late.text
    shop.assert_applied_once(order)


def test_shipping_refusal_after_payment_refunds_and_releases_once(shop: Shop, sku: str) -> None:
    shop.set_stock(sku, 5)
    order = new_order()
    shop.place(order, sku, quantity=2, address="Nowhere Island")
    shop.click(shop.payment_url(order), "pay")

    result = shop.result(order)
    assert result["status"] == "COMPENSATED"
    assert "no carrier delivers" in result["error_message"]
    assert _one(shop.get("payments", "/sessions", order_id=order))["status"] == "refunded"
    assert shop.stock(sku) == 5
    assert shop.get("shipping", "/shipments", order_id=order) == []

    ledger = shop.ledger(order)
    by_endpoint = {e["endpoint"].rsplit("/", 1)[-1]: e for s in ledger.values() for e in s}
    assert by_endpoint["refund"]["applied"] == 1
    assert by_endpoint["release"]["applied"] == 1
    assert by_endpoint["shipments"]["status_code"] == 422
    shop.assert_applied_once(order)


def test_transient_shipping_failures_are_retried_to_one_shipment(shop: Shop, sku: str) -> None:
    faults = f"{shop.stack.url('shipping')}/admin/faults"
    shop.http.put(faults, json={"transient_rate": 0.3}).raise_for_status()
    try:
        shop.set_stock(sku, 10)
        orders = [new_order() for _ in range(4)]
        for order in orders:
            shop.place(order, sku)
        for order in orders:
            shop.click(shop.payment_url(order), "pay")
        for order in orders:
            assert shop.result(order)["status"] == "SUCCESS"
            _one(shop.get("shipping", "/shipments", order_id=order))
            shop.assert_applied_once(order)
    finally:
        shop.http.put(faults, json={}).raise_for_status()
    assert shop.stock(sku) == 6


def test_out_of_stock_is_a_clean_409_and_ends_the_order(shop: Shop, sku: str) -> None:
    shop.set_stock(sku, 1)
    order = new_order()
    shop.place(order, sku, quantity=2)
    result = shop.result(order)
    assert result["status"] == "ERROR"
    assert "only 1" in result["error_message"]
    entry = _one(shop.ledger(order)["inventory"])
    assert entry["status_code"] == 409
    assert shop.get("payments", "/sessions", order_id=order) == []
    direct = httpx.post(
        f"{shop.stack.url('inventory')}/reservations",
        json={"order_id": "x", "items": [{"sku": sku, "quantity": 2}]},
    )
    assert direct.status_code == 409
    assert direct.json()["error"] == "out_of_stock"


def test_refund_saga_returns_refunds_and_restocks(shop: Shop, sku: str) -> None:
    shop.set_stock(sku, 5)
    order = new_order()
    shop.place(order, sku, quantity=2)
    shop.click(shop.payment_url(order), "pay")
    receipt = shop.result(order)["output"]
    assert shop.stock(sku) == 3

    refund_id = f"refund-{order}"
    started = shop.http.post(
        shop.api("/workflows/refund"),
        json={"receipt": receipt, "reason": "too big"},
        headers={"Idempotency-Key": refund_id},
    )
    assert started.status_code == 202, started.text
    result = shop.result(refund_id)
    assert result["status"] == "SUCCESS"
    assert result["output"]["refunded_cents"] == receipt["amount_cents"]
    assert _one(shop.get("payments", "/sessions", order_id=order))["status"] == "refunded"
    assert shop.stock(sku) == 5
    shipments = shop.get("shipping", "/shipments", order_id=order)
    assert sorted(s["kind"] for s in shipments) == ["delivery", "return"]
    shop.assert_applied_once(refund_id)


def test_a_refused_refund_cancels_the_return(shop: Shop, sku: str) -> None:
    """The provider refuses the refund (unknown session): the opened return is compensated."""
    shop.set_stock(sku, 5)
    order = new_order()
    shop.place(order, sku)
    shop.click(shop.payment_url(order), "pay")
    receipt = shop.result(order)["output"]
    refund_id = f"refund-{order}"
    shop.http.post(
        shop.api("/workflows/refund"),
        json={"receipt": {**receipt, "session_id": "cs_unknown"}},
        headers={"Idempotency-Key": refund_id},
    ).raise_for_status()
    result = shop.result(refund_id)
    assert result["status"] == "COMPENSATED", result
    returns = [
        s for s in shop.get("shipping", "/shipments", order_id=order) if s["kind"] == "return"
    ]
    assert [s["status"] for s in returns] == ["cancelled"]
    assert _one(shop.get("payments", "/sessions", order_id=order))["status"] == "captured"
    shop.assert_applied_once(refund_id)


def test_a_malformed_order_form_is_refused_and_starts_nothing(shop: Shop) -> None:
    """The storefront's form without a product, or with a quantity that is not a number: a 422
    page that says why, never a 500, and no saga started."""
    before = len(
        shop.http.get(shop.api("/workflows"), params={"name": "checkout", "limit": 500}).json()[
            "items"
        ]
    )
    for form in ({}, {"sku": "widget", "quantity": "two"}):
        response = shop.http.post(shop.api("/shop/orders"), data=form, follow_redirects=False)
        assert response.status_code == 422, response.text
        assert "The order was not placed" in response.text
    after = shop.http.get(shop.api("/workflows"), params={"name": "checkout", "limit": 500}).json()[
        "items"
    ]
    assert len(after) == before
