"""Listings read from a replica (``read_database_url``); writes and read-your-writes stay on
the primary. One replicated pair for the module (made by the test: private clusters)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from orchestrator import Orchestrator, WorkflowStatus
from orchestrator.errors import ConfigurationError
from tests.clocks import until
from tests.failover.replica import ReplicatedPair, tools_missing

pytestmark = [pytest.mark.postgres]


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicatedPair]:
    reason = tools_missing()
    if reason is not None:
        pytest.skip(f"no private PostgreSQL clusters: {reason}")
    replicated = ReplicatedPair()
    try:
        replicated.start()
        yield replicated
    finally:
        replicated.stop()


def _replay(pair: ReplicatedPair, action: str) -> None:
    with psycopg.connect(pair.read_url, autocommit=True) as db:
        db.execute(f"SELECT pg_wal_replay_{action}()")  # type: ignore[arg-type]


async def test_listings_read_the_replica_and_writes_the_primary(pair: ReplicatedPair) -> None:
    app = Orchestrator("replica", pair.url, read_database_url=pair.read_url, executor_id="r1")

    @app.workflow()
    async def greet(name: str) -> str:
        return f"hello {name}"

    async with app:
        first = await app.start(greet, "ada", workflow_id="greet-1")
        assert await first.result(timeout=30) == "hello ada"
        listed = lambda: app.list_workflows(name=greet.name)  # noqa: E731

        async def replica_has(ids: set[str]) -> bool:
            return {info.workflow_id for info in await listed()} == ids

        # Synchronous replication: the replica flushed the commit; it applies it a moment later.
        await until(lambda: replica_has({"greet-1"}), within=20)
        page = await app.list_workflows_page()
        assert [info.workflow_id for info in page.items] == ["greet-1"]
        counts = await app.count_workflows()
        assert counts[WorkflowStatus.SUCCESS] == 1

        _replay(pair, "pause")  # the replica falls behind: listings are stale, nothing else is
        try:
            second = await app.start(greet, "bob", workflow_id="greet-2")
            assert await second.result(timeout=30) == "hello bob"  # written on the primary
            assert (await second.status()).status is WorkflowStatus.SUCCESS
            assert await replica_has({"greet-1"})  # the listing has not seen it yet
        finally:
            _replay(pair, "resume")
        await until(lambda: replica_has({"greet-1", "greet-2"}), within=20)


def test_a_read_url_that_is_not_postgres_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="read_database_url"):
        Orchestrator("replica", "sqlite:///:memory:", read_database_url="sqlite:///x.db")
