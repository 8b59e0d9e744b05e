"""SIGKILL the orchestrator while orders are in flight: every order still ends, effects once."""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import pytest

from tests.e2e.conftest import new_order
from tests.e2e.stack import Shop

pytestmark = [pytest.mark.postgres, pytest.mark.recovery, pytest.mark.slow]

ORDERS = 12


def test_orders_survive_orchestrator_sigkills(shop: Shop, sku: str) -> None:
    seed = int(os.environ.get("SHOP_CRASH_SEED", random.randrange(1 << 30)))
    print(f"--seed {seed} (SHOP_CRASH_SEED={seed} reproduces the choices)")
    rng = random.Random(seed)
    shop.set_stock(sku, 100)
    orders = {new_order(): rng.randint(1, 3) for _ in range(ORDERS)}
    # What each customer does: pay, cancel, or pay for an address no carrier serves.
    plans = {order: rng.choice(["pay", "pay", "pay", "cancel", "refused"]) for order in orders}
    for order, quantity in orders.items():
        address = "Nowhere" if plans[order] == "refused" else "1 Main St"
        shop.place(order, sku, quantity=quantity, address=address)

    # Crash 1: while the first steps (reserve, open_payment) of some orders are in flight.
    time.sleep(rng.uniform(0.0, 0.3))
    shop.stack.kill_orchestrator()
    shop.stack.start_orchestrator()  # recovers its own workflows at launch (executor "local")

    urls = {order: shop.payment_url(order) for order in orders}
    for order in orders:
        button = "cancel" if plans[order] == "cancel" else "pay"
        assert shop.click(urls[order], button).status_code == 303

    # Crash 2: while webhooks are arriving, payments are captured, parcels shipped.
    time.sleep(rng.uniform(0.05, 0.4))
    shop.stack.kill_orchestrator()
    time.sleep(0.5)  # the provider's deliveries fail meanwhile: it retries them
    shop.stack.start_orchestrator()

    outcomes = {order: shop.result(order, timeout=90)["status"] for order in orders}
    expected = {o: "SUCCESS" if p == "pay" else "COMPENSATED" for o, p in plans.items()}
    assert outcomes == expected, f"seed {seed}"

    sold = 0
    for order, quantity in orders.items():
        reservations = shop.get("inventory", "/reservations", order_id=order)
        sessions = shop.get("payments", "/sessions", order_id=order)
        shipments = shop.get("shipping", "/shipments", order_id=order)
        assert len(reservations) == 1, (order, reservations)  # reserved once, despite replays
        assert len(sessions) == 1, (order, sessions)
        if plans[order] == "pay":
            sold += quantity
            assert reservations[0]["status"] == "fulfilled"
            assert sessions[0]["status"] == "captured"
            assert len(shipments) == 1
        else:
            assert reservations[0]["status"] == "released"
            assert sessions[0]["status"] == (
                "cancelled" if plans[order] == "cancel" else "refunded"
            )
            assert shipments == []
        shop.assert_applied_once(order)
        events = shop.get("payments", "/webhooks/outbox", session_id=sessions[0]["session_id"])
        assert Counter(e["type"] for e in events) == Counter(
            {"payment.cancelled" if plans[order] == "cancel" else "payment.succeeded": 1}
        )
    assert shop.stock(sku) == 100 - sold, f"seed {seed}"


def test_the_provider_retries_its_webhook_until_the_orchestrator_takes_it(
    shop: Shop, sku: str
) -> None:
    """The customer pays while the orchestrator is down: the signed delivery fails, the
    payments service retries it with backoff, and the saga completes once it is back."""
    shop.set_stock(sku, 5)
    order = new_order()
    shop.place(order, sku)
    url = shop.payment_url(order)
    shop.stack.kill_orchestrator()
    try:
        assert shop.click(url, "pay").status_code == 303
        time.sleep(1.0)  # a few deliveries fail (backoff 0.2 s doubling, at most 1 s)
    finally:
        shop.stack.start_orchestrator()
    assert shop.result(order)["status"] == "SUCCESS"
    session_id = url.rstrip("/").rsplit("/", 1)[-1]
    outbox = shop.http.get(
        f"{shop.stack.url('payments')}/webhooks/outbox", params={"session_id": session_id}
    ).json()
    [paid] = [event for event in outbox if event["type"] == "payment.succeeded"]
    assert paid["status"] == "delivered" and paid["attempts"] >= 2, paid
    shop.assert_applied_once(order)
