"""The service against attackers and careless clients (issue #15): a key-less service on
loopback refuses what a web page could forge (CSRF, DNS rebinding); headers, bodies and
connections are bounded; event streams send heartbeats and do not hold a stopping server;
values that could not be read back are refused at the door; arguments keep their places."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from orchestrator.http import create_app
from orchestrator.http.server import HeaderTimeoutProtocol, SupervisedServer, server_config
from tests.http.service_app import build_orchestrator


class Running:
    def __init__(self, server: SupervisedServer, thread: threading.Thread, port: int) -> None:
        self.server, self.thread, self.port = server, thread, port
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> float:
        """Stop it; how long it took."""
        began = time.monotonic()
        self.server.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the server did not stop"
        return time.monotonic() - began


def serve_in_thread(api: FastAPI, **options: Any) -> Running:
    server = SupervisedServer(server_config(api, "127.0.0.1", 0, lifespan="on", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    return Running(server, thread, server.servers[0].sockets[0].getsockname()[1])


class FastHeaderTimeout(HeaderTimeoutProtocol):
    header_timeout = 0.5


@pytest.fixture
def keyless(tmp_path: Path) -> Iterator[Running]:
    """The test service without an api_key (as `saga up` runs it on 127.0.0.1)."""
    app = build_orchestrator(f"sqlite:///{tmp_path}/hostile.db")
    api = create_app(app, stream_heartbeat_seconds=0.2, body_timeout_seconds=0.5)
    running = serve_in_thread(
        api, http=FastHeaderTimeout, limit_concurrency=4, timeout_graceful_shutdown=1
    )
    try:
        yield running
    finally:
        if running.thread.is_alive():
            running.stop()


def raw(port: int, data: bytes, *, wait: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection; everything answered until it closes (or ``wait``)."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        try:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            pass  # closed on us (what a refused request may get), or nothing more came
    return b"".join(chunks)


def test_a_keyless_service_refuses_what_a_web_page_could_forge(keyless: Running) -> None:
    with httpx.Client(base_url=keyless.url, timeout=10) as http:
        body = '{"a": 1}'
        for content_type in ("text/plain", "application/x-www-form-urlencoded"):
            refused = http.post(
                "/workflows/add", content=body, headers={"content-type": content_type}
            )
            assert refused.status_code == 415, refused.text
            assert refused.json()["error"] == "unsupported_media_type"
        # From another site (a page's fetch, a form): refused, whatever the body.
        for headers in (
            {"origin": "https://evil.example"},
            {"sec-fetch-site": "cross-site"},
            {"origin": "null"},
        ):
            refused = http.post("/workflows/add", json={"a": 1}, headers=headers)
            assert refused.status_code == 403, (headers, refused.text)
            assert refused.json()["error"] == "forbidden_origin"
        refused = http.post("/workflows/nope/cancel", headers={"origin": "https://evil.example"})
        assert refused.status_code == 403
        # DNS rebinding: the attacker's host name, pointing at 127.0.0.1.
        rebound = http.get("/workflows", headers={"host": "evil.example:8000"})
        assert rebound.status_code == 403 and rebound.json()["error"] == "forbidden_origin"
        # What a local client sends is accepted: JSON, a loopback origin, a loopback host.
        local = {"origin": f"http://localhost:{keyless.port + 1}"}
        accepted = http.post("/workflows/add", json={"a": 1}, headers=local)
        assert accepted.status_code == 202, accepted.text
        assert http.get("/workflows", headers={"host": f"localhost:{keyless.port}"}).is_success
        # Webhooks check their own signatures: any content type reaches them (404: no source).
        hook = http.post("/webhooks/none", content="x=1", headers={"content-type": "text/plain"})
        assert hook.status_code == 404


def test_headers_bodies_and_connections_are_bounded(keyless: Running) -> None:
    # 1 MiB of headers: refused before they are all read.
    huge = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    answer = raw(keyless.port, huge)
    assert answer.startswith(b"HTTP/1.1 400") or answer == b"", answer[:200]
    # Headers trickling in: the connection is closed after the header timeout.
    began = time.monotonic()
    answer = raw(keyless.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", wait=10)
    assert answer == b"" and time.monotonic() - began < 5
    # A body that stops arriving: 408 after the body timeout, JSON.
    partial = (
        b"POST /workflows/add HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"a": '
    )
    answer = raw(keyless.port, partial, wait=10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b'"request_timeout"' in answer
    # Connections past the limit get 503 instead of piling up.
    held = [socket.create_connection(("127.0.0.1", keyless.port)) for _ in range(4)]
    try:
        time.sleep(0.2)
        answer = raw(keyless.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", wait=3)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
    finally:
        for sock in held:
            sock.close()


def test_an_event_stream_sends_heartbeats_and_does_not_hold_a_stopping_server(
    keyless: Running,
) -> None:
    with httpx.Client(base_url=keyless.url, timeout=10) as http:
        started = http.post("/workflows/waits", json={})
        assert started.status_code == 202, started.text
        workflow_id = started.json()["workflow_id"]
        lines: list[str] = []
        with http.stream("GET", f"/workflows/{workflow_id}/streams/progress") as stream:
            for line in stream.iter_lines():
                lines.append(line)
                if len(lines) >= 2:
                    break
            assert lines[0] == ": keep-alive", lines
            # The stream is still open: the server stops anyway, within its grace period.
            took = keyless.stop()
    assert took < 8, took


async def test_values_that_cannot_be_read_back_are_refused_at_the_door(
    keyless: Running,
) -> None:
    async with httpx.AsyncClient(base_url=keyless.url, timeout=10) as http:
        headers = {"content-type": "application/json"}
        surrogate = await http.post(
            "/workflows/echo", content=b'{"value": "\\ud800"}', headers=headers
        )
        assert surrogate.status_code == 400, surrogate.text
        assert surrogate.json()["error"] == "serialization_error"
        deep = "[" * 240 + "]" * 240
        nested = await http.post(
            "/workflows/echo", content=f'{{"value": {deep}}}'.encode(), headers=headers
        )
        assert nested.status_code == 400, nested.text
        # Nothing was stored: every listing and read still works.
        listing = await http.get("/workflows")
        assert listing.status_code == 200, listing.text
        assert listing.json()["items"] == []
        # Valid surrogate pairs (an emoji) are fine.
        emoji = await http.post("/workflows/echo", json={"value": "😀"})
        assert emoji.status_code == 202
        assert (await http.get("/workflows")).status_code == 200


async def test_a_later_argument_given_alone_keeps_its_place(keyless: Running) -> None:
    async with httpx.AsyncClient(base_url=keyless.url, timeout=10) as http:
        started = await http.post("/workflows/echo", json={"label": "L"})
        assert started.status_code == 202, started.text
        workflow_id = started.json()["workflow_id"]
        result = await http.get(f"/workflows/{workflow_id}/result", params={"timeout": 10})
        assert result.json()["output"] == {"value": None, "label": "L"}, result.text
