"""The sample shop's checkout and refund sagas explored with the toolkit (#19): every crash
point and every step failure, against fake inventory, payments and shipping services that
record their effects by idempotency key (respx through ``http_fakes``), on SQLite and on
PostgreSQL. Zero violations; the number of scenarios is printed."""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from orchestrator import Orchestrator
from orchestrator.testing import Ledger, explore
from orchestrator.testing.http_fakes import HttpFakes

SERVICES = {
    "SHOP_INVENTORY_URL": "http://inventory.test",
    "SHOP_PAYMENTS_URL": "http://payments.test",
    "SHOP_SHIPPING_URL": "http://shipping.test",
    "SHOP_PUBLIC_URL": "http://shop.test",
}


@pytest.fixture
def shop(database_url: str) -> Iterator[Any]:
    """The sample's modules imported afresh with their app on this test's database (the
    module-level ``sagas.app.app`` reads DATABASE_URL when it is built)."""
    saved = {name: os.environ.get(name) for name in (*SERVICES, "DATABASE_URL")}
    os.environ.update(SERVICES, DATABASE_URL=database_url)
    loaded = [name for name in ("sagas.app", "sagas.checkout", "sagas.refund")]
    try:
        modules = [
            importlib.reload(sys.modules[n]) if n in sys.modules else importlib.import_module(n)
            for n in loaded
        ]
        yield modules
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for name in loaded:  # the next importer builds them on its own environment
            sys.modules.pop(name, None)


def fake_services(fakes: HttpFakes) -> None:
    """The three services, answering as the real ones do (services/), idempotent by key."""

    def json(body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(200, json=body)

    inventory, payments, shipping = (SERVICES[k] for k in list(SERVICES)[:3])
    fakes.post(f"{inventory}/reservations").mock(
        return_value=json({"reservation_id": "res-1", "total_cents": 5000})
    )
    fakes.route(method="POST", url__regex=rf"{re.escape(inventory)}/reservations/res-1/\w+").mock(
        return_value=json({"reservation_id": "res-1"})
    )
    fakes.post(f"{payments}/sessions").mock(
        return_value=json(
            {"session_id": "ps-1", "url": f"{payments}/pay/ps-1", "amount_cents": 5000}
        )
    )
    fakes.route(method="POST", url__regex=rf"{re.escape(payments)}/sessions/ps-1/\w+").mock(
        return_value=json({"session_id": "ps-1", "amount_cents": 5000})
    )
    fakes.post(f"{shipping}/shipments").mock(
        return_value=json({"shipment_id": "sh-1", "tracking_number": "TR-1"})
    )
    fakes.route(method="POST", url__regex=rf"{re.escape(shipping)}/shipments/[\w-]+/\w+").mock(
        return_value=json({"shipment_id": "sh-2", "tracking_number": "TR-2"})
    )


async def test_the_checkout_saga_explored(shop: Any, ledger: Ledger, http_fakes: HttpFakes) -> None:
    app_module, checkout_module, _ = shop
    app: Orchestrator = app_module.app
    fake_services(http_fakes)
    order = {
        "order_id": "o-42",
        "items": [{"sku": "book", "quantity": 2}],
        "address": "1 Main St",
    }
    paid = {"event_id": "evt-1", "type": "payment.succeeded", "session_id": "ps-1"}
    report = await explore(
        app, checkout_module.checkout, order, ledger=ledger, messages={"payment": paid}
    )
    print(report.summary())
    report.assert_ok()
    assert report.scenarios[0].status.value == "SUCCESS"
    coverage = report.compensation_coverage
    assert set(coverage.exercised) == {
        "reserve_stock.compensation",
        "open_payment.compensation",
        "capture_payment.compensation",
    }
    assert coverage.steps_without_compensation == []


async def test_the_refund_saga_explored(shop: Any, ledger: Ledger, http_fakes: HttpFakes) -> None:
    app_module, _, refund_module = shop
    fake_services(http_fakes)
    receipt = {
        "order_id": "o-42",
        "reservation_id": "res-1",
        "session_id": "ps-1",
        "amount_cents": 5000,
        "shipment_id": "sh-1",
        "tracking_number": "TR-1",
    }
    report = await explore(
        app_module.app, refund_module.refund, {"receipt": receipt}, ledger=ledger
    )
    print(report.summary())
    report.assert_ok()
    assert report.compensation_coverage.exercised == ["open_return.compensation"]
