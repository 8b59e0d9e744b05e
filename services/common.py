"""What every sample service shares: the app factory with health, ledger and tracing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from services.database import Database
from services.ledger import Ledger, ledger_router
from services.telemetry import instrument


def service_app(
    name: str,
    db: Database,
    ledger: Ledger,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """A FastAPI app named ``name`` with ``/healthz``, ``/ledger`` and tracing; closes ``db``
    at shutdown."""

    @asynccontextmanager
    async def run(api: FastAPI) -> AsyncIterator[None]:
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan(api):
                    yield
        finally:
            db.close()

    api = FastAPI(title=f"{name} (sample service)", version="1", lifespan=run)

    @api.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "service": name, "database": db.dialect}

    api.include_router(ledger_router(ledger))
    instrument(api, name)
    return api
