"""Fixtures of the PgBouncer tests: a private pgbouncer, and a migrated database behind it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import ADMIN_URL
from tests.pgbouncer import PgBouncer, pgbouncer_binary, set_search_path


@pytest.fixture
def pgbouncer() -> Iterator[PgBouncer]:
    """A pgbouncer process (pool_mode = transaction) of this test's, stopped after it."""
    pgbouncer_binary()  # skip first, before any database is made
    bouncer = PgBouncer(ADMIN_URL)
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture
def pooled_url(pgbouncer: PgBouncer, postgres_url: str) -> str:
    """``postgres_url``'s database (migrated) through ``pgbouncer``, its role's search_path
    set to the schema as docs/operations.md#pgbouncer says."""
    set_search_path(postgres_url)
    return pgbouncer.pooled(postgres_url)
