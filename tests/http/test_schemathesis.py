"""Property-based API tests: schemathesis cases from the live service's OpenAPI document.

Every operation gets SCHEMATHESIS_MAX_EXAMPLES generated cases (default 150 to keep the HTTP
suite within its time budget; the release check runs 1000: SCHEMATHESIS_MAX_EXAMPLES=1000).
Checked: no 5xx, documented status codes and content types, bodies that fit their schemas.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from orchestrator.http import create_app
from tests.http.conftest import API_KEY, MAX_BODY_BYTES, LiveServer, start_server
from tests.http.service_app import build_orchestrator
from tests.http.webhook_sources import SOURCES

pytestmark = pytest.mark.postgres

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "150"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _document() -> dict[str, Any]:
    """The service's OpenAPI document, built like the live server's (nothing connects)."""
    orchestrator = build_orchestrator("postgresql://127.0.0.1:1/unused")
    service = create_app(
        orchestrator, api_key=API_KEY, max_body_bytes=MAX_BODY_BYTES, webhooks=SOURCES
    )
    return service.openapi()


DOCUMENT = _document()


@pytest.fixture(scope="session")
def session() -> requests.Session:
    return requests.Session()


@pytest.fixture(scope="module")
def fuzz_server(http_database: str) -> Iterator[LiveServer]:
    """The service as the live_server fixture builds it, but with long polls capped at 50 ms:
    generated timeouts would otherwise hold each case for seconds."""
    service = create_app(
        build_orchestrator(http_database),
        api_key=API_KEY,
        max_body_bytes=MAX_BODY_BYTES,
        max_wait_seconds=0.05,
        webhooks=SOURCES,
    )
    server = start_server(service)
    try:
        yield server
    finally:
        server.stop()


schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_live_server_serves_this_document(fuzz_server: LiveServer) -> None:
    assert httpx.get(f"{fuzz_server.base_url}/openapi.json").json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors_and_responses_fit_the_schema(
    case: schemathesis.Case, fuzz_server: LiveServer, session: requests.Session
) -> None:
    response = case.call(base_url=fuzz_server.base_url, session=session, headers=AUTH, timeout=30)
    case.validate_response(response, checks=CHECKS)
