"""Who calls the service, and with what right: bearer keys, console sessions, CSRF.

Two keys, two roles: ``api_key`` grants ``operator`` (read and act), ``read_only_api_key``
grants ``reader`` (GET only: any other method answers 403). With neither key the service
trusts its loopback callers (see origins.py) as operators.

API callers send ``Authorization: Bearer <key>`` (and may name themselves with ``X-Actor``,
which the audit log records). A browser logs in at ``POST /console/login`` with a key and a
name: the answer sets an HttpOnly session cookie (signed with the keys, so rotating a key
ends its sessions) and a CSRF cookie that the console's script copies into an
``X-CSRF-Token`` header on every POST; a POST authenticated by the cookie without that
header is refused (a page of another site can make the browser send the cookie, never read
it). The cookies are SameSite=Strict as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from orchestrator.audit import MAX_ACTOR_CHARS, Actor, set_actor
from orchestrator.errors import OrchestratorError
from orchestrator.http.errors import UnauthorizedError

OPERATOR = "operator"
READER = "reader"
SESSION_COOKIE = "orchestrator_session"
CSRF_COOKIE = "orchestrator_csrf"
CSRF_HEADER = "X-CSRF-Token"
ACTOR_HEADER = "X-Actor"
SURFACE_HEADER = "X-Orchestrator-Surface"
SESSION_SECONDS = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REMOTE_SURFACES = frozenset({"http", "console", "cli"})


class ForbiddenError(OrchestratorError):
    """The caller is known but may not do this (a reader acting; a POST without CSRF token)."""

    http_status = 403
    code = "forbidden"


class CsrfError(ForbiddenError):
    code = "csrf_failed"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: its role, its name (for the audit) and how it proved it
    ("none": no key is configured; "bearer"; "session": the console's cookie)."""

    role: str
    name: str
    auth: str


@dataclass(frozen=True, slots=True)
class Keys:
    """The service's keys (from create_app)."""

    operator: str | None
    reader: str | None

    @property
    def configured(self) -> bool:
        return self.operator is not None or self.reader is not None

    def role_of(self, key: str) -> str | None:
        given = key.encode("utf-8", "surrogateescape")
        role = None  # compare with both, always: the time taken says nothing of the key
        if self.reader is not None and hmac.compare_digest(given, self.reader.encode()):
            role = READER
        if self.operator is not None and hmac.compare_digest(given, self.operator.encode()):
            role = OPERATOR
        return role

    def secret(self) -> bytes:
        """The session-signing secret, derived from both keys."""
        material = f"{self.operator or ''}\x00{self.reader or ''}".encode()
        return hashlib.sha256(b"orchestrator-session\x00" + material).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_session(keys: Keys, role: str, name: str) -> tuple[str, str]:
    """A signed session cookie value and its CSRF token."""
    csrf = secrets.token_urlsafe(24)
    claims = {"role": role, "name": name, "csrf": csrf, "exp": int(time.time()) + SESSION_SECONDS}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = _b64(hmac.new(keys.secret(), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}", csrf


def read_session(keys: Keys, value: str) -> dict[str, object] | None:
    """The claims of a valid, unexpired session cookie; None otherwise."""
    payload, _, signature = value.partition(".")
    expected = _b64(hmac.new(keys.secret(), payload.encode(), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    try:
        claims = json.loads(_unb64(payload))
    except ValueError:
        return None
    if not isinstance(claims, dict) or int(claims.get("exp", 0)) < time.time():
        return None
    if claims.get("role") not in (OPERATOR, READER):
        return None
    return claims


def keys_of(request: Request) -> Keys:
    keys: Keys = request.app.state.keys
    return keys


def _name(raw: str | None, fallback: str) -> str:
    name = (raw or "").strip()
    if not name or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return fallback
    return name[:MAX_ACTOR_CHARS]


def authenticate(request: Request) -> Principal:
    """Who calls: by bearer key, by session cookie, or (no key configured) a local caller.

    Raises:
        UnauthorizedError: a key is configured and none valid was given.
        ForbiddenError / CsrfError: a reader's unsafe request; a cookie POST without CSRF.
    """
    keys = keys_of(request)
    actor = request.headers.get(ACTOR_HEADER)
    if not keys.configured:
        principal = Principal(OPERATOR, _name(actor, "local"), "none")
    else:
        principal = _keyed(request, keys, actor)
    if request.method not in SAFE_METHODS and principal.role != OPERATOR:
        raise ForbiddenError(
            "this key is read-only: acting needs the operator key", role=principal.role
        )
    return principal


def _keyed(request: Request, keys: Keys, actor: str | None) -> Principal:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        role = keys.role_of(token.strip()) if scheme.lower() == "bearer" else None
        if role is None:
            raise UnauthorizedError("the bearer token is not valid for this service")
        return Principal(role, _name(actor, role), "bearer")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is None:
        raise UnauthorizedError(
            "this endpoint needs `Authorization: Bearer <api_key>` (or the console's login)"
        )
    claims = read_session(keys, cookie)
    if claims is None:
        raise UnauthorizedError("the session has expired or is not valid: log in again")
    if request.method not in SAFE_METHODS:
        token = request.headers.get(CSRF_HEADER, "")
        if not token or not hmac.compare_digest(token.encode(), str(claims["csrf"]).encode()):
            raise CsrfError(
                f"a state change from the console needs the {CSRF_HEADER} header "
                "(the value of the orchestrator_csrf cookie)"
            )
    return Principal(str(claims["role"]), str(claims["name"]), "session")


async def authorized(request: Request) -> Principal:
    """The protected endpoints' dependency: authenticate, then make the caller the one the
    audit log records for the operator calls the endpoint makes (set in the request's own
    context, which ends with it)."""
    principal = authenticate(request)
    surface = request.headers.get(SURFACE_HEADER, "").strip().lower()
    if surface not in REMOTE_SURFACES:
        surface = "console" if principal.auth == "session" else "http"
    set_actor(Actor(principal.name, role=principal.role, surface=surface))
    return principal


PrincipalDep = Annotated[Principal, Depends(authorized)]

# -- the console's login ----------------------------------------------------------------------

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False)


def _cookie_flags(request: Request) -> dict[str, object]:
    return {"path": "/", "samesite": "strict", "secure": request.url.scheme == "https"}


@router.post("/login")
async def login(request: Request) -> Response:
    """Exchange a key (and the operator's name) for a session: 303 to the console. The
    form is ``application/x-www-form-urlencoded`` (fields ``key`` and ``name``)."""
    keys = keys_of(request)
    try:
        fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    except ValueError:  # more fields than a login form has
        fields = {}
    key = (fields.get("key") or [""])[0][:4096]
    name = (fields.get("name") or [""])[0]
    base = request.scope.get("root_path", "")
    if not keys.configured:
        return RedirectResponse(f"{base}/console/", status_code=303)
    role = keys.role_of(key.strip())
    if role is None or not name.strip():
        reason = "name" if role is not None else "key"
        return RedirectResponse(f"{base}/console/login?error={reason}", status_code=303)
    value, csrf = issue_session(keys, role, _name(name, role))
    response = RedirectResponse(f"{base}/console/", status_code=303)
    flags = _cookie_flags(request)
    response.set_cookie(SESSION_COOKIE, value, max_age=SESSION_SECONDS, httponly=True, **flags)  # type: ignore[arg-type]
    response.set_cookie(CSRF_COOKIE, csrf, max_age=SESSION_SECONDS, httponly=False, **flags)  # type: ignore[arg-type]
    return response


@router.post("/logout")
async def logout(request: Request, _: PrincipalDep) -> Response:
    """End the session (a POST with the CSRF header, like every state change)."""
    base = request.scope.get("root_path", "")
    response = RedirectResponse(f"{base}/console/login", status_code=303)
    for cookie in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(cookie, path="/")
    return response


@router.get("/api/me")
async def me(request: Request, principal: PrincipalDep) -> JSONResponse:
    """Who the console's user is: role, name, how authenticated, the trace link template."""
    return JSONResponse(
        {
            "role": principal.role,
            "name": principal.name,
            "auth": principal.auth,
            "trace_url": request.app.state.config.view.trace_url,
        }
    )
