"""The pytest plugin of ``orchestrator.testing`` (registered as the ``pytest11`` entry point
``orchestrator``): fixtures for testing users' sagas (docs/testing.md). Each fixture does
nothing until a test asks for it.

- ``orchestrator_database_url``: a fresh database per test: an SQLite file in ``tmp_path``;
  with ``--orchestrator-database-url postgresql://…`` (or ``ORCHESTRATOR_TEST_DATABASE_URL``)
  a database created on that server for the test and dropped after it.
- ``orchestrator_build``: override it: a callable ``(database_url) -> Orchestrator`` that
  builds your application (its workflows registered) on the given database.
- ``orchestrator_app``: that application launched before the test, shut down after it.
- ``orchestrator_app_factory``: ``make(build)`` builds more applications on the test's
  database (two releases of the code, say); each is shut down after the test.
- ``ledger``: a fresh ``Ledger``; ``http_fakes``: fake HTTP endpoints recording into it.

The async fixtures need pytest-asyncio (``asyncio_mode = "auto"``, or mark the tests
``@pytest.mark.asyncio``); ``http_fakes`` needs respx: the ``testing`` extra brings both.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import pytest

from orchestrator.app import Orchestrator
from orchestrator.testing.ledger import Ledger

if TYPE_CHECKING:
    from orchestrator.testing.http_fakes import HttpFakes

try:
    from pytest_asyncio import fixture as async_fixture
except ImportError:  # the plugin loads inert; the async fixtures say what is missing
    async_fixture = pytest.fixture  # type: ignore[assignment]

DATABASE_URL_OPTION = "--orchestrator-database-url"
DATABASE_URL_ENV = "ORCHESTRATOR_TEST_DATABASE_URL"
EXTRA = "pip install 'saga-orchestrator[testing]'"

Build = Callable[[str], Orchestrator]
AppFactory = Callable[[Build], Orchestrator]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("orchestrator", "saga-orchestrator (orchestrator.testing)")
    group.addoption(
        DATABASE_URL_OPTION,
        default=None,
        metavar="URL",
        help="a PostgreSQL server URL (postgresql://user@host:port/db): each test that uses "
        "orchestrator_database_url gets a fresh database created there and dropped after "
        f"(default: ${DATABASE_URL_ENV}, else an SQLite file per test)",
    )


def _server_url(config: pytest.Config) -> str | None:
    url: str | None = config.getoption(DATABASE_URL_OPTION) or os.environ.get(DATABASE_URL_ENV)
    if not url or url == "sqlite":
        return None
    if not url.startswith(("postgresql://", "postgres://")):
        raise pytest.UsageError(
            f"{DATABASE_URL_OPTION} takes a PostgreSQL server URL (postgresql://…) on which "
            "each test creates its own database; leave it unset for SQLite"
        )
    return url


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def _execute(server_url: str, statement: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    query = sql.SQL(statement).format(sql.Identifier(database))
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(query)


@pytest.fixture
def orchestrator_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database for this test: an SQLite file under ``tmp_path``, or a PostgreSQL
    database created for it (``--orchestrator-database-url``) and dropped after it."""
    server = _server_url(request.config)
    if server is None:
        yield f"sqlite:///{tmp_path}/orchestrator.db"
        return
    database = f"orchestrator_test_{uuid.uuid4().hex[:16]}"
    _execute(server, "CREATE DATABASE {}", database)
    try:
        yield _with_database(server, database)
    finally:
        _execute(server, "DROP DATABASE IF EXISTS {} WITH (FORCE)", database)


@pytest.fixture
def orchestrator_build() -> Build:
    """Override this fixture (in your conftest.py): return a callable that builds your
    application on the database URL it is given, with your workflows registered."""
    raise pytest.UsageError(
        "orchestrator_app needs your application: define a fixture named orchestrator_build "
        "in conftest.py returning a callable (database_url) -> Orchestrator, e.g. "
        "`return lambda url: build_app(url)` (docs/testing.md)"
    )


@async_fixture
async def orchestrator_app_factory(orchestrator_database_url: str) -> AsyncIterator[AppFactory]:
    """``make(build)``: ``build(database_url)`` on this test's database, not launched
    (``async with app`` or ``await app.launch()``); every one is shut down after the test."""
    apps: list[Orchestrator] = []

    def make(build: Build) -> Orchestrator:
        app = build(orchestrator_database_url)
        if not isinstance(app, Orchestrator):
            raise TypeError(f"the build callable returned {type(app).__name__}, not Orchestrator")
        apps.append(app)
        return app

    yield make
    for app in reversed(apps):
        await app.shutdown(timeout=0)  # running workflows stop; nothing waits for them


@async_fixture
async def orchestrator_app(
    orchestrator_build: Build, orchestrator_app_factory: AppFactory
) -> AsyncIterator[Orchestrator]:
    """Your application (``orchestrator_build``) on a fresh database, launched for the test
    and shut down after it. Built with ``time_skipping_app`` (a ``TimeSkippingClock``), its
    waits skip time automatically during the test."""
    from orchestrator.testing.timeskip import TimeSkippingClock, skip_time

    app = orchestrator_app_factory(orchestrator_build)
    await app.launch()
    if isinstance(app.clock, TimeSkippingClock):
        async with skip_time(app):
            yield app
    else:
        yield app


@pytest.fixture
def ledger() -> Ledger:
    """A fresh Ledger: the effects this test's fakes apply."""
    return Ledger()


@pytest.fixture
def http_fakes(ledger: Ledger) -> Iterator[HttpFakes]:
    """Fake HTTP endpoints (respx) for this test; answered requests are recorded in
    ``ledger`` by their ``Idempotency-Key`` (orchestrator/testing/http_fakes.py)."""
    try:
        from orchestrator.testing.http_fakes import HttpFakes
    except ImportError as exc:
        raise pytest.UsageError(f"http_fakes needs respx ({exc}): {EXTRA}") from None
    with HttpFakes(ledger) as fakes:
        yield fakes
