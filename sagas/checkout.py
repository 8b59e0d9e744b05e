"""The checkout saga: reserve stock, open a payment session, wait for the customer's payment
(a webhook), capture it, ship; undo in reverse when the customer cancels, the payment times
out, or a step fails for good.

    reserve_stock ─ open_payment ─ set_event(payment_url) ─ recv(payment)
        └ release     └ void            ─ capture_payment ─ ship (pivot) ─ fulfil
                                            └ refund
"""

from __future__ import annotations

from orchestrator import NonRetryableError, Retry
from sagas import clients
from sagas.app import app
from sagas.clients import ServiceUnavailable
from sagas.config import ShopConfig
from sagas.models import (
    Order,
    PaymentOutcome,
    PaymentSession,
    Receipt,
    Reservation,
    Shipment,
)

# Transient failures (connection refused, 503) are retried with backoff; refusals are not.
SERVICE_RETRY = Retry(
    max_attempts=6, base_interval=0.2, max_interval=3.0, retry_on=(ServiceUnavailable,)
)
# After the pivot the saga only goes forward: retry much longer.
FORWARD_RETRY = Retry(
    max_attempts=30, base_interval=0.5, max_interval=10.0, retry_on=(ServiceUnavailable,)
)


class PaymentNotCompleted(NonRetryableError):
    """The customer cancelled, or did not pay in time: the order is rolled back."""


# --------------------------------------------------------------------------- inventory
@app.step(name="reserve_stock", retry=SERVICE_RETRY)
async def reserve_stock(order: Order) -> Reservation:
    """Hold the order's items (409 out of stock ends the order: nothing to undo yet)."""
    config = ShopConfig.from_env()
    body = {"order_id": order.order_id, "items": [i.model_dump() for i in order.items]}
    answer = await clients.post(f"{config.inventory_url}/reservations", body)
    return Reservation.model_validate(answer)


@reserve_stock.compensation
async def release_stock(order: Order, reservation: Reservation) -> None:
    """Put the held items back (404: nothing held, nothing to do)."""
    config = ShopConfig.from_env()
    url = f"{config.inventory_url}/reservations/{reservation.reservation_id}/release"
    await clients.post(url, accept=(404,))


# --------------------------------------------------------------------------- payments
@app.step(name="open_payment", retry=SERVICE_RETRY)
async def open_payment(order: Order, amount_cents: int) -> PaymentSession:
    """A checkout session at the provider; its URL is the page where the customer pays."""
    config = ShopConfig.from_env()
    body = {
        "order_id": order.order_id,
        "amount_cents": amount_cents,
        "currency": "EUR",
        "return_url": f"{config.public_url}/shop/orders/{order.order_id}",
        "metadata": {"workflow_id": app.step_context().workflow_id},
    }
    answer = await clients.post(f"{config.payments_url}/sessions", body)
    return PaymentSession.model_validate(answer)


@open_payment.compensation
async def void_payment(order: Order, amount_cents: int, session: PaymentSession) -> None:
    """Close the session so it can no longer be paid, releasing any authorization."""
    config = ShopConfig.from_env()
    await clients.post(f"{config.payments_url}/sessions/{session.session_id}/void", accept=(404,))


@app.step(name="capture_payment", retry=SERVICE_RETRY)
async def capture_payment(session: PaymentSession) -> int:
    """Take the authorized amount; returns the captured cents."""
    config = ShopConfig.from_env()
    answer = await clients.post(f"{config.payments_url}/sessions/{session.session_id}/capture")
    return int(answer["amount_cents"])


@capture_payment.compensation
async def refund_payment(session: PaymentSession, captured_cents: int) -> None:
    """Give the captured money back."""
    config = ShopConfig.from_env()
    await clients.post(f"{config.payments_url}/sessions/{session.session_id}/refund")


# --------------------------------------------------------------------------- shipping
@app.step(name="ship", pivot=True, retry=SERVICE_RETRY)
async def ship(order: Order) -> Shipment:
    """Hand the parcel to the carrier: the point of no return (a refusal still rolls back,
    since the pivot only counts once it has succeeded)."""
    config = ShopConfig.from_env()
    body = {
        "order_id": order.order_id,
        "address": order.address,
        "items": [i.model_dump() for i in order.items],
    }
    answer = await clients.post(f"{config.shipping_url}/shipments", body)
    return Shipment.model_validate(answer)


@app.step(name="fulfil_stock", retry=FORWARD_RETRY)
async def fulfil_stock(reservation: Reservation) -> None:
    """The held items left the warehouse: the reservation is fulfilled."""
    config = ShopConfig.from_env()
    await clients.post(f"{config.inventory_url}/reservations/{reservation.reservation_id}/fulfil")


# --------------------------------------------------------------------------- the saga
@app.workflow(name="checkout")
async def checkout(order: Order) -> Receipt:
    """Events: ``payment_url`` (send the customer there) and ``status``."""
    reservation = await reserve_stock(order)
    session = await open_payment(order, reservation.total_cents)
    await app.set_event("payment_url", session.url)
    await app.set_event("status", "awaiting_payment")
    timeout = order.payment_timeout_seconds or ShopConfig.from_env().payment_timeout_seconds
    message = await app.recv("payment", timeout=timeout)
    if message is None:
        await app.set_event("status", "payment_timed_out")
        raise PaymentNotCompleted(f"no payment within {timeout:g} s")
    outcome = PaymentOutcome.model_validate(message)
    if outcome.type != "payment.succeeded":
        await app.set_event("status", "payment_cancelled")
        raise PaymentNotCompleted(f"the customer cancelled the payment ({outcome.type})")
    await app.set_event("status", "paid")
    captured = await capture_payment(session)
    shipment = await ship(order)
    await fulfil_stock(reservation)
    await app.set_event("status", "completed")
    return Receipt(
        order_id=order.order_id,
        reservation_id=reservation.reservation_id,
        session_id=session.session_id,
        amount_cents=captured,
        shipment_id=shipment.shipment_id,
        tracking_number=shipment.tracking_number,
    )
