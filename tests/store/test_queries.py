"""Named queries and migrations: both dialects agree, and migrations apply from empty, once."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from orchestrator.store import PostgresStore, SQLiteStore
from orchestrator.store.migrate import available_migrations, sqlite_statements
from orchestrator.store.queries import DIALECTS, load_queries, parse_queries

TABLES = {
    "workflows",
    "audit_log",
    "app_versions",
    "steps",
    "messages",
    "events",
    "streams",
    "schema_migrations",
    "workers",
    "schedules",
    "workflow_attributes",
    "pending_messages",
    "subject_keys",
}


# One-round-trip forms (data-modifying CTEs) of operations that SQLite, which has no DML in
# CTEs, runs as a multi-statement transaction built from the shared queries.
POSTGRES_ONLY = {
    "send_message_combined",
    "recv_message_combined",
    "set_event_combined",
    "record_steps_batch",  # group commit (orchestrator/store/batching.py)
    "finish_workflows_batch",
    "finish_after_step",
    "finish_after_steps_batch",
    "insert_workflows_batch",
    "send_messages_batch",
    "recv_messages_batch",
}


def test_dialects_define_the_same_queries() -> None:
    postgres, sqlite = (set(load_queries(dialect)) for dialect in DIALECTS)
    assert postgres - POSTGRES_ONLY == sqlite
    assert postgres >= POSTGRES_ONLY
    assert {"record_step", "insert_workflow", "consume_message"} <= postgres


def test_dialects_have_the_same_migrations() -> None:
    names = [[m.name for m in available_migrations(dialect)] for dialect in DIALECTS]
    assert names[0] == names[1]
    assert names[0][:2] == ["0001_initial", "0002_notify"]
    for dialect in DIALECTS:
        for migration in available_migrations(dialect):
            first_line = migration.sql.splitlines()[0]
            assert first_line.startswith(f"-- {migration.name}: "), first_line


def test_parse_queries() -> None:
    text = "-- preamble\n\n-- one --\n-- The first.\nSELECT 1\n\n-- two --\n-- The second.\nSELECT\n  2;\n"
    assert parse_queries(text) == {"one": "SELECT 1", "two": "SELECT\n  2;"}
    with pytest.raises(ValueError, match="description"):
        parse_queries("-- one --\nSELECT 1\n")
    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- one --\n-- a\nSELECT 1\n-- one --\n-- b\nSELECT 2\n")
    with pytest.raises(ValueError, match="no SQL"):
        parse_queries("-- one --\n-- a\n")
    with pytest.raises(ValueError, match="dialect"):
        load_queries("oracle")


def test_sqlite_statements_keep_trigger_bodies_whole() -> None:
    script = "-- c\nCREATE TABLE t (a); -- note\nCREATE TRIGGER x AFTER INSERT ON t\nBEGIN\n  SELECT 1;\n  SELECT 2;\nEND;\n"
    statements = list(sqlite_statements(script))
    assert len(statements) == 2 and statements[1].endswith("END;")


# -- SQLite ---------------------------------------------------------------------------------


@pytest.mark.sqlite
async def test_sqlite_migrates_from_empty_once(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "orch.db"  # parent directories are created
    store = SQLiteStore(str(path))
    await store.open()
    try:
        state = await store.migration_state()
        assert (
            state.applied
            == state.available
            == tuple(m.name for m in available_migrations("sqlite"))
        )
        assert await store.migrate() == []
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert tables >= TABLES
    assert versions == [m.version for m in available_migrations("sqlite")]
    assert journal == "wal"


@pytest.mark.sqlite
async def test_sqlite_concurrent_migrate(tmp_path: Path) -> None:
    path = str(tmp_path / "orch.db")
    stores = [SQLiteStore(path) for _ in range(5)]
    # open() migrates; each store has its own connection and thread, like separate processes.
    await asyncio.gather(*(store.open() for store in stores))
    try:
        states = await asyncio.gather(*(store.migration_state() for store in stores))
        assert all(state.pending == () for state in states)
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    with sqlite3.connect(path) as conn:
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    assert count == len(available_migrations("sqlite"))


# -- PostgreSQL -----------------------------------------------------------------------------


def applied_versions(url: str, schema: str = "orchestrator") -> list[int]:
    query = sql.SQL("SELECT version FROM {}.schema_migrations ORDER BY version")
    with psycopg.connect(url) as conn:
        rows = conn.execute(query.format(sql.Identifier(schema))).fetchall()
    return [row[0] for row in rows]


@pytest.mark.postgres
async def test_postgres_migrates_from_empty_once(empty_postgres_url: str) -> None:
    store = PostgresStore(empty_postgres_url)
    before = await store.migration_state()
    assert before.applied == () and before.pending == before.available
    applied = await store.migrate()
    assert applied == [m.name for m in available_migrations("postgres")]
    assert await store.migrate() == []
    state = await store.migration_state()
    assert state.applied == state.available and state.pending == ()
    assert applied_versions(empty_postgres_url) == [
        m.version for m in available_migrations("postgres")
    ]
    with psycopg.connect(empty_postgres_url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'orchestrator'"
        ).fetchall()
    assert {row[0] for row in rows} == TABLES


@pytest.mark.postgres
async def test_postgres_concurrent_migrate(empty_postgres_url: str) -> None:
    stores = [PostgresStore(empty_postgres_url) for _ in range(5)]
    results = await asyncio.gather(*(store.migrate() for store in stores))
    names = [name for result in results for name in result]
    assert sorted(names) == [m.name for m in available_migrations("postgres")]
    assert applied_versions(empty_postgres_url) == [
        m.version for m in available_migrations("postgres")
    ]
