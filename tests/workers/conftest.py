"""Fixtures of the multi-process worker tests: a fleet of real worker processes on one fresh
PostgreSQL database, the journal they write, and a client application for the test itself.

The client registers stubs of the workers' workflow names (to start them by name) and declares
the queues with ``dequeue=False``: it enqueues, and never runs anything itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import Orchestrator
from tests.workers import CLIENT_VERSION, POISON, QUEUES, WORKFLOWS, Fleet, Journal


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "ledger.db")


@pytest.fixture
def fleet(postgres_url: str, journal: Journal, tmp_path: Path) -> Iterator[Fleet]:
    """Worker processes on ``postgres_url``; every one is stopped when the test ends."""
    workers = Fleet(postgres_url, Path(journal.path), tmp_path)
    try:
        yield workers
    finally:
        workers.close()


@pytest.fixture
async def client(postgres_url: str) -> AsyncIterator[Orchestrator]:
    """The test's own application: starts the workers' workflows by name, never runs them."""
    app = Orchestrator(
        "workers", postgres_url, executor_id="test-client", app_version=CLIENT_VERSION
    )
    for name in (*WORKFLOWS, POISON):
        _stub(app, name)
    for name, options in QUEUES.items():
        app.queue(name, **options, dequeue=False)
    async with app:
        yield app


def _stub(app: Orchestrator, name: str) -> None:
    async def stub(*args: Any) -> Any:
        raise AssertionError(f"workflow {name} must run on a worker, not in the test client")

    app.workflow(name=name)(stub)
