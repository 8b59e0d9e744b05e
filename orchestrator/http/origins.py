"""An ASGI middleware for services without an api_key: only requests a web page cannot forge.

A service on 127.0.0.1 without a key trusts whoever can reach it, and a web page in the user's
browser can reach it: by posting a form or a ``text/plain`` body (no CORS preflight for those,
so the browser sends them), or by DNS rebinding (the attacker's host name resolves to
127.0.0.1, so the page's requests go to the service under the attacker's ``Host``). So,
without a key:

- the ``Host`` must be a loopback name or address (or one of ``allowed_hosts``): 403;
- a state-changing request (POST, PUT, PATCH, DELETE) from a browser must come from a loopback
  origin (``Origin``, or ``Sec-Fetch-Site: cross-site``): 403;
- a state-changing request to the service's own API (``API_PREFIXES``) with a body must
  declare it JSON (``application/json`` or ``...+json``), which a page can only send with a
  preflight the service never grants: 415.

Webhooks (``/webhooks/...``) verify their own signatures and accept any content type; routes an
application adds to the service (the sample shop's form posts) keep the Host and Origin checks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.http.errors import (
    ForbiddenOriginError,
    UnsupportedMediaTypeError,
    error_body,
)
from orchestrator.http.limits import send_json

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WEBHOOK_PREFIX = "/webhooks/"
API_PREFIXES = ("/workflows", "/queues", "/queued", "/schedules", "/workers", "/metrics")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def host_name(host_header: str) -> str:
    """The name in a ``Host`` header, without its port (IPv6 literals keep their brackets
    stripped)."""
    host = host_header.strip()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_json_media_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class LocalOriginMiddleware:
    """Refuses what a web page could forge against a key-less service (module docstring)."""

    def __init__(self, app: ASGIApp, allowed_hosts: Collection[str] = ()) -> None:
        self.app = app
        self.allowed_hosts = {host.lower() for host in allowed_hosts}

    def _host_allowed(self, name: str) -> bool:
        return is_loopback(name) or name.lower() in self.allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = self._refusal(scope)
        if error is None:
            await self.app(scope, receive, send)
            return
        body = error_body(error.code, error.message, error.detail)
        await send_json(send, error.http_status, body, close=True)

    def _refusal(self, scope: Scope) -> ForbiddenOriginError | UnsupportedMediaTypeError | None:
        host = _header(scope, b"host")
        if host is None or not self._host_allowed(host_name(host)):
            return ForbiddenOriginError(
                f"this service has no api_key and answers only requests addressed to a loopback"
                f" host (127.0.0.1, localhost, ::1), not {host!r}: set an api_key to serve"
                " other hosts (or list them in allowed_hosts)",
                host=host,
            )
        if scope.get("method") not in UNSAFE_METHODS:
            return None
        path = _route_path(scope)
        if path.startswith(WEBHOOK_PREFIX):
            return None
        origin = _header(scope, b"origin")
        if origin is not None and origin != "null":
            origin_host = urlsplit(origin).hostname or ""
            if not self._host_allowed(origin_host):
                return ForbiddenOriginError(
                    f"this service has no api_key and refuses state-changing requests from web"
                    f" pages of other sites (Origin {origin!r}); call it from a server or a"
                    " local page, or set an api_key",
                    origin=origin,
                )
        elif origin == "null" or _header(scope, b"sec-fetch-site") == "cross-site":
            return ForbiddenOriginError(
                "this service has no api_key and refuses state-changing requests from web"
                " pages of other sites; call it from a server or a local page, or set an api_key",
            )
        if not path.startswith(API_PREFIXES):
            return None
        content_type = _header(scope, b"content-type")
        if content_type is not None and not is_json_media_type(content_type):
            return UnsupportedMediaTypeError(
                f"request bodies must be JSON: send `Content-Type: application/json`, not"
                f" {content_type!r}",
                content_type=content_type,
            )
        if content_type is None and _has_body(scope):
            return UnsupportedMediaTypeError(
                "request bodies must be JSON: send `Content-Type: application/json`"
            )
        return None


def _route_path(scope: Scope) -> str:
    """The path below the service's mount point (if it is mounted in another app)."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


def _has_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return _header(scope, b"transfer-encoding") is not None
