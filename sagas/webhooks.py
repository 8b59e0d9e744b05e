"""The payment provider's webhook: a verified Standard Webhooks delivery becomes the
``payment`` message of the checkout it names (the workflow id travels in the session metadata)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from orchestrator.http.webhooks import Delivery, Send, StandardWebhooks, WebhookSource
from sagas.app import app

SOURCE_NAME = "payments"  # served at POST /webhooks/payments


class PaymentEventData(BaseModel):
    session_id: str
    order_id: str
    status: str
    metadata: dict[str, str]


class PaymentEvent(BaseModel):
    id: str
    type: str
    data: PaymentEventData
    created: int | None = None


async def to_message(delivery: Delivery) -> Send | None:
    """``payment.succeeded`` / ``payment.cancelled`` -> Send(workflow, "payment", outcome)."""
    event: PaymentEvent = delivery.payload
    workflow_id = event.data.metadata["workflow_id"]  # KeyError: a 422 for the sender
    info = await app.retrieve(workflow_id).status()
    if info.status.is_terminal:
        return None  # a late delivery (the order already ended): acknowledge, ignore
    message: dict[str, Any] = {
        "event_id": event.id,
        "type": event.type,
        "session_id": event.data.session_id,
    }
    return Send(workflow_id, "payment", message)


def payment_webhooks(secrets: str | list[str]) -> WebhookSource:
    """The source to pass to ``create_app(..., webhooks=[...])``; ``secrets``: ``whsec_…``."""
    return WebhookSource(
        SOURCE_NAME,
        secrets,
        StandardWebhooks(),
        to_message,
        payload_model=PaymentEvent,
    )
