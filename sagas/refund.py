"""The refund saga, started later for a completed order: open a return, refund the payment,
restock. If the refund is refused, the return is cancelled (compensated)."""

from __future__ import annotations

from sagas import clients
from sagas.app import app
from sagas.checkout import FORWARD_RETRY, SERVICE_RETRY
from sagas.config import ShopConfig
from sagas.models import Receipt, RefundReceipt, RefundRequest


@app.step(name="open_return", retry=SERVICE_RETRY)
async def open_return(receipt: Receipt) -> str:
    """Ask the carrier to pick the parcel up; returns the return shipment's id."""
    config = ShopConfig.from_env()
    url = f"{config.shipping_url}/shipments/{receipt.shipment_id}/return"
    return str((await clients.post(url))["shipment_id"])


@open_return.compensation
async def cancel_return(receipt: Receipt, return_shipment_id: str) -> None:
    config = ShopConfig.from_env()
    await clients.post(f"{config.shipping_url}/shipments/{return_shipment_id}/cancel")


@app.step(name="refund_captured", pivot=True, retry=SERVICE_RETRY)
async def refund_captured(receipt: Receipt) -> int:
    """Give the money back: once refunded, the refund saga only goes forward."""
    config = ShopConfig.from_env()
    answer = await clients.post(f"{config.payments_url}/sessions/{receipt.session_id}/refund")
    return int(answer["amount_cents"])


@app.step(name="restock", retry=FORWARD_RETRY)
async def restock(receipt: Receipt) -> None:
    config = ShopConfig.from_env()
    await clients.post(f"{config.inventory_url}/reservations/{receipt.reservation_id}/restock")


@app.workflow(name="refund")
async def refund(request: RefundRequest) -> RefundReceipt:
    """Refund a completed order (start it with workflow id ``refund-<order id>``)."""
    receipt = request.receipt
    return_id = await open_return(receipt)
    await app.set_event("status", "return_opened")
    refunded = await refund_captured(receipt)
    await restock(receipt)
    await app.set_event("status", "refunded")
    return RefundReceipt(
        order_id=receipt.order_id, return_shipment_id=return_id, refunded_cents=refunded
    )
