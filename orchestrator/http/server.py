"""serve(): run the service with uvicorn, refusing to listen publicly without an api_key."""

from __future__ import annotations

import ipaddress
from typing import Any

from orchestrator.app import Orchestrator
from orchestrator.errors import ConfigurationError

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Raise ConfigurationError for a non-loopback ``host`` without an ``api_key``."""
    if api_key is None and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve on {host!r} without an api_key: anyone who can reach it could "
            "start and cancel workflows. Pass api_key=... (clients send `Authorization: Bearer "
            "<key>`), or bind to 127.0.0.1.",
            host=host,
        )


def serve(
    app: Orchestrator,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    **create_app_options: Any,
) -> None:
    """Serve ``app`` over HTTP until interrupted (blocking; the service launches the app).

    Raises:
        ConfigurationError: ``host`` is not loopback and no ``api_key`` was given.
    """
    check_bind(host, api_key)
    import uvicorn

    from orchestrator.http.app import create_app

    service = create_app(app, api_key=api_key, **create_app_options)
    uvicorn.run(service, host=host, port=port, proxy_headers=False)
