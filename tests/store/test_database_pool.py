"""The test database pool (tests/databases.py): a reused database is in the template's state,
and one whose shape a test changed is dropped, never handed out again."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import ADMIN_URL, url_for_database
from tests.databases import DatabasePool

pytestmark = pytest.mark.postgres


def _exists(name: str) -> bool:
    with psycopg.connect(ADMIN_URL) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


def test_a_reused_database_is_empty_and_its_sequences_start_again(pg_template: str) -> None:
    pool = DatabasePool(ADMIN_URL, pg_template, prefix="orch_pool_")
    try:
        first = pool.take()
        with psycopg.connect(url_for_database(ADMIN_URL, first)) as conn:
            conn.execute(
                "INSERT INTO orchestrator.audit_log (at_ms, actor, surface, action)"
                " SELECT 1, 'a', 'cli', 'cancel' FROM generate_series(1, 500)"
            )
            conn.execute("ANALYZE orchestrator.audit_log")
        pool.give_back(first)
        assert pool.free == [first]

        second = pool.take()
        assert second != first and not _exists(first)  # renamed, not copied
        with psycopg.connect(url_for_database(ADMIN_URL, second)) as conn:
            assert conn.execute("SELECT count(*) FROM orchestrator.audit_log").fetchone() == (0,)
            (next_id,) = conn.execute(
                "SELECT nextval('orchestrator.audit_log_id_seq')"
            ).fetchone() or (None,)
            assert next_id == 1
            (analyzed,) = conn.execute(
                "SELECT count(*) FROM pg_statistic"
                " WHERE starelid = 'orchestrator.audit_log'::regclass"
            ).fetchone() or (None,)
            assert analyzed == 0
            versions = conn.execute("SELECT count(*) FROM orchestrator.schema_migrations")
            assert versions.fetchone() != (0,)  # the migration log is kept
        pool.give_back(second)
    finally:
        pool.close()


def test_a_database_whose_schema_changed_is_dropped(pg_template: str) -> None:
    pool = DatabasePool(ADMIN_URL, pg_template, prefix="orch_pool_")
    try:
        name = pool.take()
        with psycopg.connect(url_for_database(ADMIN_URL, name)) as conn:
            conn.execute("ALTER TABLE orchestrator.audit_log ADD COLUMN extra int")
        pool.give_back(name)
        assert pool.free == [] and not _exists(name)
    finally:
        pool.close()
