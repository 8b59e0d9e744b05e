"""Named queries and migrations: both dialects agree, and migrations apply from empty, once."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from orchestrator.store import PostgresStore, SQLiteStore
from orchestrator.store.migrate import available_migrations, sqlite_statements
from orchestrator.store.postgres import PLANNED_EACH_TIME
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
    "deliver_messages_batch",
    "deliver_message_combined",
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


def _prepared(name: str, query: str) -> str:
    """``PREPARE name AS query`` with the query's named parameters as $1, $2 … in order of
    first appearance (each is cast in the query, so PostgreSQL infers its type)."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in order:
            order.append(match.group(1))
        return f"${order.index(match.group(1)) + 1}"

    return f"PREPARE {name} AS " + re.sub(r"%\((\w+)\)[sb]", number, query)


TWO_NULLS = "ARRAY[NULL, NULL]::text[]"
ZEROS = "ARRAY[0, 0]::bigint[]"
GROWING = [
    (
        "deliver_messages_batch",
        "ARRAY['w1', 'w2'], ARRAY['t', 't'], ARRAY['1', '2'], ARRAY['k1', 'k2'], ARRAY[1, 1],"
        f" ARRAY['recv', 'recv'], ARRAY['RECV', 'RECV'], {ZEROS}, {ZEROS}",
    ),
    ("deliver_message_combined", "'w1', 'k1', 't', 1, 'recv', 'RECV', '1', 0, 0"),
    (
        "send_messages_batch",
        "ARRAY['w1', 'w2'], ARRAY['t', 't'], ARRAY['1', '2'], ARRAY['k1', NULL]",
    ),
    (
        "recv_messages_batch",
        f"ARRAY['w1', 'w2'], ARRAY['t', 't'], ARRAY[1, 1], ARRAY['recv', 'recv'],"
        f" ARRAY['recv', 'recv'], {ZEROS}, {ZEROS}, ARRAY['recv.deadline', NULL],"
        f" ARRAY['SLEEP', NULL], ARRAY['0', NULL], {ZEROS}",
    ),
    (
        "record_steps_batch",
        f"ARRAY['w1', 'w2'], ARRAY[1, 1], ARRAY['s', 's'], ARRAY['step', 'step'], {TWO_NULLS},"
        f" {TWO_NULLS}, ARRAY[1, 1], {TWO_NULLS}, {TWO_NULLS}, {TWO_NULLS},"
        f" ARRAY[NULL, NULL]::integer[], {ZEROS}, ARRAY[NULL, NULL]::bigint[], {ZEROS},"
        f" {TWO_NULLS}",
    ),
    (
        "finish_workflows_batch",
        f"ARRAY['w1', 'w2'], ARRAY['SUCCESS', 'SUCCESS'], {TWO_NULLS}, {TWO_NULLS}, {ZEROS}",
    ),
]


@pytest.mark.postgres
@pytest.mark.parametrize(("statement", "arguments"), GROWING)
def test_a_plan_made_on_small_tables_still_looks_rows_up_once_they_grew(
    postgres_url: str, statement: str, arguments: str
) -> None:
    """Group commit's statements are prepared on each pooled connection by their fifth
    execution, on a fresh database while its tables are small, and PostgreSQL keeps that
    plan (those planned each time, PLANNED_EACH_TIME, see the tables as they are). Once the
    tables grew, each must still look its rows up by key, not read (or hash) a whole table
    or index on every execution: the send's EXISTS hashed the messages (23 ms a statement at
    100,000), the recv's lookup by message id alone read the unconsumed-message index (30-66
    ms at 60,000), the step's and the final status's joins read every workflow (10-16 ms)."""
    query = load_queries("postgres")[statement]
    mode = "force_custom_plan" if statement in PLANNED_EACH_TIME else "force_generic_plan"
    with psycopg.connect(postgres_url, options="-c search_path=orchestrator") as conn:
        conn.execute(f"SET plan_cache_mode = {mode}")
        conn.execute(
            "INSERT INTO workflows (workflow_id, name, status, input, created_at, updated_at)"
            " SELECT 'w' || i, 'w', 'PENDING', '{}', 0, 0 FROM generate_series(1, 20) AS i"
        )
        conn.execute(_prepared("probe", query))
        conn.execute(f"EXECUTE probe({arguments})")  # the plan, kept
        conn.execute(
            "INSERT INTO workflows (workflow_id, name, status, input, created_at, updated_at)"
            " SELECT 'g' || i, 'w', 'PENDING', '{}', 0, 0 FROM generate_series(1, 50000) AS i"
        )
        conn.execute(
            "INSERT INTO messages (destination_id, topic, payload, idempotency_key, created_at)"
            " SELECT 'g' || i, 't', '1', 'key' || i, 0 FROM generate_series(1, 50000) AS i"
        )
        rows = conn.execute(
            f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE probe({arguments})"
        ).fetchall()
        conn.rollback()
    plan = "\n".join(str(row[0]) for row in rows)
    for table in ("workflows", "messages", "steps"):
        assert f"Seq Scan on {table}" not in plan, plan
    # Nor a whole index: two rows' lookups touch a few dozen pages; reading every running
    # workflow, or every waiting message, several hundred.
    [pages] = re.findall(r"shared hit=(\d+)", plan)[:1]  # the statement's, at its root
    assert int(pages) < 200, plan
