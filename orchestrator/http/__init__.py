"""The FastAPI service: ``create_app(orchestrator)``, ``serve(...)``, verified webhooks, and
``ServiceClient`` for a running service."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.http.app import create_app
    from orchestrator.http.client import ServiceClient, ServiceError
    from orchestrator.http.server import check_bind, serve
    from orchestrator.http.signatures import GitHub, HmacSha256, StandardWebhooks, Stripe
    from orchestrator.http.webhooks import Delivery, Send, SendToKey, Start, WebhookSource

# Each name is imported from its module on first use (PEP 562), so that importing one module of
# the package does not import them all: ``orchestrator.http.client`` (the CLI's ``--url``) and
# ``orchestrator.http.signatures`` need neither FastAPI nor uvicorn, which take most of a second.
_HOMES = {
    "create_app": "app",
    "ServiceClient": "client",
    "ServiceError": "client",
    "check_bind": "server",
    "serve": "server",
    "GitHub": "signatures",
    "HmacSha256": "signatures",
    "StandardWebhooks": "signatures",
    "Stripe": "signatures",
    "Delivery": "webhooks",
    "Send": "webhooks",
    "SendToKey": "webhooks",
    "Start": "webhooks",
    "WebhookSource": "webhooks",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
