"""Shared test fixtures: databases and stores (below), engine fixtures (added by the engine)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import Orchestrator
from orchestrator.store import PostgresStore, Store, create_store
from tests import databases

# =========================================================================== store fixtures
# PostgreSQL isolation: one migrated template database per test session (per xdist worker),
# copied into a database of its own per test and reset to the template's state afterwards for
# a later test (tests/databases.py says why and how it proves the reset).

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
SKIP_POSTGRES = os.environ.get("ORCH_TEST_SKIP_POSTGRES") == "1"


def url_for_database(admin_url: str, database: str) -> str:
    """``admin_url`` pointing at another database on the same server."""
    return databases.url_for_database(admin_url, database)


def create_database(name: str, *, template: str | None = None) -> str:
    """Create database ``name`` (optionally copying ``template``) and return its URL."""
    return databases.create_database(ADMIN_URL, name, template=template)


def drop_database(name: str) -> None:
    """Drop database ``name``, disconnecting whoever is still on it."""
    databases.drop_database(ADMIN_URL, name)


def _skip_without_postgres() -> None:
    if SKIP_POSTGRES:
        pytest.skip("PostgreSQL tests disabled (ORCH_TEST_SKIP_POSTGRES=1)")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """The name of a database migrated by PostgresStore, to copy per test."""
    _skip_without_postgres()
    name = f"orch_tmpl_{os.getpid()}"
    drop_database(name)
    url = create_database(name)

    async def migrate() -> None:
        store = PostgresStore(url)
        await store.open()
        await store.close()

    try:
        asyncio.run(migrate())
        yield name
    finally:
        drop_database(name)


@pytest.fixture(scope="session")
def pg_databases(pg_template: str) -> Iterator[databases.DatabasePool]:
    """Copies of the template, reset between tests (tests/databases.py)."""
    pool = databases.DatabasePool(ADMIN_URL, pg_template)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def postgres_url(pg_databases: databases.DatabasePool) -> Iterator[str]:
    """A migrated PostgreSQL database (schema "orchestrator") in the template's state, for
    this test alone."""
    name = pg_databases.take()
    try:
        yield url_for_database(ADMIN_URL, name)
    finally:
        pg_databases.give_back(name)


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database with nothing in it (not copied from the template)."""
    _skip_without_postgres()
    name = f"orch_e_{uuid.uuid4().hex[:16]}"
    url = create_database(name)
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each store: an SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/orch.db"
    _skip_without_postgres()
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """An opened store on ``database_url``, closed after the test."""
    opened = create_store(database_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


# ========================================================================== engine fixtures

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
