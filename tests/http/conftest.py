"""HTTP fixtures: one real uvicorn server (loopback, free port) over a PostgreSQL database."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from psycopg import sql

from orchestrator.http import create_app
from tests.http.service_app import build_orchestrator

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
API_KEY = "test-api-key"
MAX_BODY_BYTES = 64 * 1024


def _execute(query: sql.Composable) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(query)


@dataclass
class LiveServer:
    """A uvicorn server running in a background thread."""

    server: uvicorn.Server
    thread: threading.Thread
    base_url: str

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_server(api: FastAPI) -> LiveServer:
    """Serve ``api`` on 127.0.0.1 (a free port) in a thread; returns once it accepts."""
    config = uvicorn.Config(api, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return LiveServer(server, thread, f"http://127.0.0.1:{port}")


@contextmanager
def database_from(template: str, prefix: str) -> Iterator[str]:
    """A migrated database copied from ``template`` (its URL), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    )
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def http_database(pg_template: str) -> Iterator[str]:
    """One migrated database shared by the HTTP tests (they use distinct workflow ids)."""
    with database_from(pg_template, "orch_http") as url:
        yield url


@pytest.fixture(scope="session")
def live_server(http_database: str) -> Iterator[LiveServer]:
    """The service under test: bearer api_key, 64 KiB body limit, 5 s long-poll cap."""
    from tests.http.webhook_sources import SOURCES

    app = build_orchestrator(http_database)
    api = create_app(
        app,
        api_key=API_KEY,
        max_body_bytes=MAX_BODY_BYTES,
        max_wait_seconds=5.0,
        webhooks=SOURCES,
    )
    server = start_server(api)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """An authorized client of the live server."""
    async with httpx.AsyncClient(
        base_url=live_server.base_url,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    ) as http:
        yield http


@pytest.fixture
async def anonymous(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client without the bearer token."""
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
        yield http


def new_id(prefix: str = "wf") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
