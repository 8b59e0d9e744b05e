"""serve(): run the service with uvicorn, hardened, stopping gracefully on SIGTERM or SIGINT.

The service refuses to listen publicly without an api_key. Whatever the bind, the server is
set up against careless and hostile clients: request headers are capped (``MAX_HEADER_BYTES``)
and must arrive within ``HEADER_TIMEOUT_SECONDS``; connections and requests in progress are
capped (``MAX_CONNECTIONS``, then 503); idle keep-alive connections close. Request bodies are
capped and timed by ``BodyLimitMiddleware`` (limits.py).

SIGTERM (what Docker and Kubernetes send) and SIGINT stop it the same way: no new connection is
accepted, requests in progress get ``GRACE_SECONDS`` to finish (long polls and event streams
are then cut), the Orchestrator shuts down (steps in flight finish within its own grace and are
checkpointed; the rest is left to recovery), spans still buffered are exported, and the process
exits 0. uvicorn's own handling would re-raise the signal after its shutdown, which kills the
process before the span exporter flushes (exit -15, spans lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

from orchestrator.app import Orchestrator
from orchestrator.errors import ConfigurationError
from orchestrator.http.origins import is_loopback

MAX_HEADER_BYTES = 64 * 1024  # the request line and headers of one request
HEADER_TIMEOUT_SECONDS = 10.0  # from a connection's first byte (or its last response) on
MAX_CONNECTIONS = 1000  # open connections (and requests in progress) before 503s
KEEP_ALIVE_SECONDS = 5  # an idle keep-alive connection is closed after this
GRACE_SECONDS = 10  # for requests in progress when the server stops


def check_bind(host: str, api_key: str | None) -> None:
    """Raise ConfigurationError for a non-loopback ``host`` without an ``api_key``."""
    if api_key is None and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve on {host!r} without an api_key: anyone who can reach it could "
            "start and cancel workflows. Pass api_key=... (clients send `Authorization: Bearer "
            "<key>`), or bind to 127.0.0.1.",
            host=host,
        )


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers do not arrive in
    time (a slowloris client holds a connection by sending them a byte at a time)."""

    header_timeout: float = HEADER_TIMEOUT_SECONDS
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def _in_request(self) -> bool:
        """Whether a request's headers have arrived and its response is not complete."""
        cycle: RequestResponseCycle | None = self.cycle  # None before the first request
        return cycle is not None and not cycle.response_complete

    def data_received(self, data: bytes) -> None:
        if not self._in_request():
            self._arm_header_timer()  # bytes of a new request: its headers are timed
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self._in_request():
            self._disarm_header_timer()  # the headers arrived: the request runs

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self._in_request():
            self.transport.close()


def server_config(api: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn settings for the service (see the module docstring)."""
    settings: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "proxy_headers": False,
        "http": HeaderTimeoutProtocol,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "limit_concurrency": MAX_CONNECTIONS,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "timeout_graceful_shutdown": GRACE_SECONDS,
    }
    settings.update(options)
    return uvicorn.Config(api, **settings)


class Server(uvicorn.Server):
    """uvicorn that stops gracefully on SIGTERM and SIGINT and does not re-raise the signal
    afterwards (the process exits normally, so exit hooks such as span exporters run). A
    second signal while stopping forces the exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop)
        try:
            yield
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    def _stop(self) -> None:
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True


class SupervisedServer(uvicorn.Server):
    """uvicorn without any signal handling: a supervisor decides when it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(
    app: Orchestrator,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    **create_app_options: Any,
) -> None:
    """Serve ``app`` over HTTP until SIGTERM or SIGINT (blocking; the service launches the
    app and shuts it down), then flush buffered spans and return.

    Raises:
        ConfigurationError: ``host`` is not loopback and no ``api_key`` was given.
    """
    check_bind(host, api_key)
    from orchestrator.http.app import create_app
    from orchestrator.tracing import flush_tracing

    service = create_app(app, api_key=api_key, **create_app_options)
    server = Server(server_config(service, host, port, log_level="info", access_log=False))
    try:
        asyncio.run(server.serve())
    finally:
        flush_tracing(app.tracer_provider)
