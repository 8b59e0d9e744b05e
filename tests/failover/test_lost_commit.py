"""A claim whose commit succeeded but whose answer was lost (a failover cuts every connection
mid-commit) is retried and finds other rows: the ones it did claim belong to a live worker
that does not run them. The worker adopts them (Lease.adopt_orphans). Real PostgreSQL behind
a loopback proxy that loses that one answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from orchestrator import Orchestrator, WorkflowStatus
from tests.failover.proxy import LossyProxy

pytestmark = [pytest.mark.postgres]

CLAIM_QUEUED = b"SET status = 'PENDING', executor_id"  # the claim_queued statement


@pytest.fixture
async def proxy(postgres_url: str) -> AsyncIterator[tuple[LossyProxy, str]]:
    parts = urlsplit(postgres_url)
    lossy = LossyProxy(parts.port or 5432)
    await lossy.start()
    netloc = (
        f"{parts.username}@127.0.0.1:{lossy.port}" if parts.username else f"127.0.0.1:{lossy.port}"
    )
    try:
        yield lossy, urlunsplit(parts._replace(netloc=netloc))
    finally:
        await lossy.close()


async def test_a_dequeue_whose_commit_answer_was_lost_still_runs(
    proxy: tuple[LossyProxy, str],
) -> None:
    lossy, url = proxy
    app = Orchestrator("lost", url, executor_id="lost-w1", lease_seconds=1.0)
    app.queue("jobs")

    @app.workflow()
    async def job(n: int) -> int:
        return n * 2

    async with app:
        lossy.lose_answer_of(CLAIM_QUEUED)  # (one autocommit statement: no COMMIT)
        handle = await app.start(job, 21, workflow_id="job-1", queue="jobs")
        assert await handle.result(timeout=60) == 42
        assert lossy.lost == 1  # the dequeue's commit did lose its answer
        assert (await handle.status()).status is WorkflowStatus.SUCCESS
