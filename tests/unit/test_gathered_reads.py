"""GatheredReads (engine/results.py): result waiters reading at the same moment share a query."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from orchestrator.engine.results import GatheredReads
from orchestrator.errors import StoreError
from orchestrator.store.base import NewWorkflow, WorkflowRecord
from orchestrator.store.sqlite import SQLiteStore
from orchestrator.types import WorkflowStatus


class CountingStore(SQLiteStore):
    """The real SQLite store, remembering the ids of each get_workflows query."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.queries: list[list[str]] = []
        self.fail = False

    async def get_workflows(self, workflow_ids: Sequence[str]) -> list[WorkflowRecord]:
        self.queries.append(list(workflow_ids))
        if self.fail:
            raise StoreError("the database is gone")
        return await super().get_workflows(workflow_ids)


@pytest.fixture
async def store() -> AsyncIterator[CountingStore]:
    store = CountingStore()
    await store.open()
    for n in range(30):
        status = WorkflowStatus.ENQUEUED if n % 2 else WorkflowStatus.PENDING
        await store.create_workflow(NewWorkflow(f"w{n}", "job", status, "{}", None, None, "q"))
    try:
        yield store
    finally:
        await store.close()


async def test_waiters_reading_at_once_share_one_query(store: CountingStore) -> None:
    reads = GatheredReads(store)
    ids = [f"w{n}" for n in range(30)] + ["w3", "missing"]
    records = await asyncio.gather(*(reads.get(workflow_id) for workflow_id in ids))
    assert [r.workflow_id if r else None for r in records] == [*ids[:-1], None]
    assert records[3] is not None and records[3].status is WorkflowStatus.ENQUEUED
    assert len(store.queries) == 1 and sorted(store.queries[0]) == sorted(set(ids))
    assert await reads.get("w0") is not None  # a later read: a query of its own
    assert store.queries[1:] == [["w0"]]


async def test_a_failed_query_fails_its_waiters_and_the_next_read_tries_again(
    store: CountingStore,
) -> None:
    reads = GatheredReads(store)
    store.fail = True
    outcomes = await asyncio.gather(reads.get("w1"), reads.get("w2"), return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [StoreError, StoreError]
    store.fail = False
    record = await reads.get("w1")
    assert record is not None and record.workflow_id == "w1"
