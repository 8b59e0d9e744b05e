"""create_store: which database URLs give which store, and the error for the others."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.errors import ConfigurationError
from orchestrator.store import NewWorkflow, PostgresStore, SQLiteStore, create_store
from orchestrator.types import WorkflowStatus


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:secret@db:5432/app",
        "postgres://user:secret@db:5432/app",
        "postgresql+psycopg://user:secret@db:5432/app",
    ],
)
def test_postgres_urls(url: str) -> None:
    store = create_store(url, schema="tenant")
    assert isinstance(store, PostgresStore)
    assert store.url == "postgresql://user:secret@db:5432/app" and store.schema == "tenant"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/orch.db", "data/orch.db"),
        ("sqlite:////var/lib/orch.db", "/var/lib/orch.db"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_urls(url: str, path: str) -> None:
    store = create_store(url)
    assert isinstance(store, SQLiteStore) and store.path == path


@pytest.mark.parametrize(
    "url", ["mysql://user:secret@db/app", "sqlite://relative.db", "sqlite:///", "", "orch.db"]
)
def test_other_urls_are_refused_with_the_accepted_forms(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"postgresql://.*sqlite:///:memory:") as raised:
        create_store(url)
    assert "secret" not in str(raised.value)


@pytest.mark.sqlite
async def test_sqlite_memory_store_works_and_notifies() -> None:
    store = create_store("sqlite:///:memory:", clock_ms=lambda: 1_234)
    seen: list[tuple[str, str]] = []
    await store.open()
    try:
        await store.listen(lambda kind, detail: seen.append((kind, detail)))
        assert await store.now_ms() == 1_234
        new = NewWorkflow("w", "n", WorkflowStatus.ENQUEUED, "{}", None, None, queue_name="q")
        record, created = await store.create_workflow(new)
        assert created and record.created_at == 1_234
        await asyncio.sleep(0)
        assert seen == [("queue", "q")]  # its queue's workers; no one waits on the workflow
    finally:
        await store.close()
