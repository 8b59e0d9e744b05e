"""Worker leases: heartbeats on the database clock, takeover of dead workers' workflows, and
the guard that stops a worker which lost its lease (e.g. was paused) before its next step."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable

from orchestrator.errors import LeaseLostError
from orchestrator.store.base import Store, WorkflowRecord

logger = logging.getLogger("orchestrator.worker")

LEASE_SECONDS = 30.0  # a worker silent this long is dead; its workflows are taken over
TAKEOVER_BATCH = 100  # most workflows one takeover claims at once


class Lease:
    """This worker's lease. ``valid_until`` is on the local monotonic clock, so a process that
    was paused (SIGSTOP, a long GC, a laptop lid) knows on waking that it must re-check."""

    def __init__(
        self,
        store: Store,
        *,
        executor_id: str,
        app_version: str | None,
        lease_seconds: float,
        running: Callable[[], list[str]],
        lost: Callable[[str], None],
        adopt: Callable[[WorkflowRecord], Awaitable[None]],
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be > 0")
        self.store = store
        self.executor_id = executor_id
        self.app_version = app_version
        self.lease_ms = int(lease_seconds * 1000)
        self.running = running
        self.lost = lost
        self.adopt = adopt
        self.valid_until = 0.0
        self.closing = False
        self._confirming: asyncio.Lock = asyncio.Lock()

    async def register(self) -> None:
        sent = time.monotonic()
        await self.store.register_worker(
            self.executor_id, self.app_version, self.lease_ms, socket.gethostname(), os.getpid()
        )
        self._extend(sent)

    def _extend(self, sent: float) -> None:
        # Counted from when the request was SENT: a reply that waited out a pause (SIGSTOP)
        # must not make a lease that others already saw expire look fresh. A third of the
        # lease of safety margin: renewals happen well before others may act.
        self.valid_until = sent + self.lease_ms / 1000 * 2 / 3

    async def renew(self) -> None:
        """Heartbeat. A lease found expired may have been taken over: keep only the workflows
        still ours, stop the others, and register afresh."""
        sent = time.monotonic()
        if await self.store.renew_lease(self.executor_id, self.lease_ms) is not None:
            self._extend(sent)
            return
        logger.warning(
            "worker %s lost its lease; checking which workflows it still owns", self.executor_id
        )
        running = self.running()
        owned = await self.store.owned_workflows(self.executor_id, running)
        for workflow_id in running:
            if workflow_id not in owned:
                self.lost(workflow_id)
        await self.register()

    async def guard(self, workflow_id: str) -> None:
        """Before a step runs: raise LeaseLostError if this worker may no longer run it."""
        if self.closing:
            raise LeaseLostError(
                f"worker {self.executor_id} is shutting down; workflow {workflow_id} will be "
                "recovered",
                workflow_id=workflow_id,
            )
        await self.confirm(workflow_id)

    async def confirm(self, workflow_id: str) -> None:
        """Before a checkpoint is written: raise LeaseLostError if the lease lapsed (a pause)
        and the workflow was taken over meanwhile, so a worker that woke up mid-step never
        records a step of a workflow another worker now runs (which would stop that one)."""
        if time.monotonic() < self.valid_until:
            return
        async with self._confirming:
            if time.monotonic() >= self.valid_until:
                await self.renew()
        if workflow_id not in await self.store.owned_workflows(self.executor_id, [workflow_id]):
            raise LeaseLostError(
                f"workflow {workflow_id} was taken over by another worker while this one "
                f"({self.executor_id}) was unresponsive; it stops here",
                workflow_id=workflow_id,
            )

    async def take_over(self) -> int:
        """Claim and resume the workflows of dead workers; how many were claimed."""
        claimed = await self.store.take_over(self.executor_id, self.app_version, TAKEOVER_BATCH)
        for record in claimed:
            logger.info(
                "worker %s takes over workflow %s from a dead worker",
                self.executor_id,
                record.workflow_id,
            )
            await self.adopt(record)
        return len(claimed)

    async def run(self) -> None:
        """Renew the lease and look for dead workers' work, a few times per lease."""
        interval = self.lease_ms / 1000 / 3
        while not self.closing:
            await asyncio.sleep(interval)
            try:
                await self.renew()
                while await self.take_over() == TAKEOVER_BATCH:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("heartbeat of worker %s failed; retrying", self.executor_id)

    async def release(self) -> None:
        """Give the lease up (graceful shutdown), so other workers take over at once."""
        self.closing = True
        try:
            await self.store.release_worker(self.executor_id)
        except Exception:
            logger.exception("could not release the lease of worker %s", self.executor_id)
