"""Deleting workflows (#20): a finished saga with its children, every table emptied in one
transaction and the audit kept; running ones refused; an id used again; bulk deletion; the
retention policy; and the retention sweep over thousands of workflows run by several workers
at once (PostgreSQL): each deleted once, in bounded batches, nobody waiting on a lock."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from orchestrator import (
    ConfigurationError,
    Orchestrator,
    WorkflowFilter,
    WorkflowNotFoundError,
    WorkflowStateError,
    WorkflowStatus,
)
from orchestrator.config import Settings
from orchestrator.retention import RetentionPolicy
from tests.conftest import AppFactory

TABLES = {
    "workflows": "workflow_id",
    "steps": "workflow_id",
    "messages": "destination_id",
    "events": "workflow_id",
    "streams": "workflow_id",
}


def rows_of(url: str, ids: Sequence[str]) -> dict[str, int]:
    """How many rows each table holds for these workflow ids (read with SQL, not the store)."""
    counts: dict[str, int] = {}
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            marks = ",".join("?" * len(ids))
            for table, column in TABLES.items():
                sql = f"SELECT count(*) FROM {table} WHERE {column} IN ({marks})"
                counts[table] = conn.execute(sql, list(ids)).fetchone()[0]
        return counts
    with psycopg.connect(url) as conn:
        for table, column in TABLES.items():
            sql = f"SELECT count(*) FROM orchestrator.{table} WHERE {column} = ANY(%s)"
            row = conn.execute(sql, (list(ids),)).fetchone()  # type: ignore[call-overload]
            counts[table] = row[0] if row else 0
    return counts


def family(app: Orchestrator) -> dict[str, Any]:
    @app.step(name="reserve")
    async def reserve(sku: str) -> str:
        return f"r-{sku}"

    @app.workflow(name="child")
    async def child(sku: str) -> str:
        await app.set_event("stage", "child")
        return await reserve(sku)

    @app.workflow(name="parent")
    async def parent(sku: str, wait: bool = False) -> str:
        await app.set_event("stage", "started")
        await app.write_stream("log", "one")
        if wait:
            await app.recv("go", timeout=60)
        handle = await app.start(child, sku, workflow_id=f"{sku}-child")
        return await handle.result() + "!"

    @app.workflow(name="waiter")
    async def waiter() -> str:
        await app.recv("go", timeout=60)
        return "done"

    return {"parent": parent, "child": child, "waiter": waiter}


async def test_delete_finished_saga_with_its_child(make_app: AppFactory, database_url: str) -> None:
    app = make_app()
    parent = family(app)["parent"]
    async with app:
        handle = await app.start(parent, "book", workflow_id="order-1")
        await app.send("order-1", {"late": True}, topic="other")
        assert await handle.result() == "r-book!"
        before = rows_of(database_url, ["order-1", "book-child"])
        assert all(before[t] > 0 for t in ("workflows", "steps", "messages", "events", "streams"))

        deleted = await app.delete_workflow("order-1", reason="GDPR request")
        assert deleted == ["order-1", "book-child"]
        assert rows_of(database_url, ["order-1", "book-child"]) == dict.fromkeys(TABLES, 0)
        with pytest.raises(WorkflowNotFoundError):
            await app.retrieve("order-1").status()
        with pytest.raises(WorkflowNotFoundError):
            await app.delete_workflow("order-1")
        entries, _ = await app.list_audit(workflow_id="order-1")  # the audit outlives it
        assert [e.action for e in entries] == ["delete"]
        assert entries[0].reason == "GDPR request"
        assert entries[0].detail["children"] == ["book-child"]
        metric = app.metrics.registry.get_sample_value(
            "orchestrator_workflows_deleted_total", {"reason": "operator"}
        )
        assert metric == 2

        # The id can be used again: a new workflow, run from the start.
        again = await app.start(parent, "book", workflow_id="order-1")
        assert await again.result() == "r-book!"
        assert (await again.status()).status is WorkflowStatus.SUCCESS


async def test_delete_refuses_running_workflows_and_children(
    make_app: AppFactory, database_url: str
) -> None:
    url = database_url
    app = make_app()
    flows = family(app)
    async with app:
        waiting = await app.start(flows["waiter"], workflow_id="w-1")
        with pytest.raises(WorkflowStateError, match="cancel it first"):
            await app.delete_workflow("w-1")
        await app.cancel("w-1")
        with pytest.raises(Exception):  # noqa: B017 - cancelled: its result raises
            await waiting.result(timeout=10)
        assert await app.delete_workflow("w-1") == ["w-1"]

        # A finished parent whose child still runs: refused, unless children=False.
        done = await app.start(flows["child"], "pen", workflow_id="p-1")
        await done.result()
        child = await app.start(flows["waiter"], workflow_id="p-1-kid")
        # a parent that finished before its child (what a child left running stands for)
        execute(
            url, "UPDATE workflows SET parent_workflow_id = 'p-1' WHERE workflow_id = 'p-1-kid'"
        )
        with pytest.raises(WorkflowStateError, match="child workflow 'p-1-kid'"):
            await app.delete_workflow("p-1")
        assert await app.delete_workflow("p-1", children=False) == ["p-1"]
        assert (await child.status()).status is WorkflowStatus.PENDING
        await app.send("p-1-kid", "now", topic="go")
        assert await child.result(timeout=10) == "done"
        with pytest.raises(WorkflowNotFoundError):
            await app.delete_workflow("nobody")


def execute(url: str, sql: str) -> None:
    """Run one statement on the test's database (the workflow tables, either dialect)."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        with conn:
            conn.execute(sql)
        conn.close()
        return
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("SET search_path = orchestrator")
        pg.execute(sql)  # type: ignore[call-overload]


async def test_bulk_delete_dry_run_then_act(make_app: AppFactory, database_url: str) -> None:
    app = make_app()
    flows = family(app)
    async with app:
        for i in range(5):
            await (await app.start(flows["parent"], f"sku{i}", workflow_id=f"bulk-{i}")).result()
        await app.start(flows["waiter"], workflow_id="bulk-live")
        filters = WorkflowFilter(id_prefix="bulk-")
        dry = await app.bulk_delete(filters, dry_run=True)
        assert dry.dry_run and dry.matched == 5 and "bulk-live" not in dry.workflow_ids
        result = await app.bulk_delete(filters, reason="cleanup")
        assert result.matched == 5 and sorted(result.done) == [f"bulk-{i}" for i in range(5)]
        assert not result.failed
        ids = [f"bulk-{i}" for i in range(5)] + [f"sku{i}-child" for i in range(5)]
        assert rows_of(database_url, ids) == dict.fromkeys(TABLES, 0)
        assert (await app.retrieve("bulk-live").status()).status is WorkflowStatus.PENDING
        entries, _ = await app.list_audit(action="bulk_delete")
        assert entries[0].detail["done"] == 5


def test_retention_policy_parsing() -> None:
    policy = RetentionPolicy.parse("SUCCESS=7d, compensated=30d,CANCELLED=90m")
    assert policy.seconds == {
        WorkflowStatus.SUCCESS: 7 * 86400,
        WorkflowStatus.COMPENSATED: 30 * 86400,
        WorkflowStatus.CANCELLED: 90 * 60,
    }
    assert WorkflowStatus.COMPENSATION_FAILED not in policy.seconds  # kept unless listed
    assert RetentionPolicy.parse("COMPENSATION_FAILED=365d").seconds
    assert not RetentionPolicy.parse(None) and not RetentionPolicy.parse("")
    for bad, named in (
        ("SUCCESS=7", "'7'"),
        ("SUCCESS", "'SUCCESS'"),
        ("DONE=1d", "'DONE'"),
        ("PENDING=1d", "PENDING is not a final status"),
        ("SUCCESS=1d,SUCCESS=2d", "listed twice"),
        ("SUCCESS=-1d", "'-1d'"),
    ):
        with pytest.raises(ConfigurationError, match=named):
            RetentionPolicy.parse(bad)
    with pytest.raises(ConfigurationError, match="DONE"):
        Orchestrator("t", "sqlite:///:memory:", retention="SUCCESS=1d,DONE=1d")
    with pytest.raises(ConfigurationError, match="'x'"):
        Orchestrator("t", "sqlite:///:memory:", settings=Settings(retention="SUCCESS=x"))


async def test_retention_sweep_on_one_store(make_app: AppFactory, database_url: str) -> None:
    """SQLite and PostgreSQL: expired workflows of listed statuses go, the rest stay."""
    app = make_app(retention="SUCCESS=1h")
    flows = family(app)
    async with app:
        for i in range(3):
            await (await app.start(flows["child"], f"s{i}", workflow_id=f"old-{i}")).result()
        await (await app.start(flows["child"], "new", workflow_id="fresh")).result()
        live = await app.start(flows["waiter"], workflow_id="live")
        _age(database_url, ["old-0", "old-1", "old-2", "live"], hours=2)
        assert await app.sweep_retention() == {WorkflowStatus.SUCCESS: 3}
        assert rows_of(database_url, ["old-0", "old-1", "old-2"]) == dict.fromkeys(TABLES, 0)
        assert (await app.retrieve("fresh").status()).status is WorkflowStatus.SUCCESS
        assert (await live.status()).status is WorkflowStatus.PENDING
        assert await app.sweep_retention() == {}
        entries, _ = await app.list_audit(action="retention")
        assert len(entries) == 1 and entries[0].actor == "retention"
        assert entries[0].detail["deleted"] == {"SUCCESS": 3}
        again = await app.start(flows["child"], "s0", workflow_id="old-0")
        assert await again.result() == "r-s0"


def _age(url: str, ids: list[str], *, hours: float) -> None:
    """Move these workflows' times ``hours`` into the past."""
    shift = int(hours * 3600 * 1000)
    quoted = ",".join(f"'{i}'" for i in ids)
    execute(
        url,
        f"UPDATE workflows SET created_at = created_at - {shift}, "
        f"finished_at = finished_at - {shift} WHERE workflow_id IN ({quoted})",
    )


# -- several workers, thousands of workflows (PostgreSQL) ------------------------------------

EXPIRED = 3000  # SUCCESS, finished two days ago
COMPENSATED_EXPIRED = 600  # COMPENSATED, finished two days ago
KEPT = 400  # SUCCESS finished minutes ago, and COMPENSATION_FAILED (not listed) two days ago
BATCH = 100

SEED = """
SET search_path = orchestrator;
SET session_replication_role = replica;
INSERT INTO orchestrator.workflows (
    workflow_id, name, status, input, app_version, created_at, updated_at, started_at,
    finished_at
)
SELECT 'wf-' || i, 'seeded',
    CASE WHEN i <= {expired} THEN 'SUCCESS'
         WHEN i <= {expired} + {comp} THEN 'COMPENSATED'
         WHEN i <= {expired} + {comp} + {kept} THEN 'SUCCESS'
         WHEN i <= {expired} + {comp} + 2 * {kept} THEN 'COMPENSATION_FAILED'
         ELSE 'PENDING' END,
    '{{"args":[],"kwargs":{{}}}}', 'seeded',
    now_ms() - 2 * 86400000, now_ms() - 2 * 86400000, now_ms() - 2 * 86400000,
    CASE WHEN i <= {expired} + {comp} THEN now_ms() - 2 * 86400000 + i
         WHEN i <= {expired} + {comp} + {kept} THEN now_ms() - 60000
         WHEN i <= {expired} + {comp} + 2 * {kept} THEN now_ms() - 2 * 86400000
         END
FROM generate_series(1, {total}) AS i;
INSERT INTO orchestrator.steps (workflow_id, step_number, name, kind, output, finished_at)
SELECT 'wf-' || i, s, 'reserve', 'step', '1', now_ms() - 2 * 86400000
FROM generate_series(1, {total}) AS i, generate_series(1, 3) AS s;
INSERT INTO orchestrator.events (workflow_id, key, value, updated_at)
SELECT 'wf-' || i, 'stage', '"x"', now_ms() FROM generate_series(1, {total}) AS i;
INSERT INTO orchestrator.messages (destination_id, topic, payload, consumed, created_at)
SELECT 'wf-' || i, 'go', '1', true, now_ms() FROM generate_series(1, {total}) AS i;
SET session_replication_role = origin;
ANALYZE orchestrator.workflows;
"""


class CountingStore:
    """The store, with the size of every retention batch a worker committed recorded."""

    def __init__(self, store: Any, batches: list[int]) -> None:
        self.store = store
        self.batches = batches

    async def delete_expired(self, status: WorkflowStatus, retention_ms: int, limit: int) -> Any:
        ids = await self.store.delete_expired(status, retention_ms, limit)
        self.batches.append(len(ids))
        return ids

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.mark.postgres
async def test_retention_sweep_across_workers(postgres_url: str) -> None:
    live_extra = 200  # PENDING rows seeded, never finished
    total = EXPIRED + COMPENSATED_EXPIRED + 2 * KEPT + live_extra
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(  # type: ignore[call-overload]
            SEED.format(expired=EXPIRED, comp=COMPENSATED_EXPIRED, kept=KEPT, total=total)
        )
    settings = Settings(retention_sweep_seconds=0.05, retention_batch=BATCH)
    workers: list[Orchestrator] = []
    batches: list[list[int]] = []
    flows: list[dict[str, Any]] = []
    for n in range(3):
        app = Orchestrator(
            "test",
            postgres_url,
            executor_id=f"worker-{n}",
            app_version="test",
            settings=settings,
            retention="SUCCESS=1d,COMPENSATED=1d,CANCELLED=1d",
        )
        flows.append(family(app))
        batches.append([])
        app.engine.retention.store = CountingStore(app.store, batches[-1])  # type: ignore[assignment]
        workers.append(app)
    live_app = workers[0]
    lock_waits = 0
    try:
        await asyncio.gather(*(app.launch() for app in workers))
        live = await live_app.start(flows[0]["waiter"], workflow_id="wf-live")
        deadline = time.monotonic() + 120
        with psycopg.connect(postgres_url, autocommit=True) as watch:
            while True:
                row = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                ).fetchone()
                lock_waits += row[0] if row else 0
                left = watch.execute(
                    "SELECT count(*) FROM orchestrator.workflows WHERE status IN"
                    " ('SUCCESS', 'COMPENSATED') AND finished_at < orchestrator.now_ms() - 86400000"
                ).fetchone()
                if left is not None and left[0] == 0:
                    break
                assert time.monotonic() < deadline, f"{left} expired workflows left"
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # a last sweep of each worker finds nothing more
        per_worker = [
            app.metrics.registry.get_sample_value(
                "orchestrator_workflows_deleted_total", {"reason": "retention"}
            )
            or 0
            for app in workers
        ]
        assert sum(per_worker) == EXPIRED + COMPENSATED_EXPIRED  # each one deleted once
        assert sum(sum(b) for b in batches) == EXPIRED + COMPENSATED_EXPIRED
        assert max(max(b) for b in batches if b) <= BATCH  # one batch per transaction
        assert sum(1 for b in batches if sum(b) > 0) >= 2  # the workers shared the work
        assert lock_waits == 0  # nobody waited on a lock another sweep held
        kept_ids = [f"wf-{i}" for i in range(EXPIRED + COMPENSATED_EXPIRED + 1, total + 1)]
        counts = rows_of(postgres_url, kept_ids)
        assert counts["workflows"] == len(kept_ids) and counts["steps"] == 3 * len(kept_ids)
        assert counts["events"] == len(kept_ids) and counts["messages"] == len(kept_ids)
        gone = [f"wf-{i}" for i in range(1, EXPIRED + COMPENSATED_EXPIRED + 1)]
        assert rows_of(postgres_url, gone) == dict.fromkeys(TABLES, 0)
        assert (await live.status()).status is WorkflowStatus.PENDING
        # A deleted id starts a new workflow.
        reused = await live_app.start(flows[0]["child"], "x", workflow_id="wf-1")
        assert await reused.result(timeout=30) == "r-x"
        await live_app.send("wf-live", "now", topic="go")
        assert await live.result(timeout=30) == "done"
    finally:
        for app in workers:
            if app.engine.launched:
                await app.shutdown(timeout=0)
