"""The service schemathesis fuzzes, as its own process: ``python -m tests.http.fuzz_server``.

A separate process lets hypothesis generate cases on one core while the server answers on the
other (in a thread they would share one GIL). Long polls are capped at 50 ms: generated
timeouts would otherwise hold each case for seconds.
"""

from __future__ import annotations

import argparse

import uvicorn

from orchestrator.http import create_app
from tests.http.conftest import API_KEY, MAX_BODY_BYTES
from tests.http.service_app import build_orchestrator
from tests.http.webhook_sources import SOURCES

MAX_WAIT_SECONDS = 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    service = create_app(
        build_orchestrator(options.database_url),
        api_key=API_KEY,
        max_body_bytes=MAX_BODY_BYTES,
        max_wait_seconds=MAX_WAIT_SECONDS,
        webhooks=SOURCES,
    )
    uvicorn.run(service, host="127.0.0.1", port=options.port, log_level="warning")


if __name__ == "__main__":
    main()
