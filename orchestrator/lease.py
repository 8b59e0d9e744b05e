"""Worker leases: heartbeats on the database clock, takeover of dead workers' workflows, and
the guard that stops a worker which lost its lease (e.g. was paused) before its next step."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from orchestrator.clock import Clock
from orchestrator.errors import LeaseLostError
from orchestrator.store.base import Store, WorkflowRecord

logger = logging.getLogger("orchestrator.worker")

LEASE_SECONDS = 30.0  # a worker silent this long is dead; its workflows are taken over
TAKEOVER_BATCH = 100  # most workflows one takeover claims at once


class Lease:
    """This worker's lease. ``valid_until`` is on the engine's clock (which keeps running
    while the process is paused: SIGSTOP, a long GC, a laptop lid), so a process that was paused
    knows on waking that it must re-check; renewals wait on that clock too.

    ``generation`` counts the times the lease was lost and registered afresh: a run that last
    checked its workflow in an older generation checks it again in the database (its epoch),
    even though the new lease looks fresh. The database fences every write anyway (migration
    0004); these checks keep a worker that lost a workflow from starting another step of it."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
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
        self.clock = clock
        self.executor_id = executor_id
        self.app_version = app_version
        self.lease_ms = int(lease_seconds * 1000)
        self.running = running
        self.lost = lost
        self.adopt = adopt
        self.valid_until = 0  # clock ms
        # Orphans (see adopt_orphans) can only follow a statement that met a lost connection:
        # they are looked for until two leases after the last one the store saw.
        self._failures_seen = 0
        self._orphans_until = 0  # clock ms
        self.generation = 0
        self.closing = False
        self._confirming: asyncio.Lock = asyncio.Lock()
        # The generation in which each running workflow (id, epoch) was last found ours.
        self._checked: dict[tuple[str, int], int] = {}

    async def register(self) -> None:
        sent = self.clock.now_ms()
        await self.store.register_worker(
            self.executor_id, self.app_version, self.lease_ms, socket.gethostname(), os.getpid()
        )
        self._extend(sent)

    def _extend(self, sent: int) -> None:
        # Counted from when the request was SENT: a reply that waited out a pause (SIGSTOP)
        # must not make a lease that others already saw expire look fresh. A third of the
        # lease of safety margin: renewals happen well before others may act.
        self.valid_until = sent + self.lease_ms * 2 // 3

    async def renew(self) -> None:
        """Heartbeat. A lease found expired may have been taken over: keep only the workflows
        still ours, stop the others, and register afresh."""
        sent = self.clock.now_ms()
        if await self.store.renew_lease(self.executor_id, self.lease_ms) is not None:
            self._extend(sent)
            return
        self.generation += 1  # every run checks its workflow again before going on
        running = self.running()
        owned = await self.store.owned_workflows(self.executor_id, running)
        lost = [workflow_id for workflow_id in running if workflow_id not in owned]
        if lost:
            logger.warning(
                "worker %s lost its lease (it was unresponsive); %d of its workflows were taken"
                " over or ended and stop here: %s",
                self.executor_id,
                len(lost),
                ", ".join(lost[:10]),
            )
        else:
            logger.info(
                "worker %s renews a lapsed lease; it still owns its %d running workflows",
                self.executor_id,
                len(running),
            )
        for workflow_id in lost:
            self.lost(workflow_id)
        await self.register()

    def trusts(self, workflow_id: str, epoch: int, step: bool) -> bool:
        """``guard`` (``step``) or ``confirm`` would return at once: the lease is valid and
        the workflow checked in its generation (the hot path's test, with no coroutine)."""
        return (
            not (step and self.closing)
            and self.clock.now_ms() < self.valid_until
            and self._checked.get((workflow_id, epoch)) == self.generation
        )

    async def guard(self, workflow_id: str, epoch: int) -> None:
        """Before a step runs: raise LeaseLostError if this worker may no longer run it."""
        if self.closing:
            raise LeaseLostError(
                f"worker {self.executor_id} is shutting down; workflow {workflow_id} will be "
                "recovered",
                workflow_id=workflow_id,
            )
        await self.confirm(workflow_id, epoch)

    async def confirm(self, workflow_id: str, epoch: int) -> None:
        """Before a step or a checkpoint: raise LeaseLostError if the lease lapsed (a pause)
        and the workflow is no longer this run's (another epoch owns it, or it ended), so a
        worker that woke up never starts another step of a workflow another worker runs. A
        fresh lease is trusted only for workflows checked since it was last registered."""
        key = (workflow_id, epoch)
        if self.clock.now_ms() < self.valid_until and self._checked.get(key) == self.generation:
            return
        async with self._confirming:
            if self.clock.now_ms() >= self.valid_until:
                await self.renew()
        generation = self.generation
        record = await self.store.get_workflow(workflow_id)
        if (
            record is None
            or record.owner_epoch != epoch
            or record.executor_id != self.executor_id
            or not record.status.is_active
        ):
            self._checked.pop(key, None)
            raise LeaseLostError(
                f"workflow {workflow_id} is no longer run by this worker ({self.executor_id},"
                f" epoch {epoch}): it was taken over or ended while this worker was"
                " unresponsive; it stops here",
                workflow_id=workflow_id,
            )
        self._checked[key] = generation

    def trust(self, workflow_id: str, epoch: int) -> None:
        """A run starts from a record just claimed (or created) in this lease's generation."""
        self._checked[(workflow_id, epoch)] = self.generation

    def forget(self, workflow_id: str, epoch: int) -> None:
        """A run ended: drop what was remembered of its checks."""
        self._checked.pop((workflow_id, epoch), None)

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

    def _may_have_orphans(self) -> bool:
        """Whether a connection was lost recently enough for an orphan to appear: one is
        seen a lease after its claim committed (untouched for a lease), so the search goes on
        for two leases after the last lost connection; otherwise it costs nothing."""
        failures = self.store.connection_failures
        now = self.clock.now_ms()
        if failures != self._failures_seen:
            self._failures_seen = failures
            self._orphans_until = now + 2 * self.lease_ms
        return now < self._orphans_until

    async def adopt_orphans(self) -> int:
        """Run this worker's own unfinished workflows that no run of it holds, untouched for a
        lease: a claim (dequeue, takeover) whose commit succeeded while its connection died
        (a failover, a restart) was retried and returned others, so nobody runs these and, the
        lease being alive, nobody else would take them over. How many were adopted."""
        orphans = await self.store.claim_orphans(
            self.executor_id, self.app_version, self.running(), self.lease_ms, TAKEOVER_BATCH
        )
        for record in orphans:
            logger.warning(
                "worker %s resumes workflow %s: claimed here by a commit whose answer was lost",
                self.executor_id,
                record.workflow_id,
            )
            await self.adopt(record)
        return len(orphans)

    async def run(self) -> None:
        """Renew the lease and look for dead workers' work and this worker's orphans (see
        adopt_orphans), a few times per lease."""
        while not self.closing:
            await self.clock.sleep_until(self.clock.now_ms() + self.lease_ms // 3)
            try:
                await self.renew()
                while await self.take_over() == TAKEOVER_BATCH:
                    pass
                if self._may_have_orphans():
                    while await self.adopt_orphans() == TAKEOVER_BATCH:
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
