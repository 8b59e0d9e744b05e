"""Fake outbound HTTP services for a test (#19): respx routes whose every answered request is
recorded in a ``Ledger`` under the request's ``Idempotency-Key``, so ``explore`` and a test's
own assertions can check that each effect was applied exactly once.

The fakes behave as an idempotent server does: a request carrying an ``Idempotency-Key`` is
applied once per key and effect (``Ledger.apply_once``); one without a key has nothing to be
deduplicated by, so it is applied every time (``Ledger.apply`` under the key ``""``), which is
what an exactly-once check reports. The effect is ``"<METHOD> <path>"``, e.g.
``"POST /charges"``. Only requests a route answered with a status below 400 are recorded: an
error answer or a raised error models a service that did not apply the request.

Needs respx: ``pip install 'saga-orchestrator[testing]'``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx
import respx
from respx.models import ResolvedRoute, Route

from orchestrator.outbound import IDEMPOTENCY_HEADER
from orchestrator.testing.ledger import Ledger


def effect_of(request: httpx.Request) -> str:
    """The effect a request applies, as the ledger names it: ``"<METHOD> <path>"``."""
    return f"{request.method} {request.url.path}"


class _LedgerRouter(respx.MockRouter):
    """A respx router that records each request it answers into a ledger."""

    def __init__(self, ledger: Ledger, **settings: Any) -> None:
        super().__init__(**settings)
        self.ledger = ledger

    def resolve(self, request: httpx.Request) -> ResolvedRoute:
        resolved = super().resolve(request)
        self._record(request, resolved)
        return resolved

    async def aresolve(self, request: httpx.Request) -> ResolvedRoute:
        resolved = await super().aresolve(request)
        self._record(request, resolved)
        return resolved

    def _record(self, request: httpx.Request, resolved: ResolvedRoute) -> None:
        response = resolved.response
        if resolved.route is None or not isinstance(response, httpx.Response):
            return  # not answered by a route (a pass-through)
        if response.status_code >= 400:
            return
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            self.ledger.apply(effect_of(request), key="")
        else:
            self.ledger.apply_once(effect_of(request), key=key)


class HttpFakes:
    """Fake HTTP endpoints for the length of a test (the ``http_fakes`` fixture).

    Route endpoints as with respx (``fakes.post("https://payments.test/charges")
    .respond(201, json={"id": "ch_1"})``, or a ``side_effect`` function); a request that
    matches no route fails the call (no real network in tests). Every answered request is
    recorded in ``ledger`` (see the module doc).

    Args:
        ledger: where applied effects are recorded.
        base_url: prefix of the routes' URLs (respx's ``base_url``).
    """

    def __init__(self, ledger: Ledger, *, base_url: str | None = None) -> None:
        self.ledger = ledger
        self.router: respx.MockRouter = _LedgerRouter(
            ledger, assert_all_called=False, assert_all_mocked=True, base_url=base_url
        )

    def __enter__(self) -> HttpFakes:
        self.router.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.router.__exit__(exc_type, exc, traceback)

    def route(self, *patterns: Any, **lookups: Any) -> Route:
        """A route by respx patterns and lookups (``method=``, ``url__regex=``, ...)."""
        return self.router.route(*patterns, **lookups)

    def get(self, url: str | None = None, **lookups: Any) -> Route:
        return self.router.get(url, **lookups)

    def post(self, url: str | None = None, **lookups: Any) -> Route:
        return self.router.post(url, **lookups)

    def put(self, url: str | None = None, **lookups: Any) -> Route:
        return self.router.put(url, **lookups)

    def patch(self, url: str | None = None, **lookups: Any) -> Route:
        return self.router.patch(url, **lookups)

    def delete(self, url: str | None = None, **lookups: Any) -> Route:
        return self.router.delete(url, **lookups)

    @property
    def requests(self) -> list[httpx.Request]:
        """Every request a route matched, in order (a request no route matches raises
        respx's ``AllMockedAssertionError`` instead of being sent)."""
        return [call.request for call in self.router.calls]
