"""Webhooks as an application declares them (``@app.webhook``), without the web framework: the
signature scheme a sender uses, the verified delivery a handler gets, the actions it returns.
The HTTP service (``orchestrator.http``) verifies, serves and carries them out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class SignatureScheme(Protocol):
    """How one sender signs its deliveries (``orchestrator.http``: StandardWebhooks, Stripe,
    GitHub, HmacSha256)."""

    @property
    def signature_headers(self) -> frozenset[str]:
        """Lower-case header names that carry signature material (never shown to handlers)."""

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        secrets: Sequence[str],
        now: float,
        tolerance: float,
    ) -> None:
        """Raise SignatureError unless ``body`` is signed by one of ``secrets`` in time."""

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str | None:
        """The sender's id of this delivery (the same for its retries)."""


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` to workflow ``workflow_id`` on ``topic`` (read with ``recv``)."""

    workflow_id: str
    topic: str
    message: Any


@dataclass(frozen=True, slots=True)
class SendToKey:
    """Send ``message`` on ``topic`` to the workflow holding business key ``key``
    (``"order_id:42"``, an attribute); when none holds it yet (the provider's event came
    before the saga recorded its order id), it is kept ``keep_seconds`` (None: the app's
    default) for the first workflow to start with it, and the delivery is still accepted."""

    key: str
    topic: str
    message: Any
    keep_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Start:
    """Start workflow ``workflow_name`` with ``input`` (the same JSON shape as the body of
    ``POST /workflows/{name}``); ``workflow_id`` defaults to ``"{source}:{delivery id}"``."""

    workflow_name: str
    input: Any
    workflow_id: str | None = None


Action = Send | SendToKey | Start | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A verified delivery as a handler sees it (signature headers removed)."""

    source: str
    delivery_id: str
    payload: Any  # the payload model instance when the source has one, else plain JSON
    headers: Mapping[str, str]


Handler = Callable[[Delivery], Action | Awaitable[Action]]


@dataclass(frozen=True)
class WebhookDeclaration:
    """A webhook source declared with ``@app.webhook``; the HTTP service verifies and serves
    it (``orchestrator.http.webhooks.WebhookSource`` has the same fields)."""

    source: str
    secrets: str | tuple[str, ...] = field(repr=False)
    scheme: SignatureScheme
    handler: Handler
    payload_model: type[Any] | None = None
    tolerance_seconds: float = 300.0
