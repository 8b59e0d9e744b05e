"""The shop's data as the sagas pass it between steps (validated JSON both ways)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LineItem(BaseModel):
    sku: str = Field(min_length=1, max_length=100)
    quantity: int = Field(ge=1, le=1_000)


class Order(BaseModel):
    order_id: str = Field(min_length=1, max_length=200)
    items: list[LineItem] = Field(min_length=1, max_length=50)
    address: str = Field(min_length=1, max_length=500)
    email: str | None = Field(default=None, max_length=200)
    # How long the customer has to pay; None: SHOP_PAYMENT_TIMEOUT_SECONDS (15 min).
    payment_timeout_seconds: float | None = Field(default=None, gt=0, le=7 * 86_400)


class Reservation(BaseModel):
    reservation_id: str
    total_cents: int


class PaymentSession(BaseModel):
    session_id: str
    url: str
    amount_cents: int


class PaymentOutcome(BaseModel):
    """The message the payment webhook sends the checkout (topic ``payment``)."""

    event_id: str
    type: str  # payment.succeeded | payment.cancelled
    session_id: str


class Shipment(BaseModel):
    shipment_id: str
    tracking_number: str


class Receipt(BaseModel):
    order_id: str
    reservation_id: str
    session_id: str
    amount_cents: int
    shipment_id: str
    tracking_number: str


class RefundRequest(BaseModel):
    receipt: Receipt
    reason: str = Field(default="customer request", max_length=500)


class RefundReceipt(BaseModel):
    order_id: str
    return_shipment_id: str
    refunded_cents: int
