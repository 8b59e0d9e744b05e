"""Property-based API tests: schemathesis cases from the live service's OpenAPI document.

Every operation gets SCHEMATHESIS_MAX_EXAMPLES generated cases (default 250, as `make test`
runs them: a pytest of their own in two xdist processes beside the rest of the suite, see
scripts/test.sh; `make fuzz` runs 2,000; SCHEMATHESIS_MAX_EXAMPLES=50 for a quick local run).
The service runs in its own process (tests/http/fuzz_server.py), so generating cases and
answering them use both cores.
SCHEMATHESIS_COVERAGE=1 (as `make fuzz` sets it) adds schemathesis's coverage phase: ~2,100
deterministic boundary cases (every enum value, lengths at and past each limit, missing and
wrong-typed fields). It is off in `make test`, where it cost ~30 of the suite's ~900 CPU
seconds; the 250 generated cases per operation there draw from positive and negative data.
Checked: no 5xx, documented status codes and content types, bodies that fit their schemas.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
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

from orchestrator.cli.stack import free_port
from orchestrator.http import create_app
from tests.http.conftest import API_KEY, MAX_BODY_BYTES, database_from
from tests.http.service_app import build_orchestrator
from tests.http.webhook_sources import SOURCES
from tests.processes import ROOT, stop, wait_healthy

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "250"))
# One operation's cases run as one test: its time limit grows with their number (the suite's
# 300 s holds 250; `make fuzz`'s 2,000 of a long-polling operation on a busy machine took more).
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(max(300, MAX_EXAMPLES // 2))]
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
    session = requests.Session()
    session.trust_env = False  # loopback only: no proxy lookup in os.environ per request
    return session


@dataclass(frozen=True)
class FuzzServer:
    base_url: str


@pytest.fixture(scope="module")
def fuzz_database(pg_template: str) -> Iterator[str]:
    """The fuzzed server's own database. Not the other HTTP tests' (http_database): its
    process runs the same application (executor id ``http-tests``), so on their database it
    would recover their live server's workflows as its own and leave them stranded when it
    stops, and its workflows would show in their readiness and listings."""
    with database_from(pg_template, "orch_fuzz") as url:
        yield url


@pytest.fixture(scope="module")
def fuzz_server(fuzz_database: str) -> Iterator[FuzzServer]:
    """The service (tests/http/fuzz_server.py) in its own process on a free loopback port."""
    port = free_port()
    argv = [sys.executable, "-m", "tests.http.fuzz_server", "--database-url", fuzz_database]
    process = subprocess.Popen([*argv, "--port", str(port)], cwd=ROOT)
    try:
        server = FuzzServer(f"http://127.0.0.1:{port}")
        wait_healthy(server.base_url, process)
        yield server
    finally:
        stop(process)
        if process.returncode not in (0, -signal.SIGTERM):
            pytest.fail(f"the fuzzed server exited with {process.returncode}")


schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.phases.coverage.enabled = os.environ.get("SCHEMATHESIS_COVERAGE") == "1"


def test_the_live_server_serves_this_document(fuzz_server: FuzzServer) -> None:
    assert httpx.get(f"{fuzz_server.base_url}/openapi.json").json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors_and_responses_fit_the_schema(
    case: schemathesis.Case, fuzz_server: FuzzServer, session: requests.Session
) -> None:
    response = case.call(base_url=fuzz_server.base_url, session=session, headers=AUTH, timeout=30)
    case.validate_response(response, checks=CHECKS)
