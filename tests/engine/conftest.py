"""Engine fixtures: apps on the parametrized store (sqlite and postgres in the same run)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from orchestrator import Orchestrator

AppFactory = Callable[..., Orchestrator]


@pytest.fixture
async def make_app(database_url: str) -> AsyncIterator[AppFactory]:
    """Build Orchestrators on this test's database; every one is shut down afterwards."""
    apps: list[Orchestrator] = []

    def make(**kwargs: Any) -> Orchestrator:
        kwargs.setdefault("app_version", "test")
        app = Orchestrator("test", database_url, **kwargs)
        apps.append(app)
        return app

    yield make
    for app in apps:
        if app.engine.launched:
            await app.shutdown(timeout=0)
