"""Webhook sources served by the test service, with a clock the tests can move."""

from __future__ import annotations

import base64
import time
from typing import Any

from pydantic import BaseModel

from orchestrator.http.webhooks import (
    Delivery,
    GitHub,
    HmacSha256,
    Send,
    StandardWebhooks,
    Start,
    Stripe,
    WebhookSource,
)

OLD_STD_SECRET = "whsec_" + base64.b64encode(b"old-standard-webhooks-key-000000").decode()
NEW_STD_SECRET = "whsec_" + base64.b64encode(b"new-standard-webhooks-key-111111").decode()
STRIPE_SECRET = "whsec_stripe_test_secret"
GITHUB_SECRET = "github-test-secret"
GENERIC_SECRET = "generic-test-secret"


class FakeClock:
    """Real time plus an offset the tests set (seconds)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


CLOCK = FakeClock()


class PaymentEvent(BaseModel):
    workflow_id: str
    item: Any = None


def to_collector(delivery: Delivery) -> Send | None:
    payload = delivery.payload
    assert isinstance(payload, PaymentEvent)
    assert not any("signature" in name for name in delivery.headers)
    if payload.item == "ignore-me":
        return None
    return Send(payload.workflow_id, "items", payload.item)


def stripe_event(delivery: Delivery) -> Send | None:
    event = delivery.payload
    if event["type"] != "payment_intent.succeeded":
        return None
    metadata = event["data"]["object"]["metadata"]  # KeyError on other shapes: a 422
    return Send(metadata["workflow_id"], "items", event["id"])


async def github_push(delivery: Delivery) -> Start:
    return Start("add", {"a": delivery.payload["a"]})


def generic(delivery: Delivery) -> Send:
    topic = delivery.payload.get("topic", "items")
    return Send(delivery.payload["workflow_id"], topic, delivery.payload["item"])


SOURCES = [
    WebhookSource(
        "std",
        [OLD_STD_SECRET, NEW_STD_SECRET],
        StandardWebhooks(),
        to_collector,
        payload_model=PaymentEvent,
        clock=CLOCK,
    ),
    WebhookSource("stripe", STRIPE_SECRET, Stripe(), stripe_event, clock=CLOCK),
    WebhookSource("github", GITHUB_SECRET, GitHub(), github_push, clock=CLOCK),
    WebhookSource(
        "generic",
        GENERIC_SECRET,
        HmacSha256(header="X-Signature", prefix="sha256=", delivery_id_header="X-Delivery"),
        generic,
        clock=CLOCK,
    ),
]
