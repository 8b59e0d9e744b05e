"""Routes of the console's files: the app shell, the login form and the static assets."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

STATIC_DIR = Path(__file__).parent / "static"

# No inline script or style, nothing from another origin; the console is never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate: an upgraded service serves its own files
}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The files that may be served, listed once: a request names one of them or gets 404, so no
# path a client sends is ever joined to a directory.
ASSETS = {
    path.name: path
    for path in sorted(STATIC_DIR.iterdir())
    if path.is_file() and path.suffix in MEDIA_TYPES
}

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False)


def _file(name: str) -> FileResponse:
    path = ASSETS[name]
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS)


def root_redirect(request: Request) -> RedirectResponse:
    """``/`` (and ``/console``) -> the console, under the service's mount prefix, if any."""
    return RedirectResponse(f"{request.scope.get('root_path', '')}/console/", status_code=307)


router.add_api_route("", root_redirect, methods=["GET"])


@router.get("/")
async def index() -> Response:
    """The console's single page; its hash routes (#/workflows, ...) are drawn by app.js."""
    return _file("index.html")


@router.get("/login")
async def login_form() -> Response:
    """The login form; it posts ``key`` and ``name`` to ``POST /console/login``."""
    return _file("login.html")


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    """One of the console's static files (JS modules, CSS)."""
    if name not in ASSETS:
        raise HTTPException(404, f"the console has no file {name!r}")
    return _file(name)
