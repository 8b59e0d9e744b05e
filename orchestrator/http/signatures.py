"""Webhook signature schemes: Standard Webhooks, Stripe, GitHub and a generic HMAC-SHA256.

Each scheme checks the raw body bytes (before any JSON parsing) against every configured
secret (several secrets: key rotation on our side) and every signature the sender put in its
header (several signatures: key rotation on theirs), with ``hmac.compare_digest``. Timestamped
schemes refuse deliveries outside ``tolerance`` seconds of now, stale or from the future, so a
captured delivery cannot be replayed later. Errors name the problem, never a secret or a
signature value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import ConfigurationError, SignatureError

DEFAULT_TOLERANCE_SECONDS = 300.0


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if not value:
        raise SignatureError(f"missing header {name}", reason="missing_header", header=name)
    return value


def _check_time(timestamp: str, now: float, tolerance: float) -> None:
    try:
        sent = int(timestamp)
    except ValueError:
        raise SignatureError("the timestamp is not an integer", reason="bad_timestamp") from None
    if sent < now - tolerance:
        raise SignatureError(
            f"the delivery is older than {tolerance:g} s (replayed or delayed)", reason="stale"
        )
    if sent > now + tolerance:
        raise SignatureError(
            f"the delivery's timestamp is more than {tolerance:g} s ahead", reason="future"
        )


def _any_match(expected: Sequence[bytes], given: Sequence[bytes]) -> bool:
    # Compare every pair (no early exit on the secret side), in constant time per pair.
    matched = False
    for mine in expected:
        for theirs in given:
            matched |= hmac.compare_digest(mine, theirs)
    return matched


def _mismatch() -> SignatureError:
    return SignatureError("no signature matches", reason="mismatch")


@dataclass(frozen=True, slots=True)
class StandardWebhooks:
    """standardwebhooks.com: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``
    (space-separated ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``); secrets are
    ``whsec_<base64 key>``. Svix, the reference sender, names the same three headers
    ``svix-id``, ``svix-timestamp`` and ``svix-signature``: a delivery carrying no
    ``webhook-id`` is read from those."""

    signature_headers: frozenset[str] = frozenset({"webhook-signature", "svix-signature"})

    @staticmethod
    def key(secret: str) -> bytes:
        raw = secret.removeprefix("whsec_")
        try:
            key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError("a Standard Webhooks secret is whsec_<base64>") from None
        if not key:
            raise ConfigurationError("a Standard Webhooks secret must not be empty")
        return key

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        secrets: Sequence[str],
        now: float,
        tolerance: float,
    ) -> None:
        prefix = _prefix(headers)
        delivery = _header(headers, f"{prefix}-id")
        timestamp = _header(headers, f"{prefix}-timestamp")
        signatures = _header(headers, f"{prefix}-signature")
        _check_time(timestamp, now, tolerance)
        content = f"{delivery}.{timestamp}.".encode() + body
        expected = [base64.b64encode(_hmac(self.key(s), content)) for s in secrets]
        given = [
            part.partition(",")[2].encode() for part in signatures.split() if part.startswith("v1,")
        ]
        if not _any_match(expected, given):
            raise _mismatch()

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str | None:
        return headers.get(f"{_prefix(headers)}-id")


def _prefix(headers: Mapping[str, str]) -> str:
    """``webhook`` (Standard Webhooks' names), or ``svix`` when only Svix's are there."""
    return "svix" if "webhook-id" not in headers and "svix-id" in headers else "webhook"


@dataclass(frozen=True, slots=True)
class Stripe:
    """Stripe: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "{t}.{body}">[,v1=...]``;
    the delivery id is the event's ``id`` (the same for every retry of the event)."""

    signature_headers: frozenset[str] = frozenset({"stripe-signature"})

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        secrets: Sequence[str],
        now: float,
        tolerance: float,
    ) -> None:
        items = [part.partition("=") for part in _header(headers, "Stripe-Signature").split(",")]
        timestamps = [value.strip() for key, _, value in items if key.strip() == "t"]
        given = [value.strip().encode() for key, _, value in items if key.strip() == "v1"]
        if len(timestamps) != 1:
            raise SignatureError("Stripe-Signature needs one t=", reason="bad_timestamp")
        if not given:
            raise SignatureError("Stripe-Signature has no v1 signature", reason="missing_header")
        _check_time(timestamps[0], now, tolerance)
        content = f"{timestamps[0]}.".encode() + body
        expected = [_hmac(s.encode(), content).hex().encode() for s in secrets]
        if not _any_match(expected, given):
            raise _mismatch()

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str | None:
        event_id = payload.get("id") if isinstance(payload, dict) else None
        return event_id if isinstance(event_id, str) and event_id else None


@dataclass(frozen=True, slots=True)
class GitHub:
    """GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``; the delivery id
    is ``X-GitHub-Delivery``. GitHub signs no timestamp, so there is no replay window: a
    replayed delivery is caught only by its delivery id."""

    signature_headers: frozenset[str] = frozenset({"x-hub-signature-256", "x-hub-signature"})

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        secrets: Sequence[str],
        now: float,
        tolerance: float,
    ) -> None:
        signature = _header(headers, "X-Hub-Signature-256")
        if not signature.startswith("sha256="):
            raise SignatureError("X-Hub-Signature-256 must be sha256=<hex>", reason="malformed")
        expected = [_hmac(s.encode(), body).hex().encode() for s in secrets]
        if not _any_match(expected, [signature.removeprefix("sha256=").strip().encode()]):
            raise _mismatch()

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str | None:
        return headers.get("x-github-delivery")


@dataclass(frozen=True, slots=True)
class HmacSha256:
    """Generic: hex HMAC-SHA256 of the raw body in ``header`` (optionally after ``prefix``,
    e.g. ``"sha256="``); the delivery id comes from ``delivery_id_header``."""

    header: str = "X-Signature"
    prefix: str = ""
    delivery_id_header: str = "X-Delivery-Id"
    signature_headers: frozenset[str] = field(default=frozenset(), init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signature_headers", frozenset({self.header.lower()}))

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes,
        secrets: Sequence[str],
        now: float,
        tolerance: float,
    ) -> None:
        signature = _header(headers, self.header)
        if not signature.startswith(self.prefix):
            raise SignatureError(
                f"{self.header} must start with {self.prefix!r}", reason="malformed"
            )
        given = [part.strip().encode() for part in signature.removeprefix(self.prefix).split(",")]
        expected = [_hmac(s.encode(), body).hex().encode() for s in secrets]
        if not _any_match(expected, given):
            raise _mismatch()

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str | None:
        return headers.get(self.delivery_id_header.lower())
