"""The API docs page (Swagger UI at ``/docs``) served from this package, so it works offline.

FastAPI's own ``/docs`` loads Swagger UI from a CDN (and ``/redoc`` ReDoc): behind a firewall,
on a train or in an air-gapped cluster the page stays blank. The Swagger UI files are vendored
under ``static/swagger/`` (see its README for the version and how to update) and served at
``/docs/static/``; ``/redoc`` is not served. The docs and their assets are public, as the
OpenAPI document is, whatever the service's api_key.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_DIR = Path(__file__).parent / "static" / "swagger"
DOCS_PATH = "/docs"
STATIC_PATH = "/docs/static"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"


def install_docs(api: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` from the vendored files (create the app with
    ``docs_url=None, redoc_url=None``)."""
    api.mount(STATIC_PATH, StaticFiles(directory=SWAGGER_DIR), name="swagger-static")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")  # mounted under a prefix
        return get_swagger_ui_html(
            openapi_url=root + (api.openapi_url or "/openapi.json"),
            title=f"{api.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_PATH}/favicon-32x32.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_PATH,
            # No badge fetched from validator.swagger.io: nothing leaves the machine.
            swagger_ui_parameters={"validatorUrl": None},
        )

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    api.add_route(DOCS_PATH, swagger_ui, include_in_schema=False)
    api.add_route(OAUTH2_REDIRECT_PATH, oauth2_redirect, include_in_schema=False)
