"""/docs works offline: Swagger UI's files come from the service, public even with an api_key."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from orchestrator.http import create_app
from tests.http.conftest import start_server
from tests.http.service_app import build_orchestrator

pytestmark = pytest.mark.postgres

_REFERENCES = re.compile(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""")
_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


async def _check_docs(http: httpx.AsyncClient, prefix: str = "") -> None:
    page = await http.get(f"{prefix}/docs")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    references = _REFERENCES.findall(page.text)
    assert references, page.text
    external = [r for r in references if "//" in r]
    assert external == [], external  # no CDN, no validator badge, no remote favicon
    assert "validatorUrl" in page.text and '"validatorUrl": null' in page.text
    assets = {r.rsplit("/", 1)[1]: r for r in references if "/docs/static/" in r}
    assert set(assets) == set(_TYPES), references
    for name, url in assets.items():
        assert url == f"{prefix}/docs/static/{name}"
        asset = await http.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(_TYPES[name]), asset.headers
        assert len(asset.content) > 500
    assert f"{prefix}/openapi.json" in references
    assert (await http.get(f"{prefix}/openapi.json")).status_code == 200
    assert (await http.get(f"{prefix}/docs/oauth2-redirect")).status_code == 200
    assert (await http.get(f"{prefix}/redoc")).status_code == 404  # ReDoc needs a CDN: off


async def test_docs_and_their_assets_are_served_locally_and_publicly(
    anonymous: httpx.AsyncClient,
) -> None:
    await _check_docs(anonymous)  # the service has an api_key; the docs stay public
    schema = (await anonymous.get("/openapi.json")).json()
    assert not any(path.startswith("/docs") for path in schema["paths"])
    license_text = await anonymous.get("/docs/static/LICENSE")
    assert license_text.status_code == 200 and "Apache License" in license_text.text


async def test_docs_of_a_mounted_service_point_under_its_prefix(postgres_url: str) -> None:
    host = FastAPI()
    host.mount("/orch", create_app(build_orchestrator(postgres_url)))
    server = start_server(host)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            await _check_docs(http, "/orch")
    finally:
        server.stop()
