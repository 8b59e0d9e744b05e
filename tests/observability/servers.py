"""Real servers on loopback for the observability tests: uvicorn in a thread, and the free port."""

from __future__ import annotations

import socket
import time
from typing import Any

from tests.http.conftest import LiveServer, start_server


def serve_in_thread(api: Any) -> LiveServer:
    """Serve ``api`` on 127.0.0.1 (a free port) in a thread, its lifespan on."""
    return start_server(api)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 30.0, process: Any = None) -> None:
    """Until ``url`` answers (a subprocess server is up), or fail with its output."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"server exited: {process.communicate()}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {timeout} s")
