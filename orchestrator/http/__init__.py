"""The FastAPI service: ``create_app(orchestrator)``, ``serve(...)``, verified webhooks."""

from __future__ import annotations

from orchestrator.http.app import create_app
from orchestrator.http.server import check_bind, serve

__all__ = ["check_bind", "create_app", "serve"]
