"""An ASGI middleware that rejects request bodies above a size limit before reading them, and
bodies that arrive too slowly."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.errors import PayloadTooLargeError
from orchestrator.http.errors import RequestTimeoutError, error_body

# A request body over max_body_bytes and a stored value over max_payload_bytes are the one
# PayloadTooLargeError (413, ``payload_too_large``); ``detail["what"]`` tells them apart
# ("request body", "the input of workflow 'checkout'", ...).

BODY_CHUNK_TIMEOUT_SECONDS = 30.0  # the longest the service waits for the next body bytes


class BodyLimitMiddleware:
    """413 for bodies over ``max_body_bytes``: at once when ``Content-Length`` says so
    (nothing is read), else as soon as the streamed bytes pass the limit (chunked bodies).
    408 when the next part of a body takes longer than ``chunk_timeout`` seconds to arrive
    (a client trickling its body would hold the request open for ever).

    The app reads the body through the wrapped ``receive``; passing the limit raises
    PayloadTooLargeError, which the error handler turns into the JSON 413. If that error
    escapes (the response has not started), this middleware answers the 413 itself.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        chunk_timeout: float = BODY_CHUNK_TIMEOUT_SECONDS,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.chunk_timeout = chunk_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._reject(send, declared)
            return
        if declared == -1:
            await send_json(send, 400, error_body("bad_request", "invalid Content-Length"))
            return
        received = 0
        started = False
        body_done = False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body, receive() waits for a disconnect: no timeout
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.chunk_timeout)
            except TimeoutError:
                raise RequestTimeoutError(
                    f"the request body did not arrive within {self.chunk_timeout:g} s",
                    timeout=self.chunk_timeout,
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise self._error(received)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLargeError:
            if started:
                raise
            await self._reject(send, received)
        except RequestTimeoutError as error:
            if started:
                raise
            body = error_body(error.code, error.message, error.detail)
            await send_json(send, 408, body, close=True)

    def _error(self, size: int) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"the request body is larger than {self.max_body_bytes} bytes",
            what="request body",
            limit=self.max_body_bytes,
            size=size,
        )

    async def _reject(self, send: Send, size: int) -> None:
        error = self._error(size)
        body = error_body(error.code, error.message, error.detail)
        await send_json(send, 413, body, close=True)


def _content_length(scope: Scope) -> int | None:
    """The declared length; None if absent, -1 if it is not a non-negative integer."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            if not text.isdigit() or len(text) > 18:
                return -1 if not text.isdigit() else 10**18
            return int(text)
    return None


async def send_json(send: Send, status: int, body: dict[str, Any], *, close: bool = False) -> None:
    """Answer with a JSON body from a middleware (before the app responded)."""
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if close:  # the unread body must not be parsed as the next request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
