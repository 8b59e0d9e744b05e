"""The FastAPI service: ``create_app(orchestrator)``, ``serve(...)``, verified webhooks, and
``ServiceClient`` for a running service."""

from __future__ import annotations

from orchestrator.http.app import create_app
from orchestrator.http.client import ServiceClient, ServiceError
from orchestrator.http.server import check_bind, serve
from orchestrator.http.signatures import GitHub, HmacSha256, StandardWebhooks, Stripe
from orchestrator.http.webhooks import Delivery, Send, SendToKey, Start, WebhookSource

__all__ = [
    "Delivery",
    "GitHub",
    "HmacSha256",
    "Send",
    "SendToKey",
    "ServiceClient",
    "ServiceError",
    "StandardWebhooks",
    "Start",
    "Stripe",
    "WebhookSource",
    "check_bind",
    "create_app",
    "serve",
]
